-- Change fields of an existing record; refuses to create one.
-- KEYS: 1 record hash.  ARGV: field/value pairs
if redis.call('EXISTS', KEYS[1]) == 0 then return {'notfound', 'no such record'} end
redis.call('HSET', KEYS[1], unpack(ARGV))
return {'ok', ''}
