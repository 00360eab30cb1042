#!/usr/bin/env python3
"""Routing cost: a routed name with 3 variants vs. calling a model directly.

One run starts, in a private temporary directory and on free ports:

  redis-server      the Redis that nginx polls for weights and writes
                    statistics to (kserve_redis ... interval=500ms)
  kserve-worker     on a repository of three identical copies of
                    conf/models/identity_fp32: bench_a, bench_b, bench_c
  nginx             conf/nginx.conf filled in as conf/run.sh does (2 nginx
                    workers), with its `fraud` route replaced by
                      kserve_route bench { variant bench_a; variant bench_b;
                                           variant bench_c; }
                    (equal weights, default strategy: weighted random), a
                    second route over the same variants
                      kserve_route bench_adaptive { ...;
                          strategy adaptive interval=1s window=5s; }
                    and access_log off (a constant cost to both sides that
                    would only dilute the difference)

then drives, with wrk and bench/infer.lua (the same JSON body: 16 FP32),

  direct     POST /v2/models/bench_a/infer
  routed     POST /v2/models/bench/infer, weights 1/1/1 (nginx.conf)
  routed_1   the same, with weights 1/0/0 set in Redis (HSET
             kserve:route:bench), so every request lands on bench_a as
             the direct ones do: the gateway's own routing cost without
             the effect of spreading load over three Python instances
  adaptive_1 POST /v2/models/bench_adaptive/infer, strategy adaptive with
             operator weights 1/0/0 in Redis (kserve:route:bench_adaptive,
             set once): the adaptive strategy's own cost (counting every
             answer, the shares it derives each second, its Redis
             exchange) on the same single instance
  adaptive   the same route with weights 1/1/1: traffic spread by the
             learnt shares

alternating direct, routed, routed_1, direct, ... (--rounds of each per
concurrency level) so that drift of a shared machine hits all alike;
figures are medians over the rounds.  Around every run it reads Redis'
`total_commands_processed` (INFO stats; the INFO call itself is one
command and is subtracted) and INFO commandstats, and the CPU time of
the nginx workers and of kserve-worker + its instances (/proc), per
request: on a busy machine that is steadier than infer/s.  With
--profile it also samples one nginx worker with `perf record -g` during
an extra routed run.

Results: a Markdown table on stdout and in --out (default
docs/benchmarks-routing.md) and raw JSON next to it with --json.
Every process it starts is stopped by pid at the end.
"""

import argparse
import datetime
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import time

from ksv_bench import (TOP, children, copy_binaries, cpu_seconds,
                       fill_nginx_conf, free_port, http, make_log, sh,
                       start_nginx, start_worker, stop_proc, wait_ready)
import ksv_bench

VARIANTS = ["bench_a", "bench_b", "bench_c"]
ROUTE = "bench"
ADAPTIVE = "bench_adaptive"
# direct: bench_a; routed: the route, weights 1/1/1 (nginx.conf);
# routed_1: the same route with weights 1/0/0 from Redis, so that every
# request lands on bench_a as the direct ones do: the gateway's own cost
# without the effect of spreading the load over three Python instances
KINDS = ["direct", "routed", "routed_1", "adaptive_1", "adaptive"]
ROUTE_OF = {"routed": ROUTE, "routed_1": ROUTE, "adaptive_1": ADAPTIVE,
            "adaptive": ADAPTIVE}
DIRECT = VARIANTS[0]
BODY = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 16],
                               "datatype": "FP32",
                               "data": [float(v) for v in range(1, 17)]}]},
                  separators=(",", ":")).encode()


log = make_log("routing")


