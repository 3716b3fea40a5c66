-- wrk script: cycles through a pool of pre-signed interactions (pool.lua from sign-pool.mjs).
local pool_file = os.getenv("GH_BENCH_POOL")
dofile(pool_file)
local i = 0
local n = #pool
function setup(thread)
  thread:set("offset", i)
  i = i + math.floor(n / 4)
end
local k = nil
request = function()
  if k == nil then k = offset or 0 end
  k = (k % n) + 1
  local e = pool[k]
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["X-Signature-Ed25519"] = e[1]
  headers["X-Signature-Timestamp"] = ts
  return wrk.format("POST", "/interactions", headers, e[2])
end
