-- Renew this consumer's lease on its in-flight entries (its liveness key is heartbeat.lua's).
-- Only entries it still owns are renewed: XCLAIM <id> 0 JUSTID resets their idle time without
-- counting a delivery. The ids it no longer owns are returned: another consumer took them over
-- (or they were acknowledged), so their calls should stop.
-- KEYS: stream   ARGV: group, consumer, entry_id, ...
local lost = {}
for i = 3, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #pending == 1 and pending[1][2] == ARGV[2] then
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'JUSTID')
  else
    table.insert(lost, ARGV[i])
  end
end
return lost
