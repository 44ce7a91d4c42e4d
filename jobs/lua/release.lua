-- Hand entries this consumer still owns back for immediate reclaim (graceful shutdown, or a
-- fresh start under a name whose previous process died): they stay in its PEL but look idle for
-- longer than any lease, so every reclaimer takes them on its next pass. The delivery spent here
-- is not counted, so shutdowns never push a job towards the dead letters.
local released = 0
for _, entry_id in ipairs(A.entry_ids) do
  local pending = redis.call('XPENDING', K.stream, A.group, entry_id, entry_id, 1)
  if #pending == 1 and pending[1][2] == A.consumer then
    local deliveries = math.max(tonumber(pending[1][4]) - 1, 0)
    redis.call('XCLAIM', K.stream, A.group, A.consumer, 0, entry_id, 'IDLE', A.idle_ms,
      'RETRYCOUNT', deliveries, 'JUSTID')
    released = released + 1
  end
end
return released
