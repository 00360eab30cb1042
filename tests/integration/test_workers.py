"""Several kserve-workers behind one kserve_pass: each is a host's control
plane with a repository of its own, and nginx serves by the merge of what
they say.  The model index, statistics and the repository extension go to
every worker; a worker that lacks a model is left out, one that fails
fails the call (ngx_module/ksv_merge.h, docs/worker.md)."""

import json
import os
import shutil
import signal
import subprocess
import tempfile

import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import BUILD, OwnNginx, wait_for
from test_model_control import BODY, write_model


class Host:
    """One kserve-worker with its own repository, run directory and
    control endpoint, as a second machine would have."""

    def __init__(self, root, name, models):
        self.dir = os.path.join(root, name)
        self.repo = os.path.join(self.dir, "repo")
        os.makedirs(self.repo)
        for model, tag in models:
            write_model(self.repo, model, tag=tag, count=1)
        self.endpoint = "ipc://%s/kserve.sock" % self.dir
        self.log = os.path.join(self.dir, "worker.log")
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [os.path.join(BUILD, "kserve-worker"), "--repository", self.repo,
             "--listen", self.endpoint,
             "--run-dir", os.path.join(self.dir, "run"),
             "--model-control-mode", "explicit", "--load-model", "*"],
            stdout=subprocess.DEVNULL, stderr=open(self.log, "a"))

    def stop(self, sig=signal.SIGTERM):
        if self.proc is None:
            return
        self.proc.send_signal(sig)
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None


HTTP = """
    server {{
        listen 127.0.0.1:{port};
        location /v2 {{
            kserve_pass {endpoint};
            kserve_timeout 15s;
            kserve_index_interval 200ms;
        }}
        location = /metrics {{
            kserve_metrics;
            kserve_timeout 5s;
        }}
    }}
"""


@pytest.fixture(scope="module")
def hosts():
    root = tempfile.mkdtemp(prefix="ksv-hosts-")
    a = Host(root, "a", [("both", 1), ("only_a", 11)])
    b = Host(root, "b", [("both", 2), ("only_b", 22)])
    a.start()
    b.start()

    class Endpoints:
        endpoint = "%s %s" % (a.endpoint, b.endpoint)

    nginx = OwnNginx(Endpoints, HTTP, workers=2)
    try:
        for model in ("both", "only_a", "only_b"):
            assert wait_for(lambda: requests.get(
                "%s/v2/models/%s/ready" % (nginx.url, model),
                timeout=10).status_code == 200, timeout=60), \
                open(a.log).read()[-2000:] + open(b.log).read()[-2000:]
        yield nginx, a, b
    finally:
        nginx.stop()
        a.stop()
        b.stop()
        shutil.rmtree(root, ignore_errors=True)


def infer(url, model):
    r = requests.post("%s/v2/models/%s/infer" % (url, model), data=BODY,
                      timeout=30)
    assert r.status_code == 200, r.text
    return r.json()["outputs"][0]["data"][0]


def client(url):
    return httpclient.InferenceServerClient(url.split("//")[1],
                                            network_timeout=60.0)


def test_every_host_s_models_are_served(hosts):
    nginx, _, _ = hosts
    assert infer(nginx.url, "only_a") == 11
    assert infer(nginx.url, "only_b") == 22

    # a model both hosts have runs on the instances of either
    seen = {infer(nginx.url, "both") for _ in range(60)}
    assert seen == {1, 2}


def test_the_repository_index_is_the_union(hosts):
    nginx, _, _ = hosts
    c = client(nginx.url)
    try:
        index = c.get_model_repository_index()
    finally:
        c.close()
    names = sorted((e["name"], e.get("version"), e.get("state"))
                   for e in index)
    assert names == [("both", "1", "READY"), ("only_a", "1", "READY"),
                     ("only_b", "1", "READY")]


def test_statistics_sum_over_hosts(hosts):
    nginx, _, _ = hosts

    def count():
        r = requests.get(nginx.url + "/v2/models/both/stats", timeout=30)
        assert r.status_code == 200, r.text
        stats = r.json()["model_stats"]
        assert len(stats) == 1
        return stats[0]["inference_count"]

    def metric():
        text = requests.get(nginx.url + "/metrics", timeout=30).text
        for line in text.splitlines():
            if line.startswith("nv_inference_count{") \
                    and 'model="both"' in line:
                return int(float(line.split()[-1]))
        return 0

    before = count()
    for _ in range(20):
        infer(nginx.url, "both")
    assert wait_for(lambda: count() == before + 20, timeout=10), count()
    assert metric() == before + 20

    # a model of one host only: the other's NOT_FOUND is left out
    r = requests.get(nginx.url + "/v2/models/only_b/stats", timeout=30)
    assert r.status_code == 200, r.text
    assert r.json()["model_stats"][0]["name"] == "only_b"

    r = requests.get(nginx.url + "/v2/models/nowhere/stats", timeout=30)
    assert r.status_code == 404, r.text


def test_load_and_unload_reach_every_host(hosts):
    nginx, _, _ = hosts
    c = client(nginx.url)
    try:
        c.unload_model("both")
        assert wait_for(lambda: not c.is_model_ready("both"), timeout=20)
        index = {(e["name"], e.get("state")) for e in
                 c.get_model_repository_index()}
        assert ("both", "READY") not in index

        c.load_model("both")
        assert c.is_model_ready("both")
        assert {infer(nginx.url, "both") for _ in range(60)} == {1, 2}

        # a model one host lacks loads on the other
        c.load_model("only_a")
        assert c.is_model_ready("only_a")

        with pytest.raises(InferenceServerException) as e:
            c.load_model("nowhere")
        assert "failed to load 'nowhere', failed to poll from model " \
               "repository" in str(e.value)
    finally:
        c.close()


def test_a_host_whose_worker_died_leaves_the_others_answering(hosts):
    nginx, _, b = hosts
    b.stop(signal.SIGKILL)
    try:
        # b's instances outlive its worker: its models are still served
        assert infer(nginx.url, "only_b") == 22
        assert infer(nginx.url, "only_a") == 11

        # control calls are answered by the workers that are there
        r = requests.get(nginx.url + "/v2/models/only_a/stats", timeout=30)
        assert r.status_code == 200, r.text
        r = requests.post(nginx.url + "/v2/repository/index", timeout=30)
        assert r.status_code == 200, r.text
        assert "only_a" in {e["name"] for e in json.loads(r.text)}

        # a load goes to the workers that are connected
        r = requests.post(nginx.url + "/v2/repository/models/only_a/load",
                          timeout=30)
        assert r.status_code == 200, r.text
    finally:
        b.start()
    assert wait_for(lambda: requests.get(
        nginx.url + "/v2/models/only_b/ready", timeout=10).status_code
        == 200, timeout=60)
