"""Automated canary rollouts (the rollout line of kserve_route; docs/redis.md).

Two nginx nodes (two workers each) share one Redis of their own and the
session's kserve-worker.  Each test has its own routed name: identity_fp32
is the baseline, canary_model the canary (it fails or sleeps when a
request asks it to, through parameters the baseline ignores), and the
test's own threads make the traffic, spread over both nodes.  Intervals
are 1 s and min_requests small, so a whole rollout takes seconds.
"""

import os
import re
import signal
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from conftest import BUILD, SANITIZER_REPORT, free_port, nginx_env, wait_for

NODE_CONF = """
load_module {build}/ngx_http_kserve_module.so;
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    kserve_redis 127.0.0.1:{redis_port} interval=100ms;
    kserve_route ro_complete {{
        variant identity_fp32;
        variant canary_model;
        rollout canary_model steps=20,50,100 interval=1s max_error_rate=5%
                max_p99=300ms min_requests=10;
    }}
    kserve_route ro_errors {{
        variant identity_fp32;
        variant canary_model;
        max_fails 0;
        rollout canary_model steps=20,50,100 interval=1s max_error_rate=5%
                max_p99=300ms min_requests=10;
    }}
    kserve_route ro_eject {{
        variant identity_fp32;
        variant canary_model;
        max_fails 3;
        rollout canary_model steps=20,50,100 interval=1s min_requests=50;
    }}
    kserve_route ro_margin {{
        variant identity_fp32;
        variant canary_model;
        max_fails 0;
        rollout canary_model steps=20,50,100 interval=1s max_error_rate=50%
                max_p99=2s min_requests=20 margin=5%;
    }}
    kserve_route ro_latency {{
        variant identity_fp32;
        variant canary_model;
        rollout canary_model steps=20,50,100 interval=1s max_error_rate=5%
                max_p99=300ms min_requests=10;
    }}
    kserve_route ro_ops {{
        variant identity_fp32;
        variant canary_model;
        rollout canary_model steps=10,20,30,40,50,60,70,80,90 interval=1s
                min_requests=5;
    }}
    kserve_route ro_reload {{
        variant identity_fp32;
        variant canary_model;
        rollout canary_model steps=10,20,30,40,50,60,70,80,90,100
                interval=1s min_requests=5;
    }}
    kserve_route ro_hold {{
        variant identity_fp32;
        variant canary_model;
        rollout canary_model steps=10,30,50,70,90 interval=1s
                min_requests=5;
    }}
    kserve_route ro_unready {{
        variant identity_fp32;
        variant init_fail;
        rollout init_fail steps=50,100 interval=1s ready_timeout=1s;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /v2 {{
            kserve_pass {endpoint};
            kserve_timeout 10s;
            kserve_index_interval 200ms;
            add_header X-Nginx-Pid $pid always;
        }}
        location = /metrics {{ kserve_metrics; }}
        location = /static {{ return 200 "ok"; }}
    }}
}}
"""

BODY = {"inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": "FP32",
                    "data": [1.5, 2.5, 3.5]}]}


class Node:
    """One nginx with the rollout routes: a node of the cluster."""

    def __init__(self, root, name, endpoint, redis_port):
        self.dir = os.path.join(root, name)
        os.makedirs(self.dir)
        self.port = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        conf = os.path.join(self.dir, "nginx.conf")
        with open(conf, "w") as f:
            f.write(NODE_CONF.format(
                build=BUILD, dir=self.dir, port=self.port, endpoint=endpoint,
                redis_port=redis_port,
                user="user root;" if os.getuid() == 0 else ""))
        self.cmd = ["nginx", "-p", self.dir, "-c", conf,
                    "-e", os.path.join(self.dir, "error.log")]
        self.proc = subprocess.Popen(self.cmd, env=nginx_env())
        assert wait_for(lambda: requests.get(self.url + "/static").ok)

    def signal(self, action):
        subprocess.run(self.cmd + ["-s", action], check=True, env=nginx_env())

    def log(self):
        with open(os.path.join(self.dir, "error.log"), errors="replace") as f:
            return f.read()

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


