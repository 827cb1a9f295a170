-- wrk script: every request quotes a different call (a random valid Texas number
-- and length), so almost none is answered from the quote cache.
math.randomseed(os.time())
request = function()
  local number = string.format("%%2B1512%03d%04d", math.random(200, 999), math.random(0, 9999))
  local minutes = math.random(1, 20)
  return wrk.format("GET", "/v1/quote?facility=tx-state-prison&number=" .. number ..
                    "&minutes=" .. minutes)
end
