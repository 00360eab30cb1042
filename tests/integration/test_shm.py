"""Triton's system and CUDA shared memory extensions, with the official
client (tritonclient.http and tritonclient.utils.shared_memory, as
Triton's simple_http_shm_client.py uses them).

The session gateway's instances listen on ipc://, so its requests take
the direct path (the instance maps the client's region); a second
worker with tcp:// instances and its own nginx exercises the copied
path (nginx maps the region and the bytes travel as frames).
"""

import base64
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time

import numpy as np
import pytest
import requests

import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from conftest import BUILD, TOP, free_port, nginx_env, wait_for


def key(name):
    """A POSIX shm name of this test run (the machine's /dev/shm is shared
    with whatever else runs)."""
    return "/ksv_t%d_%s" % (os.getpid(), name)


class Regions:
    """Regions a test creates, destroyed (and unregistered) after it."""

    def __init__(self, client):
        self.client = client
        self.handles = []

    def create(self, name, size, register=True, offset=0):
        h = shm.create_shared_memory_region(name, key(name), size)
        self.handles.append(h)
        if register:
            self.client.register_system_shared_memory(name, key(name),
                                                      size - offset,
                                                      offset=offset)
        return h

    def close(self):
        try:
            self.client.unregister_system_shared_memory()
        finally:
            for h in self.handles:
                shm.destroy_shared_memory_region(h)


@pytest.fixture
def regions(client):
    r = Regions(client)
    yield r
    r.close()


def simple_inputs(in_region, out_region, binary_output=False):
    """INPUT0/INPUT1 of simple, both in in_region (64 bytes each), the two
    outputs in out_region, as simple_http_shm_client.py sets them."""
    inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"),
              httpclient.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_shared_memory(in_region, 64)
    inputs[1].set_shared_memory(in_region, 64, offset=64)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0",
                                               binary_data=binary_output),
               httpclient.InferRequestedOutput("OUTPUT1",
                                               binary_data=binary_output)]
    outputs[0].set_shared_memory(out_region, 64)
    outputs[1].set_shared_memory(out_region, 64, offset=64)
    return inputs, outputs


def error_of(excinfo):
    return excinfo.value.message()


# ---- registry ---------------------------------------------------------------

def test_register_status_unregister(client, regions, gateway):
    regions.create("reg_a", 128)
    regions.create("reg_b", 256, offset=32)

    status = {r["name"]: r for r in client.get_system_shared_memory_status()}
    assert status["reg_a"] == {"name": "reg_a", "key": key("reg_a"),
                               "offset": 0, "byte_size": 128}
    assert status["reg_b"] == {"name": "reg_b", "key": key("reg_b"),
                               "offset": 32, "byte_size": 224}

    one = client.get_system_shared_memory_status(region_name="reg_b")
    assert [r["name"] for r in one] == ["reg_b"]

    with pytest.raises(InferenceServerException) as e:
        client.register_system_shared_memory("reg_a", key("reg_a"), 128)
    assert error_of(e) == "shared memory region 'reg_a' already in manager"

    client.unregister_system_shared_memory("reg_a")
    names = [r["name"] for r in client.get_system_shared_memory_status()]
    assert "reg_a" not in names and "reg_b" in names

    r = gateway.get("/v2/systemsharedmemory/region/reg_a/status")
    assert r.status_code == 404
    assert r.json()["error"] == \
        "Unable to find system shared memory region: 'reg_a'"

    # unregistering what is not registered is no error (Triton's)
    client.unregister_system_shared_memory("reg_a")


