// test_connection.cpp - unit tests for src/server/connection.{h,cpp} with
// the real event loop and relay, over socketpairs: what the connection does
// with its buffers when the relay, or another connection, acts inside a
// frame (issue 10, finding 5), and when the memory budget evicts it.
//
//  - A v2 command byte of 0x80 or above closes the connection from inside
//    the relay's frame handler. The input ring must stay whole while the
//    relay runs (the observer checks that the frame is still in it when the
//    relay returns) and end empty and freed: before the reshape the ring
//    was released inside close() and then consumed by the caller, leaving
//    its size at 4294967290.
//  - A REGISTER whose payload straddles the input ring's wrap is handed to
//    the relay in the shared scratch buffer; when it takes the id over from
//    a connection that still has unread input, closing that connection must
//    not read that input into the scratch buffer while the relay is still
//    inside the frame. A FrameObserver copies every payload before the
//    relay sees it and compares it afterwards.
//  - At the memory limit the connection with the largest output is evicted:
//    its peer receives whole frames, then BYE 3, then the end; a subscriber
//    that reads loses nothing.
//
// Each test drives the loop iteration by iteration from its Hooks, bounded
// by the loop's tick (at most kMaxTicks) and a watchdog alarm.
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "codec.h"
#include "connection.h"
#include "log.h"
#include "protocol.h"
#include "relay.h"
#include "watchdog.h"

// CMocka last: it defines fail() and friends as macros. Its 1.1 header has
// no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

namespace {

const HashKey kKey{0x0123456789ABCDEFull, 0xFEDCBA9876543210ull};
constexpr int kMaxTicks = 40;  // 10 s of 250 ms ticks

// Copies each payload before the relay sees it and checks it afterwards.
class PayloadGuard final : public FrameObserver {
   public:
    const uint8_t* scratch = nullptr;
    int frames = 0;
    int in_scratch = 0;  // payloads that straddled a wrap
    int changed = 0;     // payloads changed while the relay handled them
    int ring_lost = 0;   // frames no longer in their ring when the relay returned

    void before_frame(const Connection&, const uint8_t* p, uint32_t len) override {
        copy_.assign(p, p + len);
        ++frames;
        if (p == scratch) ++in_scratch;
    }
    void after_frame(const Connection& c, const uint8_t* p, uint32_t len) override {
        if (copy_.size() != len || std::memcmp(copy_.data(), p, len) != 0) ++changed;
        // Whatever the relay did (close the connection included), the frame
        // is still in the ring, for the caller to consume.
        if (c.buffered_input() < P2P_FRAME_HEADER_SIZE + len) ++ring_lost;
    }

   private:
    std::vector<uint8_t> copy_;
};

// The rings' caps as the server sets them for the default limits.
ConnectionLimits server_limits() {
    ConnectionLimits l;
    l.in_ring_max = 1u << 17;
    l.out_ring_max = l.max_output + 2 * P2P_SERVER_FRAME_SLACK;
    return l;
}

// The server's side of the world, with the test as the loop's Hooks.
struct World final : EventLoop::Hooks {
    EventLoop loop;
    MemoryBudget budget;
    Relay relay;
    ConnectionContext ctx;
    PayloadGuard guard;
    std::vector<uint8_t> scratch;
    std::function<bool()> done;                 // checked after every iteration
    std::function<void(Connection&)> on_reap;   // before a dead connection is freed
    int ticks = 0;
    uint64_t next_id = 1;

    explicit World(uint64_t budget_bytes = UINT64_MAX)
        : budget(budget_bytes),
          relay(RelayLimits{}, kKey, &loop),
          ctx(loop, relay, &budget, server_limits()) {
        assert_true(loop.init(this, 250));
        scratch.resize(connection_scratch_size(ctx.limits.max_frame));
        ctx.scratch = scratch.data();
        guard.scratch = ctx.scratch;
        ctx.observer = &guard;
    }
    ~World() override {
        while (Connection* c = ctx.idle.front()) c->close(CloseReason::io_error);
        while (Connection* c = ctx.linger.front()) c->close(CloseReason::io_error);
        reap();
    }

    // A connection over a socketpair; returns the client's end (blocking).
    int connect() {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        assert_int_equal(fcntl(sv[0], F_SETFL, O_NONBLOCK), 0);
        auto* c = new Connection(ctx, sv[0], PeerAddress{}, next_id++);
        assert_true(loop.add(sv[0], EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, c));
        return sv[1];
    }

    // Runs the loop until done() after an iteration (bounded by the tick).
    void run_until(std::function<bool()> condition) {
        done = std::move(condition);
        ticks = 0;
        assert_true(loop.run());
        done = nullptr;
        assert_true(ticks < kMaxTicks);
    }

