-- Pick the HF token for one Space call and take a slot on it, atomically across all consumers.
-- Among the caller's tokens that are not cooling down and have a free slot: the fewest calls in
-- flight, then the least recently used. Leases that expired (their consumer died) are dropped
-- first, so a crashed consumer's slot frees itself.
-- Returns {'ok', alias} | {'busy', 0} (every usable token is full) | {'cooling', resume_at_ms}
--         | {'paused', until_ms} (the shared circuit breaker is open)
local now = tonumber(A.now_ms)
local paused = tonumber(redis.call('HGET', K.space, 'breaker_open_until') or '0') or 0
if paused > now then
  return {'paused', paused}
end
local max_in_flight = tonumber(A.max_in_flight)
local best, best_in_flight, best_used
local busy = false
local resume_at
for i = 1, #K.tokens / 2 do
  local hash, leases = K.tokens[2 * i - 1], K.tokens[2 * i]
  local alias, excluded = A.tokens[2 * i - 1], A.tokens[2 * i] == '1'
  redis.call('ZREMRANGEBYSCORE', leases, '-inf', now)
  local f = redis.call('HMGET', hash, 'cooldown_until', 'last_used')
  local cooldown = tonumber(f[1] or '0') or 0
  if cooldown > now or excluded then
    local back = math.max(cooldown, now)
    if resume_at == nil or back < resume_at then
      resume_at = back
    end
  else
    local in_flight = redis.call('ZCARD', leases)
    if in_flight < max_in_flight then
      local used = tonumber(f[2] or '0') or 0
      if best == nil or in_flight < best_in_flight or (in_flight == best_in_flight and used < best_used) then
        best, best_in_flight, best_used = i, in_flight, used
      end
    else
      busy = true
    end
  end
end
if best then
  redis.call('ZADD', K.tokens[2 * best], now + tonumber(A.lease_ms), A.call_id)
  redis.call('HSET', K.tokens[2 * best - 1], 'last_used', now)
  redis.call('HINCRBY', K.tokens[2 * best - 1], 'calls', 1)
  return {'ok', A.tokens[2 * best - 1]}
end
if busy then
  return {'busy', 0}
end
return {'cooling', resume_at or now}
