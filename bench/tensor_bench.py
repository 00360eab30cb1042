#!/usr/bin/env python3
"""Round trip of one FP32 tensor through identity_fp32: binary tensor
data against JSON, against a plain memcpy and nginx serving the same
bytes as a static file, in the same run (issue 5, "Measure").

Starts its own kserve-worker and nginx (build/ by default, KSV_BUILD to
change) on loopback:
  - port A: client_body_buffer_size 64k, so big bodies are spooled to a
    temporary file (the module mmap()s it);
  - port B: client_body_buffer_size 512m, so bodies stay in memory (the
    module takes nginx's buffer over).

MB/s is the tensor's size over the round trip's wall time (request sent,
reply read; the client's own encoding is excluded, its decoding of the
reply is not needed and not done).  Usage:

  .venv/bin/python bench/tensor_bench.py [--sizes 1,16,64] [--repeat 3]
"""

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np
import requests

from ksv_bench import BUILD, TOP, free_port, stop_proc, user_directive

CONF = """
load_module {build}/ngx_http_kserve_module.so;
worker_processes 1;
daemon off;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;
{user}
events {{ worker_connections 256; }}
http {{
    access_log off;
    sendfile on;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 0;
    server {{
        listen 127.0.0.1:{port_file};
        client_body_buffer_size 64k;
        location /v2 {{
            kserve_pass {endpoint};
            kserve_max_body_size 1024m;
            kserve_timeout 120s;
        }}
        location /static/ {{ root {dir}; }}
    }}
    server {{
        listen 127.0.0.1:{port_mem};
        client_body_buffer_size 512m;
        location /v2 {{
            kserve_pass {endpoint};
            kserve_max_body_size 1024m;
            kserve_timeout 120s;
        }}
    }}
}}
"""


def best(fn, repeat):
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return min(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="1,16,64")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--no-json", action="store_true")
    args = ap.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    work = tempfile.mkdtemp(prefix="ksv-bench-")
    repo = os.path.join(work, "models")
    os.makedirs(repo)
    os.makedirs(os.path.join(work, "static"))
    os.symlink(os.path.join(TOP, "conf/models/identity_fp32"),
               os.path.join(repo, "identity_fp32"))
    endpoint = "ipc://%s/kserve.sock" % work
    pf, pm = free_port(), free_port()
    with open(os.path.join(work, "nginx.conf"), "w") as f:
        f.write(CONF.format(build=BUILD, dir=work, port_file=pf, port_mem=pm,
                            endpoint=endpoint,
                            user=user_directive()))
    procs = [subprocess.Popen(
        [os.path.join(BUILD, "kserve-worker"), "--repository", repo,
         "--listen", endpoint, "--run-dir", os.path.join(work, "run")],
        stdout=subprocess.DEVNULL,
        stderr=open(os.path.join(work, "worker.log"), "w"))]
    procs.append(subprocess.Popen(
        ["nginx", "-p", work, "-c", os.path.join(work, "nginx.conf"),
         "-e", os.path.join(work, "error.log")]))
    url_f = "http://127.0.0.1:%d" % pf
    url_m = "http://127.0.0.1:%d" % pm
    try:
        for _ in range(300):
            try:
                if requests.get(url_f + "/v2/models/identity_fp32/ready",
                                timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.1)
        else:
            sys.exit("identity_fp32 never became ready")

        s = requests.Session()
        print("| tensor | memcpy | static file (GET) | binary, spooled "
              "| binary, in memory | JSON |")
        print("| --- | --- | --- | --- | --- | --- |")
        for mb in sizes:
            n = mb * 262144
            x = np.random.default_rng(mb).random(n, dtype=np.float32)
            raw = x.tobytes()
            nbytes = len(raw)

            dst = np.empty_like(x)
            t_copy = best(lambda: np.copyto(dst, x), args.repeat * 3)

            with open(os.path.join(work, "static", "t%d" % mb), "wb") as f:
                f.write(raw)
            t_static = best(lambda: s.get(
                "%s/static/t%d" % (url_f, mb)).content, args.repeat)

            hdr = json.dumps({
                "inputs": [{"name": "INPUT0", "shape": [1, n],
                            "datatype": "FP32",
                            "parameters": {"binary_data_size": nbytes}}],
                "outputs": [{"name": "OUTPUT0",
                             "parameters": {"binary_data": True}}]}).encode()
            body = hdr + raw
            headers = {"Inference-Header-Content-Length": str(len(hdr))}

            def binary(url):
                r = s.post(url + "/v2/models/identity_fp32/infer",
                           data=body, headers=headers)
                assert r.status_code == 200, r.text[:200]
                hl = int(r.headers["Inference-Header-Content-Length"])
                assert len(r.content) - hl == nbytes

            t_bf = best(lambda: binary(url_f), args.repeat)
            t_bm = best(lambda: binary(url_m), args.repeat)

            t_json = None
            if not args.no_json:
                jbody = json.dumps({"inputs": [
                    {"name": "INPUT0", "shape": [1, n], "datatype": "FP32",
                     "data": x.tolist()}]}).encode()

                def as_json():
                    r = s.post(url_m + "/v2/models/identity_fp32/infer",
                               data=jbody)
                    assert r.status_code == 200, r.text[:200]

                t_json = best(as_json, max(1, args.repeat - 1))

            def rate(t):
                return "%.0f MB/s" % (nbytes / 1e6 / t)

            print("| %d MB | %s | %s | %s (%.1f ms) | %s (%.1f ms) | %s |" % (
                mb, rate(t_copy), rate(t_static), rate(t_bf), t_bf * 1e3,
                rate(t_bm), t_bm * 1e3,
                "%s (%.0f ms, %.0f MB of JSON)" % (
                    rate(t_json), t_json * 1e3, len(jbody) / 1e6)
                if t_json else "-"))
    finally:
        for p in reversed(procs):
            stop_proc(p, wait=15)
        with open(os.path.join(work, "error.log"), errors="replace") as f:
            problems = [l for l in f if "[alert]" in l or "[crit]" in l
                        or "[emerg]" in l]
        if problems:
            print("nginx error log:\n" + "".join(problems[:10]))
        else:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
