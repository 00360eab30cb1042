#!/usr/bin/env python3
"""16 MB FP32 round trips through identity_fp32: system shared memory vs
binary HTTP, in the same run.

Starts kserve-worker on bench/models and nginx with conf/nginx.conf (what
`make run` starts, kserve_shared_memory on) in a private directory, then
for --secs each, one client at a time on one keep-alive connection:

  binary HTTP   the 16 MiB input as binary tensor data in the request
                body, the output as binary data in the answer (Triton's
                binary extension), parsed into a numpy array
  system shm    the input written into a registered region, the output
                read back from another (the request and the answer are a
                few hundred bytes of JSON); the instances are on ipc://,
                so the instance maps the regions itself (the direct path,
                docs/protocol.md)

Both sides do what a client must: build the input (one copy into the
body or into the region) and get the output into an array it owns (one
copy out of the body or out of the region).  MB/s counts the tensor
bytes moved both ways, 2 x 16 MiB per round trip.  Then, when
build/bench/perf_analyzer is there (bench/setup.sh), perf_analyzer
drives the same model both ways (`--shared-memory system` and plain
binary HTTP) at concurrency 1.

    python3 bench/shm.py [--secs 10] [--out docs/benchmarks-shm.md]
"""

import argparse
import datetime
import glob
import http.client
import json
import mmap
import os
import shutil
import subprocess
import tempfile
import time

import numpy as np

from ksv_bench import (TOP, copy_binaries, fill_nginx_conf, free_port,
                       make_log, start_nginx, start_worker, stop_proc,
                       wait_ready)

log = make_log("shm")

MODEL = "identity_fp32"
ELEMENTS = 4 * 1024 * 1024              # 16 MiB of FP32
NBYTES = ELEMENTS * 4
TOOLS = os.path.join(TOP, "build", "bench")


def region(name, size):
    """A POSIX shm object /<name> of size bytes, mapped: (path, mmap)."""
    path = "/dev/shm/" + name
    fd = os.open(path, os.O_CREAT | os.O_RDWR | os.O_TRUNC, 0o600)
    os.ftruncate(fd, size)
    m = mmap.mmap(fd, size)
    os.close(fd)
    return path, m


def call(conn, method, path, body=None, headers=None):
    conn.request(method, path, body=body, headers=headers or {})
    r = conn.getresponse()
    data = r.read()
    if r.status != 200:
        raise RuntimeError("%s %s: %d %s" % (method, path, r.status,
                                             data[:200]))
    return r, data


