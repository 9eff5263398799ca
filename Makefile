# mmgpt: `make` builds, `make run` runs the main job, `make test` runs every test,
# `make test-asan` runs the fast tests under AddressSanitizer + UBSan.
# Sources are found by wildcard: add a .c under src/ and it is built; add tests/test_NAME.c and it is a test.

CC       ?= cc
BUILD    ?= build
OPT      ?= -O2
SAN      ?=
CFLAGS   := -std=c17 $(OPT) -g -Wall -Wextra -Werror -fopenmp -D_GNU_SOURCE -Isrc -Iinclude -MMD -MP $(SAN) $(EXTRA_CFLAGS)
# OpenBLAS built for OpenMP (Debian's openblas-openmp) shares our OpenMP thread pool; the pthread
# build spins its own threads against ours and ran the forward pass 1.7x slower (bench/forward).
ARCH     := $(shell gcc -print-multiarch 2>/dev/null)
BLAS_DIR := $(firstword $(wildcard /usr/lib/$(ARCH)/openblas-openmp /usr/lib/$(ARCH)/openblas-pthread))
BLAS_INC := $(firstword $(wildcard /usr/include/$(ARCH)/openblas-openmp /usr/include/$(ARCH)/openblas-pthread /usr/include/openblas))
ifneq ($(BLAS_INC),)
CFLAGS   += -I$(BLAS_INC)
endif
comma    := ,
BLAS_LIB := $(if $(BLAS_DIR),-L$(BLAS_DIR) -Wl$(comma)-rpath$(comma)$(BLAS_DIR)) -lopenblas
LDLIBS   := $(BLAS_LIB) -lmicrohttpd -ljson-c -ljpeg -lpng -lwebpdemux -lwebp -lgif -lz -lm -lpthread -fopenmp $(SAN)

