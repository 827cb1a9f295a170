-- Record a call's progress; seconds never go backwards and never pass the limit.
-- KEYS: 1 reservation hash.  ARGV: 1 seconds, 2 timestamp
local r = redis.call('HMGET', KEYS[1], 'status', 'max_seconds', 'heartbeat_seconds')
if not r[1] then return {'notfound', 'no reservation'} end
if r[1] ~= 'open' then return {'state', 'reservation is already settled'} end
local seconds = math.min(tonumber(ARGV[1]), tonumber(r[2]))
if seconds > tonumber(r[3]) then
  redis.call('HSET', KEYS[1], 'heartbeat_seconds', seconds)
else
  seconds = tonumber(r[3])
end
redis.call('HSET', KEYS[1], 'heartbeat_at', ARGV[2])
return {'ok', '', tostring(seconds)}
