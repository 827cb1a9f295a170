-- Create a record (a hash, optionally with a set of members) unless it exists.
-- KEYS: 1 record hash, 2 member set (the record hash when none)
-- ARGV: 1 token, 2 number of members, 3.. members, then field/value pairs
local existing = redis.call('HGET', KEYS[1], 'token')
if existing then
  if existing == ARGV[1] then return {'ok', 'replayed'} end
  return {'dup', 'already exists'}
end
local n = tonumber(ARGV[2])
local fields = {}
for i = 3 + n, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], 'token', ARGV[1], unpack(fields))
if n > 0 then
  local members = {}
  for i = 3, 2 + n do members[#members + 1] = ARGV[i] end
  redis.call('SADD', KEYS[2], unpack(members))
end
return {'ok', ''}
