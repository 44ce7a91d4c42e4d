-- Acknowledge and delete an entry that will not run (its job is gone, finished or superseded),
-- and drop it from the entry -> job index.
-- KEYS: stream, entries   ARGV: group, entry_id
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
redis.call('HDEL', KEYS[2], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
