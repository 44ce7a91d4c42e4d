-- Shared by every script (prepended by jobs/scripts.py).
local function is_terminal(status)
  return status == 'succeeded' or status == 'failed' or status == 'cancelled'
end

-- A run's stream entry is done with: acknowledged, deleted, and dropped from the entries index.
local function drop_entry(stream, group, entry_id, entries)
  redis.call('XACK', stream, group, entry_id)
  redis.call('XDEL', stream, entry_id)
  redis.call('HDEL', entries, entry_id)
end

-- The one fence of every script that writes a running job (update, finish, retry, dead_letter):
-- the caller must present the fence of the job's current claim (claim.lua sets it to
-- attempt:nonce; '' for a job never claimed). `status` and `job_fence` are the job's fields (nil
-- for a job that is gone). A job that is gone fences nobody when `gone_is_free` (finish.lua: the
-- entry of an erased job is still acknowledged); otherwise it counts as having no fence, so only a
-- caller that never claimed it ('') passes. Returns true when the caller must stop ('fenced').
local function fenced(status, job_fence, fence, gone_is_free)
  if not status and gone_is_free then
    return false
  end
  return (job_fence or '') ~= fence
end

-- Bump the job's version and announce it on the events stream, so SSE viewers see it at once;
-- subscribed jobs also get the change recorded in their webhook outbox.
local function announce(job_key, events_key, maxlen, job_id, status)
  local version = redis.call('HINCRBY', job_key, 'version', 1)
  redis.call('XADD', events_key, 'MAXLEN', '~', maxlen, '*', 'job', job_id, 'v', version, 's', status)
  webhook_capture(job_key, job_id, version, status)  -- webhook_capture.lua, put before this file
  return version
end

-- Merged jobs (ingest/submit.py): a follower shares its leader's Space call. It has no stream entry
-- and no consumer ever writes it: every change of the leader is copied to its followers here, in
-- the script that made the change, so a follower's viewers see the run as the leader's do.
local RUN_FIELDS = {'attempt', 'failures', 'phase', 'progress', 'queue_rank', 'queue_size',
  'eta_seconds', 'resume_at', 'started_at', 'finished_at', 'error_code', 'error_message',
  'token_alias'}

-- finish.lua: follower id -> the name of its own copy of the result, made by the consumer.
local follower_results = {}

-- The hash key of another job: same prefix as this one's.
local function job_key_of(job_key, job_id, other_id)
  return string.sub(job_key, 1, #job_key - #job_id) .. other_id
end

local function copy_run(from_key, to_key)
  local values = redis.call('HMGET', from_key, unpack(RUN_FIELDS))
  local pairs_ = {}
  for i, name in ipairs(RUN_FIELDS) do
    if values[i] then
      table.insert(pairs_, name)
      table.insert(pairs_, values[i])
    end
  end
  if #pairs_ > 0 then
    redis.call('HSET', to_key, unpack(pairs_))
  end
end

-- Give each live follower the leader's new state; a terminal state ends the group: succeeded
-- with its own copy of the result, or the leader's failure as its own. A withdrawn leader (erased
-- by its owner while followers still wanted its run: cancel.lua) is deleted once it is over.
local function settle_group(job_key, events_key, maxlen, job_id, status)
  local group = redis.call('HMGET', job_key, 'followers_key', 'inflight_key', 'withdrawn', 'result_type')
  local terminal = is_terminal(status)
  if group[1] and group[1] ~= '' then
    for _, follower in ipairs(redis.call('SMEMBERS', group[1])) do
      local key = job_key_of(job_key, job_id, follower)
      local own = redis.call('HGET', key, 'status')
      if not own or is_terminal(own) then
        redis.call('SREM', group[1], follower)
      else
        copy_run(job_key, key)
        local fields = {'status', status}
        if status == 'succeeded' then
          local result = follower_results[follower]
          if result then
            fields = {'status', status, 'result_key', result, 'result_type', group[4] or '',
              'progress', '1', 'phase', 'done'}
          else  -- finish.lua refuses to succeed before every follower has a copy: never here
            fields = {'status', 'failed', 'error_code', 'result_lost', 'error_message',
              'The picture was made but not copied for this job; submit it again.'}
          end
        end
        redis.call('HSET', key, unpack(fields))
        announce(key, events_key, maxlen, follower, fields[2])
      end
    end
    if terminal then
      redis.call('DEL', group[1])
      redis.call('HSET', job_key, 'followers_key', '')
    end
  end
  if terminal then
    if group[2] and group[2] ~= '' and redis.call('GET', group[2]) == job_id then
      redis.call('DEL', group[2])
    end
    if group[3] == '1' then
      redis.call('DEL', job_key)
    end
  end
end

-- A job's state changed: announce it, and carry it over to the jobs merged into this one.
local function emit(job_key, events_key, maxlen, job_id, status)
  local version = announce(job_key, events_key, maxlen, job_id, status)
  settle_group(job_key, events_key, maxlen, job_id, status)
  return version
end

-- HSET of a declared tail of field/value pairs (A.fields); nothing when it is empty.
local function hset_fields(job_key, pairs)
  if #pairs >= 2 then
    redis.call('HSET', job_key, unpack(pairs))
  end
end
