-- Shared by every script (prepended by jobs/scripts.py).
local function is_terminal(status)
  return status == 'succeeded' or status == 'failed' or status == 'cancelled'
end

-- Bump the job's version and announce it on the events stream, so SSE viewers see it at once;
-- subscribed jobs also get the change recorded in their webhook outbox.
local function emit(job_key, events_key, maxlen, job_id, status)
  local version = redis.call('HINCRBY', job_key, 'version', 1)
  redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, '*', 'job', job_id, 'v', version, 's', status)
  webhook_capture(job_key, job_id, version, status)  -- webhook_capture.lua, put before this file
  return version
end

-- HSET from ARGV[first..] as field/value pairs.
local function hset_pairs(job_key, first)
  if #ARGV >= first + 1 then
    redis.call('HSET', job_key, unpack(ARGV, first))
  end
end
