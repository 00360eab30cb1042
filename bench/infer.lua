-- wrk script: POST the body in $KSV_BENCH_BODY (a file) as JSON.
local f = assert(io.open(os.getenv("KSV_BENCH_BODY"), "rb"))
wrk.method = "POST"
wrk.body = f:read("*a")
wrk.headers["Content-Type"] = "application/json"
f:close()

local non2xx = 0
response = function(status, headers, body)
    if status ~= 200 then non2xx = non2xx + 1 end
end

done = function(summary, latency, requests)
    io.write(string.format("KSV_RESULT rps=%.1f p50_us=%d p99_us=%d errors=%d\n",
        summary.requests / (summary.duration / 1e6),
        latency:percentile(50), latency:percentile(99),
        summary.errors.status + summary.errors.connect
            + summary.errors.read + summary.errors.write
            + summary.errors.timeout))
end
