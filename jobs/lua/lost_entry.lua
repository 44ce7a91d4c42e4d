-- An entry deleted (trimmed) while still pending: its payload is gone, so the job it carried can
-- never run from it. The job ends 'failed' with the reason (and a dead-letter entry, so it can be
-- replayed), and the entry leaves the PEL (Redis 6.2 keeps such ghosts there) and the index.
-- Returns the job's fate: 'failed', 'unknown' (not in the index), 'missing', 'superseded' or
-- the terminal status it already had.
local job_id = redis.call('HGET', K.entries, A.entry_id)
redis.call('XACK', K.stream, A.group, A.entry_id)
redis.call('HDEL', K.entries, A.entry_id)
if not job_id then
  return 'unknown'
end
local job = A.job_key_prefix .. job_id
local state = redis.call('HMGET', job, 'status', 'entry_id', 'attempt', 'failures')
if not state[1] then
  return 'missing'
end
if is_terminal(state[1]) then
  return state[1]
end
if state[2] and state[2] ~= A.entry_id then
  return 'superseded'
end
local code = 'entry_deleted'
local message = 'The queue entry of this job was deleted from the stream before the job '
  .. 'finished (trimmed by hand?); it can be replayed from the dead letters.'
local dead = redis.call('XADD', K.dead, 'MAXLEN', '~', A.dead_maxlen, '*', 'job', job_id,
  'reason', code, 'error_code', code, 'error_message', message, 'failures', state[4] or '0',
  'attempt', state[3] or '0', 'entry', A.entry_id, 'consumer', A.consumer, 'at', A.now_ms)
redis.call('HSET', job, 'status', 'failed', 'finished_at', A.now_ms, 'error_code', code,
  'error_message', message, 'phase', 'dead_lettered', 'dead_entry', dead)
emit(job, K.events, A.events_maxlen, job_id, 'failed')
return 'failed'
