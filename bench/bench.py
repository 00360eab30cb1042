#!/usr/bin/env python3
"""ngx_kserve side by side with Triton, MLServer and the physical limit.

One run measures, on this machine and with the same load generators:

  ngx_kserve        conf/nginx.conf (what `make run` starts) + kserve-worker
                    on bench/models, in a private run directory
  triton            the tritonserver binary + Python backend from PyPI's
                    nvidia-pytriton, on the same bench/models repository
  mlserver          Seldon MLServer with equivalent custom runtimes
                    (bench/mlserver/runtimes.py)
  nginx_return_200  nginx answering the same POST with `return 200` of a
                    same-sized reply: no gateway inside nginx beats it
  zmq_echo          a ZeroMQ DEALER->ROUTER echo of the request's size at
                    the same concurrency (bench/zmq_echo.c)

for the models identity_fp32, simple and fixed_2ms, JSON and binary
tensor formats, at each concurrency level, with wrk (bench/infer.lua)
for every system and Triton's perf_analyzer where the server speaks
enough of Triton's protocol (metadata + config).  It writes a Markdown
report with ratios to Triton and to the nginx limit, a PNG chart, the
raw results as JSON, and a CPU profile of the gateway under load.

Everything it compares against is installed by bench/setup.sh into
build/bench/ (`make bench` runs both).  `--smoke` measures ngx_kserve
alone for about two seconds and needs none of it.
"""

import argparse
import collections
import datetime
import glob
import json
import os
import platform
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time

from ksv_bench import (RESULT_RE, TOP, children, copy_binaries,
                       fill_nginx_conf, free_port, http, make_log, sh,
                       start_nginx, start_worker, stop_proc, wait_ready)
import ksv_bench

TOOLS = os.path.join(TOP, "build", "bench")
MODEL_REPO = os.path.join(TOP, "bench", "models")

SYSTEMS = ["ngx_kserve", "triton", "mlserver", "nginx_return_200", "zmq_echo"]
LABELS = {
    "ngx_kserve": "ngx_kserve",
    "triton": "Triton",
    "mlserver": "MLServer",
    "nginx_return_200": "nginx return 200",
    "zmq_echo": "ZeroMQ echo",
}
FORMATS = ["json", "binary"]

SEQ16 = list(range(1, 17))
MODELS = collections.OrderedDict([
    ("identity_fp32", {
        "inputs": [("INPUT0", "FP32", [float(v) for v in SEQ16])],
        "mlserver": {"implementation": "runtimes.Identity"},
    }),
    ("simple", {
        "inputs": [("INPUT0", "INT32", SEQ16), ("INPUT1", "INT32", [1] * 16)],
        "mlserver": {"implementation": "runtimes.Simple"},
    }),
    ("fixed_2ms", {
        "inputs": [("INPUT0", "FP32", [float(v) for v in SEQ16])],
        # Triton and ngx_kserve: dynamic_batching {} in config.pbtxt
        # (max_queue_delay 0: batch whatever is queued).  MLServer's
        # adaptive batching needs a wait; 1 ms is half the model's cost.
        "mlserver": {"implementation": "runtimes.Fixed2ms",
                     "max_batch_size": 64, "max_batch_time": 0.001},
    }),
])
PACK = {"FP32": "f", "INT32": "i"}


log = make_log("bench", stderr=False)


# ---- request bodies ---------------------------------------------------------

def make_body(model, fmt):
    """-> (body bytes, JSON header length or None)."""
    inputs = MODELS[model]["inputs"]
    if fmt == "json":
        doc = {"inputs": [{"name": n, "shape": [1, len(v)], "datatype": dt,
                           "data": v} for n, dt, v in inputs]}
        return json.dumps(doc, separators=(",", ":")).encode(), None
    raw = [struct.pack("<%d%s" % (len(v), PACK[dt]), *v) for _, dt, v in inputs]
    doc = {"inputs": [{"name": n, "shape": [1, len(v)], "datatype": dt,
                       "parameters": {"binary_data_size": len(r)}}
                      for (n, dt, v), r in zip(inputs, raw)],
           "parameters": {"binary_data_output": True}}
    header = json.dumps(doc, separators=(",", ":")).encode()
    return header + b"".join(raw), len(header)


def perf_analyzer_data(model, path):
    entry = {n: {"content": v, "shape": [len(v)]}
             for n, _, v in MODELS[model]["inputs"]}
    with open(path, "w") as f:
        json.dump({"data": [entry]}, f)


# ---- systems under test ----------------------------------------------------

class System:
    name = ""
    perf_analyzer = True     # speaks metadata + config, so perf_analyzer works

    def __init__(self, work):
        self.work = os.path.join(work, self.name)
        os.makedirs(self.work, exist_ok=True)
        self.port = free_port()
        self.procs = []
        self.command = ""

    def url(self, model):
        return "http://127.0.0.1:%d/v2/models/%s/infer" % (self.port, model)

    def start(self):
        raise NotImplementedError

    def stop(self):
        for p in reversed(self.procs):
            stop_proc(p)

    def pid_roles(self):
        roles = {}
        for p in self.procs:
            roles[p.pid] = self.name
            for pid in children(p.pid):
                roles[pid] = "nginx worker" if self.name.startswith("nginx") else self.name
        return roles


class NgxKserve(System):
    """conf/nginx.conf filled in as conf/run.sh does, in a private prefix
    (so a `make run` of the same build is left alone)."""
    name = "ngx_kserve"

    def start(self):
        run = self.work
        endpoint = "ipc://%s/kserve.sock" % run
        bindir = os.path.join(run, "bin")
        copy_binaries(bindir)
        self.command = ("kserve-worker --repository bench/models --listen ipc://... ; "
                        "nginx with conf/nginx.conf, as make run starts it")
        self.procs.append(start_worker(bindir, MODEL_REPO, endpoint, run))
        with open(os.path.join(TOP, "conf", "nginx.conf")) as f:
            conf = fill_nginx_conf(
                f.read(), os.path.join(bindir, "ngx_http_kserve_module.so"),
                run, "127.0.0.1:%d" % self.port, endpoint)
        env = dict(os.environ)
        if os.environ.get("KSV_SANITIZE"):
            # an ASan/UBSan module (make SANITIZE=1) in Debian's nginx
            # needs the runtimes preloaded, as tests/integration does
            env["LD_PRELOAD"] = " ".join(os.path.realpath(sh(
                "gcc -print-file-name=%s" % lib)) for lib in ("libasan.so", "libubsan.so"))
        self.procs.append(start_nginx(run, conf, env))
        wait_ready(["http://127.0.0.1:%d/v2/models/%s/ready" % (self.port, m)
                    for m in MODELS], self.procs[-1], 60)

    def pid_roles(self):
        roles = {pid: "nginx worker" for pid in children(self.procs[1].pid)}
        roles[self.procs[0].pid] = "kserve-worker"
        for pid in children(self.procs[0].pid):
            roles[pid] = "python instance"
        return roles

    def log_problems(self):
        try:
            with open(os.path.join(self.work, "error.log")) as f:
                return [l.strip() for l in f
                        if re.search(r"\[(alert|crit|emerg)\]", l)]
        except OSError:
            return []


