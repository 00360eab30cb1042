"""kserve-python-instance on its own, with its peers played in Python.

Each test binds the worker's control ROUTER on an ipc socket, starts the
instance binary with --connect to it and --run-dir a temporary directory,
reads the endpoint from its READY, and then plays an nginx worker: a
ROUTER of its own connected to that endpoint (tests/component/peers.py),
sending [endpoint][INFER][inputs...] and [endpoint][CANCEL], one request
per message, exactly as the module does.  The instance queues and
batches what it receives (backends/common/ksv_sched.h), runs the model
of conf/models, tests/models or a repository made by the test, answers
each request to the nginx worker that sent it, and counts in its
statistics page <run-dir>/<pid>.stats (tests/tools/ksv_stats_page.py).
"""

import fcntl
import json
import os
import re
import signal
import struct
import time

import numpy as np
import pytest
import zmq

import ksv_log_page
import ksv_stats_page
import ksv_wire as w
from peers import IDS, DataClient
from processes import TOP, Process, built, wait_until

CONF_MODELS = os.path.join(TOP, "conf", "models")
TEST_MODELS = os.path.join(TOP, "tests", "models")


class Instance(Process):
    """One instance process, the worker's control ROUTER it sends READY
    to, and an nginx worker's data ROUTER (self.data) for its endpoint."""

    def __init__(self, tmp, repository, model, version="1", instance=0,
                 kind="KIND_CPU", args=()):
        self.ctx = zmq.Context()
        self.control = self.ctx.socket(zmq.ROUTER)
        self.control.linger = 0
        connect = "ipc://%s/instances.sock" % tmp
        self.control.bind(connect)
        self.run_dir = str(tmp)
        self.model = model
        self.version = version
        super().__init__("kserve-python-instance", [
            built("kserve-python-instance"), "--connect", connect,
            "--repository", repository, "--model", model,
            "--version", version, "--instance", str(instance),
            "--kind", kind, "--device-id", "0",
            "--utils-dir", os.path.join(TOP, "backends", "python"),
            "--run-dir", self.run_dir] + list(args),
            str(tmp / ("%s.log" % model)))
        self.data = DataClient(self.ctx)
        self.ready = self.endpoint = None

    def wait_ready(self, timeout=30):
        """READY, the one message an instance sends (ok = 0: failed)."""
        assert self.control.poll(timeout * 1000), \
            "no READY within %d s" % timeout
        peer, frame = self.control.recv_multipart()
        assert peer == b"i%d" % self.pid, peer
        self.ready = w.decode(frame, w.READY)
        self.endpoint = self.ready["endpoint"]
        assert self.endpoint == "ipc://%s/%d.sock" % (self.run_dir, self.pid)

    def send(self, frames, data=None):
        """Raw frames after the endpoint: [header][tensors...]."""
        (data or self.data).send(self.endpoint, frames)

    def infer(self, inputs, data=None, **kw):
        """INFER of [(name, datatype, ndarray)] for this instance's model
        (kw: ksv_wire.infer's).  Returns its id."""
        return (data or self.data).infer(self.endpoint, self.model, inputs,
                                         **kw)

    def cancel(self, id_, data=None):
        (data or self.data).cancel(self.endpoint, id_)

    def answer(self, timeout_ms=5000, data=None):
        m = (data or self.data).answer(timeout_ms)
        assert m is None or m["endpoint"] == self.endpoint, m
        return m

    def result(self, m):
        """An answer -> ("reply", request_id, {name: (datatype, ndarray)})
        or ("error", code, message)."""
        if m["kind"] == w.ERROR:
            return ("error", m["code"], m["message"])
        assert m["model"] == self.model and m["version"] == self.version, m
        return ("reply", m["request_id"], {
            name: (dt, w.tensor_array(dt, dims, data))
            for (name, dt, dims, _), data in zip(m["outputs"], m["frames"])})

    def run(self, requests, timeout_ms=30000):
        """Sends every request at once (dict(inputs=..., request_id=...,
        params=..., outputs=...)); their results in the same order."""
        ids = [self.infer(**req) for req in requests]
        got = self.data.answers(ids, timeout_ms)
        return [self.result(got[i]) for i in ids]

    def page(self):
        """Its statistics page (read while it is idle)."""
        return ksv_stats_page.read(os.path.join(self.run_dir,
                                                "%d.stats" % self.pid))

    def stop(self, timeout=10):
        rc = super().stop(timeout=timeout)
        self.data.close()
        self.control.close()
        self.ctx.term()
        return rc


def start_instance(tmp, repository, model, **kw):
    inst = Instance(tmp, repository, model, **kw)
    try:
        inst.wait_ready()
    except BaseException:
        inst.stop()
        raise
    return inst


@pytest.fixture
def start(tmp_path):
    """start(repository, model, **kw) -> an Instance that has sent READY,
    stopped by pid when the test ends."""
    started = []

    def start(repository, model, **kw):
        d = tmp_path / str(len(started))
        d.mkdir(exist_ok=True)
        inst = start_instance(d, repository, model, **kw)
        started.append(inst)
        return inst

    yield start
    for inst in started:
        if not inst.control.closed:
            inst.stop()


def make_model(root, name, config, model_py):
    """<root>/<name>: config.pbtxt and version 1's model.py, a symlink to
    model_py when it names a file, else model_py's text.  -> root."""
    d = os.path.join(str(root), name)
    os.makedirs(os.path.join(d, "1"))
    with open(os.path.join(d, "config.pbtxt"), "w") as f:
        f.write(config)
    target = os.path.join(d, "1", "model.py")
    if os.path.isfile(model_py):
        os.symlink(model_py, target)
    else:
        with open(target, "w") as f:
            f.write(model_py)
    return str(root)


def model_py(name):
    return os.path.join(TEST_MODELS, name, "1", "model.py")


