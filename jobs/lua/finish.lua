-- End a job's run: the terminal status, its fields and the XACK + XDEL of the entry in one step.
-- Fenced like update.lua (a job that exists but was never claimed here, which a fail-over can
-- leave behind, refuses it too). A job cancelled or erased meanwhile still has its entry acknowledged.
-- With `result_data` (blobs in Redis), the result blob is written here too, in the same step.
-- On success, a job with a 'cache_key' field (set at submit) records its result there, so the
-- same photo with the same parameters can reuse it without a Space call.
-- Merged jobs (ingest/submit.py): success needs a copy of the result for every live follower, named
-- in `copies` ("follower=blob,..."); without one for each, nothing is written and the followers
-- still to be served are returned: {'copies', follower, ...}. A withdrawn job is deleted once its
-- followers are settled, and 'withdrawn' is returned instead of 'ok'.
local state = redis.call('HMGET', K.job, 'fence', 'status', 'followers_key', 'withdrawn')
if fenced(state[2], state[1], A.fence, true) then
  return 'fenced'
end
if A.status == 'succeeded' and state[2] and not is_terminal(state[2]) and state[3] and state[3] ~= '' then
  for follower, blob in string.gmatch(A.copies, '([^,=]+)=([^,]+)') do
    follower_results[follower] = blob
  end
  local missing = {}
  for _, follower in ipairs(redis.call('SMEMBERS', state[3])) do
    if not follower_results[follower] then
      local own = redis.call('HGET', job_key_of(K.job, A.job_id, follower), 'status')
      if own and not is_terminal(own) then
        table.insert(missing, follower)
      end
    end
  end
  if #missing > 0 then
    return {'copies', unpack(missing)}
  end
end
drop_entry(K.stream, A.group, A.entry_id, K.entries)
if not state[2] then
  return 'missing'
end
if is_terminal(state[2]) then
  return state[2]
end
if A.result_data ~= '' and state[4] ~= '1' then
  -- The result itself, stored only if the job is still ours to finish (a fenced run stores nothing).
  redis.call('SET', K.result, A.result_data, 'EX', A.result_ttl_s)
end
hset_fields(K.job, A.fields)
redis.call('HSET', K.job, 'status', A.status, 'finished_at', A.now_ms)
if A.status == 'succeeded' and state[4] ~= '1' then
  local fields = redis.call('HMGET', K.job, 'cache_key', 'result_key')
  if fields[1] and fields[1] ~= '' and fields[2] then
    redis.call('SET', fields[1], fields[2], 'EX', A.result_ttl_s)
  end
end
emit(K.job, K.events, A.events_maxlen, A.job_id, A.status)
if state[4] == '1' then
  return 'withdrawn'
end
return 'ok'
