"""Routing on the request's own content (docs/directives.md, kserve_route;
the variables $kserve_param_NAME, $kserve_request_id,
$kserve_model_version).

The route is conftest's by_param: param_fail versions 1, 2, 3 weighted
5:3:2, a rule on the JSON parameter "tier", sticky on the parameter
"user", ejection after 2 failures in a row for 6 s.  param_fail fails a
request whose parameters say "fail": true.  Two nginx workers share the
ejection state; every request below opens its own connection so both
answer.
"""

import concurrent.futures
import json
import os
import time

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from conftest import wait_for

ROUTE = "by_param"
VARIANTS = ("param_fail:1", "param_fail:2", "param_fail:3")


def body(**params):
    b = {"inputs": [{"name": "INPUT0", "shape": [3], "datatype": "FP32",
                     "data": [1.0, 2.0, 3.0]}]}
    if params:
        b["parameters"] = params
    return b


def post(gw, b, close=True, extra=None):
    headers = {"Connection": "close"} if close else {}
    headers.update(extra or {})
    return requests.post("%s/v2/models/%s/infer" % (gw.url, ROUTE),
                         json=b, headers=headers, timeout=30)


def chosen(r):
    assert r.status_code == 200, r.text
    name = r.headers["X-KServe-Variant"]
    assert name == "param_fail:" + r.json()["model_version"]
    return name


def metric(gw, family, **labels):
    want = ",".join('%s="%s"' % kv for kv in labels.items())
    for line in gw.get("/metrics").text.splitlines():
        if line.startswith(family + "{") and want in line:
            return float(line.rsplit(" ", 1)[1])
    return None


def ejected(gw, name):
    return metric(gw, "ngx_kserve_route_ejected", route=ROUTE,
                  variant=name) == 1


@pytest.fixture(scope="module")
def by_param(gateway):
    for v in ("1", "2", "3"):
        url = "/v2/models/param_fail/versions/%s/ready" % v
        assert wait_for(lambda: gateway.get(url).status_code == 200,
                        timeout=60), v
    assert gateway.wait_model_ready("param_fail")
    return gateway


def test_rule_on_a_json_parameter(by_param):
    """tier=gold goes to version 3 from either nginx worker, whoever the
    sticky key names; another tier follows the key."""
    pids = set()
    for i in range(60):
        r = post(by_param, body(tier="gold", user="u-%d" % i))
        assert chosen(r) == "param_fail:3"
        pids.add(r.headers["X-Nginx-Pid"])
        if i >= 11 and len(pids) == 2:
            break
    assert len(pids) == 2
    seen = {chosen(post(by_param, body(tier="silver", user="u-%d" % i)))
            for i in range(40)}
    assert len(seen) >= 2


def test_rule_on_a_binary_request_header(by_param):
    """The official client's binary tensor request: the parameters live in
    the JSON header before the tensor bytes."""
    c = httpclient.InferenceServerClient("127.0.0.1:%d" % by_param.port)
    try:
        x = httpclient.InferInput("INPUT0", [3], "FP32")
        x.set_data_from_numpy(np.array([1, 2, 3], dtype=np.float32),
                              binary_data=True)
        for _ in range(6):
            res = c.infer(ROUTE, [x], parameters={"tier": "gold",
                                                  "user": "bin"})
            assert res.get_response()["model_version"] == "3"
            assert list(res.as_numpy("OUTPUT0")) == [1, 2, 3]
    finally:
        c.close()


def test_variables_in_log_format(by_param):
    """The same variables in log_format (conftest's kserve_vars log):
    a string's characters, a number as written, the version served."""
    log = os.path.join(by_param.dir, "kserve_vars.log")
    b = body(user="logger \u00e9", n=42, tier="gold")
    b["id"] = "req-\"7\""
    chosen(post(by_param, b))
    # nginx writes '"' and bytes beyond ASCII as \xNN in log lines
    assert wait_for(lambda: any(
        line.startswith("req-\\x227\\x22|3|logger \\xC3\\xA9|gold|42|")
        for line in open(log, errors="replace")), timeout=5), \
        open(log).read()[-2000:]
    # not an inference request: nothing found, "-" as nginx logs it
    by_param.get("/v2/health/live")
    assert wait_for(lambda: any(line.startswith("-|-|-|-|-|/v2/health/live")
                                for line in open(log)), timeout=5)


def keys_pass(gw, keys, threads=8):
    """{key: (variant, nginx pid)} for a request of each key."""
    def one(k):
        r = post(gw, body(user=k))
        return k, (chosen(r), r.headers["X-Nginx-Pid"])
    with concurrent.futures.ThreadPoolExecutor(threads) as ex:
        return dict(ex.map(one, keys))


def test_sticky_keys_stay_while_another_variant_is_ejected(by_param):
    """1,000 keys: eject version 1 (it fails twice in a row): the keys of
    versions 2 and 3 do not move, only version 1's do, to the others;
    once its ejection ends they are all back where they were.  (Ranges
    laid out over the usable variants only would shift version 2's
    range onto version 3's when version 1 goes.)"""
    gw = by_param
    keys = ["user-%d" % i for i in range(1000)]

    before = keys_pass(gw, keys)
    first = {k: v for k, (v, _) in before.items()}
    assert len({pid for _, pid in before.values()}) == 2
    count = {v: list(first.values()).count(v) for v in VARIANTS}
    assert 400 <= count["param_fail:1"] <= 600, count
    assert 200 <= count["param_fail:2"] <= 400, count
    assert 100 <= count["param_fail:3"] <= 300, count

    # make version 1 fail: one of its keys with "fail": true, twice
    victim = [k for k in keys if first[k] == "param_fail:1"][0]
    t0 = time.monotonic()
    for _ in range(2):
        r = post(gw, body(user=victim, fail=True))
        assert r.status_code == 500, r.text
        assert r.headers["X-KServe-Variant"] == "param_fail:1"
    assert ejected(gw, "param_fail:1")

    # GET /v2/routes says so, and until when
    st = {v["name"]: v for v in
          gw.get("/v2/routes/" + ROUTE).json()["variants"]}
    gone = st["param_fail:1"]
    assert gone["usable"] is False and gone["ready"] is True
    assert 0 < gone["ejected"]["remaining_ms"] <= 6000, gone
    assert abs(gone["ejected"]["until_unix_ms"] / 1000.0 - time.time()
               - gone["ejected"]["remaining_ms"] / 1000.0) < 1.0, gone
    assert st["param_fail:2"]["usable"] is True
    assert st["param_fail:2"]["ejected"] is None

    during = keys_pass(gw, keys)
    elapsed = time.monotonic() - t0
    assert elapsed < 5.5, elapsed   # all of it inside the 6 s ejection
    assert ejected(gw, "param_fail:1")

    moved = {k for k in keys if during[k][0] != first[k]}
    assert moved == {k for k in keys if first[k] == "param_fail:1"}
    went = [during[k][0] for k in moved]
    assert "param_fail:1" not in went
    assert went.count("param_fail:2") > went.count("param_fail:3") > 0

    # back after the ejection: every key where it was
    assert wait_for(lambda: not ejected(gw, "param_fail:1"), timeout=10)
    after = keys_pass(gw, keys)
    assert {k: v for k, (v, _) in after.items()} == first