def fp32(*shape, start=0):
    n = int(np.prod(shape))
    return np.arange(start, start + n, dtype=np.float32).reshape(shape)


def rows_of(result, name):
    """An INT64 [rows, 1] output of batch_recorder, as one number."""
    values = set(result[2][name][1].ravel().tolist())
    assert len(values) == 1, result
    return values.pop()


# ---- the Python backend -----------------------------------------------------

def test_simple_adds_and_subtracts_and_sends_the_outputs_asked_for(start):
    inst = start(CONF_MODELS, "simple")
    assert inst.ready["ok"] == 1, inst.ready
    assert inst.ready["model"] == "simple" and inst.ready["version"] == 1
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.int32)
    c = np.arange(32, dtype=np.int32).reshape(2, 16)
    res = inst.run([
        dict(inputs=[("INPUT0", "INT32", a), ("INPUT1", "INT32", b)],
             request_id="first"),
        dict(inputs=[("INPUT0", "INT32", c), ("INPUT1", "INT32", c)],
             outputs=["OUTPUT1"], request_id="second"),
    ])
    assert res[0][0] == "reply" and res[0][1] == "first", res[0]
    assert set(res[0][2]) == {"OUTPUT0", "OUTPUT1"}
    dt, out0 = res[0][2]["OUTPUT0"]
    assert dt == "INT32" and (out0 == a + b).all() and out0.shape == (1, 16)
    assert (res[0][2]["OUTPUT1"][1] == a - b).all()
    assert res[1][0] == "reply" and res[1][1] == "second", res[1]
    assert set(res[1][2]) == {"OUTPUT1"}, res[1][2].keys()
    assert (res[1][2]["OUTPUT1"][1] == 0).all()

    # batched together or not, each request gets its own rows back
    res = inst.run([
        dict(inputs=[("INPUT0", "INT32", c), ("INPUT1", "INT32", c)]),
        dict(inputs=[("INPUT0", "INT32", a), ("INPUT1", "INT32", b)]),
    ])
    assert res[0][2]["OUTPUT0"][1].shape == (2, 16), res[0]
    assert (res[1][2]["OUTPUT0"][1] == a + b).all(), res[1]

    rc = inst.stop()
    assert rc == 0, "simple exited %s after SIGTERM" % rc


def test_byte_size_mismatch_fails_that_request_only(start):
    inst = start(CONF_MODELS, "simple")
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = [("INPUT0", "INT32", a), ("INPUT1", "INT32", a)]
    good, bad = next(IDS), next(IDS)
    inst.send(w.infer_arrays(good, "simple", inputs))
    frames = w.infer_arrays(bad, "simple", inputs)
    frames[2] = frames[2][:-4]      # INPUT1's frame shorter than byte_size
    inst.send(frames)
    got = inst.data.answers([good, bad])
    assert got[good]["kind"] == w.INFER_REPLY, got[good]
    assert got[bad]["kind"] == w.ERROR and \
        got[bad]["code"] == w.INVALID_ARG, got[bad]
    assert "byte_size" in got[bad]["message"], got[bad]
    assert inst.stop() == 0


def test_fail_model_fails_every_request_with_its_exception(start):
    inst = start(TEST_MODELS, "fail_model")
    assert inst.ready["ok"] == 1, inst.ready
    x = np.ones((1, 4), dtype=np.float32)
    res = inst.run([dict(inputs=[("INPUT0", "FP32", x)])] * 2)
    for r in res:
        assert r[0] == "error" and r[1] == w.INTERNAL, r
        assert "fail_model always fails" in r[2], r
        assert "fail_model_0_0" in r[2], r
    assert inst.stop() == 0


def test_error_model_answers_its_triton_error(start):
    inst = start(TEST_MODELS, "error_model")
    x = np.ones((1, 4), dtype=np.float32)
    res = inst.run([dict(inputs=[("INPUT0", "FP32", x)])] * 3)
    assert res == [("error", w.INVALID_ARG, "bad thing")] * 3, res
    assert inst.stop() == 0


def test_init_fail_says_why_in_ready_and_exits_1(start):
    inst = start(TEST_MODELS, "init_fail")
    assert inst.ready["ok"] == 0, inst.ready
    assert "init_fail refuses to initialize" in inst.ready["message"], \
        inst.ready
    assert inst.proc.wait(10) == 1


def test_missing_model_says_why_in_ready(start):
    inst = start(TEST_MODELS, "no_such_model")
    assert inst.ready["ok"] == 0 and \
        "config.pbtxt" in inst.ready["message"], inst.ready


def test_all_types_come_back_as_they_went(start, tmp_path):
    inst = start(TEST_MODELS, "all_types")
    rng = np.random.default_rng(1)
    inputs = []
    for dt in w.TYPES[1:14]:        # BOOL .. BYTES; numpy has no BF16
        if dt == "BOOL":
            arr = rng.integers(0, 2, (2, 3)).astype(np.bool_)
        elif dt == "BYTES":
            arr = np.array([[b"a", b"", b"\x00zz\xff"],
                            [b"x" * 100, b"y", b"z"]], dtype=np.object_)
        else:
            arr = (rng.random((2, 3)) * 100).astype(w.numpy_type(dt))
        inputs.append(("IN_" + dt, dt, arr))
    res = inst.run([dict(inputs=inputs), dict(inputs=inputs[:1])])
    assert res[0][0] == "reply", res[0]
    outs = res[0][2]
    assert len(outs) == len(inputs), outs.keys()
    for name, dt, arr in inputs:
        odt, out = outs["OUT_" + dt]
        assert odt == dt, (odt, dt)
        assert out.shape == arr.shape and (out == arr).all(), (dt, out, arr)
    assert list(res[1][2]) == ["OUT_BOOL"], res[1]

    # empty tensors
    res = inst.run([dict(inputs=[
        ("IN_FP32", "FP32", np.zeros((1, 0), np.float32)),
        ("IN_BYTES", "BYTES", np.zeros((1, 0), np.object_))])])
    outs = res[0][2]
    assert outs["OUT_FP32"][1].shape == (1, 0), outs
    assert outs["OUT_BYTES"][1].shape == (1, 0), outs

    # 0-d tensors: only where there is no batch dimension to take
    repo = make_model(tmp_path / "repo", "all_types_unbatched",
                      open(os.path.join(TEST_MODELS, "all_types",
                                        "config.pbtxt")).read()
                      .replace('name: "all_types"\n', "")
                      .replace("max_batch_size: 8", "max_batch_size: 0"),
                      model_py("all_types"))
    unbatched = start(repo, "all_types_unbatched")
    res = unbatched.run([dict(inputs=[("IN_INT8", "INT8",
                                       np.array(5, np.int8))])])
    out = res[0][2]["OUT_INT8"][1]
    assert out.shape == () and out == 5, res
    assert inst.stop() == 0


