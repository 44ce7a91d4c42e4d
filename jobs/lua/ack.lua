-- Acknowledge and delete an entry that will not run (its job is gone, finished or superseded).
-- KEYS: stream   ARGV: group, entry_id
redis.call('XACK', KEYS[1], ARGV[1], ARGV[2])
return redis.call('XDEL', KEYS[1], ARGV[2])
