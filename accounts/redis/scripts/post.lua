-- Append one ledger transaction and move the account's cached balances, atomically.
-- KEYS: 1 account hash (the ledger stream when the transaction touches no account),
--       2 ledger stream, 3 idempotency hash of the tag
-- ARGV: 1 touches an account (1|0), 2 balance delta, 3 held delta, 4 floor ('' for none),
--       5 counts as activity (1|0), 6 timestamp, 7 idempotency key ('' for none), 8 token,
--       9 ledger entry, 10 payment amount
local key = ARGV[7]
if key ~= '' then
  local used = redis.call('HGET', KEYS[3], key)
  if used then
    if used == ARGV[8] then return {'ok', 'replayed'} end
    return {'dup', 'idempotency key ' .. key .. ' was already used'}
  end
end
if ARGV[1] == '1' then
  local balance = redis.call('HGET', KEYS[1], 'balance')
  if not balance then return {'unknown_account', 'no account'} end
  local after = tonumber(balance) + tonumber(ARGV[2])
  if ARGV[4] ~= '' and after < tonumber(ARGV[4]) then
    return {'insufficient', 'would fall below its floor of ' .. ARGV[4] .. ' units'}
  end
  redis.call('HINCRBY', KEYS[1], 'balance', tonumber(ARGV[2]))
  redis.call('HINCRBY', KEYS[1], 'held', tonumber(ARGV[3]))
  if ARGV[5] == '1' then
    redis.call('HSET', KEYS[1], 'last_activity_at', ARGV[6], 'inactive_flagged_at', '')
  end
  if tonumber(ARGV[10]) ~= 0 then redis.call('HINCRBY', KEYS[1], 'paid', tonumber(ARGV[10])) end
end
redis.call('XADD', KEYS[2], '*', 't', ARGV[9])
if key ~= '' then redis.call('HSET', KEYS[3], key, ARGV[8]) end
return {'ok', ''}
