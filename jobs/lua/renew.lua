-- Renew this consumer's lease on its in-flight entries (its liveness key is heartbeat.lua's).
-- Only entries it still owns are renewed: XCLAIM <id> 0 JUSTID resets their idle time without
-- counting a delivery. The ids it no longer owns are returned: another consumer took them over
-- (or they were acknowledged), so their calls should stop.
local lost = {}
for _, entry_id in ipairs(A.entry_ids) do
  local pending = redis.call('XPENDING', K.stream, A.group, entry_id, entry_id, 1)
  if #pending == 1 and pending[1][2] == A.consumer then
    redis.call('XCLAIM', K.stream, A.group, A.consumer, 0, entry_id, 'JUSTID')
  else
    table.insert(lost, entry_id)
  end
end
return lost
