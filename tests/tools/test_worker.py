#!/usr/bin/python3
"""kserve-worker on its own: a fake module client and fake instances.

Starts build/kserve-worker on a throwaway repository with
tests/tools/fake_instance.py as the instance binary, then plays the nginx
module's DEALER by hand (tests/tools/ksv_wire.py).  Covers routing,
versions, errors, malformed input, deadlines, queue bounds, an instance
killed with SIGKILL, and a clean shutdown.  Run with Debian's Python:

    /usr/bin/python3 tests/tools/test_worker.py [--worker build/kserve-worker]

Prints "N passed, 0 failed"; exit status 1 on any failure.
"""

import argparse
import itertools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time

import zmq

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)
import ksv_wire as w  # noqa: E402

passed = failed = 0


def check(cond, what):
    global passed, failed
    if cond:
        passed += 1
    else:
        failed += 1
        print("CHECK failed:", what, file=sys.stderr)


MODELS = {
    "echo": ('backend: "python"\n'
             'version_policy { all { } }\n'
             'instance_group [ { count: 2 kind: KIND_CPU } ]\n'
             'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
             'output [ { name: "OUTPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
             'optimization { cuda { graphs: true } }\n',
             [1, 2], {}),
    "slow": ('backend: "python"\n'
             'dynamic_batching { default_queue_policy { max_queue_size: 2 } }\n',
             [1], {"sleep_ms": 600}),
    "broken": ('backend: "python"\n', [1],
               {"init_error": "initialize failed: boom"}),
    "onnx": ('backend: "onnxruntime"\n', [1], {}),
    "badcfg": ('name: "badcfg"\ninput { dims: [ 1 2 ] }\n', [1], {}),
    "auto": ('', [3], {}),          # no backend, model.py present: python
    "gpu": ('backend: "python"\n'
            'instance_group { count: 2 kind: KIND_GPU gpus: [ 0, 3 ] }\n'
            'instance_group { count: 1 kind: KIND_GPU }\n', [1], {}),
}


def make_repository(root):
    for name, (config, versions, fake) in MODELS.items():
        d = os.path.join(root, name)
        os.makedirs(d)
        with open(os.path.join(d, "config.pbtxt"), "w") as f:
            f.write(config)
        if fake:
            with open(os.path.join(d, "fake.json"), "w") as f:
                json.dump(fake, f)
        for v in versions:
            os.makedirs(os.path.join(d, str(v)))
            open(os.path.join(d, str(v), "model.py"), "w").close()


class Client:
    """The nginx module's side: a DEALER, no delimiter frame."""

    ids = itertools.count(1000)

    def __init__(self, ctx, endpoint):
        self.s = ctx.socket(zmq.DEALER)
        self.s.setsockopt(zmq.LINGER, 0)
        self.s.connect(endpoint)

    def send(self, frames):
        self.s.send_multipart(frames)

    def recv(self, timeout_ms=3000):
        if not self.s.poll(timeout_ms):
            return None
        return self.s.recv_multipart()

    def infer(self, model, version="", request_id="", timeout_ms=0,
              data=b"\0" * 16, wait_ms=3000):
        id_ = next(self.ids)
        self.send([w.infer(id_, model, version,
                           [("INPUT0", "FP32", [4], len(data))],
                           request_id, timeout_ms), data])
        return id_

    def answer(self, timeout_ms=3000):
        frames = self.recv(timeout_ms)
        if frames is None:
            return None
        m = w.decode_reply(frames[0])
        m["frames"] = frames[1:]
        return m

    def index(self, known=0):
        self.send([w.index(next(self.ids), known)])
        frames = self.recv()
        return w.decode_index_reply(frames[0])


def wait_state(client, model, version, state, timeout=10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        _, _, models = client.index()
        for v, st, reason in models.get(model, (None, []))[1]:
            if v == version and st == state:
                return reason
        time.sleep(0.05)
    return None


def instance_argvs(worker_pid, model):
    return [argv for _, argv in instances(worker_pid, model)]


def instance_pids(worker_pid, model):
    return [pid for pid, _ in instances(worker_pid, model)]


def instances(worker_pid, model):
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % pid) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            with open("/proc/%s/cmdline" % pid, "rb") as f:
                argv = f.read().split(b"\0")
        except OSError:
            continue
        if ppid == worker_pid and model.encode() in argv:
            pids.append((int(pid), [a.decode() for a in argv]))
    return pids


def run(worker_bin):
    tmp = tempfile.mkdtemp(prefix="ksv-worker-test.")
    repo = os.path.join(tmp, "models")
    run_dir = os.path.join(tmp, "run")
    make_repository(repo)
    endpoint = "ipc://%s/front.sock" % tmp

    log = open(os.path.join(tmp, "worker.log"), "w+")
    proc = subprocess.Popen(
        [worker_bin, "--repository", repo, "--listen", endpoint,
         "--listen", "tcp://127.0.0.1:*", "--run-dir", run_dir,
         "--python-instance", os.path.join(HERE, "fake_instance.py"),
         "--log-level", "debug"],
        stdout=log, stderr=subprocess.STDOUT)

    ctx = zmq.Context()
    c = Client(ctx, endpoint)
    try:
        scenarios(c, proc, run_dir)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ctx.destroy(linger=0)
        log.seek(0)
        text = log.read()
        if failed or os.environ.get("KSV_SHOW_LOG"):
            sys.stderr.write("---- worker log ----\n" + text)
        shutil.rmtree(tmp, ignore_errors=True)


