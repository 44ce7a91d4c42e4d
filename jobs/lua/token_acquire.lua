-- Pick the HF token for one Space call and take a slot on it, atomically across all consumers.
-- Among the caller's tokens that are not cooling down and have a free slot: the fewest calls in
-- flight, then the least recently used. Leases that expired (their consumer died) are dropped
-- first, so a crashed consumer's slot frees itself.
-- KEYS: space, then per token: token hash, token leases
-- ARGV: now_ms, lease_ms, call_id, max_in_flight, then per token: alias, excluded ('1' = skip:
--       it refused this call for quota a moment ago)
-- Returns {'ok', alias} | {'busy', 0} (every usable token is full) | {'cooling', resume_at_ms}
--         | {'paused', until_ms} (the shared circuit breaker is open)
local now = tonumber(ARGV[1])
local paused = tonumber(redis.call('HGET', KEYS[1], 'breaker_open_until') or '0') or 0
if paused > now then
  return {'paused', paused}
end
local max_in_flight = tonumber(ARGV[4])
local best, best_in_flight, best_used
local busy = false
local resume_at
for i = 1, (#KEYS - 1) / 2 do
  local hash, leases = KEYS[2 * i], KEYS[2 * i + 1]
  local alias, excluded = ARGV[3 + 2 * i], ARGV[4 + 2 * i] == '1'
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
  redis.call('ZADD', KEYS[2 * best + 1], now + tonumber(ARGV[2]), ARGV[3])
  redis.call('HSET', KEYS[2 * best], 'last_used', now)
  redis.call('HINCRBY', KEYS[2 * best], 'calls', 1)
  return {'ok', ARGV[3 + 2 * best]}
end
if busy then
  return {'busy', 0}
end
return {'cooling', resume_at or now}
