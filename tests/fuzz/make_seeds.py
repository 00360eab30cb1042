#!/usr/bin/env python3
"""Writes the seed corpora of the fuzz targets into tests/fuzz/corpus/.

    python3 tests/fuzz/make_seeds.py

Seeds are small real examples, one file each, named for what they are:
  fuzz_pbtxt/       every config.pbtxt in conf/models and tests/models
                    plus a few that use the syntax those do not;
  fuzz_codec/       one header frame of every message kind, encoded by
                    tests/tools/ksv_wire.py (the protocol as documented);
  fuzz_gzip/        compressed request bodies (gzip, zlib), one that
                    inflates past the target's limit, an Accept-Encoding;
  fuzz_settings/    trace and logging settings bodies;
  fuzz_infer_json/  KServe v2 JSON requests for the target's models
                    (simple, mixed, all_types), and INFER_REPLY header
                    frames followed by their output frames;
  fuzz_rollout/     kserve:rollout:NAME hashes as HGETALL returns them
                    (field, value, ... separated by NUL bytes);
  fuzz_request_fields/  requests whose "id" and "parameters" routing
                    reads (JSON, a binary request's JSON header,
                    escaped names, nested parameters).
The files are committed; rerun this after a protocol change.
"""

import glob
import json
import os
import shutil
import struct
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "tools"))

import ksv_wire as w  # noqa: E402

CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")


