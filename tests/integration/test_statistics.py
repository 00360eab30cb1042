"""Triton's statistics extension and the Prometheus endpoint.

The worker keeps the model statistics for every nginx worker; the
gateway's own counters sit in nginx shared memory.  Either way the
numbers must move by exactly what a test sent, whichever nginx worker
process served each request.
"""

import os
import re
import signal
import threading
import time

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import wait_for


TRITON_METRICS = (
    "nv_inference_request_success",
    "nv_inference_request_failure",
    "nv_inference_count",
    "nv_inference_exec_count",
    "nv_inference_request_duration_us",
    "nv_inference_queue_duration_us",
    "nv_inference_compute_input_duration_us",
    "nv_inference_compute_infer_duration_us",
    "nv_inference_compute_output_duration_us",
)

SAMPLE = re.compile(r'^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})? (\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"')


def simple_inputs(rows):
    a = np.arange(16 * rows, dtype=np.int32).reshape(rows, 16)
    b = np.ones((rows, 16), dtype=np.int32)
    inputs = [httpclient.InferInput("INPUT0", [rows, 16], "INT32"),
              httpclient.InferInput("INPUT1", [rows, 16], "INT32")]
    inputs[0].set_data_from_numpy(a, binary_data=False)
    inputs[1].set_data_from_numpy(b, binary_data=False)
    return inputs


def model_stat(client, model, version=""):
    st = client.get_inference_statistics(model_name=model,
                                         model_version=version)
    assert len(st["model_stats"]) == 1
    return st["model_stats"][0]


def scrape(gateway):
    """{(name, frozenset(labels)): value} plus {name: type}."""
    r = gateway.get("/metrics")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    samples, types, helps = {}, {}, set()
    for line in r.text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(" ", 3)
            types[name] = kind
            continue
        if line.startswith("# HELP "):
            helps.add(line.split(" ", 3)[2])
            continue
        m = SAMPLE.match(line)
        assert m, "not a Prometheus sample: %r" % line
        labels = frozenset(LABEL.findall(m.group(2) or ""))
        samples[(m.group(1), labels)] = float(m.group(3))
    assert set(types) == helps
    return samples, types


def model_sample(samples, name, model, version="1"):
    return samples[(name, frozenset({("model", model),
                                     ("version", version)}))]


def requests_total(samples):
    return sum(v for (name, _), v in samples.items()
               if name == "ngx_kserve_requests_total")


# ---- GET /v2/models/.../stats ------------------------------------------------

def test_server_metadata_lists_statistics(client):
    assert "statistics" in client.get_server_metadata()["extensions"]


def test_stats_follow_inferences(client):
    before = model_stat(client, "simple")
    assert before["name"] == "simple"
    assert before["version"] == "1"

    n, rows = 5, 3
    for _ in range(n):
        client.infer("simple", simple_inputs(rows))

    after = model_stat(client, "simple")
    inf, was = after["inference_stats"], before["inference_stats"]

    # one request of [3, 16] is 3 inferences, as in Triton
    assert after["inference_count"] - before["inference_count"] == n * rows
    # sent one after another: nothing to batch them with
    assert after["execution_count"] - before["execution_count"] == n
    for key in ("success", "queue", "compute_input", "compute_infer",
                "compute_output"):
        assert inf[key]["count"] - was[key]["count"] == n, key
    assert inf["success"]["ns"] > was["success"]["ns"]
    assert inf["fail"] == was["fail"]
    assert after["last_inference"] >= before["last_inference"]
    assert after["last_inference"] > 0

    sizes = {b["batch_size"]: b for b in after["batch_stats"]}
    old = {b["batch_size"]: b for b in before["batch_stats"]}
    grown = sizes[rows]["compute_infer"]["count"] - \
        old.get(rows, {"compute_infer": {"count": 0}})["compute_infer"]["count"]
    assert grown == n

    # Triton's keys, all of them
    assert set(after) >= {"name", "version", "last_inference",
                          "inference_count", "execution_count",
                          "inference_stats", "batch_stats"}
    assert set(inf) >= {"success", "fail", "queue", "compute_input",
                        "compute_infer", "compute_output"}


