"""kserve-worker on its own: a client played by hand, fake instances.

The worker runs on a throwaway repository with tests/tools/fake_instance.py
as its Python instance binary (every input comes back as an output, see
that file), and each test plays the nginx module's DEALER with frames from
tests/tools/ksv_wire.py.  Covers the index, routing, versions, errors,
malformed frames, the batcher's wait, deadlines, queue bounds, an
instance killed with SIGKILL, and a clean shutdown.
"""

import itertools
import json
import os
import signal
import struct
import subprocess
import time

import pytest
import zmq

import ksv_wire as w
from processes import TOOLS, Process, built, children, wait_until

MODELS = {
    "echo": ('backend: "python"\n'
             'version_policy { all { } }\n'
             'instance_group [ { count: 2 kind: KIND_CPU } ]\n'
             'input [ { name: "INPUT0" data_type: TYPE_FP32 dims: [ 4 ] } ]\n'
             'output [ { name: "OUTPUT0" data_type: TYPE_FP32\n'
             '           dims: [ 4 ] } ]\n'
             'optimization { cuda { graphs: true } }\n',
             [1, 2], {}),
    "slow": ('backend: "python"\n'
             'dynamic_batching {\n'
             '  default_queue_policy { max_queue_size: 2 } }\n',
             [1], {"sleep_ms": 600}),
    # a 400 ms queue delay: long enough to see whether a batch waited
    "waiter": ('backend: "python"\n'
               'max_batch_size: 32\n'
               'dynamic_batching { max_queue_delay_microseconds: 400000 }\n',
               [1], {"sleep_ms": 100}),
    # answers in arrival order, two instances: one may hang ("hang")
    # while the other answers what arrives after
    "ordered": ('backend: "python"\n'
                'instance_group [ { count: 2 kind: KIND_CPU } ]\n'
                'dynamic_batching { preserve_ordering: true }\n', [1], {}),
    "broken": ('backend: "python"\n', [1],
               {"init_error": "initialize failed: boom"}),
    "onnx": ('backend: "onnxruntime"\n', [1], {}),
    "badcfg": ('name: "badcfg"\ninput { dims: [ 1 2 ] }\n', [1], {}),
    "auto": ('', [3], {}),          # no backend, model.py present: python
    "gpu": ('backend: "python"\n'
            'instance_group { count: 2 kind: KIND_GPU gpus: [ 0, 3 ] }\n'
            'instance_group { count: 1 kind: KIND_GPU }\n', [1], {}),
}

SLOW_MS = MODELS["slow"][2]["sleep_ms"]

# --execute-timeout of the module's worker: a batch without a deadline
# counts as hung after this (plus the 1 s grace)
EXECUTE_TIMEOUT_MS = 1500
GRACE_MS = 1000


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


class Worker(Process):
    def __init__(self, tmp):
        self.repo = str(tmp / "models")
        self.run_dir = str(tmp / "run")
        self.endpoint = "ipc://%s/front.sock" % tmp
        make_repository(self.repo)
        super().__init__("kserve-worker", [
            built("kserve-worker"), "--repository", self.repo,
            "--listen", self.endpoint, "--listen", "tcp://127.0.0.1:*",
            "--run-dir", self.run_dir,
            "--python-instance", os.path.join(TOOLS, "fake_instance.py"),
            "--execute-timeout", str(EXECUTE_TIMEOUT_MS),
            "--log-level", "debug"], str(tmp / "worker.log"))

    def instances(self, model):
        """[(pid, argv)] of the instance processes serving model."""
        return [(pid, argv) for pid, argv in children(self.pid)
                if model in argv]

    def instance_pids(self, model):
        return [pid for pid, _ in self.instances(model)]


