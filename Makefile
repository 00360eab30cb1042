# ngx_kserve
#
#   make            build the nginx module, kserve-worker and the Python
#                   instance binary (installs Debian build deps if missing)
#   make run        start redis, the worker on conf/models and nginx on
#                   127.0.0.1:8000 in the foreground; Ctrl-C stops all
#   make stop       stop what `make run` started
#   make test       install test deps, build, run unit + component +
#                   integration tests and a 15 s smoke of each fuzz target
#   make bench      ngx_kserve vs Triton, MLServer and the nginx/ZeroMQ limit
#                   (bench/setup.sh + bench/bench.py, < 15 min), writes
#                   docs/benchmarks.md and docs/bench.png; then 16 MB
#                   round trips, system shared memory vs binary HTTP
#                   (bench/shm.py, 1 min): docs/benchmarks-shm.md
#   make models     train digits_mlp, build the CUDA model libraries
#   make test-gpu   the CUDA backend's tests, refusing the CPU fallback
#   make fuzz       run each libFuzzer target (tests/fuzz/) FUZZ_SECONDS
#                   (120); FUZZ_NAMES="fuzz_codec ..." picks targets
#
#   SANITIZE=1      build everything with ASan + UBSan into build-san/

SHELL       := /bin/bash
SANITIZE    ?=
BUILD       ?= build$(if $(SANITIZE),-san)
PYTHON      := /usr/bin/python3
VENV        := .venv
NGX_SRC     := /usr/share/nginx/src

# Debian packages the build, `make run` and the tests need.
DEB_PKGS    := gcc make nginx nginx-dev libzmq3-dev libjansson-dev \
               libhiredis-dev libpcre2-dev libssl-dev zlib1g-dev \
               redis-server python3-dev python3-numpy python3-venv \
               python3-zmq wrk curl clang libclang-rt-dev python3-sklearn

