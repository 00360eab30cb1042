"""The module <-> worker <-> instance wire format, in Python, for tests.

The one Python reading of common/ksv_proto.h and docs/protocol.md: every
test and tool that speaks the protocol (tests/component, fake_instance.py)
packs and unpacks frames here, with struct, written from
the header's prose rather than bound to the C codec, so a test through
this module checks the C code against the document.

Encoders return one header frame (bytes); tensor frames travel beside it
as separate frames, exactly as on the wire.  Decoders take a header frame
(bytes, memoryview or zmq.Frame buffer) and return a dict with "kind" and
"id" plus that kind's fields; they raise WireError on anything the C
decoder would refuse (short frame, bad prefix, a count over its cap) and,
stricter than C, on trailing bytes, which no C encoder writes.

Tensor descriptors are tuples (name, datatype name, dims, byte_size);
parameters are a dict of bool / int / float / str.  Tensor contents
(numpy arrays, BYTES serialization) are at the end; numpy is imported
only when those are used, so the fake processes start quickly.
"""

import collections
import struct

MAGIC = 0x4B56
VERSION = 1
PREFIX_SIZE = 16

# ksv_msg_kind_t
INFER, INFER_REPLY, ERROR, INDEX, INDEX_REPLY, EXECUTE, EXECUTE_REPLY, \
    READY, STATS, STATS_REPLY, CANCEL = range(1, 12)
LOG, LOG_REPLY = 16, 17             # Triton's logging extension
KIND_NAMES = {INFER: "INFER", INFER_REPLY: "INFER_REPLY", ERROR: "ERROR",
              INDEX: "INDEX", INDEX_REPLY: "INDEX_REPLY", EXECUTE: "EXECUTE",
              EXECUTE_REPLY: "EXECUTE_REPLY", READY: "READY",
              STATS: "STATS", STATS_REPLY: "STATS_REPLY", CANCEL: "CANCEL",
              LOG: "LOG", LOG_REPLY: "LOG_REPLY"}

# INFER flags
INFER_ALL_BINARY = 0x1
INFER_TRACE = 0x2                   # the reply carries trace timestamps
TRACE_TIMES = ("queue_start", "compute_start", "compute_input_end",
               "compute_output_start", "compute_end", "request_end")

# KSV_MAX_*: a larger count is a decode error on both sides
MAX_DIMS = 16
MAX_TENSORS = 1024
MAX_PARAMS = 256
MAX_MODELS = 4096
MAX_BATCH_REQUESTS = 4096
MAX_LIST = 1024
MAX_STATS = 65536
MAX_STRING = 65535

# ksv_status_t (Triton's TRITONSERVER_Error_Code)
UNKNOWN, INTERNAL, NOT_FOUND, INVALID_ARG, UNAVAILABLE, UNSUPPORTED, \
    ALREADY_EXISTS, CANCELLED = range(8)

# ksv_datatype_t
TYPES = ["INVALID", "BOOL", "UINT8", "UINT16", "UINT32", "UINT64", "INT8",
         "INT16", "INT32", "INT64", "FP16", "FP32", "FP64", "BYTES", "BF16"]
DT = {name: i for i, name in enumerate(TYPES)}

# ksv_param_type_t
PARAM_BOOL, PARAM_INT, PARAM_STRING, PARAM_DOUBLE = 1, 2, 3, 4

# flags: INFER's (KSV_INFER_ALL_BINARY) and an output's (KSV_OUTPUT_BINARY)
INFER_ALL_BINARY = 0x1
OUTPUT_BINARY = 0x1

# ksv_version_state_t
UNAVAILABLE_STATE, LOADING_STATE, READY_STATE = 0, 1, 2

# ksv_instance_kind_t, ksv_version_policy_kind_t, ksv_timeout_action_t
KIND_AUTO, KIND_GPU, KIND_CPU, KIND_MODEL = 0, 1, 2, 3
VPOLICY_LATEST, VPOLICY_ALL, VPOLICY_SPECIFIC = 0, 1, 2
TIMEOUT_REJECT, TIMEOUT_DELAY = 0, 1


class WireError(ValueError):
    """A frame the C decoder would refuse, or one with trailing bytes."""


