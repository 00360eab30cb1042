#!/usr/bin/env python3
"""A stand-in kserve-worker for testing the nginx module by hand.

Binds a ROUTER on the given endpoint, answers INDEX with a fixed model
repository (frames packed by ksv_wire.py, per docs/protocol.md) and INFER by
computing the toy models below in Python.  Not a test itself: it lets
the module be exercised before (or without) the real worker.

    fake_worker.py ipc:///tmp/kserve.sock

Models: simple (INT32 add/sub, max_batch_size 8), identity_fp32,
text_upper (BYTES), all_types (every datatype, identity), error_model
(answers ERROR INVALID_ARG), slow (never answers), delay (identity,
answered after 1.5 s), loading (no ready version), garbage (answers a
malformed INFER_REPLY).  SIGUSR1 toggles an
extra model "late" and bumps the generation, to check index refresh.
"""

import os
import random
import signal
import struct
import sys
import time

import zmq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import ksv_wire as w  # noqa: E402


def model(name, max_batch, inputs, outputs, versions=((1, 2, ""),)):
    """inputs, outputs: [(name, datatype, dims[, optional])]"""
    cfg = w.config(name, backend="python", default_model_filename="model.py",
                   max_batch_size=max_batch,
                   inputs=[w.io_config(*t) for t in inputs],
                   outputs=[w.io_config(*t) for t in outputs],
                   groups=[w.group_config(name + "_0", 1, w.KIND_CPU)])
    return cfg, list(versions)


def models(late):
    ms = [
        model("simple", 8, [("INPUT0", "INT32", [16]),
                            ("INPUT1", "INT32", [16])],
              [("OUTPUT0", "INT32", [16]), ("OUTPUT1", "INT32", [16])]),
        model("identity_fp32", 8, [("INPUT0", "FP32", [-1])],
              [("OUTPUT0", "FP32", [-1])]),
        model("text_upper", 8, [("INPUT0", "BYTES", [-1])],
              [("OUTPUT0", "BYTES", [-1])]),
        model("all_types", 8,
              [("INPUT_" + t, t, [-1], 1) for t in w.TYPES[1:]],
              [("OUTPUT_" + t, t, [-1]) for t in w.TYPES[1:]]),
        model("error_model", 0, [("INPUT0", "FP32", [4])],
              [("OUTPUT0", "FP32", [4])]),
        model("slow", 0, [("INPUT0", "FP32", [1])],
              [("OUTPUT0", "FP32", [1])]),
        model("delay", 0, [("INPUT0", "FP32", [1])],
              [("OUTPUT0", "FP32", [1])]),
        model("garbage", 0, [("INPUT0", "FP32", [1])],
              [("OUTPUT0", "FP32", [1])]),
        model("loading", 0, [("INPUT0", "FP32", [1])],
              [("OUTPUT0", "FP32", [1])],
              versions=((1, 1, "still loading"),)),
    ]
    if late:
        ms.append(model("late", 0, [("INPUT0", "FP32", [1])],
                        [("OUTPUT0", "FP32", [1])]))
    return ms


def reply(rid, m, outputs):
    """outputs: list of (name, dtype, dims, bytes)"""
    want = [o[0] for o in m["outputs"]]
    if want:
        outputs = [o for o in outputs if o[0] in want]
    head = w.infer_reply(rid, m["model"], m["version"] or "1",
                         m["request_id"],
                         [(name, dt, d, len(data))
                          for name, dt, d, data in outputs])
    return [head] + [o[3] for o in outputs]


def error(rid, code, message):
    return [w.error(rid, code, message)]


def infer(rid, m, frames):
    name = m["model"]
    ins = {t[0]: (t, f) for t, f in zip(m["inputs"], frames)}
    if name == "simple":
        (t0, a), (_, b) = ins["INPUT0"], ins["INPUT1"]
        n = len(a) // 4
        av, bv = struct.unpack("<%di" % n, a), struct.unpack("<%di" % n, b)
        add = struct.pack("<%di" % n, *[(x + y + 2**31) % 2**32 - 2**31
                                        for x, y in zip(av, bv)])
        sub = struct.pack("<%di" % n, *[(x - y + 2**31) % 2**32 - 2**31
                                        for x, y in zip(av, bv)])
        return reply(rid, m, [("OUTPUT0", "INT32", t0[2], add),
                              ("OUTPUT1", "INT32", t0[2], sub)])
    if name in ("identity_fp32", "all_types", "delay"):
        outs = [(t[0].replace("INPUT", "OUTPUT"), t[1], t[2], f)
                for t, f in ins.values()]
        return reply(rid, m, outs)
    if name == "text_upper":
        t, f = ins["INPUT0"]
        out, pos = b"", 0
        while pos < len(f):
            n = struct.unpack_from("<I", f, pos)[0]
            out += struct.pack("<I", n) + f[pos + 4:pos + 4 + n].upper()
            pos += 4 + n
        return reply(rid, m, [("OUTPUT0", "BYTES", t[2], out)])
    if name == "error_model":
        return error(rid, 3, "bad thing happened in error_model")
    if name == "garbage":
        return [w.prefix(w.INFER_REPLY, rid) + b"\x05\x00ab"]
    if name == "slow":
        return None
    return error(rid, 2, "fake worker has no model '%s'" % name)


def main():
    endpoint = sys.argv[1] if len(sys.argv) > 1 else "ipc:///tmp/kserve.sock"
    ctx = zmq.Context()
    sock = ctx.socket(zmq.ROUTER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.bind(endpoint)

    state = {"gen": random.getrandbits(63), "late": False}

    def toggle(*_):
        state["late"] = not state["late"]
        state["gen"] += 1

    signal.signal(signal.SIGUSR1, toggle)

    delayed = []                      # (due, frames), for model "delay"
    poller = zmq.Poller()
    poller.register(sock, zmq.POLLIN)

    while True:
        now = time.monotonic()
        for item in [d for d in delayed if d[0] <= now]:
            delayed.remove(item)
            sock.send_multipart(item[1])
        try:
            if not poller.poll(50):
                continue
            parts = sock.recv_multipart()
        except zmq.ZMQError:
            continue
        ident, head, frames = parts[0], parts[1], parts[2:]
        # lenient, unlike the real worker: no magic or version check
        kind, rid = w.Reader(head).prefix(strict=False)
        if kind in (w.INDEX, w.INFER):
            m = w.decode(head, strict=False, errors="replace")
        if kind == w.INDEX:
            if m["known"] == state["gen"]:
                out = [w.index_reply(rid, state["gen"])]
            else:
                out = [w.index_reply(rid, state["gen"],
                                     models(state["late"]))]
        elif kind == w.INFER:
            sys.stderr.write("INFER %d %s v=%r id=%r timeout=%d flags=%d "
                             "inputs=%r outputs=%r params=%r\n" % (
                                 rid, m["model"], m["version"],
                                 m["request_id"], m["timeout_ms"],
                                 m["flags"],
                                 [(i[0], w.DT[i[1]], i[2], i[3])
                                  for i in m["inputs"]],
                                 m["outputs"],
                                 {k: int(v) if isinstance(v, bool) else v
                                  for k, v in m["params"].items()}))
            sys.stderr.flush()
            out = infer(rid, m, frames)
            if out is None:
                continue
            if m["model"] == "delay":
                delayed.append((time.monotonic() + 1.5, [ident] + out))
                continue
        else:
            out = error(rid, 3, "unexpected kind %d" % kind)
        sock.send_multipart([ident] + out)


if __name__ == "__main__":
    main()