def test_register_errors(client, regions, gateway):
    regions.create("small", 64, register=False)

    cases = [
        ({"key": key("small"), "byte_size": 65},
         "failed to register shared memory region 'bad': invalid args"),
        ({"key": key("small"), "offset": 60, "byte_size": 8},
         "failed to register shared memory region 'bad': invalid args"),
        ({"key": key("nothere"), "byte_size": 8},
         "Unable to open shared memory region: '%s'" % key("nothere")),
        ({"key": "/etc/passwd", "byte_size": 8},
         "cannot register shared memory region 'bad' - invalid shm key "
         "'/etc/passwd'"),
        ({"key": "///", "byte_size": 8},
         "cannot register shared memory region 'bad' - invalid shm key "
         "'///'"),
        ({"key": "/../x", "byte_size": 8}, None),
        ({"key": "//triton_python_backend_shm_region_1", "byte_size": 8},
         "cannot register shared memory region 'bad' with key "
         "'//triton_python_backend_shm_region_1' as the key contains the "
         "reserved prefix 'triton_python_backend_shm_region_'"),
        ({"byte_size": 8},
         "Shared memory register request has no 'key' field"),
        ({"key": key("small")},
         "Shared memory register request has no 'byte_size' field"),
        ({"key": key("small"), "byte_size": -1}, None),
    ]
    for body, message in cases:
        r = gateway.post("/v2/systemsharedmemory/region/bad/register",
                         data=json.dumps(body))
        assert r.status_code == 400, (body, r.text)
        if message is not None:
            assert r.json()["error"] == message
    r = gateway.post("/v2/systemsharedmemory/region/bad/register",
                     data="{not json")
    assert r.status_code == 400
    assert r.json()["error"].startswith(
        "failed to parse the request JSON buffer")

    r = gateway.post("/v2/systemsharedmemory/register",
                     data=json.dumps({"key": key("small"), "byte_size": 8}))
    assert r.status_code == 400
    assert r.json()["error"] == \
        "'region name' is necessary to register system shared memory region"

    r = gateway.get("/v2/systemsharedmemory/region/x/register")
    assert r.status_code == 405

    assert client.get_system_shared_memory_status() == []


# ---- inference ----------------------------------------------------------------

def check_simple(client, in_h, out_h, result, in0, in1):
    for name, want in (("OUTPUT0", in0 + in1), ("OUTPUT1", in0 - in1)):
        out = result.get_output(name)
        assert "data" not in out, out
        assert out["datatype"] == "INT32" and out["shape"] == [1, 16]
        got = shm.get_contents_as_numpy(
            out_h, np.int32, [1, 16], offset=0 if name == "OUTPUT0" else 64)
        np.testing.assert_array_equal(got, want)


def test_infer_inputs_and_outputs_in_shm(client, regions):
    """simple_http_shm_client.py, step by step."""
    in_h = regions.create("input_data", 128)
    out_h = regions.create("output_data", 128)
    in0 = np.arange(16, dtype=np.int32).reshape(1, 16)
    in1 = np.full((1, 16), 3, dtype=np.int32)
    shm.set_shared_memory_region(in_h, [in0, in1])

    inputs, outputs = simple_inputs("input_data", "output_data")
    result = client.infer("simple", inputs, outputs=outputs)
    check_simple(client, in_h, out_h, result, in0, in1)

    # once more with new contents: nothing is cached where it must not be
    in1 = np.full((1, 16), -7, dtype=np.int32)
    shm.set_shared_memory_region(in_h, [in1], offset=64)
    result = client.infer("simple", inputs, outputs=outputs)
    check_simple(client, in_h, out_h, result, in0, in1)


