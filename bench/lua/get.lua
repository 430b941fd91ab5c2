-- GET one of BENCH_PATHS (comma-separated, picked at random per request) as one of BENCH_TOKENS.
local report = require("report")
local paths, tokens

function init(args)
  report.seed_random()
  paths = report.list("BENCH_PATHS")
  tokens = report.list("BENCH_TOKENS")
end

function request()
  local headers = {Authorization = "Bot " .. tokens[math.random(#tokens)]}
  return wrk.format("GET", paths[math.random(#paths)], headers)
end

done = report.done
