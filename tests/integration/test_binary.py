"""Triton's binary tensor extension, both directions: tritonclient in its
default (binary) mode, raw requests, mixed JSON and binary, big bodies
kept in memory or spooled to a file."""

import json

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

TYPES = [
    ("BOOL", np.bool_, [True, False, True]),
    ("UINT8", np.uint8, [0, 1, 255]),
    ("UINT16", np.uint16, [0, 7, 65535]),
    ("UINT32", np.uint32, [0, 7, 4294967295]),
    ("UINT64", np.uint64, [0, 7, 18446744073709551615]),
    ("INT8", np.int8, [-128, 0, 127]),
    ("INT16", np.int16, [-32768, 0, 32767]),
    ("INT32", np.int32, [-2147483648, 0, 2147483647]),
    ("INT64", np.int64, [-9223372036854775808, 0, 9223372036854775807]),
    ("FP16", np.float16, [-1.5, 0.0, 65504.0]),
    ("FP32", np.float32, [-1.5, float("inf"), 3.25]),
    ("FP64", np.float64, [-1e300, float("nan"), 2.5e-300]),
    ("BYTES", np.object_, [b"a", b"", b"\x00\xff binary"]),
]


def binary_input(name, array, datatype):
    inp = httpclient.InferInput(name, list(array.shape), datatype)
    inp.set_data_from_numpy(array, binary_data=True)
    return inp


@pytest.mark.parametrize("datatype,dtype,values", TYPES,
                         ids=[t[0] for t in TYPES])
def test_every_datatype_binary(client, datatype, dtype, values):
    x = np.array([values], dtype=dtype)
    result = client.infer(
        "all_types", [binary_input("IN_" + datatype, x, datatype)],
        outputs=[httpclient.InferRequestedOutput("OUT_" + datatype)])
    out = result.as_numpy("OUT_" + datatype)
    if datatype == "BYTES":
        assert [bytes(v) for v in out.reshape(-1)] == values
    else:
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, x)
    # the reply was binary: the output has no "data" in the JSON part
    desc = result.get_output("OUT_" + datatype)
    assert "data" not in desc
    assert desc["parameters"]["binary_data_size"] == x.nbytes \
        if datatype != "BYTES" else True


def test_all_types_at_once_default_outputs(client):
    """No outputs named: tritonclient asks binary_data_output."""
    inputs = [binary_input("IN_" + t, np.array([v], dtype=d), t)
              for t, d, v in TYPES]
    result = client.infer("all_types", inputs)
    for t, d, v in TYPES:
        out = result.as_numpy("OUT_" + t)
        if t == "BYTES":
            assert [bytes(e) for e in out.reshape(-1)] == v
        else:
            np.testing.assert_array_equal(out, np.array([v], dtype=d))


def test_fp16_json_output_is_widened(client):
    x = np.array([[0.5, -2.0]], dtype=np.float16)
    result = client.infer(
        "all_types", [binary_input("IN_FP16", x, "FP16")],
        outputs=[httpclient.InferRequestedOutput("OUT_FP16",
                                                 binary_data=False)])
    assert result.get_output("OUT_FP16")["data"] == [0.5, -2.0]


def test_mixed_binary_and_json_outputs(gateway):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    header = json.dumps({
        "inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32",
             "parameters": {"binary_data_size": 64}},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32",
             "data": [1] * 16}],
        "outputs": [{"name": "OUTPUT0", "parameters": {"binary_data": True}},
                    {"name": "OUTPUT1"}]}).encode()
    r = gateway.post("/v2/models/simple/infer", data=header + a.tobytes(),
                     headers={"Inference-Header-Content-Length":
                              str(len(header))})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/octet-stream"
    hlen = int(r.headers["Inference-Header-Content-Length"])
    doc = json.loads(r.content[:hlen])
    out = {o["name"]: o for o in doc["outputs"]}
    assert out["OUTPUT0"]["parameters"]["binary_data_size"] == 64
    assert "data" not in out["OUTPUT0"]
    assert out["OUTPUT1"]["data"] == [i - 1 for i in range(16)]
    got = np.frombuffer(r.content[hlen:], dtype=np.int32)
    np.testing.assert_array_equal(got, a.reshape(-1) + 1)