class Cluster:
    def __init__(self, gateway):
        self.root = tempfile.mkdtemp(prefix="ksv-rollout-")
        self.redis_port = free_port()
        self.redis = None
        self.start_redis()
        self.nodes = [Node(self.root, n, gateway.endpoint, self.redis_port)
                      for n in ("a", "b")]

    def start_redis(self):
        self.redis = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=open(os.path.join(self.root, "redis.log"), "a"),
            stderr=subprocess.STDOUT)
        assert wait_for(lambda: self.rcli("PING").strip() == "PONG")

    def stop_redis(self):
        self.redis.terminate()
        self.redis.wait(timeout=10)

    def rcli(self, *args):
        return subprocess.run(["redis-cli", "-p", str(self.redis_port)]
                              + [str(a) for a in args], capture_output=True,
                              text=True, timeout=10).stdout

    def rollout(self, route):
        words = self.rcli("HGETALL", "kserve:rollout:" + route) \
            .split("\n")[:-1]
        return dict(zip(words[0::2], words[1::2]))

    def wait_state(self, route, pred, timeout=15.0):
        seen = {}

        def check():
            seen.update(self.rollout(route))
            return pred(self.rollout(route))
        ok = wait_for(check, timeout=timeout, interval=0.05)
        assert ok, "%s: %s" % (route, self.rollout(route))
        return self.rollout(route)

    def logs(self):
        return "".join(n.log() for n in self.nodes)

    def metric(self, family, **labels):
        """The sum over the nodes (counters are per node)."""
        want = ['%s="%s"' % kv for kv in labels.items()]
        total = 0.0
        for node in self.nodes:
            for line in requests.get(node.url + "/metrics").text \
                    .splitlines():
                if line.startswith(family + "{") \
                        and all(w in line for w in want):
                    total += float(line.rsplit(" ", 1)[1])
        return total


class Traffic:
    """Threads posting to a routed name on every node until stopped:
    [(time, node, status, variant)]."""

    def __init__(self, cluster, route, params=None, threads=4):
        self.done = []
        self.stop_flag = threading.Event()
        body = dict(BODY)
        if params:
            body["parameters"] = params
        self.threads = [threading.Thread(
            target=self.run,
            args=(cluster.nodes[i % len(cluster.nodes)], route, body))
            for i in range(threads)]
        for t in self.threads:
            t.start()

    def run(self, node, route, body):
        s = requests.Session()
        url = "%s/v2/models/%s/infer" % (node.url, route)
        while not self.stop_flag.is_set():
            try:
                r = s.post(url, json=body, timeout=10)
                self.done.append((time.monotonic(), node.url, r.status_code,
                                  r.headers.get("X-KServe-Variant")))
            except requests.RequestException:
                self.done.append((time.monotonic(), node.url, None, None))

    def stop(self):
        self.stop_flag.set()
        for t in self.threads:
            t.join()
        return self.done


def share(done, since=0.0, until=None):
    """The canary's share of the answered requests in a time window."""
    got = [v for t, _, s, v in done
           if t >= since and (until is None or t < until) and v]
    return sum(v == "canary_model" for v in got) / max(len(got), 1), \
        len(got)


def notices(text, route, action):
    return re.findall(r'\[notice\].*kserve: rollout "%s" of "[^"]+": '
                      r'(.*) \(%s, epoch (\d+)\)' % (route, action), text)


@pytest.fixture(scope="module")
def cluster(gateway):
    for m in ("identity_fp32", "canary_model"):
        assert gateway.wait_model_ready(m), m
    c = Cluster(gateway)
    try:
        yield c
    finally:
        for n in c.nodes:
            n.stop()
        c.stop_redis()
    bad = [line for line in c.logs().splitlines()
           if "[alert]" in line or "[crit]" in line or "[emerg]" in line
           or SANITIZER_REPORT.search(line)]
    assert not bad, "\n".join(bad[:20])


