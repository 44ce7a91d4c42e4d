-- End one Space call on a token: free its slot and record what happened, in one step.
-- outcome: success | failure | quota (a failure that also cools the token) | abandoned (no verdict)
-- GPU seconds are counted per UTC day: the amount the Space last said it requests per call
-- (gpu_request_s, from "(60s requested vs. 12s left)"), else the configured default.
local hash = K.token
local removed = redis.call('ZREM', K.leases, A.call_id)
local now, outcome = A.now_ms, A.outcome
if outcome == 'success' then
  redis.call('HINCRBY', hash, 'successes', 1)
elseif outcome == 'failure' or outcome == 'quota' then
  redis.call('HINCRBY', hash, 'failures', 1)
  redis.call('HSET', hash, 'last_error_code', A.error_code, 'last_error_at', now)
end
if outcome == 'quota' then
  redis.call('HINCRBY', hash, 'quota_errors', 1)
  local until_ms = tonumber(A.cooldown_until_ms)
  if until_ms > (tonumber(redis.call('HGET', hash, 'cooldown_until') or '0') or 0) then
    redis.call('HSET', hash, 'cooldown_until', until_ms)
  end
end
if tonumber(A.requested_s) > 0 then
  redis.call('HSET', hash, 'gpu_request_s', A.requested_s)
end
if A.charge_gpu == '1' then
  if redis.call('HGET', hash, 'gpu_day') ~= A.day then
    redis.call('HSET', hash, 'gpu_day', A.day, 'gpu_seconds', 0)
  end
  local per_call = tonumber(redis.call('HGET', hash, 'gpu_request_s') or '') or tonumber(A.default_gpu_s)
  redis.call('HINCRBYFLOAT', hash, 'gpu_seconds', per_call)
end
return removed
