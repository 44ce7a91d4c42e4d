-- End a job's run: the terminal status, its fields and the XACK + XDEL of the entry in one step.
-- Fenced like update.lua (a job that exists but was never claimed here, which a fail-over can
-- leave behind, refuses it too). A job cancelled or erased meanwhile still has its entry acknowledged.
-- On success, a job with a 'cache_key' field (set at submit) records its result there, so the
-- same photo with the same parameters can reuse it without a Space call.
-- KEYS: job, events, stream, entries   ARGV: job_id, fence, events_maxlen, status, group, entry_id,
--                                   now_ms, result_ttl_s, field, value, ...
local state = redis.call('HMGET', KEYS[1], 'fence', 'status')
if state[2] and (state[1] or '') ~= ARGV[2] then
  return 'fenced'
end
redis.call('XACK', KEYS[3], ARGV[5], ARGV[6])
redis.call('XDEL', KEYS[3], ARGV[6])
redis.call('HDEL', KEYS[4], ARGV[6])
if not state[2] then
  return 'missing'
end
if is_terminal(state[2]) then
  return state[2]
end
hset_pairs(KEYS[1], 9)
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'finished_at', ARGV[7])
if ARGV[4] == 'succeeded' then
  local fields = redis.call('HMGET', KEYS[1], 'cache_key', 'result_key')
  if fields[1] and fields[1] ~= '' and fields[2] then
    redis.call('SET', fields[1], fields[2], 'EX', ARGV[8])
  end
end
emit(KEYS[1], KEYS[2], ARGV[3], ARGV[1], ARGV[4])
return 'ok'
