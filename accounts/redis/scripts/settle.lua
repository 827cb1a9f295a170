-- A call's settlement or release (accounts.postings.plan_settle), as apply.lua would apply
-- it, with the plan's values by position: this runs for every call.
-- KEYS: 1 reservation, 2 the tag's open set, 3 ledger stream,
--       4 payer (account or subscription; the reservation itself when nobody held),
--       5 receivable and 6 the tag's receivable set (both the reservation when none),
--       7.. other keys that expire with the settled reservation
-- ARGV: 1 token, 2 reservation id, 3 units it must hold, 4 payer kind
--       (account|subscription|''), 5 field a, 6 delta a, 7 field b, 8 delta b (a field ''
--       is not changed), 9 ledger entry ('' when none), 10 seconds the settled records are
--       kept, 11 status, 12 settled at, 13 talked seconds, 14 charged units (the settled
--       reservation's fields), 15 the facility of a talked call on an account ('' when none:
--       else the account's last call and activity become the settlement's time), 16 the
--       receivable's id ('' when none), 17.. its fields and values
-- Answers {'ok', '' or 'replayed', heartbeat seconds, heartbeat time}, else the refusal
-- {code, message}; a refused settlement has written nothing.
local r = redis.call('HMGET', KEYS[1], 'status', 'settle_token', 'amount',
  'heartbeat_seconds', 'heartbeat_at')
if not r[1] then return {'notfound', 'no reservation ' .. ARGV[2]} end
local beat, beat_at = r[4] or '', r[5] or ''
if r[2] == ARGV[1] then return {'ok', 'replayed', beat, beat_at} end
if r[1] ~= 'open' then
  return {'state', 'reservation ' .. ARGV[2] .. ' is already settled', r[1]}
end
if r[3] ~= ARGV[3] then
  return {'invalid', 'reservation ' .. ARGV[2] .. ' does not hold ' .. ARGV[3] .. ' units', r[3]}
end
local kind = ARGV[4]
if kind == 'subscription' and redis.call('EXISTS', KEYS[4]) == 0 then
  return {'notfound', 'no subscription'}
end
local receivable = ARGV[16]
if receivable ~= '' and redis.call('EXISTS', KEYS[5]) == 1 then
  return {'dup', 'receivable ' .. receivable .. ' exists'}
end
redis.call('HSET', KEYS[1], 'status', ARGV[11], 'settled_at', ARGV[12],
  'talked_seconds', ARGV[13], 'charged', ARGV[14], 'settle_token', ARGV[1])
redis.call('SREM', KEYS[2], ARGV[2])
if ARGV[5] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[5], ARGV[6]) end
if ARGV[7] ~= '' then redis.call('HINCRBY', KEYS[4], ARGV[7], ARGV[8]) end
if ARGV[15] ~= '' then
  redis.call('HSET', KEYS[4], 'last_call_at', ARGV[12], 'last_call_facility', ARGV[15],
    'last_activity_at', ARGV[12], 'inactive_flagged_at', '')
end
if receivable ~= '' then
  redis.call('HSET', KEYS[5], unpack(ARGV, 17))
  redis.call('SADD', KEYS[6], receivable)
end
if ARGV[9] ~= '' then redis.call('XADD', KEYS[3], '*', 't', ARGV[9]) end
local keep = ARGV[10]
redis.call('EXPIRE', KEYS[1], keep)
for i = 7, #KEYS do redis.call('EXPIRE', KEYS[i], keep) end
return {'ok', '', beat, beat_at}
