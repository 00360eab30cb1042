"""Routed model names (kserve_route, kserve_redis; docs/redis.md).

The routes are in conftest's NGINX_CONF: fraud (90/10, sticky on
X-User-Id, fallback fraud_v1), fraud_swrr (2:1 smooth WRR), fraud_canary
(a header rule), flaky (identity_fp32 + fail_model, fallback
identity_fp32, eject after 3 failures for 2 s then 4 s) and shadowed
(identity_fp32 mirrored to slow_mirror, 300 ms a call).  fraud_v1 answers
the mean of FEATURES, fraud_v2 the largest, so the variant shows.
"""

import concurrent.futures
import os
import re
import subprocess
import tempfile
import threading
import time

import pytest
import requests

from conftest import BUILD, nginx_env, wait_for

FEATURES = {"inputs": [{"name": "FEATURES", "shape": [1, 4],
                        "datatype": "FP32", "data": [1, 2, 3, 10]}]}
SCORE = {"fraud_v1": 4.0, "fraud_v2": 10.0}
FP32 = {"inputs": [{"name": "INPUT0", "shape": [1, 3], "datatype": "FP32",
                    "data": [1.5, 2.5, 3.5]}]}


def rcli(gw, *args):
    return subprocess.run(["redis-cli", "-p", str(gw.redis_port)]
                          + [str(a) for a in args], capture_output=True,
                          text=True, timeout=10).stdout


def hgetall(gw, key):
    words = rcli(gw, "HGETALL", key).split()
    return dict(zip(words[0::2], words[1::2]))


def infer(gw, name, body=FEATURES, headers=None, session=None):
    return (session or requests).post(
        "%s/v2/models/%s/infer" % (gw.url, name), json=body,
        headers=headers or {}, timeout=30)


def variant(resp):
    assert resp.status_code == 200, resp.text
    name = resp.json()["model_name"]
    assert resp.headers["X-KServe-Variant"] == name
    return name


def fresh(gw, name, n, body=FEATURES):
    """n requests on new connections, so both nginx workers answer:
    [(variant, nginx pid)]."""
    out = []
    for _ in range(n):
        r = infer(gw, name, body, headers={"Connection": "close"})
        out.append((variant(r), r.headers["X-Nginx-Pid"]))
    return out


def metric(gw, family, **labels):
    text = gw.get("/metrics").text
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    for line in text.splitlines():
        if line.startswith(family + "{") and want in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def error_log(gw):
    with open(os.path.join(gw.dir, "error.log"), errors="replace") as f:
        return f.read()


@pytest.fixture(scope="module")
def routed(gateway):
    for m in ("fraud_v1", "fraud_v2", "identity_fp32", "fail_model",
              "slow_mirror"):
        assert gateway.wait_model_ready(m), m
    rcli(gateway, "DEL", "kserve:route:fraud")
    yield gateway
    rcli(gateway, "DEL", "kserve:route:fraud")


def test_variant_is_visible(routed):
    r = infer(routed, "fraud", headers={"X-User-Id": "alice"})
    name = variant(r)
    assert name in SCORE
    assert r.json()["outputs"][0]["data"] == [SCORE[name]]


def test_weighted_split(routed):
    """90/10 through nginx (the exact +-2 points over 10,000 draws is
    the unit test's): 600 requests land within 5 points."""
    s = requests.Session()
    names = [variant(infer(routed, "fraud", session=s)) for _ in range(600)]
    share = names.count("fraud_v2") / len(names)
    assert 0.05 <= share <= 0.15, share


def test_sticky_keys_stay(routed):
    s = requests.Session()
    seen = {}
    for i in range(40):
        for _ in range(3):
            name = variant(infer(routed, "fraud", session=s,
                                 headers={"X-User-Id": "user-%d" % i}))
            assert seen.setdefault(i, name) == name


