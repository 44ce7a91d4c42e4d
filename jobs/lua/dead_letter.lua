-- Give a job up: a dead-letter entry with its last error, the job 'failed', and its stream
-- entry acknowledged and deleted, in one step. Fenced by the claim's fence (the claim path passes
-- the fence it found, '' when never claimed, so a consumer that claimed the job meanwhile wins).
-- Returns 'ok', 'fenced', 'missing' or the terminal status the job already had.
-- KEYS: job, events, stream, entries, dead
-- ARGV: job_id, fence, events_maxlen, group, entry_id, now_ms, reason, error_code,
--       error_message, count_failure, dead_maxlen, consumer
local state = redis.call('HMGET', KEYS[1], 'fence', 'status', 'failures', 'attempt')
if fenced(state[2], state[1], ARGV[2]) then
  return 'fenced'
end
drop_entry(KEYS[3], ARGV[4], ARGV[5], KEYS[4])
if not state[2] then
  return 'missing'
end
if is_terminal(state[2]) then
  return state[2]
end
local failures = (tonumber(state[3]) or 0) + tonumber(ARGV[10])
local dead = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[11], '*', 'job', ARGV[1],
  'reason', ARGV[7], 'error_code', ARGV[8], 'error_message', ARGV[9], 'failures', failures,
  'attempt', state[4] or '0', 'entry', ARGV[5], 'consumer', ARGV[12], 'at', ARGV[6])
redis.call('HSET', KEYS[1], 'status', 'failed', 'finished_at', ARGV[6], 'failures', failures,
  'error_code', ARGV[8], 'error_message', ARGV[9], 'phase', 'dead_lettered', 'dead_entry', dead,
  'resume_at', '0')
emit(KEYS[1], KEYS[2], ARGV[3], ARGV[1], 'failed')
return 'ok'
