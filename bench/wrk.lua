-- wrk script: round-robin over the paths in $PATHS, with an optional bearer token
-- ($TOKEN) and Cache-Control ($CACHE_CONTROL).
local paths = {}
for line in io.lines(os.getenv("PATHS")) do paths[#paths + 1] = line end
local headers = {}
if os.getenv("TOKEN") and os.getenv("TOKEN") ~= "" then
  headers["Authorization"] = "Bearer " .. os.getenv("TOKEN")
end
if os.getenv("CACHE_CONTROL") and os.getenv("CACHE_CONTROL") ~= "" then
  headers["Cache-Control"] = os.getenv("CACHE_CONTROL")
end
local i = 0
request = function()
  i = i + 1
  return wrk.format("GET", paths[(i % #paths) + 1], headers)
end
