-- Erase a job (after cancel.lua): its hash, the Idempotency-Key record that points at it (so the
-- key can be used again) and the result-cache entry that points at its result (so no later
-- submission is answered from a result that is being deleted). Shared entries owned by another
-- job are left alone. Returns the blob names the caller deletes: {input_key, result_key}.
-- A withdrawn leader (cancel.lua) keeps its hash while its run goes on for its followers; only
-- its own photo is erased (the run uses a follower's copy), and the hash goes when the run ends.
-- KEYS: job   ARGV: job_id
local f = redis.call('HMGET', KEYS[1], 'idem_key', 'cache_key', 'result_key', 'input_key',
  'withdrawn', 'withdrawn_input')
if f[1] and f[1] ~= '' and redis.call('HGET', f[1], 'job') == ARGV[1] then
  redis.call('DEL', f[1])
end
if f[5] == '1' then
  redis.call('HSET', KEYS[1], 'idem_key', '', 'withdrawn_input', '')
  return {f[6] or '', ''}
end
if f[2] and f[2] ~= '' and f[3] and f[3] ~= '' and redis.call('GET', f[2]) == f[3] then
  redis.call('DEL', f[2])
end
redis.call('DEL', KEYS[1])
return {f[4] or '', f[3] or ''}