def test_args_echo_hands_initialize_triton_args(start):
    inst = start(TEST_MODELS, "args_echo", instance=0, kind="KIND_GPU")
    res = inst.run([dict(inputs=[("INPUT0", "FP32",
                                  np.zeros(1, np.float32))])])
    assert res[0][0] == "reply", res[0]
    args = json.loads(res[0][2]["ARGS"][1][0])
    assert set(args) == {"model_config", "model_instance_kind",
                         "model_instance_name", "model_instance_device_id",
                         "model_repository", "model_version",
                         "model_name"}, args
    assert args["model_instance_kind"] == "GPU", args
    assert args["model_instance_name"] == "args_echo_0_0", args
    assert args["model_instance_device_id"] == "0"
    assert args["model_version"] == "1" and args["model_name"] == "args_echo"
    assert args["model_repository"] == os.path.join(TEST_MODELS, "args_echo")
    config = json.loads(args["model_config"])
    assert config["name"] == "args_echo" and \
        config["output"][0]["name"] == "ARGS"
    assert inst.stop() == 0


def test_text_upper_reads_and_writes_bytes(start):
    inst = start(CONF_MODELS, "text_upper")
    text = np.array([[b"hello", "w\xf6rld".encode()]], dtype=np.object_)
    opts = np.array([[b'{"reverse": true}']], dtype=np.object_)
    res = inst.run([
        dict(inputs=[("INPUT0", "BYTES", text)]),
        dict(inputs=[("INPUT0", "BYTES", text),
                     ("parameters", "BYTES", opts)]),
        dict(inputs=[("INPUT0", "BYTES", text), ("parameters", "BYTES",
                      np.array([[b"{nope"]], dtype=np.object_))]),
    ])
    out = res[0][2]["OUTPUT0"][1]
    assert out.tolist() == [[b"HELLO", "W\xd6RLD".encode()]], out
    out = res[1][2]["OUTPUT0"][1]
    assert out.tolist() == [[b"OLLEH", "DLR\xd6W".encode()]], out
    assert res[2][0] == "error" and res[2][1] == w.INVALID_ARG, res[2]
    assert inst.stop() == 0


def test_bad_responses_fail_their_requests_only(start, tmp_path):
    """batched (preferred sizes 2 and 4, a long delay): a bad response
    fails its own request; too few responses fail the whole batch"""
    repo = make_model(tmp_path / "repo", "bad_batched",
                      open(os.path.join(TEST_MODELS, "bad_responses",
                                        "config.pbtxt")).read()
                      .replace('name: "bad_responses"\n', "") +
                      "dynamic_batching { preferred_batch_size: [ 2, 4 ]\n"
                      "  max_queue_delay_microseconds: 1000000 }\n",
                      model_py("bad_responses"))
    inst = start(repo, "bad_batched")
    x = np.ones((1, 4), dtype=np.float32)
    ok = dict(inputs=[("INPUT0", "FP32", x)])
    res = inst.run([ok, dict(ok, params={"mode": "dims"}),
                    dict(ok, params={"mode": "type"}), ok])
    assert res[0][0] == "reply" and res[3][0] == "reply", res
    assert res[1][0] == "error" and res[1][1] == w.INTERNAL, res[1]
    assert "dimensions" in res[1][2], res[1]
    assert res[2][0] == "error" and "InferenceResponse" in res[2][2], res[2]
    res = inst.run([ok, dict(ok, params={"mode": "count"})])
    for r in res:
        assert r[0] == "error" and r[1] == w.INTERNAL, r
        assert "2 requests, 1 responses" in r[2], r
    assert inst.stop() == 0


# ---- the scheduler: batches, queues, deadlines ----------------------------

def test_requests_that_queue_while_a_batch_runs_go_in_one_execute(start):
    """batch_recorder: the first request runs alone (300 ms); four that
    arrive meanwhile run together in the next execute(), and the page
    counts both batches with execute()'s time as compute_infer"""
    inst = start(TEST_MODELS, "batch_recorder")
    x = fp32(1, 4)
    first = inst.infer([("INPUT0", "FP32", x)], params={"sleep_ms": 300})
    time.sleep(0.1)
    rest = [inst.infer([("INPUT0", "FP32", fp32(1, 4, start=i))])
            for i in range(4)]
    got = inst.data.answers([first] + rest)
    r = inst.result(got[first])
    assert (rows_of(r, "EXECUTION"), rows_of(r, "BATCH_REQUESTS")) == \
        (1, 1), r
    for i, id_ in enumerate(rest):
        r = inst.result(got[id_])
        assert (rows_of(r, "EXECUTION"), rows_of(r, "BATCH_REQUESTS"),
                rows_of(r, "BATCH_ROWS")) == (2, 4, 4), r
        assert (r[2]["OUTPUT0"][1] == fp32(1, 4, start=i)).all(), r

    page = inst.page()
    assert page["execution_count"] == 2 and page["inference_count"] == 5
    assert page["success"][0] == 5 and page["fail"][0] == 0, page
    sizes = {b["batch_size"]: b for b in page["batch"]}
    assert set(sizes) == {1, 4}, page["batch"]
    # compute_infer is execute() (it slept 300 ms), not the other phases
    one = sizes[1]
    assert one["compute_infer"][0] == 1 and \
        0.3e9 <= one["compute_infer"][1] < 1e9, one
    assert one["compute_input"][1] < one["compute_infer"][1] and \
        one["compute_output"][1] < one["compute_infer"][1], one
    assert inst.stop() == 0


