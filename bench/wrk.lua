-- POST bodies for wrk, and a JSON summary on stdout.
-- WRK_REQUESTS names a file of "PATH<TAB>BODY FILE<TAB>Name: value<TAB>..." lines: a request's
-- path, the file holding its body (read as bytes, so binary bodies go as they are) and its
-- headers. Each wrk thread cycles through them (a single line is sent as wrk's static request,
-- the fastest path).
-- WRK_CHECK_STATUS=1 also counts every non-2xx answer (slower: a Lua call per response).

local requests = {}
local next_request = 1
local threads = {}
non2xx = 0

local function read_bytes(path)
  local file = assert(io.open(path, "rb"))
  local bytes = file:read("*a")
  file:close()
  return bytes
end

for line in io.lines(os.getenv("WRK_REQUESTS")) do
  local fields = {}
  for field in line:gmatch("[^\t]+") do
    fields[#fields + 1] = field
  end
  local request = {path = fields[1], body = read_bytes(fields[2]), headers = {}}
  for i = 3, #fields do
    local name, value = fields[i]:match("^([^:]+): (.*)$")
    request.headers[name] = value
  end
  requests[#requests + 1] = request
end

function setup(thread)
  threads[#threads + 1] = thread
end

if #requests == 1 then
  local only = requests[1]
  wrk.method, wrk.path, wrk.body = "POST", only.path, only.body
  for name, value in pairs(only.headers) do
    wrk.headers[name] = value
  end
else
  local formatted = {}
  for i, r in ipairs(requests) do
    formatted[i] = wrk.format("POST", r.path, r.headers, r.body)
  end
  function request()
    local r = formatted[next_request]
    next_request = next_request % #formatted + 1
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
