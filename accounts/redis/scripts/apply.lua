-- Apply one planned write atomically: check that the records are still as planned, then write.
-- KEYS: the keys the plan names (one hash tag); ops refer to them by position.
-- ARGV: ops, each as name, argument count, arguments; every check comes before every write,
--       so a refused plan has written nothing.
--   read:    R key field                       the field's value joins the answer
--   replay:  T key field token                 answer {'ok', 'replayed', reads...} if equal
--   checks (refuse with {code, message}, and an E check with the value it found):
--            X key code message                the key exists
--            N key code message                the key does not exist
--            E key field value code message    the field equals value ('' for missing)
--            G key least code message f1 c1 .. sum of c * field is at least least
--   writes:  I key field delta                 HINCRBY
--            H key f1 v1 ..                    HSET
--            S key member / D key member       SADD / SREM
--            A key entry                       XADD * t entry
--            P key value                       SET
--            Z key seconds                     EXPIRE
-- Answers {'ok', '', reads...} when applied.
local reads = {}
local i = 1
local n = #ARGV
while i <= n do
  local op = ARGV[i]
  local count = tonumber(ARGV[i + 1])
  local a = i + 2
  local key = KEYS[tonumber(ARGV[a])]
  if op == 'R' then
    reads[#reads + 1] = redis.call('HGET', key, ARGV[a + 1]) or ''
  elseif op == 'T' then
    if redis.call('HGET', key, ARGV[a + 1]) == ARGV[a + 2] then
      return {'ok', 'replayed', unpack(reads)}
    end
  elseif op == 'X' then
    if redis.call('EXISTS', key) == 0 then return {ARGV[a + 1], ARGV[a + 2]} end
  elseif op == 'N' then
    if redis.call('EXISTS', key) == 1 then return {ARGV[a + 1], ARGV[a + 2]} end
  elseif op == 'E' then
    local found = redis.call('HGET', key, ARGV[a + 1]) or ''
    if found ~= ARGV[a + 2] then return {ARGV[a + 3], ARGV[a + 4], found} end
  elseif op == 'G' then
    local total = 0
    for f = a + 4, i + 1 + count, 2 do
      total = total + tonumber(ARGV[f + 1]) * (tonumber(redis.call('HGET', key, ARGV[f])) or 0)
    end
    if total < tonumber(ARGV[a + 1]) then return {ARGV[a + 2], ARGV[a + 3]} end
  elseif op == 'I' then
    redis.call('HINCRBY', key, ARGV[a + 1], ARGV[a + 2])
  elseif op == 'H' then
    redis.call('HSET', key, unpack(ARGV, a + 1, i + 1 + count))
  elseif op == 'S' then
    redis.call('SADD', key, ARGV[a + 1])
  elseif op == 'D' then
    redis.call('SREM', key, ARGV[a + 1])
  elseif op == 'A' then
    redis.call('XADD', key, '*', 't', ARGV[a + 1])
  elseif op == 'P' then
    redis.call('SET', key, ARGV[a + 1])
  elseif op == 'Z' then
    redis.call('EXPIRE', key, ARGV[a + 1])
  else
    return redis.error_reply('unknown plan op ' .. tostring(op))
  end
  i = a + count
end
return {'ok', '', unpack(reads)}
