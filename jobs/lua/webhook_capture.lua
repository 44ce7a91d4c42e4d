-- Webhook capture (jobs/webhooks.py). jobs/scripts.py puts this before prelude.lua in every
-- script, and prelude's emit() calls it after each state change, in the same script: an event is
-- recorded atomically with the change it announces, with the job hash as it is at that version.
-- A job without a subscription costs one HMGET.
-- Events: 'started' (first time running, once), 'progress' (any later non-final change),
-- 'completed' (a terminal status). Only the kinds the job asked for are queued. A progress
-- snapshot replaces a progress snapshot still waiting at the tail of the outbox (coalescing).
-- The job is then marked due (ZADD NX: a job waiting for a back-off keeps its time), except that
-- a job whose head is a progress event held back by the progress interval is due at once when a
-- started/completed event arrives (the dispatcher then drops that overtaken progress event).
-- After a 410 Gone the job has no 'wh_queue' any more, and nothing is captured.
local function webhook_capture(job_key, job_id, version, status)
  local sub = redis.call('HMGET', job_key, 'wh_events', 'wh_queue', 'wh_due', 'wh_started', 'wh_ttl',
    'wh_state')
  if not sub[1] or not sub[2] or not sub[3] then
    return
  end
  local kind
  if status == 'succeeded' or status == 'failed' or status == 'cancelled' then
    kind = 'completed'
  elseif status == 'running' and not sub[4] then
    kind = 'started'
    redis.call('HSET', job_key, 'wh_started', '1')
  elseif sub[4] then
    kind = 'progress'
  else
    return
  end
  if not string.find(sub[1], ',' .. kind .. ',', 1, true) then
    return
  end
  local t = redis.call('TIME')
  local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  local flat = redis.call('HGETALL', job_key)
  local snap = {}
  for i = 1, #flat, 2 do
    snap[flat[i]] = flat[i + 1]
  end
  local item = cjson.encode({id = 'msg_' .. job_id .. '_' .. version, job = job_id, type = kind,
    at = now, snap = snap})
  local queue = sub[2]
  local tail = kind == 'progress' and redis.call('LINDEX', queue, -1)
  if tail and cjson.decode(tail).type == 'progress' then
    redis.call('LSET', queue, -1, item)
  else
    redis.call('RPUSH', queue, item)
  end
  redis.call('EXPIRE', queue, tonumber(sub[5]) or 172800)
  redis.call('HSET', job_key, 'wh_pending', redis.call('LLEN', queue))
  if kind ~= 'progress' and sub[6] and redis.call('HGET', sub[6], 'deferred') then
    redis.call('HDEL', sub[6], 'deferred')
    redis.call('ZADD', sub[3], now, job_id)
  else
    redis.call('ZADD', sub[3], 'NX', now, job_id)
  end
end