def write(target, name, data):
    d = os.path.join(CORPUS, target)
    os.makedirs(d, exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(os.path.join(d, name), "wb") as f:
        f.write(data)


def pbtxt_seeds():
    t = "fuzz_pbtxt"
    for path in sorted(glob.glob(os.path.join(ROOT, "conf/models/*/config.pbtxt"))
                       + glob.glob(os.path.join(ROOT, "tests/models/*/config.pbtxt"))):
        model = os.path.basename(os.path.dirname(path))
        shutil.copyfile(path, os.path.join(CORPUS, t, model + ".pbtxt"))

    write(t, "syntax_variety.pbtxt", """\
name: "syntax" platform: "python" ; max_batch_size: 4,
input < name: "A" data_type: TYPE_FP32 dims: [ 2, -1 ]
        reshape: { shape: [ -1 ] } allow_ragged_batch: true >
input { name: "B" "\\x42" data_type: TYPE_STRING dims: 1 dims: 3 }
output [ { name: "Y" data_type: TYPE_BF16 dims: [ -1 ] } ]
instance_group [ { name: "g" count: 2 kind: KIND_GPU gpus: [ 0, 1 ] },
                 { kind: KIND_AUTO } ]
version_policy: { specific { versions: [ 1, 3 ] } }
dynamic_batching {
  preferred_batch_size: [ 2, 4 ] max_queue_delay_microseconds: 100
  preserve_ordering: true priority_levels: 2 default_priority_level: 1
  default_queue_policy { timeout_action: DELAY default_timeout_microseconds: 5
                         allow_timeout_override: true max_queue_size: 8 }
}
parameters { key: "EXECUTION_ENV_PATH" value { string_value: "$$x" } }
optimization { cuda { graphs: true } }   # unknown: skipped
model_warmup [ { name: "w" batch_size: 1 } ]
""")
    write(t, "latest_policy.pbtxt",
          'name: "m" backend: "python"\n'
          'version_policy { latest { num_versions: 2 } }\n'
          'version_policy: { all { } }\n'
          'default_model_filename: "m.py"\n')


def codec_seeds():
    t = "fuzz_codec"
    ins = [("INPUT0", "INT32", [1, 16], 64), ("TEXT", "BYTES", [2], 13)]
    outs = [("OUTPUT0", "FP32", [1, 16], 64)]
    params = {"priority": 1, "binary_data_output": True, "x": 0.5, "s": "v"}
    write(t, "infer", w.infer(1, "simple", "1", ins, request_id="req-1",
                              timeout_ms=500, outputs=["OUTPUT0",
                                                       ("OUTPUT1", 1)],
                              flags=w.INFER_ALL_BINARY, params=params))
    write(t, "infer_reply", w.infer_reply(2, "simple", "1", "req-1", outs,
                                          params={"sequence_end": False}))
    write(t, "error", w.error(3, w.UNAVAILABLE, "Exceeds maximum queue size"))
    write(t, "index", w.index(4, 0x1234))
    cfg = w.config(
        "simple", backend="python", max_batch_size=8,
        inputs=[w.io_config("INPUT0", "INT32", [16]),
                w.io_config("R", "FP32", [2, 2], optional=1,
                            reshape=[4])],
        outputs=[w.io_config("OUTPUT0", "INT32", [16])],
        groups=[w.group_config("simple_0", 2, w.KIND_GPU, [0, 1])],
        version_policy=dict(kind=w.VPOLICY_SPECIFIC, latest_num=0,
                            versions=[1, 3]),
        dynamic_batching=w.batching_config(1, 1, [2, 4], 100, 2, 1,
                                           w.TIMEOUT_DELAY, 1, 5, 8),
        parameters={"k": "v"})
    write(t, "index_reply", w.index_reply(
        5, 99, [(cfg, [(1, w.READY_STATE, ""),
                       (3, w.UNAVAILABLE_STATE, "init failed")])]))
    write(t, "index_reply_unchanged", w.index_reply(6, 99))
    write(t, "execute", w.execute(7, 2))
    write(t, "execute_reply", w.execute_reply(8, 2, (10, 20, 30)))
    write(t, "execute_reply_short", w.execute_reply(9, 1, None))
    write(t, "ready", w.ready("simple", 1, 0, 0, "boom"))
    write(t, "stats", w.stats(10, "simple", "1"))
    d = (3, 3000)
    write(t, "stats_reply", w.stats_reply(11, [dict(
        name="simple", version="1", last_inference=1700000000123,
        inference_count=6, execution_count=2,
        success=d, fail=(1, 10), queue=d, compute_input=d, compute_infer=d,
        compute_output=d,
        batch=[dict(batch_size=2, compute_input=(1, 5),
                    compute_infer=(1, 600), compute_output=(1, 7))])]))


def f32(*v):
    return struct.pack("<%df" % len(v), *v)


def infer_json_seeds():
    t = "fuzz_infer_json"
    ones = [1] * 16
    write(t, "simple.json", json.dumps({
        "id": "req-1",
        "parameters": {"binary_data_output": False, "priority": 2},
        "inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32",
             "data": ones},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32",
             "data": [list(range(16))]}],
        "outputs": [{"name": "OUTPUT0"},
                    {"name": "OUTPUT1", "parameters": {"binary_data": True}}]}))
    write(t, "simple_batch2.json", json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [2, 16], "datatype": "INT32",
         "data": [ones, list(range(-8, 8))]},
        {"name": "INPUT1", "shape": [2, 16], "datatype": "INT32",
         "data": ones + [2147483647] * 15 + [-2147483648]}]}))
    write(t, "mixed.json", json.dumps({"inputs": [
        {"name": "TEXT", "shape": [2, 2], "datatype": "BYTES",
         "data": [["hello", ""], ["\u00e9t\u00e9", "a\u0000b"]]},
        {"name": "MASK", "shape": [2, 2, 1], "datatype": "BOOL",
         "data": [True, False, True, True]},
        {"name": "IDS", "shape": [2, 3], "datatype": "UINT64",
         "data": [0, 1, 18446744073709551615, 9223372036854775808, 7, 8]},
        {"name": "EMB", "shape": [2, 1, 2], "datatype": "FP32",
         "data": [0.5, -1e-38, 3.4028234663852886e38, -0.0]},
        {"name": "W", "shape": [2, 1], "datatype": "FP64",
         "data": [1e308, 5e-324]},
        {"name": "Q", "shape": [2, 1], "datatype": "INT8",
         "data": [-128, 127]}],
        "outputs": [{"name": "OUT"}, {"name": "SCORE"}]}))
    inputs = []
    samples = {"BOOL": [True, False], "UINT8": [0, 255], "UINT16": [65535, 1],
               "UINT32": [4294967295, 0], "UINT64": [18446744073709551615, 1],
               "INT8": [-128, 127], "INT32": [-2147483648, 2147483647],
               "INT64": [-9223372036854775808, 9223372036854775807],
               "FP32": [1.5, -2], "FP64": [0.1, 1e-300],
               "BYTES": ["x", "\u4e2d\u6587"]}
    for dt, data in samples.items():
        inputs.append({"name": "IN_" + dt, "shape": [2], "datatype": dt,
                       "data": data})
    inputs.append({"name": "IN_INT16", "shape": [1, 2, 1],
                   "datatype": "INT16", "data": [[[-32768], [32767]]]})
    write(t, "all_types.json", json.dumps({"inputs": inputs}))
    write(t, "fp16_refused.json", json.dumps({"inputs": [
        {"name": "IN_FP16", "shape": [1], "datatype": "FP16",
         "data": [1.0]}]}))
    write(t, "empty_tensor.json", json.dumps({"inputs": [
        {"name": "IN_FP32", "shape": [0], "datatype": "FP32", "data": []},
        {"name": "IN_BYTES", "shape": [0], "datatype": "BYTES",
         "data": []}]}))
    write(t, "deep.json", '{"inputs":[{"name":"IN_INT32","shape":[1],'
          '"datatype":"INT32","data":' + "[" * 40 + "1" + "]" * 40 + "}]}")

    # INFER_REPLY header frames with their output frames appended
    bts = struct.pack("<I", 5) + b"hello" + struct.pack("<I", 0)
    outs = [("OUTPUT0", "FP32", [1, 3], 12), ("OUT", "BYTES", [2], len(bts)),
            ("B", "BOOL", [2], 2), ("U", "UINT64", [1], 8),
            ("H", "FP16", [2], 4), ("BF", "BF16", [1], 2),
            ("I", "INT16", [1], 2)]
    frames = (f32(1.0, float("nan"), -0.0) + bts + b"\x01\x00"
              + struct.pack("<Q", 2**64 - 1) + struct.pack("<2H", 0x3c00, 0x7c00)
              + struct.pack("<H", 0x3f80) + struct.pack("<h", -2))
    write(t, "reply_all", w.infer_reply(1, "simple", "1", "req-1", outs,
                                        params={"p": 1.25, "q": "s"}) + frames)
    write(t, "reply_empty", w.infer_reply(2, "m", "", "", []))
    # the prefix's reserved byte picks binary outputs (here 0, 1 and 6)
    frame = bytearray(w.infer_reply(3, "simple", "1", "", outs))
    frame[4] = 0x43
    write(t, "reply_binary", bytes(frame) + frames)

    # binary extension: 0x01, u16 header length (0: raw), limits byte
    def binary(name, header, tensors, limits=0, raw=False):
        head = b"" if raw else json.dumps(header).encode()
        write(t, name, b"\x01" + struct.pack("<HB", len(head), limits)
              + head + b"".join(tensors))

    i32 = struct.pack("<16i", *range(16))
    binary("bin_simple", {"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32",
         "parameters": {"binary_data_size": 64}},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32",
         "data": ones}],
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}}],
        "parameters": {"binary_data_output": False}}, [i32])
    text = struct.pack("<I", 3) + b"abc" + struct.pack("<I", 0)
    binary("bin_mixed", {"inputs": [
        {"name": "TEXT", "shape": [1, 2], "datatype": "BYTES",
         "parameters": {"binary_data_size": len(text)}},
        {"name": "MASK", "shape": [1, 2, 1], "datatype": "BOOL",
         "parameters": {"binary_data_size": 2}},
        {"name": "IDS", "shape": [1, 3], "datatype": "UINT64",
         "data": [1, 2, 18446744073709551615]}]}, [text, b"\x01\x00"])
    binary("bin_limited", {"inputs": [
        {"name": "TEXT", "shape": [1, 1], "datatype": "BYTES",
         "parameters": {"binary_data_size": 7}}]},
        [struct.pack("<I", 3) + b"abc"], limits=1)
    binary("bin_fp16", {"inputs": [
        {"name": "IN_FP16", "shape": [2], "datatype": "FP16",
         "parameters": {"binary_data_size": 4}},
        {"name": "IN_BF16", "shape": [1], "datatype": "BF16",
         "parameters": {"binary_data_size": 2}}]},
        [struct.pack("<2H", 0x3c00, 0xfc00), struct.pack("<H", 0x3f80)])
    binary("raw_fp32", None, [f32(1.0, 2.0, 3.0)], raw=True)
    binary("raw_bytes", None, [b"hello world"], raw=True)


