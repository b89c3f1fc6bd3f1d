# vib3 — weight-indexed MoE inference engine.
#
#   make              build build/vib3 (host ISA kernels selected at run time)
#   make deps         install the Debian packages the build and tests need (idempotent)
#   make test         build and run every test; last line "N passed, N failed[, N skipped]"
#   make fuzz         libFuzzer run of every fuzz target for FUZZ_SECONDS each
#   make bench        kernel / model benchmarks (long; not part of test)
#   make CUDA=1       add the cuda/ tier (nvcc from /usr/local/cuda)
#   make SAN=1        ASan + UBSan build (into build-san/ unless BUILD is given)
#   make BUILD=dir    out-of-tree build directory (default build/)
#
# Sources are found by wildcard: a new file in src/<layer>/, simd/, hnsw/ or
# vendor/ is built without editing this file; tests/<module>/test_*.c each
# become one test binary, tests/<module>/test_*.sh are run by the runner.

SAN   ?= 0
CUDA  ?= 0
ifeq ($(SAN),1)
BUILD ?= build-san
else
BUILD ?= build
endif

CC      ?= cc
ARCH    := $(shell $(CC) -dumpmachine | cut -d- -f1)
CUDA_HOME ?= /usr/local/cuda
NVCC    ?= $(CUDA_HOME)/bin/nvcc

WARN    := -Wall -Wextra -Werror -Wno-unused-parameter
CFLAGS  ?= -O2 -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -pthread $(WARN) -I. -Isrc -MMD -MP -fno-strict-aliasing
LDLIBS  := -luring -lsleef -lxxhash -lpcre2-8 -lmicrohttpd -lcurl -lm -lpthread -ldl

ifeq ($(SAN),1)
CFLAGS  += -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -DVIB3_DEBUG=1
LDFLAGS += -fsanitize=address,undefined
endif