class Client:
    """The nginx module's side: a DEALER, no delimiter frame."""

    ids = itertools.count(1000)

    def __init__(self, ctx, endpoint):
        self.s = ctx.socket(zmq.DEALER)
        self.s.setsockopt(zmq.LINGER, 0)
        self.s.connect(endpoint)

    def close(self):
        self.s.close()

    def send(self, frames):
        self.s.send_multipart(frames)

    def recv(self, timeout_ms=3000):
        if not self.s.poll(timeout_ms):
            return None
        return self.s.recv_multipart()

    def infer(self, model, version="", request_id="", timeout_ms=0,
              data=b"\0" * 16):
        id_ = next(self.ids)
        self.send([w.infer(id_, model, version,
                           [("INPUT0", "FP32", [4], len(data))],
                           request_id, timeout_ms), data])
        return id_

    def answer(self, timeout_ms=3000):
        """The next reply, INFER_REPLY (with "frames") or ERROR; None when
        nothing came within timeout_ms."""
        frames = self.recv(timeout_ms)
        if frames is None:
            return None
        return w.decode_message(frames, (w.INFER_REPLY, w.ERROR))

    def index(self, known=0):
        """-> (generation, full, {model: (config, versions)})"""
        self.send([w.index(next(self.ids), known)])
        frames = self.recv()
        assert frames is not None, "no INDEX_REPLY"
        m = w.decode_message(frames, w.INDEX_REPLY)
        return m["generation"], m["full"], {
            cfg["name"]: (cfg, versions) for cfg, versions in m["models"]}


def wait_state(client, model, version, state, timeout=10.0):
    """The reason once model's version is in state, None if it never is."""
    def reason():
        _, _, models = client.index()
        for v, st, why in models.get(model, (None, []))[1]:
            if v == version and st == state:
                return (why,)
        return None
    found = wait_until(reason, timeout, 0.05)
    return found[0] if found else None


@pytest.fixture(scope="module")
def zctx():
    ctx = zmq.Context()
    yield ctx
    ctx.destroy(linger=0)


@pytest.fixture(scope="module")
def worker(tmp_path_factory, zctx):
    """One worker for the module; tests that end it start their own."""
    proc = Worker(tmp_path_factory.mktemp("worker"))
    yield proc
    proc.stop()


@pytest.fixture
def client(worker, zctx):
    """A fresh DEALER per test, so no test reads another's late replies."""
    c = Client(zctx, worker.endpoint)
    yield c
    c.close()


def infer_ok(c, model="echo"):
    """A valid INFER is answered: the worker is alive and serving."""
    id_ = c.infer(model, request_id="probe", data=bytes(range(16)))
    m = c.answer()
    return (m is not None and m["kind"] == w.INFER_REPLY and
            m["id"] == id_ and m["frames"] == [bytes(range(16))])


# ---- the index --------------------------------------------------------------

def test_index_shows_every_model_and_its_state(client):
    c = client
    assert wait_state(c, "echo", 2, w.READY_STATE) == "", "echo v2 ready"
    assert wait_state(c, "echo", 1, w.READY_STATE) == "", "echo v1 ready"
    assert wait_state(c, "auto", 3, w.READY_STATE) == "", "auto ready"
    reason = wait_state(c, "broken", 1, w.UNAVAILABLE_STATE)
    assert reason is not None and "initialize failed: boom" in reason, \
        "broken unavailable with initialize() message: %r" % reason
    reason = wait_state(c, "onnx", 1, w.UNAVAILABLE_STATE)
    assert reason == "backend 'onnxruntime' is not supported", reason
    reason = wait_state(c, "badcfg", 1, w.UNAVAILABLE_STATE)
    assert reason is not None and \
        "config.pbtxt:2:19: expected ','" in reason, \
        "badcfg reason: %r" % reason


def have_gpu():
    """The worker's own test (kserve_supervisor.c): the driver's nodes."""
    return (os.path.exists("/dev/nvidia0") or
            os.path.exists("/proc/driver/nvidia/gpus"))


def test_instance_group_count_per_listed_gpu(client, worker):
    """count per listed GPU, device 0 without a list; KIND_GPU runs as
    KIND_CPU (same device ids) on a machine without a GPU"""
    assert wait_state(client, "gpu", 1, w.READY_STATE) == "", "gpu ready"
    argvs = [argv for _, argv in worker.instances("gpu")]
    got = sorted((a[a.index("--instance") + 1], a[a.index("--kind") + 1],
                  a[a.index("--device-id") + 1]) for a in argvs)
    kind = "KIND_GPU" if have_gpu() else "KIND_CPU"
    assert got == [("0", kind, "0"), ("1", kind, "0"), ("2", kind, "3"),
                   ("3", kind, "3"), ("4", kind, "0")], got
    if not have_gpu():
        assert "KIND_GPU but this machine has no GPU" in worker.log()
    a = argvs[0]
    assert a[a.index("--connect") + 1] == \
        "ipc://%s/instances.sock" % worker.run_dir, a
    assert a[a.index("--version") + 1] == "1", a