class Triton(System):
    name = "triton"

    def start(self):
        self.shm_before = glob.glob("/dev/shm/triton_python_backend_shm_region_*")
        base = os.path.join(TOOLS, "tritonserver")
        binary = os.path.join(base, "bin", "tritonserver")
        if not os.access(binary, os.X_OK):
            raise RuntimeError("%s missing: run bench/setup.sh" % binary)
        libs = glob.glob(os.path.join(TOOLS, "venv-triton", "lib", "python*",
                                      "site-packages", "nvidia_pytriton.libs"))
        env = dict(os.environ)
        env["LD_LIBRARY_PATH"] = ":".join(libs + [env.get("LD_LIBRARY_PATH", "")])
        # The stub embeds Debian's libpython3.11, which finds its prefix by
        # looking up "python3" on PATH: make that Debian's, so the models
        # import Debian's numpy like kserve-python-instance's (a pyenv or
        # venv python3 first on PATH would hide it).
        env["PATH"] = "/usr/bin:" + env.get("PATH", "")
        env.pop("PYTHONHOME", None)
        env.pop("PYTHONPATH", None)
        args = [binary, "--model-repository=" + MODEL_REPO,
                "--backend-directory=" + os.path.join(base, "backends"),
                "--http-port=%d" % self.port, "--allow-grpc=false",
                "--allow-metrics=false", "--exit-timeout-secs=5"]
        self.command = ("PATH=/usr/bin:$PATH LD_LIBRARY_PATH=<venv>/nvidia_pytriton.libs tritonserver "
                        "--model-repository=bench/models "
                        "--backend-directory=build/bench/tritonserver/backends "
                        "--http-port=PORT --allow-grpc=false "
                        "--allow-metrics=false --exit-timeout-secs=5")
        out = open(os.path.join(self.work, "tritonserver.log"), "w")
        self.procs.append(subprocess.Popen(args, env=env, stdout=out, stderr=out))
        wait_ready(["http://127.0.0.1:%d/v2/health/ready" % self.port],
                   self.procs[-1], 120)

    def stop(self):
        # the Python backend stubs are children; one whose server died
        # (abort at start) stays behind holding its shared memory
        kids = children(self.procs[0].pid) if self.procs else []
        System.stop(self)
        stub = os.path.join(TOOLS, "tritonserver", "backends", "python",
                            "triton_python_backend_stub")
        for cmdline in glob.glob("/proc/[0-9]*/cmdline"):
            try:
                with open(cmdline, "rb") as f:
                    if f.read().split(b"\0")[0] == stub.encode():
                        kids.append(int(cmdline.split("/")[2]))
            except OSError:
                pass
        for pid in kids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        time.sleep(0.2)
        now = glob.glob("/dev/shm/triton_python_backend_shm_region_*")
        for path in set(now) - set(getattr(self, "shm_before", now)):
            try:
                os.unlink(path)
            except OSError:
                pass

    def pid_roles(self):
        roles = {self.procs[0].pid: "tritonserver"}
        for pid in children(self.procs[0].pid):
            roles[pid] = "python backend stub"
        return roles



class MLServer(System):
    name = "mlserver"
    perf_analyzer = True     # tried; fails without Triton's /config

    def start(self):
        binary = os.path.join(TOOLS, "venv-mlserver", "bin", "mlserver")
        if not os.access(binary, os.X_OK):
            raise RuntimeError("%s missing: run bench/setup.sh" % binary)
        repo = os.path.join(self.work, "repo")
        os.makedirs(repo, exist_ok=True)
        shutil.copy(os.path.join(TOP, "bench", "mlserver", "runtimes.py"), repo)
        with open(os.path.join(repo, "settings.json"), "w") as f:
            json.dump({"http_port": self.port, "grpc_port": free_port(),
                       "metrics_port": free_port(), "debug": False}, f)
        for model, spec in MODELS.items():
            os.makedirs(os.path.join(repo, model), exist_ok=True)
            settings = dict({"name": model}, **spec["mlserver"])
            with open(os.path.join(repo, model, "model-settings.json"), "w") as f:
                json.dump(settings, f)
        self.command = "mlserver start DIR (settings.json: ports; model-settings.json per model)"
        out = open(os.path.join(self.work, "mlserver.log"), "w")
        self.procs.append(subprocess.Popen([binary, "start", repo], cwd=repo,
                                           stdout=out, stderr=out,
                                           start_new_session=True))
        wait_ready(["http://127.0.0.1:%d/v2/models/%s/ready" % (self.port, m)
                    for m in MODELS], self.procs[-1], 120)

    def stop(self):
        # mlserver forks its inference pool: stop the whole group
        for p in self.procs:
            if p.poll() is None:
                try:
                    os.killpg(p.pid, signal.SIGTERM)
                    p.wait(20)
                except (subprocess.TimeoutExpired, ProcessLookupError):
                    os.killpg(p.pid, signal.SIGKILL)
                    p.wait()



