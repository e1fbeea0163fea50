-- bus: dead_letter.lua (embedded by the client, sent by EVALSHA)
-- KEYS stream, dlq, errors; ARGV group, id, deliveries, error ('' = the
-- recorded one), dlq maxlen ('' = none).
if redis.call('XACK', KEYS[1], ARGV[1], ARGV[2]) == 0 then return 0 end
local err = ARGV[4]
if err == '' then err = redis.call('HGET', KEYS[3], ARGV[2]) or '' end
redis.call('HDEL', KEYS[3], ARGV[2])
local payload = ''
local e = redis.call('XRANGE', KEYS[1], ARGV[2], ARGV[2])
if e[1] then
  local f = e[1][2]
  for i = 1, #f, 2 do if f[i] == 'p' then payload = f[i + 1] end end
end
local fields = {'id', ARGV[2], 'group', ARGV[1], 'deliveries', ARGV[3], 'error', err, 'p', payload}
if ARGV[5] == '' then
  redis.call('XADD', KEYS[2], '*', unpack(fields))
else
  redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[5], '*', unpack(fields))
end
return 1
