-- A consumer's heartbeat: refresh its liveness key (value: the process's instance id, TTL: the
-- heartbeat timeout) and record in the heartbeat set when that key will expire, by Redis's own
-- clock, so reclaimers find dead consumers with one range query (dead_consumers.lua). The key is
-- the authority, the set only an index: nothing compares the clocks of hosts.
-- A key held by another instance means another process took this name while this one was frozen
-- past its timeout: it is left alone and 0 returned (the caller must stop); else 1.
-- Out of memory (maxmemory, noeviction) Redis refuses SET and ZADD but not PEXPIRE: a live
-- consumer keeps its key, so it is not declared dead for Redis's lack of memory; a stale index
-- entry costs a scan one look at the key.
-- KEYS: alive, consumers   ARGV: consumer, instance, timeout_ms
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[2] then
  return 0
end
if holder then
  redis.call('PEXPIRE', KEYS[1], ARGV[3])
else
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
end
local now = redis.call('TIME')
local expires_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(ARGV[3])
redis.pcall('ZADD', KEYS[2], expires_ms, ARGV[1])
return 1
