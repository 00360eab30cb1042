"""Integration fixtures: the real thing on loopback.

One session starts redis-server, kserve-worker (on a repository made of
conf/models plus tests/models) and nginx with the built module, each on
a free port or a private ipc socket.  Every test talks HTTP to nginx.
At the end, nginx's error log must hold no [alert], [crit] or [emerg].
"""

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import time

import pytest
import requests

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
BUILD = os.path.join(TOP, os.environ.get("KSV_BUILD", "build"))

# The deadline test needs a short kserve_timeout; it gets its own server.
NGINX_CONF = """
load_module {build}/ngx_http_kserve_module.so;
worker_processes 2;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
{user}
events {{ worker_connections 1024; }}
http {{
    access_log {dir}/access.log;
    # the request-content variables (test_routing_content)
    log_format kserve_vars '$kserve_request_id|$kserve_model_version|'
                           '$kserve_param_user|$kserve_param_tier|'
                           '$kserve_param_n|$uri';
    access_log {dir}/kserve_vars.log kserve_vars;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 0;
    # routed names (test_routing): weights and stats in this Redis
    kserve_redis 127.0.0.1:{redis_port} interval=250ms;
    kserve_route fraud {{
        variant fraud_v1 weight=90;
        variant fraud_v2 weight=10;
        sticky $http_x_user_id;
        fallback fraud_v1;
    }}
    kserve_route fraud_swrr {{
        variant fraud_v1 weight=2;
        variant fraud_v2 weight=1;
        strategy swrr;
    }}
    kserve_route fraud_canary {{
        variant fraud_v1;
        variant fraud_v2 weight=0;
        rule $http_x_canary yes fraud_v2;
        strategy least_outstanding;
    }}
    kserve_route flaky {{
        variant identity_fp32;
        variant fail_model;
        fallback identity_fp32;
        max_fails 3;
        eject_time 2s 4s;
    }}
    # rules and sticky keys on the request's own content
    # (test_routing_content): param_fail's versions, a JSON parameter
    kserve_route by_param {{
        variant param_fail:1 weight=5;
        variant param_fail:2 weight=3;
        variant param_fail:3 weight=2;
        rule $kserve_param_tier gold param_fail:3;
        sticky $kserve_param_user;
        max_fails 2;
        eject_time 6s;
    }}
    # GET /v2/routes (test_route_status): a rule picks the variant, a
    # short window, never ejects
    kserve_route status_demo {{
        variant param_fail:1 weight=3;
        variant param_fail:2;
        rule $kserve_param_to two param_fail:2;
        max_fails 0;
        window 1s;
    }}
    kserve_route shadowed {{
        variant identity_fp32;
        mirror slow_mirror 100%;
        strategy fastest;
    }}
    server {{
        listen 127.0.0.1:{port};
        location /v2 {{
            kserve_pass {endpoint};
            kserve_timeout 10s;
            kserve_max_body_size 4m;
            kserve_index_interval 200ms;
            kserve_shared_memory on;
            # which nginx worker answered (tests of shared counters)
            add_header X-Nginx-Pid $pid always;
        }}
        location = /metrics {{
            kserve_metrics;
            kserve_timeout 2s;
        }}
        location = /static {{ return 200 "ok"; }}
    }}
    server {{
        listen 127.0.0.1:{short_port};
        location /v2 {{
            kserve_pass {endpoint};
            kserve_timeout 1s;
            kserve_index_interval 200ms;
            kserve_server_name "ngx_kserve test";
        }}
    }}
    # API keys, tight limits, big bodies spooled to files (test_binary,
    # test_hostile, test_auth)
    server {{
        listen 127.0.0.1:{guard_port};
        client_body_timeout 2s;
        client_body_buffer_size 64k;
        kserve_api_keys {dir}/api_keys;
        location /v2 {{
            kserve_pass {endpoint};
            kserve_index_interval 200ms;
            kserve_max_body_size 300m;
            kserve_api_key_header X-API-Key;
            kserve_shared_memory on;
        }}
        location /v2/models/simple/ {{
            kserve_pass {endpoint};
            kserve_index_interval 200ms;
            kserve_api_key_header X-API-Key;
            kserve_max_inputs 2;
            kserve_max_outputs 1;
            kserve_max_json_depth 4;
            kserve_max_tensor_elements 16;
        }}
        location /v2/models/text_upper/ {{
            kserve_pass {endpoint};
            kserve_index_interval 200ms;
            kserve_api_key_health on;
            kserve_max_bytes_element 8;
        }}
        location = /v2/health/ready {{
            kserve_pass {endpoint};
            kserve_index_interval 200ms;
            kserve_api_key_header X-API-Key;
            kserve_api_key_health on;
        }}
    }}
}}
"""