def test_rollout_completes_one_step_at_a_time(cluster):
    """20 -> 50 -> 100 %, each step at least an interval long, written once
    although four nginx workers on two nodes judge every poll."""
    steps = []
    traffic = Traffic(cluster, "ro_complete")
    try:
        def track(h):
            if h.get("step") and (not steps or steps[-1][1] != h["step"]):
                steps.append((time.monotonic(), h["step"], h["state"]))
            return h.get("state") == "complete"
        final = cluster.wait_state("ro_complete", track, timeout=20)
    finally:
        done = traffic.stop()

    assert final["percent"] == "100" and final["canary"] == "canary_model"
    assert "complete at 100%" in final["reason"]
    assert [s for _, s, _ in steps] == ["1", "2", "3"][-len(steps):]
    assert [s for _, s, _ in steps][-1] == "3"
    # steps 2 and 3 last an interval each (Redis' clock, ms)
    assert int(final["updated_at"]) - int(final["step_started_at"]) >= 1000

    text = cluster.logs()
    advances = notices(text, "ro_complete", "advance")
    finishes = notices(text, "ro_complete", "finish")
    assert len(advances) == 2 and len(finishes) == 1, (advances, finishes)
    epochs = [int(e) for _, e in advances + finishes]
    assert len(set(epochs)) == 3
    assert cluster.metric("ngx_kserve_rollout_steps_total",
                          route="ro_complete") == 2
    assert cluster.metric("ngx_kserve_rollout_completed_total",
                          route="ro_complete") == 1

    # complete: everything goes to the canary, on every node and worker
    assert wait_for(lambda: cluster.metric(
        "ngx_kserve_rollout_percent", route="ro_complete") == 200)
    s = requests.Session()
    after = [s.post("%s/v2/models/ro_complete/infer" % n.url, json=BODY,
                    headers={"Connection": "close"})
             .headers["X-KServe-Variant"]
             for n in cluster.nodes for _ in range(10)]
    assert set(after) == {"canary_model"}
    assert any(v == "identity_fp32" for _, _, _, v in done)

    # GET /v2/routes/NAME: the rollout object, and the weights it makes
    for n in cluster.nodes:
        status = requests.get(n.url + "/v2/routes/ro_complete").json()
        ro = status["rollout"]
        assert ro["canary"] == "canary_model" and ro["state"] == "complete"
        assert ro["step"] == 3 and ro["percent"] == 100
        assert ro["steps"] == [20, 50, 100] and ro["epoch"] >= 4
        assert ro["max_error_rate"] == 0.05 and ro["max_p99_ms"] == 300
        assert ro["this_step"]["canary"]["requests"] >= 10
        weights = {v["name"]: v["weight"]["effective"]
                   for v in status["variants"]}
        assert weights["identity_fp32"] == 0 and weights["canary_model"] > 0


def test_errors_roll_back(cluster):
    """A canary failing every request is rolled back to 0 % at its first
    step, with the reason, once it has min_requests."""
    traffic = Traffic(cluster, "ro_errors", params={"canary_fail": True})
    try:
        final = cluster.wait_state(
            "ro_errors", lambda h: h.get("state") == "rolled_back")
    finally:
        traffic.stop()

    assert final["cause"] == "error_rate" and final["percent"] == "0"
    assert re.search(r"canary error rate \d+\.\d\d% > max_error_rate "
                     r"5\.00%", final["reason"]), final["reason"]
    assert len(notices(cluster.logs(), "ro_errors", "rollback")) == 1
    assert cluster.metric("ngx_kserve_rollout_rollbacks_total",
                          route="ro_errors", cause="error_rate") == 1
    # the other node follows at its next poll of the shared state
    def other():
        return requests.get(cluster.nodes[1].url + "/v2/routes/ro_errors",
                            timeout=10).json()["rollout"]
    assert wait_for(lambda: other()["state"] == "rolled_back", timeout=10)
    ro = other()
    assert ro["state"] == "rolled_back" and ro["percent"] == 0
    assert ro["cause"] == "error_rate" and ro["reason"] == final["reason"]

    time.sleep(0.3)
    traffic = Traffic(cluster, "ro_errors", params={"canary_fail": True})
    time.sleep(1.0)
    done = traffic.stop()
    assert share(done) == (0.0, len(done))
    assert all(s == 200 for _, _, s, _ in done)


def test_an_ejected_canary_rolls_back(cluster):
    """3 failures in a row eject the canary (it then gets no traffic, so
    min_requests would never come): that is a rollback too."""
    traffic = Traffic(cluster, "ro_eject", params={"canary_fail": True})
    try:
        final = cluster.wait_state(
            "ro_eject", lambda h: h.get("state") == "rolled_back")
    finally:
        traffic.stop()

    assert final["cause"] == "ejected", final
    assert "canary ejected after max_fails failures in a row" \
        in final["reason"]
    assert cluster.metric("ngx_kserve_rollout_rollbacks_total",
                          route="ro_eject", cause="ejected") == 1


