-- Confirm (money in) or fail a Single Call receivable, atomically.
-- KEYS: 1 receivable hash, 2 ledger stream, 3 set of failed receivables of the number
-- ARGV: 1 new status, 2 timestamp, 3 token, 4 ledger entry if confirmed, 5 receivable id
local r = redis.call('HMGET', KEYS[1], 'status', 'settle_token')
if not r[1] then return {'notfound', 'no receivable'} end
if r[2] == ARGV[3] then return {'ok', 'replayed'} end
local new = ARGV[1]
local allowed = (r[1] == 'pending' and (new == 'confirmed' or new == 'failed'))
  or (r[1] == 'failed' and new == 'confirmed')
if not allowed then return {'state', 'receivable is ' .. r[1] .. ', not ' .. new} end
if new == 'confirmed' then
  redis.call('XADD', KEYS[2], '*', 't', ARGV[4])
  redis.call('SREM', KEYS[3], ARGV[5])
else
  redis.call('SADD', KEYS[3], ARGV[5])
end
redis.call('HSET', KEYS[1], 'status', new, 'settled_at', ARGV[2], 'settle_token', ARGV[3])
return {'ok', ''}
