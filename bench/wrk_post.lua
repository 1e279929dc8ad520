-- Origin: ../shared/bench/wrk_post.lua (copied unchanged apart from this note).
-- wrk script: POST a JSON chat-completions body, print one machine-readable line at the end.
-- Environment:
--   BENCH_BODY_FILE  path of the JSON request body (required)
--   BENCH_HEADERS    extra request headers, "Name: value" separated by "|" (optional)
wrk.method = "POST"
local f = assert(io.open(os.getenv("BENCH_BODY_FILE"), "rb"))
wrk.body = f:read("*a")
f:close()
wrk.headers["Content-Type"] = "application/json"
local extra = os.getenv("BENCH_HEADERS") or ""
for item in string.gmatch(extra, "[^|]+") do
  local k, v = string.match(item, "^%s*([^:]+)%s*:%s*(.-)%s*$")
  if k then wrk.headers[k] = v end
end

done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'WRK_JSON {"requests":%d,"duration_us":%d,"bytes":%d,"err_connect":%d,"err_read":%d,' ..
    '"err_write":%d,"err_status":%d,"err_timeout":%d,"lat_p50_us":%d,"lat_p90_us":%d,' ..
    '"lat_p99_us":%d,"lat_mean_us":%.1f,"lat_max_us":%d}\n',
    summary.requests, summary.duration, summary.bytes, e.connect, e.read, e.write, e.status,
    e.timeout, latency:percentile(50), latency:percentile(90), latency:percentile(99),
    latency.mean, latency.max))
end
