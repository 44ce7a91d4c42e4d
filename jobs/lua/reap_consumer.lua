-- Remove a consumer that is gone and owns nothing. The check and the delete are one step: a
-- consumer that still owns pending entries is never deleted (DELCONSUMER would make them
-- unclaimable), nor one whose liveness key exists.
-- KEYS: stream, alive, consumers   ARGV: group, consumer
if redis.call('EXISTS', KEYS[2]) == 1 then
  return 'alive'
end
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[2]) > 0 then
  return 'pending'
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[2])
redis.call('ZREM', KEYS[3], ARGV[2])
return 'deleted'