class Gateway:
    def __init__(self, work):
        self.work = work
        self.port = free_port()
        self.redis_port = free_port()
        self.endpoint = "ipc://%s/kserve.sock" % work
        self.procs = {}

    def url(self, model):
        return "http://127.0.0.1:%d/v2/models/%s/infer" % (self.port, model)

    def make_repository(self):
        """bench_a/b/c: identity_fp32's config under another name, its
        version directory (model.py) linked."""
        src = os.path.join(TOP, "conf", "models", "identity_fp32")
        repo = os.path.join(self.work, "models")
        for name in VARIANTS:
            d = os.path.join(repo, name)
            os.makedirs(d)
            with open(os.path.join(src, "config.pbtxt")) as f:
                cfg = f.read()
            cfg, n = re.subn(r'(?m)^name:\s*"identity_fp32"',
                             'name: "%s"' % name, cfg)
            if n != 1:
                raise RuntimeError("identity_fp32/config.pbtxt: no name line")
            with open(os.path.join(d, "config.pbtxt"), "w") as f:
                f.write(cfg)
            os.symlink(os.path.join(src, "1"), os.path.join(d, "1"))
        return repo

    def nginx_conf(self, module):
        with open(os.path.join(TOP, "conf", "nginx.conf")) as f:
            conf = f.read()
        route = ("kserve_route %s {\n%s    }" % (ROUTE, "".join(
            "        variant  %s  weight=1;\n" % v for v in VARIANTS)))
        route += ("\n    kserve_route %s {\n%s        strategy adaptive "
                  "interval=1s window=5s;\n    }" % (ADAPTIVE, "".join(
                      "        variant  %s  weight=1;\n" % v
                      for v in VARIANTS)))
        conf, n = re.subn(r"(?ms)^    kserve_route fraud \{.*?^    \}", route, conf)
        if n != 1:
            raise RuntimeError("conf/nginx.conf: no `kserve_route fraud` block")
        conf, n = re.subn(r"kserve_redis\s+127\.0\.0\.1:6379",
                          "kserve_redis  127.0.0.1:%d" % self.redis_port, conf)
        if n != 1:
            raise RuntimeError("conf/nginx.conf: no `kserve_redis 127.0.0.1:6379`")
        conf, n = re.subn(r"(?m)^(\s*)access_log\s+[^;]+;", r"\1access_log off;", conf)
        if n != 1:
            raise RuntimeError("conf/nginx.conf: no access_log line")
        return fill_nginx_conf(conf, module, self.work,
                               "127.0.0.1:%d" % self.port, self.endpoint)

    def start(self):
        work = self.work
        bindir = os.path.join(work, "bin")
        copy_binaries(bindir)
        repo = self.make_repository()

        self.procs["redis"] = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=open(os.path.join(work, "redis.log"), "w"),
            stderr=subprocess.STDOUT)
        self.procs["worker"] = start_worker(bindir, repo, self.endpoint, work)
        self.procs["nginx"] = start_nginx(work, self.nginx_conf(
            os.path.join(bindir, "ngx_http_kserve_module.so")))

        deadline = time.time() + 60
        wait_ready(["http://127.0.0.1:%d/v2/models/%s/ready" % (self.port, model)
                    for model in VARIANTS + [ROUTE]], self.procs, 60, work)
        # every nginx worker connected to Redis: the `kserve:routes` set
        # is written on each connect
        while self.redis("SISMEMBER", "kserve:routes", ROUTE) != "1":
            if time.time() > deadline:
                raise RuntimeError("nginx never wrote kserve:routes to redis")
            time.sleep(0.2)

    def stop(self):
        for name in ("nginx", "worker", "redis"):
            stop_proc(self.procs.get(name))

    def redis(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.redis_port)] + list(args),
                              capture_output=True, text=True, timeout=10).stdout.strip()

    def redis_commands(self):
        """total_commands_processed; this INFO counts itself once (later)."""
        m = re.search(r"total_commands_processed:(\d+)", self.redis("INFO", "stats"))
        return int(m.group(1))

    def redis_commandstats(self):
        out = {}
        for line in self.redis("INFO", "commandstats").splitlines():
            m = re.match(r"cmdstat_([a-z|]+):calls=(\d+)", line)
            if m:
                out[m.group(1)] = int(m.group(2))
        return out

    def variant_requests(self, route=ROUTE):
        """{variant: requests} of the route, all nginx workers (/metrics)."""
        st, _h, body = http("GET", "http://127.0.0.1:%d/metrics" % self.port)
        out = dict.fromkeys(VARIANTS, 0)
        for m in re.finditer(r'(?m)^ngx_kserve_route_requests_total\{route="%s",'
                             r'variant="([^"]+)",outcome="[a-z_]+"\} (\d+)' % route,
                             body.decode(errors="replace")):
            out[m.group(1)] = out.get(m.group(1), 0) + int(m.group(2))
        return out

    def set_weights(self, weights, interval=0.5, route=ROUTE):
        """HSET kserve:route:ROUTE (None: DEL, back to nginx.conf), then
        wait until every nginx worker has polled it (two intervals)."""
        if weights is None:
            self.redis("DEL", "kserve:route:" + route)
        else:
            args = []
            for v in VARIANTS:
                args += [v, str(weights[v])]
            self.redis("HSET", "kserve:route:" + route, *args)
        time.sleep(2 * interval + 0.3)

    def cpu(self):
        """{role: CPU seconds so far}: nginx workers; kserve-worker and
        its instances."""
        w = self.procs["worker"].pid
        return {"nginx": cpu_seconds(self.nginx_workers()),
                "worker": cpu_seconds([w] + children(w))}

    def nginx_workers(self):
        return sorted(children(self.procs["nginx"].pid))


