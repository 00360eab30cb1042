"""strategy adaptive (docs/directives.md#kserve_route, docs/redis.md).

Its own Redis, kserve-worker (a repository of adapt_a .. adapt_d only) and
two nginx nodes A and B of two nginx workers each, sharing that Redis:

  slowed    adapt_a, adapt_b    driven on node A; adapt_b made 3x slower
  failing   adapt_c, adapt_d    driven on node B; adapt_d fails 20 %

both `strategy adaptive interval=1s window=3s slo=60ms` (min_share 5 %,
rate 0.1, the defaults).  The models sleep 30 ms per call unless the
request's parameters tell them otherwise (tests/models/adapt_a), so the
test flips a variant's behaviour at run time by what it sends; three
clients per route and three instances per model, so that a variant that
takes all the traffic stays within the SLO.  Every
timing is the test's own clock (time.monotonic()), shares are measured
on the traffic the clients saw (X-KServe-Variant) and, for the floor,
on what nginx derived (/metrics, ngx_kserve_route_adaptive_share).
Node A never sees a request of "failing": what it learns of adapt_d
comes from node B's windows through Redis (kserve:adaptive:failing).
"""

import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from conftest import (BUILD, SANITIZER_REPORT, TOP, Gateway, nginx_env,
                      wait_for)

SLO_MS = 60
MIN_SHARE = 0.05

NODE_CONF = """
load_module {build}/ngx_http_kserve_module.so;
worker_processes 2;
daemon off;
pid {dir}/nginx-{node}.pid;
error_log {dir}/error-{node}.log info;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body-{node};
    proxy_temp_path {dir}/proxy-{node};
    fastcgi_temp_path {dir}/fastcgi-{node};
    uwsgi_temp_path {dir}/uwsgi-{node};
    scgi_temp_path {dir}/scgi-{node};
    kserve_redis 127.0.0.1:{redis_port} interval=250ms;
    kserve_route slowed {{
        variant adapt_a;
        variant adapt_b;
        strategy adaptive interval=1s window=3s slo={slo}ms;
    }}
    kserve_route failing {{
        variant adapt_c;
        variant adapt_d;
        strategy adaptive interval=1s window=3s slo={slo}ms
                 min_share=5% rate=0.1;
        # three instances fail in step now and then: no ejection here
        max_fails 0;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /v2 {{
            kserve_pass {endpoint};
            kserve_timeout 10s;
            kserve_index_interval 200ms;
            add_header X-Nginx-Pid $pid always;
        }}
        location = /metrics {{
            kserve_metrics;
        }}
        location = /static {{ return 200 "ok"; }}
    }}
}}
"""

MODELS = ("adapt_a", "adapt_b", "adapt_c", "adapt_d")


class Node:
    def __init__(self, gw, name):
        self.gw = gw
        self.name = name
        self.port = gw.port if name == "a" else gw.short_port
        self.url = "http://127.0.0.1:%d" % self.port
        conf = os.path.join(gw.dir, "nginx-%s.conf" % name)
        with open(conf, "w") as f:
            f.write(NODE_CONF.format(
                build=BUILD, dir=gw.dir, node=name, port=self.port,
                endpoint=gw.endpoint, redis_port=gw.redis_port, slo=SLO_MS,
                user="user root;" if os.getuid() == 0 else ""))
        self.log = os.path.join(gw.dir, "error-%s.log" % name)
        self.proc = subprocess.Popen(
            ["nginx", "-p", gw.dir, "-c", conf, "-e", self.log],
            env=nginx_env())
        assert wait_for(lambda: requests.get(self.url + "/static").ok)

    def share(self, route, variant):
        text = requests.get(self.url + "/metrics", timeout=10).text
        want = 'ngx_kserve_route_adaptive_share{route="%s",variant="%s"} ' \
            % (route, variant)
        for line in text.splitlines():
            if line.startswith(want):
                return float(line[len(want):])
        return None

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=15)


