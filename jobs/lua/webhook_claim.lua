-- A dispatcher takes jobs whose webhook events are due (consumers/webhook_dispatch.py). Each taken
-- job's due time moves to now + lease, so if this dispatcher dies the job is due again then (the
-- event is sent again with the same webhook-id: at-least-once), and the lease token is recorded,
-- so only the latest holder's result counts. Jobs whose outbox is empty (drained, expired) leave.
-- Returns a flat list, 6 per job: job_id, head event (JSON), events queued, failed attempts of the
-- head, its first attempt (ms, 0 = none), when the last progress event was delivered (ms).
local ids = redis.call('ZRANGEBYSCORE', K.due, '-inf', A.now_ms, 'LIMIT', 0, tonumber(A.limit))
local out = {}
for _, job_id in ipairs(ids) do
  local queue = A.queue_prefix .. job_id
  local head = redis.call('LINDEX', queue, 0)
  if not head then
    redis.call('ZREM', K.due, job_id)
  else
    local state = A.state_prefix .. job_id
    redis.call('ZADD', K.due, tonumber(A.now_ms) + tonumber(A.lease_ms), job_id)
    redis.call('HSET', state, 'lease', A.token)
    redis.call('HDEL', state, 'deferred')  -- held now: captures must not make it due again
    local ttl = redis.call('PTTL', queue)
    if ttl > 0 then
      redis.call('PEXPIRE', state, ttl)
    end
    local s = redis.call('HMGET', state, 'attempts', 'first_at', 'progress_at')
    out[#out + 1] = job_id
    out[#out + 1] = head
    out[#out + 1] = redis.call('LLEN', queue)
    out[#out + 1] = s[1] or '0'
    out[#out + 1] = s[2] or '0'
    out[#out + 1] = s[3] or '0'
  end
end
return out