def run_wrk(url, body_path, conc, secs, threads):
    r, why = ksv_bench.run_wrk(url, body_path, conc, secs, threads)
    if r is None:
        raise RuntimeError("wrk failed: %s" % why[:300])
    return r


def measure(gw, kind, url, body_path, conc, secs, threads):
    s0 = gw.redis_commandstats()
    c0 = gw.redis_commands()
    cpu0 = gw.cpu()
    t0 = time.monotonic()
    r = run_wrk(url, body_path, conc, secs, threads)
    t1 = time.monotonic()
    cpu1 = gw.cpu()
    c1 = gw.redis_commands()
    n = max(r["requests"], 1)
    r["nginx_cpu_us"] = 1e6 * (cpu1["nginx"] - cpu0["nginx"]) / n
    r["worker_cpu_us"] = 1e6 * (cpu1["worker"] - cpu0["worker"]) / n
    s1 = gw.redis_commandstats()
    # by command, less this script's own INFO calls
    r["redis_by_cmd"] = {k: v - s0.get(k, 0) for k, v in s1.items()
                         if k != "info" and v - s0.get(k, 0) > 0}
    r["kind"] = kind
    r["conc"] = conc
    r["wall_s"] = t1 - t0
    r["redis_cmds"] = c1 - c0 - 1          # the second INFO counts itself
    return r


def profile(gw, url, body_path, conc, secs, threads, work):
    """perf record -g on one nginx worker while wrk drives the route."""
    if not shutil.which("perf"):
        return "perf not installed"
    pid = gw.nginx_workers()[0]
    data = os.path.join(work, "perf.data")
    env = dict(os.environ, KSV_BENCH_BODY=body_path, KSV_BENCH_HEADER_LEN="")
    wrk = subprocess.Popen(
        ["wrk", "-t%d" % min(threads, conc), "-c%d" % conc, "-d%gs" % (secs + 2),
         "-s", os.path.join(TOP, "bench", "infer.lua"), url],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(1)
        subprocess.run(["perf", "record", "-F", "999", "-e", "cpu-clock", "-g",
                        "-p", str(pid), "-o", data, "--", "sleep", str(secs)],
                       capture_output=True, timeout=secs + 30)
    finally:
        wrk.wait(secs + 30)
    rep = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                          "--sort", "dso,symbol", "-g", "none",
                          "--percent-limit", "0.7"],
                         capture_output=True, text=True, timeout=120).stdout
    lines = [re.sub(r"(\s+-)*\s*$", "", l) for l in rep.splitlines()
             if l.strip() and not l.startswith("#")]
    samples = re.search(r"# Samples: (\S+)", rep)
    if samples:
        lines.insert(0, "(%s samples)" % samples.group(1))
    # self time of the routing code: the route module, the choice, the
    # per-variant accounting (the Redis code runs on timers, listed apart)
    sym = subprocess.run(["perf", "report", "-i", data, "--stdio", "--no-children",
                          "--sort", "symbol", "-g", "none"],
                         capture_output=True, text=True, timeout=120).stdout
    route = redis = 0.0
    for l in sym.splitlines():
        m = re.match(r"\s*([0-9.]+)%\s+\[\.\]\s+(\S+)", l)
        if not m:
            continue
        if re.search(r"kserve_route|kserve_choose|kserve_pick|kserve_account|"
                     r"kserve_health|kserve_variant|^ksv_route|kserve_now_us|"
                     r"kserve_random32|kserve_routed|kserve_adaptive|"
                     r"^ksv_adapt", m.group(2)):
            route += float(m.group(1))
        elif re.search(r"redis|^redis|hiredis", m.group(2), re.I):
            redis += float(m.group(1))
    return ("\n".join(lines[:40]),
            "routing functions (ngx_http_kserve_route*, choose, pick, "
            "account, health, variant_ready, ksv_route_*, "
            "ngx_http_kserve_adaptive*, ksv_adapt_*): %.2f %% of the "
            "nginx worker's samples; Redis client (hiredis + "
            "ngx_http_kserve_redis*): %.2f %%" % (route, redis))


