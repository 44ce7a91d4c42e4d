-- A fenced progress/status write: only the holder of the current claim (its fence, claim.lua) may
-- write, and never over a terminal state. Returns 'ok', 'missing', 'fenced' or the terminal status.
-- KEYS: job, events   ARGV: job_id, fence, events_maxlen, status, field, value, ...
local state = redis.call('HMGET', KEYS[1], 'fence', 'status')
if not state[2] then
  return 'missing'
end
if fenced(state[2], state[1], ARGV[2]) then
  return 'fenced'
end
if is_terminal(state[2]) then
  return state[2]
end
hset_pairs(KEYS[1], 5)
redis.call('HSET', KEYS[1], 'status', ARGV[4])
emit(KEYS[1], KEYS[2], ARGV[3], ARGV[1], ARGV[4])
return 'ok'