def test_infer_bytes_in_shm(client, regions, gateway):
    """BYTES tensors in shared memory, serialized as Triton's clients
    write them (u32 length + bytes), as simple_http_shm_string_client.py
    does."""
    from tritonclient import utils
    assert gateway.wait_model_ready("simple_string")
    in0 = np.array([str(i).encode() for i in range(16)],
                   dtype=np.object_).reshape(1, 16)
    in1 = np.array([b"1"] * 16, dtype=np.object_).reshape(1, 16)
    s0, s1 = utils.serialize_byte_tensor(in0), utils.serialize_byte_tensor(in1)
    n0, n1 = utils.serialized_byte_size(s0), utils.serialized_byte_size(s1)
    want_sum = np.array([str(i + 1).encode() for i in range(16)],
                        dtype=np.object_)
    out_size = utils.serialized_byte_size(
        utils.serialize_byte_tensor(want_sum))
    h0 = regions.create("str_in0", n0)
    h1 = regions.create("str_in1", n1)
    hs = regions.create("str_sum", out_size)
    shm.set_shared_memory_region(h0, [s0])
    shm.set_shared_memory_region(h1, [s1])

    inputs = [httpclient.InferInput("INPUT0", [1, 16], "BYTES"),
              httpclient.InferInput("INPUT1", [1, 16], "BYTES")]
    inputs[0].set_shared_memory("str_in0", n0)
    inputs[1].set_shared_memory("str_in1", n1)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0", binary_data=True),
               httpclient.InferRequestedOutput("OUTPUT1")]
    outputs[0].set_shared_memory("str_sum", out_size)
    result = client.infer("simple_string", inputs, outputs=outputs)
    got = shm.get_contents_as_numpy(hs, np.object_, [1, 16])
    assert list(got.ravel()) == list(want_sum)
    assert list(result.as_numpy("OUTPUT1").ravel()) == \
        [str(i - 1).encode() for i in range(16)]


def test_infer_binary_request_mixed_with_shm(client, regions):
    """A binary request (Inference-Header-Content-Length): INPUT0 in shared
    memory, INPUT1 as binary data; OUTPUT0 into a region, OUTPUT1 binary."""
    in_h = regions.create("mix_in", 64)
    out_h = regions.create("mix_out", 64)
    in0 = np.arange(16, dtype=np.int32).reshape(1, 16) * 5
    in1 = np.arange(16, dtype=np.int32).reshape(1, 16)
    shm.set_shared_memory_region(in_h, [in0])

    inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"),
              httpclient.InferInput("INPUT1", [1, 16], "INT32")]
    inputs[0].set_shared_memory("mix_in", 64)
    inputs[1].set_data_from_numpy(in1, binary_data=True)
    outputs = [httpclient.InferRequestedOutput("OUTPUT0"),
               httpclient.InferRequestedOutput("OUTPUT1", binary_data=True)]
    outputs[0].set_shared_memory("mix_out", 64)

    result = client.infer("simple", inputs, outputs=outputs)
    assert "data" not in result.get_output("OUTPUT0")
    np.testing.assert_array_equal(
        shm.get_contents_as_numpy(out_h, np.int32, [1, 16]), in0 + in1)
    np.testing.assert_array_equal(result.as_numpy("OUTPUT1"), in0 - in1)


def test_infer_json_request_raw_http(gateway, regions):
    """The same through plain JSON: the answer carries no data for an
    output in shared memory, and the other output as JSON."""
    in_h = regions.create("raw_in", 128)
    out_h = regions.create("raw_out", 64)
    in0 = np.ones((1, 16), dtype=np.int32)
    in1 = np.arange(16, dtype=np.int32).reshape(1, 16)
    shm.set_shared_memory_region(in_h, [in0, in1])
    shm_in = lambda off: {"shared_memory_region": "raw_in",
                          "shared_memory_offset": off,
                          "shared_memory_byte_size": 64}
    body = {"inputs": [
        {"name": "INPUT0", "datatype": "INT32", "shape": [1, 16],
         "parameters": shm_in(0)},
        {"name": "INPUT1", "datatype": "INT32", "shape": [1, 16],
         "parameters": shm_in(64)}],
        "outputs": [
            {"name": "OUTPUT0",
             "parameters": {"shared_memory_region": "raw_out",
                            "shared_memory_byte_size": 64}},
            {"name": "OUTPUT1"}]}
    r = gateway.post("/v2/models/simple/infer", data=json.dumps(body))
    assert r.status_code == 200, r.text
    outs = {o["name"]: o for o in r.json()["outputs"]}
    assert "data" not in outs["OUTPUT0"]
    assert outs["OUTPUT1"]["data"] == list(range(1, -15, -1))
    np.testing.assert_array_equal(
        shm.get_contents_as_numpy(out_h, np.int32, [1, 16]), in0 + in1)


