-- baton Lua backend: shared prelude, prepended by the client to every script.
--
-- Keys of one lock (all share the hash tag, so one slot in Redis Cluster):
--   KEYS[1] holder hash   baton:{<k>}     token, fence, exp (unix ms); PEXPIREAT exp
--   KEYS[2] wait queue    baton:{<k>}:q   zset token -> arrival number (FIFO)
--   KEYS[3] waiter info   baton:{<k>}:w   hash token -> "<lease-deadline-ms> <ttl-ms>"
--   KEYS[4] counters      baton:{<k>}:c   hash fence, seq; never expires
-- Fences and arrival numbers are max(last + 1, the server clock in us), so
-- they keep increasing even when KEYS[4] is lost (DEL, FLUSHALL, eviction),
-- unless the server's clock goes back.
-- Hand-offs publish the new holder's token on the channel KEYS[1] .. ':ch'.
if redis.replicate_commands then pcall(redis.replicate_commands) end

local H, Q, W, C = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local MAX_MS = 2147483647

-- The server clock in microseconds. Lua numbers are doubles, exact below
-- 2^53: this clock stays below that until the year 2255.
local function now_us()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000000 + tonumber(t[2])
end

local function now_ms()
  return math.floor(now_us() / 1000)
end

-- Raises counter `field` of C to max(last + 1, now in us) and returns it.
local function bump(field)
  local n = math.max((tonumber(redis.call('HGET', C, field)) or 0) + 1, now_us())
  redis.call('HSET', C, field, n)
  return n
end

local function err(msg) return redis.error_reply('ERR ' .. msg) end

local function check_token(tok)
  if tok == nil or #tok < 1 or #tok > 256 then return err('token must be 1 to 256 bytes') end
end

local function parse_ms(s, min)
  if s == nil or not string.match(s, '^%d+$') or #s > 10 then return nil end
  local n = tonumber(s)
  if n < min or n > MAX_MS then return nil end
  return n
end

-- Drops the queue keys once empty, else keeps them alive as long as the
-- longest lease.
local function tidy_queue(now, lease_deadline)
  if redis.call('ZCARD', Q) == 0 then
    redis.call('DEL', Q, W)
    return
  end
  if lease_deadline then
    local cur = redis.call('PTTL', W)
    local want = lease_deadline - now + 1
    if cur < want then
      redis.call('PEXPIRE', W, want)
      redis.call('PEXPIRE', Q, want)
    end
  end
end

local function waiter_info(tok)
  local v = redis.call('HGET', W, tok)
  if not v then return nil, nil end
  local lease, ttl = string.match(v, '^(%d+) (%d+)$')
  return tonumber(lease), tonumber(ttl)
end

local function remove_waiter(tok)
  redis.call('ZREM', Q, tok)
  redis.call('HDEL', W, tok)
end

-- Makes `tok` the holder until `exp` (unix ms) with a new fence.
local function grant(tok, exp)
  local fence = bump('fence')
  redis.call('DEL', H)
  redis.call('HSET', H, 'token', tok, 'fence', fence, 'exp', exp)
  redis.call('PEXPIREAT', H, exp)
  return fence
end

-- Gives a free lock to the first waiter whose lease is still valid; waiters
-- whose lease ran out (crashed clients) are dropped on the way. The grant
-- lasts only until the waiter's lease deadline (or its ttl, if sooner): a
-- waiter that crashed while queued holds up the queue no longer than its
-- lease. The waiter's own next ACQUIRE collects the grant and renews it to
-- now + ttl.
local function hand_off(now)
  while true do
    local head = redis.call('ZRANGE', Q, 0, 0)[1]
    if not head then break end
    local lease, ttl = waiter_info(head)
    remove_waiter(head)
    if lease and lease > now then
      grant(head, math.min(lease, now + ttl))
      redis.call('PUBLISH', H .. ':ch', head)
      break
    end
  end
  tidy_queue(now, nil)
end

-- The check every script runs first: an expired holder goes, and a free lock
-- with waiters passes to the head of the queue.
local function settle(now)
  local exp = tonumber(redis.call('HGET', H, 'exp'))
  if exp and exp <= now then
    redis.call('DEL', H)
    exp = nil
  end
  if not exp and redis.call('EXISTS', Q) == 1 then
    hand_off(now)
  end
end

local function holder()
  local v = redis.call('HMGET', H, 'token', 'fence', 'exp')
  if not v[1] then return nil end
  return v[1], tonumber(v[2]), tonumber(v[3])
end
