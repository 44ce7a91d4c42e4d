-- Consumers whose liveness key has expired by now, judged by Redis's own clock against the expiry
-- times heartbeat.lua records: candidates for takeover.lua, which checks the key itself. One range
-- query on the heartbeat set, so a scan costs O(log consumers) while everyone is alive.
-- At most `limit` names, the longest dead first.
local now = redis.call('TIME')
local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
return redis.call('ZRANGEBYSCORE', K.consumers, '-inf', now_ms, 'LIMIT', 0, A.limit)
