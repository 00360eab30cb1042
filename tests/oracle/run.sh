#!/usr/bin/env bash
# The Triton HTTP oracle: Triton's own Python HTTP client examples and its
# qa/L0_http tests, run unmodified except the URL against this gateway
# (nginx + kserve-worker + redis, configured from conf/nginx.conf) with
# the models of tests/oracle/models/ (ours: Python-backend models with
# the I/O the tests expect).  Prints PASS / FAIL / SKIP per test.
#
# The Triton files are NOT in this repository and must never be
# committed: fetch them yourself (triton-inference-server/client and
# /server) and lay them out as
#
#   FETCHED/src/python/examples/*.py      (client repository)
#   FETCHED/qa/L0_http/ FETCHED/qa/common/ FETCHED/qa/images/   (server)
#
# e.g. from bare clones:
#   git -C client.git archive HEAD src/python/examples | tar x -C FETCHED
#   git -C server.git archive HEAD qa/L0_http qa/common qa/images \
#       | tar x -C FETCHED
#
# Usage (Python packages: tests/oracle/requirements.txt into .venv):
#   tests/oracle/run.sh FETCHED [OUT]
#     KSV_BUILD=build-x   build directory with the binaries (default build;
#                         relative to this checkout, or absolute)
#     ORACLE_CONF=FILE    nginx.conf template (default conf/nginx.conf of this
#                         checkout; another branch's to preview it with its build)
#     ORACLE_ONLY=REGEX   run only the groups whose name matches
#                         (groups: examples curl plugin auth aio control
#                         http_test generate size64 size128 chunks)
#     ORACLE_BIG=1        also run http_test's test_loading_large_invalid_model
#                         (builds a 2.9 GB request: ~11 GB of client RAM)
#   OUT (default /tmp/ksv-oracle.PID) receives a copy of the tests with
#   the URL rewritten (work/), one log per test (logs/), the gateways'
#   logs (gw-*/) and results.tsv (name, PASS|FAIL|SKIP, first line of the
#   failure).  The gateway listens on a free 127.0.0.1 port; every
#   "localhost:8000" in the copies becomes 127.0.0.1:PORT and the
#   examples get -u 127.0.0.1:PORT.  Exit status: 0 when nothing failed.
set -uo pipefail

