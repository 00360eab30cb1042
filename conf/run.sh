#!/usr/bin/env bash
# Runs the gateway in the foreground: redis-server, kserve-worker on
# conf/models, nginx on 127.0.0.1:8000.  Ctrl-C (or `conf/run.sh stop`
# from another shell) stops all three.
#
#   KSV_BUILD   build directory holding the binaries (default: build)
#   KSV_PORT    nginx port (default: 8000)
#   KSV_MODELS  model repository (default: conf/models)
#   KSV_WORKER_ARGS  more kserve-worker options, split on spaces (never
#               globbed: --load-model * arrives as written), e.g.
#               "--model-control-mode poll --repository-poll-secs 2";
#               `make run` passes "--model-control-mode explicit
#               --load-model *" so Triton's model-control clients work
set -euo pipefail

top=$(cd "$(dirname "$0")/.." && pwd)
build=$top/${KSV_BUILD:-build}
run=$build/run
port=${KSV_PORT:-8000}
models=$(cd "${KSV_MODELS:-$top/conf/models}" && pwd)
endpoint=ipc://$run/kserve.sock

stop() {
    local name pid
    for name in nginx worker redis; do
        [ -f "$run/$name.pid" ] || continue
        pid=$(cat "$run/$name.pid")
        kill "$pid" 2>/dev/null || true
    done
    for name in nginx worker redis; do
        [ -f "$run/$name.pid" ] || continue
        pid=$(cat "$run/$name.pid")
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null || true
        rm -f "$run/$name.pid"
    done
}

if [ "${1:-}" = stop ]; then
    stop
    exit 0
fi

stop
mkdir -p "$run"

redis-server --port 6379 --bind 127.0.0.1 --save '' --appendonly no \
    --daemonize no >"$run/redis.log" 2>&1 &
echo $! >"$run/redis.pid"

# split on spaces only, no globbing: "--load-model *" stays "*"
worker_args=()
if [ -n "${KSV_WORKER_ARGS:-}" ]; then
    set -f
    IFS=' ' read -r -a worker_args <<<"$KSV_WORKER_ARGS"
    set +f
fi

"$build/kserve-worker" --repository "$models" --listen "$endpoint" \
    --run-dir "$run/worker" ${worker_args[@]+"${worker_args[@]}"} \
    2>"$run/worker.log" &
echo $! >"$run/worker.pid"

user=""
[ "$(id -u)" = 0 ] && user="user root;"
sed -e "s|@MODULE@|$build/ngx_http_kserve_module.so|" \
    -e "s|@PREFIX@|$run|g" -e "s|@LISTEN@|127.0.0.1:$port|" \
    -e "s|@ENDPOINT@|$endpoint|" -e "s|@USER@|$user|" \
    "$top/conf/nginx.conf" >"$run/nginx.conf"
nginx -p "$run" -c "$run/nginx.conf" -e "$run/error.log" &
nginx_pid=$!
echo $nginx_pid >"$run/nginx.pid"

trap 'echo; echo stopping; stop; exit 0' INT TERM

for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/v2/health/ready" >/dev/null && break
    sleep 0.1
done

cat <<MSG
ngx_kserve is up on http://127.0.0.1:$port  (logs in $run)
try:
  curl -s -X POST http://127.0.0.1:$port/v2/models/simple/infer -d '{"inputs":[{"name":"INPUT0","shape":[1,16],"datatype":"INT32","data":[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16]},{"name":"INPUT1","shape":[1,16],"datatype":"INT32","data":[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]}]}'
routed (kserve_route fraud; X-KServe-Variant says which variant answered):
  curl -si -X POST http://127.0.0.1:$port/v2/models/fraud/infer -H 'X-User-Id: alice' -d '{"inputs":[{"name":"FEATURES","shape":[1,4],"datatype":"FP32","data":[1,2,3,10]}]}'
  redis-cli HSET kserve:route:fraud fraud_v1 50 fraud_v2 50; redis-cli HGETALL kserve:stats:fraud:fraud_v2
Ctrl-C (or make stop) stops redis, the worker and nginx.
MSG

wait "$nginx_pid" || true
stop
