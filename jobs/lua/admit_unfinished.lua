-- Admit one more unfinished job for a client (an API key or an address), or refuse
-- (ingest/fair_share.py). The client's set is
-- first pruned of jobs that finished, expired or were erased, and of reservations older than their
-- lease (a crashed ingest's); then a reservation is added if there is room. One script, so racing
-- submissions never exceed the limit together.
-- Returns {1, unfinished incl. this reservation} or {0, unfinished}.
local members = redis.call('ZRANGE', K.open, 0, -1, 'WITHSCORES')
local count = 0
for i = 1, #members, 2 do
  local member = members[i]
  local keep
  if string.sub(member, 1, 2) == 'r:' then
    keep = tonumber(members[i + 1]) + tonumber(A.reservation_ttl_ms) > tonumber(A.now_ms)
  else
    local job = redis.call('HMGET', A.job_key_prefix .. member, 'status', 'withdrawn')
    keep = job[1] and not is_terminal(job[1]) and job[2] ~= '1'  -- withdrawn: erased by its owner
  end
  if keep then
    count = count + 1
  else
    redis.call('ZREM', K.open, member)
  end
end
if count >= tonumber(A.limit) then
  return {0, count}
end
redis.call('ZADD', K.open, A.now_ms, A.reservation)
redis.call('EXPIRE', K.open, A.ttl_s)
return {1, count + 1}
