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

#include "codec.h"
#include "log.h"
#include "protocol.h"

namespace {

std::string_view as_view(const uint8_t* p, size_t n) {
    return std::string_view(reinterpret_cast<const char*>(p), n);
}

const uint8_t* as_bytes(std::string_view s) { return reinterpret_cast<const uint8_t*>(s.data()); }

bool is_v2(const Session& s) { return s.version >= P2P_VERSION_2; }

// QUIET (v2 only) leaves successful SEND and SEND_TO unacknowledged.
bool acks_sends(const Session& s) { return !(s.quiet && is_v2(s)); }

// An id for a log line; see log_escape().
struct PrintableId {
    explicit PrintableId(std::string_view id) { log_escape(id.data(), id.size(), text, sizeof text); }
    char text[kLogEscapeCap];
};

}  // namespace

Relay::Relay(const RelayLimits& limits, const HashKey& key) : limits_(limits), devices_(key) {}

// ---- output helpers --------------------------------------------------------

void Relay::reply(Session& s, uint8_t cmd, uint8_t status) {
    uint8_t frame[P2P_REPLY_SIZE];
    s.enqueue(frame, p2p_encode_reply(frame, cmd, status), nullptr, 0);
}

void Relay::fail(Session& s, uint8_t cmd, uint8_t reason) {
    reply(s, cmd, is_v2(s) ? reason : uint8_t{P2P_STATUS_FAILURE});
}

void Relay::deliver(Session& to, const Session& from, const uint8_t* data, size_t len) {
    if (to.ended) return;
    ++stats_.deliveries;
    uint8_t head[P2P_ID_HEAD_MAX];
    size_t n;
    if (is_v2(to)) {
        std::string_view id = from.device->key();
        n = p2p_encode_deliver_head(head, as_bytes(id), id.size());
    } else {
        n = p2p_encode_send_head(head);
    }
    to.enqueue(head, n, data, len);
}

void Relay::send_presence(Session& to, const Device& device) {
    if (to.ended || !is_v2(to)) return;
    uint8_t frame[P2P_PRESENCE_MAX];
    size_t n = p2p_encode_presence(frame, device.online() ? P2P_PRESENCE_ONLINE : P2P_PRESENCE_OFFLINE,
                                   as_bytes(device.key()), device.key().size());
    to.enqueue(frame, n, nullptr, 0);
}

void Relay::announce_presence(Device& device, const Session* except) {
    for (Subscription* sub = device.subscribers.front(); sub != nullptr;
         sub = device.subscribers.next(*sub)) {
        if (sub->subscriber != except) send_presence(*sub->subscriber, device);
    }
}

void Relay::release_id(Session& s) {
    Device* d = devices_.release(s);
    if (d == nullptr) return;
    announce_presence(*d, &s);
    devices_.collect(d);
}

// ---- commands --------------------------------------------------------------

void Relay::on_frame(Session& s, const uint8_t* payload, size_t len) {
    if (s.ended || len == 0) return;
    ++stats_.frames_in;
    p2p_request req;
    bool ok = p2p_request_parse(payload, len, &req) == P2P_PARSE_OK;
    std::string_view id = as_view(req.id, req.id_len);
    switch (req.cmd) {
        case P2P_CMD_REGISTER:
            if (ok) on_register(s, id);
            else fail(s, req.cmd, P2P_STATUS_BAD_ARGUMENT);
            return;
        case P2P_CMD_SUBSCRIBE:
            if (ok) on_subscribe(s, id);
            else fail(s, req.cmd, P2P_STATUS_BAD_ARGUMENT);
            return;
        case P2P_CMD_SEND: on_send(s, req.data, req.data_len); return;
        case P2P_CMD_UNREGISTER: on_unregister(s); return;
        case P2P_CMD_UNSUBSCRIBE:
            // Idempotent: an id that cannot exist is not subscribed to.
            if (ok) on_unsubscribe(s, id);
            else reply(s, req.cmd, P2P_STATUS_OK);
            return;
        case P2P_CMD_CHECK_ALIVE:
            if (ok) on_check_alive(s, id);
            else fail(s, req.cmd, P2P_STATUS_BAD_ARGUMENT);
            return;
        case P2P_CMD_HEARTBEAT: reply(s, req.cmd, P2P_STATUS_OK); return;
        case P2P_CMD_HELLO:
            // Every HELLO failure is the 2-byte 88 04, in any session.
            if (ok) on_hello(s, req.version, req.flags);
            else reply(s, req.cmd, P2P_STATUS_BAD_ARGUMENT);
            return;
        case P2P_CMD_SEND_TO:
            if (ok) on_send_to(s, id, req.data, req.data_len);
            else fail(s, req.cmd, P2P_STATUS_BAD_ARGUMENT);
            return;
        case P2P_CMD_AUTH:
            // Token authentication is not configured in this server: the
            // command is known but unsupported (0 in a v1 session).
            fail(s, req.cmd, P2P_STATUS_UNSUPPORTED);
            return;
        default: break;
    }
    if (!is_v2(s)) return;  // v1: the original ignored unknown commands silently
    if (req.cmd & P2P_REPLY_BIT) {
        LOG_INFO("%s: command byte 0x%02x is not a request", s.label(), req.cmd);
        s.close(CloseReason::protocol_error);
        return;
    }
    reply(s, req.cmd, P2P_STATUS_UNSUPPORTED);
}

