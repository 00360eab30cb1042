#!/usr/bin/env bash
# digits_mlp (CUDA backend) against digits_mlp_py (numpy on the Python
# backend) through the gateway: infer/s (rows classified per second) at
# a few request batch sizes, JSON bodies, wrk at KSV_BENCH_CONNS
# connections, and each model's compute split (the instance's
# compute_input / compute_infer / compute_output, from the statistics
# extension) per executed batch.  Prints a Markdown table.
#
# Without a GPU digits_mlp runs its CPU entry point (the worker log says
# so); on a GPU machine the same script measures the GPU path, and
# KSV_REQUIRE_GPU=1 makes sure of it.
#
#   KSV_BENCH_SECONDS   seconds per point (default 5)
#   KSV_BENCH_CONNS     connections (default 8)
#   KSV_BENCH_BATCHES   rows per request (default "1 16 64 256")
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
secs=${KSV_BENCH_SECONDS:-5}
conns=${KSV_BENCH_CONNS:-8}
batches=${KSV_BENCH_BATCHES:-1 16 64 256}
port=${KSV_PORT:-18010}
dir=$(mktemp -d /tmp/ksv-cuda-bench.XXXXXX)
url=http://127.0.0.1:$port

cleanup() {
    KSV_BUILD=${KSV_BUILD:-build} KSV_PORT=$port "$top/conf/run.sh" stop \
        >/dev/null 2>&1 || true
}
trap cleanup EXIT

KSV_PORT=$port "$top/conf/run.sh" >"$dir/run.log" 2>&1 &
for m in digits_mlp digits_mlp_py; do
    for _ in $(seq 300); do
        curl -sf "$url/v2/models/$m/ready" >/dev/null && break
        sleep 0.1
    done
    curl -sf "$url/v2/models/$m/ready" >/dev/null \
        || { echo "$m not ready; see $dir/run.log" >&2; exit 1; }
done

# request bodies: the first rows of the held-out split, repeated
/usr/bin/python3 - "$top" "$dir" $batches <<'PY'
import json, os, sys
import numpy as np
top, out, sizes = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3:]]
x = np.load(os.path.join(top, "conf/models/digits_mlp/X_test.npy"))
for n in sizes:
    rows = np.resize(x, (n, 64)).astype(np.float32)
    body = {"inputs": [{"name": "INPUT0", "shape": [n, 64],
                        "datatype": "FP32",
                        "data": [float(v) for v in rows.ravel()]}]}
    with open(os.path.join(out, "body%d.json" % n), "w") as f:
        json.dump(body, f)
PY

# "count ns_input ns_infer ns_output" per model, summed over batches
stats() {
    curl -sf "$url/v2/models/$1/stats" | /usr/bin/python3 -c '
import json, sys
s = json.load(sys.stdin)["model_stats"][0]
print(s["execution_count"], s["inference_count"],
      *(sum(b[k]["ns"] for b in s["batch_stats"])
        for k in ("compute_input", "compute_infer", "compute_output")))'
}

echo "| rows/request | model | requests/s | infer/s (rows) | p50 ms | p99 ms | errors | rows/batch | input µs | infer µs | output µs |"
echo "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
for n in $batches; do
    for m in digits_mlp digits_mlp_py; do
        read -r e0 i0 a0 b0 c0 <<<"$(stats "$m")"
        read -r rps p50 p99 err <<<"$(KSV_BENCH_BODY=$dir/body$n.json \
            wrk -t2 -c"$conns" -d"${secs}s" -s "$top/bench/infer.lua" \
            "$url/v2/models/$m/infer" | sed -n \
            's/^KSV_RESULT rps=\([0-9.]*\) p50_us=\([0-9]*\) p99_us=\([0-9]*\) errors=\([0-9]*\).*/\1 \2 \3 \4/p')"
        read -r e1 i1 a1 b1 c1 <<<"$(stats "$m")"
        awk -v n="$n" -v m="$m" -v rps="$rps" -v p50="$p50" -v p99="$p99" \
            -v err="$err" -v e="$((e1 - e0))" -v i="$((i1 - i0))" \
            -v a="$((a1 - a0))" -v b="$((b1 - b0))" -v c="$((c1 - c0))" \
            'BEGIN { e = e ? e : 1;
                     printf "| %d | %s | %.0f | %.0f | %.2f | %.2f | %d | %.1f | %.1f | %.1f | %.1f |\n",
                            n, m, rps, rps * n, p50 / 1000, p99 / 1000, err,
                            i / e, a / e / 1000, b / e / 1000, c / e / 1000 }'
    done
done
grep -h "kserve-cuda-instance: digits_mlp" "$dir/run.log" | head -3 | sed 's/^/# /'