@pytest.fixture(scope="module")
def nodes():
    workdir = tempfile.mkdtemp(prefix="ksv-adapt-")
    gw = Gateway(workdir)
    for name in os.listdir(gw.repo):
        if name not in MODELS:
            os.unlink(os.path.join(gw.repo, name))
    started = []
    try:
        gw.start_redis()
        gw.start_worker()
        a = Node(gw, "a")
        started.append(a)
        b = Node(gw, "b")
        started.append(b)
        for node in (a, b):
            for m in MODELS:
                assert wait_for(lambda: requests.get(
                    "%s/v2/models/%s/ready" % (node.url, m),
                    headers={"Connection": "close"}).ok, timeout=60), m
        yield gw, a, b
    finally:
        for node in started:
            node.stop()
        gw.stop_all()
    problems = gw.error_log_problems()      # sanitizers (worker.log)
    for node in started:
        with open(node.log, errors="replace") as f:
            problems += [ln for ln in f if "[alert]" in ln or "[crit]" in ln
                         or "[emerg]" in ln or SANITIZER_REPORT.search(ln)]
    assert problems == []
    if not os.environ.get("KSV_KEEP"):
        shutil.rmtree(workdir, ignore_errors=True)


def body(params):
    return json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 4],
                                   "datatype": "FP32",
                                   "data": [1.0, 2.0, 3.0, 4.0]}],
                       "parameters": params})


class Load:
    """Closed-loop clients on one node's route; what they send is
    self.params, changed by the test; every answer is recorded as
    (monotonic time, variant, status, nginx pid, seconds)."""

    def __init__(self, node, route, threads=3):
        self.url = "%s/v2/models/%s/infer" % (node.url, route)
        self.params = {}
        self.seen = []
        self.errors = []
        self.stop = threading.Event()
        self.threads = [threading.Thread(target=self.run)
                        for _ in range(threads)]

    def run(self):
        n = 0
        s = requests.Session()
        while not self.stop.is_set():
            n += 1
            if n % 25 == 0:         # new connections: both nginx workers
                s.close()
                s = requests.Session()
            t0 = time.monotonic()
            try:
                r = s.post(self.url, data=body(self.params), timeout=30,
                           headers={"Content-Type": "application/json"})
            except requests.RequestException as e:
                self.errors.append(repr(e))
                continue
            t1 = time.monotonic()
            self.seen.append((t1, r.headers.get("X-KServe-Variant"),
                              r.status_code, r.headers.get("X-Nginx-Pid"),
                              t1 - t0))

    def start(self):
        for t in self.threads:
            t.start()

    def join(self):
        self.stop.set()
        for t in self.threads:
            t.join()

    def share(self, variant, t0, t1):
        got = [v for t, v, _, _, _ in list(self.seen) if t0 <= t < t1]
        return (got.count(variant) / len(got)) if got else None, len(got)


