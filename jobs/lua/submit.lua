-- Create a submitted job, its Idempotency-Key record and (unless answered from the result cache)
-- its stream entry, all in one step: two requests racing with the same key make one job.
-- KEYS: job, stream, events, idem
-- ARGV: job_id, job_ttl_s, events_maxlen, idem_ttl_s (0: no key), fingerprint, mode (queue|cached),
--       accepted_body (the 202 body, replayed verbatim), field, value, ...
-- Returns {'created', job_id}, {'replay', prior_job_id, same_fingerprint (1|0), prior_body}
-- or {'exists', job_id} when the id is taken (never with 128 random bits, but never silently).
if ARGV[4] ~= '0' then
  local prior = redis.call('HMGET', KEYS[4], 'job', 'fp', 'body')
  if prior[1] then
    return {'replay', prior[1], prior[2] == ARGV[5] and 1 or 0, prior[3] or ''}
  end
end
if redis.call('EXISTS', KEYS[1]) == 1 then
  return {'exists', ARGV[1]}
end
hset_pairs(KEYS[1], 8)
local status = 'queued'
if ARGV[6] == 'cached' then
  status = 'succeeded'
  redis.call('HSET', KEYS[1], 'status', status)
else
  redis.call('HSET', KEYS[1], 'status', status)
  local entry = redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
  redis.call('HSET', KEYS[1], 'entry_id', entry)
end
redis.call('EXPIRE', KEYS[1], ARGV[2])
if ARGV[4] ~= '0' then
  redis.call('HSET', KEYS[4], 'job', ARGV[1], 'fp', ARGV[5], 'body', ARGV[7])
  redis.call('EXPIRE', KEYS[4], ARGV[4])
end
emit(KEYS[1], KEYS[3], ARGV[3], ARGV[1], status)
return {'created', ARGV[1]}
