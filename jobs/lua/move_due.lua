-- Put jobs whose retry time has come back on the jobs stream. Safe to run in every consumer at
-- once: a job leaves the delayed ZSET in the same step that queues it, so it moves exactly once.
-- Jobs that were cancelled, erased or finished meanwhile are just dropped from the ZSET.
local due = redis.call('ZRANGEBYSCORE', K.delayed, '-inf', A.now_ms, 'LIMIT', 0, A.limit)
local moved = 0
for _, job_id in ipairs(due) do
  redis.call('ZREM', K.delayed, job_id)
  local job = A.job_key_prefix .. job_id
  local status = redis.call('HGET', job, 'status')
  if status and not is_terminal(status) then
    local entry = redis.call('XADD', K.stream, '*', 'job', job_id)
    redis.call('HSET', job, 'status', 'queued', 'entry_id', entry, 'phase', 'queued',
      'resume_at', '0')
    emit(job, K.events, A.events_maxlen, job_id, 'queued')
    moved = moved + 1
  end
end
return moved
