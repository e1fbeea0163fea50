-- bus: publish_idem.lua (embedded by the client, sent by EVALSHA)
-- KEYS stream, idem; ARGV maxlen ('' = none), window ms, payload.
local prev = redis.call('GET', KEYS[2])
if prev then return {prev, 1} end
local id
if ARGV[1] == '' then
  id = redis.call('XADD', KEYS[1], '*', 'p', ARGV[3])
else
  id = redis.call('XADD', KEYS[1], 'MAXLEN', '~', ARGV[1], '*', 'p', ARGV[3])
end
redis.call('SET', KEYS[2], id, 'PX', ARGV[2])
return {id, 0}