class NginxReturn200(System):
    """Answers each model's infer with the reference reply (same size,
    header included), and its metadata/config statically, so wrk and
    perf_analyzer both drive it like a server."""
    name = "nginx_return_200"

    def __init__(self, work, replies, metadata):
        System.__init__(self, work)
        self.replies = replies
        self.metadata = metadata

    def start(self):
        d = self.work
        for sub in ("body", "proxy", "fcgi", "uwsgi", "scgi"):
            os.makedirs(os.path.join(d, sub), exist_ok=True)

        def q(s):
            s = s.decode("latin-1") if isinstance(s, bytes) else s
            if "'" in s or "$" in s or "\\" in s:
                raise RuntimeError("reply not quotable in nginx.conf")
            return "'%s'" % s

        locs = ["location = /v2/health/ready { return 200; }",
                "location = /v2 { return 200 %s; }" % q(self.metadata.get("/v2", "{}"))]
        for model in MODELS:
            meta, config, stats = self.metadata.get(model, ("{}", "{}", "{}"))
            base = "/v2/models/%s" % model
            locs.append("location = %s { return 200 %s; }" % (base, q(meta)))
            locs.append("location = %s/config { return 200 %s; }" % (base, q(config)))
            # perf_analyzer reads it before and after each window: the
            # static copy says the server did nothing, which it did
            locs.append("location = %s/stats { return 200 %s; }" % (base, q(stats)))
            locs.append("location = %s/ready { return 200; }" % base)
            body = []
            binary = self.replies.get((model, "binary"))
            if binary:
                reply, hlen = binary
                # the header as sent, tensor bytes as same-length filler
                text = reply[:hlen] + b"x" * (len(reply) - hlen)
                body.append("if ($http_inference_header_content_length) { "
                            "add_header Inference-Header-Content-Length %d; "
                            "return 200 %s; }" % (hlen, q(text)))
            js = self.replies.get((model, "json"))
            body.append("return 200 %s;" % q(js[0]) if js else "return 404;")
            locs.append("location = %s/infer { %s }" % (base, " ".join(body)))
        conf = """worker_processes 2; daemon off; pid {d}/nginx.pid; {user}
error_log {d}/error.log;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    default_type application/json;
    client_body_temp_path {d}/body; proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fcgi; uwsgi_temp_path {d}/uwsgi; scgi_temp_path {d}/scgi;
    client_body_buffer_size 1m;
    server {{
        listen 127.0.0.1:{port};
        {locs}
    }}
}}
""".format(d=d, port=self.port, locs="\n        ".join(locs),
           user="user root;" if os.getuid() == 0 else "")
        self.command = "nginx: location = /v2/models/M/infer { return 200 '<same-size reply>'; }"
        self.procs.append(start_nginx(d, conf))
        wait_ready(["http://127.0.0.1:%d/v2/health/ready" % self.port],
                   self.procs[-1], 10)


# ---- load generators --------------------------------------------------------

def run_wrk(url, body_path, hlen, conc, secs):
    r, why = ksv_bench.run_wrk(url, body_path, conc, secs, hlen=hlen)
    return r or {"note": "wrk failed: %s" % why[:200]}


def run_zmq_echo(endpoint, size, conc, secs):
    p = subprocess.run([os.path.join(TOOLS, "zmq_echo"), endpoint, str(size),
                        str(conc), str(secs)], capture_output=True, text=True,
                       timeout=secs + 30)
    m = RESULT_RE.search(p.stdout)
    if not m:
        return {"note": "zmq_echo failed: %s" % p.stderr.strip()[:200]}
    return {"rps": float(m.group(1)), "p50_us": int(m.group(2)),
            "p99_us": int(m.group(3)), "errors": 0}


def run_perf_analyzer(port, model, fmt, conc, data_path, work, interval_ms):
    csv = os.path.join(work, "pa-%s-%s-%d.csv" % (model, fmt, conc))
    env = dict(os.environ)
    cudart = glob.glob(os.path.join(TOOLS, "venv-triton", "lib", "python*",
                                    "site-packages", "nvidia", "cuda_runtime", "lib"))
    env["LD_LIBRARY_PATH"] = ":".join(cudart + [env.get("LD_LIBRARY_PATH", "")])
    cmd = [os.path.join(TOOLS, "perf_analyzer"), "-m", model,
           "-u", "127.0.0.1:%d" % port, "-i", "http",
           "--concurrency-range", str(conc), "--input-data", data_path,
           "--input-tensor-format", fmt, "--output-tensor-format", fmt,
           "-p", str(interval_ms), "-r", "6", "-s", "100", "-f", csv]
    try:
        p = subprocess.run(cmd, env=env, capture_output=True, text=True,
                           timeout=60)
    except subprocess.TimeoutExpired:
        return {"note": "perf_analyzer timed out"}
    if p.returncode != 0 or not os.path.exists(csv):
        lines = [l.strip() for l in (p.stdout + p.stderr).splitlines() if l.strip()]
        err = [l for l in lines if "rror" in l or "ailed" in l] or lines[-1:]
        return {"note": "perf_analyzer: %s" % (err[0] if err else "failed")[:160]}
    with open(csv) as f:
        rows = [l.strip().split(",") for l in f if l.strip()]
    row = dict(zip(rows[0], rows[1]))
    return {"rps": float(row["Inferences/Second"]),
            "p50_us": int(row["p50 latency"]), "p99_us": int(row["p99 latency"]),
            "errors": 0}


# ---- profile ------------------------------------------------------------------

