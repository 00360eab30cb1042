# ngx_kserve
#
#   make            build the nginx module, kserve-worker and the Python
#                   instance binary (installs Debian build deps if missing)
#   make run        start redis, the worker on conf/models and nginx on
#                   127.0.0.1:8000 in the foreground; Ctrl-C stops all
#   make stop       stop what `make run` started
#   make test       install test deps, build, run unit + integration tests
#   make bench      wrk benchmark (bench/run.sh), writes docs/benchmarks.md
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
               python3-zmq wrk curl

CC          := gcc
comma       := ,
SAN_FLAGS   := $(if $(SANITIZE),-fsanitize=address$(comma)undefined \
               -fno-omit-frame-pointer -fno-sanitize-recover=undefined)
CFLAGS      := -O2 -g -std=gnu11 -Wall -Wextra -Werror -Icommon \
               -D_GNU_SOURCE $(SAN_FLAGS)
LDFLAGS     := $(SAN_FLAGS)
# embedded CPython keeps its allocations until exit: leaks are not ours
SAN_ENV     := $(if $(SANITIZE),ASAN_OPTIONS=detect_leaks=0:abort_on_error=1 \
               UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1)

PY_CFLAGS   := $(shell $(PYTHON).11-config --includes 2>/dev/null)
PY_LDFLAGS  := $(shell $(PYTHON).11-config --embed --ldflags 2>/dev/null)

COMMON_SRCS := $(wildcard common/*.c)
COMMON_HDRS := $(wildcard common/*.h)
WORKER_SRCS := $(wildcard worker/*.c)
PYINST_SRCS := $(wildcard backends/python/*.c)
NGXFREE_SRCS:= $(wildcard ngx_module/ksv_*.c)
UNIT_SRCS   := $(wildcard tests/unit/test_*.c)

obj          = $(patsubst %.c,$(BUILD)/obj/%.o,$(1))
COMMON_OBJS := $(call obj,$(COMMON_SRCS))
WORKER_OBJS := $(call obj,$(WORKER_SRCS))
PYINST_OBJS := $(call obj,$(PYINST_SRCS))
NGXFREE_OBJS:= $(call obj,$(NGXFREE_SRCS))
UNIT_BINS   := $(patsubst tests/unit/%.c,$(BUILD)/unit/%,$(UNIT_SRCS))

MODULE      := $(BUILD)/ngx_http_kserve_module.so
WORKER      := $(BUILD)/kserve-worker
PYINST      := $(BUILD)/kserve-python-instance
DEPS_STAMP  := build/.deps-installed
VENV_STAMP  := $(VENV)/.installed

.PHONY: all deps module worker unit test component integration run stop \
        bench clean \
        test-deps

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
                                  | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(PY_CFLAGS) -c $< -o $@

$(BUILD)/obj/%.o: %.c $(COMMON_HDRS) $(wildcard worker/*.h ngx_module/ksv_*.h) \
                   | $(DEPS_STAMP)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -c $< -o $@

$(WORKER): $(WORKER_OBJS) $(COMMON_OBJS)
	$(CC) $(LDFLAGS) -o $@ $^ -lzmq

$(PYINST): $(PYINST_OBJS) $(COMMON_OBJS)
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
	cd $(NGX_BUILD)/src && . ./conf_flags && ./configure \
	    --with-cc-opt="$(NGX_CC_OPT)" --with-ld-opt="$(NGX_LD_OPT)" \
	    "$${NGX_CONF_FLAGS[@]}" \
	    --add-dynamic-module=$(CURDIR)/ngx_module \
	    --builddir=$(NGX_BUILD)/objs >$(NGX_BUILD)/configure.log

$(MODULE): $(NGX_BUILD)/objs/Makefile $(wildcard ngx_module/*.[ch]) \
           $(COMMON_SRCS) $(COMMON_HDRS)
	$(MAKE) -s -C $(NGX_BUILD)/src -f $(NGX_BUILD)/objs/Makefile modules
	cp $(NGX_BUILD)/objs/ngx_http_kserve_module.so $@


# ---- tests ----------------------------------------------------------------

$(BUILD)/unit/%: tests/unit/%.c $(COMMON_OBJS) $(NGXFREE_OBJS)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) -Ingx_module -o $@ $^ -ljansson -lzmq

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


# ---- running ----------------------------------------------------------------

run: all
	@KSV_BUILD=$(BUILD) conf/run.sh

stop:
	@KSV_BUILD=$(BUILD) conf/run.sh stop

bench: all
	KSV_BUILD=$(BUILD) bench/run.sh

.SECONDARY:

clean:
	rm -rf build build-san