def binary_round_trips(conn, x, secs):
    header = json.dumps({
        "inputs": [{"name": "INPUT0", "shape": [1, ELEMENTS],
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": NBYTES}}],
        "outputs": [{"name": "OUTPUT0",
                     "parameters": {"binary_data": True}}]}).encode()
    hdrs = {"Inference-Header-Content-Length": str(len(header)),
            "Content-Type": "application/octet-stream"}
    n, t0 = 0, time.monotonic()
    while time.monotonic() - t0 < secs:
        body = header + x.tobytes()                     # the copy in
        r, data = call(conn, "POST", "/v2/models/%s/infer" % MODEL, body,
                       hdrs)
        hlen = int(r.getheader("Inference-Header-Content-Length"))
        y = np.frombuffer(data, np.float32, offset=hlen).copy()  # out
        n += 1
    elapsed = time.monotonic() - t0
    assert y.shape == (ELEMENTS,) and y[12345] == x[0, 12345]
    return n, elapsed


def shm_round_trips(conn, x, secs, tag):
    in_path, in_map = region("ksv_bench_%s_in" % tag, NBYTES)
    out_path, out_map = region("ksv_bench_%s_out" % tag, NBYTES)
    try:
        for name, path in (("bench_in", in_path), ("bench_out", out_path)):
            call(conn, "POST",
                 "/v2/systemsharedmemory/region/%s/register" % name,
                 json.dumps({"key": path[len("/dev/shm"):], "offset": 0,
                             "byte_size": NBYTES}))
        body = json.dumps({
            "inputs": [{"name": "INPUT0", "shape": [1, ELEMENTS],
                        "datatype": "FP32",
                        "parameters": {"shared_memory_region": "bench_in",
                                       "shared_memory_byte_size": NBYTES}}],
            "outputs": [{"name": "OUTPUT0",
                         "parameters": {"shared_memory_region": "bench_out",
                                        "shared_memory_byte_size": NBYTES}}]
        }).encode()
        xin = np.frombuffer(in_map, np.float32)
        xout = np.frombuffer(out_map, np.float32)
        n, t0 = 0, time.monotonic()
        while time.monotonic() - t0 < secs:
            xin[:] = x.ravel()                          # the copy in
            call(conn, "POST", "/v2/models/%s/infer" % MODEL, body)
            y = xout.copy()                             # the copy out
            n += 1
        elapsed = time.monotonic() - t0
        assert y[12345] == x[0, 12345]
        del xin, xout
        call(conn, "POST", "/v2/systemsharedmemory/unregister")
        return n, elapsed
    finally:
        in_map.close()
        out_map.close()
        os.unlink(in_path)
        os.unlink(out_path)


def perf_analyzer(port, shared, secs):
    pa = os.path.join(TOOLS, "perf_analyzer")
    if not os.access(pa, os.X_OK):
        return None, "build/bench/perf_analyzer not installed"
    env = dict(os.environ)
    libs = glob.glob(os.path.join(TOOLS, "venv-triton", "lib", "python*",
                                  "site-packages", "nvidia", "cuda_runtime",
                                  "lib")) + [os.path.join(TOOLS, "lib")]
    env["LD_LIBRARY_PATH"] = ":".join(libs + [env.get("LD_LIBRARY_PATH",
                                                      "")])
    csv = tempfile.mktemp(suffix=".csv")
    cmd = [pa, "-m", MODEL, "-u", "127.0.0.1:%d" % port, "-i", "http",
           "--shape", "INPUT0:%d" % ELEMENTS, "--concurrency-range", "1",
           "-p", str(int(secs * 1000 / 3)), "-r", "6", "-s", "50",
           "-f", csv]
    if shared:
        cmd += ["--shared-memory", "system",
                "--output-shared-memory-size", str(NBYTES)]
    else:
        cmd += ["--input-tensor-format", "binary",
                "--output-tensor-format", "binary"]
    log("perf_analyzer %s" % ("--shared-memory system" if shared
                              else "binary"))
    p = subprocess.run(cmd, env=env, capture_output=True, text=True,
                       timeout=secs * 6 + 60)
    if p.returncode != 0 or not os.path.exists(csv):
        lines = [l for l in (p.stdout + p.stderr).splitlines() if l.strip()]
        return None, (lines[-1] if lines else "failed")[:200]
    with open(csv) as f:
        rows = [l.strip().split(",") for l in f if l.strip()]
    os.unlink(csv)
    row = dict(zip(rows[0], rows[1]))
    return float(row["Inferences/Second"]), " ".join(cmd[cmd.index("-f") + 2:])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--secs", type=float, default=10)
    ap.add_argument("--out", default=os.path.join(TOP, "docs",
                                                  "benchmarks-shm.md"))
    args = ap.parse_args()

    work = tempfile.mkdtemp(prefix="ksv-shm-")
    port = free_port()
    endpoint = "ipc://%s/kserve.sock" % work
    bindir = os.path.join(work, "bin")
    copy_binaries(bindir)
    procs = [start_worker(bindir, os.path.join(TOP, "bench", "models"),
                          endpoint, work)]
    with open(os.path.join(TOP, "conf", "nginx.conf")) as f:
        conf = fill_nginx_conf(f.read(), os.path.join(
            bindir, "ngx_http_kserve_module.so"), work,
            "127.0.0.1:%d" % port, endpoint)
    procs.append(start_nginx(work, conf))
    rows = []
    try:
        wait_ready(["http://127.0.0.1:%d/v2/models/%s/ready" % (port, MODEL)],
                   procs[-1], 60)
        x = np.random.default_rng(1).random((1, ELEMENTS), np.float32)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
        # warm up both paths (first mappings, page faults, allocations)
        binary_round_trips(conn, x, 1)
        shm_round_trips(conn, x, 1, "warm%d" % os.getpid())

        log("binary HTTP, %g s" % args.secs)
        nb, tb = binary_round_trips(conn, x, args.secs)
        log("system shared memory, %g s" % args.secs)
        ns, ts = shm_round_trips(conn, x, args.secs, "run%d" % os.getpid())
        conn.close()
        mb = 2 * NBYTES / 1e6
        rows.append(("Python client (http.client + numpy)", "binary HTTP",
                     nb / tb, mb * nb / tb, "%d in %.1f s" % (nb, tb)))
        rows.append(("Python client (http.client + numpy)",
                     "system shared memory", ns / ts, mb * ns / ts,
                     "%d in %.1f s" % (ns, ts)))

        for shared in (False, True):
            rps, how = perf_analyzer(port, shared, args.secs)
            rows.append(("perf_analyzer 2.42.0, c=1",
                         "system shared memory" if shared else "binary HTTP",
                         rps, mb * rps if rps else None, how))
    finally:
        for p in reversed(procs):
            stop_proc(p)
        shutil.rmtree(work, ignore_errors=True)

    with open(args.out, "w") as f:
        w = lambda s="": f.write(s + "\n")
        w("# Benchmarks: system shared memory vs binary HTTP")
        w()
        w("Written by `python3 bench/shm.py --secs %g` (also the last step "
          "of `make bench`) on %s, %s, %d CPUs." % (
              args.secs, datetime.date.today().isoformat(),
              os.uname().machine, os.cpu_count()))
        w()
        w("16 MiB of FP32 (`[1, 4194304]`) through `identity_fp32` (Python "
          "backend, bench/models) and back, one request at a time, nginx "
          "with conf/nginx.conf and its instances on ipc:// (so the "
          "instance maps the client's regions: the direct path of "
          "docs/protocol.md). MB/s counts the tensor bytes both ways "
          "(2 × 16.8 MB per round trip). The Python client's loop "
          "includes one copy of the input in (into the body, or into the "
          "region) and one copy of the output out (from the answer, or "
          "from the region) per round trip.")
        w()
        w("perf_analyzer: `perf_analyzer -m identity_fp32 -i http --shape "
          "INPUT0:4194304 --concurrency-range 1 -p %d -r 6 -s 50` plus the "
          "flags in the notes." % int(args.secs * 1000 / 3))
        w()
        w("| client | tensors via | round trips/s | MB/s | notes |")
        w("| --- | --- | ---: | ---: | --- |")
        for client, via, rps, mbs, note in rows:
            w("| %s | %s | %s | %s | %s |" % (
                client, via, "%.1f" % rps if rps else "—",
                "%.0f" % mbs if mbs else "—",
                note.replace("|", "\\|")))
        w()
    log("wrote %s" % args.out)
    for r in rows:
        log("%s / %s: %s rps, %s MB/s" % (r[0], r[1], r[2], r[3]))


if __name__ == "__main__":
    main()
