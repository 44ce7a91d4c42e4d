-- Create a submitted job, its Idempotency-Key record and (unless answered from the result cache
-- or merged into an identical job in flight) its stream entry, all in one step: two requests
-- racing with the same key make one job, two identical submissions racing make one Space call.
-- KEYS: job, stream, events, idem, inflight (the in-flight key of this photo + parameters)
-- ARGV: job_id, job_ttl_s, events_maxlen, idem_ttl_s (0: no key), fingerprint, mode (queue|cached),
--       accepted_body (the 202 body, replayed verbatim), merge (1|0), followers_prefix,
--       field, value, ...
-- Returns {'created', job_id, how} with how 'queued', 'merged' (a follower of the job in flight)
-- or 'cached'; {'replay', prior_job_id, same_fingerprint (1|0), prior_body}; or {'exists', job_id}
-- when the id is taken (never with 128 random bits, but never silently).
if ARGV[4] ~= '0' then
  local prior = redis.call('HMGET', KEYS[4], 'job', 'fp', 'body')
  if prior[1] then
    return {'replay', prior[1], prior[2] == ARGV[5] and 1 or 0, prior[3] or ''}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists', ARGV[1]}
end
hset_pairs(KEYS[1], 10)
local status, how = 'queued', 'queued'
if ARGV[6] == 'cached' then
  status, how = 'succeeded', 'cached'
  redis.call('HSET', KEYS[1], 'status', status)
else
  local leader = ARGV[8] == '1' and redis.call('GET', KEYS[5])
  local leader_key = leader and job_key_of(KEYS[1], ARGV[1], leader)
  local leader_status = leader_key and redis.call('HGET', leader_key, 'status')
  if leader_status and not is_terminal(leader_status) then
    -- A follower: no stream entry; it starts where the leader is, and follows from here on.
    local followers = ARGV[9] .. leader
    redis.call('SADD', followers, ARGV[1])
    redis.call('EXPIRE', followers, ARGV[2])
    redis.call('HSET', leader_key, 'followers_key', followers)
    copy_run(leader_key, KEYS[1])
    status, how = leader_status, 'merged'
    redis.call('HSET', KEYS[1], 'status', status, 'leader', leader)
  else
    redis.call('HSET', KEYS[1], 'status', status)
    local entry = redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
    redis.call('HSET', KEYS[1], 'entry_id', entry)
    if ARGV[8] == '1' then
      redis.call('SET', KEYS[5], ARGV[1], 'EX', ARGV[2])
      redis.call('HSET', KEYS[1], 'inflight_key', KEYS[5])
    end
  end
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if ARGV[4] ~= '0' then
  redis.call('HSET', KEYS[4], 'job', ARGV[1], 'fp', ARGV[5], 'body', ARGV[7])
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
emit(KEYS[1], KEYS[3], ARGV[3], ARGV[1], status)
return {'created', ARGV[1], how}
