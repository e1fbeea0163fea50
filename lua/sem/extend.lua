-- SEM.EXTEND key token ttl-ms: 1 the token's lease renewed to now + ttl-ms
-- (same permits, same fence), 0 the token holds no lease.
local tok, ttl, e = extend_args()
if e then return e end
local now = now_ms()
settle(now)
local permits, fence = lease_of(tok)
if permits then set_lease(tok, permits, fence, now + ttl) end
tidy(now)
if permits then return 1 end
return 0
