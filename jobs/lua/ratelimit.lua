-- One request against a client's token bucket (GCRA: a single "theoretical arrival time" per
-- client). Up to `capacity` requests at once, then one per `interval_ms`. Atomic, so every ingest
-- process shares the same count; the clock is the Redis server's, so processes need not agree on time.
-- A request may cost several tokens (a picture conversion costs more than a status read).
-- Returns {allowed (1|0), remaining, retry_after_ms}.
local interval = tonumber(A.interval_ms)
local capacity = tonumber(A.capacity)
local cost = tonumber(A.cost or '1')
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local tat = tonumber(redis.call('GET', K.bucket) or now)
if tat < now then
  tat = now
end
local new_tat = tat + interval * cost
local tolerance = interval * capacity
local allow_at = new_tat - tolerance
if now < allow_at then
  return {0, 0, allow_at - now}
end
redis.call('SET', K.bucket, new_tat, 'PX', new_tat - now)
return {1, math.floor((tolerance - (new_tat - now)) / interval), 0}
