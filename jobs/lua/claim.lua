-- A consumer takes a delivered entry. Bumps the attempt, the fencing token every later write of
-- this consumer must present. Returns {'ok', attempt} or {'skip', reason} for jobs not to run.
-- KEYS: job, events   ARGV: job_id, entry_id, consumer, now_ms, events_maxlen
local state = redis.call('HMGET', KEYS[1], 'status', 'entry_id')
local status = state[1]
if not status then
  return {'skip', 'missing'}
end
if is_terminal(status) then
  return {'skip', status}
end
if state[2] and state[2] ~= ARGV[2] then
  -- A stale entry: the job was re-queued under a newer entry (retry), which owns it now.
  return {'skip', 'superseded'}
end
local attempt = redis.call('HINCRBY', KEYS[1], 'attempt', 1)
redis.call('HSET', KEYS[1], 'status', 'running', 'started_at', ARGV[4], 'consumer', ARGV[3],
  'phase', 'starting', 'progress', '0', 'queue_rank', '-1', 'queue_size', '-1',
  'eta_seconds', '-1', 'resume_at', '0', 'error_code', '', 'error_message', '')
emit(KEYS[1], KEYS[2], ARGV[5], ARGV[1], 'running')
return {'ok', attempt}
