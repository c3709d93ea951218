-- postern rate limits: check, and with commit count, one request against every counter
-- atomically. See ratelimit.go for the sliding-window scheme.
--
-- KEYS[1..n]  one hash per counter; field "<dim><slot>" (dim m, r or b) holds the use
--             in that slot
-- KEYS[n+1]   the Once key, when a commit is to be idempotent
-- ARGV        commit (0|1), once_ttl_ms, cost_m, cost_r, cost_b, slots, n,
--             then per counter: slot_ms, window_ms, max_m, max_r, max_b
-- returns     {allowed, duplicate, exceeded (0-based, -1), dimension (1 m, 2 r, 3 b),
--             used_m, used_r, used_b}
local commit = ARGV[1] == '1'
local once_ttl = tonumber(ARGV[2])
local cost = {tonumber(ARGV[3]), tonumber(ARGV[4]), tonumber(ARGV[5])}
local cost_arg = {ARGV[3], ARGV[4], ARGV[5]} -- as sent: Lua would print large numbers as 1e+15
local nslots = tonumber(ARGV[6])
local n = tonumber(ARGV[7])
local once = KEYS[n + 1]

if commit and once and redis.call('EXISTS', once) == 1 then
  return {1, 1, -1, 0, 0, 0, 0}
end

local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local dimension = {m = 1, r = 2, b = 3}
local current = {}

for i = 1, n do
  local a = 8 + (i - 1) * 5
  local slot_ms, window_ms = tonumber(ARGV[a]), tonumber(ARGV[a + 1])
  local limit = {tonumber(ARGV[a + 2]), tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4])}
  local cur = math.floor(now / slot_ms)
  current[i] = {cur, slot_ms, window_ms}
  local used = {0, 0, 0}
  local stale = {}
  local flat = redis.call('HGETALL', KEYS[i])
  for j = 1, #flat, 2 do
    local d = dimension[string.sub(flat[j], 1, 1)]
    local idx = tonumber(string.sub(flat[j], 2))
    if d == nil or idx == nil or idx < cur - nslots then
      stale[#stale + 1] = flat[j]
    elseif idx <= cur then
      used[d] = used[d] + tonumber(flat[j + 1])
    end
  end
  if #stale > 0 then
    redis.call('HDEL', KEYS[i], unpack(stale))
  end
  for d = 1, 3 do
    if limit[d] > 0 and used[d] + cost[d] > limit[d] then
      return {0, 0, i - 1, d, used[1], used[2], used[3]}
    end
  end
end

if commit then
  local names = {'m', 'r', 'b'}
  for i = 1, n do
    for d = 1, 3 do
      if cost[d] > 0 then
        redis.call('HINCRBY', KEYS[i], names[d] .. string.format('%d', current[i][1]), cost_arg[d])
      end
    end
    redis.call('PEXPIRE', KEYS[i], current[i][3] + 2 * current[i][2])
  end
  if once then
    redis.call('SET', once, '1', 'PX', once_ttl)
  end
end
return {1, 0, -1, 0, 0, 0, 0}
