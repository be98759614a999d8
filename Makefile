# rlhf.c — build, test, bench.
#   make            build/rlhf and build/librlhf.a
#   make test       the whole test suite (ends with "N passed, N failed, N skipped")
#   make bench      benchmarks side by side with PyTorch (bench/run.sh)
#   make demo       the main job
#   make asan       everything built with AddressSanitizer + UBSan into build-asan/, then its tests
#   make BLAS=0     portable build without OpenBLAS (own gemm)

CC      ?= gcc
BUILD   ?= build
OPT     ?= -O3 -march=native
CFLAGS  ?= $(OPT) -g
CFLAGS  += -std=c11 -D_GNU_SOURCE -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers -fopenmp -Iinclude -Isrc
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

LIB_SRC  := $(filter-out src/cli/main.c,$(wildcard src/*/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o)
CLI_OBJ  := $(BUILD)/src/cli/main.o
TEST_SRC := $(wildcard tests/test_*.c)
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
TOOL_SRC := $(wildcard tests/tools/*.c)
TOOL_BIN := $(TOOL_SRC:tests/tools/%.c=$(BUILD)/tests/tools/%)
HDRS     := $(wildcard include/*.h src/*/*.h tests/*.h)

all: $(BUILD)/rlhf $(BUILD)/librlhf.a $(TEST_BIN) $(TOOL_BIN)

$(BUILD)/%.o: %.c $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/librlhf.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/rlhf: $(CLI_OBJ) $(BUILD)/librlhf.a
	$(CC) $(CFLAGS) $^ -o $@ $(LDLIBS)

$(BUILD)/tests/%: tests/%.c $(BUILD)/librlhf.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/librlhf.a -o $@ $(LDLIBS)

$(BUILD)/tests/tools/%: tests/tools/%.c $(BUILD)/librlhf.a $(HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $< $(BUILD)/librlhf.a -o $@ $(LDLIBS)

test: all
	BUILD=$(BUILD) bash tests/run.sh

$(BUILD)/bench_tok: bench/bench_tok.c $(BUILD)/librlhf.a $(HDRS)
	$(CC) $(CFLAGS) $< $(BUILD)/librlhf.a -o $@ $(LDLIBS)

bench: all $(BUILD)/bench_tok
	OMP_NUM_THREADS=1 $(BUILD)/bench_tok
	BUILD=$(BUILD) bash bench/run.sh

demo: all
	BUILD=$(BUILD) bash scripts/demo.sh

asan:
	$(MAKE) BUILD=build-asan OPT="-O1 -fsanitize=address,undefined -fno-omit-frame-pointer" \
	        LDLIBS="-lcjson -lz -lm -fopenmp -fsanitize=address,undefined" BLAS=0 test

format:
	clang-format -i include/*.h src/*/*.[ch] tests/*.[ch]

clean:
	rm -rf build build-asan

.PHONY: all test bench demo asan format clean
.SECONDARY:
