"""Triton's trace extension: settings with the official tritonclient
(global and per model, shared by every nginx worker), sampling, and the
trace file in Triton's format with nginx's and the instance's
timestamps."""

import json
import os
import time

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient
import tritonclient.utils.shared_memory as shm
from tritonclient.utils import InferenceServerException

from conftest import OwnNginx, wait_for

HTTP = """
    kserve_trace file={dir}/trace.json level=OFF rate=1 count=-1
                 log_frequency=0;
    server {{
        listen 127.0.0.1:{port};
        location /v2 {{
            kserve_pass {endpoint};
            kserve_index_interval 200ms;
            kserve_shared_memory on;
        }}
    }}
"""

ORDER = ["HTTP_RECV_START", "HTTP_RECV_END", "REQUEST_START", "QUEUE_START",
         "COMPUTE_START", "COMPUTE_INPUT_END", "COMPUTE_OUTPUT_START",
         "COMPUTE_END", "REQUEST_END", "HTTP_SEND_START", "HTTP_SEND_END"]


@pytest.fixture(scope="module")
def own(gateway):
    n = OwnNginx(gateway, HTTP, workers=2)
    n.trace_file = os.path.join(n.dir, "trace.json")
    yield n
    n.stop()


@pytest.fixture
def client(own):
    c = httpclient.InferenceServerClient(own.url[len("http://"):])
    clear = {"trace_level": None, "trace_rate": None, "trace_count": None,
             "log_frequency": None}
    c.update_trace_settings(model_name="simple", settings=clear)
    c.update_trace_settings(settings=clear)
    yield c
    c.update_trace_settings(model_name="simple", settings=clear)
    c.update_trace_settings(settings=clear)
    c.close()


def initial(own):
    return {"trace_file": own.trace_file, "trace_level": ["OFF"],
            "trace_rate": "1", "trace_count": "-1", "log_frequency": "0",
            "trace_mode": "triton"}


def infer_simple(own, n=1, request_id=None):
    body = {"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32",
         "data": list(range(16))},
        {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32",
         "data": [1] * 16}]}
    if request_id:
        body["id"] = request_id
    for _ in range(n):
        r = requests.post(own.url + "/v2/models/simple/infer", json=body,
                          headers={"Connection": "close"})
        assert r.status_code == 200, r.text


def read_traces(path):
    """{id: {"model": {...}, "ns": {name: ns}}} of a trace file."""
    with open(path) as f:
        doc = json.load(f)
    traces = {}
    for e in doc:
        t = traces.setdefault(e["id"], {"model": None, "ns": {},
                                        "tensors": []})
        if "model_name" in e:
            t["model"] = e
        for ts in e.get("timestamps", []):
            t["ns"][ts["name"]] = ts["ns"]
        if "activity" in e:
            t["tensors"].append((e["activity"], e["tensor"]))
    return traces


def test_settings_as_triton(own, client):
    assert client.get_trace_settings() == initial(own)
    assert client.get_trace_settings(model_name="simple") == initial(own)


def test_unknown_model(own, client):
    with pytest.raises(InferenceServerException,
                       match="Request for unknown model : does-not-exist"):
        client.get_trace_settings(model_name="does-not-exist")


def test_trace_file_cannot_be_set(own, client):
    with pytest.raises(InferenceServerException,
                       match="trace file location can not be updated "
                             "through network protocol"):
        client.update_trace_settings(model_name="simple",
                                     settings={"trace_file": "model.log"})
    assert client.get_trace_settings(model_name="simple") == initial(own)


def test_model_settings_fall_back_to_global(own, client):
    """Triton's test_http_update_settings, in substance."""
    got = client.update_trace_settings(
        settings={"trace_level": ["TIMESTAMPS", "TENSORS"]})
    assert got == dict(initial(own), trace_level=["TIMESTAMPS", "TENSORS"])
    # the model has nothing of its own: it follows
    assert client.get_trace_settings(model_name="simple") == got

    got = client.update_trace_settings(model_name="simple",
                                       settings={"trace_rate": "7"})
    assert got == dict(initial(own), trace_level=["TIMESTAMPS", "TENSORS"],
                       trace_rate="7")
    assert client.get_trace_settings()["trace_rate"] == "1"

    # a later global change still reaches the fields the model lacks
    client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]})
    assert client.get_trace_settings(model_name="simple")["trace_level"] == \
        ["TIMESTAMPS"]

    # null: the model's field goes, the global one back to the config's
    client.update_trace_settings(model_name="simple",
                                 settings={"trace_rate": None})
    assert client.get_trace_settings(model_name="simple")["trace_rate"] == "1"
    client.update_trace_settings(settings={"trace_level": None})
    assert client.get_trace_settings() == initial(own)


