-- Count an upload's stored bytes against its client's window (ingest/fair_share.py), or refuse it.
-- The window starts with the client's first upload and lasts window_ms; an upload that would take
-- the count past the limit is refused and not counted.
-- Returns {1, bytes used, ms left in the window} or {0, bytes used, ms left in the window}.
local used = tonumber(redis.call('GET', K.counter) or '0')
local left = redis.call('PTTL', K.counter)
if left < 0 then
  left = tonumber(A.window_ms)
end
if used + tonumber(A.size) > tonumber(A.limit) then
  return {0, used, left}
end
used = redis.call('INCRBY', K.counter, A.size)
if redis.call('PTTL', K.counter) < 0 then
  redis.call('PEXPIRE', K.counter, A.window_ms)
end
return {1, used, left}
