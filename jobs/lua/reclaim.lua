-- Take over entries idle for longer than the lease (their consumer died or stalled): one
-- XAUTOCLAIM pass of at most `count` entries. JUSTID plus an explicit delivery bump per entry
-- tells live entries from ghosts on every version: Redis 6.2 claims an entry deleted under the
-- PEL with no payload, Redis >= 7 drops it from the PEL and reports it in a third element.
-- Returns {next_cursor, {{id, {field, value, ...}, deliveries}, ...}, {deleted_id, ...}}.
-- KEYS: stream   ARGV: group, consumer, min_idle_ms, cursor, count
local reply = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4],
  'COUNT', ARGV[5], 'JUSTID')
local claimed, deleted = {}, {}
for _, id in ipairs(reply[2]) do
  local entry = redis.call('XRANGE', KEYS[1], id, id)
  if #entry == 0 then
    table.insert(deleted, id)
  else
    local pending = redis.call('XPENDING', KEYS[1], ARGV[1], id, id, 1)
    local deliveries = tonumber(pending[1][4]) + 1
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, id, 'RETRYCOUNT', deliveries, 'JUSTID')
    table.insert(claimed, {id, entry[1][2], deliveries})
  end
end
for _, id in ipairs(reply[3] or {}) do
  table.insert(deleted, id)
end
return {reply[1], claimed, deleted}