# the first line of an ASan/LSan/UBSan report
SANITIZER_REPORT = re.compile(r"ERROR: (Address|Leak)Sanitizer|"
                              r"runtime error: |"
                              r"SUMMARY: UndefinedBehaviorSanitizer")


def nginx_env():
    """Environment for nginx.  Debian's nginx is not instrumented, so an
    ASan/UBSan module (SANITIZE=1 builds) needs the runtimes preloaded;
    nginx's master keeps its pools until exit, so leak checks are off."""
    env = dict(os.environ)
    if not os.environ.get("KSV_SANITIZE"):
        return env
    libs = []
    for lib in ("libasan.so", "libubsan.so"):
        path = subprocess.run(["gcc", "-print-file-name=" + lib],
                              capture_output=True, text=True).stdout.strip()
        libs.append(os.path.realpath(path))
    env["LD_PRELOAD"] = " ".join(libs)
    env["ASAN_OPTIONS"] = "detect_leaks=0:abort_on_error=1"
    env["UBSAN_OPTIONS"] = "halt_on_error=1:abort_on_error=1:" \
        "print_stacktrace=1"
    return env


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(predicate, timeout=15.0, interval=0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if predicate():
                return True
        except (requests.RequestException, OSError):
            pass
        time.sleep(interval)
    return False


def children_of(pid):
    """(pid, argv) of the direct children of pid (the worker's instances)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % entry) as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
            if ppid != pid:
                continue
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except (OSError, ValueError, IndexError):
            continue
        found.append((int(entry), argv))
    return found


def instances_of(run_dir, model=None):
    """Pids of the live instance processes started with --run-dir run_dir
    (and --model model, when given), whoever their parent: an instance
    adopted by a restarted worker is not its child, and an orphan has
    none but init.  A zombie has no command line, so it is not listed."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open("/proc/%s/cmdline" % entry, "rb") as f:
                argv = f.read().decode(errors="replace").split("\0")
        except OSError:
            continue

        def arg(name):
            return argv[argv.index(name) + 1] if name in argv[:-1] else None

        if arg("--run-dir") == run_dir and arg("--model") is not None \
                and (model is None or arg("--model") == model):
            found.append(int(entry))
    return sorted(found)


# ---- request bodies and answers shared by the suites ----------------------

def fp32_body(shape, **params):
    """A JSON infer body: INPUT0, FP32 ones of `shape`, and parameters."""
    n = 1
    for d in shape:
        n *= d
    b = {"inputs": [{"name": "INPUT0", "shape": list(shape),
                     "datatype": "FP32", "data": [1.0] * n}]}
    if params:
        b["parameters"] = params
    return json.dumps(b)


def scalar_body(**params):
    return fp32_body([1], **params)


def outputs(r):
    """{name: data} of a 200 answer."""
    assert r.status_code == 200, r.text
    return {o["name"]: o["data"] for o in r.json()["outputs"]}


class Gateway:
    """Handles to the running processes plus small HTTP helpers."""

    def __init__(self, workdir, worker_args=(), models=None):
        """worker_args: more kserve-worker options; models: a repository
        to serve instead of conf/models plus tests/models (copied by the
        caller, so a test may change it)."""
        self.dir = workdir
        self.worker_args = list(worker_args)
        self.port = free_port()
        self.short_port = free_port()
        self.guard_port = free_port()
        self.guard_url = "http://127.0.0.1:%d" % self.guard_port
        self.api_keys = ("key-one", "k2/+=")
        self.redis_port = free_port()
        self.endpoint = "ipc://%s/kserve.sock" % workdir
        self.url = "http://127.0.0.1:%d" % self.port
        self.short_url = "http://127.0.0.1:%d" % self.short_port
        self.procs = {}
        self.run_dir = os.path.join(workdir, "worker-run")
        self.repo = models or os.path.join(workdir, "models")
        if models is None:
            os.makedirs(self.repo)
        for src in (() if models else ("conf/models", "tests/models")):
            root = os.path.join(TOP, src)
            for name in sorted(os.listdir(root)):
                os.symlink(os.path.join(root, name),
                           os.path.join(self.repo, name))

    # -- processes ---------------------------------------------------

    def start_redis(self):
        self.procs["redis"] = subprocess.Popen(
            ["redis-server", "--port", str(self.redis_port), "--bind",
             "127.0.0.1", "--save", "", "--appendonly", "no"],
            stdout=open(os.path.join(self.dir, "redis.log"), "w"),
            stderr=subprocess.STDOUT)

    def start_worker(self):
        self.worker_log = os.path.join(self.dir, "worker.log")
        self.procs["worker"] = subprocess.Popen(
            [os.path.join(BUILD, "kserve-worker"), "--repository", self.repo,
             "--listen", self.endpoint,
             "--run-dir", self.run_dir] + self.worker_args,
            stdout=subprocess.DEVNULL,
            stderr=open(self.worker_log, "a"))

    def stop_worker(self, sig=signal.SIGTERM):
        proc = self.procs.pop("worker")
        proc.send_signal(sig)
        proc.wait(timeout=15)

    def start_nginx(self):
        conf = os.path.join(self.dir, "nginx.conf")
        with open(os.path.join(self.dir, "api_keys"), "w") as f:
            f.write("# test keys\n\n  %s  \n%s\r\n" % self.api_keys)
        with open(conf, "w") as f:
            f.write(NGINX_CONF.format(
                build=BUILD, dir=self.dir, port=self.port,
                short_port=self.short_port, guard_port=self.guard_port,
                endpoint=self.endpoint, redis_port=self.redis_port,
                user="user root;" if os.getuid() == 0 else ""))
        self.nginx_cmd = ["nginx", "-p", self.dir, "-c", conf,
                          "-e", os.path.join(self.dir, "error.log")]
        self.procs["nginx"] = subprocess.Popen(self.nginx_cmd,
                                               env=nginx_env())
        assert wait_for(lambda: requests.get(self.url + "/static").ok)

    def nginx_signal(self, action):
        subprocess.run(self.nginx_cmd + ["-s", action], check=True,
                       env=nginx_env())

    def instances(self, model):
        """Pids of the instance processes serving model: the worker's
        children and those it adopted (a test that restarts the worker,
        test_conformance's kill -9, leaves the instances adopted)."""
        return self.instance_pids(model)

    def instance_pids(self, model):
        """Pids of model's instances in this gateway's run directory, the
        worker's children and the instances it adopted alike."""
        return instances_of(self.run_dir, model)

    def wait_model_ready(self, model, timeout=30.0, in_a_row=8):
        """Ready as every nginx worker sees it: each worker polls the
        index on its own, and each GET is a new connection that may reach
        either, so one 200 is not enough."""
        url = "%s/v2/models/%s/ready" % (self.url, model)
        streak = [0]

        def ready():
            try:
                ok = requests.get(url, headers={"Connection": "close"},
                                  timeout=10).status_code == 200
            except (requests.RequestException, OSError):
                ok = False
            streak[0] = streak[0] + 1 if ok else 0
            return streak[0] >= in_a_row

        return wait_for(ready, timeout=timeout, interval=0.02)

    def stop_all(self):
        for name in ("nginx", "worker", "redis"):
            proc = self.procs.pop(name, None)
            if proc is None:
                continue
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def error_log_problems(self):
        """[alert]/[crit]/[emerg] lines of nginx's error log, and any
        sanitizer report (SANITIZE=1) in it or in the worker's log, which
        the instances share: nginx workers' stderr is the error log, and
        an instance that dies of a report is restarted, so only its log
        tells."""
        problems = []
        for name in ("error.log", "worker.log"):
            path = os.path.join(self.dir, name)
            if not os.path.exists(path):
                continue
            with open(path, errors="replace") as f:
                problems += [line for line in f
                             if SANITIZER_REPORT.search(line)
                             or (name == "error.log"
                                 and ("[alert]" in line or "[crit]" in line
                                      or "[emerg]" in line))]
        return problems

    # -- HTTP ----------------------------------------------------------

    def get(self, path, **kw):
        return requests.get(self.url + path, timeout=30, **kw)

    def post(self, path, **kw):
        return requests.post(self.url + path, timeout=30, **kw)


@pytest.fixture(scope="session")
def gateway():
    workdir = tempfile.mkdtemp(prefix="ksv-it-")
    gw = Gateway(workdir)
    try:
        gw.start_redis()
        gw.start_worker()
        gw.start_nginx()
        for model in ("simple", "identity_fp32", "text_upper",
                      "fraud_v1", "fraud_v2", "slow_mirror"):
            assert gw.wait_model_ready(model), \
                "%s never became ready; worker log:\n%s" % (
                    model, open(gw.worker_log).read()[-4000:])
        yield gw
    finally:
        gw.stop_all()
    problems = gw.error_log_problems()
    shutil.rmtree(workdir, ignore_errors=True) if not problems else None
    assert not problems, "nginx error log:\n" + "".join(problems[:20])


@pytest.fixture
def client(gateway):
    import tritonclient.http as httpclient
    c = httpclient.InferenceServerClient("127.0.0.1:%d" % gateway.port,
                                         concurrency=4)
    yield c
    c.close()


# ---- a second nginx with a configuration of its own -----------------------

OWN_NGINX_CONF = """
load_module {build}/ngx_http_kserve_module.so;
worker_processes {workers};
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log info;
{user}
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
{http}
}}
"""


class OwnNginx:
    """An nginx of a test module's own beside the session's, on the same
    kserve-worker: `http` is the body of its http{} block, with {port},
    {port2}, {endpoint} and {dir} filled in."""

    def __init__(self, gateway, http, workers=1):
        self.dir = tempfile.mkdtemp(prefix="ksv-own-")
        self.port = free_port()
        self.port2 = free_port()
        self.url = "http://127.0.0.1:%d" % self.port
        self.url2 = "http://127.0.0.1:%d" % self.port2
        self.conf = os.path.join(self.dir, "nginx.conf")
        fill = dict(port=self.port, port2=self.port2,
                    endpoint=gateway.endpoint, dir=self.dir)
        with open(self.conf, "w") as f:
            f.write(OWN_NGINX_CONF.format(
                build=BUILD, dir=self.dir, workers=workers,
                user="user root;" if os.getuid() == 0 else "",
                http=http.format(**fill)))
        self.cmd = ["nginx", "-p", self.dir, "-c", self.conf,
                    "-e", os.path.join(self.dir, "error.log")]
        self.proc = subprocess.Popen(self.cmd, env=nginx_env())
        assert wait_for(lambda: requests.get(
            self.url + "/v2/health/live").status_code == 200), \
            self.error_log()[-3000:]

    def error_log(self):
        path = os.path.join(self.dir, "error.log")
        return open(path, errors="replace").read() \
            if os.path.exists(path) else ""

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        bad = [line for line in self.error_log().splitlines()
               if "[alert]" in line or "[crit]" in line or "[emerg]" in line
               or SANITIZER_REPORT.search(line)]
        assert not bad, bad
        shutil.rmtree(self.dir, ignore_errors=True)