def profile(system, model, conc, secs, work):
    """perf record (cpu-clock sampling) of the gateway's processes and
    wrk while wrk drives `model`: CPU time per request by process role
    (main thread vs libzmq's I/O thread), and the hottest symbols."""
    body, hlen = make_body(model, "json")
    body_path = os.path.join(work, "profile-body")
    with open(body_path, "wb") as f:
        f.write(body)
    data = os.path.join(work, "perf.data")
    freq = 999
    env = dict(os.environ, KSV_BENCH_BODY=body_path, KSV_BENCH_HEADER_LEN="")
    wrk = subprocess.Popen(["wrk", "-t2", "-c%d" % conc, "-d%gs" % (secs + 1),
                            "-s", os.path.join(TOP, "bench", "infer.lua"),
                            system.url(model)], env=env,
                           stdout=subprocess.PIPE, text=True)
    time.sleep(0.5)
    roles = system.pid_roles()
    roles[wrk.pid] = "wrk (load generator)"
    rec = subprocess.run(["perf", "record", "-F", str(freq), "-o", data,
                          "-p", ",".join(map(str, roles)), "--", "sleep", str(secs)],
                         capture_output=True, text=True)
    out, _ = wrk.communicate()
    m = RESULT_RE.search(out or "")
    if rec.returncode != 0 or not m:
        return {"note": "perf record failed: %s" % rec.stderr.strip()[-200:]}
    rps = float(m.group(1))
    script = subprocess.run(["perf", "script", "-i", data, "-F",
                             "comm,pid,tid,ip,sym,dso"],
                            capture_output=True, text=True).stdout
    line_re = re.compile(r"^\s*(.*?)\s+(\d+)/(\d+)\s+[0-9a-f]+\s+(.*?)\s+\((.*)\)$")
    by_role = collections.Counter()
    by_sym = collections.Counter()
    total = 0
    for line in script.splitlines():
        mm = line_re.match(line)
        if not mm:
            continue
        comm, pid, tid, sym, dso = mm.groups()
        role = roles.get(int(pid), comm)
        if comm.startswith("ZMQbg"):
            role += ", libzmq I/O thread"
        total += 1
        by_role[role] += 1
        by_sym[(role, os.path.basename(dso), sym)] += 1
    if not total:
        return {"note": "perf recorded no samples"}
    per_proc = [(role, n, 100.0 * n / total, n / freq / (rps * secs) * 1e6)
                for role, n in by_role.most_common()]
    by_dso = collections.Counter()
    for (role, dso, sym), n in by_sym.items():
        by_dso[(role, dso)] += n
    top_dso = [(role, dso, 100.0 * n / total)
               for (role, dso), n in by_dso.most_common(15)]
    top = [(role, dso, sym, 100.0 * n / total)
           for (role, dso, sym), n in by_sym.most_common()
           if sym != "[unknown]"][:20]
    ours = ("ngx_http_kserve_module.so", "kserve-worker", "kserve-python-instance")
    top_ours = [(role, dso, sym, 100.0 * n / total)
                for (role, dso, sym), n in by_sym.most_common()
                if dso in ours and sym != "[unknown]"][:12]
    return {"model": model, "conc": conc, "secs": secs, "rps": rps,
            "samples": total, "freq": freq, "per_process": per_proc,
            "top_dso": top_dso, "top": top, "top_ours": top_ours}


# ---- the run ----------------------------------------------------------------