def test_index_carries_configs_and_generation(client):
    c = client
    assert wait_state(c, "gpu", 1, w.READY_STATE) == ""
    gen, full, models = c.index()
    assert full == 1 and set(models) == set(MODELS), sorted(models)
    cfg = models["echo"][0]
    assert cfg["backend"] == "python" and \
        cfg["inputs"][0]["name"] == "INPUT0", cfg
    assert len(cfg["groups"]) == 1 and cfg["groups"][0]["count"] == 2, cfg
    assert models["auto"][0]["backend"] == "python", models["auto"][0]
    gen2, full2, _ = c.index(gen)
    assert gen2 == gen and full2 == 0, "same generation: short answer"


# ---- INFER ------------------------------------------------------------------

def test_infer_round_trip(client):
    """outputs moved through, client id kept, newest version by default"""
    c = client
    assert wait_state(c, "echo", 2, w.READY_STATE) == ""
    data = bytes(range(16))
    id_ = c.infer("echo", request_id="r1", data=data)
    m = c.answer()
    assert m and m["kind"] == w.INFER_REPLY and m["id"] == id_, m
    assert m["request_id"] == "r1" and m["version"] == "2", m
    assert m["outputs"] == [("OUTPUT0", "FP32", [4], 16)], m
    assert m["frames"] == [data], "output bytes"

    id_ = c.infer("echo", version="1")
    m = c.answer()
    assert m and m["id"] == id_ and m["version"] == "1", m


def test_many_at_once_on_both_instances(client):
    c = client
    assert wait_state(c, "echo", 2, w.READY_STATE) == ""
    ids = {c.infer("echo", request_id=str(i)) for i in range(50)}
    got = set()
    for _ in range(50):
        m = c.answer()
        assert m is not None, "only %d of 50 answered" % len(got)
        got.add(m["id"])
    assert got == ids, "50 concurrent answers"


def test_model_error_reaches_the_client(client):
    c = client
    assert wait_state(c, "echo", 2, w.READY_STATE) == ""
    id_ = c.infer("echo", request_id="error")
    m = c.answer()
    assert m and m["kind"] == w.ERROR and m["id"] == id_ and \
        m["code"] == w.INTERNAL and m["message"] == "model error", m


def test_resolution_errors(client):
    c = client
    assert wait_state(c, "onnx", 1, w.UNAVAILABLE_STATE) is not None
    assert wait_state(c, "broken", 1, w.UNAVAILABLE_STATE) is not None
    id_ = c.infer("nope")
    m = c.answer()
    assert m and m["id"] == id_ and m["code"] == w.NOT_FOUND and \
        m["message"] == "Request for unknown model: 'nope' is not found", m
    c.infer("echo", version="3")
    m = c.answer()
    assert m and m["code"] == w.NOT_FOUND and m["message"] == \
        "Request for unknown model: 'echo' version 3 is not found", m
    t0 = time.monotonic()
    c.infer("broken")
    m = c.answer()
    assert m and m["code"] == w.UNAVAILABLE and "boom" in m["message"], m
    c.infer("onnx")
    m = c.answer()
    assert m and m["code"] == w.UNAVAILABLE and \
        "backend 'onnxruntime' is not supported" in m["message"], m
    assert time.monotonic() - t0 < 0.5, "not-ready answers are immediate"


def test_stats_count_what_ran(client):
    """STATS_REPLY decodes field for field, and counts the fake's work"""
    c = client
    assert wait_state(c, "echo", 2, w.READY_STATE) == ""
    assert infer_ok(c)
    c.send([w.stats(next(c.ids), "echo")])
    m = w.decode_message(c.recv(), w.STATS_REPLY)
    by_version = {s["version"]: s for s in m["models"]}
    assert set(by_version) == {"1", "2"} and \
        {s["name"] for s in m["models"]} == {"echo"}, m
    s = by_version["2"]
    assert s["success"][0] >= 1 and s["inference_count"] >= 1 and \
        s["execution_count"] >= 1 and s["last_inference"] > 0, s
    assert s["compute_infer"][0] >= 1 and s["batch"], s

    id_ = next(c.ids)
    c.send([w.stats(id_, "nope")])
    m = w.decode_message(c.recv(), w.ERROR)
    assert m["id"] == id_ and m["code"] == w.NOT_FOUND, m


