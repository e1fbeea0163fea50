-- LOCK.EXTEND key token ttl-ms: 1 expiry reset to now + ttl-ms, 0 not the holder.
local tok = ARGV[1]
local e = check_token(tok); if e then return e end
local ttl = parse_ms(ARGV[2], 1)
if not ttl then return err('ttl-ms must be an integer between 1 and 2147483647') end
if ARGV[3] then return err("unknown option '" .. ARGV[3] .. "'") end
local now = now_ms()
settle(now)
local htok = holder()
if htok ~= tok then return 0 end
local exp = now + ttl
redis.call('HSET', H, 'exp', exp)
redis.call('PEXPIREAT', H, exp)
return 1
