#!/usr/bin/env python3
"""A stand-in kserve-worker for testing the nginx module by hand.

Binds a ROUTER on the given endpoint, answers INDEX with a fixed model
repository (hand-packed frames, per docs/protocol.md) and INFER by
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

import random
import signal
import struct
import sys
import time

import zmq

MAGIC, VERSION = 0x4B56, 1
INFER, INFER_REPLY, ERROR, INDEX, INDEX_REPLY = 1, 2, 3, 4, 5

TYPES = ["INVALID", "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8",
         "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16"]
DT = {name: i for i, name in enumerate(TYPES)}


def s(text):
    b = text.encode() if isinstance(text, str) else text
    return struct.pack("<H", len(b)) + b


def dims(d):
    return struct.pack("<B", len(d)) + b"".join(struct.pack("<q", x)
                                                 for x in d)


def prefix(kind, rid):
    return struct.pack("<HBBIQ", MAGIC, VERSION, kind, 0, rid)


def io(name, dt, d, optional=0):
    return s(name) + struct.pack("<BBB", DT[dt], optional, 0) + dims(d) + \
        struct.pack("<B", 0) + dims([])


def config(name, max_batch, inputs, outputs):
    b = s(name) + s("") + s("python") + s("model.py")
    b += struct.pack("<I", max_batch)
    b += struct.pack("<I", len(inputs)) + b"".join(io(*t) for t in inputs)
    b += struct.pack("<I", len(outputs)) + b"".join(io(*t) for t in outputs)
    b += struct.pack("<I", 1) + s(name + "_0") + struct.pack("<IBI", 1, 2, 0)
    b += struct.pack("<BII", 0, 1, 0)                 # version policy
    b += struct.pack("<BBI", 0, 0, 0)                 # dynamic batching
    b += struct.pack("<QII", 0, 0, 0)
    b += struct.pack("<BBQI", 0, 0, 0, 0)
    b += struct.pack("<I", 0)                         # parameters
    return b


def model(name, max_batch, inputs, outputs, versions=((1, 2, ""),)):
    b = config(name, max_batch, inputs, outputs)
    b += struct.pack("<I", len(versions))
    for v, state, reason in versions:
        b += struct.pack("<qB", v, state) + s(reason)
    return b


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
              [("INPUT_" + t, t, [-1], 1) for t in TYPES[1:]],
              [("OUTPUT_" + t, t, [-1]) for t in TYPES[1:]]),
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


class Reader:
    def __init__(self, buf):
        self.buf, self.pos = buf, 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return v[0] if len(v) == 1 else v

    def str(self):
        n = self.take("H")
        v = self.buf[self.pos:self.pos + n]
        self.pos += n
        return v.decode(errors="replace")

    def dims(self):
        return [self.take("q") for _ in range(self.take("B"))]


def decode_infer(buf):
    r = Reader(buf)
    r.pos = 16
    m = {"model": r.str(), "version": r.str(), "id": r.str(),
         "timeout_ms": r.take("I"), "flags": r.take("I"), "inputs": [],
         "outputs": [], "params": {}}
    for _ in range(r.take("I")):
        m["inputs"].append((r.str(), r.take("B"), r.dims(), r.take("Q")))
    for _ in range(r.take("I")):
        m["outputs"].append((r.str(), r.take("I")))
    for _ in range(r.take("I")):
        key, kind = r.str(), r.take("B")
        if kind in (1, 2):
            m["params"][key] = r.take("q")
        elif kind == 4:
            m["params"][key] = r.take("d")
        else:
            m["params"][key] = r.str()
    return m


def reply(rid, m, outputs):
    """outputs: list of (name, dtype, dims, bytes)"""
    want = [o[0] for o in m["outputs"]]
    if want:
        outputs = [o for o in outputs if o[0] in want]
    head = prefix(INFER_REPLY, rid) + s(m["model"]) + s(m["version"] or "1")
    head += s(m["id"]) + struct.pack("<I", len(outputs))
    for name, dt, d, data in outputs:
        head += s(name) + struct.pack("<B", DT[dt]) + dims(d)
        head += struct.pack("<Q", len(data))
    head += struct.pack("<I", 0)
    return [head] + [o[3] for o in outputs]


def error(rid, code, message):
    return [prefix(ERROR, rid) + struct.pack("<H", code) + s(message)]


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
        outs = [(t[0].replace("INPUT", "OUTPUT"), TYPES[t[1]], t[2], f)
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
        return [prefix(INFER_REPLY, rid) + b"\x05\x00ab"]
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
        magic, version, kind, _, rid = struct.unpack_from("<HBBIQ", head)
        if kind == INDEX:
            known = struct.unpack_from("<Q", head, 16)[0]
            if known == state["gen"]:
                out = [prefix(INDEX_REPLY, rid) +
                       struct.pack("<QB", state["gen"], 0)]
            else:
                ms = models(state["late"])
                out = [prefix(INDEX_REPLY, rid) +
                       struct.pack("<QBI", state["gen"], 1, len(ms)) +
                       b"".join(ms)]
        elif kind == INFER:
            m = decode_infer(head)
            sys.stderr.write("INFER %d %s v=%r id=%r timeout=%d flags=%d "
                             "inputs=%r outputs=%r params=%r\n" % (
                                 rid, m["model"], m["version"], m["id"],
                                 m["timeout_ms"], m["flags"],
                                 [(i[0], i[1], i[2], i[3])
                                  for i in m["inputs"]],
                                 m["outputs"], m["params"]))
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
