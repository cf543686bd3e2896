// test_relay.cpp - unit tests for the protocol layer, src/server/relay.{h,cpp}
// and session.h, without sockets, buffers or an event loop.
//
// The relay talks to the world only through SessionHost. FakeHost stands in
// for the server: it records, in one global order, every frame payload the
// relay queues (prefix and data concatenated; the 4-byte length header is
// the server's business and is left out) and every close_session() call,
// and, like the server, answers close_session() by calling
// Relay::end_session() at once. Sessions are plain structs built here, each
// with its own session_id. The host also checks the relay's side of the
// contract: once a session has ended it may receive exactly one frame, a
// BYE, and nothing else.
//
// Expectations are exact payload bytes, compared as hex text so that a
// failure prints both sides ("82 01 | 0b 00 01 61"). A BYE's text is free
// form: it is rendered as its reason plus "<text>" when it is 1..127
// printable bytes, and raw (so it mismatches) otherwise. Every test ends
// with World::finish(), which fails if any queued frame was not examined,
// then ends all sessions and checks that no device entry is left.
//
// The protocol is man/stupidp2p.7; the byte expectations below come from it.
// The one fault injected is memory exhaustion when the device table must
// grow (RLIMIT_AS through mem_limit.h; skipped under ASan), for the 07
// "limit" replies. Loops are bounded and nothing depends on time.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <memory>
#include <set>
#include <source_location>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

// The project headers before CMocka: relay.h declares a member named fail(),
// which CMocka defines as a macro.
#include "log.h"
#include "mem_limit.h"
#include "protocol.h"
#include "relay.h"
#include "session.h"

// CMocka last: it defines fail() and friends as macros. Its 1.1 header has
// no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

namespace {

using Bytes = std::vector<uint8_t>;

const HashKey kKey{0x0123456789ABCDEFull, 0xFEDCBA9876543210ull};

Bytes operator+(Bytes a, std::string_view s) {
    a.insert(a.end(), s.begin(), s.end());
    return a;
}

uint8_t u8(size_t n) { return static_cast<uint8_t>(n); }

// ---- expected payloads -----------------------------------------------------

Bytes req(uint8_t cmd, std::string_view arg = {}) { return Bytes{cmd} + arg; }
Bytes rep(uint8_t cmd, uint8_t status) { return Bytes{u8(cmd | 0x80u), status}; }
Bytes send_to(std::string_view id, std::string_view data) {
    return Bytes{P2P_CMD_SEND_TO, u8(id.size())} + id + data;
}
Bytes hello(uint8_t version, uint8_t flags) { return Bytes{P2P_CMD_HELLO, version, flags}; }
Bytes v1_delivery(std::string_view data) { return Bytes{P2P_CMD_SEND} + data; }
Bytes v2_delivery(std::string_view from, std::string_view data) {
    return Bytes{P2P_EVT_DELIVER, u8(from.size())} + from + data;
}
Bytes presence(uint8_t state, std::string_view id) {
    return Bytes{P2P_EVT_PRESENCE, state, u8(id.size())} + id;
}
// Matches any BYE with this reason and a valid text (see render()).
Bytes bye(uint8_t reason) { return Bytes{P2P_EVT_BYE, reason, '<', 't', 'e', 'x', 't', '>'}; }

const uint8_t kOnline = P2P_PRESENCE_ONLINE;
const uint8_t kOffline = P2P_PRESENCE_OFFLINE;

// "0e 03 <text>" for a well-formed BYE, hex bytes otherwise.
std::string render(const Bytes& p) {
    static const char digits[] = "0123456789abcdef";
    bool bye_text = p.size() >= 3 && p.size() <= 2 + P2P_BYE_TEXT_MAX && p[0] == P2P_EVT_BYE;
    for (size_t i = 2; bye_text && i < p.size(); ++i)
        if (p[i] < 0x20 || p[i] > 0x7e) bye_text = false;
    std::string out;
    size_t n = bye_text ? 2 : p.size();
    for (size_t i = 0; i < n; ++i) {
        if (i != 0) out += ' ';
        out += digits[p[i] >> 4];
        out += digits[p[i] & 15];
    }
    if (bye_text) out += " <text>";
    return out;
}

std::string render_list(const std::vector<Bytes>& frames) {
    std::string out;
    for (size_t i = 0; i < frames.size(); ++i) {
        if (i != 0) out += " | ";
        out += render(frames[i]);
    }
    return out;
}

// ---- the fake host ---------------------------------------------------------

struct Sent {
    uint64_t to;
    Bytes payload;
    bool taken;
};

class FakeHost : public SessionHost {
   public:
    Relay* relay = nullptr;
    std::vector<Sent> log;                                  // every frame, in queue order
    std::vector<std::pair<uint64_t, CloseReason>> closes;   // every close_session()
    std::set<uint64_t> refusing;     // slow consumers: their frames are dropped
    std::vector<Session*> cut_off;   // sessions that had a frame dropped
    uint64_t dropped = 0;
    // Contract breaches: a frame other than one BYE for an ended session, or
    // close_session() on an ended one.
    std::vector<std::string> violations;

    void send_frame(Session& to, const uint8_t* prefix, size_t prefix_len, const uint8_t* data,
                    size_t data_len) override {
        Bytes p(prefix, prefix + prefix_len);
        if (data_len != 0) p.insert(p.end(), data, data + data_len);
        if (to.ended) {
            // Like the server: an ended session accepts its BYE, and only it.
            if (p.empty() || p[0] != P2P_EVT_BYE || byes_.count(to.session_id) != 0)
                violations.push_back("frame to ended conn " + std::to_string(to.session_id) +
                                     ": " + render(p));
            byes_.insert(to.session_id);
        } else if (refusing.count(to.session_id) != 0) {
            ++dropped;
            bool listed = false;
            for (Session* s : cut_off) listed = listed || s == &to;
            if (!listed) cut_off.push_back(&to);
            return;
        }
        log.push_back(Sent{to.session_id, std::move(p), false});
    }

    void close_session(Session& session, CloseReason reason) override {
        closes.emplace_back(session.session_id, reason);
        if (session.ended) {
            violations.push_back("close_session on ended conn " +
                                 std::to_string(session.session_id));
            return;
        }
        relay->end_session(session, reason);
    }

    const char* describe(const Session& session) override {
        std::snprintf(label_, sizeof label_, "conn %llu",
                      static_cast<unsigned long long>(session.session_id));
        return label_;
    }

   private:
    std::set<uint64_t> byes_;
    char label_[64] = {};
};

struct World {
    FakeHost host;
    Relay relay;
    std::vector<std::unique_ptr<Session>> sessions;
    uint64_t next_id = 1;

    explicit World(const RelayLimits& limits = RelayLimits{}) : relay(host, limits, kKey) {
        host.relay = &relay;
    }

    Session& v1() {
        sessions.push_back(std::make_unique<Session>());
        sessions.back()->session_id = next_id++;
        return *sessions.back();
    }

    // A session that negotiated v2 through HELLO (the reply is checked and
    // taken).
    Session& v2(bool quiet = false) {
        Session& s = v1();
        in(s, hello(2, quiet ? 1 : 0));
        std::vector<Bytes> got = take(s);
        assert_int_equal(got.size(), 1);
        assert_int_equal(got[0].size(), P2P_HELLO_REPLY_SIZE);
        assert_int_equal(got[0][0], 0x88);
        assert_int_equal(got[0][1], 1);
        assert_int_equal(got[0][2], 2);
        assert_int_equal(s.version, 2);
        return s;
    }

    void in(Session& s, const Bytes& payload) { relay.on_frame(s, payload.data(), payload.size()); }

    // Frames queued for s since the last take(s), oldest first.
    std::vector<Bytes> take(const Session& s) {
        std::vector<Bytes> out;
        for (Sent& f : host.log)
            if (f.to == s.session_id && !f.taken) {
                f.taken = true;
                out.push_back(f.payload);
            }
        return out;
    }