def test_each_answer_goes_to_the_nginx_worker_that_asked(start):
    """two nginx workers using the same request ids: each gets its own"""
    inst = start(CONF_MODELS, "identity_fp32")
    other = DataClient(inst.ctx)
    try:
        for d, base in ((inst.data, 0), (other, 1000)):
            for i in range(1, 21):
                inst.infer([("INPUT0", "FP32", fp32(1, 2, start=base + i))],
                           data=d, id_=i)
        for d, base in ((inst.data, 0), (other, 1000)):
            got = d.answers(range(1, 21))
            for i, m in got.items():
                assert m["kind"] == w.INFER_REPLY, m
                out = w.tensor_array("FP32", [1, 2], m["frames"][0])
                assert out.tolist() == fp32(1, 2, start=base + i).tolist(), \
                    (base, i, m)
    finally:
        other.close()
    assert inst.stop() == 0


def waiter(root):
    """100 ms a batch, max_queue_delay 400 ms, up to 32 rows; requests
    may set a queue timeout ("timeout" parameter, microseconds)"""
    return make_model(root, "waiter",
                      'backend: "python"\n'
                      'max_batch_size: 32\n'
                      'input [ { name: "INPUT0" data_type: TYPE_FP32'
                      ' dims: [ -1 ] } ]\n'
                      'output [ { name: "OUTPUT0" data_type: TYPE_FP32'
                      ' dims: [ -1 ] } ]\n'
                      'dynamic_batching {\n'
                      '  max_queue_delay_microseconds: 400000\n'
                      '  default_queue_policy { allow_timeout_override: true }'
                      ' }\n', model_py("slow_model"))


def timed(inst, **kw):
    """One request of 4 rows, waited for: (its answer, seconds it took)."""
    t0 = time.monotonic()
    id_ = inst.infer([("INPUT0", "FP32", fp32(4, 1))], **kw)
    m = inst.answer(5000)
    assert m is not None and m["id"] == id_, m
    return m, time.monotonic() - t0


def test_batcher_waits_only_when_another_request_is_coming(start, tmp_path):
    inst = start(waiter(tmp_path / "repo"), "waiter")

    # the first request after a quiet spell waits for company, as Triton
    # always does, but no longer than max_queue_delay
    m, took = timed(inst)
    assert m["kind"] == w.INFER_REPLY and 0.45 <= took < 0.8, (m, took)

    # a lone client: nothing arrives while it waits, so none is expected
    for _ in range(3):
        m, took = timed(inst)
        assert m["kind"] == w.INFER_REPLY, m
        assert took < 0.3, "a lone request waited (%.3f s)" % took

    # three arrive while the first runs: they run as one batch, which
    # never waits past the delay
    t0 = time.monotonic()
    first = inst.infer([("INPUT0", "FP32", fp32(4, 1))])
    time.sleep(0.02)
    rest = [inst.infer([("INPUT0", "FP32", fp32(4, 1))]) for _ in range(3)]
    got = [inst.answer(3000) for _ in range(4)]
    took = time.monotonic() - t0
    assert [m and m["id"] for m in got] == [first] + rest, got
    assert took < 0.1 + 0.4 + 0.1 + 0.15, \
        "the batch waited past its delay (%.3f s)" % took
    sizes = {b["batch_size"]: b["compute_infer"][0]
             for b in inst.page()["batch"]}
    assert sizes == {4: 5, 12: 1}, sizes
    assert inst.stop() == 0


def test_lone_requests_do_not_wait_after_one_timed_out_in_the_queue(
        start, tmp_path):
    """a request that leaves by its queue timeout leaves the batcher's
    count of outstanding requests too, or every later arrival would look
    like company coming"""
    inst = start(waiter(tmp_path / "repo"), "waiter")
    # after the quiet spell it waits for company: its 50 ms timeout ends it
    m, took = timed(inst, params={"timeout": 50000})
    assert m["kind"] == w.ERROR and \
        m["message"] == "Request timeout expired", m
    times = [timed(inst)[1] for _ in range(8)]
    assert max(times) < 0.2, "lone requests waited: %r" % times


def test_deadline_passing_while_it_waits_answers_unavailable_unrun(
        start, tmp_path):
    """the module's timeout_ms bounds the wait for a batch: past it the
    request is answered UNAVAILABLE and never reaches the model"""
    inst = start(waiter(tmp_path / "repo"), "waiter")
    m, took = timed(inst, timeout_ms=150)
    assert m["kind"] == w.ERROR and m["code"] == w.UNAVAILABLE and \
        m["message"] == "Request timeout expired", m
    assert 0.1 < took < 0.4, "answered on time (%.3f s)" % took
    page = inst.page()
    assert page["execution_count"] == 0 and page["fail"][0] == 1, page
    assert inst.stop() == 0


