-- A consumer's heartbeat: refresh its liveness key (value: the process's instance id, TTL: the
-- heartbeat timeout) and record in the heartbeat set when that key will expire, by Redis's own
-- clock, so reclaimers find dead consumers with one range query (dead_consumers.lua). The key is
-- the authority, the set only an index: nothing compares the clocks of hosts.
-- A key held by another instance means another process took this name while this one was frozen
-- past its timeout: it is left alone and 0 returned (the caller must stop); else 1.
-- Out of memory (maxmemory, noeviction) Redis refuses SET and ZADD but not PEXPIRE: a live
-- consumer keeps its key, so it is not declared dead for Redis's lack of memory; a stale index
-- entry costs a scan one look at the key.
local holder = redis.call('GET', K.alive)
if holder and holder ~= A.instance then
  return 0
end
if holder then
  redis.call('PEXPIRE', K.alive, A.timeout_ms)
else
  redis.call('SET', K.alive, A.instance, 'PX', A.timeout_ms)
end
local now = redis.call('TIME')
local expires_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000) + tonumber(A.timeout_ms)
redis.pcall('ZADD', K.consumers, expires_ms, A.consumer)
return 1