def dist_version(venv, name):
    hits = glob.glob(os.path.join(TOOLS, venv, "lib", "python*", "site-packages",
                                  "%s-*.dist-info" % name))
    return hits[0][:-len(".dist-info")].rsplit("-", 1)[1] if hits else "?"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--smoke", action="store_true",
                    help="ngx_kserve only, identity_fp32, ~2 s of load")
    ap.add_argument("--systems", default=",".join(SYSTEMS),
                    help="comma-separated subset of %(default)s")
    ap.add_argument("--models", default=",".join(MODELS),
                    help="comma-separated subset of %(default)s")
    ap.add_argument("--formats", default=",".join(FORMATS),
                    help="json and/or binary tensors")
    ap.add_argument("--conc", default=os.environ.get("KSV_BENCH_CONNS", "1,4,16,64"),
                    help="concurrency levels (env KSV_BENCH_CONNS; default %(default)s)")
    ap.add_argument("--seconds", type=float,
                    default=float(os.environ.get("KSV_BENCH_SECONDS", "3")),
                    help="wrk seconds per point (env KSV_BENCH_SECONDS; default %(default)s)")
    ap.add_argument("--warmup", type=float, default=1.0,
                    help="seconds of c=4 load before each model and format")
    ap.add_argument("--pa-interval-ms", type=int, default=800,
                    help="perf_analyzer measurement window")
    ap.add_argument("--no-perf-analyzer", action="store_true")
    ap.add_argument("--no-profile", action="store_true",
                    help="skip the perf profile of ngx_kserve")
    ap.add_argument("--out", default=os.path.join(TOP, "docs", "benchmarks.md"))
    ap.add_argument("--png", default=None,
                    help="chart path (default: bench.png next to --out)")
    ap.add_argument("--json", default=os.path.join(TOOLS, "results.json"),
                    help="raw results (default %(default)s)")
    ap.add_argument("--render", metavar="RESULTS_JSON",
                    help="measure nothing: rewrite --out and the chart from "
                         "a results file of an earlier run")
    a = ap.parse_args()

    if a.render:
        with open(a.render) as f:
            doc = json.load(f)
        res = doc["results"]
        models = [m for m in MODELS if any(r["model"] == m for r in res)]
        formats = [f for f in FORMATS if any(r["fmt"] == f for r in res)]
        concs = doc["run"]["concs"]
        png = a.png or os.path.join(os.path.dirname(os.path.abspath(a.out)), "bench.png")
        chart = plot(res, models, formats, concs, png)
        write_markdown(a.out, doc["run"], doc["versions"], doc["commands"],
                       doc["notes"], res, doc.get("profile") or {},
                       models, formats, concs, chart)
        log("rendered", a.out, "from", a.render)
        return

    if a.smoke:
        a.systems, a.models, a.formats = "ngx_kserve", "identity_fp32", "json,binary"
        a.conc, a.seconds, a.warmup = "1,4", 1.0, 0
        a.no_perf_analyzer = a.no_profile = True
    systems = [s for s in a.systems.split(",") if s]
    models = [m for m in a.models.split(",") if m]
    formats = [f for f in a.formats.split(",") if f]
    concs = [int(c) for c in re.split(r"[ ,]+", a.conc.strip())]
    png = a.png or os.path.join(os.path.dirname(os.path.abspath(a.out)), "bench.png")
    use_pa = not a.no_perf_analyzer and os.access(os.path.join(TOOLS, "perf_analyzer"), os.X_OK)
    for m in models:
        if m not in MODELS:
            sys.exit("unknown model %s" % m)

    started = time.time()
    work = tempfile.mkdtemp(prefix="ksv-bench.")
    results = []          # one dict per measured point (or skip)
    notes = []            # skipped systems/formats, with why
    replies = {}          # (model, fmt) -> (reply, header length): the limit's
    metadata = {}         # model -> (metadata JSON, config JSON)
    commands = {}
    versions = {}
    prof = {}             # system -> profile()
    load_before = os.getloadavg()

    bodies = {}
    for m in models:
        perf_analyzer_data(m, os.path.join(work, "pa-%s.json" % m))
        for fmt in formats:
            body, hlen = make_body(m, fmt)
            path = os.path.join(work, "body-%s-%s" % (m, fmt))
            with open(path, "wb") as f:
                f.write(body)
            bodies[(m, fmt)] = (path, hlen, len(body))

    def add(gen, system, model, fmt, conc, r):
        r = dict(r, gen=gen, system=system, model=model, fmt=fmt, conc=conc)
        results.append(r)
        if "rps" in r:
            log("%-13s %-16s %-13s %-6s c=%-3d %9.1f/s p50 %6d us p99 %6d us err %d"
                % (gen, system, model, fmt, conc, r["rps"], r["p50_us"],
                   r["p99_us"], r["errors"]))
        else:
            log("%-13s %-16s %-13s %-6s c=%-3d %s" % (gen, system, model, fmt,
                                                      conc, r["note"]))

    def measure_server(sysobj):
        for m in models:
            for fmt in formats:
                path, hlen, _ = bodies[(m, fmt)]
                headers = {"Content-Type": "application/json"}
                if hlen is not None:
                    headers = {"Content-Type": "application/octet-stream",
                               "Inference-Header-Content-Length": str(hlen)}
                with open(path, "rb") as f:
                    status, rh, reply = http("POST", sysobj.url(m), f.read(), headers)
                if status != 200:
                    why = "%s %s: HTTP %d %s" % (LABELS[sysobj.name], fmt, status,
                                                 reply[:160].decode("utf-8", "replace"))
                    notes.append("%s `%s` skipped — %s" % (LABELS[sysobj.name], m, why))
                    log("skip:", m, why)
                    continue
                rhlen = {k.lower(): v for k, v in rh.items()}.get(
                    "inference-header-content-length")
                if fmt == "binary" and rhlen is None:
                    notes.append("%s `%s` binary: reply had no binary tensors "
                                 "(answered in JSON)" % (LABELS[sysobj.name], m))
                if (m, fmt) not in replies and sysobj.name in ("ngx_kserve", "triton"):
                    replies[(m, fmt)] = (reply, int(rhlen) if rhlen else len(reply))
                if "/v2" not in metadata and sysobj.name in ("ngx_kserve", "triton"):
                    st, _, server = http("GET", "http://127.0.0.1:%d/v2" % sysobj.port)
                    if st == 200:
                        metadata["/v2"] = server
                if m not in metadata and sysobj.name in ("ngx_kserve", "triton"):
                    base = "http://127.0.0.1:%d/v2/models/%s" % (sysobj.port, m)
                    st1, _, meta = http("GET", base)
                    st2, _, config = http("GET", base + "/config")
                    st3, _, stats = http("GET", base + "/stats")
                    if st1 == 200 and st2 == 200 and st3 == 200:
                        metadata[m] = (meta, config, stats)
                if a.warmup > 0:
                    run_wrk(sysobj.url(m), path, hlen, 4, a.warmup)
                for c in concs:
                    add("wrk", sysobj.name, m, fmt, c,
                        run_wrk(sysobj.url(m), path, hlen, c, a.seconds))
                if use_pa and sysobj.perf_analyzer:
                    for c in concs:
                        r = run_perf_analyzer(sysobj.port, m, fmt, c,
                                              os.path.join(work, "pa-%s.json" % m),
                                              sysobj.work, a.pa_interval_ms)
                        add("perf_analyzer", sysobj.name, m, fmt, c, r)
                        if "note" in r and sysobj.name == "mlserver":
                            break  # one failure says it all

    classes = {"ngx_kserve": NgxKserve, "triton": Triton, "mlserver": MLServer}
    for name in systems:
        if name not in classes:
            continue
        for attempt in (1, 2):     # one retry: a start can fail on a busy box
            sysobj = classes[name](os.path.join(work, "try%d" % attempt))
            log("starting", name)
            try:
                sysobj.start()
                break
            except (RuntimeError, OSError) as e:
                log(name, "failed to start:", e)
                sysobj.stop()
                if attempt == 2:
                    notes.append("%s not measured: %s (logs in %s)"
                                 % (LABELS[name], e, sysobj.work))
                    sysobj = None
        if sysobj is None:
            continue
        commands[name] = sysobj.command
        try:
            if name == "triton":
                st, _, body = http("GET", "http://127.0.0.1:%d/v2" % sysobj.port)
                if st == 200:
                    versions["tritonserver"] = json.loads(body).get("version", "?")
            measure_server(sysobj)
            if (name in ("ngx_kserve", "triton") and not a.no_profile
                    and "identity_fp32" in models):
                log("profiling %s identity_fp32 c=16" % name)
                prof[name] = profile(sysobj, "identity_fp32", 16, 4, work)
        finally:
            sysobj.stop()
            if name == "ngx_kserve":
                problems = sysobj.log_problems()
                for line in problems[:3]:
                    notes.append("ngx_kserve error.log: `%s`" % line[:200])
                if len(problems) > 3:
                    notes.append("ngx_kserve error.log: %d more [alert]/[crit]/[emerg] "
                                 "lines" % (len(problems) - 3))

    if "nginx_return_200" in systems and replies:
        lim = NginxReturn200(work, replies, metadata)
        log("starting nginx_return_200")
        try:
            lim.start()
            commands["nginx_return_200"] = lim.command
            for m in models:
                for fmt in formats:
                    if (m, fmt) not in replies:
                        continue
                    path, hlen, _ = bodies[(m, fmt)]
                    if a.warmup > 0:
                        run_wrk(lim.url(m), path, hlen, 4, a.warmup)
                    for c in concs:
                        add("wrk", lim.name, m, fmt, c,
                            run_wrk(lim.url(m), path, hlen, c, a.seconds))
            if not a.no_profile and "identity_fp32" in models:
                log("profiling nginx_return_200 identity_fp32 c=16")
                prof["nginx_return_200"] = profile(lim, "identity_fp32", 16, 4, work)
        except (RuntimeError, OSError) as e:
            notes.append("nginx return 200 not measured: %s" % e)
        finally:
            lim.stop()

    if "zmq_echo" in systems:
        if os.access(os.path.join(TOOLS, "zmq_echo"), os.X_OK):
            commands["zmq_echo"] = ("build/bench/zmq_echo ipc://... SIZE CONC SECONDS"
                                    " (DEALER -> ROUTER echo, SIZE = request body)")
            for m in models:
                for fmt in formats:
                    size = bodies[(m, fmt)][2]
                    for c in concs:
                        add("wrk", "zmq_echo", m, fmt, c, run_zmq_echo(
                            "ipc://%s/echo.sock" % work, size, c, a.seconds))
        else:
            notes.append("ZeroMQ echo not measured: build/bench/zmq_echo missing "
                         "(bench/setup.sh builds it)")

    elapsed = time.time() - started
    versions.update({
        "nginx": sh("nginx -v 2>&1").split("/")[-1].strip(),
        "wrk": sh("wrk -v 2>&1 | head -1").split(" [")[0].replace("wrk ", ""),
        "libzmq": sh("dpkg-query -W -f='${Version}' libzmq5"),
        "python": platform.python_version(),
        "numpy (Debian, used by all three servers' models)":
            sh("dpkg-query -W -f='${Version}' python3-numpy"),
        "nvidia-pytriton": dist_version("venv-triton", "nvidia_pytriton"),
        "mlserver": dist_version("venv-mlserver", "mlserver"),
        "perf_analyzer": "from the tritonclient 2.42.0 wheel" if use_pa else "not used",
        "ngx_kserve": sh("cd %s && git rev-parse --short HEAD" % TOP)
                      + (" + uncommitted changes"
                         if sh("cd %s && git status --porcelain -uno" % TOP) else ""),
    })
    run_info = {
        "date": datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M UTC"),
        "cpu": sh("grep -m1 'model name' /proc/cpuinfo").split(":")[-1].strip(),
        "cores": os.cpu_count(),
        "mem_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30),
        "kernel": platform.release(),
        "os": sh(". /etc/os-release && echo $PRETTY_NAME"),
        "load_before": load_before,
        "elapsed_s": elapsed,
        "seconds": a.seconds,
        "warmup": a.warmup,
        "concs": concs,
        "smoke": a.smoke,
        "argv": " ".join(sys.argv[1:]),
    }
    os.makedirs(os.path.dirname(os.path.abspath(a.json)), exist_ok=True)
    with open(a.json, "w") as f:
        json.dump({"run": run_info, "versions": versions, "commands": commands,
                   "notes": notes, "results": results, "profile": prof}, f, indent=1)

    chart = None
    if not a.smoke:
        chart = plot(results, models, formats, concs, png)
        if chart is None:
            notes.append("no chart: matplotlib is missing (apt-get install python3-matplotlib)")
    write_markdown(a.out, run_info, versions, commands, notes, results, prof,
                   models, formats, concs, chart)
    log("done in %.0f s: %s" % (elapsed, a.out))
    if os.environ.get("KSV_BENCH_KEEP") or any("not measured" in n for n in notes):
        log("kept", work, "(KSV_BENCH_KEEP, or something was not measured)")
    else:
        shutil.rmtree(work, ignore_errors=True)


