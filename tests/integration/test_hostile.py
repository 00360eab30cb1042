"""Hostile input: every request below is answered with the right 4xx and
{"error": ...}, never a 5xx, and the gateway keeps serving.  Extends
test_malformed.py (the plain cases) with binary tensor data, wrong types
in every field, lying sizes, limits, bad names and slow bodies."""

import json
import socket
import struct
import threading
import time

import pytest
import requests

SIMPLE = "/v2/models/simple/infer"
IDENT = "/v2/models/identity_fp32/infer"
TYPES = "/v2/models/all_types/infer"
TEXT = "/v2/models/text_upper/infer"
ONES = [1] * 16
HICL = "Inference-Header-Content-Length"


def inp(name="INPUT0", shape=(1, 16), datatype="INT32", data=None, **kw):
    d = {"name": name, "shape": list(shape), "datatype": datatype}
    if data is not False:
        d["data"] = ONES if data is None else data
    d.update(kw)
    return d


def doc(*inputs, **extra):
    d = {"inputs": list(inputs)}
    d.update(extra)
    return json.dumps(d)


def pair(**kw):
    """simple's two inputs, INPUT0 altered by kw."""
    return doc(inp("INPUT0", **kw), inp("INPUT1"))


def binreq(inputs, tail, header_len=None, **extra):
    """(body, headers) of a binary request: JSON header then tail."""
    h = json.dumps(dict({"inputs": inputs}, **extra)).encode()
    n = len(h) if header_len is None else header_len
    return h + tail, {HICL: str(n)}


def fp32_bin(size, shape=(1, 4), name="INPUT0"):
    return {"name": name, "shape": list(shape), "datatype": "FP32",
            "parameters": {"binary_data_size": size}}


def bytes_elems(*items):
    return b"".join(struct.pack("<I", len(x)) + x for x in items)


