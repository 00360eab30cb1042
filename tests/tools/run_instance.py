#!/usr/bin/python3
"""Drives kserve-python-instance alone, playing the daemon's part.

Binds a ROUTER on an ipc socket, starts the instance binary against a
model, waits for READY, sends EXECUTE batches packed by hand exactly as
common/ksv_proto.h lays them out, and checks the EXECUTE_REPLY.  Run with
Debian's Python (numpy, python3-zmq):

    /usr/bin/python3 tests/tools/run_instance.py [--binary build/kserve-python-instance]

Exit status 0 when every check passed.  The Instance class is reusable
from other tests (import run_instance).
"""

import argparse
import json
import os
import signal
import struct
import subprocess
import sys
import tempfile
import time

import numpy as np
import zmq

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

# ---- the wire format (common/ksv_proto.h) -----------------------------------

MAGIC, VERSION = 0x4B56, 1
INFER, INFER_REPLY, ERROR, EXECUTE, EXECUTE_REPLY, READY = 1, 2, 3, 6, 7, 8
PARAM_BOOL, PARAM_INT, PARAM_STRING, PARAM_DOUBLE = 1, 2, 3, 4

DATATYPES = ["INVALID", "BOOL", "UINT8", "UINT16", "UINT32", "UINT64",
             "INT8", "INT16", "INT32", "INT64", "FP16", "FP32", "FP64",
             "BYTES", "BF16"]
NUMPY = {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16,
         "UINT32": np.uint32, "UINT64": np.uint64, "INT8": np.int8,
         "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
         "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
         "BYTES": np.object_}

ERR_INTERNAL, ERR_INVALID_ARG = 1, 3


def pack_str(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<H", len(b)) + b


def pack_prefix(kind, msg_id):
    return struct.pack("<HBBIQ", MAGIC, VERSION, kind, 0, msg_id)


def pack_tensor(name, datatype, dims, byte_size):
    return (pack_str(name) + struct.pack("<B", DATATYPES.index(datatype))
            + struct.pack("<B", len(dims)) + struct.pack("<%dq" % len(dims), *dims)
            + struct.pack("<Q", byte_size))


def serialize_bytes(arr):
    out = []
    for x in arr.ravel():
        b = x if isinstance(x, bytes) else str(x).encode()
        out.append(struct.pack("<I", len(b)) + b)
    return b"".join(out)


def tensor_bytes(datatype, arr):
    if datatype == "BYTES":
        return serialize_bytes(arr)
    return np.ascontiguousarray(arr, dtype=NUMPY[datatype]).tobytes()


def pack_infer(msg_id, model, inputs, outputs=(), request_id="", params=None,
               timeout_ms=0):
    """inputs: [(name, datatype, ndarray)] -> (header frame, data frames)."""
    frames = []
    body = (pack_prefix(INFER, msg_id) + pack_str(model) + pack_str("")
            + pack_str(request_id) + struct.pack("<II", timeout_ms, 0)
            + struct.pack("<I", len(inputs)))
    for name, datatype, arr in inputs:
        data = tensor_bytes(datatype, arr)
        body += pack_tensor(name, datatype, arr.shape, len(data))
        frames.append(data)
    body += struct.pack("<I", len(outputs))
    for name in outputs:
        body += pack_str(name) + struct.pack("<I", 0)
    params = params or {}
    body += struct.pack("<I", len(params))
    for key, value in params.items():
        body += pack_str(key)
        if isinstance(value, bool):
            body += struct.pack("<Bq", PARAM_BOOL, int(value))
        elif isinstance(value, int):
            body += struct.pack("<Bq", PARAM_INT, value)
        elif isinstance(value, float):
            body += struct.pack("<Bd", PARAM_DOUBLE, value)
        else:
            body += struct.pack("<B", PARAM_STRING) + pack_str(value)
    return [body] + frames


class Reader:
    def __init__(self, buf):
        self.buf, self.off = buf, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.buf, self.off)
        self.off += struct.calcsize("<" + fmt)
        return v if len(v) > 1 else v[0]

    def str(self):
        n = self.take("H")
        s = bytes(self.buf[self.off:self.off + n]).decode()
        self.off += n
        return s

    def prefix(self):
        magic, version, kind, _, msg_id = self.take("HBBIQ")
        assert magic == MAGIC and version == VERSION, (magic, version)
        return kind, msg_id

    def tensors(self):
        out = []
        for _ in range(self.take("I")):
            name = self.str()
            datatype = DATATYPES[self.take("B")]
            ndims = self.take("B")
            dims = list(struct.unpack_from("<%dq" % ndims, self.buf, self.off))
            self.off += 8 * ndims
            out.append((name, datatype, dims, self.take("Q")))
        return out