def test_stats_count_failures(gateway, client):
    assert gateway.wait_model_ready("error_model")
    before = model_stat(client, "error_model")
    x = np.zeros((1, 4), dtype=np.float32)
    inp = httpclient.InferInput("INPUT0", [1, 4], "FP32")
    inp.set_data_from_numpy(x, binary_data=False)
    for _ in range(2):
        with pytest.raises(InferenceServerException):
            client.infer("error_model", [inp])
    after = model_stat(client, "error_model")
    fail, was = after["inference_stats"]["fail"], \
        before["inference_stats"]["fail"]
    assert fail["count"] - was["count"] == 2
    assert fail["ns"] > was["ns"]
    assert after["inference_stats"]["success"] == \
        before["inference_stats"]["success"]


def test_stats_per_version_and_all(client):
    st = model_stat(client, "simple", "1")
    assert (st["name"], st["version"]) == ("simple", "1")

    everything = client.get_inference_statistics()
    names = {(s["name"], s["version"]) for s in everything["model_stats"]}
    assert {("simple", "1"), ("identity_fp32", "1"),
            ("text_upper", "1")} <= names


def test_stats_unknown(gateway, client):
    with pytest.raises(InferenceServerException) as e:
        client.get_inference_statistics(model_name="no_such_model")
    assert e.value.status() == "404"
    assert "Request for unknown model: 'no_such_model' is not found" \
        in e.value.message()

    with pytest.raises(InferenceServerException) as e:
        client.get_inference_statistics(model_name="simple",
                                        model_version="7")
    assert e.value.status() == "404"

    r = gateway.get("/v2/models/simple/versions/x/stats")
    assert r.status_code == 400
    r = gateway.post("/v2/models/simple/stats")
    assert r.status_code == 405
    assert "error" in r.json()


# ---- /metrics ------------------------------------------------------------------

def test_metrics_triton_names(gateway, client):
    client.infer("simple", simple_inputs(1))
    samples, types = scrape(gateway)
    for name in TRITON_METRICS:
        assert types[name] == "counter", name
        assert model_sample(samples, name, "simple") >= 0
    assert model_sample(samples, "nv_inference_request_success",
                        "simple") >= 1
    assert types["ngx_kserve_requests_total"] == "counter"
    assert types["ngx_kserve_inflight_requests"] == "gauge"
    assert types["ngx_kserve_infer_duration_seconds"] == "histogram"
    assert types["ngx_kserve_worker_up"] == "gauge"
    assert samples[("ngx_kserve_worker_up",
                    frozenset({("endpoint", gateway.endpoint)}))] == 1


def test_metrics_count_exactly(gateway, client):
    before, _ = scrape(gateway)
    n, rows = 7, 2
    for _ in range(n):
        client.infer("simple", simple_inputs(rows))
    after, _ = scrape(gateway)

    def delta(name):
        return model_sample(after, name, "simple") - \
            model_sample(before, name, "simple")

    assert delta("nv_inference_request_success") == n
    assert delta("nv_inference_count") == n * rows
    assert delta("nv_inference_exec_count") == n
    assert delta("nv_inference_request_failure") == 0
    assert delta("nv_inference_request_duration_us") > 0

    hist = "ngx_kserve_infer_duration_seconds_count"
    assert after[(hist, frozenset())] - before[(hist, frozenset())] == n
    inf = frozenset({("le", "+Inf")})
    assert after[("ngx_kserve_infer_duration_seconds_bucket", inf)] == \
        after[(hist, frozenset())]


