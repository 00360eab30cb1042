"""An instance's statistics page (common/ksv_stats.h), in Python, for tests.

Every instance counts what it answers in <run-dir>/<pid>.stats, a file
that it and kserve-worker both map (ksv_stats_page_t); the worker sums
the pages for STATS.  read() gives a test what a real instance wrote
there; Page lets tests/tools/fake_instance.py keep a page the way a real
instance does, so the worker has something to sum.

The layout is ksv_stats_page_t's with natural alignment, little-endian:

    u32 magic "KSTP", u32 size, u64 seq (odd while being written)
    u64 last_inference, inference_count, execution_count
    6 x {u64 count, u64 ns}     success fail queue compute_input
                                compute_infer compute_output
    char reason[256]            the instance's last words
    u32 nbatch, 4 bytes pad, 1024 x {u32 batch_size, 4 pad,
                                     3 x {u64 count, u64 ns}}

The worker maps a page only when its magic and size match, so a layout
that drifts from the C one shows up as a worker test that counts nothing.
The meaning of each counter is on ksv_model_stats_t in ksv_proto.h.
"""

import mmap
import os
import struct
import time

import ksv_wire as w

MAGIC = 0x4b535450
REASON_SIZE = 256
MAX_LIST = w.MAX_LIST

_HEAD = struct.Struct("<IIQ")               # magic, size, seq
_COUNTS = struct.Struct("<QQQ")             # at 16
_DURATIONS = struct.Struct("<12Q")          # at 40, w.DURATIONS' order
_REASON_AT = 136
_NBATCH_AT = _REASON_AT + REASON_SIZE      # 392
_BATCH_AT = _NBATCH_AT + 8                  # 400
_BATCH = struct.Struct("<I4x6Q")            # 56 bytes
SIZE = _BATCH_AT + MAX_LIST * _BATCH.size   # 57744


def _pairs(values):
    return [tuple(values[i:i + 2]) for i in range(0, len(values), 2)]


def decode(buf):
    """A page's bytes -> dict shaped like ksv_wire's STATS_REPLY entries
    (no name or version) plus "reason"."""
    magic, size, _ = _HEAD.unpack_from(buf, 0)
    if magic != MAGIC or size != SIZE or len(buf) != SIZE:
        raise ValueError("not a statistics page (magic 0x%x, size %d, "
                         "%d bytes)" % (magic, size, len(buf)))
    page = dict(zip(("last_inference", "inference_count", "execution_count"),
                    _COUNTS.unpack_from(buf, 16)))
    page.update(zip(w.DURATIONS, _pairs(_DURATIONS.unpack_from(buf, 40))))
    reason = bytes(buf[_REASON_AT:_NBATCH_AT]).split(b"\0", 1)[0]
    page["reason"] = reason.decode("utf-8", "replace")
    (nbatch,) = struct.unpack_from("<I", buf, _NBATCH_AT)
    page["batch"] = []
    for i in range(min(nbatch, MAX_LIST)):
        size, *rest = _BATCH.unpack_from(buf, _BATCH_AT + i * _BATCH.size)
        b = dict(zip(w.BATCH_DURATIONS, _pairs(rest)))
        b["batch_size"] = size
        page["batch"].append(b)
    return page


def read(path):
    """The page at path, as decode() reads it (no retry on a torn read:
    read it when the instance is idle)."""
    with open(path, "rb") as f:
        return decode(f.read())


class Page:
    """A page an instance writes (created, zeroed), like ksv_stats_map(...,
    create=1), with ksv_stats_request / _batch / _set_reason's updates
    under the same sequence lock."""

    def __init__(self, path):
        self.path = path
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.ftruncate(fd, SIZE)
            self.m = mmap.mmap(fd, SIZE)
        finally:
            os.close(fd)
        struct.pack_into("<I", self.m, 4, SIZE)
        struct.pack_into("<I", self.m, 0, MAGIC)    # last: the page is whole

    def _seq(self):
        seq = struct.unpack_from("<Q", self.m, 8)[0] + 1
        struct.pack_into("<Q", self.m, 8, seq)

    def _add(self, offset, *values):
        old = struct.unpack_from("<%dQ" % len(values), self.m, offset)
        struct.pack_into("<%dQ" % len(values), self.m, offset,
                         *[a + b for a, b in zip(old, values)])

    def request(self, ok, total_ns, queue_ns=0, compute_ns=(0, 0, 0)):
        """A request got its final answer (ok: with outputs)."""
        self._seq()
        if not ok:
            self._add(40 + 16, 1, total_ns)                 # fail
        else:
            self._add(40, 1, total_ns)                      # success
            self._add(40 + 32, 1, queue_ns)                 # queue
            for i, ns in enumerate(compute_ns):             # compute_*
                self._add(40 + 48 + 16 * i, 1, ns)
        self._seq()

    def batch(self, batch_size, compute_ns=(0, 0, 0)):
        """A batch of batch_size rows came back from the model."""
        self._seq()
        struct.pack_into("<Q", self.m, 16, int(time.time() * 1000))
        self._add(24, batch_size, 1)            # inference, execution count
        (nbatch,) = struct.unpack_from("<I", self.m, _NBATCH_AT)
        sizes = [_BATCH.unpack_from(self.m, _BATCH_AT + i * _BATCH.size)[0]
                 for i in range(nbatch)]
        if batch_size in sizes:
            i = sizes.index(batch_size)
        elif nbatch < MAX_LIST:
            # kept sorted by batch_size, as the worker expects
            i = sum(1 for s in sizes if s < batch_size)
            tail = self.m[_BATCH_AT + i * _BATCH.size:
                          _BATCH_AT + nbatch * _BATCH.size]
            self.m[_BATCH_AT + (i + 1) * _BATCH.size:
                   _BATCH_AT + (nbatch + 1) * _BATCH.size] = tail
            _BATCH.pack_into(self.m, _BATCH_AT + i * _BATCH.size,
                             batch_size, *[0] * 6)
            struct.pack_into("<I", self.m, _NBATCH_AT, nbatch + 1)
        else:
            i = None
        if i is not None:
            at = _BATCH_AT + i * _BATCH.size + 8
            self._add(at, *[v for ns in compute_ns for v in (1, ns)])
        self._seq()

    def set_reason(self, text):
        """The last words, read by the worker when this process dies."""
        data = text.encode()[:REASON_SIZE - 1]
        self._seq()
        pad = b"\0" * (REASON_SIZE - len(data))
        self.m[_REASON_AT:_NBATCH_AT] = data + pad
        self._seq()