top=$(cd "$(dirname "$0")/../.." && pwd)
here=$top/tests/oracle
[ $# -ge 1 ] || { sed -n '2,35p' "$0"; exit 2; }
fetched=$(cd "$1" && pwd)
out=${2:-/tmp/ksv-oracle.$$}
mkdir -p "$out" && out=$(cd "$out" && pwd)
build=${KSV_BUILD:-build}
[[ $build = /* ]] || build=$top/$build
conf=${ORACLE_CONF:-$top/conf/nginx.conf}
py=${ORACLE_PYTHON:-$top/.venv/bin/python}
only=${ORACLE_ONLY:-.}
tsv=$out/results.tsv
logs=$out/logs
work=$out/work
: >"$tsv"
mkdir -p "$logs"

for d in src/python/examples qa/L0_http qa/common; do
    [ -d "$fetched/$d" ] || { echo "missing $fetched/$d" >&2; exit 2; }
done
"$py" -c 'import importlib.util as u, tritonclient.http, tritonclient.grpc, sseclient, psutil, PIL; assert u.find_spec("attrdict")' 2>/dev/null || {
    echo "missing Python packages: $py -m pip install -r tests/oracle/requirements.txt" >&2; exit 2; }
for f in kserve-worker ngx_http_kserve_module.so; do
    [ -e "$build/$f" ] || { echo "missing $build/$f (make BUILD=...)" >&2; exit 2; }
done

free_port() {
    "$py" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

port=$(free_port)
url=127.0.0.1:$port

# --- the copy of the tests, URL rewritten ---------------------------------
rm -rf "$work"
mkdir -p "$work/qa" "$work/clients"
cp -r "$fetched/qa/L0_http" "$fetched/qa/common" "$work/qa/"
[ -d "$fetched/qa/images" ] && cp -r "$fetched/qa/images" "$work/qa/"
cp "$fetched"/src/python/examples/*.py "$work/clients/"
sed -i "s/localhost:8000/$url/g" "$work"/qa/L0_http/*.py "$work"/clients/*.py
sed -i "s/self._http_port = 8000\$/self._http_port = $port/" \
    "$work/qa/L0_http/http_request_many_chunks.py"

record() {  # name status detail
    printf '%s\t%s\t%s\n' "$1" "$2" "$(printf '%s' "$3" | tr '\t\n' '  ' | cut -c1-400)" >>"$tsv"
}

want() { [[ $1 =~ $only ]]; }

# --- the gateway ----------------------------------------------------------
gw=""
rport=""
gw_start() {  # phase body-limit worker-args model...
    local phase=$1 body=$2 wargs=$3 m user="" i ready
    shift 3
    gw=$out/gw-$phase
    rm -rf "$gw"
    mkdir -p "$gw/models"
    for m; do
        if [ -d "$here/models/$m" ]; then
            cp -rL "$here/models/$m" "$gw/models/"
        else
            cp -rL "$top/conf/models/$m" "$gw/models/"
        fi
    done
    rport=$(free_port)
    redis-server --port "$rport" --bind 127.0.0.1 --save '' --appendonly no \
        --daemonize no >"$gw/redis.log" 2>&1 &
    echo $! >"$gw/redis.pid"
    set -f    # "--load-model *" arrives as written
    # shellcheck disable=SC2086
    "$build/kserve-worker" --repository "$gw/models" \
        --listen "ipc://$gw/kserve.sock" --run-dir "$gw/worker" $wargs \
        2>"$gw/worker.log" &
    echo $! >"$gw/worker.pid"
    set +f
    [ "$(id -u)" = 0 ] && user="user root;"
    # make run's configuration, with one nginx worker (the chunk test
    # watches its RSS), our redis port, no demo route, the phase's limit
    sed -e "s|@MODULE@|$build/ngx_http_kserve_module.so|" \
        -e "s|@PREFIX@|$gw|g" -e "s|@LISTEN@|$url|" \
        -e "s|@ENDPOINT@|ipc://$gw/kserve.sock|" -e "s|@USER@|$user|" \
        -e 's/^worker_processes .*/worker_processes  1;/' \
        -e "s/127\\.0\\.0\\.1:6379/127.0.0.1:$rport/" \
        -e '/^    kserve_route fraud {/,/^    }/d' \
        -e "s/^\\( *\\)client_max_body_size .*/\\1client_max_body_size    $body;/" \
        -e "s/^\\( *\\)kserve_max_body_size .*/\\1kserve_max_body_size   $body;/" \
        "$conf" >"$gw/nginx.conf"
    nginx -p "$gw" -c "$gw/nginx.conf" -e "$gw/error.log" &
    echo $! >"$gw/nginx.pid.master"
    for i in $(seq 150); do
        curl -sf "http://$url/v2/health/live" >/dev/null && break
        sleep 0.2
    done
    # explicit mode without --load-model: nothing to wait for
    if [[ $wargs != *explicit* || $wargs == *--load-model* ]]; then
        deadline=$((SECONDS + 90))
        for m; do
            while [ $SECONDS -lt $deadline ]; do
                curl -sf "http://$url/v2/models/$m/ready" >/dev/null && break
                sleep 0.2
            done
        done
    fi
    ready=""
    for m; do
        curl -sf "http://$url/v2/models/$m/ready" >/dev/null \
            && ready="$ready $m" || ready="$ready !$m"
    done
    echo "== gateway $phase on $url (ready:$ready)"
}

nginx_worker_pid() {
    pgrep -P "$(cat "$gw/nginx.pid.master")" | head -1
}

gw_stop() {
    local name pid
    [ -n "$gw" ] || return 0
    for name in nginx.pid.master worker.pid redis.pid; do
        [ -f "$gw/$name" ] && kill "$(cat "$gw/$name")" 2>/dev/null
    done
    for name in nginx.pid.master worker.pid redis.pid; do
        [ -f "$gw/$name" ] || continue
        pid=$(cat "$gw/$name")
        for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
        kill -9 "$pid" 2>/dev/null
        rm -f "$gw/$name"
    done
    gw=""
}
trap 'gw_stop; [ -n "${auth_pid:-}" ] && kill "$auth_pid" 2>/dev/null; exit 130' INT TERM

# --- runners ---------------------------------------------------------------
example() {  # name args...: an example script; PASS on exit 0 (and its PASS line)
    local name=$1 log
    shift
    log=$logs/example.$name.log
    (cd "$work/clients" && timeout 300 "$py" "$name.py" "$@") >"$log" 2>&1
    local rc=$?
    if [ $rc -ne 0 ]; then
        record "example/$name $*" FAIL "exit $rc: $(grep -v '^\s*$' "$log" | tail -3)"
    elif grep -q 'print("PASS' "$work/clients/$name.py" && ! grep -q '^PASS' "$log"; then
        record "example/$name $*" FAIL "exit 0 without its PASS line: $(tail -2 "$log")"
    else
        record "example/$name $*" PASS ""
    fi
}

unit() {  # group file.py [Class.test ...]: a unittest file, one row per test
    local group=$1 file=$2
    shift 2
    (cd "$work/qa/L0_http" && timeout "${UNIT_TIMEOUT:-900}" "$py" \
        "$here/unittest_tsv.py" "$tsv" "$group/" "$file" "$@") \
        >>"$logs/$group.log" 2>&1
    local rc=$?
    [ $rc -eq 124 ] && record "$group/$file $*" FAIL "timed out (${UNIT_TIMEOUT:-900} s)"
    [ $rc -ne 0 ] && [ $rc -ne 124 ] && record "$group/$file $*" FAIL "runner exit $rc: $(tail -2 "$logs/$group.log")"
}

skip_tests() {  # group file reason: every test of a file, skipped
    local group=$1 file=$2 reason=$3 t
    for t in $(grep -oE '^    (async )?def (test_[A-Za-z0-9_]+)' "$work/qa/L0_http/$file" \
                | awk '{print $NF}' | sort -u); do
        record "$group/$t" SKIP "$reason"
    done
}

# The curl cases of L0_http/test.sh ("Test combinations of binary and JSON
# data" up to its server's kill), each run by bash as written there.
curl_cases() {
    local d=$work/curl n f name rc
    mkdir -p "$d"
    sed "s/localhost:8000/$url/g" "$work/qa/L0_http/test.sh" | awk -v dir="$d" '
        /^# Test combinations of binary and JSON data/ { on = 1; next }
        on && /^kill \$SERVER_PID/ { exit }
        !on { next }
        /^# / { t = substr($0, 3); c = (prev ~ /^# /) ? c "; " t : t }
        /^rm -f \.\/curl\.out$/ {
            n++; f = sprintf("%s/%02d.sh", dir, n)
            if (c == "") c = last " (2)"
            print c > (f ".name"); last = c; c = ""
            print "RET=0" > f
        }
        n > 0 && f != "" { print > f }
        { prev = $0 }'
    for f in "$d"/*.sh; do
        printf 'exit $RET\n' >>"$f"
        name=$(cat "$f.name")
        (cd "$d" && bash "$f") >"$f.log" 2>&1
        rc=$?
        if [ $rc -eq 0 ]; then
            record "curl/$name" PASS ""
        else
            record "curl/$name" FAIL "$(grep -av '^\s*$' "$f.log" | grep -v '^\*\*\*' | head -3)"
        fi
    done
}

has_opt() { "$build/kserve-worker" --help 2>&1 | grep -q -- "$1"; }
explicit=""
has_opt --model-control-mode && explicit="--model-control-mode explicit"

main_models="simple simple_string simple_identity simple_sequence
    simple_dyna_sequence simple_string_dyna_sequence densenet_onnx"
# shellcheck disable=SC2086
set -- $main_models

# --- 1. L0_http's first server: the examples, curl cases, plugin, auth -----
if want 'examples|curl|plugin|auth|aio'; then
    gw_start main 64m "" "$@"
    if want examples; then
        example simple_http_health_metadata -v -u "$url"
        for e in simple_http_aio_infer_client simple_http_infer_client \
                 simple_http_async_infer_client simple_http_shm_string_client \
                 simple_http_shm_client simple_http_string_infer_client \
                 simple_http_sequence_sync_infer_client \
                 reuse_infer_objects_client; do
            example "$e" -v -u "$url"
        done
        # dynamic sequences (test.sh: its "dyna" server, same models)
        example simple_http_sequence_sync_infer_client -v -d -u "$url"

        # CUDA shared memory: needs a GPU and cuda-python
        log=$logs/example.simple_http_cudashm_client.log
        (cd "$work/clients" && timeout 120 "$py" simple_http_cudashm_client.py -v -u "$url") >"$log" 2>&1
        rc=$?
        if [ $rc -eq 0 ] && grep -q '^PASS' "$log"; then
            record "example/simple_http_cudashm_client" PASS ""
        elif grep -q "cuda-python\|CUDA driver\|cudaError\|no CUDA" "$log"; then
            record "example/simple_http_cudashm_client" SKIP "no GPU / cuda-python on this machine: $(grep -v '^\s*$' "$log" | tail -1)"
        else
            record "example/simple_http_cudashm_client" FAIL "exit $rc: $(grep -v '^\s*$' "$log" | tail -2)"
        fi

        # image_client: the stand-in densenet_onnx has no weights, so the
        # VULTURE label cannot be checked; the request (classification,
        # class_count=1) is, sync and async
        for a in "" -a; do
            log=$logs/example.image_client$a.log
            img=$work/qa/images/vulture.jpeg
            (cd "$work/clients" && timeout 120 "$py" image_client.py -m densenet_onnx \
                -s INCEPTION $a -c 1 -b 1 -u "$url" "$img") >"$log" 2>&1
            rc=$?
            if [ $rc -eq 0 ] && grep -q '^PASS' "$log"; then
                record "example/image_client $a" SKIP "served (classification, class_count=1: $(grep -m1 -E '^ *[0-9.]+ \(' "$log" | tr -s ' ')); VULTURE needs DenseNet weights"
            else
                record "example/image_client $a" FAIL "exit $rc: $(grep -v '^\s*$' "$log" | tail -2)"
            fi
        done
        record "example/ensemble_image_client" SKIP "commented out in L0_http/test.sh (needs the image ensemble and weights)"

        # the base path: a client told /base_path must fail, and say so
        log=$logs/example.base_path.log
        (cd "$work/clients" && "$py" simple_http_infer_client.py -u "$url/base_path" -v) >"$log" 2>&1
        rc=$?
        if [ $rc -ne 0 ] && grep -q "POST /base_path/v2/models/simple/infer" "$log"; then
            record "example/simple_http_infer_client -u .../base_path" PASS ""
        else
            record "example/simple_http_infer_client -u .../base_path" FAIL "exit $rc: $(tail -2 "$log")"
        fi
    fi
    want curl && curl_cases
    want plugin && unit plugin http_client_plugin_test.py
    if want auth; then
        # test.sh: a stock nginx with basic auth in front of the server
        a=$out/auth-nginx
        mkdir -p "$a"
        aport=$(free_port)
        (cd "$work/qa/L0_http" && echo -n 'username:' >pswd \
            && echo "password" | openssl passwd -stdin -apr1 >>pswd && chmod 644 pswd)
        sed -e "s|/opt/tritonserver/qa/L0_http/pswd|$work/qa/L0_http/pswd|" \
            -e "s|localhost:8000|$url|" -e "s|listen 8004|listen 127.0.0.1:$aport|" \
            -e "s|/var/log/nginx/error.log|$a/error.log|" \
            "$work/qa/L0_http/nginx.conf" >"$a/nginx.conf"
        sed -i "s/localhost:8004/127.0.0.1:$aport/g" "$work/qa/L0_http/http_basic_auth_test.py"
        u=""
        [ "$(id -u)" = 0 ] && u="user root;"
        nginx -p "$a" -c "$a/nginx.conf" -e "$a/error.log" \
            -g "pid $a/nginx.pid; daemon off; $u" &
        auth_pid=$!
        sleep 0.5
        unit auth http_basic_auth_test.py
        kill "$auth_pid" 2>/dev/null
        wait "$auth_pid" 2>/dev/null
        auth_pid=""
    fi
    # test.sh runs this one on a fresh server with the same repository
    want aio && unit aio python_http_aio_test.py
    gw_stop
fi

# --- 2. explicit model control ----------------------------------------------
if want control; then
    gw_start control 64m "$explicit" "$@"
    example simple_http_model_control -v -u "$url"
    gw_stop
fi

# --- 3. http_test.py ---------------------------------------------------------
if want http_test; then
    gw_start http_test 64m "${explicit:+$explicit --load-model *}" \
        onnx_zero_1_float32 onnx_zero_1_object onnx_zero_1_float16 \
        onnx_zero_3_float32 onnx_zero_1_object_1_element \
        onnx_zero_1_float32_queue simple_identity simple_identity_int64 \
        custom_identity_int32
    names=$(grep -oE '^    def (test_[A-Za-z0-9_]+)' "$work/qa/L0_http/http_test.py" | awk '{print "HttpTest." $NF}')
    if [ -z "${ORACLE_BIG:-}" ]; then
        names=$(echo "$names" | grep -v test_loading_large_invalid_model)
        record "http_test/HttpTest.test_loading_large_invalid_model" SKIP \
            "builds a 2.9 GB request (~11 GB client RAM); ORACLE_BIG=1 runs it"
    fi
    # shellcheck disable=SC2086
    unit http_test http_test.py $names
    # not in L0_http: the examples' memory-growth loop, over HTTP
    example memory_growth_test -i HTTP -r 100
    gw_stop
fi

# --- 4. generate endpoints ---------------------------------------------------
if want generate; then
    gw_start generate 64m "" mock_llm
    unit generate generate_endpoint_test.py
    gw_stop
fi

# --- 5. restricted APIs: a tritonserver option with no counterpart here ------
skip_tests restricted http_restricted_api_test.py \
    "n/a: tests tritonserver --http-restricted-api (header key=value per API group); no gateway counterpart"
record "server-cli/--http-restricted-api config errors" SKIP "n/a: tritonserver command-line checks"
record "server-cli/--http-max-input-size=0 and -1024 refused" SKIP "n/a: tritonserver command-line checks"

# --- 6. input size limits: 64 MB, then 128 MB --------------------------------
if want size64; then
    gw_start size64 64m "" onnx_zero_1_float32 simple_identity
    unit size64 http_input_size_limit_test.py \
        InferSizeLimitTest.test_default_limit_raw_binary \
        InferSizeLimitTest.test_default_limit_json \
        InferSizeLimitTest.test_large_string_in_json \
        InferSizeLimitTest.test_default_limit_compressed \
        InferSizeLimitTest.test_json_dtype_size_expansion_exceeds_limit_error
    SERVER_PID=$(nginx_worker_pid) unit size64 http_input_size_limit_test.py \
        InferSizeLimitTest.test_no_leak_on_invalid_inference_header_length
    gw_stop
fi
if want size128; then
    gw_start size128 128m "" onnx_zero_1_float32 simple_identity
    unit size128 http_input_size_limit_test.py \
        InferSizeLimitTest.test_large_input_raw_binary \
        InferSizeLimitTest.test_large_input_json \
        InferSizeLimitTest.test_large_input_compressed
    gw_stop
fi

# --- 7. many chunks ----------------------------------------------------------
if want chunks; then
    gw_start chunks 64m "" "$@"
    SERVER_PID=$(nginx_worker_pid) unit chunks http_request_many_chunks.py
    gw_stop
fi

# --- the table ---------------------------------------------------------------
echo
awk -F'\t' '{ printf "%-4s  %-70s %s\n", $2, substr($1, 1, 70), substr($3, 1, 160) }' "$tsv"
p=$(awk -F'\t' '$2=="PASS"' "$tsv" | wc -l)
f=$(awk -F'\t' '$2=="FAIL"' "$tsv" | wc -l)
s=$(awk -F'\t' '$2=="SKIP"' "$tsv" | wc -l)
echo
echo "oracle: $p passed, $f failed, $s skipped  (results: $tsv, logs: $logs)"
[ "$f" -eq 0 ]
