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
if redis.call('EXISTS', K.alive) == 1 then
  return {'alive', {}, {}}
end
local claimed, deleted = {}, {}
for _, row in ipairs(redis.call('XPENDING', K.stream, A.group, '-', '+', A.max_entries, A.owner)) do
  local id = row[1]
  local entry = redis.call('XRANGE', K.stream, id, id)
  if #entry == 0 then
    table.insert(deleted, id)
  else
    local deliveries = tonumber(row[4]) + 1
    redis.call('XCLAIM', K.stream, A.group, A.consumer, 0, id, 'RETRYCOUNT', deliveries, 'JUSTID')
    table.insert(claimed, {id, entry[1][2], deliveries})
  end
end
if #redis.call('XPENDING', K.stream, A.group, '-', '+', 1, A.owner) > 0 then
  return {'owns_more', claimed, deleted}
end
redis.call('XGROUP', 'DELCONSUMER', K.stream, A.group, A.owner)
redis.call('ZREM', K.consumers, A.owner)
return {'removed', claimed, deleted}