def test_deadline_of_a_request_that_arrives_while_a_batch_runs(
        start, tmp_path):
    """the scheduler keeps time while the model runs: b's 100 ms end
    while a runs, and b is answered then, never run"""
    inst = start(waiter(tmp_path / "repo"), "waiter")
    for _ in range(3):
        timed(inst)                 # past the quiet spell
    t0 = time.monotonic()
    a = inst.infer([("INPUT0", "FP32", fp32(4, 1))],
                   params={"sleep_ms": 400})
    time.sleep(0.1)
    b = inst.infer([("INPUT0", "FP32", fp32(4, 1))], timeout_ms=100)
    m = inst.answer(3000)
    took = time.monotonic() - t0
    assert m and m["id"] == b and m["code"] == w.UNAVAILABLE and \
        m["message"] == "Request timeout expired", m
    assert 0.15 < took < 0.35, "answered on time (%.3f s)" % took
    m = inst.answer(3000)
    assert m and m["id"] == a and m["kind"] == w.INFER_REPLY, m
    assert inst.page()["execution_count"] == 4
    assert inst.stop() == 0


def test_queue_timeout_rejects_what_waits_too_long_unrun(start):
    """queue_timeout: 400 ms a request, at most 100 ms in the queue: b
    and c, queued behind a, are rejected while a runs; the timeout
    parameter lowers the limit (d)"""
    inst = start(TEST_MODELS, "queue_timeout")
    x = np.zeros(1, np.float32)
    t0 = time.monotonic()
    a = inst.infer([("INPUT0", "FP32", x)])
    time.sleep(0.1)
    b = inst.infer([("INPUT0", "FP32", x)])
    c = inst.infer([("INPUT0", "FP32", x)])
    d = inst.infer([("INPUT0", "FP32", x)], params={"timeout": 20000})
    got = [inst.answer(3000) for _ in range(4)]
    when = time.monotonic() - t0
    assert [m and m["id"] for m in got] == [d, b, c, a], got
    for m in got[:3]:
        assert m["kind"] == w.ERROR and m["code"] == w.UNAVAILABLE and \
            m["message"] == "Request timeout expired", m
    assert got[3]["kind"] == w.INFER_REPLY, got[3]
    assert when < 0.8, when
    page = inst.page()
    assert page["execution_count"] == 1 and page["fail"][0] == 3, page
    assert inst.stop() == 0


@pytest.mark.parametrize("instances,queued", [(1, 2), (2, 1)])
def test_queue_bound_is_the_instance_share_of_max_queue_size(
        start, instances, queued):
    """tiny_queue: max_queue_size 2 for the version, 300 ms a request;
    each of N instances takes ceil(2 / N)"""
    inst = start(TEST_MODELS, "tiny_queue", args=("--instances",
                                                  str(instances)))
    x = np.zeros(1, np.float32)
    first = inst.infer([("INPUT0", "FP32", x)])
    time.sleep(0.1)             # first runs, the queue is empty
    more = [inst.infer([("INPUT0", "FP32", x)]) for _ in range(queued + 1)]
    got = [inst.answer(3000) for _ in range(queued + 2)]
    over = [m for m in got if m and m["kind"] == w.ERROR]
    assert [m["id"] for m in over] == [more[-1]] and \
        over[0]["code"] == w.UNAVAILABLE and \
        over[0]["message"] == "Exceeds maximum queue size", got
    served = [m["id"] for m in got if m and m["kind"] == w.INFER_REPLY]
    assert served == [first] + more[:-1], "served in order: %r" % got
    assert inst.stop() == 0


# ---- CANCEL -----------------------------------------------------------------

def test_cancel_of_a_queued_request_means_it_never_runs(start):
    """batch_recorder numbers its execute() calls: after a (running) and
    b (queued, then cancelled), c runs in execute() 2, alone; b is never
    answered"""
    inst = start(TEST_MODELS, "batch_recorder")
    x = fp32(1, 4)
    a = inst.infer([("INPUT0", "FP32", x)], params={"sleep_ms": 400})
    time.sleep(0.15)
    b = inst.infer([("INPUT0", "FP32", x)])
    inst.cancel(b)
    m = inst.answer(3000)
    assert m and m["id"] == a and m["kind"] == w.INFER_REPLY, m
    assert rows_of(inst.result(m), "EXECUTION") == 1
    c = inst.infer([("INPUT0", "FP32", x)])
    m = inst.answer(3000)
    assert m and m["id"] == c, "b was answered: %r" % (m,)
    r = inst.result(m)
    assert (rows_of(r, "EXECUTION"), rows_of(r, "BATCH_REQUESTS")) == (2, 1), \
        "the model saw b: %r" % (r,)
    assert inst.answer(300) is None, "b was answered after all"
    page = inst.page()
    assert page["execution_count"] == 2 and page["success"][0] == 2 and \
        page["fail"][0] == 0, "b is not counted: %r" % page
    assert inst.stop() == 0


def test_cancel_from_another_nginx_worker_or_of_an_unknown_id_is_ignored(
        start):
    """a request is known by its sender and id together"""
    inst = start(TEST_MODELS, "batch_recorder")
    other = DataClient(inst.ctx)
    try:
        x = fp32(1, 4)
        a = inst.infer([("INPUT0", "FP32", x)], params={"sleep_ms": 300})
        time.sleep(0.1)
        b = inst.infer([("INPUT0", "FP32", x)])
        inst.cancel(b, data=other)          # not its sender
        inst.cancel(next(IDS))              # never sent
        got = inst.data.answers([a, b])
        assert all(m["kind"] == w.INFER_REPLY for m in got.values()), got
        assert other.answer(200) is None
    finally:
        other.close()
    assert inst.stop() == 0


CANCEL_WATCH = '''\
import os
import time

import triton_python_backend_utils as pb_utils


class TritonPythonModel:
    """With the "wait" parameter: notes "started" in <model dir>/seen,
    then waits (5 s at most) for request.is_cancelled() and notes
    "cancelled" or "finished".  Echoes INPUT0 either way."""

    def initialize(self, args):
        self.seen = os.path.join(args["model_repository"], "seen")

    def note(self, what):
        with open(self.seen, "a") as f:
            f.write(what + "\\n")

    def execute(self, requests):
        r = requests[0]
        if "wait" in r.parameters():
            self.note("started")
            deadline = time.monotonic() + 5
            while not r.is_cancelled() and time.monotonic() < deadline:
                time.sleep(0.01)
            self.note("cancelled" if r.is_cancelled() else "finished")
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(
                    "OUTPUT0", pb_utils.get_input_tensor_by_name(
                        q, "INPUT0").as_numpy())]) for q in requests]
'''


