-- Take over the pending entries of a consumer whose liveness key has expired (it died, or froze for
-- longer than its heartbeat timeout), whatever their idle time: at most `count`, oldest first, read
-- from that consumer's own PEL (XPENDING with a consumer costs O(count), however long the group's
-- PEL). The check and the claims are one step, so a consumer whose key exists again (alive, or back
-- from a freeze) keeps its entries. Each claim counts a delivery as reclaim.lua does; the new
-- owner's claim (claim.lua) then bumps the job's attempt, which fences the old owner's writes.
-- Entries deleted under the PEL are only reported (lost_entry.lua ends their jobs and acks them).
-- A consumer left owning nothing leaves the group and the heartbeat set, as reap_consumer.lua does.
-- Returns {verdict, {{id, {field, value, ...}, deliveries}, ...}, {deleted_id, ...}}; verdict is
-- 'alive' (nothing touched), 'owns_more' or 'removed'.
-- KEYS: stream, alive (the owner's), consumers   ARGV: group, consumer (taking over), owner, count
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'alive', {}, {}}
end
local claimed, deleted = {}, {}
for _, row in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', ARGV[4], ARGV[3])) do
  local id = row[1]
  local entry = redis.call('XRANGE', KEYS[1], id, id)
  if #entry == 0 then
    table.insert(deleted, id)
  else
    local deliveries = tonumber(row[4]) + 1
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'RETRYCOUNT', deliveries, 'JUSTID')
    table.insert(claimed, {id, entry[1][2], deliveries})
  end
end
if #redis.call('XPENDING', KEYS[1], ARGV[1], '-', '+', 1, ARGV[3]) > 0 then
  return {'owns_more', claimed, deleted}
end
redis.call('XGROUP', 'DELCONSUMER', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZREM', KEYS[3], ARGV[3])
return {'removed', claimed, deleted}
