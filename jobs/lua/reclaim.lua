-- Take over entries idle for longer than the lease (their consumer died or stalled): one
-- XAUTOCLAIM pass of at most `count` entries. JUSTID plus an explicit delivery bump per entry
-- tells live entries from ghosts on every version: Redis 6.2 claims an entry deleted under the
-- PEL with no payload, Redis >= 7 drops it from the PEL and reports it in a third element.
-- Returns {next_cursor, {{id, {field, value, ...}, deliveries}, ...}, {deleted_id, ...}}.
local reply = redis.call('XAUTOCLAIM', K.stream, A.group, A.consumer, A.min_idle_ms, A.cursor,
  'COUNT', A.max_entries, 'JUSTID')
local claimed, deleted = {}, {}
for _, id in ipairs(reply[2]) do
  local entry = redis.call('XRANGE', K.stream, id, id)
  if #entry == 0 then
    table.insert(deleted, id)
  else
    local pending = redis.call('XPENDING', K.stream, A.group, id, id, 1)
    local deliveries = tonumber(pending[1][4]) + 1
    redis.call('XCLAIM', K.stream, A.group, A.consumer, 0, id, 'RETRYCOUNT', deliveries, 'JUSTID')
    table.insert(claimed, {id, entry[1][2], deliveries})
  end
end
for _, id in ipairs(reply[3] or {}) do
  table.insert(deleted, id)
end
return {reply[1], claimed, deleted}
