-- A call's hold (accounts.postings.plan_reserve), as apply.lua would apply it, with the
-- plan's values by position: this runs for every call.
-- KEYS: 1 reservation, 2 the call's claim in the tag, 3 the tag's open set, 4 ledger stream,
--       5 payer (account or subscription; the reservation itself when nobody holds)
-- ARGV: 1 token, 2 reservation id, 3 call id, 4 payer kind (account|subscription|''),
--       5 least (account: the balance before the hold; subscription: the seconds left),
--       6 field a, 7 delta a, 8 field b, 9 delta b (a field '' is not changed),
--       10 ledger entry ('' when none), 11.. the reservation's fields and values
-- Answers {'ok', ''} when held, {'ok', 'replayed'} for a repeat of this very write,
-- else the refusal {code, message[, found]}; a refused hold has written nothing.
local token = redis.call('HGET', KEYS[1], 'token')
if token == ARGV[1] then return {'ok', 'replayed'} end
if token then return {'dup', 'reservation ' .. ARGV[2] .. ' already exists', token} end
if redis.call('EXISTS', KEYS[2]) == 1 then
  return {'dup', 'call ' .. ARGV[3] .. ' already has a reservation'}
end
local kind = ARGV[4]
if kind == 'account' then
  local a = redis.call('HMGET', KEYS[5], 'status', 'balance')
  if not a[1] then return {'unknown_account', 'no account'} end
  if a[1] ~= 'open' then return {'state', 'account is not open', a[1]} end
  if (tonumber(a[2]) or 0) < tonumber(ARGV[5]) then
    return {'insufficient', 'cannot hold ' .. -tonumber(ARGV[7]) .. ' units'}
  end
elseif kind == 'subscription' then
  local s = redis.call('HMGET', KEYS[5], 'covered_seconds', 'used_seconds', 'held_seconds')
  if not s[1] then return {'notfound', 'no subscription'} end
  local left = (tonumber(s[1]) or 0) - (tonumber(s[2]) or 0) - (tonumber(s[3]) or 0)
  if left < tonumber(ARGV[5]) then
    return {'insufficient', 'subscription cannot cover ' .. ARGV[5] .. ' s'}
  end
end
if ARGV[6] ~= '' then redis.call('HINCRBY', KEYS[5], ARGV[6], ARGV[7]) end
if ARGV[8] ~= '' then redis.call('HINCRBY', KEYS[5], ARGV[8], ARGV[9]) end
redis.call('HSET', KEYS[1], 'token', ARGV[1], unpack(ARGV, 11))
redis.call('SADD', KEYS[3], ARGV[2])
redis.call('SET', KEYS[2], ARGV[2])
if ARGV[10] ~= '' then redis.call('XADD', KEYS[4], '*', 't', ARGV[10]) end
return {'ok', ''}