# One instance process of a version in INDEX_REPLY (ksv_instance_status_t):
# where nginx sends it requests, and whether it takes them.
Instance = collections.namedtuple("Instance",
                                  "name endpoint pid state reason")


def instance(name, endpoint, pid=0, state=READY_STATE, reason=""):
    return Instance(name, endpoint, pid, state, reason)


class VersionStatus(tuple):
    """A version in INDEX_REPLY as decode() returns it: the tuple
    (version, state, reason), as before instances were listed, so it
    still compares equal to one; its instances are .instances, a list of
    Instance."""

    def __new__(cls, version, state, reason, instances=()):
        t = super().__new__(cls, (version, state, reason))
        t.instances = [Instance(*i) for i in instances]
        return t


# ---- encoding ---------------------------------------------------------------

def prefix(kind, id_, version=VERSION, magic=MAGIC, reserved=0):
    """The 16-byte prefix; version and magic are overridable for tests."""
    return struct.pack("<HBBIQ", magic, version, kind, reserved, id_)


def pstr(s):
    b = s.encode() if isinstance(s, str) else bytes(s)
    return struct.pack("<H", len(b)) + b


def pdims(dims):
    return struct.pack("<B%dq" % len(dims), len(dims), *dims)


def ptensors(tensors):
    """tensors: [(name, datatype name, dims, byte_size)]"""
    out = [struct.pack("<I", len(tensors))]
    for name, dt, dims, size in tensors:
        out.append(pstr(name) + struct.pack("<B", DT[dt]) + pdims(dims) +
                   struct.pack("<Q", size))
    return b"".join(out)


def pparams(params):
    """params: {key: bool | int | float | str}; the type picks the tag."""
    params = params or {}
    out = [struct.pack("<I", len(params))]
    for key, value in params.items():
        out.append(pstr(key))
        if isinstance(value, bool):
            out.append(struct.pack("<Bq", PARAM_BOOL, int(value)))
        elif isinstance(value, int):
            out.append(struct.pack("<Bq", PARAM_INT, value))
        elif isinstance(value, float):
            out.append(struct.pack("<Bd", PARAM_DOUBLE, value))
        else:
            out.append(struct.pack("<B", PARAM_STRING) + pstr(value))
    return b"".join(out)


def infer(id_, model, version="", inputs=(), request_id="", timeout_ms=0,
          outputs=(), flags=0, params=None):
    """outputs: names, or (name, flags[, class_count]) per output."""
    outs = [(o, 0, 0) if isinstance(o, str) else (tuple(o) + (0,))[:3]
            for o in outputs]
    return (prefix(INFER, id_) + pstr(model) + pstr(version) +
            pstr(request_id) + struct.pack("<II", timeout_ms, flags) +
            ptensors(inputs) + struct.pack("<I", len(outs)) +
            b"".join(pstr(n) + struct.pack("<II", f, k) for n, f, k in outs) +
            pparams(params))


def infer_reply(id_, model, version, request_id, outputs, params=None,
                trace=None, shm=()):
    """shm: indexes of the outputs written to shared memory regions;
    trace: the 6 timestamps of a traced request (TRACE_TIMES), after the
    shared memory section (there even when empty)."""
    tail = b""
    if shm or trace is not None:
        tail = struct.pack("<I%dI" % len(shm), len(shm), *shm)
    if trace is not None:
        tail += struct.pack("<B6Q", len(TRACE_TIMES), *trace)
    return (prefix(INFER_REPLY, id_) + pstr(model) + pstr(version) +
            pstr(request_id) + ptensors(outputs) + pparams(params) + tail)


def log(id_, info=1, warning=1, error=1, fmt=0, verbose=0, kind=LOG):
    """LOG / LOG_REPLY: the log settings (fmt 0 default, 1 ISO8601)."""
    return prefix(kind, id_) + struct.pack("<4BI", info, warning, error,
                                           fmt, verbose)


def error(id_, code, message):
    return prefix(ERROR, id_) + struct.pack("<H", code) + pstr(message)


def index(id_, known):
    return prefix(INDEX, id_) + struct.pack("<Q", known)


