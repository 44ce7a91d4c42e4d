-- The user cancels a job. Not yet terminal: it becomes 'cancelled' (a running consumer notices
-- at its next fenced write); queued entries are skipped when claimed; delayed retries dropped.
-- KEYS: job, events, delayed   ARGV: job_id, events_maxlen, now_ms
local status = redis.call('HGET', KEYS[1], 'status')
if not status then
  return 'missing'
end
if is_terminal(status) then
  return status
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('HSET', KEYS[1], 'status', 'cancelled', 'finished_at', ARGV[3],
  'error_code', 'cancelled', 'error_message', 'Cancelled by the user.')
emit(KEYS[1], KEYS[2], ARGV[2], ARGV[1], 'cancelled')
return 'ok'
