-- What became of a job's head webhook event, from the dispatcher holding the job's lease.
-- verdict: 'delivered' (2xx), 'given_up' (retried for the whole window, or no signing secret) and
--   'superseded' (a progress event overtaken by a newer event, dropped unsent): the head leaves;
--   'gone' (410 Gone): the receiver wants nothing more from this job: the whole outbox goes;
--   'failed': the head stays and is tried again at retry_at; 'deferred': not attempted (progress
--   throttle), looked at again at retry_at, or sooner when a newer event arrives (capture).
-- If the head changed meanwhile (a newer progress snapshot replaced it while in flight), nothing
-- leaves and the new head goes next. Then the job is scheduled for its next head (a progress event
-- no sooner than progress_interval after the last one delivered) or leaves the due set. The job
-- hash gets the outcome without a version bump: bookkeeping is not a state change (no new event).
-- KEYS: due, queue, state, job
-- ARGV: job_id, token, item_id, verdict, now_ms, retry_at_ms, progress_interval_ms, attempted (1|0),
--       event_type, http_status, error
-- Returns {'fenced', 0} when another dispatcher holds the job now, else {outcome, events queued}.
if redis.call('HGET', KEYS[3], 'lease') ~= ARGV[2] then
  return {'fenced', 0}
end
redis.call('HDEL', KEYS[3], 'lease', 'deferred')
local now = tonumber(ARGV[5])
local verdict = ARGV[4]
local outcome = verdict
local head = redis.call('LINDEX', KEYS[2], 0)
local delivered_progress = verdict == 'delivered' and ARGV[9] == 'progress'
if not head or cjson.decode(head).id ~= ARGV[3] then
  if verdict ~= 'delivered' then
    outcome = 'replaced'
  end
  verdict = 'next'
  redis.call('HSET', KEYS[3], 'attempts', 0, 'first_at', 0)
elseif verdict == 'delivered' or verdict == 'given_up' or verdict == 'superseded' then
  redis.call('LPOP', KEYS[2])
  redis.call('HSET', KEYS[3], 'attempts', 0, 'first_at', 0)
elseif verdict == 'gone' then
  redis.call('DEL', KEYS[2])
  redis.call('HDEL', KEYS[4], 'wh_queue')  -- capture stops: nothing more for this job
elseif verdict == 'failed' then
  redis.call('HINCRBY', KEYS[3], 'attempts', 1)
  if tonumber(redis.call('HGET', KEYS[3], 'first_at') or '0') == 0 then
    redis.call('HSET', KEYS[3], 'first_at', now)
  end
end
if delivered_progress then
  redis.call('HSET', KEYS[3], 'progress_at', now)
end
local pending = redis.call('LLEN', KEYS[2])
if pending == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
elseif verdict == 'failed' or verdict == 'deferred' then
  redis.call('ZADD', KEYS[1], ARGV[6], ARGV[1])
  if verdict == 'deferred' then
    redis.call('HSET', KEYS[3], 'deferred', '1')  -- a started/completed event may end the wait
  end
else
  local at = now
  if cjson.decode(redis.call('LINDEX', KEYS[2], 0)).type == 'progress' then
    local next_progress = tonumber(redis.call('HGET', KEYS[3], 'progress_at') or '0') + tonumber(ARGV[7])
    if next_progress > at then
      at = next_progress
    end
  end
  redis.call('ZADD', KEYS[1], at, ARGV[1])
end
if redis.call('EXISTS', KEYS[4]) == 1 then
  redis.call('HSET', KEYS[4], 'wh_pending', pending)
  if ARGV[8] == '1' or outcome == 'given_up' or outcome == 'gone' then
    if ARGV[8] == '1' then
      redis.call('HINCRBY', KEYS[4], 'wh_attempts', 1)
    end
    if outcome == 'delivered' then
      redis.call('HINCRBY', KEYS[4], 'wh_delivered', 1)
    end
    redis.call('HSET', KEYS[4], 'wh_last_event', ARGV[9], 'wh_last_outcome', outcome,
      'wh_last_status', ARGV[10], 'wh_last_error', ARGV[11], 'wh_last_at', now)
  end
end
return {outcome, pending}
