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
-- Returns {'fenced', 0} when another dispatcher holds the job now, else {outcome, events queued}.
if redis.call('HGET', K.state, 'lease') ~= A.token then
  return {'fenced', 0}
end
redis.call('HDEL', K.state, 'lease', 'deferred')
local now = tonumber(A.now_ms)
local verdict = A.verdict
local outcome = verdict
local head = redis.call('LINDEX', K.queue, 0)
local delivered_progress = verdict == 'delivered' and A.event_type == 'progress'
if not head or cjson.decode(head).id ~= A.item_id then
  if verdict ~= 'delivered' then
    outcome = 'replaced'
  end
  verdict = 'next'
  redis.call('HSET', K.state, 'attempts', 0, 'first_at', 0)
elseif verdict == 'delivered' or verdict == 'given_up' or verdict == 'superseded' then
  redis.call('LPOP', K.queue)
  redis.call('HSET', K.state, 'attempts', 0, 'first_at', 0)
elseif verdict == 'gone' then
  redis.call('DEL', K.queue)
  redis.call('HDEL', K.job, 'wh_queue')  -- capture stops: nothing more for this job
elseif verdict == 'failed' then
  redis.call('HINCRBY', K.state, 'attempts', 1)
  if tonumber(redis.call('HGET', K.state, 'first_at') or '0') == 0 then
    redis.call('HSET', K.state, 'first_at', now)
  end
end
if delivered_progress then
  redis.call('HSET', K.state, 'progress_at', now)
end
local pending = redis.call('LLEN', K.queue)
if pending == 0 then
  redis.call('ZREM', K.due, A.job_id)
elseif verdict == 'failed' or verdict == 'deferred' then
  redis.call('ZADD', K.due, A.retry_at_ms, A.job_id)
  if verdict == 'deferred' then
    redis.call('HSET', K.state, 'deferred', '1')  -- a started/completed event may end the wait
  end
else
  local at = now
  if cjson.decode(redis.call('LINDEX', K.queue, 0)).type == 'progress' then
    local next_progress = tonumber(redis.call('HGET', K.state, 'progress_at') or '0')
      + tonumber(A.progress_interval_ms)
    if next_progress > at then
      at = next_progress
    end
  end
  redis.call('ZADD', K.due, at, A.job_id)
end
if redis.call('EXISTS', K.job) == 1 then
  redis.call('HSET', K.job, 'wh_pending', pending)
  if A.attempted == '1' or outcome == 'given_up' or outcome == 'gone' then
    if A.attempted == '1' then
      redis.call('HINCRBY', K.job, 'wh_attempts', 1)
    end
    if outcome == 'delivered' then
      redis.call('HINCRBY', K.job, 'wh_delivered', 1)
    end
    redis.call('HSET', K.job, 'wh_last_event', A.event_type, 'wh_last_outcome', outcome,
      'wh_last_status', A.http_status, 'wh_last_error', A.error, 'wh_last_at', now)
  end
end
return {outcome, pending}