# ---- report -------------------------------------------------------------------

def short(sym, n=70):
    sym = sym.replace("|", "/")
    return sym if len(sym) <= n else sym[:n - 1] + "…"


def write_profile(w, profs):
    w("## Where the time goes")
    w("")
    w("One ngx_kserve request crosses two processes: the nginx worker "
      "parses the JSON and sends a frame on its ROUTER straight to the "
      "instance with the fewest requests outstanding; the instance's "
      "scheduler thread queues and batches it, its main thread runs "
      "`execute()` in CPython, and the answer comes back the same way, "
      "then nginx writes the JSON answer. kserve-worker is not on the "
      "path. That is two ZeroMQ messages, each passing through the "
      "sending and the receiving process's libzmq I/O thread (a thread "
      "wake-up and a context switch per hop), against none for nginx "
      "`return 200`; the single-hop ZeroMQ echo above is the floor for "
      "one of them.")
    w("")
    w("Each server was profiled with `perf record -F 999 -p <its processes "
      "and wrk's>` (cpu-clock sampling: this VM has no hardware counters) "
      "for 4 s while wrk drove `identity_fp32` (JSON) at c=16. On a "
      "CPU-bound 2-core machine, throughput is about cores ÷ CPU time per "
      "request, so this table is the ratio the goals are about:")
    w("")
    w("| system | infer/s while profiled | server CPU µs per request | "
      "wrk CPU µs per request | CPU-s/s sampled |")
    w("| --- | ---: | ---: | ---: | ---: |")
    for name, prof in profs.items():
        if "per_process" not in prof:
            w("| %s | profile not taken: %s | | | |" % (LABELS[name], prof["note"]))
            continue
        srv = sum(us for role, _, _, us in prof["per_process"] if not role.startswith("wrk"))
        gen = sum(us for role, _, _, us in prof["per_process"] if role.startswith("wrk"))
        w("| %s | %.0f | %.1f | %.1f | %.2f |" % (
            LABELS[name], prof["rps"], srv, gen,
            prof["samples"] / prof["freq"] / prof["secs"]))
    w("")
    w("(CPU-s/s sampled below the %d cores: other load on the machine, "
      "or idle.)" % os.cpu_count())
    w("")
    for name, prof in profs.items():
        if "per_process" not in prof:
            continue
        w("### %s" % LABELS[name])
        w("")
        w("| process | share of samples | CPU µs per request |")
        w("| --- | ---: | ---: |")
        for role, n, pct, us in prof["per_process"][:10]:
            w("| %s | %.1f%% | %.1f |" % (role, pct, us))
        w("")
        w("By library (`[kernel.kallsyms]` is the kernel: syscalls, socket "
          "and pipe I/O, scheduling):")
        w("")
        w("| process | library | share |")
        w("| --- | --- | ---: |")
        for role, dso, pct in prof["top_dso"][:12]:
            w("| %s | %s | %.1f%% |" % (role, dso, pct))
        w("")
        w("Hottest named symbols (stripped libraries such as Debian's nginx, "
          "libzmq, libjansson and libpython only show by library above):")
        w("")
        w("| process | library | symbol | share |")
        w("| --- | --- | --- | ---: |")
        for role, dso, sym, pct in prof["top"][:15]:
            w("| %s | %s | `%s` | %.1f%% |" % (role, dso, short(sym), pct))
        w("")
        if prof.get("top_ours"):
            w("This project's own code (module, worker, instance binary):")
            w("")
            w("| process | binary | symbol | share |")
            w("| --- | --- | --- | ---: |")
            for role, dso, sym, pct in prof["top_ours"]:
                w("| %s | %s | `%s` | %.2f%% |" % (role, dso, short(sym), pct))
            w("")


