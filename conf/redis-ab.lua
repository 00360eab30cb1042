-- ngx_kserve: "is v2 better?", answered from Redis alone (docs/redis.md).
--
--   redis-cli --eval conf/redis-ab.lua , ROUTE          the report
--   redis-cli --eval conf/redis-ab.lua , ROUTE mark     start a window
--
-- The report reads the per-variant counters nginx writes to
-- kserve:stats:ROUTE:VARIANT (every variant in kserve:variants:ROUTE) and
-- gives, per variant: requests, success and failure rates, answers over
-- the adaptive SLO, mean latency and the histogram bucket holding the
-- median, the 95th and the 99th percentile; then each variant against the
-- first one (sorted by name): the difference of success rates with its z
-- score (a two-proportion z-test: |z| >= 1.96 is a difference at 95 %
-- confidence) and the ratio of mean latencies.  Counts are since nginx
-- first wrote them, or, after "mark", since the mark: mark copies the
-- counters to kserve:ab:ROUTE:VARIANT, and the report subtracts them.
-- With strategy adaptive, each nginx node's last window
-- (kserve:adaptive:ROUTE) follows.  Read-only except for "mark".

local route = ARGV[1]
if route == nil or route == "" then
    return redis.error_reply(
        "usage: redis-cli --eval redis-ab.lua , ROUTE [mark]")
end

local bounds = { 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000 }
local fields = { "requests", "success", "failure", "client_error",
                 "over_slo", "latency_sum_us" }
for _, b in ipairs(bounds) do
    fields[#fields + 1] = "latency_le_" .. b .. "ms"
end
fields[#fields + 1] = "latency_le_inf"

local variants = redis.call("SMEMBERS", "kserve:variants:" .. route)
table.sort(variants)
if #variants == 0 then
    return redis.error_reply("no variants of route " .. route ..
                             " in kserve:variants:" .. route)
end

local function read(key)
    local values = redis.call("HMGET", key, unpack(fields))
    local t = {}
    for i, f in ipairs(fields) do
        t[f] = tonumber(values[i]) or 0
    end
    return t
end

if ARGV[2] == "mark" then
    local now = redis.call("TIME")
    for _, v in ipairs(variants) do
        local stats = read("kserve:stats:" .. route .. ":" .. v)
        local mark = "kserve:ab:" .. route .. ":" .. v
        redis.call("DEL", mark)
        for _, f in ipairs(fields) do
            redis.call("HSET", mark, f, stats[f])
        end
        redis.call("HSET", mark, "marked_ms", now[1] * 1000 +
                   math.floor(now[2] / 1000))
    end
    return "marked " .. #variants .. " variants of " .. route
end

local function pct(x)
    return string.format("%.2f%%", 100 * x)
end

local out = {}
local rows = {}
local since = "since nginx first counted"

for _, v in ipairs(variants) do
    local now = read("kserve:stats:" .. route .. ":" .. v)
    local mark = "kserve:ab:" .. route .. ":" .. v
    local base = read(mark)
    local at = tonumber(redis.call("HGET", mark, "marked_ms"))
    if at ~= nil then
        local t = redis.call("TIME")
        since = string.format("since the mark %.0f s ago",
                              t[1] - math.floor(at / 1000))
    end
    local d = {}
    for _, f in ipairs(fields) do
        d[f] = now[f] - base[f]
    end

    local answered = d.success + d.failure
    local r = { name = v, n = answered, ok = d.success,
                rate = answered > 0 and d.success / answered or 0,
                mean = d.requests > 0 and d.latency_sum_us / d.requests / 1000
                       or 0 }

    local function quantile(q)
        for _, b in ipairs(bounds) do
            if d["latency_le_" .. b .. "ms"] >= q * d.requests then
                return "<=" .. b .. "ms"
            end
        end
        return ">10000ms"
    end

    rows[#rows + 1] = r
    out[#out + 1] = string.format(
        "%s: %.0f requests, success %s, failure %s, client_error %.0f, " ..
        "over_slo %.0f, mean %.1f ms, p50 %s, p95 %s, p99 %s",
        v, d.requests, pct(r.rate),
        pct(answered > 0 and d.failure / answered or 0), d.client_error,
        d.over_slo, r.mean,
        d.requests > 0 and quantile(0.5) or "-",
        d.requests > 0 and quantile(0.95) or "-",
        d.requests > 0 and quantile(0.99) or "-")
end

table.insert(out, 1, "route " .. route .. ", " .. since .. ":")

local a = rows[1]
for i = 2, #rows do
    local b = rows[i]
    local line = b.name .. " vs " .. a.name .. ": "
    if a.n > 0 and b.n > 0 then
        local p = (a.ok + b.ok) / (a.n + b.n)
        local se = math.sqrt(p * (1 - p) * (1 / a.n + 1 / b.n))
        local z = se > 0 and (b.rate - a.rate) / se or 0
        local verdict = "no difference at 95% confidence"
        if z >= 1.96 then
            verdict = b.name .. " succeeds more often"
        elseif z <= -1.96 then
            verdict = b.name .. " fails more often"
        end
        line = line .. string.format(
            "success %s vs %s (z = %.2f: %s); mean latency %.1f vs %.1f ms",
            pct(b.rate), pct(a.rate), z, verdict, b.mean, a.mean)
        if a.mean > 0 then
            line = line .. string.format(" (x%.2f)", b.mean / a.mean)
        end
    else
        line = line .. "not enough answers to compare"
    end
    out[#out + 1] = line
end

local windows = redis.call("HGETALL", "kserve:adaptive:" .. route)
for i = 1, #windows, 2 do
    out[#out + 1] = "adaptive window of node " .. windows[i] .. ": " ..
                    string.gsub(windows[i + 1], "\n", "; ")
end

return out
