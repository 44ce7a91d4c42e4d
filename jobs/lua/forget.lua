-- Erase a job (after cancel.lua): its hash, the Idempotency-Key record that points at it (so the
-- key can be used again), the result-cache entry that points at its result (so no later
-- submission is answered from a result that is being deleted) and its webhook outbox (the events
-- carry the job's prompt, photo digest and URL, and an erased job is announced to nobody). Shared
-- entries owned by another job are left alone. Returns the blob names the caller deletes:
-- {input_key, result_key}.
-- A withdrawn leader (cancel.lua) keeps its hash while its run goes on for its followers; only
-- its own photo and its outbox are erased (the run uses a follower's copy), and the hash goes when
-- the run ends.
local f = redis.call('HMGET', K.job, 'idem_key', 'cache_key', 'result_key', 'input_key', 'wh_queue',
  'wh_state', 'wh_due', 'withdrawn', 'withdrawn_input')
if f[1] and f[1] ~= '' and redis.call('HGET', f[1], 'job') == A.job_id then
  redis.call('DEL', f[1])
end
if f[5] and f[5] ~= '' then
  redis.call('DEL', f[5])
end
if f[6] and f[6] ~= '' then
  redis.call('DEL', f[6])
end
if f[7] and f[7] ~= '' then
  redis.call('ZREM', f[7], A.job_id)
end
if f[8] == '1' then
  redis.call('HSET', K.job, 'idem_key', '', 'withdrawn_input', '', 'wh_events', '')
  return {f[9] or '', ''}
end
if f[2] and f[2] ~= '' and f[3] and f[3] ~= '' and redis.call('GET', f[2]) == f[3] then
  redis.call('DEL', f[2])
end
redis.call('DEL', K.job)
return {f[4] or '', f[3] or ''}
