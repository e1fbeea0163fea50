-- LOCK.FENCE key: the holder's fence while the lock is held, 0 when free
-- (as the module). The counter itself lives on in KEYS[4].
local now = now_ms()
settle(now)
local _, fence = holder()
return fence or 0
