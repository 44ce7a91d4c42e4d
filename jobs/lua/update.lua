-- A fenced progress/status write: only the holder of the current claim (its fence, claim.lua) may
-- write, and never over a terminal state. Returns 'ok', 'missing', 'fenced' or the terminal status.
local state = redis.call('HMGET', K.job, 'fence', 'status')
if not state[2] then
  return 'missing'
end
if fenced(state[2], state[1], A.fence) then
  return 'fenced'
end
if is_terminal(state[2]) then
  return state[2]
end
hset_fields(K.job, A.fields)
redis.call('HSET', K.job, 'status', A.status)
emit(K.job, K.events, A.events_maxlen, A.job_id, A.status)
return 'ok'
