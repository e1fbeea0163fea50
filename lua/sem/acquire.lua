-- SEM.ACQUIRE key token ttl-ms LIMIT n [PERMITS p] [WAIT timeout-ms] [LEASE lease-ms]
--
-- Replies as the module: the fence on grant, null when not granted, and the
-- module's errors (another limit while the semaphore has holders or
-- waiters; a renewal with other permits; a token already queued). Lua
-- cannot block, so as with a lock's acquire.lua, with WAIT t > 0 a caller
-- that cannot be granted is queued (behind everyone before it, also when
-- its permits would fit) and gets a negative integer -n: "queued; call
-- again with the same token (a renewal keeps the place) after a pub/sub
-- message on the semaphore's channel that names it, or in n ms at the
-- latest" (n = the time to the earliest lease's expiry). The queue entry
-- lives for its lease (LEASE, default timeout-ms) unless renewed; a renewal
-- with WAIT 0 leaves the queue and replies null. A queued token that calls
-- without LEASE gets the module's "already waiting" error. A hand-off holds
-- the permits for the waiter until its lease deadline (or now + ttl, if
-- sooner); the call that collects it (same token) renews it to now + ttl.
local tok, ttl_s = ARGV[1], ARGV[2]
local e = check_token(tok); if e then return e end
local ttl = parse_ms(ttl_s, 1)
if not ttl then return err('ttl-ms must be an integer between 1 and 2147483647') end
local opts, i = {}, 3
while ARGV[i] do
  local opt = string.upper(ARGV[i])
  if (opt ~= 'LIMIT' and opt ~= 'PERMITS' and opt ~= 'WAIT' and opt ~= 'LEASE') or opts[opt] then
    return err("unknown option '" .. ARGV[i] .. "'")
  end
  if not ARGV[i + 1] then
    if opt == 'WAIT' then return err('WAIT needs a timeout-ms') end
    if opt == 'LEASE' then return err('lease-ms must be an integer between 1 and 2147483647') end
    return err(opt .. ' needs a value')
  end
  opts[opt] = ARGV[i + 1]
  i = i + 2
end
local limit = parse_ms(opts.LIMIT, 1)
if not limit then return err('LIMIT must be an integer between 1 and 2147483647') end
local permits = 1
if opts.PERMITS then
  permits = parse_ms(opts.PERMITS, 1)
  if not permits or permits > limit then
    return err('PERMITS must be an integer between 1 and LIMIT')
  end
end
local wait = 0
if opts.WAIT then
  wait = parse_ms(opts.WAIT, 0)
  if not wait then return err('timeout-ms must be an integer between 0 and 2147483647') end
end
local lease = nil
if opts.LEASE then
  lease = parse_ms(opts.LEASE, 1)
  if not lease then return err('lease-ms must be an integer between 1 and 2147483647') end
end

local now = now_ms()
settle(now)

-- Queued: -(ms to the earliest lease's expiry), at least 1.
local function queued_reply()
  local first = tonumber(redis.call('ZRANGE', E, 0, 0, 'WITHSCORES')[2]) or (now + 1000)
  return -math.max(1, first - now)
end

if idle() then
  -- Nothing of an earlier semaphore of this name is left to keep.
  redis.call('DEL', S, E)
else
  local held_limit = tonumber(redis.call('HGET', S, 'limit'))
  if held_limit and held_limit ~= limit then
    return err("the semaphore's limit is " .. held_limit .. ', not ' .. limit)
  end
end

if redis.call('ZSCORE', Q, tok) then
  if not lease then return err('token is already waiting for this lock') end
  if wait == 0 then
    -- Leaving may let those behind it through.
    remove_waiter(Q, W, tok)
    hand_off(now)
    tidy(now)
    return nil
  end
  local _, _, asked = waiter_info(W, tok)
  local dl = now + lease
  redis.call('HSET', W, tok, dl .. ' ' .. ttl .. ' ' .. (asked or permits))
  tidy_queue(Q, W, now, dl)
  tidy(now)
  return queued_reply()
end

local held, fence = lease_of(tok)
if held then
  -- Idempotent retry (or a waiter collecting its hand-off): same fence.
  if held ~= permits then
    return err('the token holds ' .. held .. ' permits, not ' .. permits)
  end
  set_lease(tok, held, fence, now + ttl)
  tidy(now)
  return fence
end

redis.call('HSET', S, 'limit', limit)
if redis.call('EXISTS', Q) == 1 or used() + permits > limit then
  if wait == 0 then
    tidy(now)
    return nil
  end
  local dl = now + (lease or wait)
  redis.call('ZADD', Q, bump(C, 'seq'), tok)
  redis.call('HSET', W, tok, dl .. ' ' .. ttl .. ' ' .. permits)
  tidy_queue(Q, W, now, dl)
  tidy(now)
  return queued_reply()
end
fence = grant(tok, permits, now + ttl)
tidy(now)
return fence
