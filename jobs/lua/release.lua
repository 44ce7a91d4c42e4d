-- Hand entries this consumer still owns back for immediate reclaim (graceful shutdown, or a
-- fresh start under a name whose previous process died): they stay in its PEL but look idle for
-- longer than any lease, so every reclaimer takes them on its next pass. The delivery spent here
-- is not counted, so shutdowns never push a job towards the dead letters.
-- KEYS: stream   ARGV: group, consumer, idle_ms, entry_id, ...
local released = 0
for i = 4, #ARGV do
  local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[i], ARGV[i], 1)
  if #pending == 1 and pending[1][2] == ARGV[2] then
    local deliveries = math.max(tonumber(pending[1][4]) - 1, 0)
    redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[i], 'IDLE', ARGV[3],
      'RETRYCOUNT', deliveries, 'JUSTID')
    released = released + 1
  end
end
return released
