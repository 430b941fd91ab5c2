-- POST a new message to one of BENCH_CHANNELS as one of BENCH_TOKENS.
local report = require("report")
local channels, tokens
local sent = 0

function init(args)
  report.seed_random()
  channels = report.list("BENCH_CHANNELS")
  tokens = report.list("BENCH_TOKENS")
end

function request()
  sent = sent + 1
  local headers = {Authorization = "Bot " .. tokens[math.random(#tokens)], ["Content-Type"] = "application/json"}
  local body = string.format('{"content": "benchmark message %d from a wrk thread, about as long as a chat line"}', sent)
  return wrk.format("POST", "/api/v10/channels/" .. channels[math.random(#channels)] .. "/messages", headers, body)
end

done = report.done
