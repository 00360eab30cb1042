"""The CUDA backend through the whole stack (nginx, worker, instances).

Without a GPU the cuda models run their CPU entry points; `make test-gpu`
runs this file with KSV_REQUIRE_GPU=1, which makes kserve-cuda-instance
refuse that fallback, so on a GPU machine the same assertions prove the
GPU path (and on a machine without one, the models fail to load).

digits_mlp (CUDA backend) and digits_mlp_py (numpy on the Python
backend) serve the same trained weights; conf/models/digits_mlp/ holds
the held-out split and the accuracy train.py reported (`make models`).
"""

import concurrent.futures
import json
import os
import time

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import TOP, wait_for

DIGITS = os.path.join(TOP, "conf", "models", "digits_mlp")
REQUIRE_GPU = os.environ.get("KSV_REQUIRE_GPU", "") not in ("", "0")


def json_input(name, array, datatype):
    inp = httpclient.InferInput(name, list(array.shape), datatype)
    inp.set_data_from_numpy(array, binary_data=False)
    return inp


def json_output(name):
    return httpclient.InferRequestedOutput(name, binary_data=False)


@pytest.fixture(scope="module")
def cuda_gateway(gateway):
    for model in ("simple_cuda", "digits_mlp", "digits_mlp_py"):
        assert gateway.wait_model_ready(model, timeout=60), \
            "%s never became ready; worker log:\n%s" % (
                model, open(gateway.worker_log).read()[-4000:])
    return gateway


def infer_simple(client, a, b):
    res = client.infer("simple_cuda", [json_input("INPUT0", a, "INT32"),
                                       json_input("INPUT1", b, "INT32")],
                       outputs=[json_output("OUTPUT0"),
                                json_output("OUTPUT1")])
    return res.as_numpy("OUTPUT0"), res.as_numpy("OUTPUT1")


def digits(client, model, x):
    res = client.infer(model, [json_input("INPUT0", x, "FP32")],
                       outputs=[json_output("OUTPUT0")])
    return res.as_numpy("OUTPUT0")


# ---- simple_cuda --------------------------------------------------------

def test_simple_cuda(cuda_gateway, client):
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    b = np.full((1, 16), 3, dtype=np.int32)
    s, d = infer_simple(client, a, b)
    assert s.shape == (1, 16) and s.dtype == np.int32
    np.testing.assert_array_equal(s, a + b)
    np.testing.assert_array_equal(d, a - b)


def test_simple_cuda_full_batch_and_wraparound(cuda_gateway, client):
    rng = np.random.default_rng(7)
    a = rng.integers(-2**31, 2**31 - 1, size=(8, 16), dtype=np.int32)
    b = rng.integers(-2**31, 2**31 - 1, size=(8, 16), dtype=np.int32)
    s, d = infer_simple(client, a, b)
    with np.errstate(over="ignore"):
        np.testing.assert_array_equal(s, a + b)
        np.testing.assert_array_equal(d, a - b)


def test_simple_cuda_concurrent_requests_split_by_rows(cuda_gateway):
    """Concurrent requests of different row counts are batched together
    by the worker and concatenated by the instance; each must get back
    exactly its own rows."""
    c = httpclient.InferenceServerClient(
        "127.0.0.1:%d" % cuda_gateway.port, concurrency=16)
    try:
        jobs = []
        for i in range(64):
            rows = 1 + i % 4
            a = np.full((rows, 16), i, dtype=np.int32)
            a[:, 0] = np.arange(rows)
            b = np.full((rows, 16), 1000 * i, dtype=np.int32)
            jobs.append((a, b, c.async_infer(
                "simple_cuda", [json_input("INPUT0", a, "INT32"),
                                json_input("INPUT1", b, "INT32")],
                outputs=[json_output("OUTPUT0"), json_output("OUTPUT1")])))
        for a, b, job in jobs:
            res = job.get_result()
            np.testing.assert_array_equal(res.as_numpy("OUTPUT0"), a + b)
            np.testing.assert_array_equal(res.as_numpy("OUTPUT1"), a - b)
    finally:
        c.close()


def test_simple_cuda_rejects_bad_shape(cuda_gateway):
    body = {"inputs": [
        {"name": "INPUT0", "shape": [1, 15], "datatype": "INT32",
         "data": list(range(15))},
        {"name": "INPUT1", "shape": [1, 15], "datatype": "INT32",
         "data": list(range(15))}]}
    r = cuda_gateway.post("/v2/models/simple_cuda/infer", json=body)
    assert r.status_code == 400, r.text
    assert "error" in r.json()


def test_simple_cuda_batch_too_large(cuda_gateway, client):
    a = np.zeros((9, 16), dtype=np.int32)
    with pytest.raises(InferenceServerException) as e:
        infer_simple(client, a, a)
    assert "batch" in str(e.value).lower()


# ---- digits_mlp -----------------------------------------------------------

@pytest.fixture(scope="module")
def held_out():
    x = np.load(os.path.join(DIGITS, "X_test.npy"))
    y = np.load(os.path.join(DIGITS, "y_test.npy"))
    with open(os.path.join(DIGITS, "train_report.json")) as f:
        report = json.load(f)
    return x.astype(np.float32), y, report


