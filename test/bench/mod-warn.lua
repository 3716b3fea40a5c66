-- wrk script of the /warn bench: like interactions.lua, but every request of the pool is sent
-- once across runs (warm-up, then the measured run): the next unused index is kept in
-- GH_BENCH_POOL .. ".next", so no interaction id is delivered twice (a repeat would take the
-- duplicate path). Past the end of the pool it wraps (and says so at the end).
local pool_file = os.getenv("GH_BENCH_POOL")
dofile(pool_file)
local n = #pool
local state = pool_file .. ".next"

local function read_next()
  local f = io.open(state, "r")
  if not f then return 0 end
  local v = tonumber(f:read("*l")) or 0
  f:close()
  return v
end

local nthreads = 0
local start = read_next()
function setup(thread)
  -- one thread at 64 connections; more threads take blocks a quarter of the pool apart
  thread:set("first", start + nthreads * math.floor(n / 4))
  nthreads = nthreads + 1
end

local k = nil
request = function()
  if k == nil then k = first or 0 end
  local e = pool[(k % n) + 1]
  k = k + 1
  local headers = {}
  headers["Content-Type"] = "application/json"
  headers["X-Signature-Ed25519"] = e[1]
  headers["X-Signature-Timestamp"] = ts
  return wrk.format("POST", "/interactions", headers, e[2])
end

function done(summary, latency, requests)
  local used = start + summary.requests + 1000 -- requests in flight when the run ended were sent too
  local f = io.open(state, "w")
  f:write(tostring(used) .. "\n")
  f:close()
  -- total requests completed over the runs (warm-up included), for the bench's effect check
  local g = io.open(pool_file .. ".sent", "r")
  local sent = 0
  if g then sent = tonumber(g:read("*l")) or 0; g:close() end
  g = io.open(pool_file .. ".sent", "w")
  g:write(tostring(sent + summary.requests) .. "\n")
  g:close()
  if used > n then
    io.stderr:write(string.format("mod-warn: the pool (%d) was shorter than the requests (%d): ids repeated\n", n, used))
  end
end