def test_binary_request_json_reply(gateway):
    """Binary in, nothing asked binary out: a plain JSON reply."""
    x = np.array([[1.0, 2.5]], dtype=np.float32)
    header = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [1, 2], "datatype": "FP32",
         "parameters": {"binary_data_size": 8}}]}).encode()
    r = gateway.post("/v2/models/identity_fp32/infer",
                     data=header + x.tobytes(),
                     headers={"Inference-Header-Content-Length":
                              str(len(header))})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/json"
    assert "Inference-Header-Content-Length" not in r.headers
    assert r.json()["outputs"][0]["data"] == [1.0, 2.5]


def test_raw_request(gateway):
    """Inference-Header-Content-Length: 0, the body is the only input."""
    x = np.arange(6, dtype=np.float32)
    r = gateway.post("/v2/models/identity_fp32/infer", data=x.tobytes(),
                     headers={"Inference-Header-Content-Length": "0"})
    assert r.status_code == 200, r.text
    hlen = int(r.headers["Inference-Header-Content-Length"])
    doc = json.loads(r.content[:hlen])
    assert doc["outputs"][0]["shape"][-1] == 6
    np.testing.assert_array_equal(
        np.frombuffer(r.content[hlen:], dtype=np.float32), x)


def test_raw_request_needs_one_input(gateway):
    r = gateway.post("/v2/models/simple/infer", data=b"\0" * 128,
                     headers={"Inference-Header-Content-Length": "0"})
    assert r.status_code == 400
    assert "1 input" in r.json()["error"]


def test_raw_request_fp32_batch_shape(gateway):
    """args_echo: no batching, [-1] FP32: the shape is the byte count / 4;
    a body that is not whole elements is refused."""
    r = gateway.post("/v2/models/args_echo/infer", data=b"\0" * 12,
                     headers={"Inference-Header-Content-Length": "0"})
    assert r.status_code == 200, r.text
    assert r.headers["Content-Type"] == "application/octet-stream"
    r = gateway.post("/v2/models/args_echo/infer", data=b"\0" * 13,
                     headers={"Inference-Header-Content-Length": "0"})
    assert r.status_code == 400
    # Triton's words: the -1 dimension deduced by division, then compared
    assert "input byte size mismatch for input 'INPUT0' for model " \
           "'args_echo'. Expected 12, got 13" in r.json()["error"], r.text


@pytest.mark.parametrize("mb", [1, 32])
def test_large_binary_body(gateway, mb):
    """1 MB: in memory, well above the 64k buffer: spooled to a file."""
    x = np.random.default_rng(mb).random(mb * 262144, dtype=np.float32)
    c = httpclient.InferenceServerClient("127.0.0.1:%d" % gateway.guard_port,
                                         network_timeout=120)
    try:
        result = c.infer("identity_fp32",
                         [binary_input("INPUT0", x.reshape(1, -1), "FP32")],
                         headers={"X-API-Key": gateway.api_keys[0]})
        np.testing.assert_array_equal(result.as_numpy("OUTPUT0").reshape(-1),
                                      x)
    finally:
        c.close()


def test_large_binary_body_in_memory(gateway):
    """The default server: 4m limit, body kept in memory when it fits
    client_body_buffer_size (default 16k: a 12 KB body)."""
    x = np.arange(3000, dtype=np.float32)
    header = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [1, 3000], "datatype": "FP32",
         "parameters": {"binary_data_size": x.nbytes}}],
        "parameters": {"binary_data_output": True}}).encode()
    r = gateway.post("/v2/models/identity_fp32/infer",
                     data=header + x.tobytes(),
                     headers={"Inference-Header-Content-Length":
                              str(len(header))})
    assert r.status_code == 200, r.text
    hlen = int(r.headers["Inference-Header-Content-Length"])
    np.testing.assert_array_equal(
        np.frombuffer(r.content[hlen:], dtype=np.float32), x)


def test_chunked_binary_body(gateway):
    """A chunked body arrives in pieces: gathered once."""
    x = np.arange(5000, dtype=np.float32)
    header = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [1, 5000], "datatype": "FP32",
         "parameters": {"binary_data_size": x.nbytes}}]}).encode()
    data = header + x.tobytes()

    def chunks():
        for i in range(0, len(data), 4096):
            yield data[i:i + 4096]

    r = requests.post(gateway.url + "/v2/models/identity_fp32/infer",
                      data=chunks(), timeout=30,
                      headers={"Inference-Header-Content-Length":
                               str(len(header))})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"][-1] == 4999.0
