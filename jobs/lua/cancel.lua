-- The user cancels a job. Not yet terminal: it becomes 'cancelled' (a running consumer notices
-- at its next fenced write); queued entries are skipped when claimed; delayed retries dropped.
-- Merged jobs (ingest/submit.py): a follower leaves its leader's group, and the leader's call goes
-- on. A leader that still has live followers is *withdrawn* instead: its owner sees it cancelled
-- (viewers and webhooks get 'cancelled', then it is gone), while its run goes on for the
-- followers, on a follower's copy of the photo; the run stops once no follower is left.
-- Returns 'ok', 'missing' or the terminal status the job already had.
local CANCELLED = {'status', 'cancelled', 'finished_at', A.now_ms, 'error_code', 'cancelled',
  'error_message', 'Cancelled by the user.'}

local function stop(job_key, job_id)
  redis.call('ZREM', K.delayed, job_id)
  redis.call('HSET', job_key, unpack(CANCELLED))
  emit(job_key, K.events, A.events_maxlen, job_id, 'cancelled')
end

-- The input_key of each live follower (members that ended meanwhile are dropped).
local function follower_inputs(job_key, job_id, followers)
  local inputs = {}
  if not followers or followers == '' then
    return inputs
  end
  for _, follower in ipairs(redis.call('SMEMBERS', followers)) do
    local f = redis.call('HMGET', job_key_of(job_key, job_id, follower), 'status', 'input_key')
    if f[1] and not is_terminal(f[1]) then
      table.insert(inputs, f[2] or '')
    else
      redis.call('SREM', followers, follower)
    end
  end
  return inputs
end

local state = redis.call('HMGET', K.job, 'status', 'leader', 'followers_key', 'withdrawn',
  'input_key', 'finished_at', 'error_code', 'error_message')
if not state[1] or state[4] == '1' then
  return 'missing'  -- a withdrawn job is already gone for its owner
end
if is_terminal(state[1]) then
  return state[1]
end

if state[2] and state[2] ~= '' then
  local leader_key = job_key_of(K.job, A.job_id, state[2])
  local leader = redis.call('HMGET', leader_key, 'followers_key', 'withdrawn', 'input_key')
  if leader[1] and leader[1] ~= '' then
    redis.call('SREM', leader[1], A.job_id)
  end
  if leader[2] == '1' then
    local others = follower_inputs(leader_key, state[2], leader[1])
    if #others == 0 then
      stop(leader_key, state[2])  -- nobody wants the withdrawn run any more
    elseif leader[3] == state[5] then
      redis.call('HSET', leader_key, 'input_key', others[1])  -- this photo is about to be erased
    end
  end
  stop(K.job, A.job_id)
  return 'ok'
end

local others = follower_inputs(K.job, A.job_id, state[3])
if #others == 0 then
  stop(K.job, A.job_id)
  return 'ok'
end
-- Withdraw: announce 'cancelled' to this job's viewers and webhook, then carry on unseen.
redis.call('HSET', K.job, unpack(CANCELLED))
announce(K.job, K.events, A.events_maxlen, A.job_id, 'cancelled')
redis.call('HSET', K.job, 'status', state[1], 'finished_at', state[6] or '0',
  'error_code', state[7] or '', 'error_message', state[8] or '',
  'withdrawn', '1', 'withdrawn_input', state[5] or '', 'input_key', others[1])
redis.call('HDEL', K.job, 'wh_queue')  -- its owner's webhook ends with that 'cancelled'
return 'ok'
