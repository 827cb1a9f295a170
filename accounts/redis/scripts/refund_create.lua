-- Move a refund's amount from the account to refund-payable and record the refund, atomically.
-- KEYS: 1 account hash, 2 ledger stream, 3 refund hash, 4 refund set of the account
-- ARGV: 1 amount, 2 token, 3 ledger entry, 4 refund id, 5.. refund field/value pairs
local existing = redis.call('HGET', KEYS[3], 'token')
if existing then
  if existing == ARGV[2] then return {'ok', 'replayed'} end
  return {'dup', 'refund ' .. ARGV[4] .. ' already exists'}
end
local balance = redis.call('HGET', KEYS[1], 'balance')
if not balance then return {'unknown_account', 'no account'} end
if tonumber(balance) - tonumber(ARGV[1]) < 0 then
  return {'insufficient', 'balance is smaller than ' .. ARGV[1] .. ' units'}
end
redis.call('HINCRBY', KEYS[1], 'balance', -tonumber(ARGV[1]))
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[3], 'token', ARGV[2], unpack(fields))
redis.call('SADD', KEYS[4], ARGV[4])
redis.call('XADD', KEYS[2], '*', 't', ARGV[3])
return {'ok', ''}