def test_infer_bounds_and_region_errors(gateway, regions):
    regions.create("bnd", 64)
    regions.create("bnd_out", 8)

    def infer(in_params, out_params=None, extra=None):
        inp = {"name": "INPUT0", "datatype": "FP32", "shape": [1, 16],
               "parameters": in_params}
        inp.update(extra or {})
        body = {"inputs": [inp]}
        if out_params is not None:
            body["outputs"] = [{"name": "OUTPUT0",
                                "parameters": out_params}]
        return gateway.post("/v2/models/identity_fp32/infer",
                            data=json.dumps(body))

    def region(name, size, offset=None):
        p = {"shared_memory_region": name, "shared_memory_byte_size": size}
        if offset is not None:
            p["shared_memory_offset"] = offset
        return p

    cases = [
        (infer(region("bnd", 64, 64)), 400,
         "Invalid offset for shared memory region: 'bnd'"),
        (infer(region("bnd", 64, 8)), 400,
         "Invalid offset + byte size for shared memory region: 'bnd'"),
        # uint64 beyond INT64_MAX, as Triton's own tests send them
        (infer(region("bnd", 64), region("bnd_out", 8, 2**64 - 32)), 400,
         "Invalid offset for shared memory region: 'bnd_out'"),
        (infer(region("bnd", 64), region("bnd_out", 2**64 - 2, 2)), 400,
         "Integer overflow detected: byte_size (18446744073709551614) + "
         "offset (2) exceeds maximum value (18446744073709551615) for "
         "region 'bnd_out'"),
        (infer(region("nosuch", 64)), 404,
         "Unable to find shared memory region: 'nosuch'"),
        (infer(region("bnd", 32)), 400,
         "input byte size mismatch for input 'INPUT0' for model "
         "'identity_fp32'. Expected 64, got 32"),
        (infer(region("bnd", 64), extra={"data": [0.0] * 16}), 400,
         "Input must set only one of the following fields: 'data', "
         "'binary_data_size' in 'parameters', 'shared_memory_region' in "
         "'parameters'. But set 'data' 'shared_memory_region'"),
        (infer(region("bnd", 64), region("bnd_out", 8)), 400,
         "shared memory size specified with the request for output "
         "'OUTPUT0' (8 bytes) should be at least 64 bytes to hold the "
         "results"),
        (infer(region("bnd", 64),
               dict(region("bnd_out", 8), binary_data=True)), 400,
         "Output can't set both 'shared_memory_region' and 'binary_data'"),
    ]
    for r, status, message in cases:
        assert r.status_code == status, r.text
        assert r.json()["error"] == message


def test_unregister_all(client, regions):
    for name in ("all_a", "all_b", "all_c"):
        regions.create(name, 64)
    assert len(client.get_system_shared_memory_status()) == 3
    client.unregister_system_shared_memory()
    assert client.get_system_shared_memory_status() == []


def test_shared_by_nginx_workers(gateway, regions, client):
    """Registered through one nginx worker, used through the other: the
    registry is a shared memory zone."""
    in_h = regions.create("across", 64)
    out_h = regions.create("across_out", 64)
    data = np.arange(16, dtype=np.float32).reshape(1, 16)
    shm.set_shared_memory_region(in_h, [data])
    body = json.dumps({
        "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 16],
                    "parameters": {"shared_memory_region": "across",
                                   "shared_memory_byte_size": 64}}],
        "outputs": [{"name": "OUTPUT0",
                     "parameters": {"shared_memory_region": "across_out",
                                    "shared_memory_byte_size": 64}}]})

    seen = set()
    for _ in range(200):
        # a new connection each time: either nginx worker may take it
        r = gateway.post("/v2/models/identity_fp32/infer", data=body,
                         headers={"Connection": "close"})
        assert r.status_code == 200, r.text
        seen.add(r.headers["X-Nginx-Pid"])
        st = gateway.get("/v2/systemsharedmemory/region/across/status",
                         headers={"Connection": "close"})
        assert st.status_code == 200 and st.json()[0]["name"] == "across"
        seen.add(st.headers["X-Nginx-Pid"])
        if len(seen) >= 2:
            break
    assert len(seen) == 2, "only one nginx worker answered"
    np.testing.assert_array_equal(
        shm.get_contents_as_numpy(out_h, np.float32, [1, 16]), data)

    # unregistered through either worker: gone for both
    client.unregister_system_shared_memory("across")
    for _ in range(6):
        r = gateway.post("/v2/models/identity_fp32/infer", data=body,
                         headers={"Connection": "close"})
        assert r.status_code == 404, r.text