def scenarios(c, proc, run_dir):
    # -- startup: the index shows every model and its state
    check(wait_state(c, "echo", 2, w.READY_STATE) == "", "echo v2 ready")
    check(wait_state(c, "echo", 1, w.READY_STATE) == "", "echo v1 ready")
    check(wait_state(c, "auto", 3, w.READY_STATE) == "", "auto ready")
    reason = wait_state(c, "broken", 1, w.UNAVAILABLE_STATE)
    check(reason is not None and "initialize failed: boom" in reason,
          "broken unavailable with initialize() message: %r" % reason)
    reason = wait_state(c, "onnx", 1, w.UNAVAILABLE_STATE)
    check(reason == "backend 'onnxruntime' is not supported", reason)
    reason = wait_state(c, "badcfg", 1, w.UNAVAILABLE_STATE)
    check(reason is not None and "config.pbtxt:2:19: expected ','" in reason,
          "badcfg reason: %r" % reason)

    # instance_group: count per listed GPU, device 0 without a list
    check(wait_state(c, "gpu", 1, w.READY_STATE) == "", "gpu ready")
    argvs = instance_argvs(proc.pid, "gpu")
    got = sorted((a[a.index("--instance") + 1], a[a.index("--kind") + 1],
                  a[a.index("--device-id") + 1]) for a in argvs)
    check(got == [("0", "KIND_GPU", "0"), ("1", "KIND_GPU", "0"),
                  ("2", "KIND_GPU", "3"), ("3", "KIND_GPU", "3"),
                  ("4", "KIND_GPU", "0")], got)
    a = argvs[0]
    check(a[a.index("--connect") + 1] ==
          "ipc://%s/instances.sock" % run_dir, a)
    check(a[a.index("--version") + 1] == "1", a)

    gen, full, models = c.index()
    check(full == 1 and set(models) == set(MODELS), sorted(models))
    cfg = models["echo"][0]
    check(cfg["backend"] == "python" and cfg["inputs"][0][0] == "INPUT0",
          cfg)
    check(len(cfg["groups"]) == 1 and cfg["groups"][0][1] == 2, cfg)
    check(models["auto"][0]["backend"] == "python", models["auto"][0])
    gen2, full2, _ = c.index(gen)
    check(gen2 == gen and full2 == 0, "same generation: short answer")

    # -- INFER round trip, outputs moved through, client id kept
    data = bytes(range(16))
    id_ = c.infer("echo", request_id="r1", data=data)
    m = c.answer()
    check(m and m["kind"] == w.INFER_REPLY and m["id"] == id_, m)
    check(m and m["request_id"] == "r1" and m["version"] == "2", m)
    check(m and m["outputs"] == [("OUTPUT0", "FP32", [4], 16)], m)
    check(m and m["frames"] == [data], "output bytes")

    id_ = c.infer("echo", version="1")
    m = c.answer()
    check(m and m["id"] == id_ and m["version"] == "1", m)

    # many at once, both instances busy
    ids = {c.infer("echo", request_id=str(i)) for i in range(50)}
    got = {c.answer()["id"] for _ in range(50)}
    check(got == ids, "50 concurrent answers")

    id_ = c.infer("echo", request_id="error")
    m = c.answer()
    check(m and m["kind"] == w.ERROR and m["id"] == id_
          and m["code"] == w.INTERNAL and m["message"] == "model error", m)

    # -- resolution errors
    id_ = c.infer("nope")
    m = c.answer()
    check(m and m["id"] == id_ and m["code"] == w.NOT_FOUND and
          m["message"] == "Request for unknown model: 'nope' is not found", m)
    c.infer("echo", version="3")
    m = c.answer()
    check(m and m["code"] == w.NOT_FOUND and m["message"] ==
          "Request for unknown model: 'echo' version 3 is not found", m)
    t0 = time.monotonic()
    c.infer("broken")
    m = c.answer()
    check(m and m["code"] == w.UNAVAILABLE and "boom" in m["message"], m)
    c.infer("onnx")
    m = c.answer()
    check(m and m["code"] == w.UNAVAILABLE and
          "backend 'onnxruntime' is not supported" in m["message"], m)
    check(time.monotonic() - t0 < 0.5, "not-ready answers are immediate")

    # -- malformed messages: answered when an id can be read, never fatal
    c.send([b"\x01\x02"])
    check(c.recv(300) is None, "short header dropped")
    c.send([w.prefix(w.INFER, 77, version=9)])
    m = c.answer()
    check(m and m["id"] == 77 and m["code"] == w.INVALID_ARG and
          "protocol version 9" in m["message"], m)
    c.send([w.prefix(99, 78)])
    m = c.answer()
    check(m and m["id"] == 78 and m["code"] == w.INVALID_ARG, m)
    c.send([w.prefix(w.EXECUTE, 79) + b"\0\0\0\0"])
    m = c.answer()
    check(m and m["id"] == 79 and "not a request" in m["message"], m)
    c.send([w.prefix(w.INFER, 80) + b"\x05\x00ab"])
    m = c.answer()
    check(m and m["id"] == 80 and m["message"] == "malformed INFER message",
          m)
    c.send([w.infer(81, "echo", "", [("INPUT0", "FP32", [4], 16)])])
    m = c.answer()
    check(m and m["id"] == 81 and m["code"] == w.INVALID_ARG and
          "carries 0 tensor frame" in m["message"], m)
    c.send([w.infer(82, "echo", "", [("INPUT0", "FP32", [4], 16)]), b"x"])
    m = c.answer()
    check(m and m["id"] == 82 and "byte_size 16" in m["message"], m)
    c.send([w.infer(83, "echo", "", [("INPUT0", "FP32", [5], 16)]),
            b"y" * 16])
    m = c.answer()
    check(m and m["id"] == 83 and "shape" in m["message"], m)
    c.send([w.index(84, 0), b"extra"])
    m = c.answer()
    check(m and m["id"] == 84 and m["code"] == w.INVALID_ARG, m)
    c.send([w.index(85, 0)] + [b""] * 70000)
    check(c.recv(500) is None, "message with too many frames dropped")
    check(c.index()[1] == 1, "index still answered")
    check(proc.poll() is None, "worker alive after malformed input")

    # -- deadlines and queue bounds (slow: 600 ms per request, 1 instance)
    check(wait_state(c, "slow", 1, w.READY_STATE) == "", "slow ready")
    a = c.infer("slow")
    time.sleep(0.05)
    t0 = time.monotonic()
    b = c.infer("slow", timeout_ms=150)
    m = c.answer()
    took = time.monotonic() - t0
    check(m and m["id"] == b and m["code"] == w.UNAVAILABLE and
          m["message"] == "Request timeout expired", m)
    check(0.1 < took < 0.4, "timeout answered on time (%.3f s)" % took)
    m = c.answer()
    check(m and m["id"] == a and m["kind"] == w.INFER_REPLY, m)

    first = c.infer("slow")
    time.sleep(0.05)            # first is in flight, the queue is empty
    q1, q2 = c.infer("slow"), c.infer("slow")
    over = c.infer("slow")
    m = c.answer()
    check(m and m["id"] == over and
          m["message"] == "Exceeds maximum queue size", m)
    got = [c.answer(3000) for _ in range(3)]
    check([x and x["id"] for x in got] == [first, q1, q2],
          "queued requests served in order")

    # -- an instance killed with SIGKILL: in-flight fails fast, restart
    gen_before = c.index()[0]
    pids = instance_pids(proc.pid, "slow")
    check(len(pids) == 1, "one slow instance: %r" % pids)
    victim = c.infer("slow")
    time.sleep(0.1)
    t0 = time.monotonic()
    os.kill(pids[0], signal.SIGKILL)
    m = c.answer()
    took = time.monotonic() - t0
    check(m and m["id"] == victim and m["code"] == w.INTERNAL and
          "slow_0 exited unexpectedly (signal 9)" in m["message"], m)
    check(took < 1.0, "in-flight failed within 1 s (%.3f s)" % took)
    check(c.index()[0] != gen_before, "generation moved")
    check(wait_state(c, "slow", 1, w.READY_STATE, 5) == "",
          "slow ready again after restart")
    check(instance_pids(proc.pid, "slow") != pids, "new instance process")
    c.infer("slow")
    m = c.answer()
    check(m and m["kind"] == w.INFER_REPLY, "served after restart")

    # a self-inflicted crash on an echo instance; the other one serves on
    c.infer("echo", request_id="crash")
    m = c.answer()
    check(m and m["code"] == w.INTERNAL and "exited unexpectedly" in
          m["message"], m)
    c.infer("echo")
    m = c.answer()
    check(m and m["kind"] == w.INFER_REPLY, "echo served by the survivor")

    # -- shutdown: SIGTERM, instances stop, run dir removed, exit 0
    all_pids = [p for model in ("echo", "slow", "auto")
                for p in instance_pids(proc.pid, model)]
    check(len(all_pids) >= 4, "instances before shutdown: %r" % all_pids)
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    try:
        rc = proc.wait(8)
    except subprocess.TimeoutExpired:
        rc = None
    check(rc == 0, "exit status 0 on SIGTERM: %r" % rc)
    check(time.monotonic() - t0 < 6, "stopped within the grace period")
    check(not os.path.exists(run_dir), "run dir removed")
    alive = [p for p in all_pids if os.path.exists("/proc/%d" % p)]
    check(alive == [], "no instance left: %r" % alive)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--worker", default=os.path.join(
        TOP, os.environ.get("KSV_BUILD", "build"), "kserve-worker"))
    run(ap.parse_args().worker)
    print("%d passed, %d failed" % (passed, failed))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