    // Failures are reported at the caller's line.
    void expect(const Session& s, std::initializer_list<Bytes> frames,
                std::source_location at = std::source_location::current()) {
        std::string want = render_list(std::vector<Bytes>(frames));
        std::string got = render_list(take(s));
        _assert_string_equal(got.c_str(), want.c_str(), at.file_name(), static_cast<int>(at.line()));
    }

    void expect_nothing(const Session& s,
                        std::source_location at = std::source_location::current()) {
        expect(s, {}, at);
    }

    // "to:frame" for every frame queued since log index `mark`, in order.
    std::string since(size_t mark) const {
        std::string out;
        for (size_t i = mark; i < host.log.size(); ++i) {
            if (!out.empty()) out += " | ";
            out += std::to_string(host.log[i].to) + ":" + render(host.log[i].payload);
        }
        return out;
    }

    void expect_closes(std::initializer_list<std::pair<uint64_t, CloseReason>> want,
                       std::source_location at = std::source_location::current()) {
        std::string w, g;
        for (const auto& c : want)
            w += std::to_string(c.first) + ":" + close_reason_name(c.second) + ";";
        for (const auto& c : host.closes)
            g += std::to_string(c.first) + ":" + close_reason_name(c.second) + ";";
        _assert_string_equal(g.c_str(), w.c_str(), at.file_name(), static_cast<int>(at.line()));
    }

    void no_violations() {
        std::string all;
        for (const std::string& v : host.violations) all += v + "; ";
        assert_string_equal(all.c_str(), "");
    }

    // Every frame examined, then every session ended: nothing may be left
    // in the device table.
    void finish() {
        for (const Sent& f : host.log)
            if (!f.taken) {
                std::string what = "unexamined frame to conn " + std::to_string(f.to) + ": " +
                                   render(f.payload);
                assert_string_equal(what.c_str(), "");
            }
        no_violations();
        for (auto& s : sessions) relay.end_session(*s, CloseReason::peer_closed);
        no_violations();
        assert_int_equal(relay.device_count(), 0);
    }
};

std::string long_id(size_t n) {
    std::string id(n, '\0');
    for (size_t i = 0; i < n; ++i) id[i] = static_cast<char>((i * 37 + 11) & 0xff);
    return id;
}

// ---- v1 commands -------------------------------------------------------------

void test_v1_register_replies(void**) {
    World w;
    Session& a = w.v1();
    w.in(a, req(P2P_CMD_REGISTER, "dev1"));
    w.expect(a, {rep(P2P_CMD_REGISTER, 1)});
    assert_int_equal(w.relay.device_count(), 1);
    assert_non_null(a.device);
    assert_true(a.device->holder == &a);

    // Again the same id: succeeds and changes nothing.
    w.in(a, req(P2P_CMD_REGISTER, "dev1"));
    w.expect(a, {rep(P2P_CMD_REGISTER, 1)});
    assert_int_equal(w.relay.device_count(), 1);

    // Empty and over-long ids fail with 0 and keep the id held.
    w.in(a, req(P2P_CMD_REGISTER));
    w.in(a, req(P2P_CMD_REGISTER, long_id(256)));
    w.expect(a, {rep(P2P_CMD_REGISTER, 0), rep(P2P_CMD_REGISTER, 0)});
    w.in(a, req(P2P_CMD_CHECK_ALIVE, "dev1"));
    w.expect(a, {rep(P2P_CMD_CHECK_ALIVE, 1)});

    // 255 bytes, NUL and high bytes included, is a valid id, compared exactly.
    Session& b = w.v1();
    std::string id255 = long_id(255);
    w.in(b, req(P2P_CMD_REGISTER, id255));
    w.expect(b, {rep(P2P_CMD_REGISTER, 1)});
    w.in(b, req(P2P_CMD_CHECK_ALIVE, id255));
    w.in(b, req(P2P_CMD_CHECK_ALIVE, id255.substr(0, 254)));
    w.in(b, req(P2P_CMD_CHECK_ALIVE, "DEV1"));
    w.in(b, req(P2P_CMD_CHECK_ALIVE, std::string_view("dev1\0", 5)));
    w.expect(b, {rep(P2P_CMD_CHECK_ALIVE, 1), rep(P2P_CMD_CHECK_ALIVE, 0),
                 rep(P2P_CMD_CHECK_ALIVE, 0), rep(P2P_CMD_CHECK_ALIVE, 0)});
    assert_int_equal(w.relay.device_count(), 2);
    w.expect_closes({});
    w.finish();
}

void test_v1_simple_replies(void**) {
    World w;
    Session& a = w.v1();
    w.in(a, req(P2P_CMD_HEARTBEAT));
    w.in(a, req(P2P_CMD_HEARTBEAT, "ignored data"));
    w.in(a, req(P2P_CMD_UNREGISTER));       // not registered: still 84 01
    w.in(a, req(P2P_CMD_UNSUBSCRIBE, "x"));  // no such subscription: 85 01
    w.in(a, req(P2P_CMD_UNSUBSCRIBE));       // empty id: 85 01
    w.in(a, req(P2P_CMD_CHECK_ALIVE, "x"));  // unknown: 86 00
    w.in(a, req(P2P_CMD_CHECK_ALIVE));       // empty: 86 00 in v1
    w.in(a, req(P2P_CMD_CHECK_ALIVE, long_id(256)));
    w.in(a, req(P2P_CMD_SEND, "data"));      // no id: 83 00
    w.expect(a, {rep(P2P_CMD_HEARTBEAT, 1), rep(P2P_CMD_HEARTBEAT, 1), rep(P2P_CMD_UNREGISTER, 1),
                 rep(P2P_CMD_UNSUBSCRIBE, 1), rep(P2P_CMD_UNSUBSCRIBE, 1),
                 rep(P2P_CMD_CHECK_ALIVE, 0), rep(P2P_CMD_CHECK_ALIVE, 0),
                 rep(P2P_CMD_CHECK_ALIVE, 0), rep(P2P_CMD_SEND, 0)});

    w.in(a, req(P2P_CMD_REGISTER, "a"));
    w.in(a, req(P2P_CMD_CHECK_ALIVE, "a"));
    w.in(a, req(P2P_CMD_UNREGISTER));
    w.in(a, req(P2P_CMD_CHECK_ALIVE, "a"));
    w.in(a, req(P2P_CMD_UNREGISTER));
    w.expect(a, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_CHECK_ALIVE, 1), rep(P2P_CMD_UNREGISTER, 1),
                 rep(P2P_CMD_CHECK_ALIVE, 0), rep(P2P_CMD_UNREGISTER, 1)});
    assert_null(a.device);
    assert_int_equal(w.relay.device_count(), 0);
    assert_int_equal(w.relay.stats().frames_in, 14);
    w.finish();
}

void test_empty_frame_ignored(void**) {
    World w;
    Session& a = w.v1();
    Session& b = w.v2();
    uint64_t before = w.relay.stats().frames_in;
    w.relay.on_frame(a, nullptr, 0);
    w.relay.on_frame(b, nullptr, 0);
    uint8_t byte = P2P_CMD_HEARTBEAT;
    w.relay.on_frame(b, &byte, 0);  // a length of 0, whatever the pointer
    w.expect_nothing(a);
    w.expect_nothing(b);
    assert_int_equal(w.relay.stats().frames_in, before);
    w.expect_closes({});
    w.in(a, req(P2P_CMD_HEARTBEAT));
    w.expect(a, {rep(P2P_CMD_HEARTBEAT, 1)});
    w.finish();
}

