-- baton Lua backend: the lock prelude, sent after base.lua before every
-- lock script.
--
-- Keys of one lock (all share the hash tag, so one slot in Redis Cluster):
--   KEYS[1] holder hash   baton:{<k>}     token, fence, exp (unix ms), meta (if
--                                         any); PEXPIREAT exp
--   KEYS[2] wait queue    baton:{<k>}:q   zset token -> arrival number (FIFO)
--   KEYS[3] waiter info   baton:{<k>}:w   hash token -> "<lease-deadline-ms> <ttl-ms>"
--                                         and, with a META, "\n<meta>"
--   KEYS[4] counters      baton:{<k>}:c   hash fence, seq; never expires
-- Fences and arrival numbers are max(last + 1, the server clock in us), so
-- they keep increasing even when KEYS[4] is lost (DEL, FLUSHALL, eviction),
-- unless the server's clock goes back.
-- Hand-offs publish the new holder's token on the channel KEYS[1] .. ':ch'.
local H, Q, W, C = KEYS[1], KEYS[2], KEYS[3], KEYS[4]

-- Makes `tok` the holder until `exp` (unix ms) with a new fence and its
-- value `meta` (nil: none). H does not exist here: every caller runs after
-- settle() found no holder (an expired one is deleted there) or after its
-- own DEL of H, so no field of an earlier holder (its meta) is left over.
local function grant(tok, exp, meta)
  local fence = bump(C, 'fence')
  redis.call('HSET', H, 'token', tok, 'fence', fence, 'exp', exp)
  if meta then redis.call('HSET', H, 'meta', meta) end
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
    local lease, ttl, _, meta = waiter_info(W, head)
    remove_waiter(Q, W, head)
    if lease and lease > now then
      grant(head, math.min(lease, now + ttl), meta)
      redis.call('PUBLISH', H .. ':ch', head)
      break
    end
  end
  tidy_queue(Q, W, now, nil)
end

-- The holder's token, fence and exp out of an HMGET of them (nil when
-- the lock has none).
local function holder_of(v)
  if not v[1] then return nil end
  return v[1], tonumber(v[2]), tonumber(v[3])
end

local function holder()
  return holder_of(redis.call('HMGET', H, 'token', 'fence', 'exp'))
end

-- The check every script runs first: an expired holder goes, and a free lock
-- with waiters passes to the head of the queue. Returns what holder() would
-- return then (one HMGET serves both), and `false` fourth when the queue is
-- known not to exist (a free lock had none: the caller need not look
-- again), else nil.
local function settle(now)
  local v = redis.call('HMGET', H, 'token', 'fence', 'exp')
  local exp = tonumber(v[3])
  if exp and exp <= now then
    redis.call('DEL', H)
    v, exp = {}, nil
  end
  if exp then
    local tok, fence, e = holder_of(v)
    return tok, fence, e, nil
  end
  if redis.call('EXISTS', Q) == 0 then
    local tok, fence, e = holder_of(v)
    return tok, fence, e, false
  end
  hand_off(now)
  local tok, fence, e = holder()
  return tok, fence, e, nil
end
