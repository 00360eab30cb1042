"""Where Triton's HTTP front end and core decide what a request means and
what its error says, the gateway decides the same (Triton's
src/http_server.cc and core's infer_request.cc; the texts its
qa/L0_http and qa/L0_input_validation tests compare), and the defects
found under load stay fixed."""

import concurrent.futures
import http.client
import json
import socket
import struct
import time

import numpy as np
import requests

from conftest import wait_for

SIMPLE = "/v2/models/simple/infer"
IDENT = "/v2/models/identity_fp32/infer"
HICL = "Inference-Header-Content-Length"
ONES = list(range(16))


def simple_inputs(**kw):
    return [{"name": "INPUT0", "shape": [1, 16], "datatype": "INT32",
             "data": ONES, **kw},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32",
             "data": ONES}]


def split_binary(r):
    """(JSON header, the bytes after it) of a reply."""
    if HICL not in r.headers:
        return r.json(), b""
    n = int(r.headers[HICL])
    return json.loads(r.content[:n]), r.content[n:]


def error(r, status=400):
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["Content-Type"].startswith("application/json")
    return r.json()["error"]


# ---- server metadata ------------------------------------------------------

def test_server_metadata_lists_what_is_implemented(gateway):
    """Triton's names, in its order; what is not built is not listed."""
    ext = gateway.get("/v2").json()["extensions"]
    built = ["classification", "model_repository",
             "model_repository(unload_dependents)",
             "schedule_policy", "model_configuration",
             "system_shared_memory", "cuda_shared_memory",
             "binary_tensor_data", "parameters", "statistics"]
    assert [e for e in ext if e in built] == built
    assert "sequence" not in ext
    assert len(set(ext)) == len(ext)


def test_server_name_is_tritons_unless_configured(gateway):
    """Triton's clients check the name (simple_http_health_metadata.py);
    kserve_server_name changes it (the short_port server sets one)."""
    assert gateway.get("/v2").json()["name"] == "triton"
    r = requests.get(gateway.short_url + "/v2", timeout=10)
    assert r.json()["name"] == "ngx_kserve test"


# ---- binary_data and binary_data_output ----------------------------------

def test_listed_outputs_are_json_unless_they_ask_for_binary(gateway):
    """binary_data_output: true with OUTPUT0 {binary_data: false} and
    OUTPUT1 without the parameter: Triton gives both as JSON (the request's
    default is for outputs it does not list)."""
    body = {"inputs": simple_inputs(),
            "parameters": {"binary_data_output": True},
            "outputs": [{"name": "OUTPUT0",
                         "parameters": {"binary_data": False}},
                        {"name": "OUTPUT1"}]}
    r = gateway.post(SIMPLE, json=body)
    assert r.status_code == 200, r.text
    assert HICL not in r.headers
    out = {o["name"]: o for o in r.json()["outputs"]}
    assert out["OUTPUT0"]["data"] == [2 * i for i in ONES]
    assert out["OUTPUT1"]["data"] == [0] * 16


def test_listed_output_with_binary_data_true_is_binary(gateway):
    body = {"inputs": simple_inputs(),
            "outputs": [{"name": "OUTPUT0",
                         "parameters": {"binary_data": True}},
                        {"name": "OUTPUT1"}]}
    r = gateway.post(SIMPLE, json=body)
    assert r.status_code == 200, r.text
    header, tail = split_binary(r)
    out = {o["name"]: o for o in header["outputs"]}
    assert out["OUTPUT0"]["parameters"]["binary_data_size"] == 64
    assert np.frombuffer(tail, dtype="<i4").tolist() == [2 * i for i in ONES]
    assert out["OUTPUT1"]["data"] == [0] * 16


def test_binary_data_output_makes_unlisted_outputs_binary(gateway):
    body = {"inputs": simple_inputs(),
            "parameters": {"binary_data_output": True}}
    r = gateway.post(SIMPLE, json=body)
    header, tail = split_binary(r)
    assert [o["parameters"]["binary_data_size"] for o in header["outputs"]] \
        == [64, 64]
    assert len(tail) == 128


# ---- raw requests ---------------------------------------------------------

def test_raw_bytes_needs_an_input_of_shape_one(gateway):
    assert gateway.wait_model_ready("bytes_any")
    r = gateway.post("/v2/models/bytes_any/infer", data=b"427",
                     headers={HICL: "0"})
    assert "For BYTE datatype raw input 'INPUT0', the model must have " \
        "input shape [1]" in error(r)


def test_raw_request_to_a_two_input_model_in_tritons_words(gateway):
    r = gateway.post(SIMPLE, data=b"A" * 64, headers={HICL: "0"})
    assert "Raw request must only have 1 input (found 1) to be deduced but " \
        "got 2 inputs in 'simple' model configuration" in error(r)


def test_raw_body_not_whole_elements_is_a_byte_size_mismatch(gateway):
    r = gateway.post(IDENT, data=b"\0" * 10, headers={HICL: "0"})
    assert "input byte size mismatch for input 'INPUT0' for model " \
        "'identity_fp32'. Expected 8, got 10" in error(r)