void test_v1_subscribe_rules(void**) {
    World w;
    Session& pub = w.v1();
    Session& sub = w.v1();  // never registers: not needed to subscribe

    // Offline: 82 00, and no device entry is created for it.
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 0)});
    assert_int_equal(w.relay.device_count(), 0);
    assert_int_equal(sub.subscription_count, 0);

    // Empty and over-long ids: 82 00.
    w.in(sub, req(P2P_CMD_SUBSCRIBE));
    w.in(sub, req(P2P_CMD_SUBSCRIBE, long_id(256)));
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 0), rep(P2P_CMD_SUBSCRIBE, 0)});

    // Own id: 82 00.
    w.in(pub, req(P2P_CMD_REGISTER, "pub"));
    w.in(pub, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.expect(pub, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 0)});
    assert_int_equal(pub.subscription_count, 0);

    // Online: 82 01 and no PRESENCE in v1; twice delivers once.
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 1), rep(P2P_CMD_SUBSCRIBE, 1)});
    assert_int_equal(sub.subscription_count, 1);
    assert_int_equal(pub.device->subscriber_count, 1);
    w.in(pub, req(P2P_CMD_SEND, "hello"));
    w.expect(sub, {v1_delivery("hello")});
    w.expect(pub, {rep(P2P_CMD_SEND, 1)});

    // UNSUBSCRIBE stops deliveries, and is idempotent.
    w.in(sub, req(P2P_CMD_UNSUBSCRIBE, "pub"));
    w.in(sub, req(P2P_CMD_UNSUBSCRIBE, "pub"));
    w.expect(sub, {rep(P2P_CMD_UNSUBSCRIBE, 1), rep(P2P_CMD_UNSUBSCRIBE, 1)});
    w.in(pub, req(P2P_CMD_SEND, "again"));
    w.expect(pub, {rep(P2P_CMD_SEND, 1)});
    w.expect_nothing(sub);
    assert_int_equal(sub.subscription_count, 0);
    w.finish();
}

void test_v1_send_and_deliveries(void**) {
    World w;
    Session& pub = w.v1();
    Session& s1 = w.v1();
    w.in(pub, req(P2P_CMD_REGISTER, "p"));
    w.expect(pub, {rep(P2P_CMD_REGISTER, 1)});

    // Nobody subscribed: dropped, still 83 01.
    w.in(pub, req(P2P_CMD_SEND, "lost"));
    w.expect(pub, {rep(P2P_CMD_SEND, 1)});
    assert_int_equal(w.relay.stats().dropped_no_subscriber, 1);
    assert_int_equal(w.relay.stats().deliveries, 0);

    w.in(s1, req(P2P_CMD_SUBSCRIBE, "p"));
    w.expect(s1, {rep(P2P_CMD_SUBSCRIBE, 1)});
    // Empty data, binary data with NUL and high bytes: byte for byte.
    std::string bin("\x00\xff\x80\x03\x00", 5);
    w.in(pub, req(P2P_CMD_SEND));
    w.in(pub, req(P2P_CMD_SEND, bin));
    w.expect(s1, {v1_delivery(""), v1_delivery(bin)});
    w.expect(pub, {rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND, 1)});
    assert_int_equal(w.relay.stats().deliveries, 2);
    assert_int_equal(w.relay.stats().dropped_no_subscriber, 1);

    // A subscriber of several devices gets each one's messages.
    Session& q = w.v1();
    w.in(q, req(P2P_CMD_REGISTER, "q"));
    w.in(s1, req(P2P_CMD_SUBSCRIBE, "q"));
    w.in(q, req(P2P_CMD_SEND, "from q"));
    w.in(pub, req(P2P_CMD_SEND, "from p"));
    w.expect(q, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND, 1)});
    w.expect(pub, {rep(P2P_CMD_SEND, 1)});
    w.expect(s1, {rep(P2P_CMD_SUBSCRIBE, 1), v1_delivery("from q"), v1_delivery("from p")});
    w.finish();
}

// A subscription names the id: it survives the holder leaving and another
// connection registering the id, and the sender never gets its own message
// back even when it is subscribed to its own id (via a takeover).
void test_subscription_survives_reconnect_and_no_self_copy(void**) {
    World w;
    Session& old_pub = w.v1();
    Session& sub = w.v1();
    w.in(old_pub, req(P2P_CMD_REGISTER, "p"));
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "p"));
    w.expect(old_pub, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 1)});

    w.relay.end_session(old_pub, CloseReason::peer_closed);
    w.expect_nothing(old_pub);
    w.expect_nothing(sub);  // v1: no PRESENCE
    assert_int_equal(w.relay.device_count(), 1);  // kept for the subscriber

    Session& new_pub = w.v1();
    w.in(new_pub, req(P2P_CMD_SUBSCRIBE, "p"));  // offline: 82 00 in v1
    w.expect(new_pub, {rep(P2P_CMD_SUBSCRIBE, 0)});
    w.in(new_pub, req(P2P_CMD_REGISTER, "p"));
    w.in(new_pub, req(P2P_CMD_SEND, "back"));
    w.expect(new_pub, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND, 1)});
    w.expect(sub, {v1_delivery("back")});

    // sub subscribes to q (held by another), then takes q over: it is now
    // subscribed to its own id, and its SEND must not come back to it.
    Session& q = w.v1();
    w.in(q, req(P2P_CMD_REGISTER, "q"));
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "q"));
    w.in(sub, req(P2P_CMD_REGISTER, "q"));
    w.expect(q, {rep(P2P_CMD_REGISTER, 1)});
    w.expect_closes({{q.session_id, CloseReason::taken_over}});
    assert_true(q.ended);
    w.in(sub, req(P2P_CMD_SEND, "mine"));
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 1), rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND, 1)});
    w.expect_nothing(q);  // v1: closed without a word
    w.finish();
}

// ---- fan-out -----------------------------------------------------------------

void test_fanout_order_and_formats(void**) {
    World w;
    Session& pub = w.v2();
    Session& a = w.v1();
    Session& b = w.v2();
    Session& c = w.v1();
    w.in(pub, req(P2P_CMD_REGISTER, "pub"));
    w.in(a, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(b, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(c, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.expect(pub, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(a, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.expect(b, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "pub")});
    w.expect(c, {rep(P2P_CMD_SUBSCRIBE, 1)});

    // Deliveries are queued before the sender's reply; each subscriber gets
    // its own format.
    size_t mark = w.host.log.size();
    w.in(pub, req(P2P_CMD_SEND, "msg"));
    std::string want = std::to_string(a.session_id) + ":" + render(v1_delivery("msg")) + " | " +
                       std::to_string(b.session_id) + ":" + render(v2_delivery("pub", "msg")) +
                       " | " + std::to_string(c.session_id) + ":" + render(v1_delivery("msg")) +
                       " | " + std::to_string(pub.session_id) + ":" + render(rep(P2P_CMD_SEND, 1));
    assert_string_equal(w.since(mark).c_str(), want.c_str());
    w.expect(a, {v1_delivery("msg")});
    w.expect(b, {v2_delivery("pub", "msg")});
    w.expect(c, {v1_delivery("msg")});
    w.expect(pub, {rep(P2P_CMD_SEND, 1)});

    // The v1 sender's messages reach a v2 subscriber as DELIVER naming it;
    // a 255-byte sender id with NUL and high bytes is copied exactly.
    Session& big = w.v1();
    std::string id255 = long_id(255);
    w.in(big, req(P2P_CMD_REGISTER, id255));
    w.in(b, req(P2P_CMD_SUBSCRIBE, id255));
    w.in(a, req(P2P_CMD_SUBSCRIBE, id255));
    w.in(big, req(P2P_CMD_SEND, std::string_view("\x00z", 2)));
    w.in(big, req(P2P_CMD_SEND));
    w.expect(big, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND, 1)});
    w.expect(b, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, id255),
                 v2_delivery(id255, std::string_view("\x00z", 2)), v2_delivery(id255, "")});
    w.expect(a, {rep(P2P_CMD_SUBSCRIBE, 1), v1_delivery(std::string_view("\x00z", 2)),
                 v1_delivery("")});
    assert_int_equal(w.relay.stats().deliveries, 7);
    w.finish();
}

