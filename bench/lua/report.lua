-- Shared by every scenario script: print wrk's summary as one JSON line that bench/__main__.py parses.
local report = {}

function report.done(summary, latency, requests)
  local errors = summary.errors
  io.write(string.format(
    'WRK_RESULT {"requests": %d, "duration_us": %d, "bytes": %d, ' ..
    '"errors": {"connect": %d, "read": %d, "write": %d, "status": %d, "timeout": %d}, ' ..
    '"latency_us": {"mean": %.1f, "p50": %d, "p90": %d, "p99": %d, "max": %d}}\n',
    summary.requests, summary.duration, summary.bytes,
    errors.connect, errors.read, errors.write, errors.status, errors.timeout,
    latency.mean, latency:percentile(50), latency:percentile(90), latency:percentile(99), latency.max))
end

-- Comma-separated environment variable as a list of strings.
function report.list(name)
  local items = {}
  for item in string.gmatch(os.getenv(name) or "", "[^,]+") do
    items[#items + 1] = item
  end
  if #items == 0 then
    error(name .. " is empty")
  end
  return items
end

-- Each wrk thread has its own Lua state: seed its generator differently so threads do not walk in step.
function report.seed_random()
  math.randomseed(os.time() + math.floor(os.clock() * 1e6) + tonumber(tostring({}):sub(8), 16))
end

return report