# ---- the batcher waits only when another request is coming -----------------

def test_lone_request_does_not_wait_the_queue_delay(client):
    """waiter: 100 ms a batch, max_queue_delay 400 ms, 4 rows a request"""
    c = client
    assert wait_state(c, "waiter", 1, w.READY_STATE) == "", "waiter ready"

    # nothing else arrives while it waits, so none is expected: at once
    for _ in range(2):
        t0 = time.monotonic()
        c.infer("waiter")
        m = c.answer()
        took = time.monotonic() - t0
        assert m and m["kind"] == w.INFER_REPLY, m
        assert took < 0.3, "a lone request waited (%.3f s)" % took

    # three arrive while the first runs: the next batch waits for
    # company and takes all three, yet goes before the full delay
    t0 = time.monotonic()
    first = c.infer("waiter")
    time.sleep(0.02)
    rest = [c.infer("waiter") for _ in range(3)]
    got = [c.answer(3000) for _ in range(4)]
    took = time.monotonic() - t0
    assert [m and m["id"] for m in got] == [first] + rest, got
    assert took < 0.1 + 0.4 + 0.1, "the batch waited past its delay " \
        "(%.3f s)" % took
    c.send([w.stats(next(c.ids), "waiter")])
    m = w.decode_message(c.recv(), w.STATS_REPLY)
    sizes = {b["batch_size"]: b for b in m["models"][0]["batch"]}
    assert set(sizes) == {4, 12}, sizes


# ---- malformed frames: answered when an id can be read, never fatal ---------

def input0(size=16, dims=(4,), dt="FP32"):
    return [("INPUT0", dt, list(dims), size)]


def infer_head(id_, **kw):
    """An INFER header frame cut after its inputs, for hand-made tails."""
    return (w.prefix(w.INFER, id_) + w.pstr("echo") + w.pstr("") +
            w.pstr("") + struct.pack("<II", 0, 0) + w.ptensors(kw.get(
                "inputs", [])))


def error(id_, *needles, code=w.INVALID_ARG):
    """The case is answered: ERROR code with id_, message holding needles."""
    return dict(id=id_, code=code, needles=needles)


DROPPED = None

