-- SEM.EXTEND key token ttl-ms: 1 the token's lease renewed to now + ttl-ms
-- (same permits, same fence), 0 the token holds no lease.
local tok = ARGV[1]
local e = check_token(tok); if e then return e end
local ttl = parse_ms(ARGV[2], 1)
if not ttl then return err('ttl-ms must be an integer between 1 and 2147483647') end
if ARGV[3] then return err("unknown option '" .. ARGV[3] .. "'") end
local now = now_ms()
settle(now)
local permits, fence = lease_of(tok)
if permits then set_lease(tok, permits, fence, now + ttl) end
tidy(now)
if permits then return 1 end
return 0