def index_reply(id_, generation, models=None):
    """models: None for the short "unchanged" answer (full = 0), else
    [(config, [(version, state, reason[, instances])])] with config as
    config() makes it and instances [(name, endpoint, pid, state,
    reason)] (instance() fills the defaults; none when left out)."""
    if models is None:
        return prefix(INDEX_REPLY, id_) + struct.pack("<QB", generation, 0)
    out = [prefix(INDEX_REPLY, id_),
           struct.pack("<QBI", generation, 1, len(models))]
    for config, versions in models:
        out.append(pconfig(config))
        out.append(struct.pack("<I", len(versions)))
        for v in versions:
            version, state, reason = v[:3]
            instances = v[3] if len(v) > 3 else getattr(v, "instances", ())
            out.append(struct.pack("<qB", version, state) + pstr(reason) +
                       struct.pack("<I", len(instances)))
            for name, endpoint, pid, istate, ireason in instances:
                out.append(pstr(name) + pstr(endpoint) +
                           struct.pack("<IB", pid, istate) + pstr(ireason))
    return b"".join(out)


def execute(batch_id, count):
    """EXECUTE: then, per request, an infer() frame and its tensors."""
    return prefix(EXECUTE, batch_id) + struct.pack("<I", count)


def execute_reply(batch_id, count, compute_ns=(0, 0, 0)):
    """EXECUTE_REPLY: then, per request, infer_reply() + tensors or error().
    compute_ns: the batch's (compute_input, compute_infer, compute_output)
    in ns; None ends the frame after count (an instance that does not
    measure, which the daemon reads as zeros)."""
    head = prefix(EXECUTE_REPLY, batch_id) + struct.pack("<I", count)
    if compute_ns is None:
        return head
    return head + struct.pack("<3Q", *compute_ns)


def ready(model, version, instance, ok, message="", endpoint=""):
    """endpoint: where the instance has bound its ROUTER for nginx."""
    return (prefix(READY, 0) + pstr(model) +
            struct.pack("<qIB", version, instance, ok) + pstr(message) +
            pstr(endpoint))


def cancel(id_):
    """CANCEL: nginx -> instance, the id of an INFER it sent; no body."""
    return prefix(CANCEL, id_)


def stats(id_, model="", version=""):
    """STATS: "" model = every model, "" version = every version of it."""
    return prefix(STATS, id_) + pstr(model) + pstr(version)


# One version's statistics in a STATS_REPLY; durations are (count, ns).
DURATIONS = ("success", "fail", "queue", "compute_input", "compute_infer",
             "compute_output")
BATCH_DURATIONS = ("compute_input", "compute_infer", "compute_output")


def stats_reply(id_, models):
    """models: [dict(name, version, last_inference, inference_count,
    execution_count, one (count, ns) per DURATIONS, batch=[dict(batch_size,
    one (count, ns) per BATCH_DURATIONS)])], as decode() returns them."""
    out = [prefix(STATS_REPLY, id_), struct.pack("<I", len(models))]
    for m in models:
        out.append(pstr(m["name"]) + pstr(m["version"]) +
                   struct.pack("<QQQ", m["last_inference"],
                               m["inference_count"], m["execution_count"]))
        for d in DURATIONS:
            out.append(struct.pack("<QQ", *m[d]))
        out.append(struct.pack("<I", len(m["batch"])))
        for b in m["batch"]:
            out.append(struct.pack("<I", b["batch_size"]))
            for d in BATCH_DURATIONS:
                out.append(struct.pack("<QQ", *b[d]))
    return b"".join(out)


# A model config is a dict shaped like ksv_model_config_t; config() and
# the *_config() helpers fill what a caller leaves out with zeros (what
# the worker sends for a config.pbtxt that does not mention it).

def io_config(name, datatype, dims, optional=0, allow_ragged_batch=0,
              reshape=None, format=0, label_filename=""):
    """An input or output; reshape None = no reshape { }."""
    return dict(name=name, datatype=datatype, dims=list(dims),
                optional=optional, allow_ragged_batch=allow_ragged_batch,
                reshape=None if reshape is None else list(reshape),
                format=format, label_filename=label_filename)


