-- Remove a consumer that is gone and owns nothing. The check and the delete are one step: a
-- consumer that still owns pending entries is never deleted (DELCONSUMER would make them
-- unclaimable), nor one whose liveness key exists.
if redis.call('EXISTS', K.alive) == 1 then
  return 'alive'
end
if #redis.call('XPENDING', K.stream, A.group, '-', '+', 1, A.consumer) > 0 then
  return 'pending'
end
redis.call('XGROUP', 'DELCONSUMER', K.stream, A.group, A.consumer)
redis.call('ZREM', K.consumers, A.consumer)
return 'deleted'
