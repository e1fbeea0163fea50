-- SEM.RELEASE key token: 1 released (the queue's head is granted while it
-- fits), 0 the token holds no lease. A token that is queued instead leaves
-- the queue (reply 0), which may let those behind it through.
local tok = ARGV[1]
local e = check_token(tok); if e then return e end
if ARGV[2] then return err('wrong number of arguments for \'sem.release\' command') end
local now = now_ms()
settle(now)
local released = end_lease(tok)
if not released and redis.call('ZSCORE', Q, tok) then
  remove_waiter(Q, W, tok)
end
hand_off(now)
tidy(now)
if released then return 1 end
return 0
