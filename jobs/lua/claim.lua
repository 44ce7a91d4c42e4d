-- A consumer takes a delivered entry it owns. Bumps the attempt and sets the fence, the token every
-- later write of this consumer must present: "attempt:nonce", with a nonce the claimer drew. The
-- number alone is not enough: after a fail-over to a replica that missed a claim, the next claim gets
-- the same number again, and the first claimer (still running) must not pass for the second.
-- Also indexes entry -> job, so an entry deleted under the PEL (its payload gone) can still end its job.
-- Returns {'ok', attempt, failures, fence, job hash (HGETALL, flat), photo or false} to run it: the
--         job's fields and its input photo come with the claim, saving the consumer two round trips.
--         The photo is read only when the caller named its blob key (K.photo; A.photo_name is its
--         blob name, '' when blobs are not in Redis) and the job's input_key is that name;
--         otherwise false, and the caller reads it from wherever its input_key points.
--         {'skip', reason}: the job is missing, finished or superseded; the entry is acked + deleted;
--         {'lost', reason}: the entry is not this consumer's (any more); nothing is touched;
--         {'dead', attempt, deliveries, fence}: delivered more than max_deliveries times: dead-letter
--         it, presenting the fence found here (so a consumer that claimed the job meanwhile wins).
local pending = redis.call('XPENDING', K.stream, A.group, A.entry_id, A.entry_id, 1)
if #pending == 0 then
  return {'lost', 'not_pending'}
end
if pending[1][2] ~= A.consumer then
  return {'lost', 'owned_by_another'}
end
local function drop(reason)
  drop_entry(K.stream, A.group, A.entry_id, K.entries)
  return {'skip', reason}
end
local state = redis.call('HMGET', K.job, 'status', 'entry_id', 'attempt', 'failures', 'fence')
local status = state[1]
if not status then
  return drop('missing')
end
if is_terminal(status) then
  return drop(status)
end
if state[2] and state[2] ~= A.entry_id then
  -- A stale entry: the job was re-queued under a newer entry (retry), which owns it now.
  return drop('superseded')
end
if tonumber(pending[1][4]) > tonumber(A.max_deliveries) then
  return {'dead', state[3] or '0', pending[1][4], state[5] or ''}
end
local attempt = redis.call('HINCRBY', K.job, 'attempt', 1)
local fence = attempt .. ':' .. A.nonce
redis.call('HSET', K.job, 'status', 'running', 'started_at', A.now_ms, 'consumer', A.consumer, 'fence', fence,
  'phase', 'starting', 'progress', '0', 'queue_rank', '-1', 'queue_size', '-1',
  'eta_seconds', '-1', 'resume_at', '0', 'error_code', '', 'error_message', '')
redis.call('HSET', K.entries, A.entry_id, A.job_id)
emit(K.job, K.events, A.events_maxlen, A.job_id, 'running')
local photo = false
if A.photo_name ~= '' and redis.call('HGET', K.job, 'input_key') == A.photo_name then
  photo = redis.call('GET', K.photo)
end
return {'ok', attempt, state[4] or '0', fence, redis.call('HGETALL', K.job), photo}
