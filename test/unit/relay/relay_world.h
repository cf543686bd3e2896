// relay_world.h - the harness of the relay's unit tests (test_relay_*.cpp,
// one file per command), for src/server/relay.{h,cpp}, devices.{h,cpp} and
// session.h, without sockets, buffers or an event loop.
//
// The relay talks to the world only through the Session interface.
// FakeSession stands in for a connection and FakeHost for all of them: the
// host records, in one global order, every frame payload the relay queues
// (head and data concatenated; the 4-byte length header is the
// connection's business and is left out) and every close() call, and, like
// a connection, answers close() by calling Relay::end_session() at once.
// Each session has its own session_id. The host also checks the relay's
// side of the contract: once a session has ended it may receive exactly one
// frame, a BYE, and nothing else.
//
// Expectations are exact payload bytes, compared as hex text so that a
// failure prints both sides ("82 01 | 0b 00 01 61"). A BYE's text is free
// form: it is rendered as its reason plus "<text>" when it is 1..127
// printable bytes, and raw (so it mismatches) otherwise. Every test ends
// with World::finish(), which fails if any queued frame was not examined,
// then ends all sessions and checks that no device entry is left.
//
// The protocol is man/stupidp2p.7; the byte expectations come from it.
// The one fault injected is memory exhaustion when the device table must
// grow (RLIMIT_AS through mem_limit.h; skipped under ASan), for the 07
// "limit" replies. Loops are bounded and nothing depends on time.
#pragma once

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
#include "../mem_limit.h"
#include "protocol.h"
#include "relay.h"
#include "session.h"

// CMocka last: it defines fail() and friends as macros. Its 1.1 header has
// no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

namespace relay_test {

using Bytes = std::vector<uint8_t>;

const HashKey kKey{0x0123456789ABCDEFull, 0xFEDCBA9876543210ull};

inline Bytes operator+(Bytes a, std::string_view s) {
    a.insert(a.end(), s.begin(), s.end());
    return a;
}

uint8_t u8(size_t n) { return static_cast<uint8_t>(n); }

// ---- expected payloads -----------------------------------------------------

Bytes req(uint8_t cmd, std::string_view arg = {}) { return Bytes{cmd} + arg; }
Bytes rep(uint8_t cmd, uint8_t status) { return Bytes{u8(cmd | 0x80u), status}; }
inline Bytes send_to(std::string_view id, std::string_view data) {
    return Bytes{P2P_CMD_SEND_TO, u8(id.size())} + id + data;
}
Bytes hello(uint8_t version, uint8_t flags) { return Bytes{P2P_CMD_HELLO, version, flags}; }
Bytes v1_delivery(std::string_view data) { return Bytes{P2P_CMD_SEND} + data; }
inline Bytes v2_delivery(std::string_view from, std::string_view data) {
    return Bytes{P2P_EVT_DELIVER, u8(from.size())} + from + data;
}
inline Bytes presence(uint8_t state, std::string_view id) {
    return Bytes{P2P_EVT_PRESENCE, state, u8(id.size())} + id;
}
// Matches any BYE with this reason and a valid text (see render()).
Bytes bye(uint8_t reason) { return Bytes{P2P_EVT_BYE, reason, '<', 't', 'e', 'x', 't', '>'}; }

const uint8_t kOnline = P2P_PRESENCE_ONLINE;
const uint8_t kOffline = P2P_PRESENCE_OFFLINE;

// "0e 03 <text>" for a well-formed BYE, hex bytes otherwise.
inline std::string render(const Bytes& p) {
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

inline std::string render_list(const std::vector<Bytes>& frames) {
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

// Records what the relay asks of sessions; FakeSession forwards to it.
class FakeHost {
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
                    size_t data_len) {
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

    void close_session(Session& session, CloseReason reason) {
        closes.emplace_back(session.session_id, reason);
        if (session.ended) {
            violations.push_back("close_session on ended conn " +
                                 std::to_string(session.session_id));
            return;
        }
        relay->end_session(session, reason);
    }

   private:
    std::set<uint64_t> byes_;
};

// A session as the relay sees it, with the fake host behind it.
class FakeSession final : public Session {
   public:
    FakeSession(FakeHost& host, uint64_t id) : host_(host) {
        session_id = id;
        std::snprintf(label_, sizeof label_, "conn %llu", static_cast<unsigned long long>(id));
    }
    void enqueue(const uint8_t* head, size_t head_len, const uint8_t* data,
                 size_t data_len) override {
        host_.send_frame(*this, head, head_len, data, data_len);
    }
    // Deliveries are frames like any other here; which publisher a delivery
    // came from is recorded for the tests that ask.
    void enqueue_delivery(std::string_view from, const uint8_t* head, size_t head_len,
                          const uint8_t* data, size_t data_len) override {
        last_from.assign(from.data(), from.size());
        host_.send_frame(*this, head, head_len, data, data_len);
    }
    std::string last_from;
    void close(CloseReason reason) override { host_.close_session(*this, reason); }
    const char* label() const override { return label_; }

   private:
    FakeHost& host_;
    char label_[64] = {};
};

// Time as the relay sees it, moved by hand.
class FakeClock final : public Clock {
   public:
    uint64_t now = 1000000;
    uint64_t now_ms() const override { return now; }
};

struct World {
    FakeHost host;
    FakeClock clock;
    Relay relay;
    std::vector<std::unique_ptr<FakeSession>> sessions;
    uint64_t next_id = 1;

    explicit World(const RelayLimits& limits = RelayLimits{}, MemoryBudget* budget = nullptr)
        : relay(limits, kKey, &clock, budget) {
        host.relay = &relay;
    }

    // Moves the clock on by ms and lets the relay's tick run, as the
    // server's timer does.
    void advance(uint64_t ms) {
        clock.now += ms;
        relay.on_tick();
    }

    // Relay::check_invariants, and Devices::check_session for every session.
    void check(std::source_location at = std::source_location::current()) {
        char why[256] = "";
        bool ok = relay.check_invariants(why, sizeof why);
        for (auto& s : sessions)
            if (ok) ok = relay.devices().check_session(*s, why, sizeof why);
        if (!ok)
            _assert_string_equal(why, "", at.file_name(), static_cast<int>(at.line()));
    }

    Session& v1() {
        sessions.push_back(std::make_unique<FakeSession>(host, next_id++));
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
        check();
        for (const Sent& f : host.log)
            if (!f.taken) {
                std::string what = "unexamined frame to conn " + std::to_string(f.to) + ": " +
                                   render(f.payload);
                assert_string_equal(what.c_str(), "");
            }
        no_violations();
        for (auto& s : sessions) relay.end_session(*s, CloseReason::peer_closed);
        no_violations();
        check();
        assert_int_equal(relay.device_count(), 0);
    }
};

inline std::string long_id(size_t n) {
    std::string id(n, '\0');
    for (size_t i = 0; i < n; ++i) id[i] = static_cast<char>((i * 37 + 11) & 0xff);
    return id;
}

}  // namespace relay_test
