-- End a job's run: the terminal status, its fields and the XACK + XDEL of the entry in one step.
-- Fenced like update.lua (a job that exists but was never claimed here, which a fail-over can
-- leave behind, refuses it too). A job cancelled or erased meanwhile still has its entry acknowledged.
-- On success, a job with a 'cache_key' field (set at submit) records its result there, so the
-- same photo with the same parameters can reuse it without a Space call.
-- Merged jobs (ingest/submit.py): success needs a copy of the result for every live follower, named
-- in `copies` ("follower=blob,..."); without one for each, nothing is written and the followers
-- still to be served are returned: {'copies', follower, ...}. A withdrawn job is deleted once its
-- followers are settled, and 'withdrawn' is returned instead of 'ok'.
-- KEYS: job, events, stream, entries   ARGV: job_id, fence, events_maxlen, status, group, entry_id,
--                                   now_ms, result_ttl_s, copies, field, value, ...
local state = redis.call('HMGET', KEYS[1], 'fence', 'status', 'followers_key', 'withdrawn')
if fenced(state[2], state[1], ARGV[2], true) then
  return 'fenced'
end
if ARGV[4] == 'succeeded' and state[2] and not is_terminal(state[2]) and state[3] and state[3] ~= '' then
  for follower, blob in string.gmatch(ARGV[9], '([^,=]+)=([^,]+)') do
    follower_results[follower] = blob
  end
  local missing = {}
  for _, follower in ipairs(redis.call('SMEMBERS', state[3])) do
    if not follower_results[follower] then
      local own = redis.call('HGET', job_key_of(KEYS[1], ARGV[1], follower), 'status')
      if own and not is_terminal(own) then
        table.insert(missing, follower)
      end
    end
  end
  if #missing > 0 then
    return {'copies', unpack(missing)}
  end
end
drop_entry(KEYS[3], ARGV[5], ARGV[6], KEYS[4])
if not state[2] then
  return 'missing'
end
if is_terminal(state[2]) then
  return state[2]
end
hset_pairs(KEYS[1], 10)
redis.call('HSET', KEYS[1], 'status', ARGV[4], 'finished_at', ARGV[7])
if ARGV[4] == 'succeeded' and state[4] ~= '1' then
  local fields = redis.call('HMGET', KEYS[1], 'cache_key', 'result_key')
  if fields[1] and fields[1] ~= '' and fields[2] then
    redis.call('SET', fields[1], fields[2], 'EX', ARGV[8])
  end
end
emit(KEYS[1], KEYS[2], ARGV[3], ARGV[1], ARGV[4])
if state[4] == '1' then
  return 'withdrawn'
end
return 'ok'
