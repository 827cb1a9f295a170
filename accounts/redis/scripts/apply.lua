-- Apply one planned write atomically: check that the records are still as planned, then write.
-- KEYS: the keys the plan names (one hash tag); ops refer to them by position.
-- ARGV[1]: the ops' parts joined by the unit separator (byte 31), or (when some text holds
--       that byte) a JSON array of them: each op as name, argument count, arguments; every
--       check comes before every write, so a refused plan has written nothing.
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
local text = ARGV[1]
local ops = {}
if string.byte(text, 1) == 91 then -- '['
  ops = cjson.decode(text)
elseif text ~= '' then
  local start, count = 1, 0
  while true do
    local stop = string.find(text, '\31', start, true)
    count = count + 1
    if not stop then
      ops[count] = string.sub(text, start)
      break
    end
    ops[count] = string.sub(text, start, stop - 1)
    start = stop + 1
  end
end
local reads = {}
local i = 1
local n = #ops
while i <= n do
  local op = ops[i]
  local count = tonumber(ops[i + 1])
  local a = i + 2
  local key = KEYS[tonumber(ops[a])]
  if op == 'R' then
    reads[#reads + 1] = redis.call('HGET', key, ops[a + 1]) or ''
  elseif op == 'T' then
    if redis.call('HGET', key, ops[a + 1]) == ops[a + 2] then
      return {'ok', 'replayed', unpack(reads)}
    end
  elseif op == 'X' then
    if redis.call('EXISTS', key) == 0 then return {ops[a + 1], ops[a + 2]} end
  elseif op == 'N' then
    if redis.call('EXISTS', key) == 1 then return {ops[a + 1], ops[a + 2]} end
  elseif op == 'E' then
    local found = redis.call('HGET', key, ops[a + 1]) or ''
    if found ~= ops[a + 2] then return {ops[a + 3], ops[a + 4], found} end
  elseif op == 'G' then
    local total = 0
    for f = a + 4, i + 1 + count, 2 do
      total = total + tonumber(ops[f + 1]) * (tonumber(redis.call('HGET', key, ops[f])) or 0)
    end
    if total < tonumber(ops[a + 1]) then return {ops[a + 2], ops[a + 3]} end
  elseif op == 'I' then
    redis.call('HINCRBY', key, ops[a + 1], ops[a + 2])
  elseif op == 'H' then
    redis.call('HSET', key, unpack(ops, a + 1, i + 1 + count))
  elseif op == 'S' then
    redis.call('SADD', key, ops[a + 1])
  elseif op == 'D' then
    redis.call('SREM', key, ops[a + 1])
  elseif op == 'A' then
    redis.call('XADD', key, '*', 't', ops[a + 1])
  elseif op == 'P' then
    redis.call('SET', key, ops[a + 1])
  elseif op == 'Z' then
    redis.call('EXPIRE', key, ops[a + 1])
  else
    return redis.error_reply('unknown plan op ' .. tostring(op))
  end
  i = a + count
end
return {'ok', '', unpack(reads)}
