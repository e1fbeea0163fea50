-- bus: autoclaim.lua (embedded by the client, sent by EVALSHA)
-- KEYS stream, stats; ARGV group, consumer, min idle ms, cursor, count.
-- Returns {next cursor, entries, delivery counts, deleted count}.
local r = redis.call('XAUTOCLAIM', KEYS[1], ARGV[1], ARGV[2], ARGV[3], ARGV[4], 'COUNT', ARGV[5])
local out, counts = {}, {}
for _, e in ipairs(r[2]) do
  if e then
    local p = redis.call('XPENDING', KEYS[1], ARGV[1], e[1], e[1], 1)
    local n = 1
    if p[1] then n = p[1][4] end
    out[#out + 1] = e
    counts[#counts + 1] = n
  end
end
local deleted = 0
if r[3] then deleted = #r[3] end
if #out > 0 then redis.call('HINCRBY', KEYS[2], 'redeliveries', #out) end
return {r[1], out, counts, deleted}