def mean(xs):
    return sum(xs) / len(xs) if xs else 0.0


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    if not n:
        return 0.0
    return xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def summarize(runs, conc, kind):
    rs = [r for r in runs if r["conc"] == conc and r["kind"] == kind]
    reqs = sum(r["requests"] for r in rs)
    wall = sum(r["wall_s"] for r in rs)
    cmds = sum(r["redis_cmds"] for r in rs)
    return {"rps": median([r["rps"] for r in rs]),
            "rps_each": [r["rps"] for r in rs],
            "p50_us": median([r["p50_us"] for r in rs]),
            "p99_us": median([r["p99_us"] for r in rs]),
            "errors": sum(r["errors"] for r in rs),
            "nginx_cpu_us": median([r["nginx_cpu_us"] for r in rs]),
            "worker_cpu_us": median([r["worker_cpu_us"] for r in rs]),
            "requests": reqs, "redis_cmds": cmds,
            "cmds_per_req": cmds / reqs if reqs else 0.0,
            "cmds_per_s": cmds / wall if wall else 0.0}


LABEL = {"direct": "direct `bench_a`",
         "routed": "routed `bench`, weights 1/1/1",
         "routed_1": "routed `bench`, weights 1/0/0 (Redis)",
         "adaptive_1": "adaptive `bench_adaptive`, weights 1/0/0 (Redis)",
         "adaptive": "adaptive `bench_adaptive`, weights 1/1/1"}
TAG = {"direct": "D", "routed": "R", "routed_1": "R1", "adaptive_1": "A1",
       "adaptive": "A"}


