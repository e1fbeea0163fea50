-- LOCK.EXTEND key token ttl-ms [META value]: 1 expiry reset to now + ttl-ms
-- (and, with META, the holder's value replaced), 0 not the holder. Never a
-- grant.
local tok = ARGV[1]
local e = check_token(tok); if e then return e end
local ttl = parse_ms(ARGV[2], 1)
if not ttl then return err('ttl-ms must be an integer between 1 and 2147483647') end
local meta = nil
if ARGV[3] then
  if string.upper(ARGV[3]) ~= 'META' then return err("unknown option '" .. ARGV[3] .. "'") end
  meta = ARGV[4]
  if not meta then return err('META needs a value') end
  if ARGV[5] then return err("unknown option '" .. ARGV[5] .. "'") end
  if #meta > MAX_META then return err('META must be 0 to 1024 bytes') end
end
local now = now_ms()
local htok = settle(now)
if htok ~= tok then return 0 end
local exp = now + ttl
redis.call('HSET', H, 'exp', exp)
if meta then redis.call('HSET', H, 'meta', meta) end
redis.call('PEXPIREAT', H, exp)
return 1
