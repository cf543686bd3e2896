# stupidP2P - top-level GNU Makefile.
#
#   make                 p2pServer, libstupidp2p.a and p2pClient at the top
#   make test            builds and runs every test (installs CMocka if it can)
#   make bench           p2pBench, the load generator (scripts/bench.sh runs it)
#   make SANITIZE=address,undefined test   the same under sanitizers, built in
#                        build/san-*/ so the normal build is left alone
#   make clean
#
# CC/CXX/CFLAGS/CXXFLAGS/LDFLAGS/PREFIX/DESTDIR may be overridden. Objects are
# rebuilt when the flags change (build/.../flags).

comma := ,
CC       ?= cc
CXX      ?= g++
AR       ?= ar
PYTHON   ?= python3

WARN      := -Wall -Wextra -Werror -Wshadow
CWARN     := $(WARN) -Wconversion
CXXWARN   := $(WARN) -Wconversion -Wold-style-cast
OPT       ?= -O2 -g
CPPFLAGS  += -Isrc/common -Iinclude -MMD -MP
CFLAGS    ?= $(OPT)
CXXFLAGS  ?= $(OPT)
CFLAGS    += -std=c11 -D_GNU_SOURCE $(CWARN)
CXXFLAGS  += -std=c++20 -D_GNU_SOURCE $(CXXWARN) -fno-exceptions -fno-rtti
# Tests are C too, but built without -Wconversion: assertions on byte
# buffers are clearer without a cast in every line.
TEST_CFLAGS := -std=c11 -D_GNU_SOURCE $(WARN) $(OPT)
TEST_CXXFLAGS := -std=c++20 -D_GNU_SOURCE $(CXXWARN) $(OPT) -fno-rtti

ifeq ($(SANITIZE),)
BUILD     := build
OUT       := .
# The server carries its C++ runtime inside: ldd lists only libc and friends.
SERVER_LDFLAGS := -static-libstdc++ -static-libgcc
else
BUILD     := build/san-$(subst $(comma),-,$(SANITIZE))
OUT       := $(BUILD)
SANFLAGS  := -fsanitize=$(SANITIZE) -fno-omit-frame-pointer -fno-sanitize-recover=all
CFLAGS    += $(SANFLAGS)
CXXFLAGS  += $(SANFLAGS)
TEST_CFLAGS += $(SANFLAGS)
TEST_CXXFLAGS += $(SANFLAGS)
LDFLAGS   += $(SANFLAGS)
SERVER_LDFLAGS :=
endif

CMOCKA_CFLAGS = $(shell pkg-config --cflags cmocka 2>/dev/null)
CMOCKA_LIBS   = $(shell pkg-config --libs cmocka 2>/dev/null || echo -lcmocka)

