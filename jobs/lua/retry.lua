-- Put a job back for later: its entry acknowledged and deleted, the job in the delayed ZSET until
-- due_ms, its status 'retrying' or 'waiting_for_quota' with the due time (resume_at) and the
-- error that caused it. Fenced by the claim's fence (claim.lua). count_failure '1' adds one to `failures` (quota
-- waits and a broken Space do not count). Returns 'ok', 'fenced', 'missing' or the terminal status.
local state = redis.call('HMGET', K.job, 'fence', 'status')
if fenced(state[2], state[1], A.fence) then
  return 'fenced'
end
drop_entry(K.stream, A.group, A.entry_id, K.entries)
if not state[2] then
  return 'missing'
end
if is_terminal(state[2]) then
  return state[2]
end
if A.count_failure == '1' then
  redis.call('HINCRBY', K.job, 'failures', 1)
end
redis.call('ZADD', K.delayed, A.due_ms, A.job_id)
redis.call('HSET', K.job, 'status', A.status, 'resume_at', A.due_ms, 'phase', A.phase,
  'error_code', A.error_code, 'error_message', A.error_message, 'progress', '0', 'queue_rank', '-1',
  'queue_size', '-1', 'eta_seconds', '-1')
emit(K.job, K.events, A.events_maxlen, A.job_id, A.status)
return 'ok'
