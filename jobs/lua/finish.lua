-- End a job's run: the terminal status, its fields and the XACK + XDEL of the entry in one step.
-- Fenced like update.lua. A job cancelled meanwhile still has its entry acknowledged.
-- KEYS: job, events, stream   ARGV: job_id, attempt, events_maxlen, status, group, entry_id,
--                                   now_ms, field, value, ...
local state = redis.call('HMGET', KEYS[1], 'attempt', 'status')
if state[1] and state[1] ~= ARGV[2] then
  return 'fenced'
end
redis.call('XACK', KEYS[3], ARGV[5], ARGV[6])
redis.call('XDEL', KEYS[3], ARGV[6])
if not state[2] then
  return 'missing'
end
if is_terminal(state[2]) then
  return state[2]
end
hset_pairs(KEYS[1], 8)
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'finished_at', ARGV[7])
emit(KEYS[1], KEYS[2], ARGV[3], ARGV[1], ARGV[4])
return 'ok'
