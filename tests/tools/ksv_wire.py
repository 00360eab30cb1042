"""The module <-> worker <-> instance frames, packed by hand with struct.

A second, independent reading of common/ksv_proto.h: tests that speak
through this module check the C codec against the header's prose, not
against itself.  Only what the worker tests need is here.
"""

import struct

MAGIC = 0x4B56
VERSION = 1

INFER, INFER_REPLY, ERROR, INDEX, INDEX_REPLY, EXECUTE, EXECUTE_REPLY, READY = \
    range(1, 9)

# ksv_status.h
INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED = 1, 2, 3, 4, 5

# ksv_datatype.h
TYPES = ["INVALID", "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8",
         "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16"]
DT = {name: i for i, name in enumerate(TYPES)}

UNAVAILABLE_STATE, LOADING_STATE, READY_STATE = 0, 1, 2


def prefix(kind, id_, version=VERSION, magic=MAGIC):
    return struct.pack("<HBBIQ", magic, version, kind, 0, id_)


def pstr(s):
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<H", len(b)) + b


def pdims(dims):
    return struct.pack("<B", len(dims)) + b"".join(
        struct.pack("<q", d) for d in dims)


def ptensors(tensors):
    """tensors: [(name, datatype name, dims, byte_size)]"""
    out = struct.pack("<I", len(tensors))
    for name, dt, dims, size in tensors:
        out += pstr(name) + struct.pack("<B", DT[dt]) + pdims(dims) + \
            struct.pack("<Q", size)
    return out


def infer(id_, model, version="", inputs=(), request_id="", timeout_ms=0,
          outputs=()):
    return (prefix(INFER, id_) + pstr(model) + pstr(version) +
            pstr(request_id) + struct.pack("<II", timeout_ms, 0) +
            ptensors(inputs) + struct.pack("<I", len(outputs)) +
            b"".join(pstr(o) + struct.pack("<I", 0) for o in outputs) +
            struct.pack("<I", 0))


def infer_reply(id_, model, version, request_id, outputs):
    return (prefix(INFER_REPLY, id_) + pstr(model) + pstr(version) +
            pstr(request_id) + ptensors(outputs) + struct.pack("<I", 0))


def error(id_, code, message):
    return prefix(ERROR, id_) + struct.pack("<H", code) + pstr(message)


def index(id_, known):
    return prefix(INDEX, id_) + struct.pack("<Q", known)


def execute(kind, batch_id, count):
    return prefix(kind, batch_id) + struct.pack("<I", count)


def ready(model, version, instance, ok, message=""):
    return (prefix(READY, 0) + pstr(model) + struct.pack("<qIB", version,
                                                         instance, ok) +
            pstr(message))


class Reader:
    def __init__(self, buf):
        self.buf = bytes(buf)
        self.pos = 0

    def take(self, fmt):
        v = struct.unpack_from("<" + fmt, self.buf, self.pos)
        self.pos += struct.calcsize("<" + fmt)
        return v if len(v) > 1 else v[0]

    def str(self):
        n = self.take("H")
        s = self.buf[self.pos:self.pos + n].decode()
        self.pos += n
        return s

    def dims(self):
        return [self.take("q") for _ in range(self.take("B"))]

    def prefix(self):
        magic, version, kind, _, id_ = self.take("HBBIQ")
        assert magic == MAGIC and version == VERSION, (magic, version)
        return kind, id_

    def tensors(self):
        return [(self.str(), TYPES[self.take("B")], self.dims(),
                 self.take("Q")) for _ in range(self.take("I"))]

    def params(self):
        out = {}
        for _ in range(self.take("I")):
            key, t = self.str(), self.take("B")
            out[key] = self.str() if t == 3 else (
                self.take("d") if t == 4 else self.take("q"))
        return out


def decode_infer(frame):
    r = Reader(frame)
    kind, id_ = r.prefix()
    assert kind == INFER
    m = dict(id=id_, model=r.str(), version=r.str(), request_id=r.str())
    m["timeout_ms"], m["flags"] = r.take("II")
    m["inputs"] = r.tensors()
    m["outputs"] = [(r.str(), r.take("I")) for _ in range(r.take("I"))]
    m["params"] = r.params()
    return m


def decode_reply(frame):
    """INFER_REPLY or ERROR -> dict with kind, id and the fields."""
    r = Reader(frame)
    kind, id_ = r.prefix()
    if kind == ERROR:
        return dict(kind=kind, id=id_, code=r.take("H"), message=r.str())
    assert kind == INFER_REPLY, kind
    return dict(kind=kind, id=id_, model=r.str(), version=r.str(),
                request_id=r.str(), outputs=r.tensors(), params=r.params())


def _skip_model_config(r):
    cfg = dict(name=r.str(), platform=r.str(), backend=r.str(),
               default_model_filename=r.str(), max_batch_size=r.take("I"))
    for key in ("inputs", "outputs"):
        ios = []
        for _ in range(r.take("I")):
            name, dt = r.str(), TYPES[r.take("B")]
            r.take("BB")
            dims = r.dims()
            r.take("B")
            r.dims()
            ios.append((name, dt, dims))
        cfg[key] = ios
    groups = []
    for _ in range(r.take("I")):
        name, count, kind = r.str(), r.take("I"), r.take("B")
        gpus = [r.take("I") for _ in range(r.take("I"))]
        groups.append((name, count, kind, gpus))
    cfg["groups"] = groups
    r.take("BI")
    [r.take("q") for _ in range(r.take("I"))]
    r.take("BB")
    [r.take("I") for _ in range(r.take("I"))]
    r.take("QIIBBQI")
    cfg["parameters"] = {r.str(): r.str() for _ in range(r.take("I"))}
    return cfg


def decode_index_reply(frame):
    """-> (generation, full, {model: (config, [(version, state, reason)])})"""
    r = Reader(frame)
    kind, _ = r.prefix()
    assert kind == INDEX_REPLY, kind
    generation, full = r.take("QB")
    models = {}
    if full:
        for _ in range(r.take("I")):
            cfg = _skip_model_config(r)
            versions = [(r.take("q"), r.take("B"), r.str())
                        for _ in range(r.take("I"))]
            models[cfg["name"]] = (cfg, versions)
    return generation, full, models
