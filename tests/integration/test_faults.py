"""Faults with real processes: instances killed, deadlines passed,
clients gone, the worker restarted, nginx reloaded and stopped."""

import concurrent.futures
import json
import os
import signal
import socket
import time

import requests

from conftest import wait_for

SLOW = "/v2/models/slow_model/infer"


def slow_body(sleep_ms, n=4):
    return json.dumps({
        "inputs": [{"name": "INPUT0", "shape": [1, n], "datatype": "FP32",
                    "data": [1.0] * n}],
        "parameters": {"sleep_ms": sleep_ms}})


def timed_post(url, data, timeout=30):
    start = time.monotonic()
    r = requests.post(url, data=data, timeout=timeout)
    return r, time.monotonic() - start


def test_killed_instance_fails_fast_and_recovers(gateway):
    assert gateway.wait_model_ready("slow_model")
    pids = gateway.instances("slow_model")
    assert pids, "no slow_model instance found"

    with concurrent.futures.ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(timed_post, gateway.url + SLOW,
                              slow_body(5000))
        time.sleep(0.5)
        killed_at = time.monotonic()
        for pid in pids:
            os.kill(pid, signal.SIGKILL)
        r, _ = pending.result(timeout=15)
        answered_after_kill = time.monotonic() - killed_at

    # the in-flight request fails with a KServe error, well before its
    # 5 s sleep or the 10 s deadline would have ended it
    assert r.status_code >= 500, r.text
    assert "error" in r.json()
    assert answered_after_kill < 1.5

    # the supervisor restarts the instance and the model serves again
    assert gateway.wait_model_ready("slow_model", timeout=30)
    assert wait_for(lambda: gateway.post(SLOW, data=slow_body(0)).ok)
    assert set(gateway.instances("slow_model")).isdisjoint(pids)


def test_kill_under_load_no_request_hangs(gateway):
    assert gateway.wait_model_ready("slow_model")
    stop_at = time.monotonic() + 3.0

    def loop():
        seen = []
        while time.monotonic() < stop_at:
            r, took = timed_post(gateway.url + SLOW, slow_body(20))
            seen.append((r.status_code, took, r.json()))
        return seen

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        futures = [pool.submit(loop) for _ in range(8)]
        time.sleep(1.0)
        for pid in gateway.instances("slow_model"):
            os.kill(pid, signal.SIGKILL)
        results = [x for f in futures for x in f.result(timeout=30)]

    assert results
    for status, took, doc in results:
        assert status in (200, 500, 503), (status, doc)
        assert took < 10.0          # nothing waits out the deadline
        if status != 200:
            assert doc.get("error"), doc
    assert any(status == 200 for status, _, _ in results)
    assert gateway.wait_model_ready("slow_model", timeout=30)


def test_deadline_answers_504(gateway):
    assert gateway.wait_model_ready("slow_model")
    start = time.monotonic()
    r = requests.post(gateway.short_url + SLOW, data=slow_body(1500),
                      timeout=30)
    took = time.monotonic() - start
    assert r.status_code == 504, r.text
    assert "error" in r.json()
    assert 0.9 < took < 1.5
    # the late reply (1.5 s: within the worker's 1 s grace) is dropped
    # quietly and the next request is fine
    time.sleep(1.0)
    assert gateway.post(SLOW, data=slow_body(0)).status_code == 200


