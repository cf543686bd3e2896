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
//             the fuzzer reaches deep states without finding the layouts
// After every record the harness checks what must always hold: every frame
// the relay queued is well formed for its reader, an ended session got
// nothing but one BYE, ids and subscriptions point at live sessions and
// agree both ways, the device counters add up. At the end every session is
// ended and no device entry may remain. Any breach aborts.
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <vector>

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
        if (refusing) cut_off = true;
    }
    void close(CloseReason reason) override {
        check(!ended);  // the relay never closes a session twice
        relay_.end_session(*this, reason);
    }
    const char* label() const override { return "fuzz"; }

    std::vector<uint8_t> stream;
    bool refusing = false;
    bool cut_off = false;

   private:
    Relay& relay_;
    int byes_ = 0;
};

struct World {
    Relay relay;
    std::vector<std::unique_ptr<FuzzSession>> all;  // ended ones stay allocated
    FuzzSession* slot[kSlots] = {};
    uint64_t next_id = 1;

    explicit World(const RelayLimits& limits) : relay(limits, HashKey{1, 2}) {
        for (int i = 0; i < kSlots; ++i) slot[i] = open();
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
