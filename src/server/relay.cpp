// relay.cpp - see relay.h; the protocol itself is specified in
// man/stupidp2p.7.
//
// Compatibility notes (v1 = the original stupidP2P):
//  - v1 SUBSCRIBE needs the id online and not the caller's own; v2 allows
//    subscribing to an offline id and follows every successful SUBSCRIBE
//    with a PRESENCE of the id's current state.
//  - Subscriptions name device ids, so they survive the publisher's
//    reconnects and takeovers (the original lost them).
//  - Unknown commands, and server-to-client codes sent by a client, are
//    ignored in v1 and answered "unsupported" (6) in v2; a command byte with
//    the reply bit set is a protocol error in v2.
#include "relay.h"

#include <cstring>
#include <string_view>

#include "log.h"
#include "protocol.h"

namespace {

std::string_view as_view(const uint8_t* p, size_t n) {
    return std::string_view(reinterpret_cast<const char*>(p), n);
}

bool valid_id_length(size_t len) { return len >= 1 && len <= P2P_ID_MAX; }

bool is_v2(const Session& s) { return s.version >= P2P_VERSION_2; }

// QUIET (v2 only) leaves successful SEND and SEND_TO unacknowledged.
bool acks_sends(const Session& s) { return !(s.quiet && is_v2(s)); }

// Printable rendering of an id for logs: bytes outside printable ASCII as
// \xNN, cut at 64 bytes.
const char* printable_id(std::string_view id, char* out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < id.size() && o + 5 < cap; ++i) {
        auto c = static_cast<unsigned char>(id[i]);
        if (i == 64) {
            out[o++] = '.';
            out[o++] = '.';
            out[o++] = '.';
            break;
        }
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out[o++] = static_cast<char>(c);
        } else {
            static const char hex[] = "0123456789abcdef";
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

}  // namespace

const char* close_reason_name(CloseReason reason) {
    switch (reason) {
        case CloseReason::taken_over: return "taken over";
        case CloseReason::idle_timeout: return "idle timeout";
        case CloseReason::slow_consumer: return "slow consumer";
        case CloseReason::shutdown: return "server shutting down";
        case CloseReason::protocol_error: return "protocol error";
        case CloseReason::not_authorized: return "not authorized";
        case CloseReason::limit: return "connection limit reached";
        case CloseReason::peer_closed: return "closed by peer";
        case CloseReason::io_error: return "socket error";
    }
    return "unknown";
}

Relay::Relay(SessionHost& host, const RelayLimits& limits, const HashKey& key)
    : host_(host), limits_(limits), devices_(key) {}

Relay::~Relay() {
    // Sessions are ended by the server before the relay goes; free whatever
    // devices remain (subscribed-to ids with no subscriber left cannot
    // remain, so this is only reached at exit).
    devices_.for_each([](Device* d) {
        while (Subscription* sub = d->subscribers.pop_front()) {
            IntrusiveList<Subscription, BySession>::unlink(*sub);
            delete sub;
        }
        delete d;
    });
}

// ---- output helpers --------------------------------------------------------

void Relay::reply(Session& s, uint8_t cmd, uint8_t status) {
    const uint8_t frame[2] = {static_cast<uint8_t>(cmd | P2P_REPLY_BIT), status};
    host_.send_frame(s, frame, sizeof frame, nullptr, 0);
}

void Relay::fail(Session& s, uint8_t cmd, uint8_t reason) {
    reply(s, cmd, is_v2(s) ? reason : uint8_t{P2P_STATUS_FAILURE});
}

void Relay::deliver(Session& to, const Session& from, const uint8_t* data, size_t len) {
    if (to.ended) return;
    ++stats_.deliveries;
    if (is_v2(to)) {
        // DELIVER: [0x09][id_len][sender id][data]
        uint8_t prefix[2 + P2P_ID_MAX];
        const std::string& id = from.device->id;
        prefix[0] = P2P_EVT_DELIVER;
        prefix[1] = static_cast<uint8_t>(id.size());
        std::memcpy(prefix + 2, id.data(), id.size());
        host_.send_frame(to, prefix, 2 + id.size(), data, len);
    } else {
        const uint8_t prefix[1] = {P2P_CMD_SEND};
        host_.send_frame(to, prefix, 1, data, len);
    }
}

void Relay::send_presence(Session& to, const Device& device) {
    if (to.ended || !is_v2(to)) return;
    uint8_t frame[3 + P2P_ID_MAX];
    frame[0] = P2P_EVT_PRESENCE;
    frame[1] = device.online() ? P2P_PRESENCE_ONLINE : P2P_PRESENCE_OFFLINE;
    frame[2] = static_cast<uint8_t>(device.id.size());
    std::memcpy(frame + 3, device.id.data(), device.id.size());
    host_.send_frame(to, frame, 3 + device.id.size(), nullptr, 0);
}

void Relay::announce_presence(Device& device, const Session* except) {
    for (Subscription* sub = device.subscribers.front(); sub != nullptr;
         sub = device.subscribers.next(*sub)) {
        if (sub->subscriber != except) send_presence(*sub->subscriber, device);
    }
}

void Relay::send_bye(Session& s, uint8_t reason, const char* text) {
    if (!is_v2(s)) return;
    size_t n = std::strlen(text);
    if (n > P2P_BYE_TEXT_MAX) n = P2P_BYE_TEXT_MAX;
    const uint8_t prefix[2] = {P2P_EVT_BYE, reason};
    host_.send_frame(s, prefix, sizeof prefix, reinterpret_cast<const uint8_t*>(text), n);
}

// ---- device table ----------------------------------------------------------

Device* Relay::find_or_create(const uint8_t* id, size_t len) {
    Device* d = devices_.find(as_view(id, len));
    if (d != nullptr) return d;
    d = new Device;
    d->id.assign(reinterpret_cast<const char*>(id), len);
    if (!devices_.insert(d)) {
        delete d;
        return nullptr;
    }
    return d;
}

void Relay::maybe_free(Device* device) {
    if (device->online() || device->subscriber_count != 0) return;
    devices_.erase(device->key());
    delete device;
}

// Lets go of the session's id. announce: tell v2 subscribers it went offline
// (not on takeover, where the id stays online under a new holder).
void Relay::release_device(Session& s, bool announce) {
    Device* d = s.device;
    if (d == nullptr) return;
    s.device = nullptr;
    d->holder = nullptr;
    if (announce) announce_presence(*d, &s);
    maybe_free(d);
}

void Relay::drop_subscription(Subscription* sub) {
    Device* d = sub->device;
    Session* s = sub->subscriber;
    IntrusiveList<Subscription, ByDevice>::unlink(*sub);
    IntrusiveList<Subscription, BySession>::unlink(*sub);
    --d->subscriber_count;
    --s->subscription_count;
    delete sub;
    maybe_free(d);
}

void Relay::drop_all_subscriptions(Session& s) {
    while (Subscription* sub = s.subscriptions.front()) drop_subscription(sub);
}

// ---- commands --------------------------------------------------------------

void Relay::on_frame(Session& s, const uint8_t* payload, size_t len) {
    if (s.ended || len == 0) return;  // empty frames: ignored, no reply
    ++stats_.frames_in;
    uint8_t cmd = payload[0];
    const uint8_t* arg = payload + 1;
    size_t arg_len = len - 1;
    bool v2 = is_v2(s);
    switch (cmd) {
        case P2P_CMD_REGISTER: on_register(s, arg, arg_len); return;
        case P2P_CMD_SUBSCRIBE: on_subscribe(s, arg, arg_len); return;
        case P2P_CMD_SEND: on_send(s, arg, arg_len); return;
        case P2P_CMD_UNREGISTER: on_unregister(s); return;
        case P2P_CMD_UNSUBSCRIBE: on_unsubscribe(s, arg, arg_len); return;
        case P2P_CMD_CHECK_ALIVE: on_check_alive(s, arg, arg_len); return;
        case P2P_CMD_HEARTBEAT: reply(s, cmd, P2P_STATUS_OK); return;
        case P2P_CMD_HELLO: on_hello(s, arg, arg_len); return;
        case P2P_CMD_SEND_TO: on_send_to(s, arg, arg_len); return;
        case P2P_CMD_AUTH:
            // Token authentication is not configured in this server: the
            // command is known but unsupported (0 in a v1 session).
            fail(s, cmd, P2P_STATUS_UNSUPPORTED);
            return;
        default: break;
    }
    if (!v2) return;  // v1: the original ignored unknown commands silently
    if (cmd & P2P_REPLY_BIT) {
        LOG_INFO("%s: command byte 0x%02x is not a request", host_.describe(s), cmd);
        host_.close_session(s, CloseReason::protocol_error);
        return;
    }
    reply(s, cmd, P2P_STATUS_UNSUPPORTED);
}

void Relay::on_register(Session& s, const uint8_t* id, size_t len) {
    if (!valid_id_length(len)) {
        fail(s, P2P_CMD_REGISTER, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    std::string_view key = as_view(id, len);
    if (s.device != nullptr && s.device->key() == key) {
        reply(s, P2P_CMD_REGISTER, P2P_STATUS_OK);  // already ours
        return;
    }
    // Find or make the new id's entry first, so that a failure (the table
    // cannot grow) leaves the connection with the id it had.
    Device* d = find_or_create(id, len);
    if (d == nullptr) {
        fail(s, P2P_CMD_REGISTER, P2P_STATUS_LIMIT);
        return;
    }
    // A connection holds one id: registering another releases the first.
    release_device(s, true);
    char printable[300];
    Session* old = d->holder;
    if (old != nullptr) {
        // Takeover: the id stays online (no PRESENCE); the old holder is told
        // (v2), loses its subscriptions and is closed after its output.
        LOG_INFO("%s took over \"%s\" from %s", host_.describe(s),
                 printable_id(key, printable, sizeof printable), host_.describe(*old));
        old->device = nullptr;
        d->holder = &s;
        s.device = d;
        host_.close_session(*old, CloseReason::taken_over);
        reply(s, P2P_CMD_REGISTER, P2P_STATUS_OK);
        return;
    }
    d->holder = &s;
    s.device = d;
    LOG_INFO("%s registered \"%s\"", host_.describe(s),
             printable_id(key, printable, sizeof printable));
    reply(s, P2P_CMD_REGISTER, P2P_STATUS_OK);
    announce_presence(*d, &s);
}

void Relay::on_subscribe(Session& s, const uint8_t* id, size_t len) {
    bool v2 = is_v2(s);
    if (!valid_id_length(len) || (s.device != nullptr && s.device->key() == as_view(id, len))) {
        fail(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    Device* d = devices_.find(as_view(id, len));
    if (!v2 && (d == nullptr || !d->online())) {
        reply(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_FAILURE);
        return;
    }
    // Already subscribed? Scan the shorter side.
    bool already = false;
    if (d != nullptr) {
        if (s.subscription_count <= d->subscriber_count) {
            for (Subscription* sub = s.subscriptions.front(); sub; sub = s.subscriptions.next(*sub))
                if (sub->device == d) {
                    already = true;
                    break;
                }
        } else {
            for (Subscription* sub = d->subscribers.front(); sub; sub = d->subscribers.next(*sub))
                if (sub->subscriber == &s) {
                    already = true;
                    break;
                }
        }
    }
    if (!already) {
        if (s.subscription_count >= limits_.max_subs) {
            fail(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_LIMIT);
            return;
        }
        if (d == nullptr) d = find_or_create(id, len);
        if (d == nullptr) {
            fail(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_LIMIT);
            return;
        }
        auto* sub = new Subscription;
        sub->subscriber = &s;
        sub->device = d;
        d->subscribers.push_back(*sub);
        s.subscriptions.push_back(*sub);
        ++d->subscriber_count;
        ++s.subscription_count;
    }
    reply(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_OK);
    if (v2) send_presence(s, *d);
}

void Relay::on_send(Session& s, const uint8_t* data, size_t len) {
    if (s.device == nullptr) {
        fail(s, P2P_CMD_SEND, P2P_STATUS_NOT_REGISTERED);
        return;
    }
    Device& d = *s.device;
    if (d.subscriber_count == 0) ++stats_.dropped_no_subscriber;
    for (Subscription* sub = d.subscribers.front(); sub != nullptr; sub = d.subscribers.next(*sub)) {
        if (sub->subscriber != &s) deliver(*sub->subscriber, s, data, len);
    }
    if (acks_sends(s)) reply(s, P2P_CMD_SEND, P2P_STATUS_OK);
}

void Relay::on_unregister(Session& s) {
    if (s.device != nullptr) {
        char printable[300];
        LOG_INFO("%s unregistered \"%s\"", host_.describe(s),
                 printable_id(s.device->key(), printable, sizeof printable));
    }
    release_device(s, true);
    drop_all_subscriptions(s);
    reply(s, P2P_CMD_UNREGISTER, P2P_STATUS_OK);
}

void Relay::on_unsubscribe(Session& s, const uint8_t* id, size_t len) {
    if (valid_id_length(len)) {
        Device* d = devices_.find(as_view(id, len));
        if (d != nullptr) {
            for (Subscription* sub = s.subscriptions.front(); sub; sub = s.subscriptions.next(*sub)) {
                if (sub->device == d) {
                    drop_subscription(sub);
                    break;
                }
            }
        }
    }
    reply(s, P2P_CMD_UNSUBSCRIBE, P2P_STATUS_OK);  // idempotent, always 1
}

void Relay::on_check_alive(Session& s, const uint8_t* id, size_t len) {
    if (!valid_id_length(len)) {
        fail(s, P2P_CMD_CHECK_ALIVE, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    Device* d = devices_.find(as_view(id, len));
    // Offline is an answer, not a failure: 86 00 in every version.
    reply(s, P2P_CMD_CHECK_ALIVE, d != nullptr && d->online() ? P2P_STATUS_OK : P2P_STATUS_FAILURE);
}

void Relay::on_hello(Session& s, const uint8_t* args, size_t len) {
    // HELLO [version u8][flags u8]. Every failure is the 2-byte 88 04, in
    // any session, and leaves the session as it was.
    if (len != 2 || args[0] == 0 || (args[1] & ~P2P_HELLO_FLAG_QUIET) != 0) {
        reply(s, P2P_CMD_HELLO, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    uint8_t version = args[0] < P2P_VERSION_MAX ? args[0] : static_cast<uint8_t>(P2P_VERSION_MAX);
    s.version = version;
    s.quiet = (args[1] & P2P_HELLO_FLAG_QUIET) != 0;
    uint8_t out[P2P_HELLO_REPLY_SIZE] = {
        static_cast<uint8_t>(P2P_CMD_HELLO | P2P_REPLY_BIT), P2P_STATUS_OK, version};
    uint32_t fields[2] = {limits_.max_frame, limits_.idle_timeout_s};
    for (int f = 0; f < 2; ++f)
        for (int i = 0; i < 4; ++i)
            out[3 + 4 * f + i] = static_cast<uint8_t>(fields[f] >> (24 - 8 * i));
    host_.send_frame(s, out, sizeof out, nullptr, 0);
    LOG_DEBUG("%s negotiated protocol v%u%s", host_.describe(s), version,
              s.quiet ? " (quiet)" : "");
}

void Relay::on_send_to(Session& s, const uint8_t* args, size_t len) {
    // SEND_TO [id_len][target id][data]. Reasons, first that applies:
    // 4 bad argument, 2 not registered, 3 offline.
    if (len < 1 || args[0] == 0 || static_cast<size_t>(args[0]) > len - 1) {
        fail(s, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    size_t id_len = args[0];
    std::string_view target_id = as_view(args + 1, id_len);
    if (s.device != nullptr && s.device->key() == target_id) {
        fail(s, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    if (s.device == nullptr) {
        fail(s, P2P_CMD_SEND_TO, P2P_STATUS_NOT_REGISTERED);
        return;
    }
    Device* d = devices_.find(target_id);
    if (d == nullptr || !d->online()) {
        fail(s, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
        return;
    }
    deliver(*d->holder, s, args + 1 + id_len, len - 1 - id_len);
    if (acks_sends(s)) reply(s, P2P_CMD_SEND_TO, P2P_STATUS_OK);
}

// ---- end of a session ------------------------------------------------------

void Relay::end_session(Session& s, CloseReason reason) {
    if (!s.ended) {
        uint8_t bye = 0;
        const char* text = "";
        switch (reason) {
            case CloseReason::taken_over: bye = P2P_BYE_TAKEN_OVER; text = "device id registered by another connection"; break;
            case CloseReason::idle_timeout: bye = P2P_BYE_IDLE_TIMEOUT; text = "idle timeout"; break;
            case CloseReason::slow_consumer: bye = P2P_BYE_SLOW_CONSUMER; text = "output buffer limit exceeded: not reading fast enough"; break;
            case CloseReason::shutdown: bye = P2P_BYE_SHUTDOWN; text = "server shutting down"; break;
            case CloseReason::protocol_error: bye = P2P_BYE_PROTOCOL_ERROR; text = "protocol error"; break;
            case CloseReason::not_authorized: bye = P2P_BYE_NOT_AUTHORIZED; text = "not authorized"; break;
            case CloseReason::limit: bye = P2P_BYE_LIMIT; text = "limit reached"; break;
            case CloseReason::peer_closed:
            case CloseReason::io_error: break;
        }
        // Ended first: from now on the host accepts only this BYE for it, even
        // from a session cut off for exceeding its output cap.
        s.ended = true;
        if (bye != 0) send_bye(s, bye, text);
    }
    if (s.device != nullptr) {
        char printable[300];
        LOG_DEBUG("%s released \"%s\"", host_.describe(s),
                  printable_id(s.device->key(), printable, sizeof printable));
    }
    release_device(s, true);
    drop_all_subscriptions(s);
}
