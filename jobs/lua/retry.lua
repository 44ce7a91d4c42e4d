-- Put a job back for later: its entry acknowledged and deleted, the job in the delayed ZSET until
-- due_ms, its status 'retrying' or 'waiting_for_quota' with the due time (resume_at) and the
-- error that caused it. Fenced by the claim's fence (claim.lua). count_failure '1' adds one to `failures` (quota
-- waits and a broken Space do not count). Returns 'ok', 'fenced', 'missing' or the terminal status.
-- KEYS: job, events, stream, entries, delayed
-- ARGV: job_id, fence, events_maxlen, group, entry_id, due_ms, status, phase, count_failure,
--       error_code, error_message
local state = redis.call('HMGET', KEYS[1], 'fence', 'status')
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
if ARGV[9] == '1' then
  redis.call('HINCRBY', KEYS[1], 'failures', 1)
end
redis.call('ZADD', KEYS[5], ARGV[6], ARGV[1])
redis.call('HSET', KEYS[1], 'status', ARGV[7], 'resume_at', ARGV[6], 'phase', ARGV[8],
  'error_code', ARGV[10], 'error_message', ARGV[11], 'progress', '0', 'queue_rank', '-1',
  'queue_size', '-1', 'eta_seconds', '-1')
emit(KEYS[1], KEYS[2], ARGV[3], ARGV[1], ARGV[7])
return 'ok'