def report(a, args, runs, cmdstats, prof, env):
    label, tag = LABEL, TAG
    out = []
    w = out.append
    w("# Routing cost: routed name vs. direct call")
    w("")
    w("Written by `bench/routing.py` (%s). %s" % (env["date"], env["machine"]))
    w("")
    w("Command: `%s`" % env["command"])
    w("")
    w("Setup (one run, one nginx, one worker, one Redis, all on loopback): "
      "`conf/nginx.conf` as `make run` fills it in (2 nginx workers, "
      "`kserve_redis ... interval=500ms`), its `fraud` route replaced by "
      "`kserve_route %s { variant bench_a; variant bench_b; variant bench_c; }` "
      "(equal weights, weighted random) and `kserve_route %s` over the "
      "same variants with `strategy adaptive interval=1s window=5s`, "
      "`access_log off`. The three "
      "variants are copies of `conf/models/identity_fp32` (Python backend, "
      "dynamic batching, one instance each). *direct* = `POST "
      "/v2/models/bench_a/infer`, *routed* = `POST /v2/models/bench/infer`, "
      "*adaptive* = `POST /v2/models/%s/infer`, "
      "the same 16 × FP32 JSON body, wrk + `bench/infer.lua`, %g s per run, "
      "%s alternated (%s ...), %d runs of each per "
      "concurrency; figures are the median of the runs." % (
          ROUTE, ADAPTIVE, ADAPTIVE, args.seconds,
          ", ".join(label[k] for k in KINDS),
          " ".join(tag[k] for k in KINDS * 2), args.rounds))
    w("")
    w("| c | path | infer/s | vs direct | p50 µs | p99 µs | errors "
      "| nginx CPU µs / request | worker + instances CPU µs / request "
      "| Redis cmds / request | Redis cmds / s |")
    w("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for c in args.concurrency:
        d = summarize(runs, c, "direct")
        for kind in KINDS:
            x = summarize(runs, c, kind)
            rel = ("" if kind == "direct" or not d["rps"] else
                   "%+.1f %%" % (100.0 * (x["rps"] / d["rps"] - 1)))
            w("| %d | %s | %.0f | %s | %.0f | %.0f | %d | %.1f | %.1f | %.4f | %.0f |" % (
                c, label[kind], x["rps"], rel, x["p50_us"], x["p99_us"],
                x["errors"], x["nginx_cpu_us"], x["worker_cpu_us"],
                x["cmds_per_req"], x["cmds_per_s"]))
    w("")
    w("*vs direct* = routed / direct − 1 (negative: slower). Redis commands "
      "are counted with `total_commands_processed` (`INFO stats`) before "
      "and after each run; per request = commands / requests of the run. "
      "Every run, in order (infer/s; %s):" % ", ".join(
          "%s %s" % (tag[k], label[k]) for k in KINDS))
    w("")
    for c in args.concurrency:
        seq = ["%s %.0f" % (tag[r["kind"]], r["rps"])
               for r in runs if r["conc"] == c]
        w("- c=%d: %s" % (c, ", ".join(seq)))
    w("")
    secs = {k: sum(r["wall_s"] for r in runs if r["kind"] == k) for k in KINDS}
    reqs = {k: sum(r["requests"] for r in runs if r["kind"] == k) for k in KINDS}
    w("Redis commands by command, summed over the runs of each kind "
      "(`INFO commandstats` deltas, this script's own `INFO` left out):")
    w("")
    w("| command | %s |" % " | ".join("%s (%.0f s, %d requests)" % (
        tag[k], secs[k], reqs[k]) for k in KINDS))
    w("| --- |%s" % (" ---: |" * len(KINDS)))
    for k, v in sorted(cmdstats.items(), key=lambda kv: -sum(kv[1].values())):
        w("| `%s` | %s |" % (k, " | ".join(str(v[x]) for x in KINDS)))
    w("")
    w("Expected Redis load, whatever the traffic: each of the %d nginx "
      "workers, every interval (0.5 s), sends 1 `HGETALL` per routed name, "
      "and, when it has counts, `MULTI` + `EXEC` + per variant that had "
      "traffic up to 15 `HINCRBY` (requests, success, latency_sum_us, 12 "
      "cumulative buckets; zero increments are skipped) + 1 `HSET "
      "last_update_ms`: 2 × 2 × (1 + 2 + 3 × 16) = 204 commands/s with "
      "three variants in use, 2 × 2 × (1 + 2 + 16) = 76/s with one, "
      "2 × 2 × 1 = 4/s idle; the second routed name (`%s`) adds "
      "1 `HGETALL` per nginx worker per interval and its own flushes "
      "when it has traffic, and its adaptive strategy, once per second "
      "in nginx worker 0 only, 1 `HSET` + 1 `PEXPIRE` + 1 `HGETALL` of "
      "`kserve:adaptive:%s`. Commands per request is that fixed rate "
      "divided by the throughput, not a per-request cost." % (
          2, ADAPTIVE, ADAPTIVE))
    w("")
    if prof:
        prof, share = prof
        w("## Profile")
        w("")
        kinds = [k for k in KINDS if k in ROUTE_OF] or ["routed"]
        w("`perf record -g -e cpu-clock` on one nginx worker (the lowest "
          "pid, which is nginx worker 0 at start: the one that derives "
          "adaptive weights) for %g s while wrk drove `%s` at c=%d; `perf "
          "report --no-children --sort dso,symbol` (self time):" % (
              args.profile_seconds, ROUTE_OF[kinds[-1]],
              max(args.concurrency)))
        w("")
        w("```")
        w(prof)
        w("```")
        w("")
        w(share + ".")
        w("")
    return "\n".join(out)


def machine():
    cpu = sh("lscpu | sed -n 's/^Model name: *//p'", timeout=10) or platform.processor()
    ncpu = os.cpu_count()
    mem = sh("free -g | awk '/Mem:/{print $2}'", timeout=10)
    return ("Machine: %s, %s CPUs visible to the run (shared), %s GiB RAM, "
            "Linux %s; nginx %s, %s, %s." % (
                cpu, ncpu, mem, platform.release(),
                sh("nginx -v 2>&1", timeout=10).replace("nginx version: nginx/", ""),
                sh("wrk -v 2>&1 | head -1", timeout=10).split(" [")[0],
                sh("redis-server --version", timeout=10).split(" sha=")[0]))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float, default=5, help="wrk seconds per run")
    ap.add_argument("--rounds", type=int, default=4,
                    help="direct/routed pairs per concurrency")
    ap.add_argument("--concurrency", type=int, nargs="+", default=[16, 1])
    ap.add_argument("--kinds", nargs="+", default=KINDS, choices=KINDS,
                    help="what to measure, in this order each round")
    ap.add_argument("--threads", type=int, default=1, help="wrk threads")
    ap.add_argument("--warmup", type=float, default=2)
    ap.add_argument("--profile", action="store_true",
                    help="perf record one nginx worker during an extra routed run")
    ap.add_argument("--profile-seconds", type=float, default=5)
    ap.add_argument("--out", default=os.path.join(TOP, "docs", "benchmarks-routing.md"),
                    help="Markdown report ('-' for stdout only)")
    ap.add_argument("--json", help="raw results as JSON here")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    KINDS[:] = args.kinds

    work = tempfile.mkdtemp(prefix="ksv-routing-")
    body_path = os.path.join(work, "body.json")
    with open(body_path, "wb") as f:
        f.write(BODY)
    gw = Gateway(work)
    runs = []
    prof = None
    try:
        log("starting redis, kserve-worker and nginx in", work)
        gw.start()
        direct, routed = gw.url(DIRECT), gw.url(ROUTE)
        # sanity: the route answers from every variant
        seen = set()
        for _ in range(60):
            st, hdr, _b = http("POST", routed, BODY, {"Content-Type": "application/json"})
            if st != 200:
                raise RuntimeError("routed infer answered %d" % st)
            seen.add(hdr.get("X-KServe-Variant"))
        log("variants seen:", sorted(seen))
        if seen != set(VARIANTS):
            raise RuntimeError("route answered from %s only" % sorted(seen))
        log("warm-up")
        for url in (direct, routed, gw.url(ADAPTIVE)):
            run_wrk(url, body_path, max(args.concurrency), args.warmup, args.threads)
        one = {v: (1 if v == DIRECT else 0) for v in VARIANTS}
        for c in args.concurrency:
            for i in range(args.rounds):
                for kind in KINDS:
                    route = ROUTE_OF.get(kind, ROUTE)
                    if kind in ("routed_1", "adaptive_1"):
                        gw.set_weights(one, route=route)
                    before = gw.variant_requests(route)
                    r = measure(gw, kind, direct if kind == "direct"
                                else gw.url(route),
                                body_path, c, args.seconds, args.threads)
                    after = gw.variant_requests(route)
                    r["variants"] = {v: after[v] - before[v] for v in VARIANTS}
                    if kind in ("routed_1", "adaptive_1"):
                        gw.set_weights(None, route=route)
                        if any(r["variants"][v] for v in VARIANTS if v != DIRECT):
                            raise RuntimeError("weights 1/0/0 not applied: %s"
                                               % r["variants"])
                    runs.append(r)
                    log("c=%-3d %-8s %6.0f infer/s  p50 %5d µs  p99 %6d µs  "
                        "err %d  cpu/req nginx %.1f worker %.1f µs  "
                        "redis %d cmds (%.5f/req)  %s" % (
                            c, kind, r["rps"], r["p50_us"], r["p99_us"],
                            r["errors"], r["nginx_cpu_us"], r["worker_cpu_us"],
                            r["redis_cmds"],
                            r["redis_cmds"] / max(r["requests"], 1),
                            "/".join(str(r["variants"][v]) for v in VARIANTS)))
        cmdstats = {}
        for r in runs:
            for k, v in r["redis_by_cmd"].items():
                cmdstats.setdefault(k, dict.fromkeys(KINDS, 0))[r["kind"]] += v
        if args.profile:
            log("profiling one nginx worker for %g s" % args.profile_seconds)
            # the route of the last routed kind measured
            kinds = [k for k in KINDS if k in ROUTE_OF] or ["routed"]
            prof = profile(gw, gw.url(ROUTE_OF[kinds[-1]]), body_path,
                           max(args.concurrency), args.profile_seconds,
                           args.threads, work)
        problems = []
        with open(os.path.join(work, "error.log"), errors="replace") as f:
            problems = [l for l in f if "[alert]" in l or "[crit]" in l or "[emerg]" in l]
        if problems:
            log("nginx error log:\n" + "".join(problems[:10]))
    finally:
        gw.stop()
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
        else:
            log("kept", work)

    env = {"date": datetime.date.today().isoformat(), "machine": machine(),
           "command": "python3 bench/routing.py " + " ".join(sys.argv[1:])}
    text = report(None, args, runs, cmdstats, prof, env)
    print(text)
    if args.out != "-":
        with open(args.out, "w") as f:
            f.write(text + "\n")
        log("wrote", args.out)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"runs": runs, "redis_commandstats": cmdstats,
                       "profile": prof, "env": env}, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
