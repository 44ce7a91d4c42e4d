-- Acknowledge and delete an entry that will not run (its job is gone, finished or superseded),
-- and drop it from the entry -> job index.
redis.call('XACK', K.stream, A.group, A.entry_id)
redis.call('HDEL', K.entries, A.entry_id)
return redis.call('XDEL', K.stream, A.entry_id)
