"""Dynamic batching, instance groups, queue policy and the worker's
statistics, through nginx with the real worker and Python instances.

The models (tests/models) make the scheduler's decisions visible:
batch_recorder tells each request which batch it ran in, parallel_sleep
sleeps 100 ms in each of two instances, twin_sleep is two instances that
name their pid (one gets killed), tiny_queue and queue_timeout are slow
single instances with a small queue and a short queue timeout.
"""

import collections
import concurrent.futures
import json
import os
import signal
import struct
import threading
import time

import requests

from conftest import outputs, scalar_body, wait_for

RECORDER = "/v2/models/batch_recorder/infer"


def body(rows=1, n=4, **params):
    b = {"inputs": [{"name": "INPUT0", "shape": [rows, n], "datatype": "FP32",
                     "data": [1.0] * (rows * n)}]}
    if params:
        b["parameters"] = params
    return json.dumps(b)


def batch_of(r):
    """(execution number, rows, requests) of the batch r ran in."""
    out = outputs(r)
    return out["EXECUTION"][0], out["BATCH_ROWS"][0], \
        out["BATCH_REQUESTS"][0]


def post_all(url, bodies, stagger=0.0):
    """Posts every body at once (stagger: seconds between them, to fix
    their arrival order); answers in the order of bodies."""
    with concurrent.futures.ThreadPoolExecutor(
            max_workers=len(bodies)) as pool:
        futs = []
        for b in bodies:
            futs.append(pool.submit(requests.post, url, data=b, timeout=30))
            time.sleep(stagger)
        return [f.result() for f in futs]


def occupy(gateway, sleep_ms):
    """Keeps batch_recorder's only instance busy for sleep_ms; returns
    the future of that request."""
    pool = concurrent.futures.ThreadPoolExecutor(max_workers=1)
    fut = pool.submit(requests.post, gateway.url + RECORDER,
                      data=body(sleep_ms=sleep_ms), timeout=30)
    pool.shutdown(wait=False)
    time.sleep(0.15)            # dispatched alone after the 2 ms delay
    return fut


def test_concurrency_32_batches_requests(gateway):
    assert gateway.wait_model_ready("batch_recorder")
    url = gateway.url + RECORDER
    seen = {}                   # execution -> (rows, requests)
    lock = threading.Lock()

    def client(_):
        s = requests.Session()
        for _ in range(25):
            # 20 ms per execute(): a loaded test machine still queues
            # requests faster than the model takes them
            r = s.post(url, data=body(sleep_ms=20), timeout=30)
            execution, rows, nreq = batch_of(r)
            assert rows <= 16
            with lock:
                seen[execution] = (rows, nreq)

    with concurrent.futures.ThreadPoolExecutor(max_workers=32) as pool:
        list(pool.map(client, range(32)))

    sizes = collections.Counter(nreq for _, nreq in seen.values())
    print("requests per execution (size: executions):",
          dict(sorted(sizes.items())))
    multi = sum(n for size, n in sizes.items() if size > 1)
    assert multi > 0.5 * len(seen), sizes
    # executions of one request each: 800 requests would need 800
    assert len(seen) < 400, len(seen)


