-- Give a job up: a dead-letter entry with its last error, the job 'failed', and its stream
-- entry acknowledged and deleted, in one step. Fenced by the claim's fence (the claim path passes
-- the fence it found, '' when never claimed, so a consumer that claimed the job meanwhile wins).
-- Returns 'ok', 'fenced', 'missing' or the terminal status the job already had.
local state = redis.call('HMGET', K.job, 'fence', 'status', 'failures', 'attempt')
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
local failures = (tonumber(state[3]) or 0) + tonumber(A.count_failure)
local dead = redis.call('XADD', K.dead, 'MAXLEN', '~', A.dead_maxlen, '*', 'job', A.job_id,
  'reason', A.reason, 'error_code', A.error_code, 'error_message', A.error_message, 'failures', failures,
  'attempt', state[4] or '0', 'entry', A.entry_id, 'consumer', A.consumer, 'at', A.now_ms)
redis.call('HSET', K.job, 'status', 'failed', 'finished_at', A.now_ms, 'failures', failures,
  'error_code', A.error_code, 'error_message', A.error_message, 'phase', 'dead_lettered', 'dead_entry', dead,
  'resume_at', '0')
emit(K.job, K.events, A.events_maxlen, A.job_id, 'failed')
return 'ok'
