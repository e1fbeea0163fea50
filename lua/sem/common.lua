-- baton Lua backend: the semaphore prelude, sent after base.lua before
-- every semaphore script (a read-write lock is a semaphore too).
--
-- Keys of one semaphore (all share the hash tag, so one slot in Redis
-- Cluster; `sem:` before the tag keeps them apart from the keys of a lock
-- of the same name):
--   KEYS[1] S  baton:sem:{<k>}    hash: limit, used (permits held), fence (the
--                                 last issued on this semaphore), and per lease
--                                 'l:' .. token -> "<permits> <fence> <exp-ms>"
--   KEYS[2] E  baton:sem:{<k>}:e  zset token -> its lease's expiry (unix ms)
--   KEYS[3] Q  baton:sem:{<k>}:q  zset token -> arrival number (strict FIFO)
--   KEYS[4] W  baton:sem:{<k>}:w  hash token -> "<lease-deadline-ms> <ttl-ms> <permits>"
--   KEYS[5] C  baton:sem:{<k>}:c  hash fence, seq; never expires
-- S and E expire with the last lease or the queue, whichever lasts longer,
-- and go at once when neither is left: an idle semaphore leaves only C.
-- Hand-offs publish the tokens granted, space separated, on the channel
-- KEYS[1] .. ':ch'.
local S, E, Q, W, C = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]

local function used()
  return tonumber(redis.call('HGET', S, 'used')) or 0
end

-- The lease of `tok`: permits, fence, expiry; nil when it holds none.
local function lease_of(tok)
  local v = redis.call('HGET', S, 'l:' .. tok)
  if not v then return nil end
  local p, f, x = string.match(v, '^(%d+) (%d+) (%d+)$')
  return tonumber(p), tonumber(f), tonumber(x)
end

-- Written with %d: Lua's `..` keeps only 14 digits, and fences have 16.
local function set_lease(tok, permits, fence, exp)
  redis.call('HSET', S, 'l:' .. tok, string.format('%d %d %d', permits, fence, exp))
  redis.call('ZADD', E, exp, tok)
end

-- Ends `tok`'s lease; true when it held one.
local function end_lease(tok)
  redis.call('ZREM', E, tok)
  local permits = lease_of(tok)
  if not permits then return false end
  redis.call('HDEL', S, 'l:' .. tok)
  redis.call('HINCRBY', S, 'used', -permits)
  return true
end

-- A new lease of `permits` for `tok` until `exp` (unix ms), with a new fence.
local function grant(tok, permits, exp)
  local fence = bump(C, 'fence')
  redis.call('HINCRBY', S, 'used', permits)
  redis.call('HSET', S, 'fence', fence)
  set_lease(tok, permits, fence, exp)
  return fence
end

-- Grants the queue's head while it fits, in order: a head that does not fit
-- holds back everyone behind it (strict FIFO). Heads whose queue lease ran
-- out (crashed clients) are dropped on the way. A grant lasts only until the
-- waiter's lease deadline (or its ttl, if sooner); the waiter's own next
-- ACQUIRE collects it and renews it to now + ttl. One message names every
-- token granted.
local function hand_off(now)
  local limit = tonumber(redis.call('HGET', S, 'limit')) or 0
  local granted = {}
  while true do
    local head = redis.call('ZRANGE', Q, 0, 0)[1]
    if not head then break end
    local lease, ttl, permits = waiter_info(W, head)
    if lease and permits and lease > now then
      if used() + permits > limit then break end
      remove_waiter(Q, W, head)
      grant(head, permits, math.min(lease, now + ttl))
      granted[#granted + 1] = head
    else
      remove_waiter(Q, W, head)
    end
  end
  if #granted > 0 then
    redis.call('PUBLISH', S .. ':ch', table.concat(granted, ' '))
  end
  tidy_queue(Q, W, now, nil)
end

-- The check every script runs first: leases whose time has passed end, and
-- the queue's head is granted while it fits.
local function settle(now)
  for _, tok in ipairs(redis.call('ZRANGEBYSCORE', E, '-inf', now)) do
    end_lease(tok)
  end
  if redis.call('EXISTS', Q) == 1 then hand_off(now) end
end

-- True when nobody holds a lease or waits.
local function idle()
  return redis.call('ZCARD', E) == 0 and redis.call('EXISTS', Q) == 0
end

-- The last step of every script that may have changed something: an idle
-- semaphore's S and E go; else both expire with the last lease or the
-- queue, whichever lasts longer.
local function tidy(now)
  if idle() then
    redis.call('DEL', S, E)
    return
  end
  local last = tonumber(redis.call('ZRANGE', E, -1, -1, 'WITHSCORES')[2]) or 0
  local queue = redis.call('PTTL', Q)
  if queue == -1 then queue = MAX_MS end
  local until_ms = math.max(last, now + math.max(queue, 0))
  redis.call('PEXPIREAT', S, until_ms)
  redis.call('PEXPIREAT', E, until_ms)
end