def test_swrr_interleaving(routed):
    """Each nginx worker runs its own smooth WRR: weights 2:1 give
    fraud_v1 fraud_v2 fraud_v1, over and over, in every worker."""
    by_pid = {}
    for name, pid in fresh(routed, "fraud_swrr", 30, FEATURES):
        by_pid.setdefault(pid, []).append(name[-1])
    for pid, seq in by_pid.items():
        assert "".join(seq) == ("121" * 30)[:len(seq)], (pid, seq)


def test_rule_before_weights(routed):
    s = requests.Session()
    for _ in range(5):
        assert variant(infer(routed, "fraud_canary", session=s,
                             headers={"X-Canary": "yes"})) == "fraud_v2"
        assert variant(infer(routed, "fraud_canary", session=s,
                             headers={"X-Canary": "no"})) == "fraud_v1"


def test_metadata_ready_config(routed):
    meta = routed.get("/v2/models/fraud").json()
    assert meta["name"] == "fraud"
    assert meta["inputs"][0]["name"] == "FEATURES"
    assert routed.get("/v2/models/fraud/ready").status_code == 200
    assert routed.get("/v2/models/fraud/config").json()["name"] == "fraud"
    # a routed name has no versions
    assert routed.get("/v2/models/fraud/versions/1/ready").status_code == 400


def test_redis_weights_reach_every_worker(routed):
    rcli(routed, "HSET", "kserve:route:fraud", "fraud_v1", 0, "fraud_v2", 1)
    time.sleep(1.0)
    seen = fresh(routed, "fraud", 30)
    assert {name for name, _ in seen} == {"fraud_v2"}
    assert len({pid for _, pid in seen}) == 2, "one nginx worker only"

    # bad values are ignored (logged), the variant keeps its weight
    rcli(routed, "HSET", "kserve:route:fraud", "fraud_v2", "lots",
         "nope", 3)
    time.sleep(1.0)
    assert {name for name, _ in fresh(routed, "fraud", 10)} == {"fraud_v2"}
    log = error_log(routed)
    assert 'weight "lots" of "fraud_v2"' in log
    assert '"nope" is not a variant of route "fraud"' in log

    # every weight 0: ignored too
    rcli(routed, "HSET", "kserve:route:fraud", "fraud_v2", 0)
    time.sleep(1.0)
    assert {name for name, _ in fresh(routed, "fraud", 10)} == {"fraud_v2"}

    # DEL: back to nginx.conf's 90/10
    rcli(routed, "DEL", "kserve:route:fraud")
    time.sleep(1.0)
    names = [name for name, _ in fresh(routed, "fraud", 30)]
    assert names.count("fraud_v1") >= 20


def test_redis_stats(routed):
    before = hgetall(routed, "kserve:stats:fraud_canary:fraud_v2")
    for _ in range(7):
        variant(infer(routed, "fraud_canary", headers={"X-Canary": "yes"}))

    def flushed():
        st = hgetall(routed, "kserve:stats:fraud_canary:fraud_v2")
        return int(st.get("requests", 0)) - int(before.get("requests", 0)) \
            == 7 and st
    assert wait_for(flushed, timeout=3)
    st = hgetall(routed, "kserve:stats:fraud_canary:fraud_v2")
    assert int(st["requests"]) == int(st["success"])
    assert int(st["latency_le_inf"]) == int(st["requests"])
    assert int(st["latency_sum_us"]) > 0
    assert abs(int(st["last_update_ms"]) / 1000 - time.time()) < 10
    assert "fraud_canary" in rcli(routed, "SMEMBERS", "kserve:routes")
    assert "fraud_v2" in rcli(routed, "SMEMBERS",
                              "kserve:variants:fraud_canary")


