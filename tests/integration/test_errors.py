"""Every answer is KServe JSON, also what nginx itself rejects; compressed
request bodies (gzip, deflate) and replies (Accept-Encoding), as Triton.

A server of its own: one with `kserve_errors on;` (what nginx rejects
before a location is chosen is JSON too) and one without (those stay
nginx's HTML, while the kserve location's own rejections are JSON)."""

import gzip
import json
import socket
import time
import zlib

import numpy as np
import pytest
import requests
import tritonclient.http as httpclient

from conftest import OwnNginx, fp32_body

HTTP = """
    client_max_body_size 1m;
    large_client_header_buffers 2 2k;
    server {{
        listen 127.0.0.1:{port};
        kserve_errors on;
        location /v2 {{
            kserve_pass {endpoint};
            kserve_max_body_size 4m;
            kserve_index_interval 200ms;
        }}
        location /small/ {{
            kserve_pass {endpoint};
            kserve_index_interval 200ms;
            client_max_body_size 1k;
        }}
        location = /plain {{ return 200 "plain"; }}
        location /big/ {{
            kserve_pass {endpoint};
            kserve_index_interval 200ms;
            kserve_max_body_size 64m;
            client_max_body_size 64m;
            rewrite ^/big(/.*)$ $1 break;
        }}
    }}
    server {{
        listen 127.0.0.1:{port2};
        large_client_header_buffers 2 2k;
        location /v2 {{
            kserve_pass {endpoint};
            kserve_max_body_size 4m;
            kserve_index_interval 200ms;
        }}
    }}
"""

IDENTITY = "/v2/models/identity_fp32/infer"


@pytest.fixture(scope="module")
def own(gateway):
    n = OwnNginx(gateway, HTTP)
    yield n
    n.stop()


def is_kserve_error(r, status, words=""):
    assert r.status_code == status, (r.status_code, r.text[:300])
    assert r.headers["Content-Type"] == "application/json", r.headers
    doc = r.json()
    assert isinstance(doc.get("error"), str) and doc["error"], doc
    assert words in doc["error"], doc
    return doc["error"]


def raw(port, data, timeout=5):
    """Sends bytes as they are; the whole answer (until nginx closes)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
        s.sendall(data)
        got = b""
        while True:
            try:
                chunk = s.recv(65536)
            except socket.timeout:
                break
            if not chunk:
                break
            got += chunk
    head, _, body = got.partition(b"\r\n\r\n")
    return head.decode(errors="replace"), body


# ---- nginx's own rejections ------------------------------------------------

def test_body_over_client_max_body_size_is_tritons_400(own):
    """client_max_body_size 1m, kserve_max_body_size 4m: nginx refuses
    first, and the answer is Triton's 400 with a JSON error."""
    r = requests.post(own.url + IDENTITY, data=b"x" * (2 * 1024 * 1024))
    text = is_kserve_error(r, 400, "exceeds the maximum allowed value")
    assert "client_max_body_size" in text and "2097152" in text


def test_chunked_body_over_client_max_body_size(own):
    def chunks():
        for _ in range(40):
            yield b"y" * 65536
    r = requests.post(own.url + IDENTITY, data=chunks())
    is_kserve_error(r, 400, "exceeds the maximum allowed value")


def test_body_over_kserve_max_body_size(own, gateway):
    """The module's own limit speaks Triton's words too."""
    r = gateway.post(IDENTITY, data=b"x" * (5 * 1024 * 1024))
    is_kserve_error(r, 400, "exceeds the maximum allowed value of 4194304")


def test_location_limits_without_kserve_errors(own):
    """In the server without kserve_errors, the kserve location's own
    rejections are still JSON: the module needs nothing in nginx.conf."""
    r = requests.post(own.url2 + IDENTITY, data=b"x" * (2 * 1024 * 1024))
    is_kserve_error(r, 400, "exceeds the maximum allowed value")


def test_content_length_and_transfer_encoding(own):
    req = (b"POST " + IDENTITY.encode() + b" HTTP/1.1\r\nHost: x\r\n"
           b"Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"
           b"Connection: close\r\n\r\n0\r\n\r\n")
    head, body = raw(own.port, req)
    assert head.startswith("HTTP/1.1 400"), head
    assert "application/json" in head, head
    assert "both Content-Length and Transfer-Encoding" in \
        json.loads(body)["error"]
    # the server without kserve_errors: nginx's own page
    head, body = raw(own.port2, req)
    assert head.startswith("HTTP/1.1 400") and "text/html" in head, head


