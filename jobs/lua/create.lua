-- Create a job and queue it: the job hash and its stream entry appear together or not at all.
-- KEYS: job, stream, events   ARGV: job_id, ttl_s, events_maxlen, field, value, ...
if redis.call('EXISTS', KEYS[1]) == 1 then
  return false
end
hset_pairs(KEYS[1], 4)
redis.call('HSET', KEYS[1], 'status', 'queued')
redis.call('EXPIRE', KEYS[1], ARGV[2])
local entry = redis.call('XADD', KEYS[2], '*', 'job', ARGV[1])
redis.call('HSET', KEYS[1], 'entry_id', entry)
emit(KEYS[1], KEYS[3], ARGV[3], ARGV[1], 'queued')
return entry
