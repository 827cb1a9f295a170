-- Apply one planned write atomically: check that the records are still as planned, then write.
-- KEYS: the keys the plan names (one hash tag); ops refer to them by position.
-- ARGV[1]: the ops as one JSON array, each op an array of name, key position, arguments;
--       every check comes before every write, so a refused plan has written nothing.
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
-- Money (delta, least) comes as text: a JSON number is a double here.
-- Answers {'ok', '', reads...} when applied.
local reads = {}
local ops = cjson.decode(ARGV[1])
for i = 1, #ops do
  local op = ops[i]
  local name = op[1]
  local key = KEYS[op[2]]
  if name == 'R' then
    reads[#reads + 1] = redis.call('HGET', key, op[3]) or ''
  elseif name == 'T' then
    if redis.call('HGET', key, op[3]) == op[4] then
      return {'ok', 'replayed', unpack(reads)}
    end
  elseif name == 'X' then
    if redis.call('EXISTS', key) == 0 then return {op[3], op[4]} end
  elseif name == 'N' then
    if redis.call('EXISTS', key) == 1 then return {op[3], op[4]} end
  elseif name == 'E' then
    local found = redis.call('HGET', key, op[3]) or ''
    if found ~= op[4] then return {op[5], op[6], found} end
  elseif name == 'G' then
    local total = 0
    for f = 6, #op, 2 do
      total = total + op[f + 1] * (tonumber(redis.call('HGET', key, op[f])) or 0)
    end
    if total < tonumber(op[3]) then return {op[4], op[5]} end
  elseif name == 'I' then
    redis.call('HINCRBY', key, op[3], op[4])
  elseif name == 'H' then
    redis.call('HSET', key, unpack(op, 3))
  elseif name == 'S' then
    redis.call('SADD', key, op[3])
  elseif name == 'D' then
    redis.call('SREM', key, op[3])
  elseif name == 'A' then
    redis.call('XADD', key, '*', 't', op[3])
  elseif name == 'P' then
    redis.call('SET', key, op[3])
  elseif name == 'Z' then
    redis.call('EXPIRE', key, op[3])
  else
    return redis.error_reply('unknown plan op ' .. tostring(name))
  end
end
return {'ok', '', unpack(reads)}