def test_uri_too_long_414(own):
    r = requests.get(own.url + "/v2/models/" + "m" * 5000)
    is_kserve_error(r, 414, "Request-URI Too Large")
    r = requests.get(own.url2 + "/v2/models/" + "m" * 5000)
    assert r.status_code == 414 and "text/html" in r.headers["Content-Type"]


def test_header_too_large_494(own):
    r = requests.get(own.url + "/v2/health/live",
                     headers={"X-Big": "b" * 4000})
    is_kserve_error(r, 400, "Request Header Or Cookie Too Large")


def test_trace_method_405(own):
    head, body = raw(own.port, b"TRACE /v2 HTTP/1.1\r\nHost: x\r\n"
                     b"Connection: close\r\n\r\n")
    assert head.startswith("HTTP/1.1 405"), head
    assert json.loads(body) == {"error": "Method Not Allowed"}


def test_head_of_an_error_has_json_headers(own):
    r = requests.head(own.url + "/v2/models/" + "m" * 5000)
    assert r.status_code == 414
    assert r.headers["Content-Type"] == "application/json"
    assert r.content == b""


def test_other_locations_of_a_kserve_errors_server(own):
    assert requests.get(own.url + "/plain").text == "plain"
    is_kserve_error(requests.get(own.url + "/nothing-here"), 404,
                    "Not Found")


def test_the_connection_serves_on_after_a_json_error(own):
    s = requests.Session()
    is_kserve_error(s.post(own.url + "/small/x", data=b"z" * 2048), 400,
                    "exceeds the maximum allowed value of 1024")
    assert s.get(own.url + "/v2/health/live").status_code == 200


# ---- compressed request bodies -----------------------------------------------

def infer_fp32(url, data, headers=None):
    h = {"Content-Type": "application/json"}
    h.update(headers or {})
    return requests.post(url + IDENTITY, data=data, headers=h, timeout=30)


@pytest.mark.parametrize("encoding,compress", [
    ("gzip", gzip.compress),
    ("deflate", zlib.compress),
    ("GZIP", gzip.compress),
])
def test_compressed_request_body(own, encoding, compress):
    body = fp32_body([1, 4000]).encode()
    r = infer_fp32(own.url, compress(body), {"Content-Encoding": encoding})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == [1.0] * 4000


def test_compressed_binary_request_body(own):
    a = np.arange(1000, dtype=np.float32)
    header = json.dumps({"inputs": [{
        "name": "INPUT0", "shape": [1, 1000], "datatype": "FP32",
        "parameters": {"binary_data_size": a.nbytes}}],
        "outputs": [{"name": "OUTPUT0",
                     "parameters": {"binary_data": True}}]}).encode()
    r = requests.post(own.url + IDENTITY,
                      data=gzip.compress(header + a.tobytes()),
                      headers={"Content-Encoding": "gzip",
                               "Inference-Header-Content-Length":
                                   str(len(header))})
    assert r.status_code == 200, r.text
    n = int(r.headers["Inference-Header-Content-Length"])
    assert np.array_equal(np.frombuffer(r.content[n:], np.float32), a)


def test_gzip_bomb_is_refused_quickly(own):
    """1 GB of zeros in ~1 MB of gzip: refused once 4 MB (the limit) are
    made, with Triton's words, and the memory never grows past it."""
    bomb = gzip.compress(b"\0" * (256 * 1024 * 1024), 9)
    assert len(bomb) < 1024 * 1024
    t = time.monotonic()
    r = infer_fp32(own.url, bomb, {"Content-Encoding": "gzip"})
    took = time.monotonic() - t
    is_kserve_error(r, 400, "Decompressed data size exceeds the maximum "
                            "allowed value of 4194304 bytes")
    assert took < 2.0, took


def test_just_under_the_limit_after_inflation(own):
    body = fp32_body([1, 4000]).encode()
    body += b" " * (4 * 1024 * 1024 - len(body))    # exactly the limit
    r = infer_fp32(own.url, gzip.compress(body), {"Content-Encoding": "gzip"})
    assert r.status_code == 200, r.text
    r = infer_fp32(own.url, gzip.compress(body + b" "),
                   {"Content-Encoding": "gzip"})
    is_kserve_error(r, 400, "Decompressed data size exceeds")