def find(results, gen, system, model, fmt, conc):
    for r in results:
        if (r["gen"], r["system"], r["model"], r["fmt"], r["conc"]) == \
                (gen, system, model, fmt, conc) and "rps" in r:
            return r
    return None


def ratio(a, b):
    if a is None or not b:
        return "–"
    x = a / b
    return ("%.2f×" if x >= 0.1 else "%.3f×") % x


def plot(results, models, formats, concs, png):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(models), figsize=(5.2 * len(models), 4.6),
                             squeeze=False)
    styles = {"json": "-", "binary": "--"}
    colors = {"ngx_kserve": "tab:green", "triton": "tab:blue",
              "mlserver": "tab:orange", "nginx_return_200": "tab:gray",
              "zmq_echo": "tab:purple"}
    for ax, m in zip(axes[0], models):
        for s in SYSTEMS:
            for fmt in formats:
                pts = [(c, find(results, "wrk", s, m, fmt, c)) for c in concs]
                pts = [(c, r["rps"]) for c, r in pts if r]
                if not pts:
                    continue
                ax.plot([p[0] for p in pts], [p[1] for p in pts],
                        styles[fmt], marker="o", color=colors[s],
                        label="%s (%s)" % (LABELS[s], fmt))
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(concs)
        ax.set_xticklabels([str(c) for c in concs])
        ax.set_title(m)
        ax.set_xlabel("concurrency (connections)")
        ax.set_ylabel("infer/s (log)")
        ax.grid(True, which="both", alpha=0.3)
    handles, labels = axes[0][0].get_legend_handles_labels()
    for ax in axes[0][1:]:
        for h, l in zip(*ax.get_legend_handles_labels()):
            if l not in labels:
                handles.append(h)
                labels.append(l)
    fig.legend(handles, labels, loc="lower center", ncol=5, fontsize=9,
               frameon=False)
    fig.suptitle("Throughput vs concurrency (wrk, same machine, same run; "
                 "solid JSON, dashed binary)")
    fig.tight_layout(rect=(0, 0.12, 1, 0.95))
    os.makedirs(os.path.dirname(os.path.abspath(png)), exist_ok=True)
    fig.savefig(png, dpi=90)
    return png


def cpu_per_request(prof, server=True):
    if not prof or "per_process" not in prof:
        return None
    return sum(us for role, _, _, us in prof["per_process"]
               if role.startswith("wrk") != server)


def goals(results, profs=None):
    """The targets of the one-hop issue, read off the wrk table, and the
    same ratios from CPU time per request (the profile), which a busy
    machine disturbs much less than throughput."""
    rows = []

    def row(goal, have, ok):
        rows.append("| %s | %s | %s |" % (goal, have, "met" if ok else
                                          ("**not met**" if ok is not None else "–")))

    def ratio(model, fmt, conc, key="rps"):
        ours = find(results, "wrk", "ngx_kserve", model, fmt, conc)
        tri = find(results, "wrk", "triton", model, fmt, conc)
        if not ours or not tri or not tri[key]:
            return None, ours, tri
        return ours[key] / tri[key], ours, tri

    for model, fmt, conc, want in (("identity_fp32", "json", 16, 3),
                                   ("identity_fp32", "binary", 64, 4),
                                   ("fixed_2ms", "json", 16, 1.2),
                                   ("fixed_2ms", "json", 64, 1.2)):
        x, _, _ = ratio(model, fmt, conc)
        if x is not None:
            row("%s %s c=%d: ≥ %g× Triton infer/s" % (model, fmt, conc, want),
                "%.2f×" % x, x >= want)
    x, ours, tri = ratio("identity_fp32", "json", 1, "p50_us")
    if x is not None:
        row("identity_fp32 json c=1: p50 ≤ 0.5× Triton's",
            "%.2f× (%d µs vs %d µs)" % (x, ours["p50_us"], tri["p50_us"]), x <= 0.5)
    x, ours, tri = ratio("identity_fp32", "json", 1, "p99_us")
    if x is not None:
        row("identity_fp32 json c=1: p99 ≤ Triton's",
            "%.2f× (%d µs vs %d µs)" % (x, ours["p99_us"], tri["p99_us"]), x <= 1)

    profs = profs or {}
    ours = cpu_per_request(profs.get("ngx_kserve"))
    tri = cpu_per_request(profs.get("triton"))
    if ours and tri:
        x = ours / tri
        row("profile, identity_fp32 json c=16: server CPU per request "
            "≤ 1/3 of Triton's", "%.2f× (%.0f µs vs %.0f µs)" % (x, ours, tri),
            x <= 1 / 3)
    prof = profs.get("ngx_kserve")
    if prof and "per_process" in prof:
        worker = sum(us for role, _, _, us in prof["per_process"]
                     if role.startswith("kserve-worker"))
        inst = sum(us for role, _, _, us in prof["per_process"]
                   if role.startswith("python instance"))
        if inst:
            x = worker / inst
            row("profile: kserve-worker CPU < 2% of the instances'",
                "%.1f%% (%.1f µs vs %.1f µs per request)" % (100 * x, worker, inst),
                x < 0.02)
    return rows


