-- Approve, reject (money back to the account) or pay a refund, atomically.
-- KEYS: 1 account hash, 2 ledger stream, 3 refund hash
-- ARGV: 1 new status, 2 timestamp, 3 token, 4 ledger entry if paid, 5 ledger entry if rejected
local r = redis.call('HMGET', KEYS[3], 'status', 'amount', 'decide_token')
if not r[1] then return {'notfound', 'no refund'} end
if r[3] == ARGV[3] then return {'ok', 'replayed'} end
local new = ARGV[1]
local allowed = (r[1] == 'pending_review' and (new == 'approved' or new == 'rejected'))
  or (r[1] == 'approved' and new == 'paid')
if not allowed then return {'state', 'refund is ' .. r[1] .. ', cannot be ' .. new} end
if new == 'paid' then
  redis.call('XADD', KEYS[2], '*', 't', ARGV[4])
elseif new == 'rejected' then
  redis.call('HINCRBY', KEYS[1], 'balance', tonumber(r[2]))
  redis.call('XADD', KEYS[2], '*', 't', ARGV[5])
end
redis.call('HSET', KEYS[3], 'status', new, 'decided_at', ARGV[2], 'decide_token', ARGV[3])
return {'ok', ''}