def test_redis_down_and_back(routed):
    """Redis stopped under load: no client error, the weights known stay;
    restarted: the counts made meanwhile reach it."""
    rcli(routed, "HSET", "kserve:route:fraud", "fraud_v1", 0, "fraud_v2", 1)
    time.sleep(1.0)

    done = []
    errors = []
    stop = threading.Event()

    def load():
        s = requests.Session()
        while not stop.is_set():
            try:
                r = infer(routed, "fraud", session=s)
                if r.status_code != 200:
                    errors.append(r.status_code)
                else:
                    done.append((time.monotonic(), variant(r)))
            except requests.RequestException as e:
                errors.append(repr(e))

    threads = [threading.Thread(target=load) for _ in range(2)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        redis = routed.procs.pop("redis")
        redis.terminate()
        redis.wait(timeout=10)
        killed = time.monotonic()
        time.sleep(1.5)
        restarted = time.monotonic()
        routed.start_redis()
        assert wait_for(lambda: rcli(routed, "PING").strip() == "PONG")
        time.sleep(0.5)
    finally:
        stop.set()
        for t in threads:
            t.join()

    assert errors == []
    down = [name for t, name in done if t > killed]
    assert set(name for t, name in done if killed < t < restarted) \
        == {"fraud_v2"}

    # the new Redis has no weights: nginx.conf's again; the counts since
    # the kill (and since the last flush before it) are flushed into it
    def counted():
        n = sum(int(hgetall(routed, "kserve:stats:fraud:%s" % v)
                    .get("requests", 0)) for v in SCORE)
        return n >= len(down) and n
    assert wait_for(counted, timeout=6)
    assert counted() <= len(done)
    log = error_log(routed)
    assert re.search(r"redis 127\.0\.0\.1:\d+ unavailable", log)
    assert log.count("redis 127.0.0.1:%d connected" % routed.redis_port) >= 4


def test_ejection_and_fallback(routed):
    """fail_model raises on every call: its failures are retried on the
    fallback (no client error), it is ejected after 3 in a row for 2 s,
    comes back, fails 3 more times and is ejected again (4 s)."""
    e0 = metric(routed, "ngx_kserve_route_ejections_total",
                route="flaky", variant="fail_model")
    s = requests.Session()
    t0 = time.monotonic()
    for _ in range(20):
        assert variant(infer(routed, "flaky", FP32, session=s)) \
            == "identity_fp32"
    assert time.monotonic() - t0 < 1.8
    assert metric(routed, "ngx_kserve_route_retries_total",
                  route="flaky", variant="fail_model") == 3
    assert metric(routed, "ngx_kserve_route_ejected",
                  route="flaky", variant="fail_model") == 1
    assert metric(routed, "ngx_kserve_route_ejections_total",
                  route="flaky", variant="fail_model") == e0 + 1

    time.sleep(2.2)
    assert metric(routed, "ngx_kserve_route_ejected",
                  route="flaky", variant="fail_model") == 0
    for _ in range(20):
        assert variant(infer(routed, "flaky", FP32, session=s)) \
            == "identity_fp32"
    assert metric(routed, "ngx_kserve_route_retries_total",
                  route="flaky", variant="fail_model") == 6
    assert metric(routed, "ngx_kserve_route_ejections_total",
                  route="flaky", variant="fail_model") == e0 + 2
    assert "variant \"fail_model\" ejected for 4000 ms" in error_log(routed)


def test_mirror(routed):
    """Every request to shadowed is copied to slow_mirror (300 ms a
    call): the client never waits for it, the mirror gets them all."""

    def mirror_calls():
        st = routed.get("/v2/models/slow_mirror/stats").json()
        return sum(m["inference_stats"]["success"]["count"]
                   for m in st["model_stats"])

    before = mirror_calls()
    s = requests.Session()
    for _ in range(8):
        t0 = time.monotonic()
        assert variant(infer(routed, "shadowed", FP32, session=s)) \
            == "identity_fp32"
        assert time.monotonic() - t0 < 0.25
    assert wait_for(lambda: mirror_calls() - before == 8, timeout=10)
    assert metric(routed, "ngx_kserve_route_mirrored_total",
                  route="shadowed", variant="slow_mirror") >= 8


def test_metrics_series(routed):
    variant(infer(routed, "fraud_canary"))
    assert metric(routed, "ngx_kserve_route_requests_total",
                  route="fraud_canary", variant="fraud_v1",
                  outcome="success") >= 1
    assert metric(routed, "ngx_kserve_route_weight",
                  route="fraud", variant="fraud_v1") == 90
    text = routed.get("/metrics").text
    assert 'ngx_kserve_route_duration_seconds_bucket{route="fraud_canary",' \
        'variant="fraud_v1",le="+Inf"}' in text


# ---- nginx -t --------------------------------------------------------------

BAD = [
    ("variant a weight=-1;", "invalid weight"),
    ("variant a weight=x;", "invalid weight"),
    ("variant a; strategy fast;", "unknown strategy \"fast\""),
    ("variant a weight=0; variant b weight=0;", "has weight 0"),
    ("variant a; variant a;", "duplicate variant \"a\""),
    ("variant a; fallback r;", "is the routed name itself"),
    ("variant a; mirror b 0%;", "invalid mirror percentage"),
    ("variant a; mirror b 150%;", "invalid mirror percentage"),
    ("variant a; rule $http_x 1 b;", "not one of its variants"),
    ("fallback a;", "has no \"variant\""),
    ("variant a:x;", "invalid model version"),
    ("variant a; sticky $a $b; sticky $c;", "invalid number of arguments"),
    ("variant a; eject_time 5s 1s;", "invalid maximum eject_time"),
    ("variant a; colour blue;", "unknown directive \"colour\""),
]


def nginx_t(body, extra=""):
    d = tempfile.mkdtemp(prefix="ksv-t-")
    conf = os.path.join(d, "nginx.conf")
    with open(conf, "w") as f:
        f.write("load_module %s/ngx_http_kserve_module.so;\n"
                "pid %s/nginx.pid;\nevents {}\nhttp {\n%s\n"
                "kserve_route r { %s }\n}\n" % (BUILD, d, extra, body))
    p = subprocess.run(["nginx", "-t", "-p", d, "-c", conf, "-e",
                        os.path.join(d, "error.log")],
                       capture_output=True, text=True, env=nginx_env())
    return p.returncode, p.stderr


@pytest.mark.parametrize("body,message", BAD)
def test_nginx_t_rejects(body, message):
    rc, err = nginx_t(body)
    assert rc != 0
    assert message in err, err


def test_nginx_t_accepts_and_no_nesting():
    rc, err = nginx_t("variant a:2 weight=3; variant b; strategy swrr; "
                      "sticky $http_x_user; fallback c; mirror d 0.5%; "
                      "max_fails 5; eject_time 1s 1m;",
                      "kserve_redis 127.0.0.1:6379 interval=1s;")
    assert rc == 0, err
    rc, err = nginx_t("variant a;", "kserve_route a2 { variant r; }")
    assert rc != 0 and "routes do not nest" in err, err
    rc, err = nginx_t("variant a;", "kserve_redis 127.0.0.1:99999;")
    assert rc != 0 and "invalid port" in err, err


def test_nginx_t_resolves_the_redis_name():
    """the name is resolved once, when nginx reads its configuration (a
    reconnect must not block the event loop on a DNS lookup)"""
    rc, err = nginx_t("variant a;", "kserve_redis localhost:6379;")
    assert rc == 0, err
    rc, err = nginx_t("variant a;", "kserve_redis ksv-no-such-host.invalid;")
    assert rc != 0 and \
        'host not found in kserve_redis "ksv-no-such-host.invalid"' in err, err
    rc, err = nginx_t("variant a;", "kserve_redis unix:/tmp/redis.sock;")
    assert rc != 0 and "HOST[:PORT] expected" in err, err