def test_requests_counted_across_nginx_workers(gateway):
    """Every request on its own connection, until both nginx workers have
    answered some; the shared counter must grow by exactly the number
    sent, whichever process served them."""
    before, _ = scrape(gateway)
    pids, sent, lock = set(), [0], threading.Lock()

    def one():
        r = requests.get(gateway.url + "/v2/health/live",
                         headers={"Connection": "close"}, timeout=10)
        assert r.status_code == 200
        with lock:
            pids.add(r.headers["X-Nginx-Pid"])
            sent[0] += 1

    while sent[0] < 50 or (len(pids) < 2 and sent[0] < 1000):
        threads = [threading.Thread(target=one) for _ in range(25)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()

    assert len(pids) == 2, "one nginx worker served all %d" % sent[0]

    # a request is counted in its log phase, just after its response
    # went out: give the last ones a moment
    def grown():
        return requests_total(scrape(gateway)[0]) - requests_total(before)

    assert wait_for(lambda: grown() >= sent[0], timeout=5)
    assert grown() == sent[0]

    after, _ = scrape(gateway)
    key = ("ngx_kserve_requests_total", frozenset({("status", "200")}))
    assert after[key] - before.get(key, 0) == sent[0]


def test_inflight_gauge(gateway):
    assert gateway.wait_model_ready("slow_model")
    body = {"inputs": [{"name": "INPUT0", "shape": [1, 1],
                        "datatype": "FP32", "data": [1.0]}],
            "parameters": {"sleep_ms": 1500}}
    results = []

    def one():
        results.append(gateway.post("/v2/models/slow_model/infer",
                                    json=body).status_code)

    threads = [threading.Thread(target=one) for _ in range(3)]
    for t in threads:
        t.start()

    def inflight():
        return scrape(gateway)[0][("ngx_kserve_inflight_requests",
                                   frozenset())]

    try:
        assert wait_for(lambda: inflight() >= 3, timeout=5)
    finally:
        for t in threads:
            t.join()
    assert results == [200, 200, 200]
    assert wait_for(lambda: inflight() == 0, timeout=5)


def test_metrics_method_and_head(gateway):
    assert requests.post(gateway.url + "/metrics", timeout=10) \
        .status_code == 405
    r = requests.head(gateway.url + "/metrics", timeout=10)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/plain")


# ---- faults ------------------------------------------------------------------

def nv_samples(samples):
    return [k for k in samples if k[0].startswith("nv_")]


def test_hung_worker_meets_the_deadline(gateway):
    """A stopped (not dead) worker: the stats request gets its 504 at the
    deadline, the scrape its gateway figures; late replies are dropped."""
    worker = gateway.procs["worker"].pid
    os.kill(worker, signal.SIGSTOP)
    try:
        start = time.monotonic()
        r = requests.get(gateway.short_url + "/v2/models/simple/stats",
                         timeout=10)
        took = time.monotonic() - start
        assert r.status_code == 504, r.text
        assert "Deadline exceeded" in r.json()["error"]
        assert 0.9 < took < 2.5

        start = time.monotonic()
        samples, _ = scrape(gateway)
        assert time.monotonic() - start < 4.0
        assert not nv_samples(samples)
        assert ("ngx_kserve_inflight_requests", frozenset()) in samples
    finally:
        os.kill(worker, signal.SIGCONT)

    assert gateway.wait_model_ready("simple")
    assert wait_for(lambda: nv_samples(scrape(gateway)[0]), timeout=5)
    assert model_stat_ok(gateway)


def model_stat_ok(gateway):
    r = gateway.get("/v2/models/simple/stats")
    return r.status_code == 200 and r.json()["model_stats"][0]["name"] == \
        "simple"


def test_metrics_without_worker(gateway):
    up = ("ngx_kserve_worker_up", frozenset({("endpoint", gateway.endpoint)}))
    gateway.stop_worker()
    try:
        # every nginx worker notices within a few index intervals
        assert wait_for(lambda: all(scrape(gateway)[0][up] == 0
                                    for _ in range(6)), timeout=5)
        samples, types = scrape(gateway)
        assert not nv_samples(samples)
        assert types["ngx_kserve_requests_total"] == "counter"

        r = gateway.get("/v2/models/simple/stats")
        assert r.status_code == 503
        assert "error" in r.json()
    finally:
        gateway.start_worker()
    assert gateway.wait_model_ready("simple", timeout=30)
    assert wait_for(lambda: scrape(gateway)[0][up] == 1, timeout=5)


def test_counters_survive_reload(gateway):
    gateway.get("/v2/health/live")
    before = requests_total(scrape(gateway)[0])
    assert before > 0
    gateway.nginx_signal("reload")
    assert wait_for(lambda: gateway.get("/v2/health/ready").ok)
    time.sleep(0.5)   # the old workers are gone; the new ones count on
    assert requests_total(scrape(gateway)[0]) >= before + 1