def test_unregister_while_in_flight(gateway, client):
    """Regions unregistered, and their objects unlinked, while a request
    that uses them runs (slow_model reads its input after a sleep): the
    request still reads its input and writes its output, nothing
    crashes, and the next request finds no region."""
    in_h = shm.create_shared_memory_region("flight", key("flight"), 64)
    out_h = shm.create_shared_memory_region("flight_out",
                                            key("flight_out"), 64)
    data = np.full((1, 16), 2.5, dtype=np.float32)
    shm.set_shared_memory_region(in_h, [data])
    client.register_system_shared_memory("flight", key("flight"), 64)
    client.register_system_shared_memory("flight_out", key("flight_out"),
                                         64)
    body = json.dumps({
        "parameters": {"sleep_ms": 600},
        "inputs": [{"name": "INPUT0", "datatype": "FP32", "shape": [1, 16],
                    "parameters": {"shared_memory_region": "flight",
                                   "shared_memory_byte_size": 64}}],
        "outputs": [{"name": "OUTPUT0",
                     "parameters": {"shared_memory_region": "flight_out",
                                    "shared_memory_byte_size": 64}}]})
    answers = []
    t = threading.Thread(target=lambda: answers.append(
        gateway.post("/v2/models/slow_model/infer", data=body)))
    try:
        t.start()
        time.sleep(0.3)                 # sent, and sleeping in the model
        client.unregister_system_shared_memory()
        for name in ("flight", "flight_out"):
            os.unlink("/dev/shm" + key(name))
        # Triton's: listed until the requests that use them end
        assert sorted(r["name"] for r in
                      client.get_system_shared_memory_status()) \
            == ["flight", "flight_out"]
        t.join()
        assert client.get_system_shared_memory_status() == []
        r = answers[0]
        assert r.status_code == 200, r.text
        assert "data" not in r.json()["outputs"][0]
        np.testing.assert_array_equal(
            shm.get_contents_as_numpy(out_h, np.float32, [1, 16]), data)
        r = gateway.post("/v2/models/slow_model/infer", data=body)
        assert r.status_code == 404, r.text
    finally:
        t.join()
        for h in (in_h, out_h):
            try:
                shm.destroy_shared_memory_region(h)
            except (shm.SharedMemoryException, OSError):
                pass            # unlinked already: only unmapped here


def test_api_keys_have_their_own_regions(gateway, regions):
    regions.create("keyed", 64, register=False)
    one = {"X-API-Key": gateway.api_keys[0]}
    two = {"X-API-Key": gateway.api_keys[1]}
    url = gateway.guard_url + "/v2/systemsharedmemory"
    reg = json.dumps({"key": key("keyed"), "byte_size": 64})

    assert requests.post(url + "/region/keyed/register", data=reg,
                         headers=one).status_code == 200
    try:
        assert [r["name"] for r in
                requests.get(url + "/status", headers=one).json()] \
            == ["keyed"]
        assert requests.get(url + "/status", headers=two).json() == []
        assert requests.get(url + "/status").status_code == 401

        body = json.dumps({"inputs": [
            {"name": "INPUT0", "datatype": "FP32", "shape": [1, 16],
             "parameters": {"shared_memory_region": "keyed",
                            "shared_memory_byte_size": 64}}]})
        r = requests.post(gateway.guard_url
                          + "/v2/models/identity_fp32/infer",
                          data=body, headers=two)
        assert r.status_code == 404, r.text
        r = requests.post(gateway.guard_url
                          + "/v2/models/identity_fp32/infer",
                          data=body, headers=one)
        assert r.status_code == 200, r.text

        # the same name under another key is another region
        assert requests.post(url + "/region/keyed/register", data=reg,
                             headers=two).status_code == 200
        requests.post(url + "/unregister", headers=two)
        assert [r["name"] for r in
                requests.get(url + "/status", headers=one).json()] \
            == ["keyed"]
    finally:
        requests.post(url + "/unregister", headers=one)
        requests.post(url + "/unregister", headers=two)


