"""Helpers shared by the bench/ scripts (bench.py, batching.py, routing.py,
tensor_bench.py): ports, a tiny HTTP client, process bookkeeping through
/proc, wrk runs, and starting kserve-worker + nginx in a private run
directory.

The scripts run as `python3 bench/X.py`, which puts bench/ first on
sys.path, so a plain `import ksv_bench` finds this file.
"""

import glob
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), ".."))
BUILD = os.path.join(TOP, os.environ.get("KSV_BUILD", "build"))

# the summary line bench/infer.lua (and bench/zmq_echo) print at the end
RESULT_RE = re.compile(r"KSV_RESULT rps=([0-9.]+) p50_us=(\d+) p99_us=(\d+) "
                       r"errors=(\d+)(?: requests=(\d+))?")

# what a gateway run directory gets from BUILD
GATEWAY_BINARIES = ("kserve-worker", "kserve-python-instance",
                    "ngx_http_kserve_module.so")


# ---- small things -----------------------------------------------------------

def make_log(tag, stderr=True):
    """-> log(*args): prints "[tag HH:MM:SS] args..." to stderr (or stdout),
    flushed."""
    def log(*args):
        print("[%s %s]" % (tag, time.strftime("%H:%M:%S")), *args,
              file=sys.stderr if stderr else None, flush=True)
    return log


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http(method, url, body=None, headers=None, timeout=5):
    """-> (status, headers, body bytes); status 0 when nothing answered."""
    req = urllib.request.Request(url, data=body, method=method,
                                 headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()
    except (urllib.error.URLError, OSError) as e:
        return 0, {}, str(e).encode()


def sh(cmd, timeout=None):
    """stdout of a shell command, stripped; "" when it could not run."""
    try:
        return subprocess.run(cmd, shell=True, capture_output=True,
                              text=True, timeout=timeout).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def user_directive():
    """nginx's `user root;` when running as root (its workers would
    otherwise drop to nobody and lose the run directory), else ""."""
    return "user root;" if os.getuid() == 0 else ""


# ---- processes --------------------------------------------------------------

def stop_proc(proc, sig=signal.SIGTERM, wait=20):
    """Send sig, wait up to `wait` seconds, then SIGKILL.  None or an
    already finished process is left alone."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(sig)
    try:
        proc.wait(wait)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stat_fields(pid):
    """/proc/PID/stat after the command name: fields[1] is the parent,
    fields[11] and [12] user and system CPU in clock ticks."""
    with open("/proc/%s/stat" % pid) as f:
        return f.read().rsplit(")", 1)[1].split()


def children(pid):
    """pids whose parent is pid."""
    out = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        child = stat.split("/")[2]
        try:
            if int(_stat_fields(child)[1]) == pid:
                out.append(int(child))
        except (OSError, ValueError, IndexError):
            continue
    return out


CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pids):
    """user + system CPU seconds of these processes (threads included);
    a process gone already counts 0."""
    total = 0
    for pid in pids:
        try:
            fields = _stat_fields(pid)
        except OSError:
            continue
        total += int(fields[11]) + int(fields[12])
    return total / CLK_TCK


def wait_ready(urls, procs, seconds, work=None):
    """Poll each url until it answers 200, within `seconds` in all.

    procs: one Popen (or None), or {name: Popen}; RuntimeError as soon as
    one of them has exited ("exited with status N", or "NAME exited (N);
    see WORK" for a dict) or when the time is up."""
    deadline = time.time() + seconds
    for url in urls:
        while True:
            if isinstance(procs, dict):
                for name, p in procs.items():
                    if p.poll() is not None:
                        raise RuntimeError("%s exited (%d); see %s" % (
                            name, p.returncode, work))
            elif procs is not None and procs.poll() is not None:
                raise RuntimeError("exited with status %d" % procs.returncode)
            if http("GET", url, timeout=1)[0] == 200:
                break
            if time.time() > deadline:
                raise RuntimeError("not ready after %d s: %s" % (seconds, url))
            time.sleep(0.2)


# ---- wrk ----------------------------------------------------------------------

def parse_result(out):
    """A KSV_RESULT line -> {rps, p50_us, p99_us, errors, requests}, or
    None when there is none."""
    m = RESULT_RE.search(out or "")
    if not m:
        return None
    return {"rps": float(m.group(1)), "p50_us": int(m.group(2)),
            "p99_us": int(m.group(3)), "errors": int(m.group(4)),
            "requests": int(m.group(5) or 0)}


def run_wrk(url, body_path, conc, secs, threads=2, hlen=None):
    """wrk with bench/infer.lua POSTing the file body_path (binary tensor
    data after a JSON header of hlen bytes when hlen is not None).

    -> (result of parse_result, or None, and wrk's output to explain it)."""
    env = dict(os.environ, KSV_BENCH_BODY=body_path,
               KSV_BENCH_HEADER_LEN="" if hlen is None else str(hlen))
    cmd = ["wrk", "-t%d" % min(threads, conc), "-c%d" % conc, "-d%gs" % secs,
           "--timeout", "10s", "-s", os.path.join(TOP, "bench", "infer.lua"),
           url]
    p = subprocess.run(cmd, env=env, capture_output=True, text=True,
                       timeout=secs + 30)
    return parse_result(p.stdout), (p.stderr or p.stdout).strip()


# ---- the gateway: kserve-worker + nginx ---------------------------------------

def copy_binaries(bindir):
    """Private copies of GATEWAY_BINARIES in bindir: a rebuild overwrites
    the .so in place (same inode), which crashes every nginx that has it
    mapped."""
    os.makedirs(bindir, exist_ok=True)
    for f in GATEWAY_BINARIES:
        path = os.path.join(BUILD, f)
        if not os.path.exists(path):
            raise RuntimeError("%s missing: run make" % path)
        shutil.copy2(path, bindir)


def start_worker(bindir, repo, endpoint, work, extra=()):
    """kserve-worker (copied into bindir) on repo, listening on endpoint,
    run directory work/worker, output to work/worker.log."""
    wlog = open(os.path.join(work, "worker.log"), "w")
    return subprocess.Popen(
        [os.path.join(bindir, "kserve-worker"), "--repository", repo,
         "--listen", endpoint,
         "--run-dir", os.path.join(work, "worker"),
         "--python-instance", os.path.join(bindir, "kserve-python-instance"),
         "--python-utils", os.path.join(TOP, "backends", "python")]
        + list(extra),
        stdout=wlog, stderr=wlog)


def fill_nginx_conf(conf, module, prefix, listen, endpoint):
    """conf/nginx.conf's text with its @PLACEHOLDERS@ filled in as
    conf/run.sh does; RuntimeError if one is left."""
    conf = (conf.replace("@MODULE@", module)
            .replace("@PREFIX@", prefix)
            .replace("@LISTEN@", listen)
            .replace("@ENDPOINT@", endpoint)
            .replace("@USER@", user_directive()))
    left = re.findall(r"@[A-Z_]+@", conf)
    if left:
        raise RuntimeError("conf/nginx.conf: unknown placeholders %s" % left)
    return conf


def start_nginx(prefix, conf_text, env=None):
    """Write prefix/nginx.conf and start nginx on it in the foreground
    (the conf says `daemon off`), error log prefix/error.log, its own
    stderr to prefix/nginx.out."""
    conf = os.path.join(prefix, "nginx.conf")
    with open(conf, "w") as f:
        f.write(conf_text)
    return subprocess.Popen(
        ["nginx", "-p", prefix, "-c", conf,
         "-e", os.path.join(prefix, "error.log")], env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(prefix, "nginx.out"), "w"))