def write_markdown(out, run, versions, commands, notes, results, prof,
                   models, formats, concs, chart):
    L = []
    w = L.append
    w("# Benchmarks")
    w("")
    w("Generated by `make bench` (bench/setup.sh + bench/bench.py) on %s; "
      "do not edit by hand, rerun it." % run["date"])
    w("")
    w("## Machine, versions, commands")
    w("")
    w("- Machine: %s, %d cores, %d GiB, %s, Linux %s. Load generators "
      "(wrk, perf_analyzer) run on the same cores as the servers. "
      "Load average before the run: %s (other work on the machine shows "
      "up as noise)." % (run["cpu"], run["cores"], run["mem_gib"], run["os"],
                         run["kernel"], " ".join("%.2f" % x for x in run["load_before"])))
    w("- %g s per point after a %g s warm-up per model and format; whole run "
      "%.0f s%s." % (run["seconds"], run["warmup"], run["elapsed_s"],
                    " (smoke mode)" if run["smoke"] else ""))
    w("- Versions: " + "; ".join("%s %s" % kv for kv in versions.items()) + ".")
    w("- Command: `make bench` (= `bench/setup.sh && python3 bench/bench.py %s`); "
      "knobs: `KSV_BENCH_SECONDS`, `KSV_BENCH_CONNS`, "
      "`python3 bench/bench.py --help`." % run["argv"])
    w("- Load: `wrk -t2 -cC -dS --timeout 10s -s bench/infer.lua URL` "
      "(`-t1` at c=1) for every system; `perf_analyzer -i http "
      "--concurrency-range C --input-data <same values> "
      "--input-tensor-format F --output-tensor-format F -p 800 -r 6 -s 100` "
      "where the server answers Triton's metadata and config.")
    w("- Systems:")
    for s in SYSTEMS:
        if s in commands:
            w("  - %s: `%s`" % (LABELS[s], commands[s]))
    w("- Models (bench/models, one CPU instance each, Python backend): "
      "`identity_fp32` (FP32 [1,16] echo), `simple` (INT32 [1,16] add/sub), "
      "`fixed_2ms` (FP32 [1,16] echo that sleeps 2 ms per execute; dynamic "
      "batching in Triton and ngx_kserve via `dynamic_batching { }`, MLServer "
      "adaptive batching with max_batch_size 64, max_batch_time 1 ms). "
      "MLServer runs equivalent runtimes (bench/mlserver/runtimes.py), default "
      "settings otherwise (one inference worker process).")
    w("- Triton is the real `tritonserver` (%s) with its Python backend, "
      "as PyPI's nvidia-pytriton %s ships them (bench/setup.sh lays them out "
      "as pytriton does: the stub for this Python copied into "
      "`backends/python/`), run directly on bench/models, not through "
      "PyTriton's `Triton().bind()`. Its stub embeds Debian's libpython3.11 "
      "with Debian's numpy, like kserve-python-instance."
      % (versions.get("tritonserver", "?"), versions.get("nvidia-pytriton", "?")))
    w("- perf_analyzer: PyPI's `perf-analyzer` is only a 0.1.0 placeholder "
      "package here, so bench/setup.sh takes the `perf_analyzer` binary "
      "that the tritonclient 2.42.0 wheel bundles (libb64 from Debian, "
      "libcudart.so.12 from PyPI's nvidia-cuda-runtime-cu12; no GPU is "
      "touched).")
    w("- MLServer %s in its own venv, with uvloop < 0.22 (uvloop 0.22's "
      "`get_event_loop()` change kills MLServer 1.7's inference-pool "
      "workers at start). MLServer's REST API has no binary tensor "
      "extension: its binary rows are skipped below." % versions.get("mlserver", "?"))
    w("- Binary format: inputs as raw tensors with `binary_data_size`, "
      "`binary_data_output: true`; the nginx limit answers with a reply of "
      "the same size and header.")
    w("")

    g = goals(results, prof)
    if g:
        w("## Goals")
        w("")
        w("From the wrk table below, and from the CPU profile at the end. "
          "Everything here shares 2 cores with the load generator and with "
          "whatever else runs on the machine (see the load average above), "
          "so one wrk figure can move by tens of percent between runs; CPU "
          "time per request, measured by the profile, moves much less and "
          "is what decides throughput once the cores are saturated.")
        w("")
        w("| goal | measured | |")
        w("| --- | --- | --- |")
        L.extend(g)
        w("")
    if chart:
        w("## Throughput")
        w("")
        w("![throughput vs concurrency](%s)" % os.path.relpath(
            chart, os.path.dirname(os.path.abspath(out))))
        w("")

    def table(gen, title, intro):
        rows = [r for r in results if r["gen"] == gen]
        if not rows:
            return
        w("## " + title)
        w("")
        w(intro)
        w("")
        for m in models:
            for fmt in formats:
                sub = [r for r in rows if r["model"] == m and r["fmt"] == fmt]
                if not sub:
                    continue
                w("### %s, %s" % (m, fmt))
                w("")
                w("| c | system | infer/s | ×Triton | ×limit | p50 µs | ×Triton | ×limit "
                  "| p99 µs | ×Triton | ×limit | errors |")
                w("| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
                  "| ---: | ---: | ---: |")
                for c in concs:
                    tri = find(results, gen, "triton", m, fmt, c)
                    lim = find(results, gen, "nginx_return_200", m, fmt, c)
                    for s in SYSTEMS:
                        r = [x for x in sub if x["system"] == s and x["conc"] == c]
                        if not r:
                            continue
                        r = r[0]
                        if "rps" not in r:
                            w("| %d | %s | – | | | | | | | | | %s |"
                              % (c, LABELS[s], r["note"].replace("|", "/")))
                            continue
                        cells = []
                        for key in ("rps", "p50_us", "p99_us"):
                            v = r[key]
                            cells.append(("%.0f" % v) if key == "rps" else str(v))
                            cells.append(ratio(v, tri[key] if tri else None))
                            cells.append(ratio(v, lim[key] if lim else None))
                        w("| %d | %s | %s | %s |" % (c, LABELS[s], " | ".join(cells),
                                                    r["errors"]))
                w("")

    table("wrk", "Results: wrk (all systems)",
          "×Triton and ×limit divide each figure by Triton's and by nginx "
          "`return 200`'s at the same model, format and concurrency in this "
          "run (infer/s: higher is better; latencies: lower is better). The "
          "ZeroMQ echo row is the transport's own round trip, measured with "
          "its C client at the same number of requests in flight.")
    table("perf_analyzer", "Results: perf_analyzer",
          "Triton's own load generator, ratios to Triton as above. It needs "
          "Triton's `/v2/models/M/config`, which MLServer does not serve; "
          "against nginx `return 200` (even with static metadata, config "
          "and stats) it stops with `Timer not set correctly`, since nginx "
          "answers before it has read the request body, so there is no "
          "×limit here: compare with the wrk tables.")

    if notes:
        w("## Not measured, and why")
        w("")
        for n in notes:
            w("- " + n)
        w("")

    if prof:
        write_profile(w, prof)

    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out, "w") as f:
        f.write("\n".join(L))


if __name__ == "__main__":
    main()