def test_disabled_and_cuda(gateway, regions):
    regions.create("off", 64, register=False)
    reg = json.dumps({"key": key("off"), "byte_size": 64})

    # kserve_shared_memory is off on the short server: no region there,
    # whatever the others registered (Triton's answer without
    # --allow-client-shm)
    r = requests.post(gateway.short_url
                      + "/v2/systemsharedmemory/region/off/register",
                      data=reg)
    assert r.status_code == 501
    assert r.json()["error"] == "Client shared memory is disabled. Set " \
        "'kserve_shared_memory on;' to enable."
    assert gateway.post("/v2/systemsharedmemory/region/off/register",
                        data=reg).status_code == 200
    assert requests.get(gateway.short_url
                        + "/v2/systemsharedmemory/status").json() == []
    r = requests.get(gateway.short_url
                     + "/v2/systemsharedmemory/region/off/status")
    assert r.status_code == 404

    # CUDA: the endpoints answer; registering needs GPU support
    handle = {"raw_handle": {"b64": base64.b64encode(bytes(64)).decode()},
              "device_id": 0,
              "byte_size": 64}
    r = gateway.post("/v2/cudasharedmemory/region/gpu0/register",
                     data=json.dumps(handle))
    assert r.status_code == 400
    assert r.json()["error"] == "failed to register CUDA shared memory " \
        "region: 'gpu0', GPUs not supported"
    r = gateway.post("/v2/cudasharedmemory/region/gpu0/register",
                     data=json.dumps({"device_id": 0, "byte_size": 64}))
    assert r.json()["error"] == \
        "Shared memory register request has no 'raw_handle' field"
    assert gateway.get("/v2/cudasharedmemory/status").json() == []
    assert gateway.post("/v2/cudasharedmemory/unregister").status_code == 200
    r = gateway.get("/v2/cudasharedmemory/region/gpu0/status")
    assert r.status_code == 404
    assert r.json()["error"] == \
        "Unable to find cuda shared memory region: 'gpu0'"

    ext = gateway.get("/v2").json()["extensions"]
    assert "system_shared_memory" in ext and "cuda_shared_memory" in ext


def test_metrics_count_regions_and_tensors(gateway, regions, client):
    def metric(text, name):
        for line in text.splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
        raise AssertionError(name + " not in /metrics")

    before = gateway.get("/metrics").text
    in_h = regions.create("metered", 64)
    shm.set_shared_memory_region(in_h, [np.zeros((1, 16), np.float32)])
    inp = httpclient.InferInput("INPUT0", [1, 16], "FP32")
    inp.set_shared_memory("metered", 64)
    client.infer("identity_fp32", [inp])
    after = gateway.get("/metrics").text

    assert metric(after, 'ngx_kserve_shm_regions{kind="system"}') == 1
    assert metric(after, 'ngx_kserve_shm_tensors_total{path="direct"}') \
        == metric(before, 'ngx_kserve_shm_tensors_total{path="direct"}') + 1
    assert metric(after,
                  'ngx_kserve_shm_registrations_total{op="register"}') \
        == metric(before,
                  'ngx_kserve_shm_registrations_total{op="register"}') + 1


