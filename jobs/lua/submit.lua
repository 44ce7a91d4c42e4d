-- Create a submitted job, its Idempotency-Key record and (unless answered from the result cache
-- or merged into an identical job in flight) its stream entry, all in one step: two requests
-- racing with the same key make one job, two identical submissions racing make one Space call.
-- Returns {'created', job_id, how} with how 'queued', 'merged' (a follower of the job in flight)
-- or 'cached'; {'replay', prior_job_id, same_fingerprint (1|0), prior_body}; or {'exists', job_id}
-- when the id is taken (never with 128 random bits, but never silently).
if A.idem_ttl_s ~= '0' then
  local prior = redis.call('HMGET', K.idem, 'job', 'fp', 'body')
  if prior[1] then
    return {'replay', prior[1], prior[2] == A.fingerprint and 1 or 0, prior[3] or ''}
  end
end
if redis.call('EXISTS', K.job) == 1 then
  return {'exists', A.job_id}
end
hset_fields(K.job, A.fields)
local status, how = 'queued', 'queued'
if A.mode == 'cached' then
  status, how = 'succeeded', 'cached'
  redis.call('HSET', K.job, 'status', status)
else
  local leader = A.merge == '1' and redis.call('GET', K.inflight)
  local leader_key = leader and job_key_of(K.job, A.job_id, leader)
  local leader_status = leader_key and redis.call('HGET', leader_key, 'status')
  if leader_status and not is_terminal(leader_status) then
    -- A follower: no stream entry; it starts where the leader is, and follows from here on.
    local followers = A.followers_prefix .. leader
    redis.call('SADD', followers, A.job_id)
    redis.call('EXPIRE', followers, A.job_ttl_s)
    redis.call('HSET', leader_key, 'followers_key', followers)
    copy_run(leader_key, K.job)
    status, how = leader_status, 'merged'
    redis.call('HSET', K.job, 'status', status, 'leader', leader)
  else
    redis.call('HSET', K.job, 'status', status)
    local entry = redis.call('XADD', K.stream, '*', 'job', A.job_id)
    redis.call('HSET', K.job, 'entry_id', entry)
    if A.merge == '1' then
      redis.call('SET', K.inflight, A.job_id, 'EX', A.job_ttl_s)
      redis.call('HSET', K.job, 'inflight_key', K.inflight)
    end
  end
end
redis.call('EXPIRE', K.job, A.job_ttl_s)
if A.idem_ttl_s ~= '0' then
  redis.call('HSET', K.idem, 'job', A.job_id, 'fp', A.fingerprint, 'body', A.accepted_body)
  redis.call('EXPIRE', K.idem, A.idem_ttl_s)
end
emit(K.job, K.events, A.events_maxlen, A.job_id, status)
return {'created', A.job_id, how}
