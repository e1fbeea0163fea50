-- LOCK.INFO key: held, fence, pttl (-1 when free), waiters (queue entries
-- whose lease has not run out), meta (the holder's value; nil when free or
-- none: Lua's false is a null reply, where a nil would end the array).
local now = now_ms()
settle(now)
local htok, fence, exp = holder()
local waiters = 0
for _, tok in ipairs(redis.call('ZRANGE', Q, 0, -1)) do
  local lease = waiter_info(W, tok)
  if lease and lease > now then waiters = waiters + 1 end
end
if not htok then
  return {'held', 0, 'fence', 0, 'pttl', -1, 'waiters', waiters, 'meta', false}
end
local meta = redis.call('HGET', H, 'meta')
return {'held', 1, 'fence', fence, 'pttl', math.max(0, exp - now), 'waiters', waiters, 'meta', meta}
