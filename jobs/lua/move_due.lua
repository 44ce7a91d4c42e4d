-- Put jobs whose retry time has come back on the jobs stream. Safe to run in every consumer at
-- once: a job leaves the delayed ZSET in the same step that queues it, so it moves exactly once.
-- Jobs that were cancelled, erased or finished meanwhile are just dropped from the ZSET.
-- KEYS: delayed, stream, events   ARGV: now_ms, limit, events_maxlen, job_key_prefix
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[2])
local moved = 0
for _, job_id in ipairs(due) do
  redis.call('ZREM', KEYS[1], job_id)
  local job = ARGV[4] .. job_id
  local status = redis.call('HGET', job, 'status')
  if status and not is_terminal(status) then
    local entry = redis.call('XADD', KEYS[2], '*', 'job', job_id)
    redis.call('HSET', job, 'status', 'queued', 'entry_id', entry, 'phase', 'queued',
      'resume_at', '0')
    emit(job, KEYS[3], ARGV[3], job_id, 'queued')
    moved = moved + 1
  end
end
return moved