def group_config(name, count=1, kind=KIND_AUTO, gpus=()):
    return dict(name=name, count=count, kind=kind, gpus=list(gpus))


def batching_config(enabled=0, preserve_ordering=0, preferred_batch_size=(),
                     max_queue_delay_us=0, priority_levels=0,
                     default_priority_level=0, timeout_action=TIMEOUT_REJECT,
                     allow_timeout_override=0, default_timeout_us=0,
                     max_queue_size=0):
    return dict(enabled=enabled, preserve_ordering=preserve_ordering,
                preferred_batch_size=list(preferred_batch_size),
                max_queue_delay_us=max_queue_delay_us,
                priority_levels=priority_levels,
                default_priority_level=default_priority_level,
                timeout_action=timeout_action,
                allow_timeout_override=allow_timeout_override,
                default_timeout_us=default_timeout_us,
                max_queue_size=max_queue_size)


def config(name, platform="", backend="", default_model_filename="",
           max_batch_size=0, inputs=(), outputs=(), groups=(),
           version_policy=None, dynamic_batching=None, parameters=None):
    return dict(name=name, platform=platform, backend=backend,
                default_model_filename=default_model_filename,
                max_batch_size=max_batch_size, inputs=list(inputs),
                outputs=list(outputs), groups=list(groups),
                version_policy=version_policy or dict(
                    kind=VPOLICY_LATEST, latest_num=1, versions=[]),
                dynamic_batching=dynamic_batching or batching_config(),
                parameters=dict(parameters or {}))


def pconfig(c):
    """A config() encoded as ksv_encode_model_config lays it out."""
    out = [pstr(c["name"]), pstr(c["platform"]), pstr(c["backend"]),
           pstr(c["default_model_filename"]),
           struct.pack("<i", c["max_batch_size"])]
    for ios in (c["inputs"], c["outputs"]):
        out.append(struct.pack("<I", len(ios)))
        for t in ios:
            reshape = t["reshape"]
            out.append(pstr(t["name"]) +
                       struct.pack("<BBB", DT[t["datatype"]], t["optional"],
                                   t["allow_ragged_batch"]) +
                       pdims(t["dims"]) +
                       struct.pack("<B", reshape is not None) +
                       pdims(reshape or []) +
                       struct.pack("<B", t.get("format", 0)) +
                       pstr(t.get("label_filename", "")))
    out.append(struct.pack("<I", len(c["groups"])))
    for g in c["groups"]:
        out.append(pstr(g["name"]) +
                   struct.pack("<iBI", g["count"], g["kind"], len(g["gpus"])) +
                   b"".join(struct.pack("<i", x) for x in g["gpus"]))
    vp = c["version_policy"]
    out.append(struct.pack("<BII", vp["kind"], vp["latest_num"],
                           len(vp["versions"])) +
               b"".join(struct.pack("<q", v) for v in vp["versions"]))
    db = c["dynamic_batching"]
    sizes = db["preferred_batch_size"]
    out.append(struct.pack("<BBI", db["enabled"], db["preserve_ordering"],
                           len(sizes)) +
               b"".join(struct.pack("<i", x) for x in sizes) +
               struct.pack("<QIIBBQI", db["max_queue_delay_us"],
                           db["priority_levels"],
                           db["default_priority_level"],
                           db["timeout_action"],
                           db["allow_timeout_override"],
                           db["default_timeout_us"], db["max_queue_size"]))
    out.append(struct.pack("<I", len(c["parameters"])))
    for key, value in c["parameters"].items():
        out.append(pstr(key) + pstr(value))
    return b"".join(out)


# ---- decoding ---------------------------------------------------------------