# ---- the order of checks and the words ------------------------------------

def test_data_is_checked_before_the_input_count(gateway):
    """One input of two, and its data short of its shape: Triton's front
    end reads the data first, so the data error comes first."""
    r = gateway.post(SIMPLE, json={"inputs": [
        {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32",
         "data": [1, 2]}]})
    assert error(r) == "Failed to parse 'data' field: shape does not " \
        "match true shape"
    r = gateway.post(SIMPLE, json={"inputs": [
        {"name": "INPUT0", "shape": [1, 2], "datatype": "INT32",
         "data": [1, 2, 3]}]})
    assert error(r) == "Unable to parse 'data': Shape does not match " \
        "true shape of 'data' field"


def test_input_count_in_tritons_words(gateway):
    r = gateway.post(SIMPLE, json={"inputs": simple_inputs()[:1]})
    assert error(r) == "expected 2 inputs but got 1 inputs for model " \
        "'simple'. Got input(s) ['INPUT0'], but missing required input(s) " \
        "['INPUT1']. Please provide all required input(s)."


def test_input_count_is_checked_before_the_batch_size(gateway):
    r = gateway.post(SIMPLE, json={"inputs": [
        {"name": "INPUT0", "shape": [9, 0], "datatype": "INT32",
         "data": []}]})
    assert error(r).startswith("expected 2 inputs but got 1 inputs")


def test_batch_size_is_checked_before_the_shapes(gateway):
    both = [{"name": n, "shape": [9, 0], "datatype": "INT32", "data": []}
            for n in ("INPUT0", "INPUT1")]
    r = gateway.post(SIMPLE, json={"inputs": both})
    assert error(r) == \
        "inference request batch-size must be <= 8 for 'simple'"


def test_shape_message_has_tritons_note(gateway):
    r = gateway.post(SIMPLE, json={"inputs": [
        {"name": "INPUT0", "shape": [1, 8], "datatype": "INT32",
         "data": [1] * 8}, simple_inputs()[1]]})
    assert error(r).startswith(
        "unexpected shape for input 'INPUT0' for model 'simple'. Expected "
        "[-1,16], got [1,8]. NOTE: Setting a non-zero max_batch_size in "
        "the model config requires a batch dimension")


def test_duplicate_output_names_in_tritons_words(gateway):
    r = gateway.post(SIMPLE, json={"inputs": simple_inputs(), "outputs": [
        {"name": "OUTPUT0"}, {"name": "OUTPUT0"}]})
    assert "output 'OUTPUT0' already exists in request" in error(r)


def test_json_depth_in_tritons_words(gateway):
    """Triton's test_json_recursion_depth_limit: 120 levels refused in its
    words, 50 accepted."""
    def nested(depth, value):
        for _ in range(depth):
            value = [value]
        return value

    def post(depth):
        return gateway.post("/v2/models/text_upper/infer", json={"inputs": [
            {"name": "INPUT0", "shape": [1, 1], "datatype": "BYTES",
             "data": nested(depth, "hello")}]})

    assert "JSON nesting depth exceeds maximum allowed limit (100)" \
        in error(post(120))
    r = post(50)
    assert r.status_code == 200, r.text


def test_shape_overflows_in_tritons_words(gateway):
    """Triton's test_buffer_size_overflow: the element count, then the
    byte size, within int64."""
    r = gateway.post(IDENT, json={"inputs": [
        {"name": "INPUT0", "shape": [2 ** 4, 2 ** 60 + 2],
         "datatype": "FP32", "data": [1.0]}]})
    assert "causes total element count to exceed maximum size of" in error(r)
    r = gateway.post(IDENT, json={"inputs": [
        {"name": "INPUT0", "shape": [2 ** 2, 2 ** 60 + 2],
         "datatype": "FP32", "data": [1.0]}]})
    assert "byte size overflow for input 'INPUT0'" in error(r)


def test_binary_bytes_element_counts_in_tritons_words(gateway):
    """qa/L0_input_validation: too few and too many string elements."""
    def post(n_sent, shape_n):
        tail = b"".join(struct.pack("<I", 1) + b"x" for _ in range(n_sent))
        head = json.dumps({"inputs": [
            {"name": "INPUT0", "shape": [1, shape_n], "datatype": "BYTES",
             "parameters": {"binary_data_size": len(tail)}}]}).encode()
        return gateway.post("/v2/models/text_upper/infer", data=head + tail,
                            headers={HICL: str(len(head))})

    assert error(post(1, 3)) == "expected 3 string elements for inference " \
        "input 'INPUT0' for model 'text_upper', got 1"
    assert error(post(4, 3)) == "unexpected number of string elements 4 " \
        "for inference input 'INPUT0' for model 'text_upper', expecting 3"


# ---- defects found under load and hostile input ---------------------------

def test_request_id_too_long_is_a_json_400(gateway):
    """An id of 65,536 bytes got an HTML 500 (the encoder refused it)."""
    body = json.dumps({"id": "x" * 65536, "inputs": simple_inputs()})
    text = error(gateway.post(SIMPLE, data=body))
    assert "'id'" in text
    body = json.dumps({"id": "x" * 65535, "inputs": simple_inputs()})
    r = gateway.post(SIMPLE, data=body)
    assert r.status_code == 200, r.text[:200]
    assert r.json()["id"] == "x" * 65535


