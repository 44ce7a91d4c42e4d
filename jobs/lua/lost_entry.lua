-- An entry deleted (trimmed) while still pending: its payload is gone, so the job it carried can
-- never run from it. The job ends 'failed' with the reason (and a dead-letter entry, so it can be
-- replayed), and the entry leaves the PEL (Redis 6.2 keeps such ghosts there) and the index.
-- Returns the job's fate: 'failed', 'unknown' (not in the index), 'missing', 'superseded' or
-- the terminal status it already had.
-- KEYS: stream, entries, events, dead   ARGV: group, entry_id, events_maxlen, now_ms,
--                                             job_key_prefix, dead_maxlen, consumer
local job_id = redis.call('HGET', KEYS[2], ARGV[2])
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
if not job_id then
  return 'unknown'
end
local job = ARGV[5] .. job_id
local state = redis.call('HMGET', job, 'status', 'entry_id', 'attempt', 'failures')
if not state[1] then
  return 'missing'
end
if is_terminal(state[1]) then
  return state[1]
end
if state[2] and state[2] ~= ARGV[2] then
  return 'superseded'
end
local code = 'entry_deleted'
local message = 'The queue entry of this job was deleted from the stream before the job '
  .. 'finished (trimmed by hand?); it can be replayed from the dead letters.'
local dead = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[6], '*', 'job', job_id,
  'reason', code, 'error_code', code, 'error_message', message, 'failures', state[4] or '0',
  'attempt', state[3] or '0', 'entry', ARGV[2], 'consumer', ARGV[7], 'at', ARGV[4])
redis.call('HSET', job, 'status', 'failed', 'finished_at', ARGV[4], 'error_code', code,
  'error_message', message, 'phase', 'dead_lettered', 'dead_entry', dead)
emit(job, KEYS[3], ARGV[3], job_id, 'failed')
return 'failed'
