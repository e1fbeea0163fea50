-- LOCK.RELEASE key token: 1 released (the head waiter takes over at once),
-- 0 not the holder. A token that is queued instead leaves the queue (reply 0).
local tok = ARGV[1]
local e = check_token(tok); if e then return e end
if ARGV[2] then return err('wrong number of arguments for \'lock.release\' command') end
local now = now_ms()
local htok, _, _, queue = settle(now)
if htok == tok then
  redis.call('DEL', H)
  -- Nobody waits without a queue: no hand-off to look for (hand_off()
  -- would only find it empty and delete it again).
  if redis.call('EXISTS', Q) == 1 then hand_off(now) end
  return 1
end
if queue ~= false and redis.call('ZSCORE', Q, tok) then
  remove_waiter(Q, W, tok)
  tidy_queue(Q, W, now, nil)
end
return 0
