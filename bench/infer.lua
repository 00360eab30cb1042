-- wrk script: POST the body in the file $KSV_BENCH_BODY.
-- $KSV_BENCH_HEADER_LEN set (binary tensor extension): the body is a JSON
-- header of that many bytes followed by raw tensors, sent with
-- Inference-Header-Content-Length; otherwise it is plain JSON.
-- No response() callback: it would make wrk hand every reply to Lua;
-- wrk counts non-2xx/3xx replies in summary.errors.status by itself.
local f = assert(io.open(os.getenv("KSV_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
f:close()
local hlen = os.getenv("KSV_BENCH_HEADER_LEN")
if hlen ~= nil and hlen ~= "" then
    wrk.headers["Content-Type"] = "application/octet-stream"
    wrk.headers["Inference-Header-Content-Length"] = hlen
else
    wrk.headers["Content-Type"] = "application/json"
end

done = function(summary, latency, requests)
    io.write(string.format(
        "KSV_RESULT rps=%.1f p50_us=%d p99_us=%d errors=%d requests=%d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99),
        summary.errors.status + summary.errors.connect
            + summary.errors.read + summary.errors.write
            + summary.errors.timeout,
        summary.requests))
end