@pytest.mark.parametrize("params,cause", [
    ({"canary_fail_every": 5}, "margin_error_rate"),
    ({"canary_sleep_ms": 200}, "margin_p99"),
])
def test_worse_than_the_baseline_rolls_back(cluster, params, cause):
    """Within max_error_rate=50% and max_p99=2s, but 20% errors against
    the baseline's 0%, or a p99 of 200 ms against a few ms, is worse than
    margin=5% allows."""
    key = "kserve:rollout:ro_margin"
    if cluster.rollout("ro_margin").get("state") != "running":
        # the last run's counts flushed first (they would go into the
        # restarted step's window: docs/redis.md)
        time.sleep(0.5)
        cluster.rcli("HSET", key, "command", "restart")
        cluster.wait_state("ro_margin", lambda h: h.get("state")
                           == "running" and "command" not in h, timeout=3)
    traffic = Traffic(cluster, "ro_margin", params=params, threads=6)
    try:
        final = cluster.wait_state(
            "ro_margin", lambda h: h.get("state") == "rolled_back")
    finally:
        traffic.stop()

    assert final["cause"] == cause, final
    assert "than margin 5.00%" in final["reason"], final["reason"]


def test_latency_rolls_back(cluster):
    """A canary that takes 400 ms against max_p99=300ms is rolled back."""
    traffic = Traffic(cluster, "ro_latency",
                      params={"canary_sleep_ms": 400}, threads=6)
    try:
        final = cluster.wait_state(
            "ro_latency", lambda h: h.get("state") == "rolled_back")
    finally:
        traffic.stop()

    assert final["cause"] == "p99", final
    m = re.search(r"canary p99 (\d+) ms > max_p99 300 ms", final["reason"])
    assert m and int(m.group(1)) > 300, final["reason"]
    assert cluster.metric("ngx_kserve_rollout_rollbacks_total",
                          route="ro_latency", cause="p99") == 1


def test_pause_resume_abort_restart_with_redis_cli(cluster):
    key = "kserve:rollout:ro_ops"
    traffic = Traffic(cluster, "ro_ops")
    try:
        cluster.wait_state("ro_ops", lambda h: int(h.get("step", 0)) >= 2)

        cluster.rcli("HSET", key, "command", "pause")
        paused = cluster.wait_state(
            "ro_ops", lambda h: h.get("state") == "paused", timeout=3)
        assert "command" not in paused
        assert "paused by operator" in paused["reason"]
        time.sleep(2.5)
        still = cluster.rollout("ro_ops")
        assert still["state"] == "paused" and \
            still["step"] == paused["step"], still

        cluster.rcli("HSET", key, "command", "resume")
        cluster.wait_state("ro_ops", lambda h: h.get("state") == "running"
                           and int(h["step"]) > int(paused["step"]),
                           timeout=5)

        cluster.rcli("HSET", key, "command", "abort")
        aborted = cluster.wait_state(
            "ro_ops", lambda h: h.get("state") == "aborted", timeout=3)
        assert aborted["cause"] == "operator" and aborted["percent"] == "0"
        abort_t = time.monotonic()
        time.sleep(0.5)

        # a command that does not apply is dropped and said so
        cluster.rcli("HSET", key, "command", "resume")
        assert wait_for(lambda: "command" not in cluster.rollout("ro_ops"),
                        timeout=3)
        assert cluster.rollout("ro_ops")["state"] == "aborted"
        restart_t = time.monotonic()

        cluster.rcli("HSET", key, "command", "restart")
        cluster.wait_state("ro_ops", lambda h: h.get("state") == "running"
                           and h.get("step") == "1", timeout=3)
    finally:
        done = traffic.stop()

    assert share(done, abort_t + 0.3, restart_t)[0] == 0.0
    assert 'command "resume" ignored: the rollout is aborted' \
        in cluster.logs()


def test_reload_resumes_the_rollout(cluster):
    """nginx -s reload of both nodes mid-rollout: the new nginx workers
    route at the step the node knew, and the rollout goes on from there."""
    traffic = Traffic(cluster, "ro_reload")
    try:
        before = cluster.wait_state(
            "ro_reload", lambda h: int(h.get("step", 0)) >= 3)
        step = int(before["step"])
        for n in cluster.nodes:
            n.signal("reload")
        lowest = [99]

        def moved_on(h):
            lowest[0] = min(lowest[0], int(h["step"]))
            return int(h["step"]) >= step + 2
        cluster.wait_state("ro_reload", moved_on, timeout=10)
    finally:
        traffic.stop()

    assert lowest[0] >= step
    # each node's new nginx workers took the node's state, not step 1
    resumed = re.findall(r'rollout "ro_reload" of "canary_model" goes on as '
                         r'the node knew it: running, step (\d+)',
                         cluster.logs())
    assert len(resumed) >= 4 and min(int(s) for s in resumed) >= step, \
        resumed
    # and nobody started it over
    assert len(notices(cluster.logs(), "ro_reload", "start")) == 1
    assert len(notices(cluster.logs(), "ro_reload", "restore")) == 0