# (id, path, body, extra headers, status, words in the error)
CASES = [
    # -- broken JSON ---------------------------------------------------------
    ("json-truncated", SIMPLE, '{"inputs": [', None, 400, "parse"),
    ("json-trailing-garbage", SIMPLE, pair() + "xyz", None, 400, "parse"),
    ("json-two-documents", SIMPLE, pair() + pair(), None, 400, "parse"),
    ("json-single-quotes", SIMPLE, "{'inputs': []}", None, 400, "parse"),
    ("json-unterminated-string", SIMPLE, '{"inputs": "abc', None, 400,
     "parse"),
    ("json-nan-literal", IDENT,
     doc(inp(datatype="FP32", shape=(1, 1), data=[1])).replace("[1]",
                                                              "[NaN]"),
     None, 400, "parse"),
    ("json-comment", SIMPLE, "/* x */" + pair(), None, 400, "parse"),
    ("json-null", SIMPLE, "null", None, 400, ""),
    ("json-bare-number", SIMPLE, "42", None, 400, ""),
    ("json-whitespace-only", SIMPLE, "   \n\t ", None, 400, "parse"),
    ("json-control-char", SIMPLE, '{"id": "a\x01b", "inputs": []}', None,
     400, "parse"),
    ("json-duplicate-key", SIMPLE, '{"inputs": [], "inputs": []}', None,
     400, "parse"),
    ("json-huge-exponent", IDENT,
     doc(inp(datatype="FP32", shape=(1, 1), data=[1])).replace(
         "[1]", "[1e999]"), None, 400, ""),
    ("json-depth-101", SIMPLE, "[" * 101 + "]" * 101, None, 400,
     "nesting"),
    # -- wrong types in every field ------------------------------------------
    ("inputs-null", SIMPLE, '{"inputs": null}', None, 400, "inputs"),
    ("inputs-string", SIMPLE, '{"inputs": "INPUT0"}', None, 400, "inputs"),
    ("name-number", SIMPLE, doc(dict(inp(), name=0), inp("INPUT1")), None,
     400, "name"),
    ("name-null", SIMPLE, doc(dict(inp(), name=None), inp("INPUT1")), None,
     400, "name"),
    ("name-array", SIMPLE, doc(dict(inp(), name=["INPUT0"]), inp("INPUT1")),
     None, 400, "name"),
    ("datatype-number", SIMPLE, pair(datatype=8), None, 400, "datatype"),
    ("datatype-lowercase", SIMPLE, pair(datatype="int32"), None, 400,
     "datatype"),
    ("datatype-null", SIMPLE, pair(datatype=None), None, 400, "datatype"),
    ("shape-string", SIMPLE, pair(shape="1,16"), None, 400, "shape"),
    ("shape-object", SIMPLE, doc(dict(inp(), shape={"0": 1}),
                                 inp("INPUT1")), None, 400, "shape"),
    ("shape-nested", SIMPLE, doc(dict(inp(), shape=[[1, 16]]),
                                 inp("INPUT1")), None, 400, "shape"),
    ("shape-floats", SIMPLE, doc(dict(inp(), shape=[1.0, 16.0]),
                                 inp("INPUT1")), None, 400, "shape"),
    ("shape-bools", SIMPLE, doc(dict(inp(), shape=[True, 16]),
                                inp("INPUT1")), None, 400, "shape"),
    ("data-string", SIMPLE, pair(data="1111"), None, 400, ""),
    ("data-object", SIMPLE, pair(data={"a": 1}), None, 400, ""),
    ("data-null", SIMPLE, pair(data=[None] * 16), None, 400, "INT32"),
    ("data-bool-for-int", SIMPLE, pair(data=[True] * 16), None, 400,
     "INT32"),
    ("data-mixed-nesting", SIMPLE, pair(data=[[1] * 8, [[1] * 4, "x"]]),
     None, 400, ""),
    ("params-string", SIMPLE, doc(inp(), inp("INPUT1"), parameters="x"),
     None, 400, "parameters"),
    ("params-value-array", SIMPLE, doc(inp(), inp("INPUT1"),
                                       parameters={"a": [1]}), None, 400,
     "parameter"),
    ("params-value-null", SIMPLE, doc(inp(), inp("INPUT1"),
                                      parameters={"a": None}), None, 400,
     "parameter"),
    ("input-params-array", SIMPLE, pair(parameters=[1]), None, 400,
     "parameters"),
    ("binary-size-string", IDENT, *binreq(
        [dict(fp32_bin(16), parameters={"binary_data_size": "16"})],
        b"\0" * 16), 400, "binary_data_size"),
    ("binary-size-float", IDENT, *binreq(
        [dict(fp32_bin(16), parameters={"binary_data_size": 16.0})],
        b"\0" * 16), 400, "binary_data_size"),
    ("binary-size-bool", IDENT, *binreq(
        [dict(fp32_bin(16), parameters={"binary_data_size": True})],
        b"\0" * 16), 400, "binary_data_size"),
    ("output-string", SIMPLE, doc(inp(), inp("INPUT1"),
                                  outputs=["OUTPUT0"]), None, 400, "output"),
    ("output-name-number", SIMPLE, doc(inp(), inp("INPUT1"),
                                       outputs=[{"name": 0}]), None, 400,
     "output"),
    ("output-params-string", SIMPLE, doc(inp(), inp("INPUT1"), outputs=[
        {"name": "OUTPUT0", "parameters": "binary"}]), None, 400,
     "parameters"),
    ("output-binary-not-bool", SIMPLE, doc(inp(), inp("INPUT1"), outputs=[
        {"name": "OUTPUT0", "parameters": {"binary_data": 1}}]), None, 400,
     "binary_data"),
    ("id-array", SIMPLE, doc(inp(), inp("INPUT1"), id=["x"]), None, 400,
     "id"),
    # -- shape and data mismatches -------------------------------------------
    ("data-empty", SIMPLE, pair(data=[]), None, 400, "shape does not match true shape"),
    ("data-nested-too-many", SIMPLE, pair(data=[ONES, [1]]), None, 400,
     "Shape does not match true shape"),
    ("batch-mismatch", SIMPLE, doc(inp(), inp("INPUT1", shape=(2, 16),
                                             data=[1] * 32)), None, 400,
     "batch"),
    ("batch-zero", SIMPLE, doc(inp(shape=(0, 16), data=[]),
                               inp("INPUT1", shape=(0, 16), data=[])),
     None, 400, "batch"),
    ("rank-too-high", SIMPLE, pair(shape=(1, 16, 1)), None, 400, "shape"),
    # -- huge, negative, overflowing shapes ----------------------------------
    ("dim-negative-inner", SIMPLE, pair(shape=(1, -16)), None, 400,
     "shape"),
    ("dim-int64-max", IDENT, doc(inp(datatype="FP32",
                                     shape=(1, 9223372036854775807),
                                     data=[1.0])), None, 400, ""),
    ("dim-uint64", IDENT, doc(inp(datatype="FP32",
                                  shape=(1, 18446744073709551615),
                                  data=[1.0])), None, 400, "shape"),
    ("dims-17", IDENT, doc(inp(datatype="FP32", shape=[1] * 17,
                               data=[1.0])), None, 400, "dimensions"),
    ("shape-product-overflow-binary", TYPES, *binreq(
        [{"name": "IN_UINT8", "shape": [1, 2 ** 62], "datatype": "UINT8",
          "parameters": {"binary_data_size": 4}}], b"\0" * 4), 400, ""),
    # -- binary sizes that lie -----------------------------------------------
    ("binary-short", IDENT, *binreq([fp32_bin(12)], b"\0" * 12), 400,
     "input byte size mismatch for input 'INPUT0' for model "
     "'identity_fp32'. Expected 16, got 12"),
    ("binary-long", IDENT, *binreq([fp32_bin(20)], b"\0" * 20), 400,
     "Expected 16, got 20"),
    ("binary-beyond-body", IDENT, *binreq([fp32_bin(16)], b"\0" * 8), 400,
     "unexpected size for input 'INPUT0', expecting 8 additional bytes "
     "for model 'identity_fp32'"),
    ("binary-trailing-bytes", IDENT, *binreq([fp32_bin(16)], b"\0" * 20),
     400, "unexpected additional input data for model 'identity_fp32'"),
    ("binary-huge-size", IDENT, *binreq([fp32_bin(2 ** 62)], b"\0" * 16),
     400, "unexpected size for input 'INPUT0'"),
    ("binary-without-header", IDENT, doc(fp32_bin(16)), None, 400,
     "must specify valid 'Infer-Header-Content-Length' in request header "
     "and 'binary_data_size' when passing inputs in binary data format"),
    ("binary-and-data", IDENT, *binreq([dict(fp32_bin(16), data=[1] * 4)],
                                       b"\0" * 16), 400,
     "Input must set only one of the following fields: 'data', "
     "'binary_data_size' in 'parameters', 'shared_memory_region' in "
     "'parameters'. But set 'data' 'binary_data_size'"),
    ("binary-bytes-elem-beyond", TYPES, *binreq(
        [{"name": "IN_BYTES", "shape": [1, 1], "datatype": "BYTES",
          "parameters": {"binary_data_size": 6}}],
        struct.pack("<I", 100) + b"ab"), 400, "beyond"),
    ("binary-bytes-count", TYPES, *binreq(
        [{"name": "IN_BYTES", "shape": [1, 3], "datatype": "BYTES",
          "parameters": {"binary_data_size": 10}}],
        bytes_elems(b"ab", b"")), 400,
     "expected 3 string elements for inference input 'IN_BYTES' for model "
     "'all_types', got 2"),
    ("binary-bytes-truncated-prefix", TYPES, *binreq(
        [{"name": "IN_BYTES", "shape": [1, 2], "datatype": "BYTES",
          "parameters": {"binary_data_size": 8}}],
        bytes_elems(b"ab") + b"\1\0"), 400,
     "incomplete string length indicator for inference input 'IN_BYTES'"),
    ("binary-fp16-odd", TYPES, *binreq(
        [{"name": "IN_FP16", "shape": [1, 2], "datatype": "FP16",
          "parameters": {"binary_data_size": 3}}], b"\0" * 3), 400,
     "Expected 4, got 3"),
    # -- bad Inference-Header-Content-Length ---------------------------------
    ("hicl-negative", IDENT, doc(inp(datatype="FP32", shape=(1, 1),
                                     data=[1.0])), {HICL: "-1"}, 400,
     HICL),
    ("hicl-non-numeric", IDENT, "{}", {HICL: "ten"}, 400, HICL),
    ("hicl-empty", IDENT, "{}", {HICL: ""}, 400, HICL),
    ("hicl-hex", IDENT, "{}", {HICL: "0x2"}, 400, HICL),
    ("hicl-suffix", IDENT, "{}", {HICL: "2abc"}, 400, HICL),
    ("hicl-overflow", IDENT, "{}", {HICL: "99999999999999999999999"}, 400,
     HICL),
    ("hicl-beyond-body", IDENT, "{}", {HICL: "3"}, 400,
     "inference header size should be in range (0, 2), got: 3"),
    ("hicl-cuts-json", IDENT, *binreq([fp32_bin(16)], b"\0" * 16,
                                      header_len=10), 400, "parse"),
    ("hicl-zero-partial-element", IDENT, "abcdef", {HICL: "0"}, 400,
     "input byte size mismatch for input 'INPUT0' for model "
     "'identity_fp32'. Expected 4, got 6"),
    # -- duplicates, unknown names -------------------------------------------
    ("duplicate-binary-input", IDENT, *binreq(
        [fp32_bin(16), fp32_bin(16)], b"\0" * 32), 400,
     "input 'INPUT0' already exists in request"),
    ("duplicate-output", SIMPLE, doc(inp(), inp("INPUT1"), outputs=[
        {"name": "OUTPUT1"}, {"name": "OUTPUT1"}]), None, 400,
     "output 'OUTPUT1' already exists in request"),
    ("unknown-output-binary", IDENT, *binreq(
        [fp32_bin(16)], b"\0" * 16, outputs=[
            {"name": "OUTPUT9", "parameters": {"binary_data": True}}]),
     400, "OUTPUT9"),
    ("input-name-case", SIMPLE, doc(inp("input0"), inp("INPUT1")), None,
     400, "input0"),
    # -- bad UTF-8 and bad names ---------------------------------------------
    ("input-name-bad-utf8", SIMPLE,
     b'{"inputs": [{"name": "IN\xff\xfe", "shape": [1], "datatype": '
     b'"INT32", "data": [1]}]}', None, 400, "parse"),
    ("id-bad-utf8", SIMPLE, b'{"id": "\xc3\x28", "inputs": []}', None, 400,
     "parse"),
    ("model-name-utf8", "/v2/models/mod%C3%A9l/infer", "{}", None, 400,
     "model name"),
    ("model-name-space", "/v2/models/sim%20ple/infer", "{}", None, 400,
     "model name"),
    ("model-name-semicolon", "/v2/models/a;b/infer", "{}", None, 400,
     "model name"),
    ("model-name-dotdot", "/v2/models/../ready", None, None, 404, ""),
    ("model-name-hidden", "/v2/models/.simple/config", None, None, 400,
     "model name"),
    ("model-name-dots", "/v2/models/.../config", None, None, 400,
     "model name"),
    ("model-name-backslash", "/v2/models/a%5Cb/ready", None, None, 400,
     "model name"),
]


