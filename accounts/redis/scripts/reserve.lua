-- Hold money (or subscription seconds) for one call and record the reservation, atomically.
-- KEYS: 1 reservation hash, 2 open set of the tag, 3 ledger stream, 4 payer hash
--       (account or subscription; the reservation hash itself when nobody is held),
--       5 the call's claim in the tag (its reservation id; expires with the settled reservation)
-- ARGV: 1 mode (account|subscription|none), 2 amount, 3 floor, 4 max seconds, 5 token,
--       6 ledger entry ('' when none), 7 reservation id, 8 call id,
--       9.. reservation field/value pairs
local existing = redis.call('HGET', KEYS[1], 'token')
if existing then
  if existing == ARGV[5] then return {'ok', 'replayed'} end
  return {'dup', 'reservation ' .. ARGV[7] .. ' already exists'}
end
-- The call id is taken first (one command to test and take it) and given back if
-- the payer cannot hold the call.
if not redis.call('SET', KEYS[5], ARGV[7], 'NX') then
  return {'dup', 'call ' .. ARGV[8] .. ' already has a reservation'}
end
local mode = ARGV[1]
local amount = tonumber(ARGV[2])
local refused = nil
if mode == 'account' then
  local a = redis.call('HMGET', KEYS[4], 'status', 'balance')
  if not a[1] then
    refused = {'unknown_account', 'no account'}
  elseif a[1] ~= 'open' then
    refused = {'state', 'account is ' .. a[1]}
  elseif tonumber(a[2]) - amount < tonumber(ARGV[3]) then
    refused = {'insufficient', 'cannot hold ' .. ARGV[2] .. ' units'}
  else
    redis.call('HINCRBY', KEYS[4], 'balance', -amount)
    redis.call('HINCRBY', KEYS[4], 'held', amount)
  end
elseif mode == 'subscription' then
  local s = redis.call('HMGET', KEYS[4], 'covered_seconds', 'used_seconds', 'held_seconds')
  local seconds = tonumber(ARGV[4])
  if not s[1] then
    refused = {'notfound', 'no subscription'}
  elseif tonumber(s[1]) - tonumber(s[2]) - tonumber(s[3]) < seconds then
    refused = {'insufficient', 'subscription cannot cover ' .. ARGV[4] .. ' s'}
  else
    redis.call('HINCRBY', KEYS[4], 'held_seconds', seconds)
  end
end
if refused then
  redis.call('DEL', KEYS[5])
  return refused
end
if ARGV[6] ~= '' then redis.call('XADD', KEYS[3], '*', 't', ARGV[6]) end
redis.call('HSET', KEYS[1], 'token', ARGV[5], unpack(ARGV, 9))
redis.call('SADD', KEYS[2], ARGV[7])
return {'ok', ''}
