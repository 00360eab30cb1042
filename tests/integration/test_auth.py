"""API keys (kserve_api_keys): 401 with an error JSON without a valid key,
Bearer or a header of the operator's choice, health left open, keys
reloaded with `nginx -s reload` and never written to the log."""

import os
import time

import pytest
import requests

from conftest import wait_for

TEXT = {"inputs": [
    {"name": "INPUT0", "shape": [1, 1], "datatype": "BYTES",
     "data": ["abc"]}]}


def guard(gateway, method, path, **kw):
    return requests.request(method, gateway.guard_url + path, timeout=30,
                            **kw)


@pytest.mark.parametrize("headers", [
    {},
    {"X-API-Key": ""},
    {"X-API-Key": "key-on"},
    {"X-API-Key": "key-one-"},
    {"X-API-Key": "KEY-ONE"},
    {"Authorization": "Bearer key-one"},      # wrong header here
], ids=["none", "empty", "prefix", "longer", "case", "other-header"])
def test_missing_or_wrong_key(gateway, headers):
    r = guard(gateway, "GET", "/v2/models/identity_fp32", headers=headers)
    assert r.status_code == 401
    assert "API key" in r.json()["error"]
    assert "WWW-Authenticate" not in r.headers


def test_every_endpoint_is_guarded(gateway):
    for method, path in [("GET", "/v2"), ("GET", "/v2/models/stats"),
                         ("GET", "/v2/models/simple/config"),
                         ("GET", "/v2/models/nope"),
                         ("GET", "/v2/not/a/path"),
                         ("POST", "/v2/models/identity_fp32/infer")]:
        r = guard(gateway, method, path, data="{}")
        assert r.status_code == 401, (path, r.text)


def test_valid_keys(gateway):
    for key in gateway.api_keys:
        r = guard(gateway, "GET", "/v2/models/identity_fp32",
                  headers={"X-API-Key": key})
        assert r.status_code == 200, r.text
        assert r.json()["name"] == "identity_fp32"


def test_infer_with_key(gateway):
    x = [1.0, 2.0]
    r = guard(gateway, "POST", "/v2/models/identity_fp32/infer",
              headers={"X-API-Key": "key-one"},
              json={"inputs": [{"name": "INPUT0", "shape": [1, 2],
                                "datatype": "FP32", "data": x}]})
    assert r.status_code == 200, r.text
    assert r.json()["outputs"][0]["data"] == x


def test_bearer(gateway):
    path = "/v2/models/text_upper/infer"
    r = guard(gateway, "POST", path, json=TEXT)
    assert r.status_code == 401
    assert r.headers["WWW-Authenticate"].startswith("Bearer")
    for bad in ("Bearer", "Bearer ", "Basic a2V5LW9uZQ==", "key-one",
                "Bearer key-two"):
        r = guard(gateway, "POST", path, json=TEXT,
                  headers={"Authorization": bad})
        assert r.status_code == 401, bad
    r = guard(gateway, "POST", path, json=TEXT,
              headers={"Authorization": "bearer  key-one"})
    assert r.status_code == 200, r.text


def test_health_open_unless_asked(gateway):
    assert guard(gateway, "GET", "/v2/health/live").status_code == 200
    # kserve_api_key_health on
    assert guard(gateway, "GET", "/v2/health/ready").status_code == 401
    # with the key it is the server's readiness: 200 once every model of
    # the repository has loaded (this may be the suite's first test)
    assert wait_for(lambda: guard(gateway, "GET", "/v2/health/ready",
                                  headers={"X-API-Key": "key-one"})
                    .status_code == 200, timeout=30)


def test_reload_rereads_keys(gateway):
    path = os.path.join(gateway.dir, "api_keys")
    with open(path) as f:
        saved = f.read()
    try:
        with open(path, "w") as f:
            f.write("# rotated\nnew-key\n")
        gateway.nginx_signal("reload")
        assert wait_for(lambda: guard(
            gateway, "GET", "/v2/models/simple",
            headers={"X-API-Key": "new-key"}).status_code == 200)
        # old workers may answer for a moment; then the old key is gone
        assert wait_for(lambda: guard(
            gateway, "GET", "/v2/models/simple",
            headers={"X-API-Key": "key-one"}).status_code == 401)
    finally:
        with open(path, "w") as f:
            f.write(saved)
        gateway.nginx_signal("reload")
        assert wait_for(lambda: guard(
            gateway, "GET", "/v2/models/simple",
            headers={"X-API-Key": "key-one"}).status_code == 200)
        # the reloaded workers know the worker's index again
        assert gateway.wait_model_ready("simple")
        time.sleep(0.5)


def test_keys_never_logged(gateway):
    guard(gateway, "GET", "/v2/models/simple", headers={"X-API-Key": "wrong-secret"})
    with open(os.path.join(gateway.dir, "error.log"), errors="replace") as f:
        log = f.read()
    assert "no valid API key" in log
    for key in gateway.api_keys + ("new-key", "wrong-secret"):
        assert key not in log