void test_quiet(void**) {
    World w;
    Session& q = w.v2(true);
    assert_true(q.quiet);
    Session& t = w.v2();
    Session& sub = w.v1();
    w.in(t, req(P2P_CMD_REGISTER, "t"));
    w.expect(t, {rep(P2P_CMD_REGISTER, 1)});

    // Failures are still answered.
    w.in(q, req(P2P_CMD_SEND, "x"));
    w.in(q, send_to("t", "x"));
    w.expect(q, {rep(P2P_CMD_SEND, 2), rep(P2P_CMD_SEND_TO, 2)});

    w.in(q, req(P2P_CMD_REGISTER, "q"));
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "q"));
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.in(q, req(P2P_CMD_SEND, "s1"));
    w.in(q, send_to("t", "s2"));
    w.in(q, send_to("nobody", "s3"));
    w.in(q, send_to("q", "s4"));
    w.in(q, req(P2P_CMD_HEARTBEAT));
    // Successful SEND and SEND_TO: no reply; the rest as usual.
    w.expect(q, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND_TO, 3), rep(P2P_CMD_SEND_TO, 4),
                 rep(P2P_CMD_HEARTBEAT, 1)});
    w.expect(sub, {v1_delivery("s1")});
    w.expect(t, {v2_delivery("q", "s2")});

    // A second HELLO clears the flag.
    w.in(q, hello(2, 0));
    w.expect(q, {Bytes{0x88, 1, 2, 0, 1, 0, 0, 0, 0, 1, 0x2c}});
    assert_false(q.quiet);
    w.in(q, req(P2P_CMD_SEND, "s5"));
    w.expect(q, {rep(P2P_CMD_SEND, 1)});
    w.expect(sub, {v1_delivery("s5")});

    // QUIET in a v1 session has no effect.
    Session& v1q = w.v1();
    w.in(v1q, hello(1, 1));
    w.expect(v1q, {Bytes{0x88, 1, 1, 0, 1, 0, 0, 0, 0, 1, 0x2c}});
    assert_int_equal(v1q.version, 1);
    w.in(v1q, req(P2P_CMD_REGISTER, "v1q"));
    w.in(v1q, req(P2P_CMD_SEND, "x"));
    w.in(v1q, send_to("t", "y"));
    w.expect(v1q, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND_TO, 1)});
    w.expect(t, {v2_delivery("v1q", "y")});
    w.finish();
}

// ---- register, takeover, presence ---------------------------------------------

void test_takeover_v2_holder(void**) {
    World w;
    Session& old_h = w.v2();
    Session& watcher = w.v2();  // v2 subscriber of the id
    Session& other = w.v1();    // a device old_h subscribes to
    w.in(other, req(P2P_CMD_REGISTER, "other"));
    w.in(old_h, req(P2P_CMD_REGISTER, "dev"));
    w.in(old_h, req(P2P_CMD_SUBSCRIBE, "other"));
    w.in(old_h, req(P2P_CMD_SUBSCRIBE, "offline-id"));
    w.in(watcher, req(P2P_CMD_SUBSCRIBE, "dev"));
    w.expect(other, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(old_h, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOnline, "other"), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOffline, "offline-id")});
    w.expect(watcher, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "dev")});
    assert_int_equal(w.relay.device_count(), 3);

    Session& new_h = w.v1();
    w.in(new_h, req(P2P_CMD_REGISTER, "dev"));
    w.expect_closes({{old_h.session_id, CloseReason::taken_over}});
    assert_true(old_h.ended);
    assert_null(old_h.device);
    assert_true(new_h.device != nullptr && new_h.device->holder == &new_h);
    // Old holder: BYE 1 and nothing else.
    w.expect(old_h, {bye(P2P_BYE_TAKEN_OVER)});
    w.expect(new_h, {rep(P2P_CMD_REGISTER, 1)});
    w.expect_nothing(watcher);  // the id stayed online: no PRESENCE
    // old_h's subscriptions are gone: "offline-id" had no one else.
    assert_int_equal(old_h.subscription_count, 0);
    assert_int_equal(w.relay.device_count(), 2);

    Session& probe = w.v1();
    w.in(probe, req(P2P_CMD_CHECK_ALIVE, "dev"));
    w.expect(probe, {rep(P2P_CMD_CHECK_ALIVE, 1)});

    // The watcher receives from the new holder; old_h receives nothing more
    // and is inert.
    w.in(new_h, req(P2P_CMD_SEND, "n"));
    w.in(other, req(P2P_CMD_SEND, "o"));
    w.in(old_h, req(P2P_CMD_HEARTBEAT));
    w.in(old_h, req(P2P_CMD_REGISTER, "dev"));
    w.expect(new_h, {rep(P2P_CMD_SEND, 1)});
    w.expect(other, {rep(P2P_CMD_SEND, 1)});
    w.expect(watcher, {v2_delivery("dev", "n")});
    w.expect_nothing(old_h);
    assert_true(new_h.device->holder == &new_h);

    // Ending the old session again (the server would reap it later) is
    // harmless: no second BYE, the id stays with the new holder.
    w.relay.end_session(old_h, CloseReason::peer_closed);
    w.expect_nothing(old_h);
    w.expect_nothing(watcher);
    assert_true(new_h.device->holder == &new_h);
    w.finish();
}

void test_takeover_v1_holder_gets_no_bye(void**) {
    World w;
    Session& old_h = w.v1();
    Session& new_h = w.v2();
    w.in(old_h, req(P2P_CMD_REGISTER, "dev"));
    w.in(new_h, req(P2P_CMD_REGISTER, "dev"));
    w.expect(old_h, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(new_h, {rep(P2P_CMD_REGISTER, 1)});
    w.expect_closes({{old_h.session_id, CloseReason::taken_over}});
    assert_true(old_h.ended);
    assert_int_equal(w.relay.device_count(), 1);
    w.finish();
}

// Registering a second id releases the first (offline), then the second
// comes online; re-registering the held id changes nothing.
void test_register_second_id(void**) {
    World w;
    Session& s = w.v1();
    Session& watch = w.v2();
    Session& watch1 = w.v1();
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "a"));
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "b"));
    w.expect(watch, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "a"), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOffline, "b")});
    w.in(s, req(P2P_CMD_REGISTER, "a"));
    w.in(watch1, req(P2P_CMD_SUBSCRIBE, "a"));
    w.expect(watch1, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.in(s, req(P2P_CMD_REGISTER, "a"));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_REGISTER, 1)});
    w.expect(watch, {presence(kOnline, "a")});

    size_t mark = w.host.log.size();
    w.in(s, req(P2P_CMD_REGISTER, "b"));
    std::string want = std::to_string(watch.session_id) + ":" + render(presence(kOffline, "a")) +
                       " | " + std::to_string(s.session_id) + ":" +
                       render(rep(P2P_CMD_REGISTER, 1)) + " | " +
                       std::to_string(watch.session_id) + ":" + render(presence(kOnline, "b"));
    assert_string_equal(w.since(mark).c_str(), want.c_str());
    w.expect(s, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(watch, {presence(kOffline, "a"), presence(kOnline, "b")});
    w.expect_nothing(watch1);  // v1: never PRESENCE

    w.in(s, req(P2P_CMD_CHECK_ALIVE, "a"));
    w.in(s, req(P2P_CMD_CHECK_ALIVE, "b"));
    w.expect(s, {rep(P2P_CMD_CHECK_ALIVE, 0), rep(P2P_CMD_CHECK_ALIVE, 1)});
    // A failed REGISTER (empty id) keeps "b".
    w.in(s, req(P2P_CMD_REGISTER));
    w.expect(s, {rep(P2P_CMD_REGISTER, 0)});
    w.expect_nothing(watch);
    assert_true(s.device != nullptr && s.device->id == "b");
    w.finish();
}

