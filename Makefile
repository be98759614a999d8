# rlhf.c — build, test, bench.
#   make            build/rlhf, build/librlhf.a and build/librlhf.so
#   make test       the whole test suite (ends with "N passed, N failed, N skipped")
#   make bench      benchmarks side by side with PyTorch (bench/run.sh; make bench-ctrl: control only)
#   make demo       the main job
#   make studies    every study's full version (rlhf study), then docs/findings.md (scripts/studies.sh)
#   make asan       everything built with AddressSanitizer + UBSan into build-asan/, then its tests
#   make fuzz       each loader's libFuzzer harness (fuzz/) for FUZZ_SECONDS (60) under ASan/UBSan
#   make BLAS=0     portable build without OpenBLAS (own gemm)

CC      ?= gcc
BUILD   ?= build
OPT     ?= -O3 -march=native
CFLAGS  ?= $(OPT) -g
CFLAGS  += -fPIC -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -fopenmp
# in-tree code sees the internal headers (src/); a program using librlhf needs
# only include/ (tests/public_api.c is built that way)
INCLUDES := -Iinclude -Isrc
# the library and the CLI are also checked for these (tests and fuzz harnesses are not)
SRC_WARN := -Wmissing-prototypes -Wshadow
LDLIBS  += -lcjson -lz -lm -fopenmp

BLAS ?= 1
OPENBLAS_OMP := /usr/lib/x86_64-linux-gnu/openblas-openmp
ifeq ($(BLAS),1)
  ifneq ($(wildcard $(OPENBLAS_OMP)/libopenblas.so),)
    # the OpenMP build of OpenBLAS: it shares our thread pool instead of fighting it
    CFLAGS += -DRLHF_USE_CBLAS -I/usr/include/x86_64-linux-gnu/openblas-openmp
    LDLIBS += -L$(OPENBLAS_OMP) -Wl,-rpath,$(OPENBLAS_OMP) -lopenblas
  else ifneq ($(wildcard /usr/include/cblas.h /usr/include/x86_64-linux-gnu/cblas.h),)
    CFLAGS += -DRLHF_USE_CBLAS
    LDLIBS += -lopenblas
  endif
endif

# control (src/ctrl/): MuJoCo locomotion and HDF5 datasets when Debian's libmujoco-dev and
# libhdf5-dev are installed (.ci/run installs them); without them those parts
# compile to a clear "built without ..." error. EXT_LIBS is linked everywhere (asan too).
EXT_LIBS :=
ifneq ($(wildcard /usr/include/mujoco/mujoco.h),)
  CFLAGS += -DRLHF_HAVE_MUJOCO
  EXT_LIBS += -lmujoco
endif
HDF5_INC := /usr/include/hdf5/serial
HDF5_LIB := /usr/lib/x86_64-linux-gnu/hdf5/serial
ifneq ($(wildcard $(HDF5_INC)/hdf5.h),)
  CFLAGS += -DRLHF_HAVE_HDF5 -I$(HDF5_INC)
  EXT_LIBS += -L$(HDF5_LIB) -Wl,-rpath,$(HDF5_LIB) -lhdf5
endif
# HTTP: libcurl for remote reward models and judges (reward/remote, reward/judge),
# libmicrohttpd for `rlhf serve` (src/serve/); without them those parts compile to
# a clear "built without ..." error
ifneq ($(wildcard /usr/include/x86_64-linux-gnu/curl/curl.h /usr/include/curl/curl.h),)
  CFLAGS += -DRLHF_HAVE_CURL
  EXT_LIBS += -lcurl
endif
ifneq ($(wildcard /usr/include/microhttpd.h),)
  CFLAGS += -DRLHF_HAVE_MHD
  EXT_LIBS += -lmicrohttpd
endif
LDLIBS += $(EXT_LIBS)

