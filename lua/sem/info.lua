-- SEM.INFO key: limit, used, holders, waiters (queue entries whose lease
-- has not run out), fence (the last issued on this semaphore, 0 once it was
-- forgotten); all 0 when nobody holds or waits.
local now = now_ms()
settle(now)
tidy(now)
local waiters = 0
for _, tok in ipairs(redis.call('ZRANGE', Q, 0, -1)) do
  local lease = waiter_info(W, tok)
  if lease and lease > now then waiters = waiters + 1 end
end
local v = redis.call('HMGET', S, 'limit', 'fence')
return {
  'limit', tonumber(v[1]) or 0,
  'used', used(),
  'holders', redis.call('ZCARD', E),
  'waiters', waiters,
  'fence', tonumber(v[2]) or 0,
}
