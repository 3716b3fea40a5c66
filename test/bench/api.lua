-- wrk script: GET one API path with a session cookie (GH_BENCH_PATH, GH_BENCH_COOKIE).
local path = os.getenv("GH_BENCH_PATH")
local cookie = os.getenv("GH_BENCH_COOKIE")
request = function()
  return wrk.format("GET", path, { ["Cookie"] = cookie, ["Accept"] = "application/json" })
end