def test_cancel_of_a_running_request_reaches_is_cancelled_unanswered(
        start, tmp_path):
    repo = make_model(tmp_path / "repo", "cancel_watch",
                      'backend: "python"\n'
                      'input [ { name: "INPUT0" data_type: TYPE_FP32'
                      ' dims: [ -1 ] } ]\n'
                      'output [ { name: "OUTPUT0" data_type: TYPE_FP32'
                      ' dims: [ -1 ] } ]\n', CANCEL_WATCH)
    seen = os.path.join(repo, "cancel_watch", "seen")

    def notes():
        try:
            with open(seen) as f:
                return f.read().split()
        except FileNotFoundError:
            return []

    inst = start(repo, "cancel_watch")
    a = inst.infer([("INPUT0", "FP32", fp32(2))], params={"wait": True})
    assert wait_until(lambda: notes() == ["started"], 5), notes()
    inst.cancel(a)
    assert wait_until(lambda: len(notes()) == 2, 5), notes()
    assert notes() == ["started", "cancelled"]
    assert inst.answer(500) is None, "a cancelled request was answered"
    res = inst.run([dict(inputs=[("INPUT0", "FP32", fp32(2))])])
    assert res[0][0] == "reply", "served on after: %r" % (res,)
    assert inst.stop() == 0


# ---- what the instance refuses ----------------------------------------------

def input0(size=16, dims=(4,), dt="FP32"):
    return [("INPUT0", dt, list(dims), size)]


def infer_head(id_):
    """An INFER header frame cut before ninputs, for hand-made tails."""
    return (w.prefix(w.INFER, id_) + w.pstr("echo") + w.pstr("") +
            w.pstr("") + struct.pack("<II", 0, 0))


def u32(n):
    return struct.pack("<I", n)


def error(id_, *needles, code=w.INVALID_ARG):
    """The case is answered: ERROR code with id_, message holding needles."""
    return dict(id=id_, code=code, needles=needles)


DROPPED = None
HEADER = "malformed message header"
KIND = "unexpected message kind for an instance"
BAD = "malformed INFER message"

# (name, frames sent after the endpoint, what comes back); every id is
# read when the prefix is whole, whatever its magic or version
MALFORMED = [
    ("short header", [b"\x01\x02"], error(0, HEADER)),
    ("empty header frame", [b""], error(0, HEADER)),
    ("delimiter frame first (a REQ peer)",
     [b"", w.infer(70, "echo", inputs=input0()), b"\0" * 16],
     error(0, HEADER)),
    ("bad magic", [w.prefix(w.INFER, 71, magic=0x1234) +
                   w.infer(71, "echo")[16:]], error(71, HEADER)),
    ("wrong version", [w.prefix(w.INFER, 77, version=9)], error(77, HEADER)),
    ("unknown kind", [w.prefix(99, 78)], error(78, HEADER)),
    ("kind 0", [w.prefix(0, 86)], error(86, HEADER)),
    ("INDEX sent to an instance", [w.index(79, 0)], error(79, KIND)),
    ("EXECUTE from a client", [w.execute(72, 0)], error(72, KIND)),
    ("READY from a client", [w.ready("echo", 1, 0, 1)], error(0, KIND)),
    ("INFER_REPLY from a client",
     [w.infer_reply(87, "echo", "1", "", [])], error(87, KIND)),
    ("CANCEL of an id never sent", [w.cancel(73)], DROPPED),
    ("truncated INFER body", [w.prefix(w.INFER, 80) + b"\x05\x00ab"],
     error(80, BAD)),
    ("INFER cut inside its inputs",
     [w.infer(88, "echo", inputs=input0())[:-12], b"\0" * 16],
     error(88, BAD)),
    ("INFER without its tensor frame",
     [w.infer(81, "echo", inputs=input0())],
     error(81, "describes 1 input tensor(s) but carries 0 tensor frame")),
    ("INFER with one tensor frame too many",
     [w.infer(89, "echo", inputs=input0()), b"\0" * 16, b"\0" * 16],
     error(89, "describes 1 input tensor(s) but carries 2")),
    ("tensor frame shorter than byte_size",
     [w.infer(82, "echo", inputs=input0()), b"x"],
     error(82, "byte_size 16 does not match its frame of 1 bytes")),
    ("byte_size that disagrees with the shape",
     [w.infer(83, "echo", inputs=input0(dims=(5,))), b"y" * 16],
     error(83, "16 bytes do not match its shape and datatype FP32")),
    ("negative dim", [w.infer(90, "echo", inputs=input0(dims=(-4,))),
                      b"\0" * 16], error(90, "shape")),
    ("dims whose product overflows",
     [w.infer(91, "echo", inputs=input0(dims=(2**62, 2**62, 4))),
      b"\0" * 16], error(91, "shape")),
    ("byte_size of 2^64-1",
     [w.infer(92, "echo", inputs=input0(size=2**64 - 1)), b"\0" * 16],
     error(92, "byte_size 18446744073709551615")),
    ("ninputs 2^32-1", [infer_head(93) + b"\xff\xff\xff\xff"],
     error(93, BAD)),
    # more frames than any request may carry: dropped unread
    ("ninputs over the cap",
     [infer_head(94) + u32(w.MAX_TENSORS + 1) +
      (w.pstr("x") + b"\x0b\x00" + b"\0" * 8) * 1025] + [b""] * 1025,
     DROPPED),
    ("ndims 255", [infer_head(95) + u32(1) + w.pstr("INPUT0") +
                   b"\x0b\xff" + b"\0" * 64, b""], error(95, BAD)),
    ("datatype 200", [infer_head(96) + u32(1) + w.pstr("INPUT0") +
                      b"\xc8\x00" + b"\0" * 8, b""], error(96, BAD)),
    ("string longer than the frame",
     [w.prefix(w.INFER, 97) + b"\xff\xff" + b"echo"], error(97, BAD)),
    ("noutputs 2^32-1", [infer_head(98) + u32(0) + b"\xff\xff\xff\xff"],
     error(98, BAD)),
    ("nparams 2^32-1", [infer_head(99) + u32(0) + u32(0) +
                        b"\xff\xff\xff\xff"], error(99, BAD)),
    ("parameter of unknown type",
     [infer_head(100) + u32(0) + u32(0) + u32(1) + w.pstr("k") + b"\x09" +
      b"\0" * 8], error(100, BAD)),
    ("INFER for another model",
     [w.infer(101, "other", inputs=input0()), b"\0" * 16],
     error(101, "instance 'echo_0' serves model 'echo' version 1, not "
           "'other'", code=w.UNAVAILABLE)),
    ("INFER for another version",
     [w.infer(102, "echo", "2", inputs=input0()), b"\0" * 16],
     error(102, "not 'echo' version 2", code=w.UNAVAILABLE)),
]


