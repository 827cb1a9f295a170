-- Charge and close a reservation, release the rest of the hold, atomically.
-- KEYS: 1 reservation hash, 2 open set, 3 ledger stream, 4 payer hash (account or
--       subscription; else the reservation hash), 5 receivable hash, 6 receivable set
--       (both the reservation hash when there is no receivable),
--       7.. keys that expire with the settled reservation (its call's claim in the tag;
--       its global id claims on a standalone Redis only: on a cluster they live in
--       other slots)
-- ARGV: 1 mode (account|subscription|single|none), 2 token, 3 reservation id,
--       4 expected amount held, 5 charge, 6 talked seconds, 7 seconds used (subscription),
--       8 max seconds, 9 timestamp, 10 facility, 11 ledger entry ('' when none),
--       12 receivable id, 13 seconds the finished reservation is kept,
--       14.. receivable field/value pairs
-- The settled reservation (and with it its settle token) expires; the ledger entry,
-- balances, subscription and receivable it wrote never do.
local r = redis.call('HMGET', KEYS[1], 'status', 'settle_token', 'amount', 'heartbeat_seconds',
  'heartbeat_at')
if not r[1] then return {'notfound', 'no reservation ' .. ARGV[3]} end
if r[1] ~= 'open' then
  if r[2] == ARGV[2] then return {'ok', 'replayed', r[4], r[5]} end
  return {'state', 'reservation ' .. ARGV[3] .. ' is already settled'}
end
if tonumber(r[3]) ~= tonumber(ARGV[4]) then
  return {'invalid', 'reservation ' .. ARGV[3] .. ' holds ' .. r[3] .. ' units, not ' .. ARGV[4]}
end
local mode = ARGV[1]
local amount = tonumber(ARGV[4])
local charge = tonumber(ARGV[5])
local at = ARGV[9]
if mode == 'account' then
  redis.call('HINCRBY', KEYS[4], 'held', -amount)
  redis.call('HINCRBY', KEYS[4], 'balance', amount - charge)
  if tonumber(ARGV[6]) > 0 then
    redis.call('HSET', KEYS[4], 'last_call_at', at, 'last_call_facility', ARGV[10],
      'last_activity_at', at, 'inactive_flagged_at', '')
  end
elseif mode == 'subscription' then
  redis.call('HINCRBY', KEYS[4], 'held_seconds', -tonumber(ARGV[8]))
  redis.call('HINCRBY', KEYS[4], 'used_seconds', tonumber(ARGV[7]))
elseif mode == 'single' then
  if redis.call('EXISTS', KEYS[5]) == 1 then
    return {'dup', 'receivable ' .. ARGV[12] .. ' exists'}
  end
  local fields = {}
  for i = 14, #ARGV do fields[#fields + 1] = ARGV[i] end
  redis.call('HSET', KEYS[5], unpack(fields))
  redis.call('SADD', KEYS[6], ARGV[12])
end
if ARGV[11] ~= '' then redis.call('XADD', KEYS[3], '*', 't', ARGV[11]) end
redis.call('HSET', KEYS[1], 'status', 'settled', 'settled_at', at, 'talked_seconds', ARGV[6],
  'charged', ARGV[5], 'settle_token', ARGV[2])
redis.call('SREM', KEYS[2], ARGV[3])
local keep = tonumber(ARGV[13])
redis.call('EXPIRE', KEYS[1], keep)
for i = 7, #KEYS do redis.call('EXPIRE', KEYS[i], keep) end
return {'ok', '', r[4], r[5]}