def deserialize_bytes(data, count):
    items, off = [], 0
    for _ in range(count):
        (n,) = struct.unpack_from("<I", data, off)
        items.append(bytes(data[off + 4:off + 4 + n]))
        off += 4 + n
    assert off == len(data)
    arr = np.empty(count, dtype=np.object_)
    arr[:] = items
    return arr


# ---- one instance process ---------------------------------------------------

class Instance:
    def __init__(self, binary, repository, model, version="1", instance=0,
                 kind="KIND_CPU"):
        self.tmp = tempfile.TemporaryDirectory(prefix="ksv-inst-")
        self.ctx = zmq.Context()
        self.sock = self.ctx.socket(zmq.ROUTER)
        self.sock.linger = 0
        self.sock.bind("ipc://%s/instances.sock" % self.tmp.name)
        self.model = model
        self.next_id = 1
        self.proc = subprocess.Popen([
            binary, "--connect", "ipc://%s/instances.sock" % self.tmp.name,
            "--repository", repository, "--model", model, "--version", version,
            "--instance", str(instance), "--kind", kind, "--device-id", "0",
            "--utils-dir", os.path.join(ROOT, "backends", "python")])
        self.peer, self.ready = self._wait_ready()

    def _wait_ready(self, timeout=30):
        if not self.sock.poll(timeout * 1000):
            raise AssertionError("no READY within %d s" % timeout)
        peer, frame = self.sock.recv_multipart()
        r = Reader(frame)
        kind, _ = r.prefix()
        assert kind == READY, kind
        ready = dict(model=r.str(), version=r.take("q"), instance=r.take("I"),
                     ok=r.take("B"), message=r.str())
        assert peer == b"i%d" % self.proc.pid, peer
        return peer, ready

    def execute(self, requests, batch_id=None, timeout=30):
        """requests: [dict(inputs=..., outputs=..., request_id=..., params=...)]
        Returns [("reply", request_id, {name: ndarray}) | ("error", code, msg)]."""
        batch_id = batch_id if batch_id is not None else self.next_id
        frames = [pack_prefix(EXECUTE, batch_id) + struct.pack("<I", len(requests))]
        ids = []
        for req in requests:
            self.next_id += 1
            ids.append(self.next_id)
            frames += pack_infer(self.next_id, self.model, **req)
        self.sock.send_multipart([self.peer] + frames)
        return self.read_reply(batch_id, ids, timeout)

    def read_reply(self, batch_id, ids, timeout=30):
        if not self.sock.poll(timeout * 1000):
            raise AssertionError("no EXECUTE_REPLY within %d s" % timeout)
        frames = self.sock.recv_multipart(copy=False)
        assert frames[0].bytes == self.peer
        frames = [f.buffer for f in frames[1:]]
        r = Reader(frames[0])
        kind, msg_id = r.prefix()
        assert kind == EXECUTE_REPLY and msg_id == batch_id, (kind, msg_id)
        count = r.take("I")
        assert count == len(ids), (count, len(ids))
        out, idx = [], 1
        for want_id in ids:
            r = Reader(frames[idx])
            kind, msg_id = r.prefix()
            assert msg_id == want_id, (msg_id, want_id)
            idx += 1
            if kind == ERROR:
                out.append(("error", r.take("H"), r.str()))
                continue
            assert kind == INFER_REPLY, kind
            model, version, request_id = r.str(), r.str(), r.str()
            assert model == self.model and version == "1", (model, version)
            outputs = {}
            for name, datatype, dims, size in r.tensors():
                data = frames[idx]
                idx += 1
                assert len(data) == size, (name, len(data), size)
                count = int(np.prod(dims)) if dims else 1
                if datatype == "BYTES":
                    arr = deserialize_bytes(data, count)
                else:
                    arr = np.frombuffer(data, dtype=NUMPY[datatype])
                outputs[name] = (datatype, arr.reshape(dims))
            out.append(("reply", request_id, outputs))
        assert idx == len(frames), (idx, len(frames))
        return out

    def stop(self, timeout=10):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait()
        self.sock.close()
        self.ctx.term()
        self.tmp.cleanup()
        return rc