def gzip_seeds():
    """A first byte (how the body is cut, which limit), then a body as a
    client compresses it; and an Accept-Encoding value."""
    import gzip
    import zlib
    doc = json.dumps({"inputs": [{"name": "INPUT0", "shape": [1, 3],
                                  "datatype": "FP32",
                                  "data": [1, 2, 3]}]}).encode()
    write("fuzz_gzip", "gzip-json", b"\x05" + gzip.compress(doc, mtime=0))
    write("fuzz_gzip", "zlib-json", b"\x45" + zlib.compress(doc))
    write("fuzz_gzip", "gzip-zeros-over-limit",
          b"\x41" + gzip.compress(b"\0" * 100000, 9, mtime=0))
    write("fuzz_gzip", "accept-encoding",
          b"gzip;q=0.5, deflate;q=1.0, identity;q=0")


def settings_seeds():
    """A first byte (0: trace for every model, 1: for one, 2: logging),
    then a POST body as tritonclient sends it; or 3, a datatype and a
    tensor's bytes."""
    write("fuzz_settings", "trace-global", b"\x00" + json.dumps({
        "trace_level": ["TIMESTAMPS"], "trace_rate": "10",
        "trace_count": "-1", "log_frequency": "0"}).encode())
    write("fuzz_settings", "trace-model", b"\x01" + json.dumps({
        "trace_rate": "2", "trace_level": None}).encode())
    write("fuzz_settings", "logging", b"\x02" + json.dumps({
        "log_info": False, "log_verbose_level": 1,
        "log_format": "ISO8601"}).encode())
    # 3: a tensor as TENSORS traces it; the next byte picks the datatype
    # (ksv_datatype_t: 8 INT32, 13 BYTES)
    write("fuzz_settings", "tensor-int32",
          b"\x03\x08" + struct.pack("<4i", 1, -2, 3, 4))
    write("fuzz_settings", "tensor-bytes",
          b"\x03\x0d" + struct.pack("<I", 2) + b"hi" +
          struct.pack("<I", 1) + b'"')


