-- wrk script: POST pre-signed webhook bodies, each once, in order, round-robin across threads.
-- bench/ingest.py writes the bodies back to back into one data file and a manifest with one line per
-- body: "<offset>\t<length>\t<signature>\t<timestamp>". Run with one wrk thread (-t1): every thread
-- would load the same list and send the same bodies, which the server would count as duplicates.
local manifest = os.getenv("SGB_MANIFEST")
local path = os.getenv("SGB_PATH") or "/webhooks/sendgrid"
local requests = {}
local index = 0

local function load()
  local f = assert(io.open(os.getenv("SGB_DATA"), "rb"))
  local data = f:read("*a")
  f:close()
  for line in io.lines(manifest) do
    local offset, length, sig, ts = line:match("(%d+)\t(%d+)\t([^\t]+)\t([^\t]+)")
    local body = data:sub(tonumber(offset) + 1, tonumber(offset) + tonumber(length))
    requests[#requests + 1] = wrk.format("POST", path, {
      ["Content-Type"] = "application/json",
      ["X-Twilio-Email-Event-Webhook-Signature"] = sig,
      ["X-Twilio-Email-Event-Webhook-Timestamp"] = ts,
    }, body)
  end
end

function init(args)
  load()
end

request = function()
  index = index + 1
  if index > #requests then
    index = 1  -- out of unique bodies: wrap (the server then counts duplicates; the bench sizes avoid it)
  end
  return requests[index]
end

done = function(summary, latency, requests_)
  io.write(string.format(
    '{"requests": %d, "duration_us": %d, "status_errors": %d, "socket_errors": %d, "p50_us": %d, "p99_us": %d, "max_us": %d}\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