def median_latencies(targets, n=150):
    """Median seconds per (url, body) of targets at concurrency 1: one
    keep-alive connection each, requests interleaved so that noise from
    the machine falls on all alike, after a few to warm up."""
    sessions = [requests.Session() for _ in targets]
    took = [[] for _ in targets]
    for i in range(n + 10):
        for k, (url, data) in enumerate(targets):
            start = time.perf_counter()
            r = sessions[k].post(url, data=data, timeout=30)
            elapsed = time.perf_counter() - start
            assert r.status_code == 200, r.text
            if i >= 10:
                took[k].append(elapsed)
    return [sorted(t)[len(t) // 2] for t in took]


def test_lone_request_does_not_wait_the_delay(gateway):
    # batch_recorder waits up to 2 ms for company; a single client never
    # sends while its request is pending, so the batcher must see that
    # no one is coming and dispatch at once.  identity_fp32 (delay 0) is
    # the same path without any wait.
    assert gateway.wait_model_ready("batch_recorder")
    identity, recorder = median_latencies([
        (gateway.url + "/v2/models/identity_fp32/infer", body()),
        (gateway.url + RECORDER, body(sleep_ms=0))])
    added = recorder - identity
    print("median at concurrency 1: identity %.2f ms, batch_recorder "
          "%.2f ms" % (identity * 1e3, recorder * 1e3))
    assert added < 0.0015, (identity, recorder)


def test_preferred_batch_size_is_preferred(gateway):
    assert gateway.wait_model_ready("batch_recorder")
    blocker = occupy(gateway, 300)

    # 10 rows wait while the instance is busy: the largest preferred
    # size (8) goes first, not all 10, then the 2 left after their delay
    answers = post_all(gateway.url + RECORDER, [body()] * 10)
    assert blocker.result().status_code == 200
    batches = {}
    for r in answers:
        execution, rows, nreq = batch_of(r)
        batches[execution] = rows
    assert sorted(batches.values(), reverse=True) == [8, 2], batches

    # a 5-row request and a 3-row one make 8 together, a preferred size
    blocker = occupy(gateway, 300)
    answers = post_all(gateway.url + RECORDER,
                       [body(rows=5), body(rows=3), body(rows=2)],
                       stagger=0.02)
    blocker.result()
    rows = [batch_of(r)[1] for r in answers]
    assert rows[0] == rows[1] == 8 and rows[2] == 2, rows


def test_batch_never_exceeds_max_batch_size(gateway):
    blocker = occupy(gateway, 300)
    answers = post_all(gateway.url + RECORDER, [body(rows=6)] * 6)
    blocker.result()
    for r in answers:
        _, rows, _ = batch_of(r)
        assert rows <= 16 and rows % 6 == 0, rows


def test_different_shapes_are_not_merged(gateway):
    blocker = occupy(gateway, 300)
    answers = post_all(gateway.url + RECORDER,
                       [body(n=4), body(n=4), body(n=3), body(n=3)],
                       stagger=0.02)
    blocker.result()
    got = [batch_of(r) for r in answers]
    assert got[0][0] == got[1][0] and got[2][0] == got[3][0], got
    assert got[0][0] != got[2][0], got


def test_priority(gateway):
    assert gateway.wait_model_ready("batch_recorder")
    url = gateway.url + RECORDER

    assert requests.post(url, data=body(priority=1), timeout=30).ok
    assert requests.post(url, data=body(priority=0), timeout=30).ok
    r = requests.post(url, data=body(priority=3), timeout=30)
    assert r.status_code == 400, r.text
    assert "priority" in r.json()["error"]

    # queued low-priority requests, then one of priority 1: it runs in
    # the first batch after the blocker
    blocker = occupy(gateway, 300)
    with concurrent.futures.ThreadPoolExecutor(max_workers=13) as pool:
        low = [pool.submit(requests.post, url, data=body(priority=2),
                           timeout=30) for _ in range(12)]
        time.sleep(0.05)
        high = pool.submit(requests.post, url, data=body(priority=1),
                           timeout=30)
        first = min(batch_of(f.result())[0] for f in low)
        assert batch_of(high.result())[0] == first
    blocker.result()


def test_instances_run_in_parallel(gateway):
    assert gateway.wait_model_ready("parallel_sleep")
    url = gateway.url + "/v2/models/parallel_sleep/infer"
    assert requests.post(url, data=scalar_body(), timeout=30).ok  # warm

    start = time.monotonic()
    answers = post_all(url, [scalar_body(), scalar_body()])
    elapsed = time.monotonic() - start
    pids = {outputs(r)["OUTPUT0"][0] for r in answers}
    assert len(pids) == 2, "both requests ran in one instance"
    assert elapsed < 0.18, elapsed


def test_kill_one_instance_under_load(gateway):
    model = "twin_sleep"
    url = gateway.url + "/v2/models/%s/infer" % model
    assert gateway.wait_model_ready(model)
    assert wait_for(lambda: len(gateway.instances(model)) == 2)
    before = set(gateway.instances(model))
    stop = threading.Event()
    log = []                    # (start, end, status, pid or error)
    lock = threading.Lock()

    def client():
        s = requests.Session()
        while not stop.is_set():
            start = time.monotonic()
            r = s.post(url, data=scalar_body(sleep_ms=20), timeout=30)
            end = time.monotonic()
            what = outputs(r)["OUTPUT0"][0] if r.status_code == 200 \
                else r.json()["error"]
            with lock:
                log.append((start, end, r.status_code, what))

    # six clients keep both instances busy and a queue waiting
    threads = [threading.Thread(target=client) for _ in range(6)]
    for t in threads:
        t.start()
    try:
        time.sleep(0.5)
        victim = sorted(before)[0]
        survivor = sorted(before)[1]
        killed_at = time.monotonic()
        os.kill(victim, signal.SIGKILL)

        # back: two live instances, a new pid among them, serving
        def back():
            pids = set(gateway.instances(model))
            new = pids - before
            with lock:
                served = {w for (_, e, c, w) in log if c == 200
                          and e > killed_at}
            return len(pids) == 2 and new and new <= served
        assert wait_for(back, timeout=5.0, interval=0.01)
        back_after = time.monotonic() - killed_at
        time.sleep(0.3)
    finally:
        stop.set()
        for t in threads:
            t.join(timeout=30)

    failed = [x for x in log if x[2] != 200]
    print("kill -9 of one of two instances: %d answers, %d failed, back "
          "after %.2f s" % (len(log), len(failed), back_after))
    assert back_after < 2.0, back_after
    assert requests.get(gateway.url + "/v2/models/%s/ready" % model,
                        timeout=5).status_code == 200

    # what the victim held (running or queued: nginx spreads the six
    # clients over both instances) failed at once, with an error JSON
    # naming the instance and why; a client whose retry met the victim in
    # the moment before its death reached nginx may lose one more
    assert 1 <= len(failed) <= 6, failed
    for start, end, status, error in failed:
        assert status == 503, (status, error)
        assert "(pid %d)" % victim in error, error
        assert "exited unexpectedly (signal 9)" in error, error
        assert killed_at - 0.05 < end < killed_at + 1.0, end - killed_at

    # the survivor kept answering while its twin was down
    during = [w for (_, e, c, w) in log
              if c == 200 and killed_at < e < killed_at + back_after]
    assert during.count(survivor) >= 5, during
    assert survivor in gateway.instances(model)


def test_full_queue_is_503(gateway):
    assert gateway.wait_model_ready("tiny_queue")
    url = gateway.url + "/v2/models/tiny_queue/infer"
    answers = post_all(url, [scalar_body()] * 8)
    codes = collections.Counter(r.status_code for r in answers)
    assert codes[200] >= 3, codes
    assert codes[503] >= 1, codes
    for r in answers:
        if r.status_code == 503:
            assert r.json()["error"] == "Exceeds maximum queue size"


def test_queue_timeout_is_503(gateway):
    assert gateway.wait_model_ready("queue_timeout")
    url = gateway.url + "/v2/models/queue_timeout/infer"
    answers = post_all(url, [scalar_body()] * 3)
    codes = collections.Counter(r.status_code for r in answers)
    assert codes[200] == 1 and codes[503] == 2, \
        [(r.status_code, r.text) for r in answers]
    for r in answers:
        if r.status_code == 503:
            assert r.json()["error"] == "Request timeout expired"


def test_timeout_parameter_only_lowers(gateway):
    url = gateway.url + "/v2/models/queue_timeout/infer"
    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        busy = pool.submit(requests.post, url, data=scalar_body(),
                           timeout=30)
        time.sleep(0.05)
        # 10 ms instead of 100: rejected well before 100 ms
        start = time.monotonic()
        r = requests.post(url, data=scalar_body(timeout=10000), timeout=30)
        elapsed = time.monotonic() - start
        assert r.status_code == 503 and elapsed < 0.09, (r.text, elapsed)
        assert busy.result().ok

        # 10 s cannot raise the model's 100 ms
        busy = pool.submit(requests.post, url, data=scalar_body(),
                           timeout=30)
        time.sleep(0.05)
        r = requests.post(url, data=scalar_body(timeout=10000000),
                          timeout=30)
        assert r.status_code == 503, r.text
        assert busy.result().ok


# ---- statistics, asked of the worker directly -------------------------

def _pstr(s):
    b = s.encode()
    return struct.pack("<H", len(b)) + b


def worker_stats(gateway, model="", version=""):
    """STATS over the worker's own socket (the module renders them)."""
    import zmq
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(gateway.endpoint)
    try:
        sock.send(struct.pack("<HBBIQ", 0x4B56, 1, 9, 0, 77) +
                  _pstr(model) + _pstr(version))
        assert sock.poll(5000), "no STATS reply"
        frame = sock.recv()
    finally:
        sock.close()

    magic, ver, kind, _, id_ = struct.unpack_from("<HBBIQ", frame)
    assert (magic, id_) == (0x4B56, 77)
    pos = 16

    def take(fmt):
        nonlocal pos
        v = struct.unpack_from(fmt, frame, pos)
        pos += struct.calcsize(fmt)
        return v

    def string():
        nonlocal pos
        (n,) = take("<H")
        pos += n
        return frame[pos - n:pos].decode()

    if kind == 3:
        code, = take("<H")
        return {"error": (code, string())}
    assert kind == 10, kind
    names = ("success", "fail", "queue", "compute_input", "compute_infer",
             "compute_output")
    out = {}
    (n,) = take("<I")
    for _ in range(n):
        name, version = string(), string()
        last, inferences, executions = take("<QQQ")
        s = {"last_inference": last, "inference_count": inferences,
             "execution_count": executions}
        for k in names:
            s[k] = dict(zip(("count", "ns"), take("<QQ")))
        (nb,) = take("<I")
        s["batch_stats"] = {}
        for _ in range(nb):
            size, = take("<I")
            s["batch_stats"][size] = [dict(zip(("count", "ns"), take("<QQ")))
                                      for _ in range(3)]
        out[(name, version)] = s
    assert pos == len(frame)
    return out


def test_statistics(gateway):
    assert gateway.wait_model_ready("parallel_sleep")
    before = worker_stats(gateway, "parallel_sleep")[("parallel_sleep", "1")]
    url = gateway.url + "/v2/models/parallel_sleep/infer"
    post_all(url, [scalar_body()] * 4)
    after = worker_stats(gateway, "parallel_sleep", "1")
    s = after[("parallel_sleep", "1")]

    assert s["success"]["count"] - before["success"]["count"] == 4
    assert s["inference_count"] - before["inference_count"] == 4
    assert s["execution_count"] - before["execution_count"] == 4
    assert s["fail"]["count"] == before["fail"]["count"]
    infer_ns = s["compute_infer"]["ns"] - before["compute_infer"]["ns"]
    assert 4 * 95e6 < infer_ns < 4 * 300e6, infer_ns
    assert s["queue"]["count"] == s["success"]["count"]
    assert s["success"]["ns"] >= s["compute_infer"]["ns"]
    assert s["batch_stats"][1][1]["count"] == s["execution_count"]
    assert abs(s["last_inference"] / 1000 - time.time()) < 10

    # rejected requests count as failures
    post_all(gateway.url + "/v2/models/tiny_queue/infer",
             [scalar_body()] * 8)
    t = worker_stats(gateway, "tiny_queue")[("tiny_queue", "1")]
    assert t["fail"]["count"] >= 1 and t["success"]["count"] >= 3

    # batch_recorder: inference_count counts rows, batch_stats by rows
    blocker = occupy(gateway, 200)
    post_all(gateway.url + RECORDER, [body(rows=2)] * 4)
    blocker.result()
    b = worker_stats(gateway, "batch_recorder", "1")[("batch_recorder", "1")]
    assert 8 in b["batch_stats"], b["batch_stats"]
    assert b["inference_count"] >= b["success"]["count"]

    everything = worker_stats(gateway)
    assert ("parallel_sleep", "1") in everything
    assert worker_stats(gateway, "nope")["error"][0] == 2       # NOT_FOUND
    assert worker_stats(gateway, "parallel_sleep", "9")["error"][0] == 2


def test_preserve_ordering(gateway):
    """nginx keeps the order per nginx worker (where arrival order is
    defined): the pair is retried until both requests met one worker"""
    assert gateway.wait_model_ready("ordered_sleep")
    url = gateway.url + "/v2/models/ordered_sleep/infer"

    def post(name, sleep_ms, done, nginx):
        start = time.monotonic()
        r = requests.post(url, data=scalar_body(sleep_ms=sleep_ms),
                          timeout=30)
        done[name] = time.monotonic() - start
        nginx[name] = r.headers.get("X-Nginx-Pid")
        return r

    for _ in range(20):
        done, nginx = {}, {}
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            slow = pool.submit(post, "slow", 300, done, nginx)
            time.sleep(0.05)
            quick = pool.submit(post, "quick", 0, done, nginx)
            pids = {outputs(slow.result())["OUTPUT0"][0],
                    outputs(quick.result())["OUTPUT0"][0]}
        if nginx["slow"] == nginx["quick"]:
            break
    assert nginx["slow"] == nginx["quick"], "never met one nginx worker"
    assert len(pids) == 2, "both ran in one instance: nothing to reorder"
    # the quick one (0 ms, sent 50 ms later) waited for the slow one
    assert done["quick"] >= 0.2, done


def test_hung_instance_does_not_hold_ordered_answers(gateway):
    """preserve_ordering behind a request whose execute() hangs (1 s
    kserve_timeout on short_url): the later request, done at once by the
    other instance, is released when nginx gives up on the hung one (its
    504 at the deadline; nginx keeps the order, per nginx worker), not
    held until its own deadline"""
    assert gateway.wait_model_ready("ordered_sleep")
    assert wait_for(lambda: len(gateway.instances("ordered_sleep")) == 2)
    url = "/v2/models/ordered_sleep/infer"

    def post(base, sleep_ms):
        start = time.monotonic()
        r = requests.post(base + url, data=scalar_body(sleep_ms=sleep_ms),
                          timeout=30)
        return r, time.monotonic() - start

    with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
        hung = pool.submit(post, gateway.short_url, 60000)
        time.sleep(0.1)
        quick = pool.submit(post, gateway.url, 0)
        r, took = hung.result()
        assert r.status_code == 504, r.text
        r, took = quick.result()
    assert r.status_code == 200, r.text
    assert took < 1.5, "released by the 504 at the deadline (%.2f s)" % took

    # the hung instance is replaced; both serve again
    assert gateway.wait_model_ready("ordered_sleep", timeout=30)
    assert wait_for(lambda: len(gateway.instances("ordered_sleep")) == 2)

    def both_ready():
        return all(requests.post(gateway.url + url, data=scalar_body(),
                                 timeout=10).ok for _ in range(4))
    assert wait_for(both_ready, timeout=30)


def test_kind_gpu_without_gpu_runs_on_cpu(gateway):
    # ordered_sleep asks for KIND_GPU; without a GPU it loads on CPU
    # with a warning in the worker's log
    if os.path.exists("/dev/nvidia0"):
        return
    assert gateway.wait_model_ready("ordered_sleep")
    log = open(gateway.worker_log).read()
    assert "ordered_sleep_0 (version 1): KIND_GPU but this machine has " \
           "no GPU" in log