class Reader:
    """Bounds-checked little-endian reader over one header frame.

    errors: how strings that are not UTF-8 decode ("strict" in tests,
    "replace" where a tool must never stop on a peer's bytes)."""

    def __init__(self, buf, errors="strict"):
        self.buf = memoryview(buf).cast("B")
        self.pos = 0
        self.errors = errors

    def takes(self, fmt):
        """-> the tuple of values fmt (struct, little-endian) reads."""
        fmt = "<" + fmt
        n = struct.calcsize(fmt)
        if self.pos + n > len(self.buf):
            raise WireError("frame ends at %d, %d more bytes wanted at %d"
                            % (len(self.buf), n, self.pos))
        v = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += n
        return v

    def take(self, fmt):
        """Like takes(), but one value comes back bare."""
        v = self.takes(fmt)
        return v if len(v) > 1 else v[0]

    def raw(self, n):
        if self.pos + n > len(self.buf):
            raise WireError("frame ends at %d, %d bytes wanted at %d"
                            % (len(self.buf), n, self.pos))
        b = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return b

    def str(self):
        return self.raw(self.take("H")).decode("utf-8", self.errors)

    def count(self, cap):
        n = self.take("I")
        if n > cap:
            raise WireError("count %d over its cap %d" % (n, cap))
        return n

    def dims(self):
        n = self.take("B")
        if n > MAX_DIMS:
            raise WireError("%d dims" % n)
        return list(self.takes("%dq" % n))

    def datatype(self, allow_invalid=False):
        """A tensor's datatype must be a real one; a config's may be
        INVALID (TYPE_INVALID, an unset data_type)."""
        t = self.take("B")
        if t >= len(TYPES) or (t == 0 and not allow_invalid):
            raise WireError("datatype %d" % t)
        return TYPES[t]

    def prefix(self, strict=True):
        """-> (kind, id); strict refuses a wrong magic, version or kind."""
        magic, version, kind, _, id_ = self.take("HBBIQ")
        if strict and (magic != MAGIC or version != VERSION or
                       kind not in KIND_NAMES):
            raise WireError("prefix magic 0x%04x version %d kind %d"
                            % (magic, version, kind))
        return kind, id_

    def end(self):
        if self.pos != len(self.buf):
            raise WireError("%d trailing bytes" % (len(self.buf) - self.pos))

    def tensors(self):
        return [(self.str(), self.datatype(), self.dims(), self.take("Q"))
                for _ in range(self.count(MAX_TENSORS))]

    def params(self):
        out = {}
        for _ in range(self.count(MAX_PARAMS)):
            key, t = self.str(), self.take("B")
            if t == PARAM_BOOL:
                out[key] = bool(self.take("q"))
            elif t == PARAM_INT:
                out[key] = self.take("q")
            elif t == PARAM_DOUBLE:
                out[key] = self.take("d")
            elif t == PARAM_STRING:
                out[key] = self.str()
            else:
                raise WireError("parameter type %d" % t)
        return out

    def io_config(self):
        name, dt = self.str(), self.datatype(allow_invalid=True)
        optional, ragged = self.take("BB")
        dims = self.dims()
        has_reshape = self.take("B")
        reshape = self.dims()
        fmt = self.take("B")
        labels = self.str()
        return io_config(name, dt, dims, optional, ragged,
                         reshape if has_reshape else None, fmt, labels)

    def model_config(self):
        c = dict(name=self.str(), platform=self.str(), backend=self.str(),
                 default_model_filename=self.str(),
                 max_batch_size=self.take("i"))
        for key in ("inputs", "outputs"):
            c[key] = [self.io_config()
                      for _ in range(self.count(MAX_TENSORS))]
        c["groups"] = []
        for _ in range(self.count(MAX_LIST)):
            name, (count, kind) = self.str(), self.take("iB")
            gpus = [self.take("i") for _ in range(self.count(MAX_LIST))]
            c["groups"].append(group_config(name, count, kind, gpus))
        kind, latest = self.take("BI")
        c["version_policy"] = dict(
            kind=kind, latest_num=latest,
            versions=[self.take("q") for _ in range(self.count(MAX_LIST))])
        enabled, preserve = self.take("BB")
        sizes = [self.take("i") for _ in range(self.count(MAX_LIST))]
        rest = self.take("QIIBBQI")
        c["dynamic_batching"] = batching_config(enabled, preserve, sizes,
                                                *rest)
        c["parameters"] = {self.str(): self.str()
                           for _ in range(self.count(MAX_LIST))}
        return c

    def instances(self):
        """A version's instances in INDEX_REPLY (a list of Instance)."""
        out = []
        for _ in range(self.count(MAX_LIST)):
            name, endpoint = self.str(), self.str()
            pid, state = self.takes("IB")
            out.append(Instance(name, endpoint, pid, state, self.str()))
        return out

    def model_stats(self):
        s = dict(name=self.str(), version=self.str())
        s["last_inference"], s["inference_count"], s["execution_count"] = \
            self.takes("QQQ")
        for d in DURATIONS:
            s[d] = self.takes("QQ")
        s["batch"] = []
        for _ in range(self.count(MAX_LIST)):
            b = dict(batch_size=self.take("I"))
            for d in BATCH_DURATIONS:
                b[d] = self.takes("QQ")
            s["batch"].append(b)
        return s