def test_hung_instance_is_restarted_after_deadline(gateway):
    """execute() sleeping far past kserve_timeout (1 s on short_url): the
    client has its 504; 1 s (the grace) later the worker kills the hung
    instance, the supervisor restarts it and the model serves again,
    long before the sleep would have ended"""
    assert gateway.wait_model_ready("slow_model")
    pids = gateway.instances("slow_model")
    assert len(pids) == 1, pids

    start = time.monotonic()
    r = requests.post(gateway.short_url + SLOW, data=slow_body(60000),
                      timeout=30)
    assert r.status_code == 504, r.text

    assert wait_for(lambda: gateway.instances("slow_model") != pids,
                    timeout=5)
    replaced = time.monotonic() - start
    assert 1.8 < replaced < 3.0, "killed after deadline + grace (%.2f s)" \
        % replaced
    assert gateway.wait_model_ready("slow_model", timeout=30)
    assert wait_for(lambda: gateway.post(SLOW, data=slow_body(0)).ok)
    assert time.monotonic() - start < 30
    log = open(gateway.worker_log).read()
    # the instance itself gave up on the batch, and the worker says why
    # it went
    assert "slow_model_0_0: did not finish a batch of 1 request(s)" in log
    assert "pid %d did not finish a batch" % pids[0] in log


def test_client_disconnect_is_cleaned_up(gateway):
    data = slow_body(800).encode()
    for _ in range(5):
        s = socket.create_connection(("127.0.0.1", gateway.port))
        s.sendall(b"POST " + SLOW.encode() + b" HTTP/1.1\r\n"
                  b"Host: x\r\nContent-Type: application/json\r\n"
                  b"Content-Length: " + str(len(data)).encode()
                  + b"\r\n\r\n" + data)
        time.sleep(0.1)
        s.close()
    time.sleep(1.0)   # the replies for the gone clients arrive and are dropped
    r = gateway.post(SLOW, data=slow_body(0))
    assert r.status_code == 200, r.text


def test_reload_finishes_inflight(gateway):
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        futures = [pool.submit(timed_post, gateway.url + SLOW,
                               slow_body(700)) for _ in range(4)]
        time.sleep(0.3)
        gateway.nginx_signal("reload")
        results = [f.result(timeout=30) for f in futures]
    assert [r.status_code for r, _ in results] == [200] * 4
    assert wait_for(lambda: gateway.get("/v2/health/ready").ok)


def test_new_nginx_workers_know_the_models_at_once(gateway):
    """A reload starts new nginx workers; each fetches the model index
    before it accepts connections, so no request in the switch-over gets
    503 "kserve worker unavailable"."""
    body = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32",
         "data": list(range(16))},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32",
         "data": [1] * 16}]})
    gateway.nginx_signal("reload")
    statuses = []
    stop_at = time.monotonic() + 2.0
    while time.monotonic() < stop_at:
        # a new connection each time, so new workers get them too
        r = requests.post(gateway.url + "/v2/models/simple/infer", data=body,
                          headers={"Connection": "close"}, timeout=10)
        statuses.append((r.status_code, r.text[:80]))
    assert statuses
    assert all(status == 200 for status, _ in statuses), \
        [s for s in statuses if s[0] != 200][:5]


def test_worker_restart_is_picked_up_without_reload(gateway):
    gateway.stop_worker()
    # the module notices within a few index intervals
    assert wait_for(
        lambda: gateway.get("/v2/health/ready").status_code == 400,
        timeout=5)
    r = gateway.post(SLOW, data=slow_body(0))
    assert r.status_code == 503, r.text
    assert "error" in r.json()

    gateway.start_worker()
    assert gateway.wait_model_ready("simple", timeout=30)
    assert gateway.wait_model_ready("slow_model", timeout=30)
    assert gateway.post(SLOW, data=slow_body(0)).status_code == 200


def test_quit_finishes_inflight(gateway):
    with concurrent.futures.ThreadPoolExecutor(max_workers=3) as pool:
        futures = [pool.submit(timed_post, gateway.url + SLOW,
                               slow_body(700)) for _ in range(3)]
        time.sleep(0.3)
        gateway.nginx_signal("quit")
        try:
            results = [f.result(timeout=30) for f in futures]
        finally:
            # the suite's later tests need nginx back whatever happened
            gateway.procs.pop("nginx").wait(timeout=15)
            gateway.start_nginx()
    assert [r.status_code for r, _ in results] == [200] * 3, \
        [r.text for r, _ in results]
    assert gateway.wait_model_ready("simple")
