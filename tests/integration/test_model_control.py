"""Model control: Triton's repository extension and control modes.

Two gateways of their own, each on a repository the tests change: one
in explicit mode (load and unload by tritonclient, config and file
overrides, failures), one in poll mode (versions and models that come
and go).  The reload tests keep 16 clients sending the whole time and
count what they saw: not one request may fail or wait past its bound
while versions and instances are replaced under them.
"""
import base64
import json
import os
import shutil
import struct
import subprocess
import sys
import tempfile
import threading
import time

import pytest
import requests
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from conftest import TOP, Gateway, wait_for


MODEL_PY = '''
import time
import numpy as np
import triton_python_backend_utils as pb_utils

TAG = {tag}


class TritonPythonModel:

    def initialize(self, args):
        if {fail}:
            raise RuntimeError("refusing to start: tag %d" % TAG)

    def execute(self, requests):
        time.sleep(0.003)
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor(
                "OUT", np.full(x.shape, TAG, dtype=np.float32))]))
        return out
'''

AUTO_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:

    @staticmethod
    def auto_complete_config(auto_complete_model_config):
        auto_complete_model_config.add_input(
            {"name": "IN", "data_type": "TYPE_FP32", "dims": [2]})
        auto_complete_model_config.add_output(
            {"name": "OUT", "data_type": "TYPE_FP32", "dims": [2]})
        auto_complete_model_config.set_max_batch_size(4)
        auto_complete_model_config.set_dynamic_batching()
        return auto_complete_model_config

    def initialize(self, args):
        import json
        config = json.loads(args["model_config"])
        assert config["input"][0]["name"] == "IN", config
        assert config["max_batch_size"] == 4, config

    def execute(self, requests):
        out = []
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
            out.append(pb_utils.InferenceResponse(
                [pb_utils.Tensor("OUT", x * 2)]))
        return out
'''

ENV_PY = '''
import os
import sys
import numpy as np
import triton_python_backend_utils as pb_utils
import ksv_env_probe


class TritonPythonModel:

    def initialize(self, args):
        self.value = ksv_env_probe.VALUE
        lib = os.path.dirname(os.path.dirname(os.path.dirname(
            os.path.dirname(ksv_env_probe.__file__))))
        assert lib in os.environ["LD_LIBRARY_PATH"].split(":"), (
            lib, os.environ.get("LD_LIBRARY_PATH"))

    def execute(self, requests):
        return [pb_utils.InferenceResponse([pb_utils.Tensor(
            "OUT", np.full((1, 1), self.value, dtype=np.float32))])
            for r in requests]
'''


def write_env_model(repo, name, python_dir):
    """A model whose EXECUTION_ENV_PATH is a conda-pack style archive
    (the environment's files at the archive's root) of a venv holding a
    package the system lacks, under lib/<python_dir>/site-packages."""
    write_model(repo, name, count=2, extra='''
parameters: { key: "EXECUTION_ENV_PATH"
              value: { string_value: "$$TRITON_MODEL_DIRECTORY/env.tar.gz" } }
''')
    write_version_text(repo, name, 1, ENV_PY)
    work = tempfile.mkdtemp(prefix="ksv-env-")
    env = os.path.join(work, "env")
    subprocess.run(["/usr/bin/python3", "-m", "venv", "--without-pip", env],
                   check=True)
    have = os.listdir(os.path.join(env, "lib"))[0]
    if have != python_dir:
        os.rename(os.path.join(env, "lib", have),
                  os.path.join(env, "lib", python_dir))
    pkg = os.path.join(env, "lib", python_dir, "site-packages",
                       "ksv_env_probe")
    os.makedirs(pkg)
    with open(os.path.join(pkg, "__init__.py"), "w") as f:
        f.write("VALUE = 4242\n")
    subprocess.run(["tar", "-C", env, "-czf",
                    os.path.join(repo, name, "env.tar.gz"), "."], check=True)
    shutil.rmtree(work)


WARM_PY = '''
import numpy as np
import triton_python_backend_utils as pb_utils


