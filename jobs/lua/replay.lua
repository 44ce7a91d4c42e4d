-- Put a dead-lettered job back on the jobs stream: failures reset, error cleared, a new entry,
-- a fresh TTL, and its dead-letter entry removed, in one step. The attempt keeps counting up
-- (it is the fencing token). Returns 'ok', 'missing' (the job expired) or the job's status when
-- it is not 'failed' (replayed already).
local status = redis.call('HGET', K.job, 'status')
if not status then
  return 'missing'
end
if status ~= 'failed' then
  redis.call('XDEL', K.dead, A.dead_entry_id)
  return status
end
local entry = redis.call('XADD', K.stream, '*', 'job', A.job_id)
redis.call('HSET', K.job, 'status', 'queued', 'entry_id', entry, 'failures', '0',
  'error_code', '', 'error_message', '', 'phase', 'queued', 'progress', '0', 'finished_at', '0',
  'resume_at', '0', 'dead_entry', '')
redis.call('EXPIRE', K.job, A.job_ttl_s)
redis.call('XDEL', K.dead, A.dead_entry_id)
emit(K.job, K.events, A.events_maxlen, A.job_id, 'queued')
return 'ok'