@pytest.fixture(scope="module")
def echo(tmp_path_factory):
    """One instance of an FP32 [4] echo for the module (no batching)."""
    tmp = tmp_path_factory.mktemp("echo")
    repo = make_model(tmp / "repo", "echo",
                      'backend: "python"\n'
                      'input [ { name: "INPUT0" data_type: TYPE_FP32'
                      ' dims: [ 4 ] } ]\n'
                      'output [ { name: "OUTPUT0" data_type: TYPE_FP32'
                      ' dims: [ 4 ] } ]\n'
                      'instance_group [ { name: "echo" count: 1 } ]\n'
                      'parameters { key: "sleep_ms" value: {'
                      ' string_value: "0" } }\n', model_py("slow_model"))
    inst = start_instance(tmp, repo, "echo")
    yield inst
    inst.stop()


@pytest.mark.parametrize("frames,expect", [m[1:] for m in MALFORMED],
                         ids=[m[0] for m in MALFORMED])
def test_malformed_infer(echo, frames, expect):
    echo.send(frames)
    # messages are taken in order and refusals answered at once, so the
    # valid INFER sent next is answered first when nothing else is
    probe = echo.infer([("INPUT0", "FP32", fp32(4))])
    first = echo.answer()
    assert first is not None, "nothing came back, not even the probe"
    if expect is not DROPPED:
        assert first["kind"] == w.ERROR and first["id"] == expect["id"] and \
            first["code"] == expect["code"], first
        for needle in expect["needles"]:
            assert needle in first["message"], first
        assert first["frames"] == [], "an ERROR is one frame"
        first = echo.answer()
    assert first is not None and first["kind"] == w.INFER_REPLY and \
        first["id"] == probe, "answered after: %r" % (first,)
    assert echo.proc.poll() is None, "instance alive after malformed input"


def test_scheduler_refuses_what_the_model_config_does_not_allow(start):
    """batch_recorder: max_batch_size 16, priority_levels 2"""
    inst = start(TEST_MODELS, "batch_recorder")
    cases = [
        (dict(inputs=[("INPUT0", "FP32", fp32(17, 1))]),
         "inference request batch-size must be <= 16 for 'batch_recorder' "
         "(and at least 1), got 17"),
        (dict(inputs=[("INPUT0", "FP32", np.array(1.0, np.float32))]),
         "input 'INPUT0' does not have the batch size of the other inputs"),
        (dict(inputs=[("INPUT0", "FP32", fp32(1, 1))],
              params={"priority": 3}),
         "invalid priority for 'batch_recorder': must be an integer from 0 "
         "(the default level) to 2"),
    ]
    for req, message in cases:
        res = inst.run([req])
        assert res == [("error", w.INVALID_ARG, message)], res
    res = inst.run([dict(inputs=[("INPUT0", "FP32", fp32(1, 1))],
                         params={"priority": 1})])
    assert res[0][0] == "reply", res
    assert inst.stop() == 0


# ---- dying: hung models, SIGTERM, a worker that is gone ---------------------

HANG = """\
import time


class TritonPythonModel:

    def execute(self, requests):
        time.sleep(30)
"""


def hang(root):
    """A model whose execute() does not come back (for 30 s)."""
    return make_model(root, "hang",
                      'backend: "python"\n'
                      'input [ { name: "INPUT0" data_type: TYPE_FP32'
                      ' dims: [ -1 ] } ]\n'
                      'output [ { name: "OUTPUT0" data_type: TYPE_FP32'
                      ' dims: [ -1 ] } ]\n', HANG)


def test_hung_model_is_killed_by_its_watchdog_that_says_why(start, tmp_path):
    """no module deadline: --execute-timeout (500 ms) + 1 s grace; the
    batch's clients are told why, and so is the worker (the page)"""
    repo = hang(tmp_path / "repo")
    inst = start(repo, "hang", args=("--execute-timeout", "500"))
    t0 = time.monotonic()
    hung = inst.infer([("INPUT0", "FP32", fp32(1))])
    m = inst.answer(5000)
    took = time.monotonic() - t0
    assert m and m["id"] == hung and m["code"] == w.UNAVAILABLE, m
    assert 1.4 < took < 2.5, "answered after deadline + grace (%.3f s)" % took
    found = re.fullmatch(r"did not finish a batch of 1 request\(s\) within "
                         r"(\d+) ms \(its deadline \+ 1000 ms grace\): "
                         r"killed as hung", m["message"])
    assert found and 1499 <= int(found.group(1)) < 1700, m
    assert inst.proc.wait(10) == -signal.SIGKILL
    assert inst.page()["reason"] == m["message"]


