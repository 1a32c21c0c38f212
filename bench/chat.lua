-- wrk script for `make bench`: POSTs one small chat request and prints a line
-- "BENCHJSON {...}" at the end (latencies in microseconds).
-- env: BENCH_MODEL, BENCH_API_KEY, BENCH_STREAM=1 (stream + include_usage),
--      BENCH_EXTRA (a JSON fragment added to the body, e.g. '"prompt_variables":{...}'),
--      BENCH_MAX_REQUESTS (stop after that many responses; use with one thread).
local model = os.getenv("BENCH_MODEL") or "bench-model"
local key = os.getenv("BENCH_API_KEY") or "sk-bench"
local stream = os.getenv("BENCH_STREAM") == "1"
local extra = os.getenv("BENCH_EXTRA") or ""
local max_requests = tonumber(os.getenv("BENCH_MAX_REQUESTS") or "0") or 0

wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer " .. key
local tail = ""
if stream then tail = ',"stream":true,"stream_options":{"include_usage":true}' end
if extra ~= "" then tail = tail .. "," .. extra end
wrk.body = '{"model":"' .. model .. '","messages":['
  .. '{"role":"system","content":"You are a terse assistant."},'
  .. '{"role":"user","content":"In one sentence: what does an LLM gateway add?"}'
  .. '],"max_tokens":64,"temperature":0' .. tail .. '}'

if max_requests > 0 then
  local seen = 0
  function response(status, headers, body)
    seen = seen + 1
    if seen == max_requests then
      -- wrk's main thread sleeps for -d anyway: the driver sends SIGINT on this line.
      io.write("BENCHSTOP\n")
      io.flush()
      wrk.thread:stop()
    end
  end
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    'BENCHJSON {"requests":%d,"duration_s":%.3f,"rps":%.1f,'
    .. '"err_connect":%d,"err_read":%d,"err_write":%d,"err_status":%d,"err_timeout":%d,'
    .. '"p50_us":%d,"p99_us":%d,"max_us":%d}\n',
    summary.requests, summary.duration / 1e6, summary.requests / (summary.duration / 1e6),
    e.connect, e.read, e.write, e.status, e.timeout,
    latency:percentile(50), latency:percentile(99), latency.max))
end
