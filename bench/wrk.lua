-- POST bodies for wrk, and a JSON summary on stdout.
-- WRK_REQUESTS names a file of "PATH<TAB>BODY" lines; each wrk thread cycles through them
-- (a single line is sent as wrk's static request, the fastest path).
-- WRK_CHECK_STATUS=1 also counts every non-2xx answer (slower: a Lua call per response).

local requests = {}
local next_request = 1
local threads = {}
local first_path, first_body
non2xx = 0

for line in io.lines(os.getenv("WRK_REQUESTS")) do
  local path, body = line:match("^([^\t]+)\t(.*)$")
  if path then
    first_path, first_body = first_path or path, first_body or body
    requests[#requests + 1] = wrk.format("POST", path, {["Content-Type"] = "application/json"}, body)
  end
end

function setup(thread)
  threads[#threads + 1] = thread
end

if #requests == 1 then
  wrk.method, wrk.path, wrk.body = "POST", first_path, first_body
  wrk.headers["Content-Type"] = "application/json"
else
  function request()
    local r = requests[next_request]
    next_request = next_request % #requests + 1
    return r
  end
end

if os.getenv("WRK_CHECK_STATUS") == "1" then
  function response(status, headers, body)
    if status < 200 or status > 299 then
      non2xx = non2xx + 1
    end
  end
end

function done(summary, latency, requests_)
  local non2xx_total = 0
  for _, thread in ipairs(threads) do
    non2xx_total = non2xx_total + (thread:get("non2xx") or 0)
  end
  local e = summary.errors
  io.write(string.format(
    '\nWRK_JSON {"requests": %d, "duration_us": %d, "bytes": %d, "connect": %d, "read": %d, '
      .. '"write": %d, "status": %d, "timeout": %d, "non2xx": %d, "p50_us": %d, "p90_us": %d, '
      .. '"p99_us": %d, "max_us": %d, "mean_us": %.1f}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, non2xx_total, latency:percentile(50), latency:percentile(90),
    latency:percentile(99), latency.max, latency.mean))
end