def test_sigterm_during_a_hung_batch_still_ends_by_the_watchdog(
        start, tmp_path):
    """SIGTERM starts no new batch but waits for the running one, with
    its watchdog still on"""
    inst = start(hang(tmp_path / "repo"), "hang",
                 args=("--execute-timeout", "300"))
    try:
        hung = inst.infer([("INPUT0", "FP32", fp32(1))])
        time.sleep(0.2)
        os.kill(inst.pid, signal.SIGTERM)
        m = inst.answer(3000)
        assert m and m["id"] == hung and "killed as hung" in m["message"], m
        assert inst.proc.wait(3) == -signal.SIGKILL
    finally:
        if inst.proc.poll() is None:
            os.kill(inst.pid, signal.SIGKILL)


def test_sigterm_fails_what_waits_for_a_batch_and_exits_0(start, tmp_path):
    inst = start(waiter(tmp_path / "repo"), "waiter")
    waiting = inst.infer([("INPUT0", "FP32", fp32(4, 1))])
    time.sleep(0.1)                 # after a quiet spell: waits 400 ms
    os.kill(inst.pid, signal.SIGTERM)
    m = inst.answer(3000)
    assert m and m["id"] == waiting and m["code"] == w.UNAVAILABLE and \
        m["message"] == "the instance is shutting down", m
    assert inst.proc.wait(10) == 0


def test_sigterm_answers_the_running_batch_and_fails_what_came_meanwhile(
        start):
    inst = start(TEST_MODELS, "batch_recorder")
    x = fp32(1, 4)
    running = inst.infer([("INPUT0", "FP32", x)], params={"sleep_ms": 500})
    time.sleep(0.1)
    queued = inst.infer([("INPUT0", "FP32", x)])
    time.sleep(0.1)
    os.kill(inst.pid, signal.SIGTERM)
    got = [inst.answer(3000) for _ in range(2)]
    assert got[0] and got[0]["id"] == running and \
        got[0]["kind"] == w.INFER_REPLY, got
    assert got[1] and got[1]["id"] == queued and \
        got[1]["code"] == w.UNAVAILABLE and \
        got[1]["message"] == "the instance is shutting down", got
    assert inst.proc.wait(10) == 0


def test_instance_without_its_worker_finishes_its_queue_and_exits(
        start, tmp_path):
    """<run>/worker.lock free for --orphan-grace: the worker died and
    did not come back.  The page goes with the instance, as no worker
    will read it"""
    run = tmp_path / "0"
    run.mkdir()
    lock = os.open(str(run / "worker.lock"), os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX)            # "the worker"
        inst = start(TEST_MODELS, "slow_model", args=("--orphan-grace", "1"))
        assert inst.run_dir == str(run)
        time.sleep(2.5)
        assert inst.proc.poll() is None, "it left while the worker was up"
        fcntl.flock(lock, fcntl.LOCK_UN)            # the worker dies
        t0 = time.monotonic()
        res = inst.run([dict(inputs=[("INPUT0", "FP32", fp32(1, 4))])])
        assert res[0][0] == "reply", "served on without a worker: %r" % res
        assert inst.proc.wait(6) == 0
        assert 1.0 <= time.monotonic() - t0 < 4.0
        log = inst.log()
        assert "the worker is gone; serving on" in log, log
        assert "the worker did not come back within 1 s: exiting" in log, log
        assert not os.path.exists(str(run / ("%d.stats" % inst.pid)))
    finally:
        os.close(lock)


# ---- Triton's trace and logging extensions --------------------------------

def test_a_traced_request_gets_the_instance_timestamps(start):
    """INFER flag KSV_INFER_TRACE: the INFER_REPLY header ends with the
    six timestamps, in order, on the clock this process reads; an
    untraced request's has none."""
    inst = start(CONF_MODELS, "simple")
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = [("INPUT0", "INT32", a), ("INPUT1", "INT32", a)]
    before = time.monotonic_ns()
    traced = inst.infer(inputs, flags=w.INFER_TRACE)
    plain = inst.infer(inputs)
    got = inst.data.answers([traced, plain])
    after = time.monotonic_ns()
    assert got[plain]["trace"] is None
    t = got[traced]["trace"]
    assert t is not None, got[traced]
    assert list(t) == sorted(t), dict(zip(w.TRACE_TIMES, t))
    assert before <= t[0] and t[-1] <= after
    assert inst.stop() == 0


def test_the_model_logger_follows_the_log_settings_page(start, tmp_path):
    """pb_utils.Logger reads <run-dir>/log.settings (the worker writes
    it; here the test does) each time it logs."""
    d = tmp_path / "0"
    d.mkdir()
    page = str(d / "log.settings")
    ksv_log_page.write(page, info=1, warning=0, error=1, verbose=1,
                       fmt=1)
    inst = start(TEST_MODELS, "log_echo")
    x = np.ones(1, dtype=np.float32)
    assert inst.run([dict(inputs=[("INPUT0", "FP32", x)],
                          params={"marker": "c-1"})])[0][0] == "reply"
    ksv_log_page.write(page, info=0, warning=1, error=0, verbose=0, fmt=0)
    assert inst.run([dict(inputs=[("INPUT0", "FP32", x)],
                          params={"marker": "c-2"})])[0][0] == "reply"
    inst.stop()
    lines = [l for l in inst.log().splitlines()
             if l.endswith((" c-1", " c-2"))]
    assert len(lines) == 4, lines
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ I .*info c-1$", lines[0])
    assert " E " in lines[1] and lines[1].endswith("error c-1")
    assert " V " in lines[2] and lines[2].endswith("verbose c-1")
    assert re.match(r"W\d{4} \d\d:\d\d:\d\d\.\d{6} .*warning c-2$", lines[3])