def test_two_different_header_lengths_are_refused(gateway):
    head = json.dumps({"inputs": [
        {"name": "INPUT0", "shape": [1, 4], "datatype": "FP32",
         "parameters": {"binary_data_size": 16}}]}).encode()
    body = head + b"\0" * 16
    # http.client sends each putheader() as it is
    conn = http.client.HTTPConnection(
        "127.0.0.1", gateway.port, timeout=10)
    try:
        conn.putrequest("POST", IDENT)
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader(HICL, str(len(head)))
        conn.putheader(HICL, str(len(head) + 1))
        conn.endheaders(body)
        r = conn.getresponse()
        text = json.loads(r.read())["error"]
        assert r.status == 400
        assert "given twice with different values" in text
    finally:
        conn.close()

    # the same value twice is the same header
    conn = http.client.HTTPConnection(
        "127.0.0.1", gateway.port, timeout=10)
    try:
        conn.putrequest("POST", IDENT)
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader(HICL, str(len(head)))
        conn.putheader(HICL, str(len(head)))
        conn.endheaders(body)
        r = conn.getresponse()
        r.read()
        assert r.status == 200
    finally:
        conn.close()


def test_routed_binary_reply_names_its_variant(gateway):
    """A routed name's answer says which variant answered, binary outputs
    or not."""
    x = np.arange(4, dtype=np.float32)
    head = json.dumps({"inputs": [
        {"name": "FEATURES", "shape": [1, 4], "datatype": "FP32",
         "parameters": {"binary_data_size": 16}}],
        "outputs": [{"name": "SCORE",
                     "parameters": {"binary_data": True}}]}).encode()
    for _ in range(5):
        r = gateway.post("/v2/models/fraud/infer", data=head + x.tobytes(),
                         headers={HICL: str(len(head))})
        assert r.status_code == 200, r.text
        assert HICL in r.headers
        assert r.headers.get("X-KServe-Variant") in ("fraud_v1", "fraud_v2")


def slow_body(sleep_ms):
    return json.dumps({
        "inputs": [{"name": "INPUT0", "shape": [1, 4], "datatype": "FP32",
                    "data": [1.0] * 4}],
        "parameters": {"sleep_ms": sleep_ms}})


def test_requests_queued_behind_a_hung_instance_get_the_reason(gateway):
    """slow_model's only instance hangs (execute() sleeps 60 s; its client
    gives up at 1 s, the instance kills itself 1 s later): the requests
    queued behind it are answered with why it went, never "loading"."""
    slow = "/v2/models/slow_model/infer"
    assert gateway.wait_model_ready("slow_model")
    before = gateway.instance_pids("slow_model")
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        hung = pool.submit(requests.post, gateway.short_url + slow,
                           data=slow_body(60000), timeout=30)
        time.sleep(0.3)
        queued = [pool.submit(requests.post, gateway.url + slow,
                              data=slow_body(0), timeout=30)
                  for _ in range(3)]
        assert hung.result().status_code == 504
        answers = [f.result() for f in queued]
    texts = [(r.status_code, r.text) for r in answers]
    assert all("loading" not in t for _, t in texts), texts
    failed = [t for s, t in texts if s != 200]
    assert failed, "nothing was queued behind the hung batch: %s" % texts
    for t in failed:
        assert "did not finish a batch" in t and "killed as hung" in t, t
    assert wait_for(lambda: gateway.instance_pids("slow_model") != before,
                    timeout=10)
    assert gateway.wait_model_ready("slow_model", timeout=30)


def test_a_body_of_many_small_chunks_is_one_buffer(gateway):
    """Triton refuses a body of more than 65536 chunks (each was a buffer
    of its own there).  nginx (>= 1.21.2) copies small chunks into the
    buffer of the one before, so 200,000 one-byte chunks are a 200,000-byte
    body like any other, read at once, bounded by kserve_max_body_size:
    no count to bound."""
    payload = np.arange(50000, dtype=np.float32).tobytes()
    head = ("POST %s HTTP/1.1\r\nHost: x\r\n%s: 0\r\n"
            "Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            % (IDENT, HICL)).encode()
    body = b"".join(b"1\r\n" + payload[i:i + 1] + b"\r\n"
                    for i in range(len(payload))) + b"0\r\n\r\n"
    start = time.monotonic()
    with socket.create_connection(("127.0.0.1", gateway.port),
                                  timeout=20) as s:
        s.sendall(head + body)
        reply = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            reply += chunk
    took = time.monotonic() - start
    status, rest = reply.split(b"\r\n", 1)
    assert status.startswith(b"HTTP/1.1 200"), reply[:300]
    headers, content = rest.split(b"\r\n\r\n", 1)
    hlen = int([h.split(b":")[1] for h in headers.split(b"\r\n")
                if h.lower().startswith(HICL.lower().encode())][0])
    assert content[hlen:] == payload
    assert took < 10, took
