-- LOCK.FORCERELEASE key: 1 a holder was removed (the head waiter takes over),
-- 0 none was held.
local now = now_ms()
settle(now)
if not holder() then return 0 end
redis.call('DEL', H)
hand_off(now)
return 1
