-- Claim a hash field for an owner (a number for an account, a Debit account for a person).
-- KEYS: 1 hash.  ARGV: 1 field, 2 owner, 3 release instead of claim (1|0)
local current = redis.call('HGET', KEYS[1], ARGV[1])
if ARGV[3] == '1' then
  if current == ARGV[2] then redis.call('HDEL', KEYS[1], ARGV[1]) end
  return {'ok', ''}
end
if current and current ~= ARGV[2] then return {'state', 'claimed by ' .. current} end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
return {'ok', ''}