def send(gateway, path, body, headers):
    if body is None:
        return gateway.get(path)
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return gateway.post(path, data=body.encode() if isinstance(body, str)
                        else body, headers=h)


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_hostile(gateway, case):
    _, path, body, headers, status, words = case
    r = send(gateway, path, body, headers)
    assert r.status_code == status, r.text
    err = r.json().get("error")
    assert isinstance(err, str) and err, r.text
    assert words in err, err


def test_enough_cases():
    assert len(CASES) >= 60


# -- limits (the guarded server: kserve_max_* in conftest) ---------------------

KEY = {"X-API-Key": "key-one"}

LIMIT_CASES = [
    ("max-inputs", SIMPLE, doc(inp(), inp("INPUT1"), inp("INPUT9")), KEY,
     "too many inputs"),
    ("max-outputs", SIMPLE, doc(inp(), inp("INPUT1"), outputs=[
        {"name": "OUTPUT0"}, {"name": "OUTPUT1"}]), KEY, "too many outputs"),
    ("max-json-depth", SIMPLE, pair(data=[[[[1] * 16]]]), KEY,
     "JSON nesting depth exceeds maximum allowed limit (4)"),
    ("max-tensor-elements", SIMPLE,
     doc(inp(shape=(2, 16), data=[1] * 32),
         inp("INPUT1", shape=(2, 16), data=[1] * 32)), KEY,
     "more than 16 elements"),
    ("max-bytes-element", TEXT, doc(inp(datatype="BYTES", shape=(1, 1),
                                        data=["123456789"])),
     {"Authorization": "Bearer key-one"}, "longer than the limit"),
    ("max-bytes-element-binary", TEXT, *[binreq(
        [{"name": "INPUT0", "shape": [1, 1], "datatype": "BYTES",
          "parameters": {"binary_data_size": 13}}], bytes_elems(b"x" * 9))[0]],
     {"Authorization": "Bearer key-one", HICL: str(len(json.dumps(
         {"inputs": [{"name": "INPUT0", "shape": [1, 1], "datatype": "BYTES",
                      "parameters": {"binary_data_size": 13}}]})))},
     "longer than the limit"),
]


