# stupidP2P - top-level GNU Makefile.
#
#   make                 p2pServer, libstupidp2p.a and p2pClient at the top
#   make test            builds and runs every test (installs CMocka if it can)
#   make bench           p2pBench, the load generator (scripts/bench.sh runs it)
#   make SANITIZE=address,undefined test   the same under sanitizers, built in
#                        build/san-*/ so the normal build is left alone
#   make install         p2pServer, p2pClient, libstupidp2p.a, the headers,
#                        the man pages and stupidp2p.pc under
#                        $(DESTDIR)$(PREFIX) (default /usr/local)
#   make uninstall       removes exactly what install put there
#   make clean
#
# CC/CXX/CFLAGS/CXXFLAGS/LDFLAGS/PREFIX/DESTDIR may be overridden. Objects are
# rebuilt when the flags change (build/.../flags).

comma := ,
# The project's one version, for the server, the library and the .pc file.
VERSION  := $(shell cat VERSION)
CC       ?= cc
CXX      ?= g++
AR       ?= ar
PYTHON   ?= python3

WARN      := -Wall -Wextra -Werror -Wshadow
CWARN     := $(WARN) -Wconversion
CXXWARN   := $(WARN) -Wconversion -Wold-style-cast
OPT       ?= -O2 -g
CPPFLAGS  += -Isrc/common -Iinclude -MMD -MP -DP2P_VERSION=\"$(VERSION)\"
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
UNIT_SRC    := $(wildcard test/unit/*.cpp) $(wildcard test/unit/*.c) $(wildcard test/unit/relay/test_*.cpp)
INTEG_SRC   := $(wildcard test/integration/*.c)
FUZZERS     := codec relay nats client
CLIENTT_SRC := $(wildcard test/client/*.c)

obj = $(patsubst %,$(BUILD)/%.o,$(1))
COMMON_OBJ  := $(call obj,$(COMMON_SRC))
# libstupidp2p.a takes the shared codec and the AUTH crypto (sha256,
# hmac_sha256, auth_proof: the client authenticates with them); their p2p_*
# names are allowed in test/client/lib_symbols.sh. Test programs that link
# the library also get whatever else src/common holds (CRYPTO_OBJ, for
# test/support).
LIB_COMMON_OBJ := $(call obj,src/common/codec.c src/common/sha256.c src/common/hmac_sha256.c \
                             src/common/direct_proof.c \
                             src/common/auth_proof.c)
CRYPTO_OBJ  := $(filter-out $(LIB_COMMON_OBJ),$(COMMON_OBJ))
SERVER_OBJ  := $(call obj,$(SERVER_SRC))
CLIENT_OBJ  := $(call obj,$(CLIENT_SRC))
CLI_OBJ     := $(call obj,$(CLI_SRC))
SUPPORT_OBJ := $(call obj,$(SUPPORT_SRC))

SERVER  := $(OUT)/p2pServer
CLIENT  := $(OUT)/p2pClient
LIBP2P  := $(OUT)/libstupidp2p.a

UNIT_BIN    := $(patsubst test/unit/%,$(BUILD)/test/unit/%,$(basename $(UNIT_SRC)))
INTEG_BIN   := $(patsubst test/integration/%.c,$(BUILD)/test/integration/%,$(INTEG_SRC))
CLIENTT_BIN := $(patsubst test/client/%.c,$(BUILD)/test/client/%,$(CLIENTT_SRC))
FUZZ_REPLAY_BIN := $(patsubst %,$(BUILD)/test/fuzz/fuzz_%,$(FUZZERS))
TEST_BIN    := $(UNIT_BIN) $(INTEG_BIN) $(CLIENTT_BIN) $(FUZZ_REPLAY_BIN)

ALL := $(SERVER)
ifneq ($(CLIENT_SRC),)
ALL += $(LIBP2P)
endif
ifneq ($(CLI_SRC),)
ALL += $(CLIENT)
endif

.PHONY: all test test-deps tests clean install uninstall fuzz
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

$(LIBP2P): $(CLIENT_OBJ) $(LIB_COMMON_OBJ)
	@mkdir -p $(@D)
	rm -f $@
	$(AR) rcs $@ $^

$(CLIENT): $(CLI_OBJ) $(LIBP2P)
	@mkdir -p $(@D)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ -lpthread

# Unit tests link only the modules they test (UNIT_LINK_<test>), so that a
# module reaching for one it must not know (the loop for the relay, the ring
# for the log, ...) breaks the build of its test. Integration tests link
# only the test support code and drive the real binary.
sobj = $(patsubst %,$(BUILD)/src/server/%.cpp.o,$(1))
cobj = $(patsubst %,$(BUILD)/src/common/%.c.o,$(1))
UNIT_LINK_test_ring_buffer    := $(call sobj,ring_buffer)
UNIT_LINK_test_id_table       := $(call sobj,hash os_random)
UNIT_LINK_test_intrusive_list :=
UNIT_LINK_test_fixed_pool     := $(call sobj,fixed_pool)
UNIT_LINK_test_event_loop     := $(call sobj,event_loop poller io log)
UNIT_LINK_test_frame_codec    := $(call sobj,frame_reader ring_buffer) $(call cobj,codec)
UNIT_LINK_test_codec          := $(call cobj,codec)
UNIT_LINK_test_sha256         := $(call cobj,sha256 hmac_sha256)
UNIT_LINK_test_auth_proof     := $(call cobj,auth_proof sha256 hmac_sha256 codec)
UNIT_LINK_test_direct         := $(call cobj,direct_proof sha256 hmac_sha256 codec)
UNIT_LINK_test_io             := $(call sobj,io)
UNIT_LDFLAGS_test_io          := -Wl,--wrap=readv,--wrap=sendmsg,--wrap=accept4
UNIT_LINK_test_options        := $(call sobj,options log nats_url cluster_wire nats_protocol) $(call cobj,codec)
UNIT_LINK_test_auth_table     := $(call sobj,auth_table auth_file base64url hash os_random io log) \
                                 $(call cobj,auth_proof sha256 hmac_sha256)
UNIT_LINK_test_listener       := $(call sobj,listener io)
UNIT_LINK_test_devices        := $(call sobj,devices fixed_pool hash os_random)
UNIT_LINK_test_log            := $(call sobj,log)
UNIT_LINK_test_nats_protocol  := $(call sobj,nats_protocol)
UNIT_LINK_test_nats_url       := $(call sobj,nats_url)
UNIT_LINK_test_cluster_wire   := $(call sobj,cluster_wire nats_protocol) $(call cobj,codec)
UNIT_LINK_test_cluster_view   := $(call sobj,cluster_view cluster_wire nats_protocol hash os_random) $(call cobj,codec)
# The link against real nats-server processes (test/support/nats_cluster.c)
# and fake servers in a thread of the test.
UNIT_LINK_test_nats_link      := $(call sobj,nats_link nats_protocol nats_url io \
                                   event_loop poller log ring_buffer hash os_random) \
                                 $(BUILD)/test/support/nats_cluster.c.o $(BUILD)/test/support/child.c.o
UNIT_LDFLAGS_test_nats_link   := -pthread
# The relay's tests (test/unit/relay/, one file per command) share a
# fake session, relay_world.h.
RELAY_TEST_LINK := $(call sobj,relay relay_auth relay_cluster relay_direct auth_table base64url devices fixed_pool close_reason hash os_random log) \
                   $(call cobj,codec auth_proof sha256 hmac_sha256)
# The connection's tests run the real relay over socketpairs.
UNIT_LINK_test_connection     := $(call sobj,connection event_loop poller io ring_buffer \
                                   frame_reader) $(RELAY_TEST_LINK)

.SECONDEXPANSION:
$(BUILD)/test/unit/%: $(BUILD)/test/unit/%.cpp.o $$(UNIT_LINK_$$(notdir $$*))
	$(CXX) $(TEST_CXXFLAGS) $(LDFLAGS) $(UNIT_LDFLAGS_$(notdir $*)) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/test/unit/%: $(BUILD)/test/unit/%.c.o $$(UNIT_LINK_$$(notdir $$*))
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/test/unit/relay/%: $(BUILD)/test/unit/relay/%.cpp.o $(RELAY_TEST_LINK)
	$(CXX) $(TEST_CXXFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS)

$(BUILD)/test/integration/%: $(BUILD)/test/integration/%.c.o $(SUPPORT_OBJ) $(COMMON_OBJ)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) -lpthread

$(BUILD)/test/client/%: $(BUILD)/test/client/%.c.o $(SUPPORT_OBJ) $(CRYPTO_OBJ) $(LIBP2P)
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

UNIT_LINK_test_bench_seq := $(BUILD)/test/bench/bench_seq.c.o
UNIT_LINK_test_bench_buf := $(BUILD)/test/bench/bench_buf.c.o

# Each fuzzing harness (test/fuzz/) linked with replay.c instead of
# libFuzzer: `make test` feeds it every input of its checked-in corpus
# (test/fuzz/corpus/NAME/, found from the program's name).
FUZZ_LINK_codec := $(call cobj,codec)
FUZZ_LINK_relay := $(RELAY_TEST_LINK)
# The NATS harness feeds a real cluster room too (relay and link included).
FUZZ_LINK_nats  := $(call sobj,nats_protocol cluster_wire cluster cluster_view nats_link nats_url \
                     event_loop poller io ring_buffer) $(RELAY_TEST_LINK)
# The client's harness includes the library's one source file (its engine
# is static functions) and links what the library takes from src/common;
# connect(2) is wrapped (see fuzz_client.c).
FUZZ_LINK_client := $(LIB_COMMON_OBJ)
FUZZ_LDFLAGS_client := -Wl,--wrap=connect -lpthread
$(BUILD)/test/fuzz/replay.c.o: CPPFLAGS += -DFUZZ_CORPUS_ROOT=\"$(abspath test/fuzz/corpus)\"

$(BUILD)/test/fuzz/fuzz_codec: $(BUILD)/test/fuzz/fuzz_codec.c.o $(BUILD)/test/fuzz/replay.c.o $(FUZZ_LINK_codec)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $^

$(BUILD)/test/fuzz/fuzz_relay: $(BUILD)/test/fuzz/fuzz_relay.cpp.o $(BUILD)/test/fuzz/replay.c.o $(FUZZ_LINK_relay)
	$(CXX) $(TEST_CXXFLAGS) $(LDFLAGS) -o $@ $^

$(BUILD)/test/fuzz/fuzz_nats: $(BUILD)/test/fuzz/fuzz_nats.cpp.o $(BUILD)/test/fuzz/replay.c.o $(FUZZ_LINK_nats)
	$(CXX) $(TEST_CXXFLAGS) $(LDFLAGS) -o $@ $^

$(BUILD)/test/fuzz/fuzz_client: $(BUILD)/test/fuzz/fuzz_client.c.o $(BUILD)/test/fuzz/replay.c.o $(FUZZ_LINK_client)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $^ $(FUZZ_LDFLAGS_client)

# The NAT test bed's device (test/natbed/*.sh run it in network namespaces;
# scripts/natbed-figures.sh too).
NATPEER := $(BUILD)/test/natbed/natpeer
$(NATPEER): $(BUILD)/test/natbed/natpeer.c.o $(LIBP2P)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $^ -lpthread

# The soak's load generator (scripts/soak.sh builds and runs it).
$(BUILD)/test/soak/soak: $(BUILD)/test/soak/soak.c.o $(COMMON_OBJ)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $^

# The cross-relay soak (scripts/cluster-soak.sh) starts its own NATS
# servers and relays with the integration tests' support code.
$(BUILD)/test/soak/cluster_soak: $(BUILD)/test/soak/cluster_soak.c.o $(SUPPORT_OBJ) $(COMMON_OBJ)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) -lpthread

# The cross-relay benchmark's load generator (scripts/cluster-bench.sh).
$(BUILD)/test/cluster/cluster_bench: $(BUILD)/test/cluster/cluster_bench.c.o $(SUPPORT_OBJ) $(COMMON_OBJ)
	$(CC) $(TEST_CFLAGS) $(LDFLAGS) -o $@ $^ $(CMOCKA_LIBS) -lpthread

# Objects of test programs are kept, so that a second `make test` relinks
# and recompiles nothing when nothing changed.
.SECONDARY:

# ---- test ------------------------------------------------------------------
test-deps:
	@sh scripts/ensure-test-deps.sh

tests: $(ALL) $(TEST_BIN) $(BENCH) $(NATPEER)

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

# ---- fuzzing ---------------------------------------------------------------
# `make fuzz [FUZZ_SECONDS=N]` builds each harness of test/fuzz/ with
# clang's libFuzzer, ASan and UBSan in build/fuzz/ and runs it for N seconds
# (default 60) on its checked-in corpus; what it finds new is kept in
# build/fuzz/corpus-NAME/ (copy inputs worth keeping into
# test/fuzz/corpus/NAME/), a crash in build/fuzz/crash-*.
FUZZ_CC      ?= clang
FUZZ_CXX     ?= clang++
FUZZ_SECONDS ?= 60
FUZZ_BUILD   := build/fuzz
FUZZ_FLAGS   := -g -O1 -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all -MMD -MP \
                -D_GNU_SOURCE -Isrc/common -Isrc/server -Iinclude -DP2P_VERSION=\"$(VERSION)\"
fuzz_objs = $(patsubst %,$(FUZZ_BUILD)/%.o,$(1))
FUZZ_BIN_codec := $(call fuzz_objs,test/fuzz/fuzz_codec.c src/common/codec.c)
FUZZ_BIN_relay := $(call fuzz_objs,test/fuzz/fuzz_relay.cpp \
                    $(patsubst $(BUILD)/%.o,%,$(RELAY_TEST_LINK)))
FUZZ_BIN_nats  := $(call fuzz_objs,test/fuzz/fuzz_nats.cpp \
                    $(patsubst $(BUILD)/%.o,%,$(FUZZ_LINK_nats)))
FUZZ_BIN_client := $(call fuzz_objs,test/fuzz/fuzz_client.c \
                    $(patsubst $(BUILD)/%.o,%,$(FUZZ_LINK_client)))
$(FUZZ_BUILD)/test/fuzz/fuzz_client.c.o: FUZZ_FLAGS += -Isrc/client/lib

$(FUZZ_BUILD)/%.c.o: %.c $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(FUZZ_CC) $(FUZZ_FLAGS) -std=c11 -c -o $@ $<

$(FUZZ_BUILD)/%.cpp.o: %.cpp $(FLAGS_FILE)
	@mkdir -p $(@D)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -std=c++20 -fno-exceptions -fno-rtti -c -o $@ $<

$(FUZZ_BUILD)/fuzz_%: $$(FUZZ_BIN_$$*)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -o $@ $^ $(FUZZ_LDFLAGS_$*)

fuzz: $(patsubst %,$(FUZZ_BUILD)/fuzz_%,$(FUZZERS))
	@for f in $(FUZZERS); do \
	    mkdir -p $(FUZZ_BUILD)/corpus-$$f && \
	    echo "== fuzz_$$f for $(FUZZ_SECONDS) s" && \
	    $(FUZZ_BUILD)/fuzz_$$f -max_total_time=$(FUZZ_SECONDS) -print_final_stats=1 \
	        -artifact_prefix=$(FUZZ_BUILD)/ $(FUZZ_BUILD)/corpus-$$f test/fuzz/corpus/$$f \
	        2>$(FUZZ_BUILD)/fuzz_$$f.log || { tail -n 40 $(FUZZ_BUILD)/fuzz_$$f.log; exit 1; }; \
	    grep -E 'DONE|stat::number_of_executed_units' \
	        $(FUZZ_BUILD)/fuzz_$$f.log; \
	done

# ---- install ---------------------------------------------------------------
PREFIX     ?= /usr/local
BINDIR     ?= $(PREFIX)/bin
LIBDIR     ?= $(PREFIX)/lib
INCLUDEDIR ?= $(PREFIX)/include
MANDIR     ?= $(PREFIX)/share/man
PCDIR      ?= $(LIBDIR)/pkgconfig
INSTALL    ?= install
MAN_PAGES  := $(wildcard man/*.[0-9])
HEADERS    := include/stupidp2p.h include/stupidP2P.h
PC_FILE    := $(BUILD)/stupidp2p.pc

$(PC_FILE): scripts/stupidp2p.pc.in VERSION $(FLAGS_FILE)
	@mkdir -p $(@D)
	sed -e 's|@PREFIX@|$(PREFIX)|' -e 's|@LIBDIR@|$(LIBDIR)|' \
	    -e 's|@INCLUDEDIR@|$(INCLUDEDIR)|' -e 's|@VERSION@|$(VERSION)|' $< > $@

# Every file install writes, so that uninstall removes exactly these.
INSTALLED := $(addprefix $(DESTDIR)$(BINDIR)/,p2pServer p2pClient) \
             $(DESTDIR)$(LIBDIR)/libstupidp2p.a \
             $(addprefix $(DESTDIR)$(INCLUDEDIR)/,$(notdir $(HEADERS))) \
             $(foreach m,$(MAN_PAGES),$(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m))) \
             $(DESTDIR)$(PCDIR)/stupidp2p.pc

install: $(SERVER) $(CLIENT) $(LIBP2P) $(PC_FILE)
	$(INSTALL) -d $(DESTDIR)$(BINDIR) $(DESTDIR)$(LIBDIR) $(DESTDIR)$(INCLUDEDIR) $(DESTDIR)$(PCDIR)
	$(INSTALL) -m 755 $(SERVER) $(CLIENT) $(DESTDIR)$(BINDIR)/
	$(INSTALL) -m 644 $(LIBP2P) $(DESTDIR)$(LIBDIR)/
	$(INSTALL) -m 644 $(HEADERS) $(DESTDIR)$(INCLUDEDIR)/
	$(foreach m,$(MAN_PAGES),$(INSTALL) -d $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m))) && \
	    sed 's/^\.Os stupidP2P$$/.Os stupidP2P $(VERSION)/' $(m) \
	        > $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)) && \
	    chmod 644 $(DESTDIR)$(MANDIR)/man$(subst .,,$(suffix $(m)))/$(notdir $(m)) &&) true
	$(INSTALL) -m 644 $(PC_FILE) $(DESTDIR)$(PCDIR)/

uninstall:
	rm -f $(INSTALLED)

-include $(shell find build -name '*.d' 2>/dev/null)