def test_shared_by_every_nginx_worker(own, client):
    client.update_trace_settings(settings={"trace_rate": "5"})
    for _ in range(12):
        r = requests.get(own.url + "/v2/trace/setting",
                         headers={"Connection": "close"})
        assert r.json()["trace_rate"] == "5"


@pytest.mark.parametrize("settings,words", [
    ({"trace_level": ["OFF", "TIMESTAMPS"]},
     "Expect only one trace level 'OFF' is specified"),
    ({"trace_rate": "x"}, "Unable to parse 'trace_rate', got: x"),
    ({"trace_count": "-2"}, "Expecting value >= -1"),
    ({"log_frequency": "-1"}, "out of range"),
])
def test_invalid_settings_change_nothing(own, client, settings, words):
    with pytest.raises(InferenceServerException, match=words):
        client.update_trace_settings(settings=dict(settings,
                                                   trace_rate_x=None))
    assert client.get_trace_settings() == initial(own)


def test_timestamps_file(own, client):
    client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]})
    before = read_traces(own.trace_file) if os.path.exists(
        own.trace_file) else {}
    infer_simple(own, 3, request_id="req-7")
    assert wait_for(lambda: len(read_traces(own.trace_file))
                    >= len(before) + 3, timeout=5)
    traces = read_traces(own.trace_file)
    new = [t for i, t in traces.items() if i not in before]
    assert len(new) == 3
    for t in new:
        assert t["model"]["model_name"] == "simple"
        assert t["model"]["model_version"] == 1
        assert t["model"]["request_id"] == "req-7"
        assert list(t["ns"]) == ORDER, t["ns"]
        stamps = [t["ns"][k] for k in ORDER]
        assert stamps == sorted(stamps), t["ns"]
        # taken by one clock: nginx's and the instance's are near
        assert stamps[-1] - stamps[0] < 5e9


def test_rate_and_count(own, client):
    client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"],
                                           "trace_rate": "2",
                                           "trace_count": "3"})
    n0 = len(read_traces(own.trace_file)) if os.path.exists(
        own.trace_file) else 0
    infer_simple(own, 10)
    time.sleep(0.3)
    assert len(read_traces(own.trace_file)) == n0 + 3
    assert client.get_trace_settings()["trace_count"] == "0"


def test_model_level_off_while_global_on(own, client):
    client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]})
    client.update_trace_settings(model_name="simple",
                                 settings={"trace_level": ["OFF"]})
    n0 = len(read_traces(own.trace_file)) if os.path.exists(
        own.trace_file) else 0
    infer_simple(own, 3)
    time.sleep(0.3)
    assert len(read_traces(own.trace_file)) == n0


def test_log_frequency_files(own, client):
    client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"],
                                           "log_frequency": "2"})
    infer_simple(own, 8)
    # each nginx worker writes its every 2 traces to the next index
    files = lambda: sorted(f for f in os.listdir(own.dir)
                           if f.startswith("trace.json."))
    assert wait_for(lambda: len(files()) >= 3, timeout=5), files()
    total = 0
    for name in files():
        traces = read_traces(os.path.join(own.dir, name))
        assert len(traces) == 2
        total += 2
    assert total >= 6