def run_split(client, model, x, rows):
    return np.concatenate([digits(client, model, x[i:i + rows])
                           for i in range(0, len(x), rows)])


def test_digits_backends_agree_and_reach_trained_accuracy(cuda_gateway,
                                                          client, held_out):
    x, y, report = held_out
    cuda = run_split(client, "digits_mlp", x, 100)
    py = run_split(client, "digits_mlp_py", x, 100)

    assert cuda.shape == (len(x), 10) and cuda.dtype == np.float32
    np.testing.assert_allclose(cuda.sum(axis=1), 1.0, atol=1e-5)
    assert np.max(np.abs(cuda - py)) <= 1e-5

    acc_cuda = float((cuda.argmax(axis=1) == y).mean())
    acc_py = float((py.argmax(axis=1) == y).mean())
    assert acc_cuda == pytest.approx(report["accuracy"], abs=1e-9)
    assert acc_py == pytest.approx(report["accuracy"], abs=1e-9)
    assert report["accuracy"] > 0.9


def test_digits_one_request_of_max_batch_rows(cuda_gateway, client,
                                              held_out):
    x, _, _ = held_out
    big = np.concatenate([x, x])[:256]
    one = digits(client, "digits_mlp", big)
    assert one.shape == (256, 10)
    rowwise = np.concatenate([digits(client, "digits_mlp", big[i:i + 1])
                              for i in range(0, 256, 51)])
    np.testing.assert_allclose(one[::51], rowwise, atol=1e-6)

    with pytest.raises(InferenceServerException):
        digits(client, "digits_mlp", np.concatenate([big, big[:1]]))


def test_digits_many_concurrent_single_rows(cuda_gateway, held_out):
    """360 one-row requests at once: the dynamic batcher forms batches
    of many requests; every answer must be its own row's."""
    x, _, _ = held_out
    c = httpclient.InferenceServerClient(
        "127.0.0.1:%d" % cuda_gateway.port, concurrency=32)
    try:
        reference = digits(c, "digits_mlp", x[:200])
        jobs = [c.async_infer("digits_mlp",
                              [json_input("INPUT0", x[i:i + 1], "FP32")],
                              outputs=[json_output("OUTPUT0")])
                for i in range(200)]
        got = np.concatenate([j.get_result().as_numpy("OUTPUT0")
                              for j in jobs])
    finally:
        c.close()
    np.testing.assert_allclose(got, reference, atol=1e-6)

    stats = cuda_gateway.get("/v2/models/digits_mlp/stats").json()
    s = stats["model_stats"][0]
    assert s["inference_count"] >= 400
    # compute durations come from the instance
    assert s["inference_stats"]["compute_infer"]["ns"] > 0


# ---- loading and the path chosen ---------------------------------------

def unavailable_reason(gw, model):
    """The 503 message once the model's only version gave up loading."""
    found = {}

    def check():
        r = gw.post("/v2/models/%s/infer" % model, json={"inputs": [
            {"name": "IN", "shape": [1], "datatype": "FP32", "data": [1]}]})
        found["r"] = r
        return r.status_code == 503 and "failed to load" in r.text

    assert wait_for(check, timeout=30), found["r"].text
    return found["r"]


def test_broken_library_is_not_ready_with_reason(cuda_gateway):
    r = unavailable_reason(cuda_gateway, "cuda_broken")
    msg = r.json()["error"]
    assert "cannot load model library" in msg
    assert "cuda_broken/1/model.so" in msg
    assert cuda_gateway.get("/v2/models/cuda_broken/ready").status_code == 400


def test_library_without_entry_points_is_not_ready(cuda_gateway):
    r = unavailable_reason(cuda_gateway, "cuda_nosym")
    msg = r.json()["error"]
    assert "does not export ksv_cuda_model_create" in msg
    assert cuda_gateway.get("/v2/models/cuda_nosym/ready").status_code == 400


def test_instance_logs_its_path(cuda_gateway):
    log = open(cuda_gateway.worker_log).read()
    if REQUIRE_GPU:
        assert "digits_mlp_0_0: loaded" in log and "on the GPU" in log
        assert "running the model's CPU entry point" not in log
    else:
        assert "loaded" in log and (
            "running the model's CPU entry point" in log
            or "on the GPU" in log)


def test_python_gpu_instance_gets_cuda_visible_devices(cuda_gateway,
                                                       client):
    assert cuda_gateway.wait_model_ready("gpu_env")
    res = client.infer("gpu_env", [json_input(
        "INPUT0", np.zeros(1, dtype=np.float32), "FP32")],
        outputs=[json_output("ENV")])
    seen = json.loads(res.as_numpy("ENV")[0])
    assert seen["device_id"] == "1"
    expected = "1"
    inherited = os.environ.get("CUDA_VISIBLE_DEVICES")
    if inherited:
        parts = inherited.split(",")
        expected = parts[1] if len(parts) > 1 else "1"
    assert seen["CUDA_VISIBLE_DEVICES"] == expected


def test_pools_reserved_once(cuda_gateway):
    """Everything above fit max_batch_size rows: after the warm-up
    reservation the request path never allocated."""
    log = open(cuda_gateway.worker_log).read()
    assert "reserved for 256 rows" in log
    assert "buffer pools grew" not in log
