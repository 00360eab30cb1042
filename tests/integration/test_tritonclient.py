"""The official tritonclient against nginx: the protocol as users see it."""

import json

import numpy as np
import pytest
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException


def json_input(name, array, datatype):
    inp = httpclient.InferInput(name, list(array.shape), datatype)
    inp.set_data_from_numpy(array, binary_data=False)
    return inp


def json_output(name):
    return httpclient.InferRequestedOutput(name, binary_data=False)


def test_server_live_and_ready(client):
    assert client.is_server_live()
    assert client.is_server_ready()


def test_server_metadata(client):
    md = client.get_server_metadata()
    assert md["name"]
    assert md["version"]
    assert "model_configuration" in md["extensions"]


def test_model_ready(client):
    assert client.is_model_ready("simple")
    assert client.is_model_ready("simple", "1")
    assert not client.is_model_ready("simple", "7")
    assert not client.is_model_ready("no_such_model")


def test_model_metadata_batch_dim(client):
    md = client.get_model_metadata("simple")
    assert md["name"] == "simple"
    assert md["versions"] == ["1"]
    assert md["platform"] == "python"
    inputs = {t["name"]: t for t in md["inputs"]}
    assert set(inputs) == {"INPUT0", "INPUT1"}
    # max_batch_size > 0: the batch dimension shows as -1 first
    assert inputs["INPUT0"]["shape"] == [-1, 16]
    assert inputs["INPUT0"]["datatype"] == "INT32"
    outputs = {t["name"]: t for t in md["outputs"]}
    assert outputs["OUTPUT1"]["shape"] == [-1, 16]

    versioned = client.get_model_metadata("simple", "1")
    assert versioned["inputs"] == md["inputs"]


def test_model_metadata_unknown(client):
    with pytest.raises(InferenceServerException) as e:
        client.get_model_metadata("no_such_model")
    assert "Request for unknown model: 'no_such_model' is not found" \
        in str(e.value)


def test_model_config(client):
    cfg = client.get_model_config("simple")
    assert cfg["name"] == "simple"
    assert cfg["backend"] == "python"
    assert cfg["max_batch_size"] == 8
    names = [t["name"] for t in cfg["input"]]
    assert names == ["INPUT0", "INPUT1"]
    assert cfg["input"][0]["data_type"] == "TYPE_INT32"
    assert cfg["input"][0]["dims"] == [16]
    assert cfg["instance_group"][0]["kind"] == "KIND_CPU"


def test_infer_simple(client):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.ones((1, 16), dtype=np.int32)
    result = client.infer(
        "simple", [json_input("INPUT0", a, "INT32"),
                   json_input("INPUT1", b, "INT32")],
        outputs=[json_output("OUTPUT0"), json_output("OUTPUT1")],
        request_id="req-42")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)
    response = result.get_response()
    assert response["model_name"] == "simple"
    assert response["model_version"] == "1"
    assert response["id"] == "req-42"


def test_infer_simple_batch_and_version(client):
    a = np.random.randint(-1000, 1000, size=(8, 16), dtype=np.int32)
    b = np.random.randint(-1000, 1000, size=(8, 16), dtype=np.int32)
    result = client.infer(
        "simple", [json_input("INPUT0", a, "INT32"),
                   json_input("INPUT1", b, "INT32")],
        model_version="1")
    np.testing.assert_array_equal(result.as_numpy("OUTPUT0"), a + b)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - b)


def test_infer_only_requested_output(client):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    result = client.infer(
        "simple", [json_input("INPUT0", a, "INT32"),
                   json_input("INPUT1", a, "INT32")],
        outputs=[json_output("OUTPUT1")])
    assert result.as_numpy("OUTPUT0") is None
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), a - a)


def test_infer_identity_fp32_round_trips_exactly(client):
    x = np.random.default_rng(7).standard_normal((3, 100)) \
        .astype(np.float32)
    x[0, :4] = [0.0, -0.0, 1e-38, 3.4028235e38]
    result = client.infer("identity_fp32", [json_input("INPUT0", x, "FP32")])
    out = result.as_numpy("OUTPUT0")
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, x)


def test_infer_bytes_model(client):
    x = np.array([[b"hello", b"World", "caf\u00e9".encode()]], dtype=object)
    result = client.infer("text_upper", [json_input("INPUT0", x, "BYTES")])
    out = result.as_numpy("OUTPUT0")
    assert [v.decode() if isinstance(v, bytes) else v
            for v in out.reshape(-1)] == ["HELLO", "WORLD", "CAF\u00c9"]


@pytest.mark.parametrize("datatype,dtype,values", [
    ("BOOL", np.bool_, [True, False, True]),
    ("UINT8", np.uint8, [0, 1, 255]),
    ("UINT16", np.uint16, [0, 7, 65535]),
    ("UINT32", np.uint32, [0, 7, 4294967295]),
    ("UINT64", np.uint64, [0, 7, 18446744073709551615]),
    ("INT8", np.int8, [-128, 0, 127]),
    ("INT16", np.int16, [-32768, 0, 32767]),
    ("INT32", np.int32, [-2147483648, 0, 2147483647]),
    ("INT64", np.int64, [-9223372036854775808, 0, 9223372036854775807]),
    ("FP32", np.float32, [-1.5, 0.0, 3.25]),
    ("FP64", np.float64, [-1e300, 0.1, 2.5e-300]),
    ("BYTES", np.object_, [b"a", b"", b"xyz"]),
])
def test_every_json_datatype(client, datatype, dtype, values):
    x = np.array([values], dtype=dtype)
    name = "IN_" + datatype
    result = client.infer("all_types", [json_input(name, x, datatype)],
                          outputs=[json_output("OUT_" + datatype)])
    out = result.as_numpy("OUT_" + datatype)
    if datatype == "BYTES":
        assert [bytes(v) if not isinstance(v, str) else v.encode()
                for v in out.reshape(-1)] == values
    else:
        assert out.dtype == dtype
        np.testing.assert_array_equal(out, x)


def test_model_error_maps_status(client):
    x = np.zeros((1, 4), dtype=np.float32)
    with pytest.raises(InferenceServerException) as e:
        client.infer("error_model", [json_input("INPUT0", x, "FP32")])
    assert e.value.status() == "400"
    assert "bad thing" in e.value.message()


def test_model_exception_is_500(client):
    x = np.zeros((1, 4), dtype=np.float32)
    with pytest.raises(InferenceServerException) as e:
        client.infer("fail_model", [json_input("INPUT0", x, "FP32")])
    assert e.value.status() == "500"
    assert "fail_model always fails" in e.value.message()


def test_initialize_args_are_tritons(client):
    x = np.zeros((1,), dtype=np.float32)
    result = client.infer("args_echo", [json_input("INPUT0", x, "FP32")])
    args = json.loads(result.as_numpy("ARGS").reshape(-1)[0])
    assert set(args) >= {"model_config", "model_instance_kind",
                         "model_instance_name", "model_instance_device_id",
                         "model_repository", "model_version", "model_name"}
    assert args["model_name"] == "args_echo"
    assert args["model_version"] == "1"
    assert args["model_instance_kind"] == "CPU"
    assert args["model_repository"].endswith("/args_echo")
    assert json.loads(args["model_config"])["name"] == "args_echo"
