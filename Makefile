# kubedirect: plain-Make build (Redis style). `make help` lists every target with what it does,
# generated from the `## ` comment on the target's line.
# Variables: BUILD=dir (default build), SANITIZER=address|undefined|address,undefined,
#            WERROR=1, V=1 (verbose), O=-O2 (optimisation), JOBS=n (test-all),
#            FUZZ_TIME=s (fuzz), N, R, K, SEQ, MINUTES, COMPRESS, REPEATS
#            (benchmarks: see their targets).

BUILD ?= build
CC ?= cc
O ?= -O2
PKGS := libcurl json-c libwebsockets yaml-0.1 libuv libmicrohttpd gnutls
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)

ifeq ($(CI),true)
WERROR ?= 1
endif
WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes -Wformat=2 \
	-Wno-missing-field-initializers
ifeq ($(WERROR),1)
WARN += -Werror
endif
SAN_FLAGS :=
ifneq ($(SANITIZER),)
SAN_FLAGS := -fsanitize=$(SANITIZER) -fno-omit-frame-pointer -fno-sanitize-recover=all
endif

CPPFLAGS += -Ilib/include -D_GNU_SOURCE
CFLAGS_ALL := -std=gnu11 $(O) -g -fPIC -MMD -MP $(WARN) $(SAN_FLAGS) $(PKG_CFLAGS) $(CFLAGS)
LDFLAGS_ALL := $(SAN_FLAGS) $(LDFLAGS)
LIBS := $(PKG_LIBS) -ldl -lpthread -lm

ifeq ($(V),1)
Q :=
else
Q := @
endif

# --- libkd -------------------------------------------------------------------------------------
LIB_SRCS := $(wildcard lib/*.c)
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)
LIBKD_A := $(BUILD)/lib/libkd.a
# libkd.so.MAJOR.MINOR.PATCH with soname libkd.so.MAJOR; libkd.so.MAJOR and libkd.so (the link
# name) are symlinks. Bump MAJOR when an exported (KD_API) function or struct changes incompatibly.
LIBKD_VERSION := 0.1.0
LIBKD_SONAME := libkd.so.$(firstword $(subst ., ,$(LIBKD_VERSION)))
LIBKD_SO_REAL := $(BUILD)/lib/libkd.so.$(LIBKD_VERSION)
LIBKD_SO := $(BUILD)/lib/libkd.so
# lib/ is compiled hidden: only declarations marked KD_API (kd/common.h) are exported.
LIB_CFLAGS := -fvisibility=hidden

# --- plugins: plugins/<name>/*.c -> $(BUILD)/plugins/kd-<name>.so ------------------------------
PLUGIN_DIRS := $(patsubst %/,%,$(dir $(wildcard plugins/*/*.c)))
PLUGIN_NAMES := $(sort $(notdir $(PLUGIN_DIRS)))
PLUGIN_SOS := $(PLUGIN_NAMES:%=$(BUILD)/plugins/kd-%.so)
PLUGIN_CFLAGS := -fvisibility=hidden
PLUGIN_LDFLAGS := -shared -Wl,--no-undefined -Wl,--exclude-libs,ALL

# --- components: <folder>/*.c -> $(BUILD)/bin/<binary> ---------------------------------------
COMPONENTS := autoscaler-shim:kd-autoscaler node-agent:kd-node activator-hook:kd-activator \
	ingress-gateway:kd-gateway
comp_dir = $(word 1,$(subst :, ,$(1)))
comp_bin = $(word 2,$(subst :, ,$(1)))
BINS := $(foreach c,$(COMPONENTS),$(if $(wildcard $(call comp_dir,$(c))/*.c),$(BUILD)/bin/$(call comp_bin,$(c))))

# --- sample functions: functions/<name>/*.c -> $(BUILD)/functions/<name> -----------------------
FUNC_NAMES := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard functions/*/*.c)))))
FUNC_BINS := $(FUNC_NAMES:%=$(BUILD)/functions/%)

