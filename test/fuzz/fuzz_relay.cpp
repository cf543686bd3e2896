// fuzz_relay.cpp - libFuzzer harness for the relay (src/server/relay.cpp,
// devices.cpp) driven the way connections drive it: four connections whose
// byte streams are interleaved, cut into frames with the codec, closed and
// reopened at any point, some of them refusing output (slow consumers).
//
// The input is a sequence of records; the first byte of each says what
// happens to which connection (low 2 bits: the operation, next 2 bits: the
// connection):
//   0 feed    [n][n bytes] appended to the connection's stream; every
//             complete frame goes to Relay::on_frame, a frame over 1024
//             bytes closes the connection (protocol error)
//   1 close   [r] the connection ends for reason r % 10 and a new one
//             takes its slot
//   2 slow    the connection starts (or stops) refusing its output; one
//             that refused something is closed as a slow consumer after
//             the record, as the server does at the end of an iteration
//   3 command [c] a well-formed command on small ids ("a".."c"), so that
//             the fuzzer reaches deep states without finding the layouts;
//             among them AUTH: step 1 for "a" or "c", and step 2 with the
//             right proof for the challenge the session last received (or
//             a wrong one)
// The relay runs with an auth file: "a" (token "tok-a") may be reached by
// "b" only, "c" (token "tok-c") by anyone; PEERS and AUTH are in play.
// After every record the harness checks what must always hold: every frame
// the relay queued is well formed for its reader, an ended session got
// nothing but one BYE, ids and subscriptions point at live sessions and
// agree both ways, the device counters add up. At the end every session is
// ended and no device entry may remain. Any breach aborts.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <memory>
#include <vector>

#include "auth_proof.h"
#include "auth_table.h"
#include "codec.h"
#include "fuzz.h"
#include "log.h"
#include "protocol.h"
#include "relay.h"

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

constexpr uint32_t kMaxFrame = 1024;
constexpr int kSlots = 4;

class FuzzSession final : public Session {
   public:
    FuzzSession(Relay& relay, uint64_t id) : relay_(relay) { session_id = id; }
    void enqueue(const uint8_t* head, size_t head_len, const uint8_t* data,
                 size_t data_len) override {
        std::vector<uint8_t> p(head, head + head_len);
        if (data_len != 0) p.insert(p.end(), data, data + data_len);
        check(!p.empty());
        p2p_message m;
        check(p2p_message_parse(p.data(), p.size(), &m) == P2P_PARSE_OK);
        check(m.kind != P2P_MSG_UNKNOWN);
        check(p.size() <= kMaxFrame + P2P_SERVER_FRAME_SLACK);
        if (ended) {
            check(m.kind == P2P_MSG_BYE && byes_ == 0);  // one BYE, nothing else
            ++byes_;
            return;
        }
        // v1 sessions never see v2 events.
        if (version < P2P_VERSION_2)
            check(m.kind == P2P_MSG_REPLY || m.kind == P2P_MSG_V1_DELIVERY);
        // Keep the last AUTH challenge for a step 2 with the right proof.
        if (m.kind == P2P_MSG_REPLY && m.cmd == P2P_CMD_AUTH && m.status == P2P_STATUS_OK &&
            m.step == P2P_AUTH_STEP_START) {
            check(m.data_len == P2P_AUTH_NONCE_SIZE);
            std::memcpy(server_nonce, m.data, P2P_AUTH_NONCE_SIZE);
            has_challenge = true;
        }
        if (refusing) cut_off = true;
    }
    void enqueue_delivery(std::string_view, const uint8_t* head, size_t head_len,
                          const uint8_t* data, size_t data_len) override {
        enqueue(head, head_len, data, data_len);
    }
    void close(CloseReason reason) override {
        check(!ended);  // the relay never closes a session twice
        relay_.end_session(*this, reason);
    }
    const char* label() const override { return "fuzz"; }

    std::vector<uint8_t> stream;
    bool refusing = false;
    bool cut_off = false;
    uint8_t auth_id = 0;                       // the id of the last step 1
    uint8_t server_nonce[P2P_AUTH_NONCE_SIZE] = {};
    bool has_challenge = false;

