-- LOCK.EXTEND key token ttl-ms: 1 expiry reset to now + ttl-ms, 0 not the holder.
local tok, ttl, e = extend_args()
if e then return e end
local now = now_ms()
settle(now)
local htok = holder()
if htok ~= tok then return 0 end
local exp = now + ttl
redis.call('HSET', H, 'exp', exp)
redis.call('PEXPIREAT', H, exp)
return 1