// A connection is never told about its own id going on- or offline.
void test_presence_never_to_self(void**) {
    World w;
    Session& s = w.v2();
    Session& other = w.v2();
    w.in(s, req(P2P_CMD_SUBSCRIBE, "x"));  // offline: allowed in v2
    w.in(other, req(P2P_CMD_SUBSCRIBE, "x"));
    w.expect(s, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "x")});
    w.expect(other, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "x")});

    w.in(s, req(P2P_CMD_REGISTER, "x"));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(other, {presence(kOnline, "x")});
    // Its own SEND does not come back to it either.
    w.in(s, req(P2P_CMD_SEND, "m"));
    w.expect(s, {rep(P2P_CMD_SEND, 1)});
    w.expect(other, {v2_delivery("x", "m")});

    // Registering another id: x goes offline for the others only.
    w.in(s, req(P2P_CMD_REGISTER, "y"));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(other, {presence(kOffline, "x")});
    w.in(s, req(P2P_CMD_REGISTER, "x"));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(other, {presence(kOnline, "x")});

    // The server ends it: BYE only, no PRESENCE about itself.
    w.relay.end_session(s, CloseReason::idle_timeout);
    w.expect(s, {bye(P2P_BYE_IDLE_TIMEOUT)});
    w.expect(other, {presence(kOffline, "x")});
    assert_int_equal(s.subscription_count, 0);
    w.finish();
}

// ---- v2 subscribe ----------------------------------------------------------

void test_v2_subscribe_rules(void**) {
    World w;
    Session& s = w.v2();
    Session& p = w.v1();
    w.in(s, req(P2P_CMD_SUBSCRIBE, "p"));  // offline: 82 01 + PRESENCE offline
    w.expect(s, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "p")});
    assert_int_equal(w.relay.device_count(), 1);
    w.in(p, req(P2P_CMD_REGISTER, "p"));
    w.expect(p, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(s, {presence(kOnline, "p")});
    // Again: 82 01 + PRESENCE online, still one subscription.
    w.in(s, req(P2P_CMD_SUBSCRIBE, "p"));
    w.expect(s, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "p")});
    assert_int_equal(s.subscription_count, 1);
    w.in(p, req(P2P_CMD_SEND, "once"));
    w.expect(s, {v2_delivery("p", "once")});
    w.expect(p, {rep(P2P_CMD_SEND, 1)});

    // Bad arguments: 82 04, no PRESENCE.
    w.in(s, req(P2P_CMD_REGISTER, "me"));
    w.in(s, req(P2P_CMD_SUBSCRIBE, "me"));
    w.in(s, req(P2P_CMD_SUBSCRIBE));
    w.in(s, req(P2P_CMD_SUBSCRIBE, long_id(256)));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 4), rep(P2P_CMD_SUBSCRIBE, 4),
                 rep(P2P_CMD_SUBSCRIBE, 4)});
    w.in(s, req(P2P_CMD_CHECK_ALIVE));
    w.in(s, req(P2P_CMD_CHECK_ALIVE, "nobody"));
    w.in(s, req(P2P_CMD_UNREGISTER));
    w.in(s, req(P2P_CMD_UNREGISTER));
    w.in(s, req(P2P_CMD_UNSUBSCRIBE, "nobody"));
    w.in(s, req(P2P_CMD_SEND, "x"));
    w.expect(s, {rep(P2P_CMD_CHECK_ALIVE, 4), rep(P2P_CMD_CHECK_ALIVE, 0),
                 rep(P2P_CMD_UNREGISTER, 1), rep(P2P_CMD_UNREGISTER, 1),
                 rep(P2P_CMD_UNSUBSCRIBE, 1), rep(P2P_CMD_SEND, 2)});
    // UNREGISTER dropped s's subscription to p.
    assert_int_equal(s.subscription_count, 0);
    w.in(p, req(P2P_CMD_SEND, "gone"));
    w.expect(p, {rep(P2P_CMD_SEND, 1)});
    w.expect_nothing(s);
    w.finish();
}

void test_max_subs_limit(void**) {
    RelayLimits limits;
    limits.max_subs = 3;
    World w(limits);
    Session& s = w.v2();
    w.in(s, req(P2P_CMD_SUBSCRIBE, "a"));
    w.in(s, req(P2P_CMD_SUBSCRIBE, "b"));
    w.in(s, req(P2P_CMD_SUBSCRIBE, "c"));
    w.in(s, req(P2P_CMD_SUBSCRIBE, "d"));  // over the limit: 82 07, no PRESENCE
    w.in(s, req(P2P_CMD_SUBSCRIBE, "a"));  // repeated: never the limit
    w.expect(s, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "a"), rep(P2P_CMD_SUBSCRIBE, 1),
                 presence(kOffline, "b"), rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "c"),
                 rep(P2P_CMD_SUBSCRIBE, 7), rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "a")});
    assert_int_equal(s.subscription_count, 3);
    assert_int_equal(w.relay.device_count(), 3);  // no entry for "d"
    w.in(s, req(P2P_CMD_UNSUBSCRIBE, "b"));
    w.in(s, req(P2P_CMD_SUBSCRIBE, "d"));
    w.expect(s, {rep(P2P_CMD_UNSUBSCRIBE, 1), rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "d")});
    assert_int_equal(w.relay.device_count(), 3);  // b freed, d created

    // v1: the same limit answers 82 00.
    Session& v = w.v1();
    Session* holders[4];
    const char* ids[4] = {"h0", "h1", "h2", "h3"};
    for (int i = 0; i < 4; ++i) {
        holders[i] = &w.v1();
        w.in(*holders[i], req(P2P_CMD_REGISTER, ids[i]));
        w.expect(*holders[i], {rep(P2P_CMD_REGISTER, 1)});
        w.in(v, req(P2P_CMD_SUBSCRIBE, ids[i]));
    }
    w.expect(v, {rep(P2P_CMD_SUBSCRIBE, 1), rep(P2P_CMD_SUBSCRIBE, 1), rep(P2P_CMD_SUBSCRIBE, 1),
                 rep(P2P_CMD_SUBSCRIBE, 0)});
    w.in(*holders[3], req(P2P_CMD_SEND, "no"));
    w.expect(*holders[3], {rep(P2P_CMD_SEND, 1)});
    w.expect_nothing(v);
    w.finish();
}

// ---- SEND_TO -----------------------------------------------------------------