def test_adaptive_moves_traffic_and_back(nodes):
    gw, a, b = nodes
    slowed = Load(a, "slowed")
    failing = Load(b, "failing")
    floor = {"slowed": [], "failing": [], "remote": []}

    def watch(stop):
        while not stop.is_set():
            floor["slowed"].append(a.share("slowed", "adapt_b"))
            floor["failing"].append(b.share("failing", "adapt_d"))
            floor["remote"].append((time.monotonic(),
                                    a.share("failing", "adapt_d")))
            time.sleep(0.25)

    watching = threading.Event()
    watcher = threading.Thread(target=watch, args=(watching,))

    loads = (slowed, failing)
    victim = {slowed: "adapt_b", failing: "adapt_d"}
    report = {}

    for load in loads:
        load.start()
    watcher.start()
    try:
        # equal variants: about half each
        time.sleep(5.0)
        t_bad = time.monotonic()
        earlier = {}
        for load in loads:
            earlier[load], n = load.share(victim[load], t_bad - 3, t_bad)
            assert n > 50 and 0.35 <= earlier[load] <= 0.65, \
                (victim[load], earlier[load], n)

        slowed.params = {"slow": "adapt_b"}
        failing.params = {"fail": "adapt_d"}

        # loses >= 80 % of its traffic within 30 s (2 s of traffic)
        lost = {}
        while time.monotonic() - t_bad < 34 and len(lost) < 2:
            time.sleep(0.25)
            now = time.monotonic()
            for load in loads:
                share, n = load.share(victim[load], now - 2, now)
                if load not in lost and now - 2 >= t_bad and n > 20 \
                        and share <= 0.2 * earlier[load]:
                    lost[load] = now - t_bad
        for load in loads:
            assert load in lost, "%s kept %.2f" % (
                victim[load], load.share(victim[load], now - 2, now)[0])
            assert lost[load] <= 30, (victim[load], lost[load])

        # ... and is not starved meanwhile: the floor, in the traffic too
        time.sleep(3.0)
        t_good = time.monotonic()
        for load in loads:
            share, n = load.share(victim[load], t_good - 3, t_good)
            assert share >= 0.6 * MIN_SHARE, (victim[load], share, n)
        slow_lat = [d for t, v, _, _, d in slowed.seen
                    if v == "adapt_b" and t_bad + 1 < t < t_good]
        fast_lat = [d for t, v, _, _, d in slowed.seen
                    if v == "adapt_b" and t < t_bad]
        failed = [c for t, v, c, _, _ in failing.seen
                  if v == "adapt_d" and t_bad + 1 < t < t_good]

        slowed.params = {}
        failing.params = {}

        # recovered: back to >= 80 % of its earlier share within 60 s
        back = {}
        while time.monotonic() - t_good < 62 and len(back) < 2:
            time.sleep(0.25)
            now = time.monotonic()
            for load in loads:
                share, n = load.share(victim[load], now - 2, now)
                if load not in back and now - 2 >= t_good and n > 20 \
                        and share >= 0.8 * earlier[load]:
                    back[load] = now - t_good
        for load in loads:
            report[victim[load]] = (earlier[load], lost[load],
                                    back.get(load))
            assert load in back, victim[load]
            assert back[load] <= 60, (victim[load], back[load])
    finally:
        watching.set()
        watcher.join()
        for load in loads:
            load.join()

    print("adaptive: (earlier share, lost 80 %% after s, back after s) %r"
          % report)

    # it was really 3x slower, and really failing 20 %
    med = lambda xs: sorted(xs)[len(xs) // 2]   # noqa: E731
    assert med(slow_lat) >= 2 * med(fast_lat), (med(slow_lat),
                                                med(fast_lat))
    assert 0.1 <= failed.count(500) / len(failed) <= 0.3, failed

    # the derived share never went under the floor
    for route in ("slowed", "failing"):
        shares = [s for s in floor[route] if s is not None]
        assert len(shares) > 20, (route, len(shares))
        assert min(shares) >= MIN_SHARE - 1e-6, (route, min(shares))

    # both nginx workers of each node served
    assert len({p for _, _, _, p, _ in slowed.seen}) == 2
    assert len({p for _, _, _, p, _ in failing.seen}) == 2

    # only failures of adapt_d reached the clients, nothing else
    assert slowed.errors == [] and failing.errors == []
    assert {c for _, _, c, _, _ in slowed.seen} == {200}
    assert {c for _, v, c, _, _ in failing.seen if v == "adapt_c"} == {200}

    # node A never served "failing", yet learnt from node B's windows
    remote = [s for t, s in floor["remote"]
              if s is not None and t_bad + 15 < t < t_good]
    assert remote and max(remote) < 0.25, remote


def rcli(gw, *args):
    return subprocess.run(["redis-cli", "-p", str(gw.redis_port)]
                          + [str(a) for a in args], capture_output=True,
                          text=True, timeout=10).stdout


def commandstats(gw):
    """{command: calls} from INFO commandstats"""
    out = {}
    for line in rcli(gw, "INFO", "commandstats").splitlines():
        if line.startswith("cmdstat_"):
            name, rest = line[len("cmdstat_"):].split(":", 1)
            out[name] = int(rest.split("calls=")[1].split(",")[0])
    return out


def test_windows_in_redis_once_per_interval(nodes):
    """Each node's deriving nginx worker publishes its window once per
    interval (HSET + PEXPIRE + HGETALL per route), whatever the traffic;
    late answers are counted as over_slo in the statistics."""
    gw, a, b = nodes
    load = Load(a, "slowed")
    load.params = {"slow": "adapt_a,adapt_b"}      # 90 ms: over the SLO
    rcli(gw, "CONFIG", "RESETSTAT")
    t0 = time.monotonic()
    load.start()
    time.sleep(4.0)
    load.join()
    calls = commandstats(gw)
    elapsed = time.monotonic() - t0

    # 2 nodes x 2 routes, once a second each
    assert 4 * (elapsed - 2) <= calls.get("pexpire", 0) <= 4 * (elapsed + 1), \
        (calls, elapsed)
    assert len(load.seen) > 3 * calls.get("pexpire", 0), len(load.seen)

    nodes_seen = rcli(gw, "HKEYS", "kserve:adaptive:slowed").split()
    assert len(nodes_seen) == 2, nodes_seen       # hostname/master pid
    for node in nodes_seen:
        lines = rcli(gw, "HGET", "kserve:adaptive:slowed", node).split("\n")
        assert lines[0].startswith("ksv1 "), lines
        assert {ln.split()[0] for ln in lines[1:] if ln} \
            == {"adapt_a", "adapt_b"}, lines
    assert int(rcli(gw, "PTTL", "kserve:adaptive:slowed")) > 0

    def over_slo():
        st = rcli(gw, "HGET", "kserve:stats:slowed:adapt_b", "over_slo")
        return st.strip().isdigit() and int(st) > 0
    assert wait_for(over_slo, timeout=3)


def test_redis_ab_report(nodes):
    """conf/redis-ab.lua answers "is v2 better?" from Redis alone: after
    a mark, a window in which adapt_b is 3x slower and adapt_d fails
    20 % is reported as such (docs/redis.md)."""
    gw, a, b = nodes
    script = os.path.join(TOP, "conf", "redis-ab.lua")
    time.sleep(1.0)     # what earlier tests counted is flushed (250 ms)
    for route in ("slowed", "failing"):
        assert "marked 2 variants" in rcli(gw, "--eval", script, ",", route,
                                           "mark")
    loads = (Load(a, "slowed"), Load(b, "failing"))
    loads[0].params = {"slow": "adapt_b"}
    loads[1].params = {"fail": "adapt_d"}
    for load in loads:
        load.start()
    time.sleep(4.0)
    for load in loads:
        load.join()
    served = {v: sum(1 for load in loads for _, x, _, _, _ in load.seen
                     if x == v) for v in MODELS}

    def report(route):
        return rcli(gw, "--eval", script, ",", route).splitlines()

    def counted():
        text = "\n".join(report("slowed") + report("failing"))
        return all("%s: %d requests" % (v, served[v]) in text
                   for v in MODELS)
    assert wait_for(counted, timeout=5), (served, report("slowed"),
                                         report("failing"))

    lines = report("slowed")
    assert lines[0].startswith("route slowed, since the mark")
    mean = {}
    for ln in lines[1:3]:
        name = ln.split(":")[0]
        mean[name] = float(ln.split("mean ")[1].split(" ms")[0])
        assert "success 100.00%" in ln, ln
    assert mean["adapt_b"] >= 2 * mean["adapt_a"], lines
    assert "adapt_b vs adapt_a: " in lines[3]
    assert any(ln.startswith("adaptive window of node ") for ln in lines)

    lines = report("failing")
    d = [ln for ln in lines if ln.startswith("adapt_d: ")][0]
    fail = float(d.split("failure ")[1].split("%")[0])
    assert 10 <= fail <= 30, d
    assert "adapt_d fails more often" in lines[3], lines


def test_reload_keeps_what_was_learnt(nodes):
    """A reload starts new nginx workers (a new worker 0 derives): the
    shares go on from the shared zone, they do not start again from the
    operator's weights."""
    gw, a, b = nodes
    load = Load(a, "slowed")
    load.params = {"slow": "adapt_b"}
    load.start()
    try:
        assert wait_for(lambda: a.share("slowed", "adapt_b") <= 0.3,
                        timeout=30, interval=0.25)
        before = a.share("slowed", "adapt_b")
        pids = {p for _, _, _, p, _ in load.seen}
        subprocess.run(["nginx", "-p", gw.dir, "-c",
                        os.path.join(gw.dir, "nginx-a.conf"), "-s", "reload"],
                       check=True, env=nginx_env())
        t0 = time.monotonic()
        after = []
        while time.monotonic() - t0 < 4:
            after.append(a.share("slowed", "adapt_b"))
            time.sleep(0.2)
        new = {p for t, _, _, p, _ in load.seen if t > t0 + 2} - pids
    finally:
        load.join()
    assert new, "no request reached a new nginx worker"
    # the slow variant keeps losing, from where it was
    assert max(after) <= before + 0.02, (before, after)
    assert min(after) >= MIN_SHARE - 1e-6, after


def test_operator_weights_are_the_prior(nodes):
    """Redis weights steer the learnt ones: weight 0 drains a variant at
    once (every nginx worker, within a Redis poll); weighed in again at
    1:3 it starts from the floor and, as good as the other, climbs past
    half the traffic toward the operator's three quarters."""
    gw, a, b = nodes
    load = Load(a, "slowed")
    load.start()
    try:
        rcli(gw, "HSET", "kserve:route:slowed", "adapt_a", 1, "adapt_b", 0)
        t0 = time.monotonic()
        time.sleep(2.0)                     # 4 polls of 250 ms, and more
        drained = [v for t, v, _, _, _ in load.seen if t > t0 + 1.0]
        assert drained and set(drained) == {"adapt_a"}, drained[:20]
        assert wait_for(lambda: a.share("slowed", "adapt_b") == 0,
                        timeout=3, interval=0.25)

        rcli(gw, "HSET", "kserve:route:slowed", "adapt_a", 1, "adapt_b", 3)
        t1 = time.monotonic()
        shares = []

        def climbed():
            shares.append(a.share("slowed", "adapt_b"))
            return shares[-1] >= 0.5
        assert wait_for(climbed, timeout=30, interval=0.25), shares[::8]
        climb = time.monotonic() - t1
        assert min(s for s in shares if s > 0) >= MIN_SHARE - 1e-6, shares
    finally:
        load.join()
        rcli(gw, "DEL", "kserve:route:slowed")
    assert {c for _, _, c, _, _ in load.seen} == {200}
    print("operator weights 1:3: 0.05 -> 0.5 in %.1f s" % climb)


def test_route_status_shows_the_strategy(nodes):
    """GET /v2/routes/NAME: the strategy object carries the derived
    shares and the window they came from, the same from every nginx
    worker (the shared zone)."""
    gw, a, b = nodes
    seen = {}
    for _ in range(20):
        r = requests.get(a.url + "/v2/routes/slowed",
                         headers={"Connection": "close"}, timeout=10)
        assert r.status_code == 200, r.text
        seen[r.headers["X-Nginx-Pid"]] = r.json()["strategy"]
    assert len(seen) == 2, "one nginx worker only"
    st = list(seen.values())[0]
    assert st["name"] == "adaptive"
    assert st["interval_ms"] == 1000 and st["window_ms"] == 3000
    assert st["slo_ms"] == SLO_MS and st["min_share"] == MIN_SHARE
    assert [v["name"] for v in st["variants"]] == ["adapt_a", "adapt_b"]
    assert abs(sum(v["share"] for v in st["variants"]) - 1) < 0.001
    for v in st["variants"]:
        assert v["share"] >= MIN_SHARE - 1e-6
        assert v["weight"] == round(v["share"] * 10000) or \
            abs(v["weight"] - v["share"] * 10000) <= 1
        assert set(v["window"]) >= {"requests", "good", "slow", "failure",
                                    "success_rate", "mean_latency_ms"}
    assert st["derived_ms_ago"] is not None and st["derived_ms_ago"] < 3000
    # the list holds every route
    plain = requests.get(a.url + "/v2/routes", timeout=10).json()["routes"]
    assert {r["name"] for r in plain} == {"slowed", "failing"}


# ---- nginx -t ----------------------------------------------------------------

BAD = [
    ("interval=50ms", "is less than 100ms"),
    ("interval=2s window=1s", "must be from 1 to 64 intervals"),
    ("interval=1s window=100s", "must be from 1 to 64 intervals"),
    ("min_share=60%", "is more than 50%"),
    ("min_share=5", "a percentage from 0% to 100%"),
    ("rate=2", "a number from 0 to 1"),
    ("rate=0", "must be more than 0"),
    ("slo=0", "from 1ms to 1h expected"),
    ("tolerance=x%", "a percentage"),
    ("colour=blue", "invalid parameter \"colour=blue\""),
]


@pytest.mark.parametrize("args,message", BAD)
def test_nginx_t_rejects(args, message):
    from test_routing import nginx_t
    rc, err = nginx_t("variant a; variant b; strategy adaptive %s;" % args)
    assert rc != 0
    assert message in err, err


def test_nginx_t_accepts():
    from test_routing import nginx_t
    rc, err = nginx_t("variant a weight=3; variant b; strategy adaptive "
                      "interval=5s window=30s slo=200ms min_share=5% "
                      "rate=0.1 tolerance=2%; sticky $http_x_user;")
    assert rc == 0, err
    rc, err = nginx_t("variant a; variant b; strategy adaptive;")
    assert rc == 0, err
