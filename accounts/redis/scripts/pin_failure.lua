-- One wrong PIN from a station: count it and lock the station in one step,
-- mirroring accounts.station_locks.record_failure, over the facility's keys.
-- KEYS: 1 the station's failures (sorted set: a token per failure, scored by its
--       time in microseconds), 2 the station's lock (hash), 3 the facility's
--       locked stations (sorted set scored by the lock's end in microseconds)
-- ARGV: 1 station, 2 this call's token, 3 the failure's time (us), 4 the window's
--       start (us; failures at or before it lapse), 5 failures that lock,
--       6 the window (ms), 7 the lock's length (ms), 8 the failure's time (text),
--       9 the lock's end (text), 10 the lock's end (us)
-- Every key expires (window, lock) after its last write, so nothing is kept for
-- ever. A call re-sent after a lost reply counts once (the token is the member,
-- and a lock remembers the token that set it).
-- Answers {'ok', ''} or {'locked', failures}.
local failures, lock, locks = KEYS[1], KEYS[2], KEYS[3]
local station, token, at_us, since_us = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local limit, window_ms, lock_ms = tonumber(ARGV[5]), ARGV[6], ARGV[7]

if redis.call('HGET', lock, 'token') == token then
  return {'locked', redis.call('HGET', lock, 'failures')}
end
redis.call('ZREMRANGEBYSCORE', failures, '-inf', since_us)
-- Locks of the facility that have ended (by the failures' clock) leave the list.
redis.call('ZREMRANGEBYSCORE', locks, '-inf', at_us)
redis.call('ZADD', failures, at_us, token)
local count = redis.call('ZCARD', failures)
if count < limit then
  redis.call('PEXPIRE', failures, window_ms)
  return {'ok', ''}
end
redis.call('DEL', failures, lock)
redis.call('HSET', lock, 'locked_at', ARGV[8], 'until', ARGV[9], 'failures', count,
           'token', token)
redis.call('PEXPIRE', lock, lock_ms)
redis.call('ZADD', locks, ARGV[10], station)
-- The list lives as long as its longest lock (GT leaves a longer expiry alone,
-- and treats a key without one as longer still).
if redis.call('PEXPIRE', locks, lock_ms, 'GT') == 0 and redis.call('PTTL', locks) < 0 then
  redis.call('PEXPIRE', locks, lock_ms)
end
return {'locked', tostring(count)}