# The CUDA backend (src/kernels/cuda/*.cu) is built when nvcc is found; `make NVCC=` builds without it
# (src/kernels/ops_cuda_stub.c then answers "no device"). The binary links the static CUDA runtime and
# cuBLASLt, never libcuda: without a driver it starts, finds no device and runs on the CPU.
NVCC     ?= $(shell command -v nvcc 2>/dev/null || ls /usr/local/cuda/bin/nvcc 2>/dev/null)
# nvcc may be a wrapper script outside its toolkit (/usr/local/bin/nvcc exec-ing /usr/local/cuda-13.0/bin/nvcc):
# nvcc itself says where its toolkit is (TOP in its dry run), and the libraries are looked for there.
ifneq ($(strip $(NVCC)),)
CUDA_HOME := $(realpath $(or $(shell $(NVCC) --dryrun -c -x cu /dev/null -o /dev/null 2>&1 | sed -n 's/^\#\$$ TOP=//p'),$(patsubst %/bin/nvcc,%,$(NVCC))))
CUDA_LIBDIR := $(patsubst %/,%,$(dir $(firstword $(wildcard $(CUDA_HOME)/lib64/libcublasLt.so $(CUDA_HOME)/targets/x86_64-linux/lib/libcublasLt.so))))
ifeq ($(CUDA_LIBDIR),)
$(warning nvcc $(NVCC) found, but no libcublasLt.so under $(CUDA_HOME): building for the CPU only)
override NVCC :=
endif
endif
ifneq ($(strip $(NVCC)),)
# sm_80 (A100) and sm_90 (H100/H200) machine code; no PTX, which would only grow the binary.
CUDA_ARCH ?= -gencode arch=compute_80,code=sm_80 -gencode arch=compute_90,code=sm_90
NVFLAGS  := -std=c++20 $(OPT) -g -Isrc $(CUDA_ARCH) --Werror all-warnings -Xcompiler -Wall,-Wextra,-Werror -MMD -MP $(EXTRA_NVFLAGS)
CUDA_SRC := $(sort $(wildcard src/kernels/cuda/*.cu))
CUDA_OBJ := $(CUDA_SRC:%.cu=$(BUILD)/%.o)
EXCLUDE  += src/kernels/ops_cuda_stub.c
LDLIBS_CUDA := -L$(CUDA_LIBDIR) -Wl,-rpath,$(CUDA_LIBDIR) -lcublasLt -lcudart_static -ldl -lrt -lstdc++
CUDA_STATE := yes (nvcc $(NVCC), sm_80 + sm_90)
else
CUDA_OBJ :=
LDLIBS_CUDA :=
CUDA_STATE := no (no nvcc with cuBLASLt; CPU build)
endif
LIB_SRC  := $(filter-out $(EXCLUDE),$(shell find src -name '*.c' ! -path 'src/cli/*' | sort))
CLI_SRC  := $(sort $(wildcard src/cli/*.c))
LIB_OBJ  := $(LIB_SRC:%.c=$(BUILD)/%.o) $(CUDA_OBJ)
LDLIBS   += $(LDLIBS_CUDA)
CLI_OBJ  := $(CLI_SRC:%.c=$(BUILD)/%.o)
TEST_SRC := $(sort $(wildcard tests/test_*.c))
TEST_BIN := $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)
BENCH_SRC:= $(sort $(wildcard bench/*.c))
BENCH_BIN:= $(BENCH_SRC:bench/%.c=$(BUILD)/bench/%)
# Tests too slow for the sanitizer build (list by name without .c); test_install links the installed
# shared library into a program built without the sanitizers, so it runs in the plain build only.
SLOW_TESTS ?= test_demo test_install
FAST_BIN := $(filter-out $(SLOW_TESTS:%=$(BUILD)/tests/%),$(TEST_BIN))

# What `make install` installs besides the binary and libmmgpt.a (see install below).
PREFIX   ?= /usr/local
LIBDIR   ?= $(PREFIX)/lib
VERSION  := $(shell sed -n 's/.*MMGPT_VERSION_STRING "\(.*\)"/\1/p' include/mmgpt.h)
SO_MAJOR := $(firstword $(subst ., ,$(VERSION)))
SO_NAME  := libmmgpt.so.$(SO_MAJOR)
PIC_OBJ  := $(LIB_SRC:%.c=$(BUILD)/pic/%.o) $(CUDA_SRC:%.cu=$(BUILD)/pic/%.o)
INSTALL_BUILT := $(BUILD)/libmmgpt.so.$(VERSION) $(BUILD)/mmgpt.1 $(BUILD)/mmgpt.bash

.PHONY: all setup run test test-asan bench fixtures clean install uninstall
all: $(BUILD)/mmgpt $(BUILD)/synth $(TEST_BIN) $(BENCH_BIN) $(INSTALL_BUILT)

setup:
	@bash tools/setup.sh
	@echo "build: cc=$(CC) blas=$(or $(BLAS_DIR),system) openmp=yes cuda=$(CUDA_STATE)"

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -c $< -o $@

# The chat page is built into the binary (.incbin in server.c).
$(BUILD)/src/serve/server.o: web/index.html

$(BUILD)/libmmgpt.a: $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/mmgpt: $(CLI_OBJ) $(BUILD)/libmmgpt.a
	$(CC) $(CFLAGS) -o $@ $(CLI_OBJ) $(BUILD)/libmmgpt.a $(LDLIBS) -ledit

# The synthetic data generator of the demo model (tools/train-demo.sh).
$(BUILD)/synth: tools/synth.c
	@mkdir -p $(BUILD)
	$(CC) $(CFLAGS) -o $@ $< -lpng

$(BUILD)/tests/%: tests/%.c $(BUILD)/libmmgpt.a tests/testutil.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -Itests -o $@ $< $(BUILD)/libmmgpt.a $(LDLIBS) -lcmocka

$(BUILD)/bench/%: bench/%.c $(BUILD)/libmmgpt.a
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libmmgpt.a $(LDLIBS)

# The public API's example (examples/chat_image.c), built against the static library; test_api runs it.
EXAMPLE_BIN := $(BUILD)/examples/chat_image
$(EXAMPLE_BIN): examples/chat_image.c $(BUILD)/libmmgpt.a include/mmgpt.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(BUILD)/libmmgpt.a $(LDLIBS)
$(BUILD)/tests/test_api: $(EXAMPLE_BIN)

# `make install PREFIX=/usr/local DESTDIR=`: the binary, libmmgpt.so (soname libmmgpt.so.MAJOR) and libmmgpt.a,
# include/mmgpt.h, mmgpt.pc, the man page and bash completion (both generated from the --help texts by
# tools/gen-docs.sh, so they say what the binary says). The shared library is built from a second set of
# objects compiled with -fPIC ($(BUILD)/pic), so the static library and the binary stay as they are; a version
# script exports only the API's mmgpt_* symbols from it.
$(BUILD)/pic/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -fPIC -c $< -o $@
$(BUILD)/pic/%.o: %.cu
	@mkdir -p $(dir $@)
	$(NVCC) $(NVFLAGS) -Xcompiler -fPIC -c $< -o $@
$(BUILD)/pic/src/serve/server.o: web/index.html
$(BUILD)/libmmgpt.so.$(VERSION): $(PIC_OBJ) src/api/mmgpt.map
	$(CC) $(CFLAGS) -shared -Wl,-soname,$(SO_NAME) -Wl,--version-script=src/api/mmgpt.map -o $@ $(PIC_OBJ) $(LDLIBS)
$(BUILD)/mmgpt.1: $(BUILD)/mmgpt tools/gen-docs.sh
	bash tools/gen-docs.sh man $(BUILD)/mmgpt $(VERSION) > $@.tmp && mv $@.tmp $@
$(BUILD)/mmgpt.bash: $(BUILD)/mmgpt tools/gen-docs.sh
	bash tools/gen-docs.sh completion $(BUILD)/mmgpt $(VERSION) > $@.tmp && mv $@.tmp $@

install: $(BUILD)/mmgpt $(BUILD)/libmmgpt.a $(INSTALL_BUILT)
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR)/pkgconfig $(DESTDIR)$(PREFIX)/include \
	  $(DESTDIR)$(PREFIX)/share/man/man1 $(DESTDIR)$(PREFIX)/share/bash-completion/completions
	install -m 755 $(BUILD)/mmgpt $(DESTDIR)$(PREFIX)/bin/mmgpt
	install -m 755 $(BUILD)/libmmgpt.so.$(VERSION) $(DESTDIR)$(LIBDIR)/libmmgpt.so.$(VERSION)
	ln -sf libmmgpt.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SO_NAME)
	ln -sf $(SO_NAME) $(DESTDIR)$(LIBDIR)/libmmgpt.so
	install -m 644 $(BUILD)/libmmgpt.a $(DESTDIR)$(LIBDIR)/libmmgpt.a
	install -m 644 include/mmgpt.h $(DESTDIR)$(PREFIX)/include/mmgpt.h
	@# mmgpt.pc is written here, as it names the PREFIX and LIBDIR of this install.
	printf '%s\n' 'prefix=$(PREFIX)' 'libdir=$(LIBDIR)' 'includedir=$${prefix}/include' '' 'Name: mmgpt' \
	  'Description: Multimodal-GPT (OpenFlamingo + LoRA) in C: chat about images, fine-tune' 'Version: $(VERSION)' \
	  'Libs: -L$${libdir} -lmmgpt' 'Libs.private: $(strip $(LDLIBS))' 'Cflags: -I$${includedir}' \
	  > $(DESTDIR)$(LIBDIR)/pkgconfig/mmgpt.pc
	install -m 644 $(BUILD)/mmgpt.1 $(DESTDIR)$(PREFIX)/share/man/man1/mmgpt.1
	install -m 644 $(BUILD)/mmgpt.bash $(DESTDIR)$(PREFIX)/share/bash-completion/completions/mmgpt

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/bin/mmgpt $(DESTDIR)$(LIBDIR)/libmmgpt.so.$(VERSION) $(DESTDIR)$(LIBDIR)/$(SO_NAME) \
	  $(DESTDIR)$(LIBDIR)/libmmgpt.so $(DESTDIR)$(LIBDIR)/libmmgpt.a $(DESTDIR)$(PREFIX)/include/mmgpt.h \
	  $(DESTDIR)$(LIBDIR)/pkgconfig/mmgpt.pc $(DESTDIR)$(PREFIX)/share/man/man1/mmgpt.1 \
	  $(DESTDIR)$(PREFIX)/share/bash-completion/completions/mmgpt

run: setup
	@$(MAKE) --no-print-directory $(BUILD)/mmgpt
	@bash tools/run-demo.sh $(BUILD)/mmgpt

test:
	@bash tools/setup.sh --test
	@$(MAKE) --no-print-directory $(BUILD)/mmgpt $(BUILD)/synth $(TEST_BIN) $(INSTALL_BUILT)
	@MMGPT=$(BUILD)/mmgpt bash tests/run.sh $(TEST_BIN)

test-asan: setup
	@$(MAKE) --no-print-directory BUILD=build-asan OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all" build-asan/mmgpt build-asan/synth $(FAST_BIN:$(BUILD)/%=build-asan/%)
	@ASAN_OPTIONS=detect_leaks=1 MMGPT=build-asan/mmgpt bash tests/run.sh $(FAST_BIN:$(BUILD)/%=build-asan/%)

bench: $(BENCH_BIN)

# Regenerates committed fixtures with the PyTorch/Python references (needs python3-torch etc.).
fixtures:
	@bash tools/setup.sh --fixtures
	@for s in tests/ref/*.py; do echo "== $$s"; /usr/bin/python3 $$s || exit 1; done

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD) build-asan -name '*.d' 2>/dev/null | sort -u)

# libFuzzer run of the restricted unpickler / torch .pt reader: `make fuzz-pickle FUZZ_TIME=180`. New inputs go
# to build/fuzz_pickle_corpus; the committed seeds in tests/fixtures/torch_pt/fuzz_corpus stay untouched.
# clang-14 has no _Float16 on x86, so the fuzz build maps it to __fp16 (conversions from compiler-rt).
FUZZ_CC   ?= clang-14
FUZZ_TIME ?= 60
FUZZ_SRC  := tools/fuzz_pickle.c src/io/pickle.c src/io/zip.c src/io/torch_pt.c src/io/file.c src/base/err.c src/base/dtype.c src/base/quant.c src/base/cpu.c
.PHONY: fuzz-pickle
fuzz-pickle: $(BUILD)/fuzz_pickle
	@mkdir -p $(BUILD)/fuzz_pickle_corpus
	$(BUILD)/fuzz_pickle -artifact_prefix=$(BUILD)/ -max_total_time=$(FUZZ_TIME) -max_len=65536 -timeout=10 -rss_limit_mb=2048 $(BUILD)/fuzz_pickle_corpus tests/fixtures/torch_pt/fuzz_corpus
$(BUILD)/fuzz_pickle: $(FUZZ_SRC) src/io/pickle.h src/io/zip.h src/io/torch_pt.h
	@mkdir -p $(BUILD)
	$(FUZZ_CC) -std=c17 -g -O1 -D_GNU_SOURCE -Isrc -D_Float16=__fp16 -rtlib=compiler-rt -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $(FUZZ_SRC) -lz

# libFuzzer run of the safetensors and GGUF header parsers: `make fuzz-weights FUZZ_TIME=180`. New inputs go to
# build/fuzz_weights_corpus; the committed seeds in tests/fixtures/gguf/fuzz_corpus stay untouched.
FUZZ_W_SRC := tools/fuzz_weights.c src/io/gguf.c src/io/safetensors.c src/io/file.c src/base/err.c src/base/dtype.c src/base/quant.c src/base/cpu.c
.PHONY: fuzz-weights
fuzz-weights: $(BUILD)/fuzz_weights
	@mkdir -p $(BUILD)/fuzz_weights_corpus
	$(BUILD)/fuzz_weights -artifact_prefix=$(BUILD)/ -max_total_time=$(FUZZ_TIME) -max_len=65536 -timeout=10 -rss_limit_mb=2048 $(BUILD)/fuzz_weights_corpus tests/fixtures/gguf/fuzz_corpus
$(BUILD)/fuzz_weights: $(FUZZ_W_SRC) src/io/gguf.h src/io/safetensors.h
	@mkdir -p $(BUILD)
	$(FUZZ_CC) -std=c17 -g -O1 -D_GNU_SOURCE -Isrc -D_Float16=__fp16 -rtlib=compiler-rt -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $(FUZZ_W_SRC) -ljson-c

# libFuzzer run of the JPEG/PNG/WebP/GIF decoders + CLIP preprocessing: `make fuzz-image FUZZ_TIME=180`. New inputs go to
# build/fuzz_image_corpus; the committed seeds in tests/fixtures/vision/fuzz_corpus stay untouched.
FUZZ_IMG_SRC := tools/fuzz_image.c $(wildcard src/vision/*.c) src/io/file.c src/base/err.c
.PHONY: fuzz-image
fuzz-image: $(BUILD)/fuzz_image
	@mkdir -p $(BUILD)/fuzz_image_corpus
	$(BUILD)/fuzz_image -artifact_prefix=$(BUILD)/ -max_total_time=$(FUZZ_TIME) -max_len=65536 -timeout=10 -rss_limit_mb=2048 $(BUILD)/fuzz_image_corpus tests/fixtures/vision/fuzz_corpus
$(BUILD)/fuzz_image: $(FUZZ_IMG_SRC) $(wildcard src/vision/*.h)
	@mkdir -p $(BUILD)
	$(FUZZ_CC) -std=c17 -g -O1 -D_GNU_SOURCE -Isrc -rtlib=compiler-rt -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $(FUZZ_IMG_SRC) -ljpeg -lpng -lwebpdemux -lwebp -lgif -lz -lm

# libFuzzer run of the tokenizer loaders (tokenizer.model protobuf, tokenizer.json) and of encode/decode/streaming
# on arbitrary bytes: `make fuzz-tokenizer FUZZ_TIME=180` (from the repository root: it loads a committed model).
FUZZ_TOK_SRC := tools/fuzz_tokenizer.c $(wildcard src/text/tok*.c) src/text/spm_proto.c src/io/json.c src/io/file.c src/io/gguf.c src/base/err.c src/base/dtype.c src/base/quant.c src/base/cpu.c
.PHONY: fuzz-tokenizer
fuzz-tokenizer: $(BUILD)/fuzz_tokenizer
	@mkdir -p $(BUILD)/fuzz_tokenizer_corpus
	$(BUILD)/fuzz_tokenizer -artifact_prefix=$(BUILD)/ -max_total_time=$(FUZZ_TIME) -max_len=65536 -timeout=10 -rss_limit_mb=2048 $(BUILD)/fuzz_tokenizer_corpus tests/fixtures/tokenizer/fuzz_corpus
$(BUILD)/fuzz_tokenizer: $(FUZZ_TOK_SRC) $(wildcard src/text/*.h)
	@mkdir -p $(BUILD)
	$(FUZZ_CC) -std=c17 -g -O1 -D_GNU_SOURCE -Isrc -D_Float16=__fp16 -rtlib=compiler-rt -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -o $@ $(FUZZ_TOK_SRC) -ljson-c
