-- Record a subscription and the payment for it, atomically.
-- KEYS: 1 subscription hash, 2 subscription set of the number, 3 ledger stream,
--       4 idempotency hash of the tag
-- ARGV: 1 subscription id, 2 token, 3 idempotency key, 4 ledger entry ('' when free),
--       5.. subscription field/value pairs
local existing = redis.call('HGET', KEYS[1], 'token')
if existing then
  if existing == ARGV[2] then return {'ok', 'replayed'} end
  return {'dup', 'subscription ' .. ARGV[1] .. ' already exists'}
end
if ARGV[3] ~= '' and redis.call('HEXISTS', KEYS[4], ARGV[3]) == 1 then
  return {'dup', 'idempotency key ' .. ARGV[3] .. ' was already used'}
end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'token', ARGV[2], unpack(fields))
redis.call('SADD', KEYS[2], ARGV[1])
if ARGV[4] ~= '' then redis.call('XADD', KEYS[3], '*', 't', ARGV[4]) end
if ARGV[3] ~= '' then redis.call('HSET', KEYS[4], ARGV[3], ARGV[2]) end
return {'ok', ''}
