-- SEM.FORCERELEASE key [token]: removes every lease, or the token's; the
-- queue's head is granted while it fits. Replies how many leases were
-- removed.
local tok = ARGV[1]
if ARGV[2] then return err('wrong number of arguments for \'sem.forcerelease\' command') end
if tok then
  local e = check_token(tok); if e then return e end
end
local now = now_ms()
settle(now)
local removed = 0
for _, t in ipairs(tok and { tok } or redis.call('ZRANGE', E, 0, -1)) do
  if end_lease(t) then removed = removed + 1 end
end
hand_off(now)
tidy(now)
return removed
