"""GET /v2/routes and GET /v2/routes/NAME (docs/protocol.md): what each
routed name does now, from either of the two nginx workers.

status_demo (conftest): param_fail:1 weight 3, param_fail:2 weight 1, a
rule sends {"parameters": {"to": "two"}} to param_fail:2, windows of 1 s,
never ejects.  param_fail fails a request with "fail": true.
"""

import subprocess
import time

import requests

from conftest import wait_for

ROUTE = "status_demo"


def status(gw, name=None, url=None, headers=None):
    path = "/v2/routes" + ("/" + name if name else "")
    h = {"Connection": "close"}
    h.update(headers or {})
    return requests.get((url or gw.url) + path, headers=h, timeout=10)


def variants(doc):
    return {v["name"]: v for v in doc["variants"]}


def infer(gw, **params):
    b = {"inputs": [{"name": "INPUT0", "shape": [3], "datatype": "FP32",
                     "data": [1.0, 2.0, 3.0]}], "parameters": params}
    return requests.post("%s/v2/models/%s/infer" % (gw.url, ROUTE), json=b,
                         headers={"Connection": "close"}, timeout=30)


def rcli(gw, *args):
    return subprocess.run(["redis-cli", "-p", str(gw.redis_port)]
                          + [str(a) for a in args], capture_output=True,
                          text=True, timeout=10).stdout


def test_every_route_listed(gateway):
    assert wait_for(lambda: gateway.wait_model_ready("param_fail"))
    r = status(gateway)
    assert r.status_code == 200
    assert r.headers["Content-Type"] == "application/json"
    names = [rt["name"] for rt in r.json()["routes"]]
    assert {"fraud", "fraud_swrr", "flaky", "by_param", ROUTE} <= set(names)
    fraud = {rt["name"]: rt for rt in r.json()["routes"]}["fraud"]
    assert fraud["strategy"] == {"name": "random"}
    assert fraud["rollout"] is None
    assert fraud["redis"]["key"] == "kserve:route:fraud"
    v = variants(fraud)
    assert v["fraud_v1"]["weight"]["configured"] == 90
    assert v["fraud_v1"]["fallback"] is True
    swrr = {rt["name"]: rt for rt in r.json()["routes"]}["fraud_swrr"]
    assert swrr["strategy"]["name"] == "swrr"


def test_one_route(gateway):
    doc = status(gateway, ROUTE).json()
    assert doc["name"] == ROUTE
    assert doc["window_seconds"] == 1
    v = variants(doc)
    assert list(v) == ["param_fail:1", "param_fail:2"]
    for name, conf in (("param_fail:1", 3), ("param_fail:2", 1)):
        assert v[name]["role"] == "variant"
        assert v[name]["weight"] == {"configured": conf, "redis": None,
                                     "effective": conf}
        assert v[name]["ready"] is True and v[name]["usable"] is True
        assert v[name]["ejected"] is None
        assert v[name]["outstanding"] == 0


def test_unknown_route_is_a_kserve_404(gateway):
    r = status(gateway, "no_such_route")
    assert r.status_code == 404
    assert r.json() == {"error": "Request for unknown route: "
                                 "'no_such_route' is not found"}
    assert status(gateway, "a/b").status_code == 404


def test_guarded_by_the_api_keys(gateway):
    r = status(gateway, url=gateway.guard_url)
    assert r.status_code == 401
    assert "error" in r.json()
    r = status(gateway, ROUTE, url=gateway.guard_url,
               headers={"X-API-Key": gateway.api_keys[0]})
    assert r.status_code == 200 and r.json()["name"] == ROUTE


def test_redis_and_effective_weights(gateway):
    """HSET moves the weight every nginx worker uses: configured stays,
    redis and effective follow, from either worker; DEL brings
    nginx.conf's back."""
    def seen(want2, want_redis, n=8):
        for _ in range(n):
            v = variants(status(gateway, ROUTE).json())
            if (v["param_fail:2"]["weight"]["effective"] != want2
                    or v["param_fail:2"]["weight"]["redis"] != want_redis
                    or v["param_fail:1"]["weight"]["redis"] is not None):
                return False
        return True

    key = "kserve:route:" + ROUTE
    try:
        rcli(gateway, "HSET", key, "param_fail:2", 7)
        assert wait_for(lambda: seen(7, 7), timeout=5)
        v = variants(status(gateway, ROUTE).json())
        assert v["param_fail:2"]["weight"]["configured"] == 1
        assert v["param_fail:1"]["weight"]["effective"] == 3
        assert status(gateway, ROUTE).json()["redis"]["weights"] is True
    finally:
        rcli(gateway, "DEL", key)
    assert wait_for(lambda: seen(1, None), timeout=5)


def test_window_success_rate_and_latency(gateway):
    """Requests to param_fail:2 only (the rule), one in four failing, for
    about three windows: the last complete window has them, a success
    rate near 3/4, quantiles in order; param_fail:1 had nothing."""
    t_end = time.monotonic() + 2.6
    sent = 0
    while time.monotonic() < t_end:
        fail = sent % 4 == 3
        r = infer(gateway, to="two", fail=fail)
        assert r.status_code == (500 if fail else 200), r.text
        assert r.headers["X-KServe-Variant"] == "param_fail:2"
        sent += 1
    assert sent >= 12, sent

    doc = status(gateway, ROUTE).json()
    v = variants(doc)
    w = v["param_fail:2"]["window"]
    assert w["complete"] is True
    assert 0.8 <= w["seconds"] <= 1.6, w
    assert w["ended_seconds_ago"] < 1.6, w
    assert w["requests"] >= 4, w
    assert w["requests"] == w["success"] + w["failure"] + w["client_error"]
    # any 4 requests in a row hold one failure and three successes
    assert w["failure"] >= w["requests"] // 4 and w["success"] >= 3, w
    assert 0.5 <= w["success_rate"] < 1.0, w
    lat = w["latency_ms"]
    assert 0 < lat["p50"] <= lat["p90"] <= lat["p99"] <= 1000, lat
    assert 0 < lat["mean"] < 1000, lat
    total = v["param_fail:2"]["total"]
    assert total["failure"] >= sent // 4
    assert total["requests"] >= sent

    one = v["param_fail:1"]["window"]
    assert one["requests"] == 0
    assert one["success_rate"] is None and one["latency_ms"] is None

    # both workers read the same shared window (the kernel picks which
    # worker accepts: ask until both answered)
    pids = {}
    for _ in range(60):
        r = status(gateway, ROUTE)
        win = variants(r.json())["param_fail:2"]["window"]
        pids.setdefault(r.headers["X-Nginx-Pid"], []).append(win)
        if len(pids) == 2:
            break
    assert len(pids) == 2