void test_send_to_reasons_v2(void**) {
    World w;
    Session& s = w.v2();
    Session& t2 = w.v2();
    Session& t1 = w.v1();
    Session& fan = w.v1();  // subscriber of s: SEND_TO must not reach it
    w.in(t2, req(P2P_CMD_REGISTER, "t2"));
    w.in(t1, req(P2P_CMD_REGISTER, "t1"));
    w.expect(t2, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(t1, {rep(P2P_CMD_REGISTER, 1)});

    // Unregistered sender: 4 wins over 2, 2 over 3.
    w.in(s, req(P2P_CMD_SEND_TO));                               // no id_len
    w.in(s, Bytes{P2P_CMD_SEND_TO, 0});                          // id_len 0
    w.in(s, Bytes{P2P_CMD_SEND_TO, 0, 'x'});                     // id_len 0 with data
    w.in(s, Bytes{P2P_CMD_SEND_TO, 3, 't', '2'});                // runs past the end
    w.in(s, Bytes{P2P_CMD_SEND_TO, 0xff} + long_id(254));        // runs past by one
    w.in(s, send_to("nobody", "x"));                             // 2, not 3
    w.in(s, send_to("t2", "x"));                                 // 2
    w.expect(s, {rep(P2P_CMD_SEND_TO, 4), rep(P2P_CMD_SEND_TO, 4), rep(P2P_CMD_SEND_TO, 4),
                 rep(P2P_CMD_SEND_TO, 4), rep(P2P_CMD_SEND_TO, 4), rep(P2P_CMD_SEND_TO, 2),
                 rep(P2P_CMD_SEND_TO, 2)});

    w.in(s, req(P2P_CMD_REGISTER, "s"));
    w.in(fan, req(P2P_CMD_SUBSCRIBE, "s"));
    w.expect(fan, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.in(s, send_to("s", "x"));                // own id: 4, not 3 or 2
    w.in(s, Bytes{P2P_CMD_SEND_TO, 2, 's'});   // runs past, even though "s" is own
    w.in(s, send_to("nobody", "x"));           // 3
    w.in(s, send_to("T2", "x"));               // ids are exact: 3
    w.expect(s, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND_TO, 4), rep(P2P_CMD_SEND_TO, 4),
                 rep(P2P_CMD_SEND_TO, 3), rep(P2P_CMD_SEND_TO, 3)});

    // Success: the delivery is queued before the 8a 01; v2 and v1 formats;
    // empty data; the sender's subscribers get nothing.
    size_t mark = w.host.log.size();
    w.in(s, send_to("t2", "hi"));
    std::string want = std::to_string(t2.session_id) + ":" + render(v2_delivery("s", "hi")) +
                       " | " + std::to_string(s.session_id) + ":" +
                       render(rep(P2P_CMD_SEND_TO, 1));
    assert_string_equal(w.since(mark).c_str(), want.c_str());
    w.in(s, send_to("t1", "yo"));
    w.in(s, send_to("t2", ""));
    std::string id255 = long_id(255);
    Session& big = w.v2();
    w.in(big, req(P2P_CMD_REGISTER, id255));
    w.in(s, send_to(id255, "!"));
    w.expect(big, {rep(P2P_CMD_REGISTER, 1), v2_delivery("s", "!")});
    w.expect(s, {rep(P2P_CMD_SEND_TO, 1), rep(P2P_CMD_SEND_TO, 1), rep(P2P_CMD_SEND_TO, 1),
                 rep(P2P_CMD_SEND_TO, 1)});
    w.expect(t2, {v2_delivery("s", "hi"), v2_delivery("s", "")});
    w.expect(t1, {v1_delivery("yo")});
    w.expect_nothing(fan);
    // t1 sends back: SEND_TO from a v1 session works, and a v2 target sees
    // its id.
    w.in(t1, send_to("s", "back"));
    w.expect(t1, {rep(P2P_CMD_SEND_TO, 1)});
    w.expect(s, {v2_delivery("t1", "back")});
    w.finish();
}

void test_send_to_v1_failures_are_zero(void**) {
    World w;
    Session& s = w.v1();
    Session& t = w.v1();
    w.in(t, req(P2P_CMD_REGISTER, "t"));
    w.expect(t, {rep(P2P_CMD_REGISTER, 1)});
    w.in(s, req(P2P_CMD_SEND_TO));
    w.in(s, Bytes{P2P_CMD_SEND_TO, 0});
    w.in(s, Bytes{P2P_CMD_SEND_TO, 5, 't'});
    w.in(s, send_to("t", "x"));  // not registered
    w.in(s, req(P2P_CMD_REGISTER, "s"));
    w.in(s, send_to("s", "x"));  // own id
    w.in(s, send_to("u", "x"));  // offline
    w.in(s, send_to("t", "x"));
    w.expect(s, {rep(P2P_CMD_SEND_TO, 0), rep(P2P_CMD_SEND_TO, 0), rep(P2P_CMD_SEND_TO, 0),
                 rep(P2P_CMD_SEND_TO, 0), rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND_TO, 0),
                 rep(P2P_CMD_SEND_TO, 0), rep(P2P_CMD_SEND_TO, 1)});
    w.expect(t, {v1_delivery("x")});
    w.finish();
}

// ---- HELLO -------------------------------------------------------------------

void test_hello(void**) {
    RelayLimits limits;
    limits.max_frame = 0x01020304u;
    limits.idle_timeout_s = 0x0a0b0c0du;
    World w(limits);
    Session& s = w.v1();
    w.in(s, hello(2, 0));
    w.expect(s, {Bytes{0x88, 1, 2, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d}});
    assert_int_equal(s.version, 2);
    assert_false(s.quiet);

    // Asking for more than 2 gets 2; asking for 1 goes back to v1.
    w.in(s, hello(0xff, 1));
    w.expect(s, {Bytes{0x88, 1, 2, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d}});
    assert_int_equal(s.version, 2);
    assert_true(s.quiet);

    // Failures: 88 04 in any session; version and flags unchanged.
    w.in(s, hello(0, 0));
    w.in(s, hello(2, 2));
    w.in(s, hello(2, 0x80));
    w.in(s, hello(2, 0x03));
    w.in(s, Bytes{P2P_CMD_HELLO, 2});
    w.in(s, Bytes{P2P_CMD_HELLO, 2, 0, 0});
    w.in(s, Bytes{P2P_CMD_HELLO});
    w.expect(s, {rep(P2P_CMD_HELLO, 4), rep(P2P_CMD_HELLO, 4), rep(P2P_CMD_HELLO, 4),
                 rep(P2P_CMD_HELLO, 4), rep(P2P_CMD_HELLO, 4), rep(P2P_CMD_HELLO, 4),
                 rep(P2P_CMD_HELLO, 4)});
    assert_int_equal(s.version, 2);
    assert_true(s.quiet);

    w.in(s, hello(1, 0));
    w.expect(s, {Bytes{0x88, 1, 1, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d}});
    assert_int_equal(s.version, 1);
    assert_false(s.quiet);
    // Back in v1: unknown commands ignored again, failures are 0.
    w.in(s, req(0x0d));
    w.in(s, req(P2P_CMD_SUBSCRIBE));
    w.expect(s, {rep(P2P_CMD_SUBSCRIBE, 0)});

    Session& v1 = w.v1();
    w.in(v1, hello(0, 0));
    w.in(v1, Bytes{P2P_CMD_HELLO, 1, 0, 9});
    w.expect(v1, {rep(P2P_CMD_HELLO, 4), rep(P2P_CMD_HELLO, 4)});
    assert_int_equal(v1.version, 1);

    // The request right after HELLO is handled under the new version.
    Session& n = w.v1();
    w.in(n, hello(2, 0));
    w.in(n, req(P2P_CMD_SEND, "x"));
    w.expect(n, {Bytes{0x88, 1, 2, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d},
                 rep(P2P_CMD_SEND, 2)});

    // The defaults, as in the man page's example.
    World d;
    Session& x = d.v1();
    d.in(x, hello(2, 1));
    d.expect(x, {Bytes{0x88, 1, 2, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c}});
    d.finish();
    w.finish();
}

// ---- unknown command bytes ---------------------------------------------------

void test_unknown_commands_v1_ignored(void**) {
    World w;
    Session& s = w.v1();
    w.in(s, req(P2P_CMD_REGISTER, "s"));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1)});
    for (unsigned c = 0; c <= 0xff; ++c) {
        if ((c >= 0x01 && c <= 0x08) || c == 0x0a || c == 0x0c) continue;
        w.in(s, req(u8(c), "data"));
        w.in(s, req(u8(c)));
    }
    w.expect_nothing(s);
    w.expect_closes({});
    assert_false(s.ended);
    // AUTH is known: 8c 00 in v1.
    w.in(s, req(P2P_CMD_AUTH, "token"));
    w.in(s, req(P2P_CMD_HEARTBEAT));
    w.expect(s, {rep(P2P_CMD_AUTH, 0), rep(P2P_CMD_HEARTBEAT, 1)});
    w.finish();
}

void test_unknown_commands_v2_unsupported(void**) {
    World w;
    Session& s = w.v2();
    std::vector<Bytes> want;
    for (unsigned c = 0; c < 0x80; ++c) {
        if ((c >= 0x01 && c <= 0x08) || c == 0x0a) continue;
        w.in(s, req(u8(c), "data"));
        want.push_back(rep(u8(c), 6));  // 0x0c AUTH included: 8c 06
    }
    std::string got = render_list(w.take(s));
    assert_string_equal(got.c_str(), render_list(want).c_str());
    // The examples from the man page: 0d -> 8d 06, 7f -> ff 06, 00 -> 80 06.
    w.in(s, req(0x0d));
    w.in(s, req(0x7f));
    w.in(s, req(0x00));
    w.expect(s, {Bytes{0x8d, 6}, Bytes{0xff, 6}, Bytes{0x80, 6}});
    w.expect_closes({});
    assert_false(s.ended);
    w.finish();
}