    void reap() {
        while (Connection* c = ctx.reap.pop_front()) {
            if (on_reap) on_reap(*c);
            close(c->fd());
            delete c;
        }
    }

    void on_tick(uint64_t) override {
        if (++ticks >= kMaxTicks) loop.stop();
    }
    void on_signal(int) override {}
    void after_iteration(uint64_t) override {
        reap();
        if (done && done()) loop.stop();
    }
};

void send_all(int fd, const void* p, size_t n) {
    const auto* b = static_cast<const uint8_t*>(p);
    while (n > 0) {
        ssize_t w = send(fd, b, n, MSG_NOSIGNAL);
        assert_true(w > 0);
        b += w;
        n -= static_cast<size_t>(w);
    }
}

std::vector<uint8_t> frame(std::initializer_list<uint8_t> payload) {
    std::vector<uint8_t> f(4);
    p2p_frame_header_encode(f.data(), static_cast<uint32_t>(payload.size()));
    f.insert(f.end(), payload);
    return f;
}

std::vector<uint8_t> id_frame(uint8_t cmd, const std::string& id) {
    std::vector<uint8_t> f(4 + 1 + id.size());
    p2p_frame_header_encode(f.data(), static_cast<uint32_t>(1 + id.size()));
    f[4] = cmd;
    std::memcpy(f.data() + 5, id.data(), id.size());
    return f;
}

int readable(int fd) {
    int n = 0;
    assert_int_equal(ioctl(fd, FIONREAD, &n), 0);
    return n;
}

// Data or the end of the stream waiting on fd.
bool has_input(int fd) {
    struct pollfd p = {fd, POLLIN, 0};
    return poll(&p, 1, 0) == 1;
}

// True once fd has reached the end of the stream; fails on any data.
bool at_eof(int fd) {
    char c;
    ssize_t r = recv(fd, &c, 1, MSG_DONTWAIT);
    assert_true(r <= 0);
    return r == 0;
}

// Reads one frame's payload (blocking, the peer has written it).
std::vector<uint8_t> read_frame(int fd) {
    uint8_t header[4];
    size_t have = 0;
    while (have < 4) {
        ssize_t r = recv(fd, header + have, 4 - have, 0);
        if (r <= 0) return {};
        have += static_cast<size_t>(r);
    }
    std::vector<uint8_t> p(p2p_frame_header_decode(header));
    have = 0;
    while (have < p.size()) {
        ssize_t r = recv(fd, p.data() + have, p.size() - have, 0);
        assert_true(r > 0);
        have += static_cast<size_t>(r);
    }
    return p;
}

// ---- the tests ------------------------------------------------------------------

// 0x90 in a v2 session: BYE 5 and close, from inside the frame handler, with
// a frame still behind it in the same read. The ring is whole and freed.
void test_close_inside_frame(void**) {
    World w;
    int client = w.connect();
    std::vector<uint8_t> bytes = frame({P2P_CMD_HELLO, 2, 0});
    std::vector<uint8_t> bad = frame({0x90, 1, 2, 3});
    std::vector<uint8_t> after = frame({P2P_CMD_HEARTBEAT});
    bytes.insert(bytes.end(), bad.begin(), bad.end());
    bytes.insert(bytes.end(), after.begin(), after.end());
    Connection* c = w.ctx.idle.front();
    assert_non_null(c);
    send_all(client, bytes.data(), bytes.size());
    w.run_until([&] { return c->state() != ConnState::open; });
    assert_int_equal(w.guard.frames, 2);  // HELLO and 0x90; none after it
    assert_int_equal(w.guard.ring_lost, 0);
    assert_int_equal(c->buffered_input(), 0);
    assert_int_equal(c->input_capacity(), 0);
    // The peer: the HELLO reply, BYE 5, and nothing for the heartbeat.
    w.run_until([&] { return readable(client) >= 11 + 4 + 2; });
    assert_int_equal(read_frame(client)[0], 0x88);
    std::vector<uint8_t> bye = read_frame(client);
    assert_true(bye.size() >= 3 && bye[0] == P2P_EVT_BYE && bye[1] == P2P_BYE_PROTOCOL_ERROR);
    shutdown(client, SHUT_WR);
    bool reaped = false;
    w.on_reap = [&](Connection& dead) {
        if (&dead == c) {
            reaped = true;
            assert_int_equal(dead.buffered_input(), 0);
        }
    };
    w.run_until([&] { return reaped; });
    assert_int_equal(recv(client, bytes.data(), 1, 0), 0);  // EOF, nothing else
    close(client);
}

// B's REGISTER, straddling its ring's wrap, takes the id over from A (v1,
// so closed at once, no BYE) while A's unread input waits in its socket, in
// the same batch of events: the payload the relay holds must not change.
void test_takeover_during_wrapped_frame(void**) {
    World w;
    const std::string id = "the-contested-id";
    int a = w.connect();
    std::vector<uint8_t> reg_a = id_frame(P2P_CMD_REGISTER, id);
    send_all(a, reg_a.data(), reg_a.size());
    w.run_until([&] { return readable(a) >= 6; });
    std::vector<uint8_t> reply = read_frame(a);
    assert_true(reply.size() == 2 && reply[0] == 0x81 && reply[1] == 1);

    // B: a SEND that leaves the next frame 6 bytes before the end of a
    // 16 KiB ring (the first read reserves 16 KiB; the ring is freed when
    // empty, and the counters keep their place).
    int b = w.connect();
    std::vector<uint8_t> filler(16384 - 6);
    p2p_frame_header_encode(filler.data(), static_cast<uint32_t>(filler.size() - 4));
    filler[4] = P2P_CMD_SEND;
    send_all(b, filler.data(), filler.size());
    w.run_until([&] { return readable(b) >= 6; });
    reply = read_frame(b);
    assert_true(reply.size() == 2 && reply[0] == 0x83 && reply[1] == 0);  // v1: not registered

    // B's REGISTER first, then A's junk: one batch, B's event first.
    int frames_before = w.guard.frames;
    std::vector<uint8_t> reg_b = id_frame(P2P_CMD_REGISTER, id);
    send_all(b, reg_b.data(), reg_b.size());
    std::vector<uint8_t> junk(4096, 0xEE);
    send_all(a, junk.data(), junk.size());
    w.run_until([&] { return w.guard.frames > frames_before; });
    assert_int_equal(w.guard.in_scratch, 1);  // the case under test did happen
    assert_int_equal(w.guard.changed, 0);
    assert_int_equal(w.guard.ring_lost, 0);
    w.run_until([&] { return readable(b) >= 6; });
    reply = read_frame(b);
    assert_true(reply.size() == 2 && reply[0] == 0x81 && reply[1] == 1);
    // A was taken over: closed without a word.
    shutdown(a, SHUT_WR);
    w.run_until([&] { return at_eof(a); });
    close(a);
    close(b);
}

// The memory limit: the subscriber with the largest output (one that does
// not read) is evicted; what its peer receives is whole frames, then BYE 3,
// then the end of the stream; the subscriber that reads gets everything.
void test_eviction_keeps_whole_frames(void**) {
    World w(1u << 20);  // 1 MiB for every buffer of every connection
    int pub = w.connect();
    int slow = w.connect();
    int fast = w.connect();
    int small = 4096;
    assert_int_equal(setsockopt(slow, SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    for (int fd : {slow, fast}) {
        std::vector<uint8_t> hello = frame({P2P_CMD_HELLO, 2, 0});
        std::vector<uint8_t> sub = id_frame(P2P_CMD_SUBSCRIBE, "pub");
        send_all(fd, hello.data(), hello.size());
        send_all(fd, sub.data(), sub.size());
    }
    // HELLO reply, 82 01, PRESENCE offline; then PRESENCE online.
    w.run_until([&] { return readable(fast) >= 15 + 6 + 10 && readable(slow) >= 15 + 6 + 10; });
    std::vector<uint8_t> reg = id_frame(P2P_CMD_REGISTER, "pub");
    send_all(pub, reg.data(), reg.size());
    w.run_until([&] { return readable(fast) >= 15 + 6 + 10 + 10 && readable(pub) >= 6; });
    for (int i = 0; i < 4; ++i) read_frame(fast);
    read_frame(pub);

    constexpr int kMessages = 200;
    constexpr size_t kData = 16000;
    std::vector<uint8_t> msg(4 + 1 + kData);
    p2p_frame_header_encode(msg.data(), 1 + kData);
    msg[4] = P2P_CMD_SEND;
    int fast_got = 0;
    size_t slow_bytes_cap = 1u << 22;
    for (int i = 0; i < kMessages; ++i) {
        std::memset(msg.data() + 5, 'a' + i % 26, kData);
        send_all(pub, msg.data(), msg.size());
        w.run_until([&] { return readable(pub) >= 6 && readable(fast) > 0; });
        assert_true(read_frame(pub) == std::vector<uint8_t>({0x83, 1}));
        std::vector<uint8_t> d = read_frame(fast);
        assert_int_equal(d.size(), 5 + kData);
        assert_int_equal(d[5], 'a' + i % 26);
        ++fast_got;
    }
    assert_int_equal(fast_got, kMessages);
    assert_true(w.ctx.stats.evictions >= 1);
    assert_true(w.budget.peak() <= w.budget.limit());

    // The slow peer reads now: whole DELIVERs of messages 0, 1, ..., then
    // BYE 3, then the end.
    int seq = 0;
    bool bye = false;
    size_t total = 0;
    for (int i = 0; i < 4; ++i) {  // HELLO reply, 82 01, PRESENCE offline, online
        w.run_until([&] { return has_input(slow); });
        assert_true(read_frame(slow)[0] != P2P_EVT_DELIVER);
    }
    for (;;) {
        w.run_until([&] { return has_input(slow); });
        std::vector<uint8_t> f = read_frame(slow);
        if (f.empty()) break;
        total += f.size();
        assert_true(total < slow_bytes_cap);
        assert_false(bye);  // nothing after the BYE
        if (f[0] == P2P_EVT_BYE) {
            assert_int_equal(f[1], P2P_BYE_SLOW_CONSUMER);
            bye = true;
            shutdown(slow, SHUT_WR);
            continue;
        }
        assert_int_equal(f.size(), 5 + kData);
        assert_true(f[0] == P2P_EVT_DELIVER && f[1] == 3);
        assert_int_equal(f[5], 'a' + seq % 26);
        assert_int_equal(f[5 + kData - 1], 'a' + seq % 26);
        ++seq;
    }
    assert_true(bye);
    assert_true(seq < kMessages);
    close(slow);
    close(fast);
    close(pub);
}

// Issue 12: what an idle client costs. Registered and subscribed, its
// replies written, a connection holds no ring storage; and the object
// itself stays within the 304 bytes (on LP64) that BENCHMARKS.md's byte
// table counts ("Memory and connections per machine"): the server pools
// connections (fixed_pool.h), so every byte more is a byte more per
// client. Raise the bound knowingly, with the table.
void test_idle_connection_holds_only_itself(void**) {
    if (sizeof(void*) == 8) assert_true(sizeof(Connection) <= 304);
    World w;
    int client = w.connect();
    Connection* c = w.ctx.idle.front();
    assert_non_null(c);
    std::vector<uint8_t> bytes = id_frame(P2P_CMD_REGISTER, "idle-a");
    std::vector<uint8_t> sub = id_frame(P2P_CMD_SUBSCRIBE, "idle-b");
    bytes.insert(bytes.end(), sub.begin(), sub.end());
    send_all(client, bytes.data(), bytes.size());
    w.run_until([&] { return readable(client) >= 2 * (4 + 2); });
    assert_int_equal(read_frame(client)[0], P2P_CMD_REGISTER | P2P_REPLY_BIT);
    assert_int_equal(read_frame(client)[0], P2P_CMD_SUBSCRIBE | P2P_REPLY_BIT);
    assert_int_equal(c->state(), ConnState::open);
    assert_int_equal(c->pending_output(), 0);
    assert_int_equal(c->buffered_input(), 0);
    assert_int_equal(c->input_capacity(), 0);
    assert_int_equal(c->output_capacity(), 0);
    assert_int_equal(w.budget.used(), 0);  // the rings are charged here: they hold nothing
    close(client);
    w.run_until([&] { return w.ctx.idle.empty(); });
}

// The connection keeps its idle, frame and linger times in 32 bits
// (clock.h): made whole against now, past and future, across the wrap of
// the low 32 bits and as far as the 7 days the timeouts allow and beyond.
void test_times_in_32_bits(void**) {
    const uint64_t wraps[] = {0, 1ull << 32, 5ull << 32, (7ull << 32) - 3000};
    const int64_t offsets[] = {0,         -1,          1,         -10,        5000,
                               -5000,     -604800000,  604800000, -(1ll << 31), (1ll << 31) - 1,
                               -4294967, 4294967};
    for (uint64_t base : wraps) {
        for (uint64_t now : {base + 5, base + 3000, base + 0xFFFFFFF0u, base + 0x80000000u}) {
            if (now < (1ull << 31)) now += 1ull << 33;  // stay clear of 0
            for (int64_t off : offsets) {
                uint64_t t = now + static_cast<uint64_t>(off);
                assert_int_equal(widen_ms32(now, ms32(t)), t);
            }
        }
    }
}

}  // namespace

int main(void) {
    log_set_level(LogLevel::error);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_close_inside_frame, arm_watchdog, disarm_watchdog),
        cmocka_unit_test_setup_teardown(test_takeover_during_wrapped_frame, arm_watchdog,
                                        disarm_watchdog),
        cmocka_unit_test_setup_teardown(test_eviction_keeps_whole_frames, arm_watchdog,
                                        disarm_watchdog),
        cmocka_unit_test_setup_teardown(test_idle_connection_holds_only_itself, arm_watchdog,
                                        disarm_watchdog),
        cmocka_unit_test(test_times_in_32_bits),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