class TritonPythonModel:

    def initialize(self, args):
        self.requests = self.batches = 0
        self.file_sum = 0.0
        self.random = 0

    def execute(self, requests):
        out = []
        if requests[0].request_id() == "warmup":
            self.batches += 1
        for r in requests:
            x = pb_utils.get_input_tensor_by_name(r, "IN").as_numpy()
            if r.request_id() == "warmup":
                self.requests += 1
                self.file_sum += float(x[x >= 1].sum())
                self.random += int(((x > 0) & (x < 1)).sum())
            out.append(pb_utils.InferenceResponse([pb_utils.Tensor(
                "OUT", np.array([[self.requests, self.batches,
                                  self.file_sum, self.random]],
                                dtype=np.float32))]))
        return out
'''

WARM_CONFIG = '''
name: "{name}"
backend: "python"
max_batch_size: 4
input [ {{ name: "IN" data_type: TYPE_FP32 dims: [ 2 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_FP32 dims: [ 4 ] }} ]
model_warmup [
  {{ name: "zeros" batch_size: 2 count: 3
     inputs {{ key: "IN" value {{ data_type: TYPE_FP32 dims: [ 2 ]
                                zero_data: true }} }} }},
  {{ name: "from_file" batch_size: 1
     inputs {{ key: "IN" value {{ data_type: TYPE_FP32 dims: [ 2 ]
                                input_data_file: "{file}" }} }} }},
  {{ name: "random" batch_size: 1 count: 1
     inputs {{ key: "IN" value {{ data_type: TYPE_FP32 dims: [ 2 ]
                                random_data: true }} }} }}
]
'''


CUDA_WARMUP = '''
model_warmup [ { name: "cuda_zeros" batch_size: 2 count: 2
  inputs { key: "INPUT0" value { data_type: TYPE_INT32 dims: [ 16 ]
                                 zero_data: true } }
  inputs { key: "INPUT1" value { data_type: TYPE_INT32 dims: [ 16 ]
                                 random_data: true } } } ]
'''


def write_warm_model(repo, name, file="in.bin"):
    d = os.path.join(repo, name)
    os.makedirs(os.path.join(d, "warmup"), exist_ok=True)
    with open(os.path.join(d, "config.pbtxt"), "w") as f:
        f.write(WARM_CONFIG.format(name=name, file=file))
    with open(os.path.join(d, "warmup", "in.bin"), "wb") as f:
        f.write(struct.pack("<2f", 7.0, 8.0))
    write_version_text(repo, name, 1, WARM_PY)


def write_version_text(repo, name, version, text):
    d = os.path.join(repo, name, str(version))
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "model.py"), "w") as f:
        f.write(text)


CONFIG = '''
name: "{name}"
backend: "python"
max_batch_size: 8
input [ {{ name: "IN" data_type: TYPE_FP32 dims: [ 1 ] }} ]
output [ {{ name: "OUT" data_type: TYPE_FP32 dims: [ 1 ] }} ]
instance_group [ {{ count: {count} kind: KIND_CPU }} ]
dynamic_batching {{ }}
{extra}
'''

BODY = json.dumps({"inputs": [{"name": "IN", "shape": [1, 1],
                               "datatype": "FP32", "data": [1.0]}]})


def write_model(repo, name, versions=(1,), tag=None, fail=False, count=2,
                extra=""):
    d = os.path.join(repo, name)
    os.makedirs(d, exist_ok=True)
    with open(os.path.join(d, "config.pbtxt"), "w") as f:
        f.write(CONFIG.format(name=name, count=count, extra=extra))
    for v in versions:
        write_version(repo, name, v, tag if tag is not None else v, fail)


def write_version(repo, name, version, tag, fail=False):
    d = os.path.join(repo, name, str(version))
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "model.py")
    with open(path + ".tmp", "w") as f:
        f.write(MODEL_PY.format(tag=tag, fail=fail))
    os.rename(path + ".tmp", path)


def start_gateway(worker_args, setup):
    workdir = tempfile.mkdtemp(prefix="ksv-mc-")
    repo = os.path.join(workdir, "repo")
    os.makedirs(repo)
    shutil.copytree(os.path.join(TOP, "conf/models/simple"),
                    os.path.join(repo, "simple"))
    setup(repo)
    gw = Gateway(workdir, worker_args=worker_args, models=repo)
    gw.start_redis()
    gw.start_worker()
    gw.start_nginx()
    return gw


def stop_gateway(gw):
    gw.stop_all()
    problems = gw.error_log_problems()
    if not problems:
        shutil.rmtree(gw.dir, ignore_errors=True)
    assert not problems, "nginx error log:\n" + "".join(problems[:20])


@pytest.fixture(scope="module")
def explicit():
    def setup(repo):
        write_model(repo, "rl", tag=10)
        write_model(repo, "later", tag=5, count=1)
        write_model(repo, "broken", tag=1, fail=True, count=1)
        write_warm_model(repo, "warm")
        shutil.copytree(os.path.join(TOP, "conf/models/simple_cuda"),
                        os.path.join(repo, "warm_cuda"))
        with open(os.path.join(repo, "warm_cuda", "config.pbtxt"), "a") as f:
            f.write(CUDA_WARMUP)
        text = open(os.path.join(repo, "warm_cuda", "config.pbtxt")).read()
        with open(os.path.join(repo, "warm_cuda", "config.pbtxt"), "w") as f:
            f.write(text.replace('name: "simple_cuda"', 'name: "warm_cuda"'))
        write_warm_model(repo, "warm_nofile", file="missing.bin")
        py = "python%d.%d" % sys.version_info[:2]
        write_env_model(repo, "envmodel", py)
        write_env_model(repo, "envold", "python3.9" if py != "python3.9"
                        else "python3.8")
        os.makedirs(os.path.join(repo, "auto", "1"))
        with open(os.path.join(repo, "auto", "config.pbtxt"), "w") as f:
            f.write('backend: "python"\n')
        with open(os.path.join(repo, "auto", "1", "model.py"), "w") as f:
            f.write(AUTO_PY)
    gw = start_gateway(["--model-control-mode", "explicit",
                        "--load-model", "simple", "--load-model", "rl"],
                       setup)
    try:
        for model in ("rl", "simple"):
            assert gw.wait_model_ready(model), \
                open(gw.worker_log).read()[-3000:]
        yield gw
    finally:
        stop_gateway(gw)


@pytest.fixture(scope="module")
def poll():
    def setup(repo):
        write_model(repo, "pv", versions=(1,), count=2)
    gw = start_gateway(["--model-control-mode", "poll",
                        "--repository-poll-secs", "1"], setup)
    try:
        assert gw.wait_model_ready("pv"), open(gw.worker_log).read()[-3000:]
        yield gw
    finally:
        stop_gateway(gw)


def client_of(gw):
    return httpclient.InferenceServerClient("127.0.0.1:%d" % gw.port,
                                            network_timeout=60.0)


def index_of(gw, ready=False):
    c = client_of(gw)
    try:
        return c.get_model_repository_index() if not ready else \
            json.loads(requests.post(gw.url + "/v2/repository/index",
                                     data=json.dumps({"ready": True}),
                                     timeout=30).text)
    finally:
        c.close()


def entries(index, name):
    return [e for e in index if e["name"] == name]


class Load:
    """n clients sending to model as fast as answers come back."""

    def __init__(self, gw, model, n=16, bound_s=5.0):
        self.url = "%s/v2/models/%s/infer" % (gw.url, model)
        self.n = n
        self.bound_s = bound_s
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.sent = 0
        self.failed = []
        self.slow = 0
        self.tags = {}
        self.threads = [threading.Thread(target=self.run, daemon=True)
                        for _ in range(n)]

    def run(self):
        s = requests.Session()
        while not self.stop.is_set():
            t = time.monotonic()
            try:
                r = s.post(self.url, data=BODY, timeout=30)
                ok = r.status_code == 200
                tag = r.json()["outputs"][0]["data"][0] if ok else None
                err = None if ok else "%d %s" % (r.status_code, r.text)
            except requests.RequestException as e:
                ok, tag, err = False, None, repr(e)
            took = time.monotonic() - t
            with self.lock:
                self.sent += 1
                if not ok:
                    self.failed.append(err)
                elif took > self.bound_s:
                    self.slow += 1
                else:
                    self.tags[tag] = self.tags.get(tag, 0) + 1

    def __enter__(self):
        for t in self.threads:
            t.start()
        assert wait_for(lambda: self.sent >= 50, timeout=30)
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join(timeout=60)

    def wait_tag(self, tag, timeout=30):
        def seen():
            with self.lock:
                return self.tags.get(tag, 0) >= 20
        return wait_for(seen, timeout=timeout)

    def report(self):
        return "sent %d, failed %d, slow %d, tags %s, first failures %s" % (
            self.sent, len(self.failed), self.slow, self.tags,
            self.failed[:3])


# ---- explicit mode ---------------------------------------------------------

def test_index_lists_loaded_versions_and_names_the_others(explicit):
    index = index_of(explicit)
    assert entries(index, "simple") == [
        {"name": "simple", "version": "1", "state": "READY"}]
    assert entries(index, "later") == [{"name": "later"}]
    assert {e["name"] for e in index_of(explicit, ready=True)} \
        == {"simple", "rl"}


def test_load_and_unload_with_tritonclient(explicit):
    c = client_of(explicit)
    try:
        assert not c.is_model_ready("later")
        c.load_model("later")
        assert c.is_model_ready("later")
        assert explicit.wait_model_ready("later")
        r = requests.post(explicit.url + "/v2/models/later/infer", data=BODY,
                          timeout=30)
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [5]

        c.unload_model("later")
        assert entries(c.get_model_repository_index(), "later")[0][
            "state"] in ("UNLOADING", "UNAVAILABLE")
        assert wait_for(lambda: entries(c.get_model_repository_index(),
                                        "later") == [
            {"name": "later", "version": "1", "state": "UNAVAILABLE",
             "reason": "unloaded"}], timeout=15)
        assert wait_for(lambda: not explicit.instance_pids("later"))
        assert not c.is_model_ready("later")
    finally:
        c.close()


def test_load_with_a_config_override(explicit):
    c = client_of(explicit)
    try:
        config = {"name": "later", "backend": "python",
                  "max_batch_size": "4",
                  "input": [{"name": "IN", "data_type": "TYPE_FP32",
                             "dims": ["1"]}],
                  "output": [{"name": "OUT", "data_type": "TYPE_FP32",
                              "dims": [1]}],
                  "instance_group": [{"count": 1, "kind": "KIND_CPU"}],
                  "parameters": {"NOTE": {"string_value": "from load"}}}
        c.load_model("later", config=json.dumps(config))
        got = c.get_model_config("later")
        assert got["max_batch_size"] == 4
        assert got["parameters"]["NOTE"]["string_value"] == "from load"
        assert explicit.wait_model_ready("later")
        r = requests.post(explicit.url + "/v2/models/later/infer", data=BODY,
                          timeout=30)
        assert r.status_code == 200 and r.json()["outputs"][0]["data"] == [5]
        c.unload_model("later")
    finally:
        c.close()


def test_load_with_files_makes_a_new_model(explicit):
    c = client_of(explicit)
    try:
        config = {"name": "uploaded", "backend": "python",
                  "max_batch_size": 8,
                  "input": [{"name": "IN", "data_type": "TYPE_FP32",
                             "dims": [1]}],
                  "output": [{"name": "OUT", "data_type": "TYPE_FP32",
                              "dims": [1]}]}
        code = MODEL_PY.format(tag=77, fail=False).encode()
        c.load_model("uploaded", config=json.dumps(config),
                     files={"file:1/model.py": code})
        assert explicit.wait_model_ready("uploaded")
        r = requests.post(explicit.url + "/v2/models/uploaded/infer",
                          data=BODY, timeout=30)
        assert r.json()["outputs"][0]["data"] == [77]
        assert entries(c.get_model_repository_index(), "uploaded") == [
            {"name": "uploaded", "version": "1", "state": "READY"}]
        c.unload_model("uploaded")
    finally:
        c.close()


def test_auto_complete_config_completes_what_clients_and_batches_see(
        explicit):
    c = client_of(explicit)
    try:
        c.load_model("auto")
        meta = c.get_model_metadata("auto")
        assert meta["inputs"] == [
            {"name": "IN", "datatype": "FP32", "shape": [-1, 2]}]
        assert meta["outputs"] == [
            {"name": "OUT", "datatype": "FP32", "shape": [-1, 2]}]
        config = c.get_model_config("auto")
        assert config["max_batch_size"] == 4
        assert "dynamic_batching" in config
        assert explicit.wait_model_ready("auto")
        body = {"inputs": [{"name": "IN", "shape": [3, 2],
                            "datatype": "FP32", "data": [1, 2, 3, 4, 5, 6]}]}
        r = requests.post(explicit.url + "/v2/models/auto/infer",
                          data=json.dumps(body), timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == [2, 4, 6, 8, 10, 12]
        # more rows than the completed max_batch_size: refused by nginx
        body["inputs"][0].update(shape=[5, 2], data=list(range(10)))
        r = requests.post(explicit.url + "/v2/models/auto/infer",
                          data=json.dumps(body), timeout=30)
        assert r.status_code == 400, r.text
        c.unload_model("auto")
    finally:
        c.close()


def test_execution_env_path_archive_is_unpacked_once_and_used(explicit):
    c = client_of(explicit)
    try:
        c.load_model("envmodel")
        assert explicit.wait_model_ready("envmodel")
        r = requests.post(explicit.url + "/v2/models/envmodel/infer",
                          data=BODY, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == [4242]
        # two instances, one unpacked copy
        envs = os.path.join(explicit.run_dir, "envs")
        assert len([d for d in os.listdir(envs)
                    if not d.endswith(".lock")]) == 1
        log = open(explicit.worker_log).read()
        assert log.count("envmodel: unpacking ") == 1
        # a reload (a new set of instances) unpacks nothing again
        write_version_text(explicit.repo, "envmodel", 1,
                           ENV_PY + "\n# changed\n")
        c.load_model("envmodel")
        assert open(explicit.worker_log).read().count(
            "envmodel: unpacking ") == 1
        c.unload_model("envmodel")
    finally:
        c.close()


def test_execution_env_of_another_python_fails_the_load(explicit):
    c = client_of(explicit)
    try:
        with pytest.raises(InferenceServerException) as e:
            c.load_model("envold")
        want = "holds Python 3.%d, but the instance embeds Python %d.%d" % (
            9 if sys.version_info[:2] != (3, 9) else 8,
            sys.version_info[0], sys.version_info[1])
        assert want in str(e.value), str(e.value)
        assert "EXECUTION_ENV_PATH '" in str(e.value)
    finally:
        c.close()


def test_model_warmup_runs_before_the_version_is_ready(explicit):
    c = client_of(explicit)
    try:
        c.load_model("warm")
        body = {"inputs": [{"name": "IN", "shape": [1, 2], "datatype": "FP32",
                            "data": [0.0, 0.0]}]}
        r = requests.post(explicit.url + "/v2/models/warm/infer",
                          data=json.dumps(body), timeout=30)
        assert r.status_code == 200, r.text
        # zeros: 3 batches of 2; from_file: 1 of 1 (7 + 8); random: 1 of
        # 1, both values in [0, 1) (zero only by a 2^-24 chance each)
        requests_, batches, file_sum, random = r.json()["outputs"][0]["data"]
        assert (requests_, batches, file_sum) == (8, 5, 15.0)
        assert random >= 1
        # warmup is not inference: the statistics count the one request
        (st,) = c.get_inference_statistics("warm")["model_stats"]
        assert int(st["inference_stats"]["success"]["count"]) == 1
        c.unload_model("warm")

        with pytest.raises(InferenceServerException) as e:
            c.load_model("warm_nofile")
        assert "warmup input 'IN': cannot read " in str(e.value)
        assert "missing.bin" in str(e.value)
    finally:
        c.close()


def test_model_warmup_runs_in_cuda_instances_too(explicit):
    c = client_of(explicit)
    try:
        c.load_model("warm_cuda")
        assert c.is_model_ready("warm_cuda")
        assert "warm_cuda: warmup 'cuda_zeros': 2 batch(es) of 2 request(s)" \
            in open(explicit.worker_log).read()
        a = list(range(16))
        body = {"inputs": [
            {"name": "INPUT0", "shape": [1, 16], "datatype": "INT32",
             "data": a},
            {"name": "INPUT1", "shape": [1, 16], "datatype": "INT32",
             "data": [1] * 16}]}
        assert explicit.wait_model_ready("warm_cuda")
        r = requests.post(explicit.url + "/v2/models/warm_cuda/infer",
                          data=json.dumps(body), timeout=30)
        assert r.status_code == 200, r.text
        assert r.json()["outputs"][0]["data"] == [x + 1 for x in a]
        c.unload_model("warm_cuda")
    finally:
        c.close()


def test_files_without_a_config_are_refused_as_triton_does(explicit):
    r = requests.post(
        explicit.url + "/v2/repository/models/x/load", timeout=30,
        data=json.dumps({"parameters": {"file:1/model.py":
                                        base64.b64encode(b"x").decode()}}))
    assert r.status_code == 400
    assert r.json()["error"] == ("Load parameter 'config' must be "
                                 "specified for model file override")


def test_load_of_an_unknown_model_fails_as_triton_says(explicit):
    c = client_of(explicit)
    try:
        with pytest.raises(InferenceServerException) as e:
            c.load_model("no_such_model")
        assert "failed to load 'no_such_model', failed to poll from model " \
               "repository" in str(e.value)
    finally:
        c.close()


def test_a_model_that_cannot_initialize_settles_unavailable(explicit):
    c = client_of(explicit)
    try:
        t = time.monotonic()
        with pytest.raises(InferenceServerException) as e:
            c.load_model("broken")
        took = time.monotonic() - t
        assert "load failed for model 'broken': version 1 is at UNAVAILABLE " \
               "state: failed to load 'broken' version 1: " in str(e.value)
        assert "refusing to start: tag 1" in str(e.value)
        assert took < 20
        (entry,) = entries(c.get_model_repository_index(), "broken")
        assert entry["state"] == "UNAVAILABLE"
        assert "refusing to start" in entry["reason"]

        # it stays down: no restarts after the bounded retries ...
        time.sleep(1.0)
        assert not explicit.instance_pids("broken")
        log = open(explicit.worker_log).read()
        assert log.count("instance broken_0 (version 1): started pid") == 3

        # ... until it is loaded again, fixed
        write_version(explicit.repo, "broken", 1, tag=2)
        c.load_model("broken")
        assert c.is_model_ready("broken")
        c.unload_model("broken")
    finally:
        c.close()


def test_bad_requests_get_triton_errors(explicit):
    r = requests.post(explicit.url + "/v2/repository/index", timeout=30,
                      data=json.dumps({"ready": "yes"}))
    assert r.status_code == 400
    assert r.json()["error"] == "Invalid value for 'ready': expected a boolean"

    r = requests.post(explicit.url + "/v2/repository/r1/index", timeout=30)
    assert r.status_code == 501
    assert r.json()["error"] == \
        "'repository_name' specification is not supported"

    r = requests.get(explicit.url + "/v2/repository/index", timeout=30)
    assert r.status_code == 405


def test_reload_in_explicit_mode_fails_no_request(explicit):
    """(b) model.py of a loaded model changes and it is loaded again."""
    c = client_of(explicit)

    def successes():
        (s,) = c.get_inference_statistics("rl", "1")["model_stats"]
        return int(s["inference_stats"]["success"]["count"])

    try:
        old = explicit.instance_pids("rl")
        before = successes()
        with Load(explicit, "rl") as load:
            assert load.wait_tag(10)
            write_version(explicit.repo, "rl", 1, tag=11)
            c.load_model("rl")
            assert load.wait_tag(11), load.report()
            time.sleep(0.5)
        assert not load.failed and not load.slow, load.report()
        print("explicit reload: " + load.report())
        # the version's counts go on across the reload: the old
        # instances' while they drain, then folded into the version's
        assert successes() == before + load.sent
        assert wait_for(lambda: not set(old) & set(
            explicit.instance_pids("rl")), timeout=20)
        assert successes() == before + load.sent
    finally:
        c.close()


def test_a_reload_that_fails_leaves_the_old_instances_serving(explicit):
    c = client_of(explicit)
    try:
        before = explicit.instance_pids("rl")
        with Load(explicit, "rl") as load:
            write_version(explicit.repo, "rl", 1, tag=12, fail=True)
            with pytest.raises(InferenceServerException) as e:
                c.load_model("rl")
            assert "load failed for model 'rl': version 1 is at READY " \
                   "state: " in str(e.value)
            time.sleep(0.3)
        assert not load.failed and not load.slow, load.report()
        assert 12 not in load.tags
        (entry,) = entries(c.get_model_repository_index(), "rl")
        assert entry["state"] == "READY"
        assert "refusing to start: tag 12" in entry["reason"]
        assert explicit.instance_pids("rl") == before
    finally:
        c.close()


def test_unload_after_clients_stopped_fails_nothing(explicit):
    """(c) rl is unloaded after its clients stopped, while another model's
    clients go on."""
    c = client_of(explicit)
    try:
        write_version(explicit.repo, "rl", 1, tag=13)
        c.load_model("rl")
        c.load_model("later")
        assert explicit.wait_model_ready("later")
        with Load(explicit, "rl") as rl_load:
            assert rl_load.wait_tag(13)
        with Load(explicit, "later") as load:
            c.unload_model("rl")
            assert wait_for(lambda: not explicit.instance_pids("rl"),
                            timeout=20)
        assert not rl_load.failed and not rl_load.slow, rl_load.report()
        assert not load.failed and not load.slow, load.report()
        print("unload: rl " + rl_load.report() + "; later " + load.report())
        assert entries(c.get_model_repository_index(), "rl") == [
            {"name": "rl", "version": "1", "state": "UNAVAILABLE",
             "reason": "unloaded"}]
        r = requests.post(explicit.url + "/v2/models/rl/infer", data=BODY,
                          timeout=30)
        assert r.status_code == 503, r.text
        assert r.json()["error"] == ("Request for unavailable model: 'rl' "
                                     "has no ready version: unloaded")
        c.unload_model("later")
    finally:
        c.close()


def test_a_restarted_worker_keeps_what_was_loaded_explicitly(explicit):
    """kill -9 of the worker: the restarted one (same --load-model list)
    adopts the instances of a model loaded by API, from the manifest."""
    import signal
    c = client_of(explicit)
    try:
        c.load_model("later")
        assert explicit.wait_model_ready("later")
        pids = explicit.instance_pids("later")
        assert pids
        explicit.stop_worker(signal.SIGKILL)
        explicit.start_worker()
        assert wait_for(lambda: c.is_model_ready("later"), timeout=20)
        assert explicit.instance_pids("later") == pids

        # the nginx workers reconnect to the new worker at their next
        # index poll; until then control requests are "kserve worker busy"
        def index_ok():
            try:
                return entries(c.get_model_repository_index(), "later") == [
                    {"name": "later", "version": "1", "state": "READY"}]
            except InferenceServerException:
                return False
        assert wait_for(index_ok, timeout=10)
        c.unload_model("later")
    finally:
        c.close()


# ---- poll mode -----------------------------------------------------------

def test_poll_mode_refuses_explicit_load(poll):
    c = client_of(poll)
    try:
        with pytest.raises(InferenceServerException) as e:
            c.load_model("pv")
        assert "explicit model load / unload is not allowed if polling is " \
               "enabled" in str(e.value)
    finally:
        c.close()


def test_poll_new_version_replaces_the_old_one_with_no_failure(poll):
    """(a) version 2 appears and version 1 goes away under poll."""
    with Load(poll, "pv") as load:
        assert load.wait_tag(1)
        write_version(poll.repo, "pv", 2, tag=2)
        assert load.wait_tag(2, timeout=30), load.report()
        assert wait_for(lambda: entries(index_of(poll), "pv") == [
            {"name": "pv", "version": "1", "state": "UNAVAILABLE",
             "reason": "unloaded"},
            {"name": "pv", "version": "2", "state": "READY"}], timeout=20)
        time.sleep(0.5)
    assert not load.failed and not load.slow, load.report()
    print("poll version 1 -> 2: " + load.report())


def test_poll_new_version_that_fails_leaves_the_old_one_serving(poll):
    """Version 3 cannot initialize: version 2 keeps serving, and version 3
    is UNAVAILABLE with the reason once its retries are spent."""
    with Load(poll, "pv") as load:
        assert load.wait_tag(2)
        write_version(poll.repo, "pv", 3, tag=3, fail=True)

        def v3_failed():
            e = [x for x in entries(index_of(poll), "pv")
                 if x.get("version") == "3"]
            return e and e[0]["state"] == "UNAVAILABLE" \
                and "refusing to start: tag 3" in e[0].get("reason", "")
        assert wait_for(v3_failed, timeout=30)
        time.sleep(0.5)
    assert not load.failed and not load.slow, load.report()
    assert 3 not in load.tags
    (v2,) = [x for x in entries(index_of(poll), "pv")
             if x.get("version") == "2"]
    assert v2["state"] == "READY"
    shutil.rmtree(os.path.join(poll.repo, "pv", "3"))


def test_poll_follows_models_that_come_and_go(poll):
    write_model(poll.repo, "appears", tag=3, count=1)
    assert poll.wait_model_ready("appears", timeout=30)
    shutil.rmtree(os.path.join(poll.repo, "appears"))
    assert wait_for(lambda: entries(index_of(poll), "appears") == [
        {"name": "appears", "version": "1", "state": "UNAVAILABLE",
         "reason": "unloaded"}], timeout=20)