# ---- checks -----------------------------------------------------------------

def check_simple(binary):
    inst = Instance(binary, os.path.join(ROOT, "conf", "models"), "simple")
    try:
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
    finally:
        rc = inst.stop()
    assert rc == 0, "simple exited %s after SIGTERM" % rc


def check_byte_size_mismatch(binary):
    inst = Instance(binary, os.path.join(ROOT, "conf", "models"), "simple")
    try:
        a = np.arange(16, dtype=np.int32).reshape(1, 16)
        good = pack_infer(2, "simple", [("INPUT0", "INT32", a), ("INPUT1", "INT32", a)])
        bad = pack_infer(3, "simple", [("INPUT0", "INT32", a), ("INPUT1", "INT32", a)])
        bad[2] = bad[2][:-4]           # INPUT0 frame shorter than byte_size
        frames = [pack_prefix(EXECUTE, 1) + struct.pack("<I", 2)] + good + bad
        inst.sock.send_multipart([inst.peer] + frames)
        res = inst.read_reply(1, [2, 3])
        assert res[0][0] == "reply", res[0]
        assert res[1][0] == "error" and res[1][1] == ERR_INVALID_ARG, res[1]
        assert "byte_size" in res[1][2], res[1]
    finally:
        assert inst.stop() == 0


def check_fail_model(binary):
    inst = Instance(binary, os.path.join(ROOT, "tests", "models"), "fail_model")
    try:
        assert inst.ready["ok"] == 1, inst.ready
        x = np.ones((1, 4), dtype=np.float32)
        res = inst.execute([dict(inputs=[("INPUT0", "FP32", x)])] * 2)
        for r in res:
            assert r[0] == "error" and r[1] == ERR_INTERNAL, r
            assert "fail_model always fails" in r[2], r
            assert "fail_model_0_0" in r[2], r
    finally:
        assert inst.stop() == 0


def check_error_model(binary):
    inst = Instance(binary, os.path.join(ROOT, "tests", "models"), "error_model")
    try:
        x = np.ones((1, 4), dtype=np.float32)
        res = inst.execute([dict(inputs=[("INPUT0", "FP32", x)])] * 3)
        assert res == [("error", ERR_INVALID_ARG, "bad thing")] * 3, res
    finally:
        assert inst.stop() == 0


def check_init_fail(binary):
    inst = Instance(binary, os.path.join(ROOT, "tests", "models"), "init_fail")
    try:
        assert inst.ready["ok"] == 0, inst.ready
        assert "init_fail refuses to initialize" in inst.ready["message"], inst.ready
        assert inst.proc.wait(10) == 1
    finally:
        inst.stop()


def check_missing_model(binary):
    inst = Instance(binary, os.path.join(ROOT, "tests", "models"), "no_such_model")
    try:
        assert inst.ready["ok"] == 0 and "config.pbtxt" in inst.ready["message"], inst.ready
    finally:
        inst.stop()


def check_all_types(binary):
    inst = Instance(binary, os.path.join(ROOT, "tests", "models"), "all_types")
    try:
        rng = np.random.default_rng(1)
        inputs = []
        for dt, npt in NUMPY.items():
            if dt == "BOOL":
                arr = rng.integers(0, 2, (2, 3)).astype(np.bool_)
            elif dt == "BYTES":
                arr = np.array([[b"a", b"", b"\x00zz\xff"], [b"x" * 100, b"y", b"z"]],
                               dtype=np.object_)
            else:
                arr = (rng.random((2, 3)) * 100).astype(npt)
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
    finally:
        assert inst.stop() == 0