def test_large_compressed_body_inflates_in_steps(own):
    """40 MB of JSON in ~0.1 MB of gzip: inflated over several turns of
    the event loop (4 MB each), while the same nginx worker answers
    others; the answer is the same as for the plain body."""
    n = 4 * 1024 * 1024
    body = json.dumps({"inputs": [{
        "name": "INPUT0", "shape": [1, n], "datatype": "FP32",
        "data": [0.5] * n}],
        "outputs": [{"name": "OUTPUT0",
                     "parameters": {"binary_data": True}}]}).encode()
    body += b" " * (40 * 1024 * 1024 - len(body))
    z = gzip.compress(body, 6)
    r = requests.post(own.url + "/big" + IDENTITY, data=z,
                      headers={"Content-Encoding": "gzip"}, timeout=60)
    assert r.status_code == 200, r.text[:300]
    h = int(r.headers["Inference-Header-Content-Length"])
    out = np.frombuffer(r.content[h:], np.float32)
    assert out.shape == (n,) and (out == 0.5).all()
    # and past 64 MB inflated, refused
    r = requests.post(own.url + "/big" + IDENTITY,
                      data=gzip.compress(body + b" " * (25 << 20), 6),
                      headers={"Content-Encoding": "gzip"}, timeout=60)
    is_kserve_error(r, 400, "maximum allowed value of 67108864 bytes")


@pytest.mark.parametrize("data", [
    b"not gzip at all",
    gzip.compress(b'{"inputs": []}')[:-6],          # truncated
    gzip.compress(b'{"inputs": []}') + b"trailing",
    b"",
])
def test_corrupt_compressed_body(own, data):
    r = infer_fp32(own.url, data, {"Content-Encoding": "gzip"})
    is_kserve_error(r, 400, "failed to decompress the request body")


def test_unknown_content_encoding(own):
    r = infer_fp32(own.url, b"{}", {"Content-Encoding": "br"})
    is_kserve_error(r, 501, "Unsupported compression type")
    assert r.headers["Accept-Encoding"] == "gzip, deflate"


def test_identity_content_encoding(own):
    r = infer_fp32(own.url, fp32_body([1, 3]),
                   {"Content-Encoding": "identity"})
    assert r.status_code == 200, r.text


# ---- compressed replies ------------------------------------------------------

@pytest.mark.parametrize("accept,expect", [
    ("gzip", "gzip"),
    ("deflate", "deflate"),
    ("gzip;q=0.5, deflate", "deflate"),
    ("identity;q=1, gzip;q=0.9", None),
    ("br", None),
])
def test_accept_encoding(own, accept, expect):
    body = fp32_body([1, 2000])
    r = requests.post(own.url + IDENTITY, data=body,
                      headers={"Accept-Encoding": accept}, stream=True)
    assert r.status_code == 200
    assert r.headers.get("Content-Encoding") == expect
    data = r.raw.read()
    assert int(r.headers["Content-Length"]) == len(data)
    if expect == "gzip":
        data = gzip.decompress(data)
    elif expect == "deflate":
        data = zlib.decompress(data)
    assert json.loads(data)["outputs"][0]["data"] == [1.0] * 2000
    if expect:
        assert len(r.headers["Content-Length"]) and \
            int(r.headers["Content-Length"]) < 2000


def test_errors_are_not_compressed(own):
    r = requests.post(own.url + "/v2/models/nope/infer", data="{}",
                      headers={"Accept-Encoding": "gzip"}, stream=True)
    assert r.status_code == 404
    assert "Content-Encoding" not in r.headers


def test_tritonclient_compression_both_ways(own):
    """tritonclient's request_compression_algorithm and
    response_compression_algorithm, unmodified, JSON and binary."""
    client = httpclient.InferenceServerClient(own.url[len("http://"):])
    a = np.linspace(0, 1, 5000, dtype=np.float32).reshape(1, 5000)
    for binary in (True, False):
        inp = httpclient.InferInput("INPUT0", a.shape, "FP32")
        inp.set_data_from_numpy(a, binary_data=binary)
        out = httpclient.InferRequestedOutput("OUTPUT0", binary_data=binary)
        for alg in ("gzip", "deflate"):
            res = client.infer("identity_fp32", [inp], outputs=[out],
                               request_compression_algorithm=alg,
                               response_compression_algorithm=alg)
            assert np.array_equal(res.as_numpy("OUTPUT0"), a)
    client.close()
