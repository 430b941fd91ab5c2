-- 90% reads of the latest page, 10% sends, over BENCH_CHANNELS as one of BENCH_TOKENS.
local report = require("report")
local channels, tokens
local sent = 0
local WRITE_SHARE = 0.1

function init(args)
  report.seed_random()
  channels = report.list("BENCH_CHANNELS")
  tokens = report.list("BENCH_TOKENS")
end

function request()
  local channel = channels[math.random(#channels)]
  local path = "/api/v10/channels/" .. channel .. "/messages"
  local headers = {Authorization = "Bot " .. tokens[math.random(#tokens)]}
  if math.random() < WRITE_SHARE then
    sent = sent + 1
    headers["Content-Type"] = "application/json"
    return wrk.format("POST", path, headers, string.format('{"content": "mixed workload message %d"}', sent))
  end
  return wrk.format("GET", path .. "?limit=50", headers)
end

done = report.done