   private:
    Relay& relay_;
    int byes_ = 0;
};

// Time for the relay's presence and takeover windows: it moves by
// kRecordMs with every record, so that a replay is deterministic.
constexpr uint64_t kRecordMs = 100;
class FuzzClock final : public Clock {
   public:
    uint64_t now = 1000000;
    uint64_t now_ms() const override { return now; }
};

struct World {
    FuzzClock clock;
    Relay relay;
    std::vector<std::unique_ptr<FuzzSession>> all;  // ended ones stay allocated
    FuzzSession* slot[kSlots] = {};
    uint64_t next_id = 1;

    explicit World(const RelayLimits& limits) : relay(limits, HashKey{1, 2}, &clock) {
        for (int i = 0; i < kSlots; ++i) slot[i] = open();
        static const std::string text = auth_file_text();
        char err[256];
        std::unique_ptr<AuthTable> table =
            AuthTable::parse(text, "fuzz", HashKey{3, 4}, err, sizeof err);
        check(table != nullptr);
        AuthChanges changes;
        check(relay.install_auth(std::move(table), &changes));
    }

    static std::string auth_file_text() {
        std::string text;
        for (const char* dev : {"a", "c"}) {
            char token[8] = "tok-?";
            token[4] = dev[0];
            AuthVerifier v;
            auth_verifier_from_token(token, 5, &v);
            char line[kVerifierTextMax];
            auth_verifier_format(v, line);
            text += std::string(dev) + " " + line + (dev[0] == 'a' ? " b\n" : " *\n");
        }
        return text;
    }

    // AUTH step 1 for "a" or "c", or step 2 answering the last challenge.
    void auth(FuzzSession& s, uint8_t c) {
        static const uint8_t kClientNonce[P2P_AUTH_NONCE_SIZE] = {7};
        uint8_t p[2 + P2P_ID_MAX + P2P_AUTH_NONCE_SIZE];
        size_t n;
        if ((c & 1) == 0 || !s.has_challenge) {
            s.auth_id = (c & 2) ? 'a' : 'c';
            n = p2p_encode_auth_start(p, &s.auth_id, 1, kClientNonce);
        } else {
            char token[8] = "tok-?";
            token[4] = static_cast<char>(s.auth_id);
            p2p_auth_keys keys;
            p2p_auth_keys_from_token(token, (c & 2) ? 5 : 4, &keys);  // 4: a wrong token
            uint8_t msg[P2P_AUTH_MESSAGE_MAX], proof[P2P_AUTH_PROOF_SIZE];
            size_t len = p2p_auth_message(msg, &s.auth_id, 1, kClientNonce, s.server_nonce);
            p2p_auth_client_proof(keys.client_key, keys.stored_key, msg, len, proof);
            n = p2p_encode_auth_proof(p, proof);
            s.has_challenge = false;
        }
        relay.on_frame(s, p, n);
    }
    FuzzSession* open() {
        all.push_back(std::make_unique<FuzzSession>(relay, next_id++));
        return all.back().get();
    }
    void end(int i, CloseReason reason) {
        if (!slot[i]->ended) slot[i]->close(reason);
        slot[i] = open();
    }

    void feed(int i, const uint8_t* bytes, size_t n) {
        FuzzSession& s = *slot[i];
        s.stream.insert(s.stream.end(), bytes, bytes + n);
        size_t off = 0;
        while (!s.ended) {
            p2p_frame f;
            p2p_frame_result r = p2p_frame_parse(s.stream.data() + off, s.stream.size() - off,
                                                 kMaxFrame, &f);
            if (r == P2P_FRAME_INCOMPLETE) break;
            if (r == P2P_FRAME_TOO_LONG) {
                s.close(CloseReason::protocol_error);
                break;
            }
            if (f.length != 0) {
                std::vector<uint8_t> payload(f.payload, f.payload + f.length);  // exact copy
                relay.on_frame(s, payload.data(), payload.size());
            }
            off += f.consumed;
        }
        s.stream.erase(s.stream.begin(), s.stream.begin() + static_cast<long>(off));
    }

