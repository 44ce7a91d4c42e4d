-- Renew this consumer's lease on its in-flight entries, and its liveness key and heartbeat.
-- Only entries it still owns are renewed: XCLAIM <id> 0 JUSTID resets their idle time without
-- counting a delivery. The ids it no longer owns are returned: another consumer took them over
-- (or they were acknowledged), so their calls should stop.
-- KEYS: stream, alive, consumers
-- ARGV: group, consumer, alive_ttl_ms, now_ms, instance (the liveness key's value), entry_id, ...
redis.call('SET', KEYS[2], ARGV[5], 'PX', ARGV[3])
redis.call('ZADD', KEYS[3], ARGV[4], ARGV[2])
local lost = {}
for i = 6, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #pending == 1 and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