def _body(r, kind, m):
    """Reads kind's body into m.  EXECUTE_REPLY's compute_ns is None when
    the instance sent none."""
    if kind == INFER:
        m.update(model=r.str(), version=r.str(), request_id=r.str())
        m["timeout_ms"], m["flags"] = r.take("II")
        m["inputs"] = r.tensors()
        m["outputs"] = [(r.str(),) + r.take("II")
                        for _ in range(r.count(MAX_TENSORS))]
        m["params"] = r.params()
    elif kind == INFER_REPLY:
        m.update(model=r.str(), version=r.str(), request_id=r.str(),
                 outputs=r.tensors(), params=r.params())
        m["trace"] = None
        m["shm"] = []
        if r.pos < len(r.buf):
            m["shm"] = list(r.takes("%dI" % r.count(MAX_TENSORS)))
            if not m["shm"] and r.pos == len(r.buf):
                raise WireError("INFER_REPLY with an empty shm section")
        if r.pos < len(r.buf):
            n = r.take("B")
            if n < len(TRACE_TIMES):
                raise WireError("INFER_REPLY with %d trace timestamps" % n)
            m["trace"] = r.takes("%dQ" % n)[:len(TRACE_TIMES)]
    elif kind in (LOG, LOG_REPLY):
        (m["info"], m["warning"], m["error"], m["format"],
         m["verbose"]) = r.take("4BI")
    elif kind == ERROR:
        m.update(code=r.take("H"), message=r.str())
    elif kind == INDEX:
        m["known"] = r.take("Q")
    elif kind == INDEX_REPLY:
        m["generation"], m["full"] = r.take("QB")
        m["models"] = []
        if m["full"]:
            for _ in range(r.count(MAX_MODELS)):
                cfg = r.model_config()
                versions = [VersionStatus(r.take("q"), r.take("B"), r.str(),
                                          r.instances())
                            for _ in range(r.count(MAX_LIST))]
                m["models"].append((cfg, versions))
    elif kind == EXECUTE:
        m["count"] = r.count(MAX_BATCH_REQUESTS)
    elif kind == EXECUTE_REPLY:
        m["count"] = r.count(MAX_BATCH_REQUESTS)
        m["compute_ns"] = None if r.pos == len(r.buf) else r.takes("3Q")
    elif kind == READY:
        m["model"] = r.str()
        m["version"], m["instance"], m["ok"] = r.take("qIB")
        m["message"] = r.str()
        m["endpoint"] = r.str()
    elif kind == STATS:
        m.update(model=r.str(), version=r.str())
    elif kind == STATS_REPLY:
        m["models"] = [r.model_stats() for _ in range(r.count(MAX_STATS))]
    return m


def decode(frame, expect=None, strict=True, errors="strict"):
    """Decodes one header frame of any kind -> dict(kind, id, fields...).

    expect: a kind or a tuple of kinds the frame must be.  strict=False
    reads past a wrong magic or version and leaves trailing bytes alone
    (a peer answers whatever it can read)."""
    r = Reader(frame, errors)
    kind, id_ = r.prefix(strict)
    if expect is not None and kind not in (
            expect if isinstance(expect, tuple) else (expect,)):
        raise WireError("kind %d, expected %r" % (kind, expect))
    m = _body(r, kind, dict(kind=kind, id=id_))
    if strict:
        r.end()
    return m