    void command(int i, uint8_t c) {
        if ((c & 0xC0) == 0xC0) {  // a quarter of the commands: AUTH
            if (!slot[i]->ended) auth(*slot[i], c);
            return;
        }
        static const uint8_t kCmds[] = {P2P_CMD_REGISTER,  P2P_CMD_SUBSCRIBE,   P2P_CMD_SEND,
                                        P2P_CMD_SEND_TO,   P2P_CMD_UNSUBSCRIBE, P2P_CMD_UNREGISTER,
                                        P2P_CMD_CHECK_ALIVE, P2P_CMD_HELLO};
        uint8_t cmd = kCmds[c % 8];
        uint8_t id = static_cast<uint8_t>('a' + (c >> 3) % 3);
        uint8_t p[P2P_ID_HEAD_MAX + 4];
        size_t n;
        if (cmd == P2P_CMD_HELLO)
            n = p2p_encode_hello(p, 2, (c >> 5) & 1);
        else if (cmd == P2P_CMD_SEND_TO)
            n = p2p_encode_send_to_head(p, &id, 1);
        else if (cmd == P2P_CMD_SEND)
            n = p2p_encode_send_head(p);
        else
            n = p2p_encode_id_command(p, cmd, &id, cmd == P2P_CMD_UNREGISTER ? 0 : 1);
        if (cmd == P2P_CMD_SEND || cmd == P2P_CMD_SEND_TO) p[n++] = 'x';
        if (!slot[i]->ended) relay.on_frame(*slot[i], p, n);
    }

    void check_invariants() const {
        size_t online = 0, subs = 0;
        for (const auto& s : all) {
            if (s->ended) {
                check(s->device == nullptr && s->subscription_count == 0 &&
                      s->subscriptions.empty());
                continue;
            }
            if (s->device != nullptr) {
                check(s->device->holder == s.get());
                ++online;
            }
            uint32_t n = 0;
            for (const Subscription* sub = s->subscriptions.front(); sub != nullptr;
                 sub = s->subscriptions.next(*sub)) {
                check(sub->subscriber == s.get() && sub->device != nullptr);
                check(relay.devices().find(sub->device->key()) == sub->device);
                ++n;
            }
            check(n == s->subscription_count);
            subs += n;
        }
        check(relay.devices().online() == online);
        check(relay.devices().subscriptions() == subs);
        // The relay's own account of itself (issue 10), and every open
        // session's from its side.
        char why[256];
        check(relay.check_invariants(why, sizeof why));
        for (const auto& s : all)
            if (!s->ended) check(relay.devices().check_session(*s, why, sizeof why));
    }
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static bool quiet = (log_set_level(LogLevel::error), true);
    (void)quiet;
    RelayLimits limits;
    limits.max_frame = kMaxFrame;
    limits.max_subs = 8;
    World w(limits);
    size_t off = 0;
    while (off < size) {
        uint8_t head = data[off++];
        int op = head & 3, i = (head >> 2) & 3;
        if (op == 0) {
            if (off >= size) break;
            size_t n = data[off++];
            if (n > size - off) n = size - off;
            w.feed(i, data + off, n);
            off += n;
        } else if (op == 1) {
            if (off >= size) break;
            w.end(i, static_cast<CloseReason>(data[off++] % kCloseReasonCount));
        } else if (op == 2) {
            w.slot[i]->refusing = !w.slot[i]->refusing;
        } else {
            if (off >= size) break;
            w.command(i, data[off++]);
        }
        w.clock.now += kRecordMs;
        w.relay.on_tick();
        // The end of an "iteration": slow consumers are closed.
        for (int k = 0; k < kSlots; ++k)
            if (w.slot[k]->cut_off && !w.slot[k]->ended) w.slot[k]->close(CloseReason::slow_consumer);
        w.check_invariants();
    }
    for (auto& s : w.all)
        if (!s->ended) s->close(CloseReason::peer_closed);
    w.check_invariants();
    check(w.relay.device_count() == 0);
    return 0;
}
