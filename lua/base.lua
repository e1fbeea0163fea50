-- baton Lua backend: the helpers every lock and semaphore script starts
-- with. The client sends base.lua, then the lock's prelude (common.lua) or
-- the semaphore's (sem/common.lua), then the command's own file.
if redis.replicate_commands then pcall(redis.replicate_commands) end

local MAX_MS = 2147483647
local MAX_META = 1024

-- The server clock in microseconds. Lua numbers are doubles, exact below
-- 2^53: this clock stays below that until the year 2255. Read once per
-- script run (a TIME call costs as much as a small command): every later
-- use within the run gets the same instant, and what it orders (fences,
-- arrival numbers: max(last + 1, now)) still keeps increasing.
local clock_us = nil
local function now_us()
  if not clock_us then
    local t = redis.call('TIME')
    clock_us = tonumber(t[1]) * 1000000 + tonumber(t[2])
  end
  return clock_us
end

local function now_ms()
  return math.floor(now_us() / 1000)
end

-- Raises counter `field` of the counter hash `c` to max(last + 1, now in
-- us) and returns it: fences and arrival numbers keep increasing even when
-- `c` is lost (DEL, FLUSHALL, eviction), unless the server's clock goes
-- back.
local function bump(c, field)
  local n = math.max((tonumber(redis.call('HGET', c, field)) or 0) + 1, now_us())
  redis.call('HSET', c, field, n)
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

-- The arguments of an EXTEND, `token ttl-ms` and nothing after them: the
-- token and the ttl, or the error reply third.
local function extend_args()
  local tok = ARGV[1]
  local e = check_token(tok); if e then return nil, nil, e end
  local ttl = parse_ms(ARGV[2], 1)
  if not ttl then return nil, nil, err('ttl-ms must be an integer between 1 and 2147483647') end
  if ARGV[3] then return nil, nil, err("unknown option '" .. ARGV[3] .. "'") end
  return tok, ttl
end

-- A wait queue is a zset `q` (token -> arrival number, FIFO) and a hash `w`
-- (token -> "<lease-deadline-ms> <ttl-ms>[ <permits>]", then "\n<meta>" for
-- a lock's waiter with a META: the first newline ends the numbers, so the
-- value may hold any byte).

-- Drops the queue keys once empty, else keeps them alive as long as the
-- longest lease.
local function tidy_queue(q, w, now, lease_deadline)
  if redis.call('ZCARD', q) == 0 then
    redis.call('DEL', q, w)
    return
  end
  if lease_deadline then
    local cur = redis.call('PTTL', w)
    local want = lease_deadline - now + 1
    if cur < want then
      redis.call('PEXPIRE', w, want)
      redis.call('PEXPIRE', q, want)
    end
  end
end

-- A queue entry's value in `w`.
local function waiter_entry(lease_deadline, ttl, permits, meta)
  local v = lease_deadline .. ' ' .. ttl
  if permits then v = v .. ' ' .. permits end
  if meta then v = v .. '\n' .. meta end
  return v
end

-- A queue entry's lease deadline, ttl, permits (nil for a lock's) and
-- value (nil when none).
local function waiter_info(w, tok)
  local v = redis.call('HGET', w, tok)
  if not v then return nil, nil, nil, nil end
  local meta = nil
  local nl = string.find(v, '\n', 1, true)
  if nl then
    meta = string.sub(v, nl + 1)
    v = string.sub(v, 1, nl - 1)
  end
  local lease, ttl, permits = string.match(v, '^(%d+) (%d+) ?(%d*)$')
  return tonumber(lease), tonumber(ttl), tonumber(permits), meta
end

local function remove_waiter(q, w, tok)
  redis.call('ZREM', q, tok)
  redis.call('HDEL', w, tok)
end