def decode_message(frames, expect=None):
    """A header frame and its tensor frames -> decode()'s dict with
    "frames": the tensor frames as bytes, their count and sizes checked."""
    m = decode(frames[0], expect)
    tensors = m.get("inputs" if m["kind"] == INFER else "outputs", [])
    data = [bytes(f) for f in frames[1:]]
    if m["kind"] in (INFER, INFER_REPLY):
        check_frames(tensors, data)
    elif data:
        raise WireError("%s carries %d extra frames"
                        % (KIND_NAMES[m["kind"]], len(data)))
    m["frames"] = data
    return m


def check_frames(tensors, frames):
    if len(frames) != len(tensors):
        raise WireError("%d tensors, %d frames" % (len(tensors), len(frames)))
    for (name, _, _, size), f in zip(tensors, frames):
        if len(f) != size:
            raise WireError("tensor %s: byte_size %d, frame of %d"
                            % (name, size, len(f)))


def split_batch(frames, expect=EXECUTE):
    """An EXECUTE or EXECUTE_REPLY message -> (its header dict, [one
    decode_message() dict per request, tensors in "frames"])."""
    head = decode(frames[0], expect)
    pos, items = 1, []
    for _ in range(head["count"]):
        if pos >= len(frames):
            raise WireError("batch of %d ends after %d"
                            % (head["count"], len(items)))
        m = decode(frames[pos])
        n = len(m.get("inputs" if m["kind"] == INFER else "outputs", []))
        items.append(decode_message(frames[pos:pos + 1 + n]))
        pos += 1 + n
    if pos != len(frames):
        raise WireError("%d frames after the batch" % (len(frames) - pos))
    return head, items


# ---- tensor contents (numpy) ------------------------------------------------

def numpy_type(datatype):
    import numpy as np
    return {"BOOL": np.bool_, "UINT8": np.uint8, "UINT16": np.uint16,
            "UINT32": np.uint32, "UINT64": np.uint64, "INT8": np.int8,
            "INT16": np.int16, "INT32": np.int32, "INT64": np.int64,
            "FP16": np.float16, "FP32": np.float32, "FP64": np.float64,
            "BYTES": np.object_}[datatype]


def serialize_bytes(items):
    """BYTES elements: each u32 length + bytes (Triton's serialization)."""
    out = []
    for x in items:
        b = x if isinstance(x, bytes) else str(x).encode()
        out.append(struct.pack("<I", len(b)) + b)
    return b"".join(out)


def deserialize_bytes(data, count):
    items, off = [], 0
    data = bytes(data)
    for _ in range(count):
        if off + 4 > len(data):
            raise WireError("BYTES element %d past the frame" % len(items))
        (n,) = struct.unpack_from("<I", data, off)
        if off + 4 + n > len(data):
            raise WireError("BYTES element %d past the frame" % len(items))
        items.append(data[off + 4:off + 4 + n])
        off += 4 + n
    if off != len(data):
        raise WireError("%d bytes after %d BYTES elements"
                        % (len(data) - off, count))
    return items


def tensor_bytes(datatype, arr):
    """An array's raw frame: row-major little-endian elements."""
    import numpy as np
    if datatype == "BYTES":
        return serialize_bytes(np.asarray(arr, dtype=np.object_).ravel())
    return np.ascontiguousarray(arr, dtype=numpy_type(datatype)).tobytes()


def tensor_array(datatype, dims, data):
    """A raw frame back into an array of shape dims."""
    import numpy as np
    count = 1
    for d in dims:
        count *= d
    if datatype == "BYTES":
        arr = np.empty(count, dtype=np.object_)
        arr[:] = deserialize_bytes(data, count)
    else:
        arr = np.frombuffer(bytes(data), dtype=numpy_type(datatype))
    return arr.reshape(dims)


def infer_arrays(id_, model, inputs, **kw):
    """An INFER from arrays: inputs [(name, datatype, ndarray)] ->
    [header frame] + tensor frames.  kw as infer() takes them."""
    frames, tensors = [], []
    for name, datatype, arr in inputs:
        data = tensor_bytes(datatype, arr)
        tensors.append((name, datatype, list(arr.shape), len(data)))
        frames.append(data)
    return [infer(id_, model, inputs=tensors, **kw)] + frames