# (name, frames sent, what comes back)
MALFORMED = [
    ("short header", [b"\x01\x02"], DROPPED),
    ("empty header frame", [b""], DROPPED),
    ("delimiter frame first (a REQ peer)",
     [b"", w.infer(70, "echo", inputs=input0()), b"\0" * 16], DROPPED),
    ("bad magic", [w.prefix(w.INFER, 71, magic=0x1234) +
                   w.infer(71, "echo")[16:]], DROPPED),
    ("prefix one byte short", [w.prefix(w.INDEX, 72)[:15]], DROPPED),
    ("wrong version", [w.prefix(w.INFER, 77, version=9)],
     error(77, "protocol version 9")),
    ("unknown kind", [w.prefix(99, 78)], error(78, "unknown message kind 99")),
    ("kind 0", [w.prefix(0, 86)], error(86, "unknown message kind 0")),
    ("EXECUTE from a client", [w.prefix(w.EXECUTE, 79) + b"\0\0\0\0"],
     error(79, "not a request")),
    ("READY from a client", [w.ready("echo", 1, 0, 1)],
     error(0, "not a request")),
    ("INFER_REPLY from a client",
     [w.infer_reply(87, "echo", "1", "", [])], error(87, "not a request")),
    ("truncated INFER body", [w.prefix(w.INFER, 80) + b"\x05\x00ab"],
     error(80, "malformed INFER message")),
    ("INFER cut inside its inputs",
     [w.infer(88, "echo", inputs=input0())[:-12], b"\0" * 16],
     error(88, "malformed INFER message")),
    ("INFER without its tensor frame",
     [w.infer(81, "echo", inputs=input0())],
     error(81, "carries 0 tensor frame")),
    ("INFER with one tensor frame too many",
     [w.infer(89, "echo", inputs=input0()), b"\0" * 16, b"\0" * 16],
     error(89, "describes 1 input tensor(s) but carries 2")),
    ("tensor frame shorter than byte_size",
     [w.infer(82, "echo", inputs=input0()), b"x"],
     error(82, "byte_size 16")),
    ("byte_size that disagrees with the shape",
     [w.infer(83, "echo", inputs=input0(dims=(5,))), b"y" * 16],
     error(83, "shape")),
    ("negative dim", [w.infer(90, "echo", inputs=input0(dims=(-4,))),
                      b"\0" * 16], error(90, "shape")),
    ("dims whose product overflows",
     [w.infer(91, "echo", inputs=input0(dims=(2**62, 2**62, 4))),
      b"\0" * 16], error(91, "shape")),
    ("byte_size of 2^64-1",
     [w.infer(92, "echo", inputs=input0(size=2**64 - 1)), b"\0" * 16],
     error(92, "byte_size 18446744073709551615")),
    ("ninputs 2^32-1", [infer_head(93)[:-4] + b"\xff\xff\xff\xff"],
     error(93, "malformed INFER message")),
    ("ninputs over the cap",
     [infer_head(94)[:-4] + struct.pack("<I", w.MAX_TENSORS + 1) +
      (w.pstr("x") + b"\x0b\x00" + struct.pack("<Q", 0)) * 1025] +
     [b""] * 1025, error(94, "malformed INFER message")),
    ("ndims 255", [infer_head(95)[:-4] + struct.pack("<I", 1) +
                   w.pstr("INPUT0") + b"\x0b\xff" + b"\0" * 64, b""],
     error(95, "malformed INFER message")),
    ("datatype 200", [infer_head(96)[:-4] + struct.pack("<I", 1) +
                      w.pstr("INPUT0") + b"\xc8\x00" +
                      struct.pack("<Q", 0), b""],
     error(96, "malformed INFER message")),
    ("string longer than the frame",
     [w.prefix(w.INFER, 97) + b"\xff\xff" + b"echo"],
     error(97, "malformed INFER message")),
    ("noutputs 2^32-1", [infer_head(98) + b"\xff\xff\xff\xff"],
     error(98, "malformed INFER message")),
    ("nparams 2^32-1", [infer_head(99) + struct.pack("<I", 0) +
                        b"\xff\xff\xff\xff"],
     error(99, "malformed INFER message")),
    ("parameter of unknown type",
     [infer_head(100) + struct.pack("<II", 0, 1) + w.pstr("k") + b"\x09" +
      b"\0" * 8], error(100, "malformed INFER message")),
    ("STATS cut inside its model name",
     [w.stats(102, "echo")[:-3]], error(102, "malformed STATS message")),
    ("INDEX with an extra frame", [w.index(84, 0), b"extra"],
     error(84, "malformed INDEX message")),
    ("INDEX cut short", [w.index(101, 0)[:20]],
     error(101, "malformed INDEX message")),
]