# ---- sources ---------------------------------------------------------------
COMMON_SRC  := $(wildcard src/common/*.c)
SERVER_SRC  := $(wildcard src/server/*.cpp)
CLIENT_SRC  := $(wildcard src/client/lib/*.c)
CLI_SRC     := $(wildcard src/client/cli/*.c)
SUPPORT_SRC := $(wildcard test/support/*.c)
UNIT_SRC    := $(wildcard test/unit/*.cpp) $(wildcard test/unit/*.c)
INTEG_SRC   := $(wildcard test/integration/*.c)
CLIENTT_SRC := $(wildcard test/client/*.c)

obj = $(patsubst %,$(BUILD)/%.o,$(1))
COMMON_OBJ  := $(call obj,$(COMMON_SRC))
SERVER_OBJ  := $(call obj,$(SERVER_SRC))
SERVER_LIBOBJ := $(filter-out $(BUILD)/src/server/main.cpp.o,$(SERVER_OBJ))
CLIENT_OBJ  := $(call obj,$(CLIENT_SRC))
CLI_OBJ     := $(call obj,$(CLI_SRC))
SUPPORT_OBJ := $(call obj,$(SUPPORT_SRC))

SERVER  := $(OUT)/p2pServer
CLIENT  := $(OUT)/p2pClient
LIBP2P  := $(OUT)/libstupidp2p.a

UNIT_BIN    := $(patsubst test/unit/%,$(BUILD)/test/unit/%,$(basename $(UNIT_SRC)))
INTEG_BIN   := $(patsubst test/integration/%.c,$(BUILD)/test/integration/%,$(INTEG_SRC))
CLIENTT_BIN := $(patsubst test/client/%.c,$(BUILD)/test/client/%,$(CLIENTT_SRC))
TEST_BIN    := $(UNIT_BIN) $(INTEG_BIN) $(CLIENTT_BIN)

ALL := $(SERVER)
ifneq ($(CLIENT_SRC),)
ALL += $(LIBP2P)
endif
ifneq ($(CLI_SRC),)
ALL += $(CLIENT)
endif

.PHONY: all test test-deps tests clean
.DEFAULT_GOAL := all
all: $(ALL)

# ---- flag tracking: objects depend on a file that changes with the flags ---
FLAGS_FILE := $(BUILD)/flags
FLAGS_NOW  := $(CC) $(CPPFLAGS) $(CFLAGS) | $(CXX) $(CXXFLAGS) | $(LDFLAGS) | $(TEST_CFLAGS) | $(TEST_CXXFLAGS)
$(shell mkdir -p $(BUILD) && { [ -f $(FLAGS_FILE) ] && [ "$$(cat $(FLAGS_FILE))" = '$(FLAGS_NOW)' ] || echo '$(FLAGS_NOW)' > $(FLAGS_FILE); })

# ---- compile ---------------------------------------------------------------
$(BUILD)/src/%.c.o: src/%.c $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BUILD)/src/%.cpp.o: src/%.cpp $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) -Isrc/server $(CXXFLAGS) -c -o $@ $<

$(BUILD)/test/%.c.o: test/%.c $(FLAGS_FILE) | test-deps
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) -Itest/support -Isrc/client/lib $(CMOCKA_CFLAGS) $(TEST_CFLAGS) -c -o $@ $<

$(BUILD)/test/%.cpp.o: test/%.cpp $(FLAGS_FILE) | test-deps
	@mkdir -p $(@D)
	$(CXX) $(CPPFLAGS) -Isrc/server -Itest/support $(CMOCKA_CFLAGS) $(TEST_CXXFLAGS) -c -o $@ $<

# ---- link ------------------------------------------------------------------
$(SERVER): $(SERVER_OBJ) $(COMMON_OBJ)
	@mkdir -p $(@D)
	$(CXX) $(CXXFLAGS) $(LDFLAGS) $(SERVER_LDFLAGS) -o $@ $^

$(LIBP2P): $(CLIENT_OBJ) $(COMMON_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(CLIENT): $(CLI_OBJ) $(LIBP2P)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpthread

# Unit tests link the real server modules (not main) and no sockets code
# they do not use; integration tests link only the test support code and
# drive the real binary.
$(BUILD)/test/unit/%: $(BUILD)/test/unit/%.cpp.o $(SERVER_LIBOBJ) $(COMMON_OBJ)
	$(CXX) $(TEST_CXXFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/test/unit/%: $(BUILD)/test/unit/%.c.o $(COMMON_OBJ)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/test/integration/%: $(BUILD)/test/integration/%.c.o $(SUPPORT_OBJ) $(COMMON_OBJ)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) -lpthread

$(BUILD)/test/client/%: $(BUILD)/test/client/%.c.o $(SUPPORT_OBJ) $(LIBP2P)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) -lpthread

# ---- bench: p2pBench, the load generator (test/bench/) ------------------------
# Built with the product's flags (-Wconversion), not the tests' ones. The
# unit test of its sequence check links that one object.
BENCH_SRC := $(wildcard test/bench/*.c)
BENCH_OBJ := $(call obj,$(BENCH_SRC))
BENCH     := $(OUT)/p2pBench

.PHONY: bench
bench: $(BENCH) $(SERVER)

$(BUILD)/test/bench/%.c.o: test/bench/%.c $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(CC) $(CPPFLAGS) $(CFLAGS) -c -o $@ $<

$(BENCH): $(BENCH_OBJ) $(COMMON_OBJ)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^

$(BUILD)/test/unit/test_bench_seq: $(BUILD)/test/bench/bench_seq.c.o
$(BUILD)/test/unit/test_bench_buf: $(BUILD)/test/bench/bench_buf.c.o

# ---- test ------------------------------------------------------------------
test-deps:
	@sh scripts/ensure-test-deps.sh

tests: $(ALL) $(TEST_BIN) $(BENCH)

# The build under `make test` runs in parallel (JOBS, default: every core).
JOBS ?= $(shell nproc 2>/dev/null || echo 2)
test: test-deps
	@$(MAKE) --no-print-directory -j$(JOBS) tests
	@P2P_SERVER=$(abspath $(SERVER)) P2P_CLIENT=$(abspath $(CLIENT)) \
	  P2P_LIB=$(abspath $(LIBP2P)) P2P_BUILD=$(abspath $(BUILD)) \
	  P2P_BENCH=$(abspath $(BENCH)) \
	  CC="$(CC)" PYTHON="$(PYTHON)" SANITIZE="$(SANITIZE)" \
	  sh scripts/run-tests.sh $(TEST_BIN)

clean:
	rm -rf build p2pServer p2pClient libstupidp2p.a p2pBench

-include $(shell find build -name '*.d' 2>/dev/null)