CC          := gcc
comma       := ,
SAN_FLAGS   := $(if $(SANITIZE),-fsanitize=address$(comma)undefined \
               -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
CFLAGS      := -O2 -g -std=gnu11 -Wall -Wextra -Werror -Icommon \
               -D_GNU_SOURCE $(SAN_FLAGS)
LDFLAGS     := $(SAN_FLAGS)
# embedded CPython keeps its allocations until exit: leaks are not ours
SAN_ENV     := $(if $(SANITIZE),ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
               UBSAN_OPTIONS=halt_on_error=1:abort_on_error=1:print_stacktrace=1)

PY_CFLAGS   := $(shell $(PYTHON).11-config --includes 2>/dev/null)
PY_LDFLAGS  := $(shell $(PYTHON).11-config --embed --ldflags 2>/dev/null)

COMMON_SRCS := $(wildcard common/*.c)
COMMON_HDRS := $(wildcard common/*.h)
WORKER_SRCS := $(wildcard worker/*.c)
PYINST_SRCS := $(wildcard backends/python/*.c)
INSTC_SRCS  := $(wildcard backends/common/*.c)
INSTC_HDRS  := $(wildcard backends/common/*.h)
NGXFREE_SRCS:= $(wildcard ngx_module/ksv_*.c)
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)

obj          = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
COMMON_OBJS := $(call obj,$(COMMON_SRCS))
WORKER_OBJS := $(call obj,$(WORKER_SRCS))
PYINST_OBJS := $(call obj,$(PYINST_SRCS))
INSTC_OBJS  := $(call obj,$(INSTC_SRCS))
NGXFREE_OBJS:= $(call obj,$(NGXFREE_SRCS))
UNIT_BINS   := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))

MODULE      := $(BUILD)/ngx_http_kserve_module.so
WORKER      := $(BUILD)/kserve-worker
PYINST      := $(BUILD)/kserve-python-instance
DEPS_STAMP  := build/.deps-installed
VENV_STAMP  := $(VENV)/.installed

.PHONY: all deps module worker unit test component integration run stop \
        bench clean \
        test-deps fuzz fuzz-build fuzz-smoke

all: $(DEPS_STAMP) module worker

worker: $(WORKER) $(PYINST)
module: $(MODULE)


# ---- dependencies ---------------------------------------------------------

# apt-get only when something is missing, so `make` stays quick.
$(DEPS_STAMP):
	@missing=$$(for p in $(DEB_PKGS); do \
	    dpkg-query -W -f='$${Status}' $$p 2>/dev/null \
	        | grep -q 'install ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
	    echo "installing:" $$missing; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
	        apt-get install -y -qq $$missing >/dev/null; \
	fi
	@mkdir -p $(@D) && touch $@

deps: $(DEPS_STAMP)

# The test client is the official tritonclient; a venv on Debian's
# python3 sees Debian's numpy, the one the embedded interpreter uses.
$(VENV_STAMP): $(DEPS_STAMP) tests/requirements.txt
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(VENV)/bin/pip install -q -r tests/requirements.txt
	@touch $@

test-deps: $(VENV_STAMP)


# ---- C objects ------------------------------------------------------------

$(BUILD)/obj/backends/python/%.o: backends/python/%.c $(COMMON_HDRS) \
                                  $(wildcard backends/python/*.h) \
                                  $(INSTC_HDRS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Ibackends/common $(PY_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(COMMON_HDRS) $(wildcard worker/*.h ngx_module/ksv_*.h) \
                   $(INSTC_HDRS) | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(WORKER): $(WORKER_OBJS) $(COMMON_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ -lzmq

$(PYINST): $(PYINST_OBJS) $(INSTC_OBJS) $(COMMON_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(PY_LDFLAGS) -lzmq


# ---- the nginx module -----------------------------------------------------

# Configured against Debian's nginx source with its own flags (conf_flags),
# in a private copy so concurrent builds never share a Makefile.
NGX_BUILD   := $(CURDIR)/$(BUILD)/nginx
NGX_CC_OPT   = $(shell dpkg-buildflags --get CFLAGS) -fPIC \
               $(shell dpkg-buildflags --get CPPFLAGS) $(SAN_FLAGS)
NGX_LD_OPT   = $(shell dpkg-buildflags --get LDFLAGS) -fPIC $(SAN_FLAGS)

$(NGX_BUILD)/objs/Makefile: ngx_module/config | $(DEPS_STAMP)
	rm -rf $(NGX_BUILD) && mkdir -p $(NGX_BUILD)
	cp -r $(NGX_SRC)/. $(NGX_BUILD)/src
	cd $(NGX_BUILD)/src && . ./conf_flags && $(SAN_ENV) ./configure \
	    --with-cc-opt="$(NGX_CC_OPT)" --with-ld-opt="$(NGX_LD_OPT)" \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --add-dynamic-module=$(CURDIR)/ngx_module \
	    --builddir=$(NGX_BUILD)/objs >$(NGX_BUILD)/configure.log

$(MODULE): $(NGX_BUILD)/objs/Makefile $(wildcard ngx_module/*.[ch]) \
           $(COMMON_SRCS) $(COMMON_HDRS)
	$(MAKE) -s -C $(NGX_BUILD)/src -f $(NGX_BUILD)/objs/Makefile modules
	@# rename, never overwrite: a running nginx has the old file mapped
	cp $(NGX_BUILD)/objs/ngx_http_kserve_module.so $@.tmp && mv $@.tmp $@


# ---- tests ----------------------------------------------------------------

# the instances' pure parts (no sockets): the batcher, the timer heap,
# the classification extension and the mappings of clients' shared
# memory regions
UNIT_INSTC  := $(call obj,backends/common/ksv_batcher.c \
                          backends/common/ksv_classify.c \
                          backends/common/ksv_shm_map.c \
                          backends/common/ksv_timer.c)

$(BUILD)/unit/%: tests/unit/%.c $(COMMON_OBJS) $(NGXFREE_OBJS) $(UNIT_INSTC)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Ingx_module -Ibackends/common -o $@ $^ -ljansson -lzmq -lz

unit: $(UNIT_BINS)
	@for t in $(UNIT_BINS); do echo "== $$t"; $$t || exit 1; done

component: worker $(VENV_STAMP)
	KSV_BUILD=$(BUILD) $(SAN_ENV) $(VENV)/bin/python -m pytest -q tests/component

integration: all $(VENV_STAMP)
	KSV_BUILD=$(BUILD) KSV_SANITIZE=$(SANITIZE) $(SAN_ENV) \
	    $(VENV)/bin/python -m pytest -q tests/integration

test: all $(VENV_STAMP)
	$(MAKE) --no-print-directory unit
	$(MAKE) --no-print-directory component
	$(MAKE) --no-print-directory integration
	$(MAKE) --no-print-directory fuzz-smoke


# ---- fuzzing ----------------------------------------------------------------

# libFuzzer targets for every parser of untrusted bytes, built with clang
# and ASan + UBSan whatever SANITIZE says.  Each run reads the committed
# seeds (tests/fuzz/corpus/<target>/, never written) after a scratch
# corpus under build/fuzz/ that collects what the run discovers; a
# crashing input is saved as tests/fuzz/crashes/<target>-crash-<sha1>
# (git-ignored): reproduce with `build/fuzz/<target> <that file>`.
FUZZ_SECONDS?= 120
FUZZ_SMOKE  := 15
FUZZ_CC     := clang
FUZZ_SAN    := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
               -fno-omit-frame-pointer
FUZZ_CFLAGS := -O1 -g -std=gnu11 -Wall -Wextra -Werror -Icommon -Ingx_module \
               -D_GNU_SOURCE $(FUZZ_SAN) -fsanitize=fuzzer-no-link
FUZZ_OUT    := build/fuzz
FUZZ_SRCS   := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_NAMES  ?= $(patsubst tests/fuzz/%.c,%,$(FUZZ_SRCS))
FUZZ_BINS   := $(addprefix $(FUZZ_OUT)/,$(FUZZ_NAMES))
FUZZ_OBJS   := $(patsubst %.c,$(FUZZ_OUT)/obj/%.o,$(COMMON_SRCS) $(NGXFREE_SRCS))
FUZZ_OPTS   := -max_len=65536 -timeout=10 -rss_limit_mb=2048 \
               -print_final_stats=1

$(FUZZ_OUT)/obj/%.o: %.c $(COMMON_HDRS) $(wildcard ngx_module/ksv_*.h) \
                     | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

$(FUZZ_OUT)/fuzz_%: tests/fuzz/fuzz_%.c $(FUZZ_OBJS)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ -ljansson -lzmq -lz

fuzz-build: $(FUZZ_BINS)

# fuzz-run,seconds: each target for that long, one summary line each;
# stops at the first target that finds a crash.
define fuzz-run
	@mkdir -p tests/fuzz/crashes
	@for t in $(FUZZ_NAMES); do \
	    mkdir -p $(FUZZ_OUT)/corpus/$$t; \
	    log=$(FUZZ_OUT)/$$t.log; \
	    UBSAN_OPTIONS=print_stacktrace=1 \
	        $(FUZZ_OUT)/$$t $(FUZZ_OPTS) -max_total_time=$(1) \
	        -artifact_prefix=tests/fuzz/crashes/$$t- \
	        $(FUZZ_OUT)/corpus/$$t tests/fuzz/corpus/$$t >$$log 2>&1; \
	    rc=$$?; \
	    runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $$log); \
	    cov=$$(grep -o 'cov: [0-9]*' $$log | tail -1); \
	    if [ $$rc -ne 0 ]; then \
	        echo "$$t: FAILED after $${runs:-?} runs (rc $$rc), see $$log"; \
	        grep -m1 -A12 '^==.*ERROR\|runtime error\|invariant failed' $$log; \
	        exit 1; \
	    fi; \
	    echo "$$t: $$runs runs in $(1) s, $$cov, no crash"; \
	done
endef

fuzz: $(FUZZ_BINS)
	$(call fuzz-run,$(FUZZ_SECONDS))

fuzz-smoke: $(FUZZ_BINS)
	$(call fuzz-run,$(FUZZ_SMOKE))


# ---- CUDA backend -------------------------------------------------------------

# kserve-cuda-instance (C, links cudart) and the example CUDA models.
# With nvcc on the PATH (or NVCC=...) everything is built for the GPU as
# well; without it the instance and the models' CPU paths are built with
# gcc (KSV_HAVE_CUDA=0), so the tests still run.  `make models` also
# trains digits_mlp (scikit-learn's digits, deterministic) into
# conf/models/digits_mlp{,_py}/1/*.npy.  All of these are build outputs,
# git-ignored.
NVCC        ?= $(shell command -v nvcc 2>/dev/null)
CUDA_HOME   ?= $(if $(NVCC),$(patsubst %/bin/nvcc,%,$(realpath $(NVCC))))
HAVE_CUDA   := $(if $(NVCC),1,0)
NVCC_ARCH   ?= -gencode arch=compute_80,code=sm_80 \
               -gencode arch=compute_90,code=[sm_90,compute_90]
NVCC_FLAGS  := -O2 -std=c++17 -shared -Xcompiler -fPIC,-Wall,-Wextra,-Werror \
               -Werror all-warnings $(NVCC_ARCH) -Ibackends/cuda
CUINST_CFLAGS := -DKSV_HAVE_CUDA=$(HAVE_CUDA) -Ibackends/common \
               $(if $(NVCC),-I$(CUDA_HOME)/include)
CUINST_LIBS := $(if $(NVCC),-L$(CUDA_HOME)/lib64 \
               -Wl$(comma)-rpath$(comma)$(CUDA_HOME)/lib64 -lcudart) -ldl -lzmq
CUINST_SRCS := $(wildcard backends/cuda/*.c)
CUINST_OBJS := $(call obj,$(CUINST_SRCS))
CUINST      := $(BUILD)/kserve-cuda-instance

# the model libraries: <model dir>/model.cu -> <model dir>/1/model.so
CUDA_MODELS := conf/models/simple_cuda conf/models/digits_mlp
CUDA_SOS    := $(addsuffix /1/model.so,$(CUDA_MODELS)) \
               tests/models/cuda_nosym/1/model.so
DIGITS_NPY  := conf/models/digits_mlp/train_report.json

.PHONY: cuda models test-gpu

all: cuda models
worker: $(CUINST)
cuda: $(CUINST)
models: $(CUDA_SOS) $(DIGITS_NPY)

$(BUILD)/obj/backends/cuda/%.o: backends/cuda/%.c $(COMMON_HDRS) \
                                $(INSTC_HDRS) $(wildcard backends/cuda/*.h) \
                                | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(CUINST_CFLAGS) -c $< -o $@

$(CUINST): $(CUINST_OBJS) $(INSTC_OBJS) $(COMMON_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ $(CUINST_LIBS)

conf/models/digits_mlp/1/model.so: MODEL_LIBS := -lcublas

%/1/model.so: %/model.cu backends/cuda/kserve_cuda_backend.h
	@mkdir -p $(@D)
ifneq ($(NVCC),)
	$(NVCC) $(NVCC_FLAGS) -o $@ $< $(MODEL_LIBS)
else
	$(CC) -x c -std=gnu11 -O2 -shared -fPIC -Wall -Wextra -Werror \
	    -Ibackends/cuda -o $@ $< -lm
endif

# exports ksv_cuda_abi_version and nothing else (the loader's test)
tests/models/cuda_nosym/1/model.so: tests/models/cuda_nosym/model.c \
                                    backends/cuda/kserve_cuda_backend.h
	@mkdir -p $(@D)
	$(CC) -std=gnu11 -O2 -shared -fPIC -Wall -Wextra -Werror \
	    -Ibackends/cuda -o $@ $<

# (a checkout whose deps stamp predates python3-sklearn gets it here)
$(DIGITS_NPY): conf/models/digits_mlp/train.py | $(DEPS_STAMP)
	@$(PYTHON) -c 'import sklearn' 2>/dev/null || { \
	    echo "installing: python3-sklearn"; apt-get update -qq && \
	    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
	        python3-sklearn >/dev/null; }
	$(PYTHON) conf/models/digits_mlp/train.py

# The CUDA backend's suite with the CPU fallback refused: for a machine
# with a GPU (the models' instances fail to load without one).
test-gpu: all $(VENV_STAMP)
	KSV_REQUIRE_GPU=1 KSV_BUILD=$(BUILD) $(SAN_ENV) \
	    $(VENV)/bin/python -m pytest -q tests/integration/test_cuda_backend.py


# ---- running ----------------------------------------------------------------

# explicit model control with every model loaded: Triton's model-control
# clients (load, unload, the repository index) work against it
KSV_WORKER_ARGS ?= --model-control-mode explicit --load-model *

run: all
	@KSV_BUILD=$(BUILD) KSV_WORKER_ARGS='$(KSV_WORKER_ARGS)' conf/run.sh

stop:
	@KSV_BUILD=$(BUILD) conf/run.sh stop

# bench/setup.sh installs what it compares against into build/bench/
# (tritonserver from nvidia-pytriton, perf_analyzer, MLServer, each in
# its own venv); bench.py itself needs only Debian's python3.
bench: all
	bench/setup.sh
	KSV_BUILD=$(BUILD) $(PYTHON) bench/bench.py
	KSV_BUILD=$(BUILD) $(PYTHON) bench/shm.py

.SECONDARY:

clean:
	rm -rf build build-san
