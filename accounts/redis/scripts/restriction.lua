-- Add or remove one of a person's restrictions in one step over the person hash.
-- KEYS: 1 person hash.  ARGV: 1 'add' or 'remove', 2 kind, 3 until ('' when none), 4 note
-- The restrictions are the JSON list in the hash's 'restrictions' field. Two are
-- equal when kind, until (fixed-width UTC text) and note are equal, which is
-- what the restriction's stable id is made of. Answers {'ok', '1'} when the list
-- changed, {'ok', '0'} when it did not (already there, or nothing to remove).
if redis.call('EXISTS', KEYS[1]) == 0 then return {'notfound', 'no such person'} end
local op, kind, ends, note = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local raw = redis.call('HGET', KEYS[1], 'restrictions')
local list = {}
if raw and raw ~= '' then list = cjson.decode(raw) end

local function text(value)
  if value == nil or value == cjson.null then return '' end
  return value
end

local function same(r)
  return r['kind'] == kind and text(r['until']) == ends and text(r['note']) == note
end

local kept = {}
local found = false
for _, r in ipairs(list) do
  if same(r) then found = true end
  if not (op == 'remove' and same(r)) then kept[#kept + 1] = r end
end

if op == 'add' then
  if found then return {'ok', '0'} end
  local entry = {kind = kind, note = note}
  if ends == '' then entry['until'] = cjson.null else entry['until'] = ends end
  kept[#kept + 1] = entry
elseif op == 'remove' then
  if not found then return {'ok', '0'} end
else
  return {'invalid', 'unknown operation ' .. op}
end

-- cjson writes an empty table as an object; the list must stay a list.
local out = '[]'
if #kept > 0 then out = cjson.encode(kept) end
redis.call('HSET', KEYS[1], 'restrictions', out)
return {'ok', '1'}