def test_tritonclient_infer_is_traced(own, client):
    client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]})
    n0 = len(read_traces(own.trace_file)) if os.path.exists(
        own.trace_file) else 0
    a = np.arange(16, dtype=np.int32).reshape(1, 16)
    inputs = []
    for name in ("INPUT0", "INPUT1"):
        i = httpclient.InferInput(name, a.shape, "INT32")
        i.set_data_from_numpy(a, binary_data=True)
        inputs.append(i)
    res = client.infer("simple", inputs, request_id="tc-1")
    assert np.array_equal(res.as_numpy("OUTPUT0"), a + a)
    assert wait_for(lambda: len(read_traces(own.trace_file)) == n0 + 1,
                    timeout=5)
    t = [t for t in read_traces(own.trace_file).values()
         if t["model"].get("request_id") == "tc-1"]
    assert len(t) == 1 and list(t[0]["ns"]) == ORDER


def test_tensors_level(own, client):
    """trace_level TENSORS: the inputs as queued and the outputs as the
    backend made them, Triton's activity records."""
    client.update_trace_settings(
        settings={"trace_level": ["TIMESTAMPS", "TENSORS"]})
    infer_simple(own, 1, request_id="tensors-1")
    assert wait_for(lambda: any(
        t["model"].get("request_id") == "tensors-1"
        for t in read_traces(own.trace_file).values()), timeout=5)
    t = [t for t in read_traces(own.trace_file).values()
         if t["model"].get("request_id") == "tensors-1"][0]
    got = {(a, x["name"]): x for a, x in t["tensors"]}
    assert set(got) == {("TENSOR_QUEUE_INPUT", "INPUT0"),
                        ("TENSOR_QUEUE_INPUT", "INPUT1"),
                        ("TENSOR_BACKEND_OUTPUT", "OUTPUT0"),
                        ("TENSOR_BACKEND_OUTPUT", "OUTPUT1")}, got
    x = got[("TENSOR_QUEUE_INPUT", "INPUT0")]
    assert x == {"name": "INPUT0", "data": ",".join(map(str, range(16))),
                 "shape": "1,16", "dtype": "INT32"}
    x = got[("TENSOR_BACKEND_OUTPUT", "OUTPUT0")]
    assert x["data"] == ",".join(str(i + 1) for i in range(16))
    assert list(t["ns"]) == ORDER


def test_traced_request_with_outputs_in_shared_memory(own, client):
    """The INFER_REPLY's two trailing sections together: outputs written
    to a region and the trace timestamps after them."""
    client.update_trace_settings(settings={"trace_level": ["TIMESTAMPS"]})
    k_in, k_out = "/ksv_trace%d_in" % os.getpid(), \
        "/ksv_trace%d_out" % os.getpid()
    h_in = shm.create_shared_memory_region("tr_in", k_in, 128)
    h_out = shm.create_shared_memory_region("tr_out", k_out, 128)
    try:
        client.register_system_shared_memory("tr_in", k_in, 128)
        client.register_system_shared_memory("tr_out", k_out, 128)
        a = np.arange(16, dtype=np.int32).reshape(1, 16)
        b = np.full((1, 16), 2, dtype=np.int32)
        shm.set_shared_memory_region(h_in, [a, b])
        inputs = [httpclient.InferInput("INPUT0", [1, 16], "INT32"),
                  httpclient.InferInput("INPUT1", [1, 16], "INT32")]
        inputs[0].set_shared_memory("tr_in", 64)
        inputs[1].set_shared_memory("tr_in", 64, offset=64)
        outputs = [httpclient.InferRequestedOutput("OUTPUT0"),
                   httpclient.InferRequestedOutput("OUTPUT1")]
        outputs[0].set_shared_memory("tr_out", 64)
        outputs[1].set_shared_memory("tr_out", 64, offset=64)
        client.infer("simple", inputs, outputs=outputs, request_id="sh-1")
        got = shm.get_contents_as_numpy(h_out, np.int32, [1, 16])
        assert (got == a + b).all()
        assert wait_for(lambda: any(
            t["model"].get("request_id") == "sh-1"
            for t in read_traces(own.trace_file).values()), timeout=5)
        t = [t for t in read_traces(own.trace_file).values()
             if t["model"].get("request_id") == "sh-1"][0]
        assert list(t["ns"]) == ORDER
    finally:
        client.unregister_system_shared_memory()
        shm.destroy_shared_memory_region(h_in)
        shm.destroy_shared_memory_region(h_out)


def test_server_metadata_lists_trace(own):
    assert "trace" in requests.get(own.url + "/v2").json()["extensions"]