# ---- sources ---------------------------------------------------------------
CLI_MAIN := src/cli/main.c
LIB_SRC  := $(filter-out $(CLI_MAIN),$(wildcard src/*/*.c)) $(wildcard hnsw/*.c) $(wildcard vendor/*.c)

# simd/: one file per ISA, each compiled with its own flags (ggml's layout).
ifeq ($(ARCH),x86_64)
SIMD_SRC := $(filter-out %_neon.c,$(wildcard simd/*.c))
else ifeq ($(ARCH),aarch64)
SIMD_SRC := $(filter-out %_avx2.c %_avx512.c,$(wildcard simd/*.c))
else
SIMD_SRC := $(filter-out %_neon.c %_avx2.c %_avx512.c,$(wildcard simd/*.c))
endif
LIB_SRC  += $(SIMD_SRC)
# EXCLUDE="src/x/a.c ..." leaves files out (e.g. a colleague's half-written file)
LIB_SRC  := $(filter-out $(EXCLUDE),$(LIB_SRC))

FLAGS_avx2   := -mavx2 -mfma -mf16c
FLAGS_avx512 := -mavx512f -mavx512bw -mavx512vl -mavx512dq -mavx512vnni -mavx2 -mfma -mf16c
FLAGS_neon   := -march=armv8.2-a+dotprod+fp16

ifeq ($(CUDA),1)
CFLAGS   += -DVIB3_CUDA=1 -I$(CUDA_HOME)/include
CU_SRC   := $(wildcard cuda/*.cu)
CU_OBJ   := $(patsubst %.cu,$(BUILD)/obj/%.cu.o,$(CU_SRC))
LDLIBS   += -L$(CUDA_HOME)/lib64 -Wl,-rpath,$(CUDA_HOME)/lib64 -lcudart -lstdc++
NVCCFLAGS ?= -O2 -std=c++17 -Isrc -I. -arch=sm_80 -gencode=arch=compute_80,code=sm_80 -gencode=arch=compute_90,code=sm_90 -Xcompiler -fPIC
endif

LIB_OBJ  := $(patsubst %.c,$(BUILD)/obj/%.o,$(LIB_SRC)) $(CU_OBJ)
LIB      := $(BUILD)/libvib3.a
BIN      := $(BUILD)/vib3

TEST_SRC := $(filter-out $(EXCLUDE),$(wildcard tests/*/test_*.c))
TEST_BIN := $(patsubst tests/%.c,$(BUILD)/tests/%,$(TEST_SRC))
TEST_SUPPORT := $(BUILD)/obj/tests/harness.o
TEST_TOOL_SRC := $(wildcard tests/tools/*.c)
TEST_TOOLS := $(patsubst tests/tools/%.c,$(BUILD)/tools/%,$(TEST_TOOL_SRC))

FUZZ_SRC := $(filter-out fuzz/standalone.c,$(wildcard fuzz/fuzz_*.c))
FUZZ_REPLAY := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%_replay,$(FUZZ_SRC))
FUZZ_BIN := $(patsubst fuzz/%.c,$(BUILD)/fuzz/%,$(FUZZ_SRC))
FUZZ_SECONDS ?= 60
FUZZ_CC     ?= clang

.PHONY: all deps test fuzz fuzz-build bench clean neon-test tests-build demo
all: $(BIN)

# ---- rules -----------------------------------------------------------------
$(BUILD)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(FLAGS_$(lastword $(subst _, ,$(basename $(notdir $<))))) -c $< -o $@

$(BUILD)/obj/%.cu.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVCCFLAGS) -MMD -MP -MF $(@:.o=.d) -c $< -o $@

$(LIB): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BIN): $(BUILD)/obj/$(CLI_MAIN:.c=.o) $(LIB)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/obj/tests/%.o $(TEST_SUPPORT) $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(TEST_SUPPORT) $(LIB) $(LDLIBS)

$(BUILD)/tools/%: $(BUILD)/obj/tests/tools/%.o $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $< $(LIB) $(LDLIBS)

# Replay builds of the fuzz harnesses: same code, a plain main() that feeds
# every file of the corpus and of fuzz/regressions/ (lz4's ossfuzz layout).
$(BUILD)/fuzz/%_replay: fuzz/%.c fuzz/standalone.c $(LIB)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< fuzz/standalone.c $(LIB) $(LDFLAGS) $(LDLIBS)

# with clang, the fuzz corpus is replayed through the ASan+UBSan libFuzzer builds
HAVE_CLANG := $(shell command -v $(FUZZ_CC) >/dev/null 2>&1 && echo 1)
tests-build: $(BIN) $(TEST_BIN) $(TEST_TOOLS) $(FUZZ_REPLAY) $(if $(HAVE_CLANG),$(FUZZ_BIN))

test: deps
	@$(MAKE) --no-print-directory tests-build
	@BUILD=$(BUILD) sh tests/run.sh

# The README's first command: install packages, build, convert the bundled
# model (models/tinymix-brown, BF16 safetensors) and generate from it.
DEMO_MODEL := models/tinymix.vib3
$(DEMO_MODEL): $(BIN) $(wildcard models/tinymix-brown/*)
	$(BIN) convert --model models/tinymix-brown --output $@ --quant q4
demo: deps
	@$(MAKE) --no-print-directory $(DEMO_MODEL)
	$(BIN) info $(DEMO_MODEL)
	$(BIN) run $(DEMO_MODEL) "In the beginning God created" -n 48 --stats

# ---- fuzzing (clang + libFuzzer, ASan, UBSan) -------------------------------
FUZZ_FLAGS  := -g -O1 -std=c11 -D_GNU_SOURCE -pthread -I. -Isrc -fsanitize=fuzzer,address,undefined \
               -DFUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION=1 -Wno-unused-command-line-argument
FUZZ_LIBSRC := $(filter-out %_avx2.c %_avx512.c %_neon.c,$(LIB_SRC))
FUZZ_OBJ    := $(patsubst %.c,$(BUILD)/fuzzobj/%.o,$(FUZZ_LIBSRC))
FUZZ_LIB    := $(BUILD)/libvib3-fuzz.a
$(BUILD)/fuzzobj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -DVIB3_SIMD_SCALAR_ONLY=1 -c $< -o $@
$(FUZZ_LIB): $(FUZZ_OBJ)
	@rm -f $@
	ar rcs $@ $^
$(BUILD)/fuzz/%: fuzz/%.c $(FUZZ_LIB)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -DVIB3_SIMD_SCALAR_ONLY=1 -o $@ $< $(FUZZ_LIB) $(LDLIBS)

fuzz-build: $(FUZZ_BIN)
fuzz: fuzz-build
	@for f in $(FUZZ_BIN); do t=$$(basename $$f); \
	  mkdir -p $(BUILD)/fuzz-corpus/$$t; \
	  echo "== $$t for $(FUZZ_SECONDS)s"; \
	  $$f -max_total_time=$(FUZZ_SECONDS) -dict=fuzz/vib3.dict -artifact_prefix=fuzz/regressions/$$t- \
	      $(BUILD)/fuzz-corpus/$$t fuzz/corpus/$$t 2>&1 | tail -n 3; done

# ---- NEON: cross-compile the kernel tests and run them under qemu ----------
neon-test:
	@sh tests/simd/neon.sh

bench: $(BIN)
	@sh bench/run.sh

deps:
	@sh tools/deps.sh

clean:
	rm -rf $(BUILD)

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ---- install / uninstall ------------------------------------------------------
# make install [PREFIX=/usr/local] [DESTDIR=]: $(PREFIX)/bin/vib3 and the default settings in
# $(PREFIX)/share/vib3/vib3.conf (read-only defaults, FHS-style; an administrator overrides them in
# /etc/vib3/vib3.conf or $(PREFIX)/etc/vib3/vib3.conf, a user in ~/.config/vib3/vib3.conf). The
# binary finds share/vib3 relative to itself, so a DESTDIR or tarball install works where it lands.
PREFIX  ?= /usr/local
DESTDIR ?=
install: $(BIN)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/share/vib3
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/vib3
	install -m 644 conf/vib3.conf $(DESTDIR)$(PREFIX)/share/vib3/vib3.conf
	install -d $(DESTDIR)$(PREFIX)/share/vib3/models/tinymix-brown
	install -m 644 models/tinymix-brown/* $(DESTDIR)$(PREFIX)/share/vib3/models/tinymix-brown/
	sed 's#local:\.\./models/#local:models/#' conf/models.conf > $(DESTDIR)$(PREFIX)/share/vib3/models.conf
uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/vib3 $(DESTDIR)$(PREFIX)/share/vib3/vib3.conf $(DESTDIR)$(PREFIX)/share/vib3/models.conf
	rm -rf $(DESTDIR)$(PREFIX)/share/vib3/models/tinymix-brown
	-rmdir $(DESTDIR)$(PREFIX)/share/vib3/models 2>/dev/null || true
	-rmdir $(DESTDIR)$(PREFIX)/share/vib3 2>/dev/null || true
.PHONY: install uninstall