void test_reply_bit_is_protocol_error_in_v2(void**) {
    const uint8_t bad[] = {0x80, 0x81, 0x88, 0xfe, 0xff};
    for (uint8_t cmd : bad) {
        World w;
        Session& s = w.v2();
        Session& watch = w.v2();
        w.in(s, req(P2P_CMD_REGISTER, "s"));
        w.in(s, req(P2P_CMD_SUBSCRIBE, "other"));
        w.in(watch, req(P2P_CMD_SUBSCRIBE, "s"));
        w.expect(s, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOffline, "other")});
        w.expect(watch, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "s")});

        w.in(s, req(cmd, "junk"));
        w.expect_closes({{s.session_id, CloseReason::protocol_error}});
        assert_true(s.ended);
        w.expect(s, {bye(P2P_BYE_PROTOCOL_ERROR)});
        w.expect(watch, {presence(kOffline, "s")});
        assert_int_equal(w.relay.device_count(), 1);  // "s", for watch
        // Inert from now on.
        w.in(s, req(P2P_CMD_HEARTBEAT));
        w.in(s, req(P2P_CMD_REGISTER, "s"));
        w.expect_nothing(s);
        w.in(watch, req(P2P_CMD_CHECK_ALIVE, "s"));
        w.expect(watch, {rep(P2P_CMD_CHECK_ALIVE, 0)});
        w.finish();
    }
}

// ---- end_session -------------------------------------------------------------

void test_end_session_bye_reasons(void**) {
    struct Case {
        CloseReason reason;
        int bye;  // 0: none
    };
    const Case cases[] = {
        {CloseReason::taken_over, P2P_BYE_TAKEN_OVER},
        {CloseReason::idle_timeout, P2P_BYE_IDLE_TIMEOUT},
        {CloseReason::slow_consumer, P2P_BYE_SLOW_CONSUMER},
        {CloseReason::shutdown, P2P_BYE_SHUTDOWN},
        {CloseReason::protocol_error, P2P_BYE_PROTOCOL_ERROR},
        {CloseReason::not_authorized, P2P_BYE_NOT_AUTHORIZED},
        {CloseReason::limit, P2P_BYE_LIMIT},
        {CloseReason::peer_closed, 0},
        {CloseReason::io_error, 0},
    };
    for (const Case& c : cases) {
        World w;
        Session& v2 = w.v2();
        Session& v1 = w.v1();
        w.relay.end_session(v2, c.reason);
        w.relay.end_session(v1, c.reason);
        if (c.bye != 0)
            w.expect(v2, {bye(u8(c.bye))});
        else
            w.expect_nothing(v2);
        w.expect_nothing(v1);  // v1: never a word
        assert_true(v2.ended && v1.ended);
        // A second end_session sends nothing more.
        w.relay.end_session(v2, c.reason);
        w.expect_nothing(v2);
        w.expect_closes({});
        w.finish();
    }
}

void test_end_session_releases_id_and_subscriptions(void**) {
    World w;
    Session& h = w.v2();
    Session& w2 = w.v2();
    Session& w1 = w.v1();
    Session& p = w.v1();
    w.in(h, req(P2P_CMD_REGISTER, "h"));
    w.in(h, req(P2P_CMD_SUBSCRIBE, "p"));  // offline, v2: allowed
    w.in(h, req(P2P_CMD_SUBSCRIBE, "w1"));
    w.in(w2, req(P2P_CMD_SUBSCRIBE, "h"));
    w.in(w1, req(P2P_CMD_SUBSCRIBE, "h"));
    w.in(p, req(P2P_CMD_REGISTER, "p"));
    w.expect(h, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "p"),
                 rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "w1"), presence(kOnline, "p")});
    w.expect(w2, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "h")});
    w.expect(w1, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.expect(p, {rep(P2P_CMD_REGISTER, 1)});
    assert_int_equal(w.relay.device_count(), 3);  // h, p, w1

    // Deliveries from h come before the PRESENCE offline.
    w.in(h, req(P2P_CMD_SEND, "last"));
    w.relay.end_session(h, CloseReason::peer_closed);
    w.expect(h, {rep(P2P_CMD_SEND, 1)});  // peer closed: no BYE
    w.expect(w2, {v2_delivery("h", "last"), presence(kOffline, "h")});
    w.expect(w1, {v1_delivery("last")});
    assert_null(h.device);
    assert_int_equal(h.subscription_count, 0);
    // "w1" had only h as subscriber: freed; "h" stays for its subscribers.
    assert_int_equal(w.relay.device_count(), 2);
    assert_int_equal(w.relay.stats().deliveries, 2);

    // h no longer receives from p.
    w.in(p, req(P2P_CMD_SEND, "x"));
    w.expect(p, {rep(P2P_CMD_SEND, 1)});
    w.expect_nothing(h);
    assert_int_equal(w.relay.stats().dropped_no_subscriber, 1);

    // The last subscriber of "h" leaving frees it.
    w.relay.end_session(w2, CloseReason::io_error);
    assert_int_equal(w.relay.device_count(), 2);  // w1 still subscribes
    w.relay.end_session(w1, CloseReason::peer_closed);
    assert_int_equal(w.relay.device_count(), 1);  // "p", held
    w.relay.end_session(p, CloseReason::shutdown);
    assert_int_equal(w.relay.device_count(), 0);
    w.expect_nothing(w2);
    w.expect_nothing(w1);
    w.expect_nothing(p);  // v1

    // Ending a session that holds nothing, twice.
    Session& idle = w.v1();
    w.relay.end_session(idle, CloseReason::idle_timeout);
    w.relay.end_session(idle, CloseReason::idle_timeout);
    w.expect_nothing(idle);
    w.finish();
}

void test_device_entries_freed(void**) {
    World w;
    Session& a = w.v2();
    Session& b = w.v1();
    assert_int_equal(w.relay.device_count(), 0);
    w.in(a, req(P2P_CMD_REGISTER, "a"));
    assert_int_equal(w.relay.device_count(), 1);
    w.in(a, req(P2P_CMD_SUBSCRIBE, "z"));
    assert_int_equal(w.relay.device_count(), 2);
    w.in(a, req(P2P_CMD_UNSUBSCRIBE, "z"));
    assert_int_equal(w.relay.device_count(), 1);
    w.in(b, req(P2P_CMD_SUBSCRIBE, "z"));  // v1, offline: nothing created
    w.in(b, req(P2P_CMD_CHECK_ALIVE, "zz"));
    w.in(b, req(P2P_CMD_UNSUBSCRIBE, "zzz"));
    assert_int_equal(w.relay.device_count(), 1);
    w.in(b, req(P2P_CMD_SUBSCRIBE, "a"));
    w.in(a, req(P2P_CMD_UNREGISTER));
    assert_int_equal(w.relay.device_count(), 1);  // b still subscribes to "a"
    w.in(b, req(P2P_CMD_UNSUBSCRIBE, "a"));
    assert_int_equal(w.relay.device_count(), 0);
    // Register, register another, unregister: the first is freed at once.
    w.in(a, req(P2P_CMD_REGISTER, "a1"));
    w.in(a, req(P2P_CMD_REGISTER, "a2"));
    assert_int_equal(w.relay.device_count(), 1);
    w.in(a, req(P2P_CMD_UNREGISTER));
    assert_int_equal(w.relay.device_count(), 0);
    // Many ids through one session, then many subscriptions dropped by
    // UNREGISTER.
    for (int i = 0; i < 300; ++i) {
        std::string id = "dev-" + std::to_string(i);
        w.in(a, req(P2P_CMD_REGISTER, id));
        w.in(a, req(P2P_CMD_SUBSCRIBE, "sub-" + std::to_string(i)));
    }
    assert_int_equal(w.relay.device_count(), 301);
    assert_int_equal(a.subscription_count, 300);
    w.in(a, req(P2P_CMD_UNREGISTER));
    assert_int_equal(w.relay.device_count(), 0);
    assert_int_equal(a.subscription_count, 0);
    w.take(a);
    w.expect(b, {rep(P2P_CMD_SUBSCRIBE, 0), rep(P2P_CMD_CHECK_ALIVE, 0),
                 rep(P2P_CMD_UNSUBSCRIBE, 1), rep(P2P_CMD_SUBSCRIBE, 1),
                 rep(P2P_CMD_UNSUBSCRIBE, 1)});
    w.finish();
}