def test_without_redis_the_share_holds(cluster):
    """Redis stopped mid-rollout: nothing advances, the canary keeps its
    step's share on every node; a Redis restarted empty gets the state
    back from the nodes and the rollout goes on from the same step."""
    traffic = Traffic(cluster, "ro_hold", threads=6)
    try:
        held = cluster.wait_state("ro_hold",
                                  lambda h: int(h.get("step", 0)) >= 2)
        cluster.stop_redis()
        down = time.monotonic()
        logged = len(notices(cluster.logs(), "ro_hold", r"\w+"))
        time.sleep(3.0)
        back = time.monotonic()
        assert len(notices(cluster.logs(), "ro_hold", r"\w+")) == logged
        cluster.start_redis()
        restored = cluster.wait_state(
            "ro_hold", lambda h: h.get("state") == "running", timeout=5)
        cluster.wait_state(
            "ro_hold", lambda h: int(h["step"]) > int(restored["step"]),
            timeout=6)
    finally:
        done = traffic.stop()

    # the share of the step held meanwhile (10, 30, 50, 70 %)
    pct = {1: 0.1, 2: 0.3, 3: 0.5, 4: 0.7}[int(held["step"])]
    got, n = share(done, down + 0.2, back)
    assert n >= 100, n
    assert abs(got - pct) < 0.15, (got, pct, n)
    assert int(restored["step"]) >= int(held["step"])
    assert "restored as this node knew it" in restored["reason"]
    assert all(s == 200 for _, _, s, _ in done)


def test_a_canary_never_ready_aborts(cluster):
    final = cluster.wait_state(
        "ro_unready", lambda h: h.get("state") == "aborted", timeout=8)
    assert final["cause"] == "not_ready"
    assert "canary init_fail not ready for" in final["reason"]
    s = requests.Session()
    got = {s.post("%s/v2/models/ro_unready/infer" % cluster.nodes[0].url,
                  json=BODY).headers.get("X-KServe-Variant")
           for _ in range(10)}
    assert got == {"identity_fp32"}


# ---- nginx -t ---------------------------------------------------------------

def nginx_t(body, extra="kserve_redis 127.0.0.1:6379;"):
    d = tempfile.mkdtemp(prefix="ksv-rollout-t-")
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("load_module %s/ngx_http_kserve_module.so;\n"
                "pid %s/nginx.pid;\nevents {}\nhttp {\n%s\n"
                "kserve_route r { variant a; variant b; %s }\n}\n"
                % (BUILD, d, extra, body))
    p = subprocess.run(["nginx", "-t", "-p", d, "-c", conf, "-e",
                        os.path.join(d, "error.log")],
                       capture_output=True, text=True, env=nginx_env())
    return p.returncode, p.stderr


@pytest.mark.parametrize("body,message", [
    ("rollout c;", 'names "c", which is not one of its variants'),
    ("rollout b steps=5,5,100;", 'invalid rollout steps "5,5,100"'),
    ("rollout b steps=0,100;", "invalid rollout steps"),
    ("rollout b steps=50,101;", "invalid rollout steps"),
    ("rollout b max_error_rate=1;", 'invalid percentage in '
                                    '"max_error_rate=1"'),
    ("rollout b margin=101%;", "invalid percentage"),
    ("rollout b interval=0;", 'invalid time in "interval=0"'),
    ("rollout b min_requests=-1;", 'invalid "min_requests=-1"'),
    ("rollout b speed=fast;", 'invalid parameter "speed=fast"'),
    ("rollout b; rollout a;", '"rollout" is duplicate'),
])
def test_nginx_t_rejects(body, message):
    rc, err = nginx_t(body)
    assert rc != 0
    assert message in err, err


def test_nginx_t_accepts_and_warns_without_redis():
    rc, err = nginx_t("rollout b steps=5,25,50,100 interval=30s "
                      "max_error_rate=1% max_p99=300ms min_requests=200 "
                      "margin=0.5% ready_timeout=1m;")
    assert rc == 0, err
    assert "without kserve_redis" not in err
    rc, err = nginx_t("rollout b;", extra="")
    assert rc == 0, err
    assert 'rollout of kserve_route "r" without kserve_redis never starts' \
        in err, err
