"""tests/tools/ksv_wire.py against docs/protocol.md, without any binary.

Byte layouts written out from the document for the prefix and a small
INFER, then every kind through encode -> decode.  The component tests
check the same module against the C codec from the other side.
"""

import struct

import numpy as np
import pytest

import ksv_wire as w


def test_prefix_layout():
    assert w.prefix(w.INFER, 0x0102030405060708) == (
        b"\x56\x4b" b"\x01" b"\x01" b"\0\0\0\0"
        b"\x08\x07\x06\x05\x04\x03\x02\x01")
    assert len(w.prefix(w.READY, 0)) == w.PREFIX_SIZE


def test_infer_layout():
    frame = w.infer(7, "m", "2", [("X", "FP32", [1, 3], 12)], "r", 5,
                    [("Y", w.OUTPUT_BINARY, 3)], w.INFER_ALL_BINARY,
                    {"k": 1.5})
    body = (b"\x01\x00m" b"\x01\x002" b"\x01\x00r" +
            struct.pack("<II", 5, 1) +
            struct.pack("<I", 1) + b"\x01\x00X" + b"\x0b" +
            b"\x02" + struct.pack("<qq", 1, 3) + struct.pack("<Q", 12) +
            struct.pack("<I", 1) + b"\x01\x00Y" + struct.pack("<II", 1, 3) +
            struct.pack("<I", 1) + b"\x01\x00k" + b"\x04" +
            struct.pack("<d", 1.5))
    assert frame == w.prefix(w.INFER, 7) + body


def test_every_kind_round_trips():
    cfg = w.config(
        "m", backend="python", max_batch_size=8,
        inputs=[w.io_config("X", "FP32", [-1, 3], optional=1,
                            reshape=[3])],
        outputs=[w.io_config("Y", "BYTES", [1], allow_ragged_batch=1)],
        groups=[w.group_config("m_0", 2, w.KIND_GPU, [0, 3])],
        version_policy=dict(kind=w.VPOLICY_SPECIFIC, latest_num=1,
                            versions=[1, 3]),
        dynamic_batching=w.batching_config(1, 1, [4, 8], 100, 2, 1,
                                           w.TIMEOUT_DELAY, 1, 5, 10),
        parameters={"a": "b"})
    stat = dict(name="m", version="1", last_inference=1, inference_count=2,
                execution_count=3, batch=[dict(
                    batch_size=4, **{d: (1, 2) for d in w.BATCH_DURATIONS})],
                **{d: (5, 6) for d in w.DURATIONS})
    cases = [
        (w.infer(1, "m", "", [("X", "BOOL", [], 1)], "r", 0, ["Y"], 0,
                 {"b": True, "i": -3, "s": "x"}),
         dict(model="m", inputs=[("X", "BOOL", [], 1)],
              outputs=[("Y", 0, 0)], params={"b": True, "i": -3, "s": "x"})),
        (w.infer_reply(2, "m", "1", "r", [("Y", "INT64", [2], 16)]),
         dict(version="1", outputs=[("Y", "INT64", [2], 16)], params={})),
        (w.error(3, w.CANCELLED, "gone"), dict(code=7, message="gone")),
        (w.index(4, 99), dict(known=99)),
        (w.index_reply(5, 99), dict(generation=99, full=0, models=[])),
        (w.index_reply(6, 98, [(cfg, [(1, w.READY_STATE, ""),
                                      (3, w.LOADING_STATE, "why")])]),
         dict(full=1, models=[(cfg, [(1, 2, ""), (3, 1, "why")])])),
        (w.execute(7, 2), dict(count=2)),
        (w.execute_reply(8, 2, (1, 2, 3)),
         dict(count=2, compute_ns=(1, 2, 3))),
        (w.execute_reply(9, 2, None), dict(count=2, compute_ns=None)),
        (w.ready("m", 3, 1, 0, "no"),
         dict(id=0, model="m", version=3, instance=1, ok=0, message="no")),
        (w.stats(10, "m"), dict(model="m", version="")),
        (w.stats_reply(11, [stat]), dict(models=[stat])),
    ]
    for frame, want in cases:
        m = w.decode(frame)
        for key, value in want.items():
            assert m[key] == value, (w.KIND_NAMES[m["kind"]], key, m)
    # the config survives encode -> decode -> encode byte for byte
    assert w.pconfig(w.decode(cases[5][0])["models"][0][0]) == w.pconfig(cfg)


@pytest.mark.parametrize("frame", [
    b"\x56\x4b\x01",                                    # short prefix
    w.prefix(w.INFER, 1, magic=0x1234),
    w.prefix(w.INFER, 1, version=2),
    w.prefix(42, 1),
    w.index(1, 0) + b"x",                               # trailing byte
    w.prefix(w.INFER, 1) + b"\xff\xff",                 # string past end
    w.execute(1, w.MAX_BATCH_REQUESTS + 1),             # count over cap
    w.infer(1, "m", inputs=[("X", "FP32", [1], 4)])[:-4] + b"\x09" * 4,
])
def test_decoder_refuses(frame):
    with pytest.raises(w.WireError):
        w.decode(frame)


def test_messages_and_batches():
    a = np.arange(6, dtype=np.int16).reshape(2, 3)
    s = np.array([b"ab", b""], dtype=np.object_)
    req = w.infer_arrays(1, "m", [("A", "INT16", a), ("S", "BYTES", s)])
    assert req[1] == a.tobytes() and req[2] == b"\2\0\0\0ab\0\0\0\0"
    m = w.decode_message(req, w.INFER)
    assert [t[:3] for t in m["inputs"]] == [("A", "INT16", [2, 3]),
                                           ("S", "BYTES", [2])]
    back = w.tensor_array("BYTES", [2], m["frames"][1])
    assert back.tolist() == [b"ab", b""]
    assert (w.tensor_array("INT16", [2, 3], m["frames"][0]) == a).all()

    head, items = w.split_batch([w.execute(9, 2)] + req + req)
    assert head["count"] == 2 and [i["id"] for i in items] == [1, 1]
    with pytest.raises(w.WireError):
        w.decode_message(req[:2])                       # a frame missing
    with pytest.raises(w.WireError):
        w.decode_message([req[0], req[1][:-1], req[2]])  # frame too short
    with pytest.raises(w.WireError):
        w.split_batch([w.execute(9, 2)] + req)           # a request short