// ---- slow consumer -------------------------------------------------------------

// The host drops every frame for one session (its output cap is reached) and
// ends it after the call, as the server does in after_iteration: the
// publisher and the other subscribers see nothing of it.
void test_slow_consumer_does_not_disturb_others(void**) {
    World w;
    Session& pub = w.v2();
    Session& fast1 = w.v1();
    Session& slow = w.v2();
    Session& fast2 = w.v2();
    w.in(pub, req(P2P_CMD_REGISTER, "pub"));
    w.in(slow, req(P2P_CMD_REGISTER, "slow"));
    w.in(fast1, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(slow, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(fast2, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(fast2, req(P2P_CMD_SUBSCRIBE, "slow"));
    w.expect(pub, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(slow, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "pub")});
    w.expect(fast1, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.expect(fast2, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "pub"), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOnline, "slow")});

    w.host.refusing.insert(slow.session_id);
    for (int i = 0; i < 5; ++i) w.in(pub, req(P2P_CMD_SEND, "m" + std::to_string(i)));
    w.in(pub, send_to("slow", "direct"));
    w.expect(pub, {rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND, 1),
                   rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND_TO, 1)});
    w.expect(fast1, {v1_delivery("m0"), v1_delivery("m1"), v1_delivery("m2"), v1_delivery("m3"),
                     v1_delivery("m4")});
    w.expect(fast2, {v2_delivery("pub", "m0"), v2_delivery("pub", "m1"), v2_delivery("pub", "m2"),
                     v2_delivery("pub", "m3"), v2_delivery("pub", "m4")});
    w.expect_nothing(slow);
    assert_int_equal(w.host.dropped, 6);
    assert_int_equal(w.host.cut_off.size(), 1);
    assert_true(w.host.cut_off[0] == &slow);
    w.expect_closes({});  // the relay itself closes nobody

    // The host ends it after the call: a BYE 3 gets through, its id goes
    // offline for its subscribers, and it receives nothing after that.
    w.relay.end_session(slow, CloseReason::slow_consumer);
    w.expect(slow, {bye(P2P_BYE_SLOW_CONSUMER)});
    w.expect(fast2, {presence(kOffline, "slow")});
    w.in(pub, req(P2P_CMD_SEND, "after"));
    w.in(pub, send_to("slow", "after"));
    w.expect(pub, {rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND_TO, 3)});
    w.expect(fast1, {v1_delivery("after")});
    w.expect(fast2, {v2_delivery("pub", "after")});
    w.expect_nothing(slow);
    assert_int_equal(w.host.dropped, 6);
    w.finish();
}

// ---- device table full ---------------------------------------------------------

// When the device table cannot grow (out of memory, injected by lowering
// RLIMIT_AS; skipped under ASan), REGISTER of a new id answers 81 07 and
// SUBSCRIBE to a new id 82 07 (00 in v1), nothing is half-created, and ids
// already in the table keep working. 3/4 of 2^16 slots are filled first, so
// the next new id must grow the table to 2^17 slots (2 MiB).
void test_device_table_full(void**) {
    if (!mem_limit_supported()) skip();
    RelayLimits limits;
    limits.max_subs = 100000;
    World w(limits);
    Session& filler = w.v2();
    w.host.refusing.insert(filler.session_id);  // its 2 x 49151 frames: dropped
    const size_t fill = 49151;
    for (size_t i = 0; i < fill; ++i) w.in(filler, req(P2P_CMD_SUBSCRIBE, "f" + std::to_string(i)));
    assert_int_equal(filler.subscription_count, fill);
    Session& x = w.v2();
    Session& watch = w.v2();
    Session& v1 = w.v1();
    w.in(x, req(P2P_CMD_REGISTER, "old"));
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "old"));
    w.expect(x, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(watch, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "old")});
    assert_int_equal(w.relay.device_count(), 49152);  // 3/4 of 65536

    {
        MemLimit lim(1u << 20);
        assert_true(lim.ok());
        w.in(watch, req(P2P_CMD_SUBSCRIBE, "zzz"));
        w.in(v1, req(P2P_CMD_REGISTER, "new1"));
        // Ids already in the table need no growth.
        w.in(v1, req(P2P_CMD_SUBSCRIBE, "old"));
        w.in(x, req(P2P_CMD_REGISTER, "new"));
        w.in(watch, req(P2P_CMD_SUBSCRIBE, "f7"));
    }
    w.expect(v1, {rep(P2P_CMD_REGISTER, 0), rep(P2P_CMD_SUBSCRIBE, 1)});  // v1: 0
    assert_int_equal(w.relay.device_count(), 49152);
    assert_null(v1.device);
    // x: 81 07, and it keeps the id it had: the new id's entry is made
    // before the old id is released, so a failure changes nothing.
    assert_non_null(x.device);
    assert_string_equal(x.device->id.c_str(), "old");
    w.expect(watch, {rep(P2P_CMD_SUBSCRIBE, 7), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOffline, "f7")});
    w.in(watch, req(P2P_CMD_CHECK_ALIVE, "old"));
    w.expect(watch, {rep(P2P_CMD_CHECK_ALIVE, 1)});
    w.expect(x, {rep(P2P_CMD_REGISTER, 7)});

    // With memory back, the table grows; "old" is released now.
    w.in(x, req(P2P_CMD_REGISTER, "new"));
    w.expect(x, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(watch, {presence(kOffline, "old")});
    assert_true(w.relay.device_count() >= 49153);
    w.finish();
}

}  // namespace

int main(void) {
    log_set_level(LogLevel::error);  // the relay's info lines are noise here
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_register_replies),
        cmocka_unit_test(test_v1_simple_replies),
        cmocka_unit_test(test_empty_frame_ignored),
        cmocka_unit_test(test_v1_subscribe_rules),
        cmocka_unit_test(test_v1_send_and_deliveries),
        cmocka_unit_test(test_subscription_survives_reconnect_and_no_self_copy),
        cmocka_unit_test(test_fanout_order_and_formats),
        cmocka_unit_test(test_quiet),
        cmocka_unit_test(test_takeover_v2_holder),
        cmocka_unit_test(test_takeover_v1_holder_gets_no_bye),
        cmocka_unit_test(test_register_second_id),
        cmocka_unit_test(test_presence_never_to_self),
        cmocka_unit_test(test_v2_subscribe_rules),
        cmocka_unit_test(test_max_subs_limit),
        cmocka_unit_test(test_send_to_reasons_v2),
        cmocka_unit_test(test_send_to_v1_failures_are_zero),
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_unknown_commands_v1_ignored),
        cmocka_unit_test(test_unknown_commands_v2_unsupported),
        cmocka_unit_test(test_reply_bit_is_protocol_error_in_v2),
        cmocka_unit_test(test_end_session_bye_reasons),
        cmocka_unit_test(test_end_session_releases_id_and_subscriptions),
        cmocka_unit_test(test_device_entries_freed),
        cmocka_unit_test(test_slow_consumer_does_not_disturb_others),
        cmocka_unit_test(test_device_table_full),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