def rollout_seeds():
    mark = " ".join(["250", "1", "0"] + ["10"] * 5 + ["250"] * 7)
    running = ["canary", "fraud_v2", "state", "running", "step", "2",
               "percent", "25", "epoch", "7", "started_at", "1700000000000",
               "step_started_at", "1700000030000", "updated_at",
               "1700000030000", "reason", "step 2 (25%)", "cause", "",
               "node", "host 123", "steps", "5,25,50,100",
               "canary_mark", mark, "baseline_mark", mark]
    for name, fields in (
            ("running", running),
            ("paused_with_resume", running[:6] + ["paused"] + running[7:]
             + ["command", "resume"]),
            ("rolled_back", running[:3] + ["rolled_back", "cause", "p99",
                                           "reason", "p99 497 ms"]
             + running[4:18]),
            ("command_only", ["command", "restart"]),
            ("bad_mark", running[:-2] + ["1 2 x"])):
        write("fuzz_rollout", name, "\0".join(fields))


def request_fields_seeds():
    t = "fuzz_request_fields"
    write(t, "json_request.json", json.dumps(
        {"id": "req-1", "inputs": [{"name": "INPUT0", "shape": [1, 3],
                                    "datatype": "FP32",
                                    "data": [1.5, 2.5, 3.5]}],
         "parameters": {"tier": "gold", "user": "u-17", "priority": 2,
                        "on": True}}))
    write(t, "binary_header.json", json.dumps(
        {"inputs": [{"name": "INPUT0", "shape": [4], "datatype": "INT32",
                     "parameters": {"binary_data_size": 16}}],
         "outputs": [{"name": "OUTPUT0",
                      "parameters": {"binary_data": True}}],
         "parameters": {"user": "\u00e9t\u00e9"}}))
    write(t, "nested_params.json", json.dumps(
        {"parameters": {"obj": {"a": [1, {"b": None}]}, "tier": None,
                        "s": "a\"b\\c\n"}}))
    write(t, "escaped_names.json",
          '{"\\u0069d": "x", "p\\u0061rameters": '
          '{"ti\\u0065r": "\\ud83d\\ude00"}}')


def main():
    for target in ("fuzz_pbtxt", "fuzz_codec", "fuzz_infer_json",
                   "fuzz_gzip", "fuzz_settings", "fuzz_rollout",
                   "fuzz_request_fields"):
        d = os.path.join(CORPUS, target)
        shutil.rmtree(d, ignore_errors=True)
        os.makedirs(d)
    pbtxt_seeds()
    codec_seeds()
    infer_json_seeds()
    gzip_seeds()
    settings_seeds()
    rollout_seeds()
    request_fields_seeds()
    for target in sorted(os.listdir(CORPUS)):
        print(target, len(os.listdir(os.path.join(CORPUS, target))), "seeds")


if __name__ == "__main__":
    main()