@pytest.mark.parametrize("case", LIMIT_CASES, ids=[c[0] for c in LIMIT_CASES])
def test_limits(gateway, case):
    _, path, body, headers, words = case
    r = requests.post(gateway.guard_url + path, timeout=30, headers=headers,
                      data=body.encode() if isinstance(body, str) else body)
    assert r.status_code == 400, r.text
    assert words in r.json()["error"]


def test_limits_allow_within(gateway):
    r = requests.post(gateway.guard_url + SIMPLE, data=pair(), headers=KEY,
                      timeout=30)
    assert r.status_code == 200, r.text


# -- slow bodies ------------------------------------------------------------------

def test_slowloris_body(gateway):
    """A body that trickles in: client_body_timeout (2 s on the guarded
    server) ends it with 408 or a closed connection, while other clients
    are served all along."""
    body = pair().encode()
    results = {}

    def slow():
        s = socket.create_connection(("127.0.0.1", gateway.guard_port))
        s.settimeout(20)
        s.sendall(("POST %s HTTP/1.1\r\nHost: x\r\nX-API-Key: key-one\r\n"
                   "Content-Length: %d\r\n\r\n" % (SIMPLE, len(body))
                   ).encode())
        s.sendall(body[:10])
        start = time.monotonic()
        reply = b""
        try:
            time.sleep(3.5)
            s.sendall(body[10:11])
            while True:
                chunk = s.recv(4096)
                if not chunk:
                    break
                reply += chunk
        except OSError:
            pass
        results["reply"] = reply
        results["elapsed"] = time.monotonic() - start
        s.close()

    threads = [threading.Thread(target=slow) for _ in range(8)]
    for t in threads:
        t.start()
    # the others are served meanwhile, promptly
    for _ in range(10):
        t0 = time.monotonic()
        r = gateway.post(SIMPLE, data=pair())
        assert r.status_code == 200
        assert time.monotonic() - t0 < 2
        time.sleep(0.2)
    for t in threads:
        t.join(30)
    assert results["reply"] == b"" or b" 408 " in results["reply"]
    assert results["elapsed"] < 15


def test_serving_after_hostile(gateway):
    for case in CASES:
        send(gateway, case[1], case[2], case[3])
    r = gateway.post(SIMPLE, data=pair())
    assert r.status_code == 200, r.text
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["OUTPUT0"]["data"] == [2] * 16
