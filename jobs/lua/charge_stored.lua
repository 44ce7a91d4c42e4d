-- Count an upload's stored bytes against its client's window (ingest/fair_share.py), or refuse it.
-- The window starts with the client's first upload and lasts window_ms; an upload that would take
-- the count past the limit is refused and not counted.
-- KEYS: counter   ARGV: bytes, limit, window_ms
-- Returns {1, bytes used, ms left in the window} or {0, bytes used, ms left in the window}.
local used = tonumber(redis.call('GET', KEYS[1]) or '0')
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  left = tonumber(ARGV[3])
end
if used + tonumber(ARGV[1]) > tonumber(ARGV[2]) then
  return {0, used, left}
end
used = redis.call('INCRBY', KEYS[1], ARGV[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
end
return {1, used, left}