# --- bench tools: bench/<name>/*.c -> $(BUILD)/bench/<name>/<name> -----------------------------
# (the binary lives inside the folder of its objects: $(BUILD)/bench/<name> is that folder)
BENCH_NAMES := $(sort $(notdir $(patsubst %/,%,$(dir $(wildcard bench/*/*.c)))))
BENCH_BINS := $(foreach b,$(BENCH_NAMES),$(BUILD)/bench/$(b)/$(b))

# --- tests -------------------------------------------------------------------------------------
TEST_SRCS := $(wildcard tests/unit/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/unit/%.c=$(BUILD)/tests/%)
# Shell tests of the build itself (tests/unit/test_*.sh): "ok NAME" / "not ok NAME" lines.
TEST_SCRIPTS := $(wildcard tests/unit/test_*.sh)
TEST_SUPPORT_SRCS := $(wildcard tests/support/*.c)
TEST_SUPPORT_OBJS := $(TEST_SUPPORT_SRCS:%.c=$(BUILD)/%.o)
FIXTURE_SRCS := $(wildcard tests/fixtures/plugins/*.c)
FIXTURE_SOS := $(FIXTURE_SRCS:tests/fixtures/plugins/%.c=$(BUILD)/tests/fixtures/%.so)
# Multi-process harness programs: tests/harness/<name>.c -> $(BUILD)/tests/harness/<name>
HARNESS_SRCS := $(wildcard tests/harness/*.c)
HARNESS_BINS := $(HARNESS_SRCS:tests/harness/%.c=$(BUILD)/tests/harness/%)
# tests/support may use OpenSSL directly (TLS test servers).
TEST_LIBS := $(shell pkg-config --libs openssl 2>/dev/null || echo -lssl -lcrypto)
TEST_CPPFLAGS := -Itests/support -DKD_BUILD_DIR=\"$(abspath $(BUILD))\" -DKD_SRC_DIR=\"$(CURDIR)\"

# --- fuzz targets (clang + libFuzzer): tests/fuzz/fuzz_<name>.c --------------------------------
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:tests/fuzz/%.c=$(BUILD)/fuzz/%)
FUZZ_CC ?= clang
FUZZ_TIME ?= 60
# each libFuzzer target's run in test-all (CI): bounded, from the seeds kept in tests/fuzz/corpus
CI_FUZZ_TIME ?= 10

ALL_C := $(LIB_SRCS) $(wildcard plugins/*/*.c) $(foreach c,$(COMPONENTS),$(wildcard $(call comp_dir,$(c))/*.c)) \
	$(wildcard functions/*.c) $(wildcard functions/*/*.c) $(wildcard bench/*/*.c) $(TEST_SRCS) $(TEST_SUPPORT_SRCS) \
	$(FIXTURE_SRCS) $(HARNESS_SRCS) $(FUZZ_SRCS)
ALL_H := $(shell find lib plugins autoscaler-shim node-agent activator-hook ingress-gateway functions bench tests \
	-name '*.h' 2>/dev/null)

.PHONY: FORCE valgrind test-all all lib plugins bins test test-unit check lint format format-check fuzz fuzz-build deps \
	clean help test-integration rig-up rig-down rig-status bench-chan bench-scale-pods bench-cold-burst bench-scale-funcs bench-trace bench-cold-request bench-http-proxy ab \
	images test-images
.DEFAULT_GOAL := all
.SECONDARY:

all: lib plugins bins $(FUNC_BINS) $(BENCH_BINS) ## libkd, plugins, the four components, functions, benches
lib: $(LIBKD_A) $(LIBKD_SO) ## libkd only: build/lib/libkd.a and libkd.so
plugins: $(PLUGIN_SOS) ## the stage plugins: build/plugins/kd-<name>.so
bins: $(BINS) ## the components: build/bin/kd-{autoscaler,node,...}

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  CC      $<")
	$(Q)$(CC) $(CPPFLAGS) $(if $(filter tests/%,$<),$(TEST_CPPFLAGS)) \
		$(if $(filter plugins/%,$<),$(PLUGIN_CFLAGS)) $(if $(filter lib/%,$<),$(LIB_CFLAGS)) \
		$(CFLAGS_ALL) -c $< -o $@

$(LIBKD_A): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  AR      $@")
	$(Q)rm -f $@ && ar rcs $@ $^

$(LIBKD_SO_REAL): $(LIB_OBJS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LD      $@")
	$(Q)$(CC) -shared -Wl,-soname,$(LIBKD_SONAME) -o $@ $^ $(LDFLAGS_ALL) $(LIBS)

$(BUILD)/lib/$(LIBKD_SONAME): $(LIBKD_SO_REAL)
	$(Q)ln -sf $(notdir $<) $@

$(LIBKD_SO): $(BUILD)/lib/$(LIBKD_SONAME)
	$(Q)ln -sf $(LIBKD_SONAME) $@

define plugin_rule
$(BUILD)/plugins/kd-$(1).so: $(patsubst %.c,$(BUILD)/%.o,$(wildcard plugins/$(1)/*.c)) $(LIBKD_A)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  PLUGIN  $$@")
	$$(Q)$$(CC) $(PLUGIN_LDFLAGS) -o $$@ $$(filter %.o,$$^) $(LIBKD_A) $$(LDFLAGS_ALL) $$(LIBS)
endef
$(foreach p,$(PLUGIN_NAMES),$(eval $(call plugin_rule,$(p))))

define bin_rule
$(BUILD)/$(2): $(patsubst %.c,$(BUILD)/%.o,$(wildcard $(1)/*.c)) $(LIBKD_A)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  LINK    $$@")
	$$(Q)$$(CC) -o $$@ $$(filter %.o,$$^) $(LIBKD_A) $$(LDFLAGS_ALL) $$(LIBS)
endef
$(foreach c,$(COMPONENTS),$(if $(wildcard $(call comp_dir,$(c))/*.c),$(eval $(call bin_rule,$(call comp_dir,$(c)),bin/$(call comp_bin,$(c))))))
# --version prints the commit: -DKD_GIT_COMMIT for the components' main.c only (a new commit
# recompiles those four objects), rebuilt when $(BUILD)/git-commit changes.
GIT_COMMIT := $(shell git rev-parse --short HEAD 2>/dev/null || echo unknown)
MAIN_OBJS := $(foreach c,$(COMPONENTS),$(BUILD)/$(call comp_dir,$(c))/main.o)
$(MAIN_OBJS): CPPFLAGS += -DKD_GIT_COMMIT=\"$(GIT_COMMIT)\"
$(MAIN_OBJS): $(BUILD)/git-commit
$(BUILD)/git-commit: FORCE
	@mkdir -p $(dir $@)
	@[ "$$(cat $@ 2>/dev/null)" = "$(GIT_COMMIT)" ] || echo "$(GIT_COMMIT)" >$@
FORCE:
# Sample functions: standalone programs (no libkd) on libmicrohttpd, compiled straight from their
# sources plus the shared server functions/*.c, so the binary $(BUILD)/functions/<name> does not
# collide with an object folder of the same name.
define func_rule
$(BUILD)/functions/$(1): $(wildcard functions/$(1)/*.c) $(wildcard functions/*.c) $(wildcard functions/*.h)
	@mkdir -p $$(dir $$@)
	@$$(if $$(Q),echo "  FUNC    $$@")
	$$(Q)$$(CC) $(CPPFLAGS) $(CFLAGS_ALL) $(shell pkg-config --cflags libmicrohttpd) -o $$@ \
		$$(filter %.c,$$^) $$(LDFLAGS_ALL) $(shell pkg-config --libs libmicrohttpd) -lpthread
endef
$(foreach f,$(FUNC_NAMES),$(eval $(call func_rule,$(f))))
$(foreach b,$(BENCH_NAMES),$(eval $(call bin_rule,bench/$(b),bench/$(b)/$(b))))

$(BUILD)/tests/test_%: $(BUILD)/tests/unit/test_%.o $(TEST_SUPPORT_OBJS) $(LIBKD_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  TEST    $@")
	$(Q)$(CC) -o $@ $(filter %.o,$^) $(LIBKD_A) $(LDFLAGS_ALL) $(LIBS) $(TEST_LIBS) -lcmocka
# A test of a component's pure module (a .c with its own header, no I/O) links that module's object.
$(BUILD)/tests/test_as_admission: $(BUILD)/autoscaler-shim/admission.o
$(BUILD)/tests/test_act_ident: $(BUILD)/activator-hook/ident.o
# A plugin's pure module likewise; test_runtime_kubelet also loads the plugin (KD_PLUGIN_DIR).
$(BUILD)/tests/test_runtime_kubelet: $(BUILD)/plugins/runtime-kubelet/rk_pod.o \
	$(BUILD)/plugins/kd-runtime-kubelet.so
# bench/trace's modules (parse, schedule, stats; the replay engine over curl multi). The binary
# tests (test_trace_cli) run $(BUILD)/bench/trace/trace and $(BUILD)/functions/sleep.
$(BUILD)/tests/test_trace_parse: $(BUILD)/bench/trace/trace_parse.o
$(BUILD)/tests/test_trace_sched: $(BUILD)/bench/trace/trace_sched.o $(BUILD)/bench/trace/trace_parse.o
$(BUILD)/tests/test_trace_stats: $(BUILD)/bench/trace/trace_stats.o
$(BUILD)/tests/test_trace_replay: $(BUILD)/bench/trace/trace_replay.o \
	$(BUILD)/bench/trace/trace_stats.o $(BUILD)/bench/trace/trace_sched.o \
	$(BUILD)/bench/trace/trace_parse.o $(BUILD)/functions/sleep
$(BUILD)/tests/test_trace_cli: $(BUILD)/bench/trace/trace $(BUILD)/functions/sleep

$(BUILD)/tests/harness/%: $(BUILD)/tests/harness/%.o $(TEST_SUPPORT_OBJS) $(LIBKD_A)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  LINK    $@")
	$(Q)$(CC) -o $@ $< $(TEST_SUPPORT_OBJS) $(LIBKD_A) $(LDFLAGS_ALL) $(LIBS) $(TEST_LIBS)

$(BUILD)/tests/fixtures/%.so: tests/fixtures/plugins/%.c
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FIXTURE $@")
	$(Q)$(CC) $(CPPFLAGS) $(CFLAGS_ALL) $(PLUGIN_CFLAGS) -shared -o $@ $< $(LDFLAGS_ALL)

test-unit test: all $(TEST_BINS) $(FIXTURE_SOS) $(HARNESS_BINS) ## unit tests (cmocka binaries, tests/unit/*.sh), no rig
	$(Q)BUILD=$(BUILD) tests/run-unit.sh $(TEST_BINS) $(TEST_SCRIPTS)

check: ## -Werror build + unit tests under ASan+UBSan (build-san)
	$(MAKE) WERROR=1 SANITIZER=address,undefined BUILD=$(BUILD)-san test

# Every unit-test binary under valgrind (memcheck, leaks are errors).
VALGRIND ?= valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99
valgrind: all $(TEST_BINS) $(FIXTURE_SOS) $(HARNESS_BINS) ## unit tests under valgrind memcheck (leaks are errors)
	$(Q)BUILD=$(BUILD) KD_TEST_WRAPPER="$(VALGRIND)" tests/run-unit.sh $(TEST_BINS)

# The README test command: format, lint, -Werror + sanitizer unit tests, valgrind, and the
# integration tests on the embedded cluster (rig/up builds the pinned upstream binaries once).
# Steps run one after another (each builds with -j$(JOBS)); output stays readable.
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test-all: ## format-check lint check valgrind fuzz test-integration
	$(MAKE) --no-print-directory format-check
	$(MAKE) --no-print-directory lint
	$(MAKE) --no-print-directory -j$(JOBS) check
	$(MAKE) --no-print-directory -j$(JOBS) valgrind
	$(MAKE) --no-print-directory -j$(JOBS) fuzz FUZZ_TIME=$(CI_FUZZ_TIME)
	$(MAKE) --no-print-directory -j$(JOBS) test-integration

# --- fuzzing ---------------------------------------------------------------------------------
FUZZ_FLAGS := -std=gnu11 -g -O1 -fsanitize=fuzzer,address,undefined -Ilib/include -D_GNU_SOURCE \
	$(PKG_CFLAGS)
$(BUILD)/fuzz/%: tests/fuzz/%.c $(LIB_SRCS)
	@mkdir -p $(dir $@)
	@$(if $(Q),echo "  FUZZ    $@")
	$(Q)$(FUZZ_CC) $(FUZZ_FLAGS) -o $@ $(filter %.c,$^) $(LIBS)
# A fuzz target of a component's pure module (a .c with its own header) is linked with its source.
$(BUILD)/fuzz/fuzz_act_identify: activator-hook/ident.c activator-hook/ident.h
$(BUILD)/fuzz/fuzz_admission: autoscaler-shim/admission.c autoscaler-shim/admission.h
$(BUILD)/fuzz/fuzz_trace_parse: bench/trace/trace_parse.c bench/trace/trace_parse.h \
	bench/trace/trace_sched.c bench/trace/trace_sched.h
fuzz-build: $(FUZZ_BINS) ## build the libFuzzer targets (clang) into build/fuzz
# Runs each target for FUZZ_TIME seconds on its corpus (tests/fuzz/corpus/<name>).
fuzz: fuzz-build ## run each libFuzzer target FUZZ_TIME seconds
	$(Q)for f in $(FUZZ_BINS); do n=$$(basename $$f); c=$(BUILD)/fuzz/corpus-$$n; mkdir -p $$c; \
		seeds=tests/fuzz/corpus/$$n; [ -d $$seeds ] || seeds=; \
		echo "fuzz: $$n for $(FUZZ_TIME)s"; \
		$$f -max_total_time=$(FUZZ_TIME) -print_final_stats=1 $$c $$seeds || exit 1; done

# --- lint and format -------------------------------------------------------------------------
TIDY_SRCS := $(filter-out tests/fuzz/%,$(ALL_C))
LINT_JOBS ?= $(shell nproc 2>/dev/null || echo 2)
lint: ## clang-tidy and cppcheck on every C file
	$(Q)printf '%s\n' $(TIDY_SRCS) | xargs -P $(LINT_JOBS) -n 4 sh -c \
		'clang-tidy --quiet "$$@" -- $(CPPFLAGS) $(TEST_CPPFLAGS) -std=gnu11 $(PKG_CFLAGS) 2>&1' _ \
		| grep -v -E '^[0-9]+ warnings? (and [0-9]+ errors? )?generated\.$$' | tee $(BUILD)-tidy.log; \
		! grep -qE '(warning|error):' $(BUILD)-tidy.log
	$(Q)cppcheck --quiet --error-exitcode=1 --enable=warning,performance,portability \
		--inline-suppr --std=c11 -D__GNUC__ -Ilib/include --suppress=missingIncludeSystem \
		$(ALL_C)
	@echo "lint: clean"

format: ## clang-format every C file and header in place
	$(Q)clang-format -i $(ALL_C) $(ALL_H)
format-check: ## fail if a C file or header is not clang-formatted
	$(Q)clang-format --dry-run --Werror $(ALL_C) $(ALL_H) && echo "format: clean"

deps: ## Debian packages, and Go >= 1.25 if none (scripts/deps.sh)
	$(Q)scripts/deps.sh

# --- container images (images/README.md): not needed by the rig, the tests or CI ---------------
# localhost/kubedirect/<component>:<images/VERSION>, FROM scratch: the component, its plugins and
# the shared libraries they need, staged from this build by scripts/image-rootfs.sh; built with
# podman, else buildah, else docker (scripts/image-engine.sh; exit 2 when none is usable).
images: plugins bins ## container images localhost/kubedirect/kd-*
	$(Q)BUILD=$(BUILD) scripts/images.sh
test-images: plugins bins ## build the images, run each through the engine
	$(Q)BUILD=$(BUILD) tests/images/test_images.sh

# --- the embedded cluster and integration tests ----------------------------------------------
rig-up: ## start the embedded cluster (rig/up; builds it once)
	$(Q)rig/up
rig-down: ## stop the embedded cluster (rig/down)
	$(Q)rig/down
rig-status: ## show what of the embedded cluster runs (rig/status)
	$(Q)rig/status
test-integration: all ## shell tests on the rig's API Server (KD_IT_FILTER=)
	$(Q)BUILD=$(BUILD) tests/integration/run.sh

# Direct-channel benchmarks (bench/chan): delta round trip vs raw WebSocket echo, batched ops/s,
# handshake time with held objects. BENCH_CHAN_ARGS passes options (see bench/chan/chan.c).
bench-chan: $(BUILD)/bench/chan/chan ## channel benchmark: RTT, batched ops/s, handshake
	$(Q)$(BUILD)/bench/chan/chan $(BENCH_CHAN_ARGS)

# The main job (bench/ab): the embedded cluster plus the A/B comparison, both control-plane
# settings: scale-pods (N=), cold-burst (R=) and scale-funcs (K=) through kd-gateway, REPEATS=;
# report.json, summary and plots in the folder printed last.
ab: all ## A/B comparison: every scenario, both settings
	$(Q)N="$(N)" R="$(R)" K="$(K)" REPEATS="$(REPEATS)" BUILD=$(BUILD) bench/ab

# scale-pods, both arms in one run on the rig (bench/scale-pods/run.sh): N=50,200,500 (a list).
bench-scale-pods: all ## scale-pods 0 -> N on the rig, both arms (N=50,200,500)
	$(Q)N="$(N)" BUILD=$(BUILD) bench/scale-pods/run.sh

# lib/http's proxy hop on loopback (bench/http-proxy/run.sh): wrk direct vs through it, no rig.
bench-http-proxy: $(BUILD)/bench/http-proxy/http-proxy $(BUILD)/functions/hello ## lib/http proxy hop on loopback with wrk (no rig)
	$(Q)BUILD=$(BUILD) bench/http-proxy/run.sh

# cold-burst, both arms in one run on the rig (bench/cold-burst/run.sh): R concurrent first
# requests to a Service at zero through kd-activator vs Knative's activator, then the warm path.
bench-cold-burst: all ## first requests at zero, kd vs Knative (R=, REPEATS=)
	$(Q)R="$(R)" REPEATS="$(REPEATS)" BUILD=$(BUILD) bench/cold-burst/run.sh

# scale-funcs, both arms in one run on the rig (bench/scale-funcs/run.sh): K Services at zero, one
# first request each at once.
bench-scale-funcs: all ## K Services 0 -> 1 at once, kd vs Knative (K=, REPEATS=)
	$(Q)K="$(K)" REPEATS="$(REPEATS)" DOOR="$(DOOR)" BUILD=$(BUILD) bench/scale-funcs/run.sh

# trace, both arms in one run on the rig (bench/trace/run.sh): an Azure Functions trace replayed
# by bench/trace (build/bench/trace/trace) against one functions/sleep Service per trace function
# and arm, through kd-gateway; defaults: the 2019 example (TRACE=2021: the 2021 one), 4 functions,
# MINUTES=10 of trace time compressed COMPRESS=10 times, REPEATS=1; about 3 minutes.
bench-trace: all ## Azure trace replay, kd vs Knative (MINUTES=, REPEATS=)
	$(Q)TRACE="$(TRACE)" MINUTES="$(MINUTES)" COMPRESS="$(COMPRESS)" REPEATS="$(REPEATS)" \
		BUILD=$(BUILD) bench/trace/run.sh

# the vanilla arm's cold requests through Knative's activator, tuned and default control plane
# (bench/cold-request/run.sh; restarts the rig per setting): SEQ sequential + 10 concurrent.
bench-cold-request: all ## vanilla cold requests, both settings (SEQ=, REPEATS=)
	$(Q)SEQ="$(SEQ)" REPEATS="$(REPEATS)" BUILD=$(BUILD) bench/cold-request/run.sh

clean: ## remove build/ and build-san/
	rm -rf $(BUILD) $(BUILD)-san

help: ## list the targets and what they do
	@echo "Targets (make TARGET):"
	@sed -n 's/^\([a-zA-Z][a-zA-Z0-9_ -]*\):.* ## \(.*\)$$/\1\t\2/p' Makefile | \
		awk -F '\t' '{ printf "  %-20s %s\n", $$1, $$2 }'
	@echo "Variables:"
	@sed -n '/^# Variables:/,/^$$/p' Makefile | sed -e 's/^# Variables: /  /' -e 's/^#  */    /' -e '/^$$/d'

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
