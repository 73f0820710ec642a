# nominal — one Makefile for the library, the CLI, tests and benchmarks.
#
#   make            library (static + shared) and the `nominal` CLI in build/
#   make test       unit + golden + integration tests (needs ../shared)
#   make check      the same tests built with ASan + UBSan (in build-asan/)
#   make bench      benchmarks (not tests): prints ms/image etc.
#   make install PREFIX=/usr/local
#   make deps       install missing Debian packages (scripts/deps.sh)

PREFIX  ?= /usr/local
BUILD   ?= build
SHARED  ?= $(abspath ../shared)
# Reference data is the same for every build flavour: make it once.
FIXTURES ?= $(abspath build/fixtures)

CC      ?= gcc
OPT     ?= -O2
SAN     ?=
CFLAGS_BASE = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
              -Wall -Wextra -Werror -fPIC -fopenmp -g $(OPT) $(SAN)
INCLUDES = -Iinclude -Isrc -I$(BUILD)/gen
LIBS     = -ldnnl -lprotobuf-c -lturbojpeg -lpng -lcjson -lopenblas -lcivetweb -lm -fopenmp

ONNX_PROTO ?= /usr/include/onnx/onnx.proto

LIB_SRC  = $(sort $(filter-out src/cli/%,$(wildcard src/*/*.c)))
CLI_SRC  = $(sort $(wildcard src/cli/*.c))
TEST_SRC = $(sort $(wildcard tests/test_*.c))
TEST_SH  = $(sort $(wildcard tests/test_*.sh))

GEN_C    = $(BUILD)/gen/onnx/onnx.pb-c.c
GEN_H    = $(BUILD)/gen/onnx/onnx.pb-c.h
LIB_OBJ  = $(LIB_SRC:%.c=$(BUILD)/obj/%.o) $(BUILD)/obj/gen/onnx.pb-c.o
CLI_OBJ  = $(CLI_SRC:%.c=$(BUILD)/obj/%.o)
TESTS    = $(TEST_SRC:tests/%.c=$(BUILD)/tests/%)

STATIC   = $(BUILD)/libnominal.a
SHLIB    = $(BUILD)/libnominal.so
BIN      = $(BUILD)/nominal

.PHONY: all test check bench install uninstall clean deps fixtures

all: $(STATIC) $(SHLIB) $(BIN)

deps:
	@scripts/deps.sh --test

# The protobuf code is generated from the onnx.proto Debian ships, never
# hand-written or committed.
$(GEN_C) $(GEN_H): $(ONNX_PROTO)
	@mkdir -p $(BUILD)/gen/onnx
	protoc-c --proto_path=$(dir $(ONNX_PROTO)) --c_out=$(BUILD)/gen/onnx $(ONNX_PROTO)

$(BUILD)/obj/gen/onnx.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -fPIC -g $(OPT) $(SAN) -I$(BUILD)/gen/onnx -c $< -o $@

$(BUILD)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(INCLUDES) -MMD -MP -c $< -o $@

$(STATIC): $(LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(SHLIB): $(LIB_OBJ)
	$(CC) -shared -Wl,-soname,libnominal.so.0 $(SAN) -o $@ $^ $(LIBS)

$(BIN): $(CLI_OBJ) $(STATIC)
	$(CC) $(SAN) -o $@ $(CLI_OBJ) $(STATIC) $(LIBS)

$(BUILD)/tests/%: tests/%.c $(STATIC) tests/test_util.h
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS_BASE) $(INCLUDES) -Itests -o $@ $< $(STATIC) $(LIBS) -lcmocka

# Reference data made at test time by Debian's torch / PIL (never committed).
fixtures: $(BIN)
	@BUILD=$(BUILD) SHARED=$(SHARED) FIXTURES=$(FIXTURES) tests/tools/make_fixtures.sh

test: all $(TESTS) fixtures
	@BUILD=$(BUILD) SHARED=$(SHARED) FIXTURES=$(FIXTURES) tests/run.sh $(TESTS) $(TEST_SH)

# Same suite under AddressSanitizer + UndefinedBehaviorSanitizer.
check:
	$(MAKE) BUILD=build-asan OPT=-O1 \
	    SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" test

bench: all
	@BUILD=$(BUILD) SHARED=$(SHARED) bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/lib $(DESTDIR)$(PREFIX)/include \
	    $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 644 $(STATIC) $(DESTDIR)$(PREFIX)/lib/
	install -m 755 $(SHLIB) $(DESTDIR)$(PREFIX)/lib/libnominal.so.0
	ln -sf libnominal.so.0 $(DESTDIR)$(PREFIX)/lib/libnominal.so
	install -m 644 include/nominal.h $(DESTDIR)$(PREFIX)/include/
	install -m 755 $(BIN) $(DESTDIR)$(PREFIX)/bin/
	sed -e 's|@PREFIX@|$(PREFIX)|g' -e 's|@VERSION@|$(shell sed -n 's/^#define NM_VERSION_STRING "\(.*\)"/\1/p' include/nominal.h)|g' \
	    nominal.pc.in > $(DESTDIR)$(PREFIX)/lib/pkgconfig/nominal.pc

uninstall:
	rm -f $(DESTDIR)$(PREFIX)/lib/libnominal.a $(DESTDIR)$(PREFIX)/lib/libnominal.so* \
	    $(DESTDIR)$(PREFIX)/include/nominal.h $(DESTDIR)$(PREFIX)/bin/nominal \
	    $(DESTDIR)$(PREFIX)/lib/pkgconfig/nominal.pc

clean:
	rm -rf build build-asan

-include $(shell find $(BUILD)/obj -name '*.d' 2>/dev/null)

# ----------------------------------------------------------- robustness
#
#   make fuzz FUZZ_SECONDS=N   build the libFuzzer targets fuzz/fuzz_*.c with
#                              clang + ASan + UBSan into build-fuzz/, make the
#                              seed corpora (fuzz/make_corpus.sh), run each
#                              target N seconds and print runs, edges, corpus
#                              size and crashes per target
#   make fuzz-build            only build them
#   make valgrind              memcheck on the CLI (small fit + predict on
#                              bottle) and on a few unit test binaries
#
# The fuzz build is serial: clang's -fopenmp=libgomp links the libgomp that
# oneDNN and OpenBLAS use but ignores the parallel pragmas, which is what a
# fuzzer wants (one thread, reproducible). Variables used only inside those
# pragmas (num_threads(threads)) then look unused, hence
# -Wno-unused-variable -Wno-unused-parameter there.
FUZZ_BUILD   ?= build-fuzz
FUZZ_CC      ?= clang
FUZZ_SECONDS ?= 60
FUZZ_SAN      = -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
FUZZ_CFLAGS   = -std=c11 -D_POSIX_C_SOURCE=200809L -D_DEFAULT_SOURCE \
                -Wall -Wextra -Werror -Wno-unused-variable -Wno-unused-parameter \
                -g -O1 -fopenmp=libgomp $(FUZZ_SAN)
FUZZ_SRC      = $(sort $(wildcard fuzz/fuzz_*.c))
FUZZ_BINS     = $(FUZZ_SRC:fuzz/%.c=$(FUZZ_BUILD)/%)
FUZZ_LIB_OBJ  = $(LIB_SRC:%.c=$(FUZZ_BUILD)/obj/%.o) $(FUZZ_BUILD)/obj/gen/onnx.pb-c.o
FUZZ_LIB      = $(FUZZ_BUILD)/libnominal-fuzz.a

.PHONY: fuzz fuzz-build valgrind

$(FUZZ_BUILD)/obj/gen/onnx.pb-c.o: $(GEN_C)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) -std=c11 -g -O1 $(FUZZ_SAN) -fsanitize=fuzzer-no-link -I$(BUILD)/gen/onnx -c $< -o $@

$(FUZZ_BUILD)/obj/%.o: %.c $(GEN_H)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link $(INCLUDES) -MMD -MP -c $< -o $@

$(FUZZ_LIB): $(FUZZ_LIB_OBJ)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: fuzz/fuzz_%.c $(FUZZ_LIB) $(wildcard fuzz/*.h)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer $(INCLUDES) -Ifuzz -o $@ $< $(FUZZ_LIB) \
	    $(filter-out -fopenmp,$(LIBS)) -fopenmp=libgomp

fuzz-build: $(FUZZ_BINS)

fuzz: fuzz-build $(BIN)
	@FUZZ_BUILD=$(FUZZ_BUILD) NOMINAL=$(BIN) fuzz/make_corpus.sh
	@FUZZ_BUILD=$(FUZZ_BUILD) FUZZ_SECONDS=$(FUZZ_SECONDS) fuzz/run.sh $(FUZZ_BINS)

valgrind: all $(TESTS)
	@BUILD=$(BUILD) SHARED=$(SHARED) FIXTURES=$(FIXTURES) tests/valgrind.sh

-include $(shell find $(FUZZ_BUILD)/obj -name '*.d' 2>/dev/null)
