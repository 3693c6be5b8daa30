-- wrk script: every request carries `Authorization: Bearer $TOKEN` (and an API key header when
-- API_KEY is set), for measuring routes behind the jwt / api_key stages.
--   TOKEN=eyJ... wrk -t1 -c64 -d10s --latency -s loadtest/scripts/auth.lua http://127.0.0.1:8080/api
local token = os.getenv("TOKEN") or "example-token"
local api_key = os.getenv("API_KEY")
wrk.headers["Authorization"] = "Bearer " .. token
if api_key then
  wrk.headers["X-Api-Key"] = api_key
end