# ---- the copied path: instances on another host (tcp://) ---------------------

@pytest.fixture(scope="module")
def tcp_gateway():
    """kserve-worker with tcp:// instances serving identity_fp32 and
    simple, and a one-worker nginx in front of it."""
    workdir = tempfile.mkdtemp(prefix="ksv-shm-")
    repo = os.path.join(workdir, "models")
    os.makedirs(repo)
    for name in ("identity_fp32", "simple"):
        os.symlink(os.path.join(TOP, "conf", "models", name),
                   os.path.join(repo, name))
    port = free_port()
    endpoint = "tcp://127.0.0.1:%d" % port
    worker = subprocess.Popen(
        [os.path.join(BUILD, "kserve-worker"), "--repository", repo,
         "--listen", endpoint, "--run-dir", os.path.join(workdir, "run")],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(workdir, "worker.log"), "w"))
    http = free_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write("""
load_module %s/ngx_http_kserve_module.so;
worker_processes 1;
daemon off;
pid %s/nginx.pid;
error_log %s/error.log info;
%s
events { worker_connections 256; }
http {
    access_log off;
    client_body_temp_path %s/cb;
    proxy_temp_path %s/p; fastcgi_temp_path %s/f;
    uwsgi_temp_path %s/u; scgi_temp_path %s/s;
    server {
        listen 127.0.0.1:%d;
        location /v2 {
            kserve_pass %s;
            kserve_index_interval 200ms;
            kserve_shared_memory on;
        }
        location = /metrics { kserve_metrics; }
    }
}
""" % ((BUILD, workdir, workdir,
        "user root;" if os.getuid() == 0 else "")
       + (workdir,) * 5 + (http, endpoint)))
    nginx = subprocess.Popen(["nginx", "-p", workdir, "-c", conf, "-e",
                              os.path.join(workdir, "error.log")],
                             env=nginx_env())
    url = "http://127.0.0.1:%d" % http
    try:
        for model in ("identity_fp32", "simple"):
            assert wait_for(lambda: requests.get(
                "%s/v2/models/%s/ready" % (url, model)).status_code == 200,
                timeout=30), open(os.path.join(workdir, "worker.log")).read()
        yield url
    finally:
        for p in (nginx, worker):
            p.terminate()
            p.wait(timeout=15)
        with open(os.path.join(workdir, "error.log")) as f:
            bad = [l for l in f if "[alert]" in l or "[crit]" in l
                   or "[emerg]" in l]
        shutil.rmtree(workdir, ignore_errors=True)
        assert not bad, bad


def test_copied_path_for_tcp_instances(tcp_gateway):
    url = tcp_gateway
    meta = requests.get(url + "/v2/models/identity_fp32").json()
    assert meta["name"] == "identity_fp32"
    c = httpclient.InferenceServerClient(url[len("http://"):])
    regions = Regions(c)
    try:
        in_h = regions.create("cp_in", 128)
        out_h = regions.create("cp_out", 128)
        in0 = np.arange(16, dtype=np.int32).reshape(1, 16)
        in1 = np.full((1, 16), 11, dtype=np.int32)
        shm.set_shared_memory_region(in_h, [in0, in1])
        inputs, outputs = simple_inputs("cp_in", "cp_out")
        result = c.infer("simple", inputs, outputs=outputs)
        check_simple(c, in_h, out_h, result, in0, in1)

        # a region too small for the output, found by nginx this time
        outputs[0].set_shared_memory("cp_out", 32)
        with pytest.raises(InferenceServerException) as e:
            c.infer("simple", inputs, outputs=outputs)
        assert "should be at least 64 bytes" in error_of(e)

        text = requests.get(url + "/metrics").text
        copied = [l for l in text.splitlines()
                  if l.startswith('ngx_kserve_shm_tensors_total'
                                  '{path="copied"}')]
        assert copied and float(copied[0].split()[1]) >= 8
    finally:
        regions.close()
        c.close()