def check_args_echo(binary):
    inst = Instance(binary, os.path.join(ROOT, "tests", "models"), "args_echo",
                    instance=0, kind="KIND_GPU")
    try:
        res = inst.execute([dict(inputs=[("INPUT0", "FP32", np.zeros(1, np.float32))])])
        assert res[0][0] == "reply", res[0]
        args = json.loads(res[0][2]["ARGS"][1][0])
        assert set(args) == {"model_config", "model_instance_kind",
                             "model_instance_name", "model_instance_device_id",
                             "model_repository", "model_version", "model_name"}, args
        assert args["model_instance_kind"] == "GPU", args
        assert args["model_instance_name"] == "args_echo_0_0", args
        assert args["model_instance_device_id"] == "0"
        assert args["model_version"] == "1" and args["model_name"] == "args_echo"
        assert args["model_repository"] == os.path.join(ROOT, "tests", "models", "args_echo")
        config = json.loads(args["model_config"])
        assert config["name"] == "args_echo" and config["output"][0]["name"] == "ARGS"
    finally:
        assert inst.stop() == 0


def check_text_upper(binary):
    inst = Instance(binary, os.path.join(ROOT, "conf", "models"), "text_upper")
    try:
        text = np.array([[b"hello", "w\xf6rld".encode()]], dtype=np.object_)
        opts = np.array([[b'{"reverse": true}']], dtype=np.object_)
        res = inst.execute([
            dict(inputs=[("INPUT0", "BYTES", text)]),
            dict(inputs=[("INPUT0", "BYTES", text), ("parameters", "BYTES", opts)]),
            dict(inputs=[("INPUT0", "BYTES", text), ("parameters", "BYTES",
                          np.array([[b"{nope"]], dtype=np.object_))]),
        ])
        out = res[0][2]["OUTPUT0"][1]
        assert out.tolist() == [[b"HELLO", "W\xd6RLD".encode()]], out
        out = res[1][2]["OUTPUT0"][1]
        assert out.tolist() == [[b"OLLEH", "DLR\xd6W".encode()]], out
        assert res[2][0] == "error" and res[2][1] == ERR_INVALID_ARG, res[2]
    finally:
        assert inst.stop() == 0


def check_slow_model_params(binary):
    inst = Instance(binary, os.path.join(ROOT, "tests", "models"), "slow_model")
    try:
        x = np.arange(4, dtype=np.float32).reshape(1, 4)
        t0 = time.monotonic()
        res = inst.execute([dict(inputs=[("INPUT0", "FP32", x)],
                                 params={"a": True, "b": 7, "c": 0.5, "d": "s"})] * 4)
        took = time.monotonic() - t0
        assert all(r[0] == "reply" and (r[2]["OUTPUT0"][1] == x).all() for r in res), res
        assert 0.1 <= took < 1.0, took      # one execute() for the batch
    finally:
        t0 = time.monotonic()
        assert inst.stop() == 0
        assert time.monotonic() - t0 < 2


def check_bad_responses(binary):
    inst = Instance(binary, os.path.join(ROOT, "tests", "models"), "bad_responses")
    try:
        x = np.ones((1, 4), dtype=np.float32)
        ok = dict(inputs=[("INPUT0", "FP32", x)])
        res = inst.execute([ok, dict(ok, params={"mode": "dims"}),
                            dict(ok, params={"mode": "type"}), ok])
        assert res[0][0] == "reply" and res[3][0] == "reply", res
        assert res[1][0] == "error" and res[1][1] == ERR_INTERNAL, res[1]
        assert "dimensions" in res[1][2], res[1]
        assert res[2][0] == "error" and "InferenceResponse" in res[2][2], res[2]
        res = inst.execute([ok, dict(ok, params={"mode": "count"})])
        for r in res:
            assert r[0] == "error" and r[1] == ERR_INTERNAL, r
            assert "2 requests, 1 responses" in r[2], r
    finally:
        assert inst.stop() == 0


CHECKS = [check_simple, check_byte_size_mismatch, check_fail_model,
          check_error_model, check_init_fail, check_missing_model,
          check_all_types, check_args_echo, check_text_upper,
          check_slow_model_params, check_bad_responses]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "kserve-python-instance"))
    ap.add_argument("-k", default="", help="run checks whose name contains this")
    args = ap.parse_args()
    failed = 0
    for check in CHECKS:
        if args.k not in check.__name__:
            continue
        try:
            check(args.binary)
            print("ok   %s" % check.__name__)
        except Exception as e:                  # report and go on
            failed += 1
            print("FAIL %s: %r" % (check.__name__, e))
            import traceback
            traceback.print_exc()
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
