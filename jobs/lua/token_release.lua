-- End one Space call on a token: free its slot and record what happened, in one step.
-- outcome: success | failure | quota (a failure that also cools the token) | abandoned (no verdict)
-- GPU seconds are counted per UTC day: the amount the Space last said it requests per call
-- (gpu_request_s, from "(60s requested vs. 12s left)"), else the configured default.
-- KEYS: token hash, token leases
-- ARGV: call_id, now_ms, outcome, error_code, cooldown_until_ms, requested_s (0 = unknown),
--       charge_gpu ('1'/'0'), default_gpu_s, day (YYYYMMDD)
local hash = KEYS[1]
local removed = redis.call('ZREM', KEYS[2], ARGV[1])
local now, outcome = ARGV[2], ARGV[3]
if outcome == 'success' then
  redis.call('HINCRBY', hash, 'successes', 1)
elseif outcome == 'failure' or outcome == 'quota' then
  redis.call('HINCRBY', hash, 'failures', 1)
  redis.call('HSET', hash, 'last_error_code', ARGV[4], 'last_error_at', now)
end
if outcome == 'quota' then
  redis.call('HINCRBY', hash, 'quota_errors', 1)
  local until_ms = tonumber(ARGV[5])
  if until_ms > (tonumber(redis.call('HGET', hash, 'cooldown_until') or '0') or 0) then
    redis.call('HSET', hash, 'cooldown_until', until_ms)
  end
end
if tonumber(ARGV[6]) > 0 then
  redis.call('HSET', hash, 'gpu_request_s', ARGV[6])
end
if ARGV[7] == '1' then
  if redis.call('HGET', hash, 'gpu_day') ~= ARGV[9] then
    redis.call('HSET', hash, 'gpu_day', ARGV[9], 'gpu_seconds', 0)
  end
  local per_call = tonumber(redis.call('HGET', hash, 'gpu_request_s') or '') or tonumber(ARGV[8])
  redis.call('HINCRBYFLOAT', hash, 'gpu_seconds', per_call)
end
return removed
