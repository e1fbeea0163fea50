-- LOCK.ACQUIRE key token ttl-ms [WAIT timeout-ms] [META value] [LEASE lease-ms]
--
-- Replies as the module: the fence on grant, null when not granted. Lua cannot
-- block, so with WAIT t > 0 a caller that cannot be granted is queued and gets
-- a negative integer -n instead: "queued; call ACQUIRE again with the same
-- token (a renewal keeps the place) after a pub/sub message on the lock's
-- channel, or in n ms at the latest" (n = the holder's time left). The
-- queue entry lives for its lease (LEASE, default timeout-ms) unless renewed;
-- a renewal with WAIT 0 leaves the queue and replies null. A queued token that
-- calls without LEASE gets the module's "already waiting" error. A hand-off
-- holds the lock for the waiter only until its lease deadline (or now + ttl,
-- if sooner); the call that collects it (same token) renews it to now + ttl.
-- META is stored with the holder (a renewal with META replaces it, one
-- without keeps it) and with a queue entry, whose grant carries it.
local tok, ttl_s = ARGV[1], ARGV[2]
local e = check_token(tok); if e then return e end
local ttl = parse_ms(ttl_s, 1)
if not ttl then return err('ttl-ms must be an integer between 1 and 2147483647') end
-- The module's order of checks: the words (unknown, twice, no value) as
-- they come, then META's length, then WAIT's number.
local wait_s, meta, lease = nil, nil, nil
local i = 3
while ARGV[i] do
  local opt = string.upper(ARGV[i])
  if opt == 'WAIT' then
    if wait_s then return err("unknown option '" .. ARGV[i] .. "'") end
    wait_s = ARGV[i + 1]
    if not wait_s then return err('WAIT needs a timeout-ms') end
    i = i + 2
  elseif opt == 'META' then
    if meta then return err("unknown option '" .. ARGV[i] .. "'") end
    meta = ARGV[i + 1]
    if not meta then return err('META needs a value') end
    i = i + 2
  elseif opt == 'LEASE' then
    lease = ARGV[i + 1] and parse_ms(ARGV[i + 1], 1)
    if not lease then return err('lease-ms must be an integer between 1 and 2147483647') end
    i = i + 2
  else
    return err("unknown option '" .. ARGV[i] .. "'")
  end
end
if meta and #meta > MAX_META then return err('META must be 0 to 1024 bytes') end
local wait = 0
if wait_s then
  wait = parse_ms(wait_s, 0)
  if not wait then return err('timeout-ms must be an integer between 0 and 2147483647') end
end

local now = now_ms()
local htok, hfence, hexp, queue = settle(now)
if htok == tok then
  -- Idempotent retry (or a waiter collecting its hand-off): same fence.
  local exp = now + ttl
  redis.call('HSET', H, 'exp', exp)
  if meta then redis.call('HSET', H, 'meta', meta) end
  redis.call('PEXPIREAT', H, exp)
  return hfence
end

-- No queue (settle() saw none): nobody is queued, this token neither.
local queued = queue ~= false and redis.call('ZSCORE', Q, tok)
if queued then
  if not lease then return err('token is already waiting for this lock') end
  if wait == 0 then
    remove_waiter(Q, W, tok)
    tidy_queue(Q, W, now, nil)
    return nil
  end
  local dl = now + lease
  redis.call('HSET', W, tok, waiter_entry(dl, ttl, nil, meta))
  tidy_queue(Q, W, now, dl)
  return -math.max(1, (hexp or now) - now)
end

if not htok and (queue == false or redis.call('EXISTS', Q) == 0) then
  return grant(tok, now + ttl, meta)
end
if wait == 0 then return nil end
local dl = now + (lease or wait)
local seq = bump(C, 'seq')
redis.call('ZADD', Q, seq, tok)
redis.call('HSET', W, tok, waiter_entry(dl, ttl, nil, meta))
tidy_queue(Q, W, now, dl)
return -math.max(1, (hexp or now) - now)
