#!/usr/bin/env bash
# Installs what `make bench` compares against, under build/bench/ (never
# committed), each step skipped when its stamp is there:
#
#   venv-triton/     nvidia-pytriton (the tritonserver binary, its Python
#                    backend and the per-Python-version stubs), numpy < 2,
#                    nvidia-cuda-runtime-cu12 (libcudart.so.12 for
#                    perf_analyzer; no GPU is used)
#   tritonserver/    pytriton's server laid out as a plain Triton install:
#                    bin/, backends/python/ with the stub for this Python
#   perf_analyzer    Triton's load generator: PyPI's `perf-analyzer` is a
#                    0.1.0 placeholder here, so it comes from the last
#                    tritonclient wheel that bundles it (2.42.0)
#   venv-mlserver/   Seldon MLServer, in its own venv (its pins differ)
#   zmq_echo         bench/zmq_echo.c, the ZeroMQ round-trip ceiling
#
# Debian packages: wrk, python3-matplotlib (the chart), libb64-0d
# (perf_analyzer), linux-perf (the profile).
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
dir=$top/build/bench
py=/usr/bin/python3
mkdir -p "$dir"

missing=""
for p in wrk python3-matplotlib libb64-0d linux-perf; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' \
        || missing="$missing $p"
done
if [ -n "$missing" ]; then
    echo "installing:$missing"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $missing >/dev/null
fi

if [ ! -f "$dir/venv-triton/.installed" ]; then
    echo "installing nvidia-pytriton into $dir/venv-triton"
    rm -rf "$dir/venv-triton"
    $py -m venv "$dir/venv-triton"
    "$dir/venv-triton/bin/pip" install -q 'numpy<2' nvidia-pytriton \
        nvidia-cuda-runtime-cu12
    touch "$dir/venv-triton/.installed"
fi

site=$("$dir/venv-triton/bin/python" -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
pyver=$($py -c 'import sys; print("%d.%d" % sys.version_info[:2])')
if [ ! -x "$dir/tritonserver/backends/python/triton_python_backend_stub" ]; then
    # what pytriton itself does before it starts the server
    rm -rf "$dir/tritonserver"
    cp -r "$site/pytriton/tritonserver" "$dir/tritonserver"
    rm -rf "$dir/tritonserver/python_backend_stubs"
    cp "$site/pytriton/tritonserver/python_backend_stubs/$pyver/triton_python_backend_stub" \
       "$dir/tritonserver/backends/python/"
fi

if [ ! -x "$dir/perf_analyzer" ]; then
    echo "fetching perf_analyzer (tritonclient 2.42.0 wheel)"
    rm -rf "$dir/wheels"
    "$dir/venv-triton/bin/pip" download -q --no-deps -d "$dir/wheels" \
        'tritonclient==2.42.0'
    $py - "$dir" <<'PY'
import glob, os, sys, zipfile
d = sys.argv[1]
z = zipfile.ZipFile(glob.glob(os.path.join(d, "wheels", "tritonclient-*.whl"))[0])
name = [n for n in z.namelist() if n.endswith("/bin/perf_analyzer")][0]
with z.open(name) as src, open(os.path.join(d, "perf_analyzer"), "wb") as dst:
    dst.write(src.read())
os.chmod(os.path.join(d, "perf_analyzer"), 0o755)
PY
    rm -rf "$dir/wheels"
fi

if [ ! -f "$dir/venv-mlserver/.installed" ]; then
    echo "installing mlserver into $dir/venv-mlserver"
    rm -rf "$dir/venv-mlserver"
    $py -m venv "$dir/venv-mlserver"
    # uvloop 0.22 made asyncio.get_event_loop() raise outside a loop, which
    # kills mlserver 1.7's inference pool workers at start
    "$dir/venv-mlserver/bin/pip" install -q mlserver 'uvloop<0.22'
    touch "$dir/venv-mlserver/.installed"
fi

if [ ! -x "$dir/zmq_echo" ] || [ "$top/bench/zmq_echo.c" -nt "$dir/zmq_echo" ]; then
    gcc -O2 -Wall -Wextra -Werror -o "$dir/zmq_echo" "$top/bench/zmq_echo.c" -lzmq
fi