void Relay::on_register(Session& s, std::string_view id) {
    if (s.device != nullptr && s.device->key() == id) {
        reply(s, P2P_CMD_REGISTER, P2P_STATUS_OK);  // already ours
        return;
    }
    // Find or make the new id's entry first, so that a failure (no memory)
    // leaves the connection with the id it had.
    Device* d = devices_.find_or_create(id);
    if (d == nullptr) {
        fail(s, P2P_CMD_REGISTER, P2P_STATUS_LIMIT);
        return;
    }
    // A connection holds one id: registering another releases the first.
    release_id(s);
    Session* old = devices_.claim(s, *d);
    if (old != nullptr) {
        // Takeover: the id stays online (no PRESENCE); the old holder is told
        // (v2), loses its subscriptions and is closed after its output.
        ++stats_.takeovers;
        LOG_INFO("%s took over \"%s\" from %s", s.label(), PrintableId(id).text, old->label());
        old->close(CloseReason::taken_over);
        reply(s, P2P_CMD_REGISTER, P2P_STATUS_OK);
        return;
    }
    LOG_INFO("%s registered \"%s\"", s.label(), PrintableId(id).text);
    reply(s, P2P_CMD_REGISTER, P2P_STATUS_OK);
    announce_presence(*d, &s);
}

void Relay::on_subscribe(Session& s, std::string_view id) {
    bool v2 = is_v2(s);
    if (s.device != nullptr && s.device->key() == id) {
        fail(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    Device* d = devices_.find(id);
    if (!v2 && (d == nullptr || !d->online())) {
        reply(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_FAILURE);
        return;
    }
    if (d == nullptr || !devices_.subscribed(s, *d)) {
        if (s.subscription_count >= limits_.max_subs) {
            ++stats_.subscribe_limit;
            fail(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_LIMIT);
            return;
        }
        if (d == nullptr) d = devices_.find_or_create(id);
        if (d == nullptr || !devices_.subscribe(s, *d)) {
            if (d != nullptr) devices_.collect(d);
            fail(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_LIMIT);
            return;
        }
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
    if (s.device != nullptr)
        LOG_INFO("%s unregistered \"%s\"", s.label(), PrintableId(s.device->key()).text);
    release_id(s);
    devices_.unsubscribe_all(s);
    reply(s, P2P_CMD_UNREGISTER, P2P_STATUS_OK);
}

void Relay::on_unsubscribe(Session& s, std::string_view id) {
    Device* d = devices_.find(id);
    if (d != nullptr) devices_.unsubscribe(s, *d);
    reply(s, P2P_CMD_UNSUBSCRIBE, P2P_STATUS_OK);  // idempotent, always 1
}

void Relay::on_check_alive(Session& s, std::string_view id) {
    Device* d = devices_.find(id);
    // Offline is an answer, not a failure: 86 00 in every version.
    reply(s, P2P_CMD_CHECK_ALIVE, d != nullptr && d->online() ? P2P_STATUS_OK : P2P_STATUS_FAILURE);
}

void Relay::on_hello(Session& s, uint8_t version, uint8_t flags) {
    // A failure leaves the session as it was.
    if (version == 0 || (flags & ~P2P_HELLO_FLAG_QUIET) != 0) {
        reply(s, P2P_CMD_HELLO, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    uint8_t granted = version < P2P_VERSION_MAX ? version : static_cast<uint8_t>(P2P_VERSION_MAX);
    s.version = granted;
    s.quiet = (flags & P2P_HELLO_FLAG_QUIET) != 0;
    uint8_t out[P2P_HELLO_REPLY_SIZE];
    s.enqueue(out, p2p_encode_hello_reply(out, granted, limits_.max_frame, limits_.idle_timeout_s),
              nullptr, 0);
    LOG_DEBUG("%s negotiated protocol v%u%s", s.label(), granted, s.quiet ? " (quiet)" : "");
}

void Relay::on_send_to(Session& s, std::string_view target, const uint8_t* data, size_t len) {
    // Reasons, first that applies: 4 bad argument (own id), 2 not
    // registered, 3 offline.
    if (s.device != nullptr && s.device->key() == target) {
        fail(s, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    if (s.device == nullptr) {
        fail(s, P2P_CMD_SEND_TO, P2P_STATUS_NOT_REGISTERED);
        return;
    }
    Device* d = devices_.find(target);
    if (d == nullptr || !d->online()) {
        fail(s, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
        return;
    }
    deliver(*d->holder, s, data, len);
    if (acks_sends(s)) reply(s, P2P_CMD_SEND_TO, P2P_STATUS_OK);
}

// ---- end of a session ------------------------------------------------------

void Relay::end_session(Session& s, CloseReason reason) {
    if (!s.ended) {
        const CloseReasonInfo& info = close_reason_info(reason);
        // Ended first: from now on the session accepts only this BYE, even
        // one cut off for exceeding its output cap.
        s.ended = true;
        if (info.bye != 0 && is_v2(s)) {
            uint8_t bye[P2P_BYE_MAX];
            s.enqueue(bye, p2p_encode_bye(bye, info.bye, info.bye_text, std::strlen(info.bye_text)),
                      nullptr, 0);
        }
    }
    if (s.device != nullptr)
        LOG_DEBUG("%s released \"%s\"", s.label(), PrintableId(s.device->key()).text);
    release_id(s);
    devices_.unsubscribe_all(s);
}
