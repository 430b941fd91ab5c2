-- PUT a reaction (one of a few emoji) on one of BENCH_MESSAGES ("channel_id/message_id") as one of BENCH_TOKENS.
local report = require("report")
local messages, tokens
-- URL-encoded unicode emoji: thumbs up, red heart, party popper.
local emoji = {"%F0%9F%91%8D", "%E2%9D%A4%EF%B8%8F", "%F0%9F%8E%89"}

function init(args)
  report.seed_random()
  messages = report.list("BENCH_MESSAGES")
  tokens = report.list("BENCH_TOKENS")
end

function request()
  local channel, message = string.match(messages[math.random(#messages)], "(%d+)/(%d+)")
  local path = string.format("/api/v10/channels/%s/messages/%s/reactions/%s/@me", channel, message,
                             emoji[math.random(#emoji)])
  return wrk.format("PUT", path, {Authorization = "Bot " .. tokens[math.random(#tokens)]})
end

done = report.done