@pytest.mark.parametrize("frames,expect", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_frame(client, worker, frames, expect):
    c = client
    c.send(frames)
    # a client's messages are handled in order and errors are answered at
    # once, so the INDEX sent next proves a message was dropped when its
    # reply is the first thing that comes back
    probe = next(c.ids)
    c.send([w.index(probe, 0)])
    first = c.recv()
    assert first is not None, "nothing came back, not even the INDEX"
    m = w.decode(first[0], (w.ERROR, w.INDEX_REPLY))
    if expect is DROPPED:
        assert m["kind"] == w.INDEX_REPLY and m["id"] == probe, m
    else:
        assert m["kind"] == w.ERROR and m["id"] == expect["id"] and \
            m["code"] == expect["code"], m
        for needle in expect["needles"]:
            assert needle in m["message"], m
        assert len(first) == 1, "an ERROR is one frame"
        second = c.recv()
        assert second is not None and \
            w.decode(second[0], w.INDEX_REPLY)["id"] == probe
    assert wait_state(c, "echo", 2, w.READY_STATE) == ""
    assert infer_ok(c), "INFER answered after: %r" % (frames[:1],)
    assert worker.proc.poll() is None, "worker alive after malformed input"


def test_too_many_frames_dropped(client, worker):
    c = client
    c.send([w.index(85, 0)] + [b""] * 70000)
    probe = next(c.ids)
    c.send([w.index(probe, 0)])
    first = c.recv()
    assert first is not None and \
        w.decode(first[0], w.INDEX_REPLY)["id"] == probe, \
        "message with too many frames dropped"
    assert c.index()[1] == 1, "index still answered"
    assert wait_state(c, "echo", 2, w.READY_STATE) == ""
    assert infer_ok(c), "INFER answered after 70000 frames"
    assert worker.proc.poll() is None, "worker alive after malformed input"


# ---- deadlines and queue bounds (slow: 600 ms a request, 1 instance) --------

def test_timeout_expires_in_the_queue(client):
    c = client
    assert wait_state(c, "slow", 1, w.READY_STATE) == "", "slow ready"
    a = c.infer("slow")
    time.sleep(0.05)            # a is in flight, b waits behind it
    t0 = time.monotonic()
    b = c.infer("slow", timeout_ms=150)
    m = c.answer()
    took = time.monotonic() - t0
    assert m and m["id"] == b and m["code"] == w.UNAVAILABLE and \
        m["message"] == "Request timeout expired", m
    assert 0.1 < took < 0.4, "timeout answered on time (%.3f s)" % took
    m = c.answer()
    assert m and m["id"] == a and m["kind"] == w.INFER_REPLY, m


def test_queue_bound(client):
    c = client
    assert wait_state(c, "slow", 1, w.READY_STATE) == "", "slow ready"
    first = c.infer("slow")
    time.sleep(0.05)            # first is in flight, the queue is empty
    q1, q2 = c.infer("slow"), c.infer("slow")
    over = c.infer("slow")
    m = c.answer()
    assert m and m["id"] == over and \
        m["message"] == "Exceeds maximum queue size", m
    got = [c.answer(3000) for _ in range(3)]
    assert [x and x["id"] for x in got] == [first, q1, q2], \
        "queued requests served in order"


# ---- instances that die -----------------------------------------------------

def test_instance_killed_fails_in_flight_and_restarts(client, worker):
    c = client
    assert wait_state(c, "slow", 1, w.READY_STATE) == "", "slow ready"
    gen_before = c.index()[0]
    pids = worker.instance_pids("slow")
    assert len(pids) == 1, "one slow instance: %r" % pids
    victim = c.infer("slow")
    time.sleep(0.1)             # the victim is inside the instance
    t0 = time.monotonic()
    os.kill(pids[0], signal.SIGKILL)
    m = c.answer()
    took = time.monotonic() - t0
    assert m and m["id"] == victim and m["code"] == w.INTERNAL and \
        "slow_0 exited unexpectedly (signal 9)" in m["message"], m
    assert took < 1.0, "in-flight failed within 1 s (%.3f s)" % took
    assert c.index()[0] != gen_before, "generation moved"
    assert wait_state(c, "slow", 1, w.READY_STATE, 5) == "", \
        "slow ready again after restart"
    assert worker.instance_pids("slow") != pids, "new instance process"
    c.infer("slow")
    m = c.answer()
    assert m and m["kind"] == w.INFER_REPLY, "served after restart"


def test_instance_crash_leaves_the_other_serving(client):
    """a self-inflicted crash on an echo instance; the other one serves on"""
    c = client
    assert wait_state(c, "echo", 2, w.READY_STATE) == ""
    c.infer("echo", request_id="crash")
    m = c.answer()
    assert m and m["code"] == w.INTERNAL and \
        "exited unexpectedly" in m["message"], m
    c.infer("echo")
    m = c.answer()
    assert m and m["kind"] == w.INFER_REPLY, "echo served by the survivor"


def test_unreadable_execute_reply_fails_the_batch(client):
    """an instance whose EXECUTE_REPLY cannot be read: its batch is
    answered at once (not left in flight for good) and it is restarted"""
    c = client
    assert wait_state(c, "echo", 2, w.READY_STATE) == ""
    c.infer("echo", request_id="garble")
    m = c.answer()
    assert m and m["code"] == w.INTERNAL and \
        "malformed answer" in m["message"], m
    for _ in range(4):
        c.infer("echo")
        m = c.answer()
        assert m and m["kind"] == w.INFER_REPLY, m


def test_hung_instance_is_killed_and_ordering_resumes(client, worker):
    """an instance stuck in execute(): once its request's deadline and the
    grace have passed, the request is answered, the answers that
    preserve_ordering held behind it go, and the instance is replaced"""
    c = client
    assert wait_state(c, "ordered", 1, w.READY_STATE) == "", "ordered ready"
    assert wait_until(lambda: len(worker.instance_pids("ordered")) == 2, 5)
    pids = set(worker.instance_pids("ordered"))

    t0 = time.monotonic()
    hung = c.infer("ordered", request_id="hang", timeout_ms=300)
    time.sleep(0.05)            # inside one instance; the other is free
    later = [c.infer("ordered", timeout_ms=10000) for _ in range(3)]

    # the other instance has answered them, but they wait behind hung
    assert c.answer(800) is None, "answers held behind the hung request"

    m = c.answer(3000)
    took = time.monotonic() - t0
    assert m and m["id"] == hung and m["code"] == w.UNAVAILABLE and \
        "ordered_" in m["message"] and \
        "did not finish within" in m["message"], m
    assert 1.2 < took < 2.2, "hung after deadline + grace (%.3f s)" % took
    got = [c.answer(1000) for _ in later]
    assert [x and (x["id"], x["kind"]) for x in got] == \
        [(i, w.INFER_REPLY) for i in later], "held answers released in order"

    # the hung process is gone, a new one serves in its place
    assert wait_until(lambda: len(set(worker.instance_pids("ordered"))
                                  - pids) == 1, 5), "one instance replaced"
    assert wait_state(c, "ordered", 1, w.READY_STATE) == ""
    for _ in range(4):          # round robin: both instances serve
        assert infer_ok(c, "ordered")
    with open(worker.log_path) as f:
        assert "hung: batch" in f.read()


def test_hung_instance_without_deadline_uses_execute_timeout(client, worker):
    """no module deadline: --execute-timeout bounds the batch instead"""
    c = client
    assert wait_state(c, "echo", 1, w.READY_STATE) == ""
    assert wait_until(lambda: len(worker.instance_pids("echo")) == 4, 5)
    pids = set(worker.instance_pids("echo"))
    t0 = time.monotonic()
    hung = c.infer("echo", version="1", request_id="hang")
    m = c.answer(EXECUTE_TIMEOUT_MS + GRACE_MS + 2000)
    took = time.monotonic() - t0
    assert m and m["id"] == hung and m["code"] == w.UNAVAILABLE and \
        "did not finish within %d ms" % (EXECUTE_TIMEOUT_MS + GRACE_MS) \
        in m["message"], m
    limit = (EXECUTE_TIMEOUT_MS + GRACE_MS) / 1000
    assert limit - 0.05 < took < limit + 0.7, took
    assert wait_until(lambda: len(set(worker.instance_pids("echo"))
                                  - pids) == 1, 5), "one instance replaced"
    assert wait_state(c, "echo", 1, w.READY_STATE) == ""
    for _ in range(4):
        c.infer("echo", version="1")
        m = c.answer()
        assert m and m["kind"] == w.INFER_REPLY, m


# ---- shutdown ---------------------------------------------------------------

def test_sigterm_stops_instances_and_removes_run_dir(tmp_path, zctx):
    """SIGTERM: instances stop, run dir removed, exit 0 (its own worker)"""
    proc = Worker(tmp_path)
    c = Client(zctx, proc.endpoint)
    try:
        for model, version in (("echo", 2), ("echo", 1), ("slow", 1),
                               ("auto", 3)):
            assert wait_state(c, model, version, w.READY_STATE) == ""
        all_pids = [p for model in ("echo", "slow", "auto")
                    for p in proc.instance_pids(model)]
        assert len(all_pids) >= 4, "instances before shutdown: %r" % all_pids
        t0 = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        try:
            rc = proc.proc.wait(8)
        except subprocess.TimeoutExpired:
            rc = None
        assert rc == 0, "exit status 0 on SIGTERM: %r" % rc
        assert time.monotonic() - t0 < 6, "stopped within the grace period"
        assert not os.path.exists(proc.run_dir), "run dir removed"
        left = [p for p in all_pids if os.path.exists("/proc/%d" % p)]
        assert left == [], "no instance left: %r" % left
    finally:
        c.close()
        proc.stop()
