"""Triton's logging extension: GET/POST /v2/logging with the official
tritonclient, shared by every nginx worker and applied live to
kserve-worker and to the instances (a model's pb_utils.Logger lines)."""

import json
import re
import time

import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import OwnNginx, wait_for

HTTP = """
    server {{
        listen 127.0.0.1:{port};
        location /v2 {{
            kserve_pass {endpoint};
            kserve_index_interval 200ms;
            kserve_timeout 5s;
        }}
    }}
"""

DEFAULTS = {
    "log_file": "",
    "log_info": True,
    "log_warning": True,
    "log_error": True,
    "log_verbose_level": 0,
    "log_format": "default",
}


@pytest.fixture(scope="module")
def own(gateway):
    assert gateway.wait_model_ready("log_echo")
    n = OwnNginx(gateway, HTTP, workers=2)
    yield n
    # the worker is the session's: leave it as it was
    requests.post(n.url + "/v2/logging", json={
        k: v for k, v in DEFAULTS.items() if k != "log_file"})
    n.stop()


@pytest.fixture
def client(own):
    c = httpclient.InferenceServerClient(own.url[len("http://"):])
    yield c
    c.update_log_settings({k: v for k, v in DEFAULTS.items()
                           if k != "log_file"})
    c.close()


def worker_log(gateway):
    with open(gateway.worker_log, errors="replace") as f:
        return f.read()


def infer_marker(own, marker):
    r = requests.post(own.url + "/v2/models/log_echo/infer", json={
        "inputs": [{"name": "INPUT0", "shape": [1], "datatype": "FP32",
                    "data": [1.0]}],
        "parameters": {"marker": marker}})
    assert r.status_code == 200, r.text


def lines_with(gateway, marker):
    """The model's lines for marker, once the four calls have been made
    (the last one, verbose, may be filtered: wait on error's)."""
    wait_for(lambda: ("error " + marker) in worker_log(gateway)
             or time.sleep(0.05), timeout=3)
    time.sleep(0.1)
    return [line for line in worker_log(gateway).splitlines()
            if line.endswith(" " + marker)]


def test_defaults_as_triton(client):
    assert client.get_log_settings() == DEFAULTS


def test_update_answers_every_setting(client):
    got = client.update_log_settings({"log_verbose_level": 2})
    assert got == dict(DEFAULTS, log_verbose_level=2)
    assert client.get_log_settings() == got


def test_shared_by_every_nginx_worker(own, client):
    client.update_log_settings({"log_info": False, "log_format": "ISO8601"})
    # new connections reach either nginx worker
    for _ in range(12):
        r = requests.get(own.url + "/v2/logging",
                         headers={"Connection": "close"})
        assert r.json() == dict(DEFAULTS, log_info=False,
                                log_format="ISO8601"), r.text


def test_log_file_cannot_be_set(client):
    with pytest.raises(InferenceServerException,
                       match="log file location can not be updated through "
                             "network protocol"):
        client.update_log_settings({"log_file": "x.log"})
    assert client.get_log_settings() == DEFAULTS


@pytest.mark.parametrize("body,words", [
    ({"log_info": "yes"}, "log_info"),
    ({"log_verbose_level": -1}, "log_verbose_level"),
    ({"log_verbose_level": 1.5}, "log_verbose_level"),
    ({"log_format": "json"}, "invalid argument for --log_format, got: json"),
])
def test_invalid_settings_change_nothing(own, client, body, words):
    body = dict(body, log_warning=False)
    r = requests.post(own.url + "/v2/logging", json=body)
    assert r.status_code in (400, 503), r.text
    assert words in r.json()["error"]
    assert client.get_log_settings() == DEFAULTS


def test_null_and_unknown_change_nothing(own, client):
    r = requests.post(own.url + "/v2/logging",
                      json={"log_info": None, "something_else": 1})
    assert r.status_code == 200 and r.json() == DEFAULTS
    r = requests.post(own.url + "/v2/logging", data=b"")
    assert r.status_code == 200 and r.json() == DEFAULTS


def test_wrong_method(own):
    r = requests.put(own.url + "/v2/logging", json={})
    assert r.status_code == 405 and r.json() == {"error":
                                                 "Method Not Allowed"}


def test_levels_reach_the_instances(own, gateway, client):
    """pb_utils.Logger in a model obeys the settings at once."""
    infer_marker(own, "m-default")
    got = lines_with(gateway, "m-default")
    assert [l.split()[0][0] for l in got] == ["I", "W", "E"], got

    client.update_log_settings({"log_info": False, "log_error": False,
                                "log_verbose_level": 1})
    infer_marker(own, "m-changed")
    got = lines_with(gateway, "m-changed")
    assert len(got) == 2, got
    assert "warning m-changed" in got[0] and "verbose m-changed" in got[1]

    client.update_log_settings({"log_format": "ISO8601", "log_info": True})
    infer_marker(own, "m-iso")
    got = lines_with(gateway, "m-iso")
    assert got and all(re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ [IWV] ",
                                l) for l in got), got


def test_worker_logs_by_them(own, gateway, client):
    """kserve-worker's own debug lines appear with verbose >= 1, and its
    lines take the ISO8601 format."""
    client.update_log_settings({"log_verbose_level": 1,
                                "log_format": "ISO8601"})
    assert wait_for(lambda: re.search(
        r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ D kserve-worker: log settings: "
        r"info 1, warning 1, error 1, verbose 1, format ISO8601$",
        worker_log(gateway), re.M), timeout=3)


def test_verbose_lines_in_nginx_error_log(own, client):
    client.update_log_settings({"log_verbose_level": 1})
    requests.get(own.url + "/v2/models/log_echo")
    assert wait_for(lambda: "kserve verbose: GET /v2/models/log_echo 200"
                    in own.error_log(), timeout=3)
    client.update_log_settings({"log_verbose_level": 0})
    before = own.error_log().count("kserve verbose:")
    requests.get(own.url + "/v2/models/log_echo")
    time.sleep(0.2)
    assert own.error_log().count("kserve verbose:") == before


def test_verbose_2_turns_on_nginx_debug_for_kserve_requests(own, client):
    client.update_log_settings({"log_verbose_level": 2})
    requests.get(own.url + "/v2/models/no_such_model_v2")
    assert wait_for(lambda: re.search(
        r"\[debug\].*kserve: 404 \"Request for unknown model: "
        r"'no_such_model_v2'", own.error_log()), timeout=3)
    client.update_log_settings({"log_verbose_level": 0})
    requests.get(own.url + "/v2/models/no_such_model_v0")
    time.sleep(0.2)
    assert "no_such_model_v0'" not in "".join(
        l for l in own.error_log().splitlines() if "[debug]" in l)


def test_server_metadata_lists_logging(own):
    assert "logging" in requests.get(own.url + "/v2").json()["extensions"]