# one binary, three builds of the GEMM kernels (src/nn/gemm_isa.h): each of these files gets
# its own instruction-set flags (x86-64 only; elsewhere they compile to "not available"), and
# src/nn/gemm.c picks among them at run time. -mno-avx512f / -mno-avx keep the narrower
# builds honest on a -march=native build of a wider CPU.
ifneq ($(filter x86_64 i%86,$(shell uname -m)),)
  ISA_FLAGS_gemm_avx512  := -mavx512f -mavx512vl -mavx512dq -mavx512bw -mavx2 -mfma
  ISA_FLAGS_gemm_avx2    := -mavx2 -mfma -mno-avx512f
  ISA_FLAGS_gemm_generic := -mno-avx
endif

LIB_SRC  := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(BUILD)/src/cli/main.o
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/tools/%)
HDRS     := $(wildcard include/*.h src/*/*.h tests/*.h)
# the fuzz harnesses, replayed by `make test` over fuzz/corpus and fuzz/regress
FUZZ_TARGETS := $(patsubst fuzz/fuzz_%.c,%,$(wildcard fuzz/fuzz_*.c))
FUZZ_REPLAY  := $(FUZZ_TARGETS:%=$(BUILD)/tests/test_fuzz_%)

all: $(BUILD)/rlhf $(BUILD)/librlhf.a $(BUILD)/librlhf.so $(TEST_BIN) $(TOOL_BIN) $(FUZZ_REPLAY) $(BUILD)/tests/test_public_api

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(ISA_FLAGS_$(notdir $*)) $(INCLUDES) $(SRC_WARN) -c $< -o $@

$(BUILD)/librlhf.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

# the same objects (all -fPIC) as a shared library: the Python binding (python/rlhf) loads it
$(BUILD)/librlhf.so: $(LIB_OBJ)
	$(CC) -shared $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/rlhf: $(CLI_OBJ) $(BUILD)/librlhf.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/librlhf.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INCLUDES) $< $(BUILD)/librlhf.a -o $@ $(LDLIBS)

# the public API alone: <rlhf.h> from include/, nothing from src/
$(BUILD)/tests/test_public_api: tests/public_api.c tests/test.h $(BUILD)/librlhf.a $(wildcard include/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(OPT) -g -std=c11 -Wall -Wextra -pedantic -Iinclude $< $(BUILD)/librlhf.a -o $@ $(LDLIBS)

$(BUILD)/tests/tools/%: tests/tools/%.c $(BUILD)/librlhf.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INCLUDES) $< $(BUILD)/librlhf.a -o $@ $(LDLIBS)

$(BUILD)/tests/test_fuzz_%: fuzz/fuzz_%.c fuzz/replay_main.c $(BUILD)/librlhf.a $(HDRS) $(wildcard fuzz/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(INCLUDES) -I. -DFUZZ_TARGET='"$*"' $< fuzz/replay_main.c $(BUILD)/librlhf.a -o $@ $(LDLIBS)

# MPI (docs/mpi.md): $(BUILD)/rlhf-mpi is the same objects with dist.c compiled by mpicc
# -DRLHF_HAVE_MPI (Debian's libopenmpi-dev). MPI=auto (default) builds it when mpicc is
# there, MPI=1 requires it, MPI=0 never builds it; build/rlhf itself never links MPI.
MPI   ?= auto
MPICC ?= mpicc
ifneq ($(MPI),0)
  ifneq ($(shell command -v $(MPICC) 2>/dev/null),)
    MPI_BIN := $(BUILD)/rlhf-mpi
  else ifeq ($(MPI),1)
    $(error MPI=1: $(MPICC) not found (apt-get install libopenmpi-dev openmpi-bin))
  endif
endif
all: $(MPI_BIN)

$(BUILD)/src/base/dist_mpi.o: src/base/dist.c $(HDRS)
	@mkdir -p $(dir $@)
	OMPI_CC=$(CC) $(MPICC) $(CFLAGS) $(INCLUDES) $(SRC_WARN) -DRLHF_HAVE_MPI -c $< -o $@

$(BUILD)/rlhf-mpi: $(CLI_OBJ) $(filter-out $(BUILD)/src/base/dist.o,$(LIB_OBJ)) $(BUILD)/src/base/dist_mpi.o
	OMPI_CC=$(CC) $(MPICC) $(CFLAGS) $^ -o $@ $(LDLIBS)

# test tools that run under mpirun: dist_mpi.o ahead of the archive replaces dist.o
MPI_TOOLS := $(if $(MPI_BIN),$(BUILD)/tests/tools/mpizero_step-mpi)
all: $(MPI_TOOLS)
$(BUILD)/tests/tools/%-mpi: tests/tools/%.c $(BUILD)/librlhf.a $(BUILD)/src/base/dist_mpi.o $(HDRS)
	@mkdir -p $(dir $@)
	OMPI_CC=$(CC) $(MPICC) $(CFLAGS) $(INCLUDES) $< $(BUILD)/src/base/dist_mpi.o $(BUILD)/librlhf.a -o $@ $(LDLIBS)

test: all
	BUILD=$(BUILD) bash tests/run.sh

$(BUILD)/bench_tok: bench/bench_tok.c $(BUILD)/librlhf.a $(HDRS)
	$(CC) $(CFLAGS) $(INCLUDES) $< $(BUILD)/librlhf.a -o $@ $(LDLIBS)

bench: all $(BUILD)/bench_tok
	OMP_NUM_THREADS=1 $(BUILD)/bench_tok
	BUILD=$(BUILD) bash bench/run.sh
	$(MAKE) --no-print-directory bench-ctrl
	$(MAKE) --no-print-directory bench-serve
	$(MAKE) --no-print-directory bench-memory
	$(MAKE) --no-print-directory bench-bf16
	$(MAKE) --no-print-directory bench-lora
	$(MAKE) --no-print-directory bench-llama

# control: gradient updates/s beside PyTorch (SAC, CQL, IQL; 256-wide, batch 256,
# 2 and 3 layers), then environment steps/s of the MuJoCo tasks (random actions)
bench-ctrl: all
	BUILD=$(BUILD) OMP_NUM_THREADS=1 /usr/bin/python3 bench/ctrl_bench.py
	OMP_NUM_THREADS=1 $(BUILD)/tests/tools/ctrl_env_bench hopper halfcheetah walker2d

# serve: completion tokens/s of rlhf serve at 1, 8 and 32 concurrent clients on the GPT-2
# 124M config, beside llama.cpp's server when LLAMA_SERVER=/path/to/llama-server is set
bench-serve: all
	BUILD=$(BUILD) /usr/bin/python3 bench/serve_bench.py

# MPI: an SFT step at 1 process x 2 threads vs 2 processes x 1 thread, all-reduce bandwidth,
# the ring cost model for 8 / 64 nodes (docs/mpi_scaling.md)
bench-mpi: all
	BUILD=$(BUILD) /usr/bin/python3 bench/mpi_bench.py

# bf16 weights beside fp32: the Linear alone, decode at 1/4/16 rows, a prefill forward
bench-bf16: all
	BUILD=$(BUILD) /usr/bin/python3 bench/bf16_bench.py

# decoding (1 sequence, and batched) with fp32 / bf16 weights beside llama.cpp on our GGUF export
# of the same model, when LLAMA_BENCH=/path/to/llama-bench (LLAMA_BATCHED=llama-batched-bench) is set
bench-llama: all
	BUILD=$(BUILD) /usr/bin/python3 bench/llama_decode.py

# training steps: full vs LoRA (fp32 / bf16 base, checkpointing), speed and peak memory
bench-lora: all
	BUILD=$(BUILD) /usr/bin/python3 bench/lora_bench.py

# peak memory of training runs (full vs LoRA vs LoRA + checkpointing) beside their memory plans
bench-memory: all
	BUILD=$(BUILD) /usr/bin/python3 bench/memory_bench.py

demo: all
	BUILD=$(BUILD) bash scripts/demo.sh

# the README's Use example, every command as written, in $(BUILD)/readme (about 75 minutes)
readme: all
	BUILD=$(BUILD) bash scripts/readme.sh

# every study's full version (rlhf study NAME), then docs/findings.md
studies: all
	BUILD=$(BUILD) bash scripts/studies.sh

# -O2 -march=native: at -O1 the portable gemm is not vectorised and the suite's Python tests
# time out; -fno-sanitize-recover: undefined behaviour fails the test that hits it
# RLHF_SANITIZE=1 tells the long behaviour tests to take fewer steps (memory checks only)
asan:
	RLHF_SANITIZE=1 $(MAKE) BUILD=build-asan \
	        OPT="-O2 -march=native -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer" \
	        LDLIBS="-lcjson -lz -lm -fopenmp -fsanitize=address,undefined $(EXT_LIBS)" BLAS=0 test

# libFuzzer builds (Debian's clang) in FUZZ_BUILD; new corpus entries and
# crashes stay there. A crash, once fixed, goes to fuzz/regress/<target>/.
FUZZ_BUILD   ?= build-libfuzzer
FUZZ_SECONDS ?= 60
FUZZ_CC      ?= clang
FUZZ_CFLAGS  := -O1 -g -fno-omit-frame-pointer -fsanitize=address,undefined \
                -fno-sanitize-recover=undefined -std=c11 -D_GNU_SOURCE -Wall -Wextra \
                -Wno-unused-parameter -Wno-missing-field-initializers -Wno-pass-failed -fopenmp \
                -Iinclude -Isrc -I.
FUZZ_LIB_OBJ := $(LIB_SRC:%.c=$(FUZZ_BUILD)/%.o)

$(FUZZ_BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) $(ISA_FLAGS_$(notdir $*)) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/librlhf.a: $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_BUILD)/librlhf.a $(HDRS) $(wildcard fuzz/*.h)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $< $(FUZZ_BUILD)/librlhf.a -o $@ -lcjson -lz -lm $(EXT_LIBS)

fuzz: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/fuzz_%)
	@fail=""; for t in $(FUZZ_TARGETS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus/$$t $(FUZZ_BUILD)/crashes/$$t $(FUZZ_BUILD)/tmp; \
	    echo "== fuzz_$$t: $(FUZZ_SECONDS) s"; \
	    OMP_NUM_THREADS=1 FUZZ_TMPDIR=$(FUZZ_BUILD)/tmp $(FUZZ_BUILD)/fuzz_$$t -max_total_time=$(FUZZ_SECONDS) -timeout=20 \
	        -rss_limit_mb=2048 -print_final_stats=1 -dict=fuzz/fuzz.dict \
	        -artifact_prefix=$(FUZZ_BUILD)/crashes/$$t/ \
	        $(FUZZ_BUILD)/corpus/$$t fuzz/corpus/$$t $$(ls -d fuzz/regress/$$t 2>/dev/null) \
	        2>$(FUZZ_BUILD)/fuzz_$$t.log \
	        || { fail="$$fail $$t"; tail -n 40 $(FUZZ_BUILD)/fuzz_$$t.log; }; \
	    grep -E '^stat::number_of_executed_units|^Done' $(FUZZ_BUILD)/fuzz_$$t.log || true; \
	done; \
	if [ -n "$$fail" ]; then echo "fuzz: crashes in:$$fail (inputs in $(FUZZ_BUILD)/crashes/)"; exit 1; fi; \
	echo "fuzz: no crashes in $(FUZZ_TARGETS)"

format:
	clang-format -i include/*.h src/*/*.[ch] tests/*.[ch]

clean:
	rm -rf build build-asan build-fuzz build-libfuzzer

.PHONY: all test bench bench-llama bench-ctrl bench-mpi bench-serve bench-memory bench-bf16 bench-lora demo readme studies asan fuzz format clean
.SECONDARY:
