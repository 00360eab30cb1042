"""kserve-python-instance on its own, with the daemon played in Python.

Each test binds a ROUTER on an ipc socket, starts the instance binary on
one model of conf/models or tests/models, waits for READY, sends EXECUTE
batches built with tests/tools/ksv_wire.py exactly as the daemon would,
and checks the EXECUTE_REPLY.
"""

import json
import os
import time

import numpy as np
import pytest
import zmq

import ksv_wire as w
from processes import TOP, Process, built

CONF_MODELS = os.path.join(TOP, "conf", "models")
TEST_MODELS = os.path.join(TOP, "tests", "models")


class Instance(Process):
    """One instance process and the daemon's ROUTER it talks to."""

    def __init__(self, tmp, repository, model, version="1", instance=0,
                 kind="KIND_CPU"):
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        endpoint = "ipc://%s/instances.sock" % tmp
        self.sock.bind(endpoint)
        self.model = model
        self.next_id = 1
        super().__init__("kserve-python-instance", [
            built("kserve-python-instance"), "--connect", endpoint,
            "--repository", repository, "--model", model,
            "--version", version, "--instance", str(instance),
            "--kind", kind, "--device-id", "0",
            "--utils-dir", os.path.join(TOP, "backends", "python")],
            str(tmp / ("%s.log" % model)))
        self.peer = self.ready = self.compute_ns = None

    def wait_ready(self, timeout=30):
        """READY, the first message an instance sends (ok = 0: failed)."""
        assert self.sock.poll(timeout * 1000), \
            "no READY within %d s" % timeout
        self.peer, frame = self.sock.recv_multipart()
        self.ready = w.decode(frame, w.READY)
        assert self.peer == b"i%d" % self.pid, self.peer

    def send_batch(self, batch_id, requests):
        """requests: [header frame + tensor frames] per request."""
        frames = [w.execute(batch_id, len(requests))]
        for req in requests:
            frames += req
        self.sock.send_multipart([self.peer] + frames)

    def execute(self, requests, batch_id=None, timeout=30):
        """requests: [dict(inputs=[(name, datatype, ndarray)], outputs=...,
        request_id=..., params=...)].  Returns, per request,
        ("reply", request_id, {name: (datatype, ndarray)}) or
        ("error", code, message)."""
        batch_id = batch_id if batch_id is not None else self.next_id
        ids, frames = [], []
        for req in requests:
            self.next_id += 1
            ids.append(self.next_id)
            frames.append(w.infer_arrays(self.next_id, self.model, **req))
        self.send_batch(batch_id, frames)
        return self.read_reply(batch_id, ids, timeout)

    def read_reply(self, batch_id, ids, timeout=30):
        assert self.sock.poll(timeout * 1000), \
            "no EXECUTE_REPLY within %d s" % timeout
        frames = self.sock.recv_multipart(copy=False)
        assert frames[0].bytes == self.peer
        # split_batch checks each tensor frame against its byte_size and
        # that no frame is left over
        head, items = w.split_batch([f.buffer for f in frames[1:]],
                                    w.EXECUTE_REPLY)
        assert head["id"] == batch_id, (head, batch_id)
        assert head["count"] == len(ids), (head, len(ids))
        # the instance times every batch it runs (input, infer, output)
        assert head["compute_ns"] is not None, "no compute timings"
        self.compute_ns = head["compute_ns"]
        out = []
        for want_id, m in zip(ids, items):
            assert m["id"] == want_id, (m["id"], want_id)
            if m["kind"] == w.ERROR:
                out.append(("error", m["code"], m["message"]))
                continue
            assert m["model"] == self.model and m["version"] == "1", m
            outputs = {}
            for (name, dt, dims, _), data in zip(m["outputs"], m["frames"]):
                outputs[name] = (dt, w.tensor_array(dt, dims, data))
            out.append(("reply", m["request_id"], outputs))
        return out

    def stop(self, timeout=10):
        rc = super().stop(timeout=timeout)
        self.sock.close()
        self.ctx.term()
        return rc


@pytest.fixture
def start(tmp_path):
    """start(repository, model, **kw) -> an Instance that has sent READY,
    stopped by pid when the test ends."""
    started = []

    def start(repository, model, **kw):
        d = tmp_path / str(len(started))
        d.mkdir()
        inst = Instance(d, repository, model, **kw)
        started.append(inst)
        inst.wait_ready()
        return inst

    yield start
    for inst in started:
        if not inst.sock.closed:
            inst.stop()


def test_simple(start):
    inst = start(CONF_MODELS, "simple")
    assert inst.ready["ok"] == 1, inst.ready
    assert inst.ready["model"] == "simple" and inst.ready["version"] == 1
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.int32)
    c = np.arange(32, dtype=np.int32).reshape(2, 16)
    res = inst.execute([
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

    # the batch is handed over as it came: shapes may differ per request
    res = inst.execute([
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
    good = w.infer_arrays(2, "simple", inputs)
    bad = w.infer_arrays(3, "simple", inputs)
    bad[2] = bad[2][:-4]            # INPUT1's frame shorter than byte_size
    inst.send_batch(1, [good, bad])
    res = inst.read_reply(1, [2, 3])
    assert res[0][0] == "reply", res[0]
    assert res[1][0] == "error" and res[1][1] == w.INVALID_ARG, res[1]
    assert "byte_size" in res[1][2], res[1]
    assert inst.stop() == 0


def test_fail_model(start):
    inst = start(TEST_MODELS, "fail_model")
    assert inst.ready["ok"] == 1, inst.ready
    x = np.ones((1, 4), dtype=np.float32)
    res = inst.execute([dict(inputs=[("INPUT0", "FP32", x)])] * 2)
    for r in res:
        assert r[0] == "error" and r[1] == w.INTERNAL, r
        assert "fail_model always fails" in r[2], r
        assert "fail_model_0_0" in r[2], r
    assert inst.stop() == 0


def test_error_model(start):
    inst = start(TEST_MODELS, "error_model")
    x = np.ones((1, 4), dtype=np.float32)
    res = inst.execute([dict(inputs=[("INPUT0", "FP32", x)])] * 3)
    assert res == [("error", w.INVALID_ARG, "bad thing")] * 3, res
    assert inst.stop() == 0


def test_init_fail(start):
    inst = start(TEST_MODELS, "init_fail")
    assert inst.ready["ok"] == 0, inst.ready
    assert "init_fail refuses to initialize" in inst.ready["message"], \
        inst.ready
    assert inst.proc.wait(10) == 1


def test_missing_model(start):
    inst = start(TEST_MODELS, "no_such_model")
    assert inst.ready["ok"] == 0 and \
        "config.pbtxt" in inst.ready["message"], inst.ready


def test_all_types(start):
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
    res = inst.execute([dict(inputs=inputs), dict(inputs=inputs[:1])])
    assert res[0][0] == "reply", res[0]
    outs = res[0][2]
    assert len(outs) == len(inputs), outs.keys()
    for name, dt, arr in inputs:
        odt, out = outs["OUT_" + dt]
        assert odt == dt, (odt, dt)
        assert out.shape == arr.shape and (out == arr).all(), (dt, out, arr)
    assert list(res[1][2]) == ["OUT_BOOL"], res[1]

    # empty tensors and 0-d tensors
    res = inst.execute([dict(inputs=[
        ("IN_FP32", "FP32", np.zeros((1, 0), np.float32)),
        ("IN_BYTES", "BYTES", np.zeros((1, 0), np.object_)),
        ("IN_INT8", "INT8", np.array(5, np.int8))])])
    outs = res[0][2]
    assert outs["OUT_FP32"][1].shape == (1, 0), outs
    assert outs["OUT_BYTES"][1].shape == (1, 0), outs
    assert outs["OUT_INT8"][1].shape == () and outs["OUT_INT8"][1] == 5, outs
    assert inst.stop() == 0


def test_args_echo(start):
    inst = start(TEST_MODELS, "args_echo", instance=0, kind="KIND_GPU")
    res = inst.execute([dict(inputs=[("INPUT0", "FP32",
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


def test_text_upper(start):
    inst = start(CONF_MODELS, "text_upper")
    text = np.array([[b"hello", "w\xf6rld".encode()]], dtype=np.object_)
    opts = np.array([[b'{"reverse": true}']], dtype=np.object_)
    res = inst.execute([
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


def test_slow_model_gets_the_batch_in_one_execute(start):
    inst = start(TEST_MODELS, "slow_model")
    x = np.arange(4, dtype=np.float32).reshape(1, 4)
    t0 = time.monotonic()
    res = inst.execute([dict(inputs=[("INPUT0", "FP32", x)],
                             params={"a": True, "b": 7, "c": 0.5,
                                     "d": "s"})] * 4)
    took = time.monotonic() - t0
    assert all(r[0] == "reply" and (r[2]["OUTPUT0"][1] == x).all()
               for r in res), res
    assert 0.1 <= took < 1.0, took      # one execute() for the batch
    # compute_infer is execute() (it sleeps 100 ms), not the other phases
    cin, cinfer, cout = inst.compute_ns
    assert 0.1e9 <= cinfer < took * 1e9, inst.compute_ns
    assert cin < cinfer and cout < cinfer, inst.compute_ns
    t0 = time.monotonic()
    assert inst.stop() == 0
    assert time.monotonic() - t0 < 2


def test_bad_responses(start):
    inst = start(TEST_MODELS, "bad_responses")
    x = np.ones((1, 4), dtype=np.float32)
    ok = dict(inputs=[("INPUT0", "FP32", x)])
    res = inst.execute([ok, dict(ok, params={"mode": "dims"}),
                        dict(ok, params={"mode": "type"}), ok])
    assert res[0][0] == "reply" and res[3][0] == "reply", res
    assert res[1][0] == "error" and res[1][1] == w.INTERNAL, res[1]
    assert "dimensions" in res[1][2], res[1]
    assert res[2][0] == "error" and "InferenceResponse" in res[2][2], res[2]
    res = inst.execute([ok, dict(ok, params={"mode": "count"})])
    for r in res:
        assert r[0] == "error" and r[1] == w.INTERNAL, r
        assert "2 requests, 1 responses" in r[2], r
    assert inst.stop() == 0
