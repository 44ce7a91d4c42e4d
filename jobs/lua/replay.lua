-- Put a dead-lettered job back on the jobs stream: failures reset, error cleared, a new entry,
-- a fresh TTL, and its dead-letter entry removed, in one step. The attempt keeps counting up
-- (it is the fencing token). Returns 'ok', 'missing' (the job expired) or the job's status when
-- it is not 'failed' (replayed already).
-- KEYS: dead, job, stream, events   ARGV: dead_entry_id, job_id, events_maxlen, job_ttl_s
local status = redis.call('HGET', KEYS[2], 'status')
if not status then
  return 'missing'
end
if status ~= 'failed' then
  redis.call('XDEL', KEYS[1], ARGV[1])
  return status
end
local entry = redis.call('XADD', KEYS[3], '*', 'job', ARGV[2])
redis.call('HSET', KEYS[2], 'status', 'queued', 'entry_id', entry, 'failures', '0',
  'error_code', '', 'error_message', '', 'phase', 'queued', 'progress', '0', 'finished_at', '0',
  'resume_at', '0', 'dead_entry', '')
redis.call('EXPIRE', KEYS[2], ARGV[4])
redis.call('XDEL', KEYS[1], ARGV[1])
emit(KEYS[2], KEYS[4], ARGV[3], ARGV[2], 'queued')
return 'ok'
