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
//  - No spoofing: a v1 session cannot tell senders apart (a delivery is
//    [03] + data), so SEND_TO reaches a v1 session only from a device it
//    subscribes to; anyone else gets status 5.
//  - No silent hijack: a takeover tells the id's v2 subscribers, PRESENCE
//    offline then online.
#include "relay.h"

#include <cstdio>
#include <cstring>
#include <string_view>

#include "codec.h"
#include "log.h"
#include "protocol.h"
#include "relay_helpers.h"

using namespace relay_detail;

namespace {

// QUIET (v2 only) leaves successful SEND and SEND_TO unacknowledged.
bool acks_sends(const Session& s) { return !(s.quiet && is_v2(s)); }

const Clock* system_clock() {
    static const MonotonicClock clock;
    return &clock;
}

uint8_t state_of(bool online) { return online ? P2P_PRESENCE_ONLINE : P2P_PRESENCE_OFFLINE; }

}  // namespace

Relay::Relay(const RelayLimits& limits, const HashKey& key, const Clock* clock,
             MemoryBudget* budget)
    : v1_head_len_(p2p_encode_send_head(v1_head_)),
      limits_(limits),
      clock_(clock != nullptr ? clock : system_clock()),
      devices_(key, limits.max_devices, budget),
      direct_(limits.max_direct_attempts) {}

// ---- output helpers --------------------------------------------------------

void Relay::reply(Session& s, uint8_t cmd, uint8_t status) {
    uint8_t frame[P2P_REPLY_SIZE];
    s.enqueue(frame, p2p_encode_reply(frame, cmd, status), nullptr, 0);
}

void Relay::fail(Session& s, uint8_t cmd, uint8_t reason) {
    reply(s, cmd, is_v2(s) ? reason : uint8_t{P2P_STATUS_FAILURE});
}

void Relay::deliver(Session& to, DeliveryHeads& heads, const uint8_t* data, size_t len) {
    if (to.ended) return;
    ++stats_.deliveries;
    if (is_v2(to)) {
        if (heads.v2_len == 0)
            heads.v2_len = p2p_encode_deliver_head(heads.v2, as_bytes(heads.from), heads.from.size());
        to.enqueue_delivery(heads.from, heads.v2, heads.v2_len, data, len);
    } else {
        to.enqueue_delivery(heads.from, v1_head_, v1_head_len_, data, len);
    }
}

void Relay::send_state(Session& to, const Device& device, uint8_t state) {
    if (to.ended || !is_v2(to)) return;
    uint8_t frame[P2P_PRESENCE_MAX];
    size_t n = p2p_encode_presence(frame, state, as_bytes(device.key()), device.key().size());
    to.enqueue(frame, n, nullptr, 0);
}

// What subscribers were last told, which SUBSCRIBE repeats: the id's state,
// unless a change is being held back (then the state before it).
void Relay::send_presence(Session& to, const Device& device) {
    send_state(to, device, state_of(device.presence.announced_online));
}

void Relay::announce_state(Device& device, const Session* except, uint8_t state) {
    device.presence.announced_online = state == P2P_PRESENCE_ONLINE;
    for (Subscription* sub = device.subscribers.front(); sub != nullptr;
         sub = device.subscribers.next(*sub)) {
        if (sub->subscriber != except) send_state(*sub->subscriber, device, state);
    }
}

void Relay::announce_presence(Device& device, const Session* except) {
    announce_state(device, except, state_of(held(device)));
}

void Relay::count_change(Device& device) {
    PresenceState& p = device.presence;
    uint64_t now = clock_->now_ms();
    if (now - p.window_start_ms >= kPresenceWindowMs) {
        p.window_start_ms = now;
        p.changes = 0;
    }
    if (p.changes != UINT8_MAX) ++p.changes;
}

void Relay::presence_changed(Device& device, const Session* cause) {
    PresenceState& p = device.presence;
    if (IntrusiveList<Device, PresenceDampedTag>::linked(device)) return;  // held back already
    if (device.subscriber_count == 0) {
        p.announced_online = held(device);  // nobody to tell
        return;
    }
    count_change(device);
    if (p.changes <= kPresenceChanges) {
        announce_presence(device, cause);
        return;
    }
    ++stats_.presence_held;
    damped_.push_back(device);  // on_tick() tells the outcome
}

void Relay::flush_presence(Device& device) {
    // Only a damped device's subscribers can have been told something
    // else than its state (check_invariants): the common case, every SEND,
    // costs no lookup.
    if (!IntrusiveList<Device, PresenceDampedTag>::linked(device)) return;
    IntrusiveList<Device, PresenceDampedTag>::unlink(device);
    if (held(device) == device.presence.announced_online) return;
    count_change(device);
    announce_presence(device, device.holder);
}

void Relay::on_tick() {
    uint64_t now = clock_->now_ms();
    Device* d = damped_.front();
    while (d != nullptr) {
        Device* next = damped_.next(*d);
        PresenceState& p = d->presence;
        if (now - p.window_start_ms >= kPresenceWindowMs) {
            // The outcome starts a new window and counts in it.
            p.window_start_ms = now;
            p.changes = 0;
            flush_presence(*d);
        }
        d = next;
    }
}

bool Relay::allow_takeover(Device& device, const Session& taker) {
    PresenceState& p = device.presence;
    uint64_t now = clock_->now_ms();
    if (now - p.takeover_start_ms >= kTakeoverWindowMs) {
        p.takeover_start_ms = now;
        p.takeovers = 0;
        p.fight_logged = false;
    }
    if (p.takeovers < kTakeovers) {
        ++p.takeovers;
        return true;
    }
    ++stats_.takeovers_refused;
    if (!p.fight_logged) {
        p.fight_logged = true;
        LOG_WARN("takeover fight over \"%s\": %s refused after %u takeovers in %llu s; more are "
                 "refused until the window ends",
                 PrintableId(device.key()).text, taker.label(), static_cast<unsigned>(kTakeovers),
                 static_cast<unsigned long long>(kTakeoverWindowMs / 1000));
    }
    return false;
}

void Relay::release_id(Session& s) {
    Device* d = devices_.release(s);
    if (d == nullptr) return;
    if (cluster_ != nullptr) cluster_->released(d->key());
    presence_changed(*d, &s);
    devices_.collect(d);
}

bool Relay::check_invariants(char* why, size_t cap) const {
    if (!devices_.check_invariants(why, cap)) return false;
    for (const Device* d = damped_.front(); d != nullptr; d = damped_.next(*d)) {
        if (devices_.find(d->key()) != d) {
            std::snprintf(why, cap, "damped device not in the table");
            return false;
        }
    }
    // Subscribers were told the state of every device whose changes are
    // not being held back (flush_presence relies on it).
    bool told = true;
    devices_.for_each([&](const Device* d) {
        if (told && d->subscriber_count != 0 &&
            !IntrusiveList<Device, PresenceDampedTag>::linked(*d) &&
            d->presence.announced_online != held(*d))
            told = false;
    });
    if (!told) std::snprintf(why, cap, "subscribers were told another state than the device's");
    return told;
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
        case P2P_CMD_AUTH: on_auth(s, req, ok); return;
        case P2P_CMD_DIRECT_OFFER ... P2P_CMD_DIRECT_RESULT:
            if (is_v2(s)) on_direct(s, payload, len);
            return;  // v1 ignores them, as every command it does not know
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
    if (!may_register(id)) {
        LOG_EVENT(LogLevel::info, s.log_event("register_refused", id, "protected"),
                  "%s: REGISTER of \"%s\" refused: only AUTH may claim it", s.label(),
                 PrintableId(id).text);
        fail(s, P2P_CMD_REGISTER, P2P_STATUS_NOT_AUTHORIZED);
        return;
    }
    // Find or make the new id's entry first, so that a failure (no memory,
    // the device limit, a takeover fight) leaves the connection with the id
    // it had.
    Device* d = devices_.find_or_create(id);
    if (d == nullptr || (held(*d) && !allow_takeover(*d, s))) {
        fail(s, P2P_CMD_REGISTER, P2P_STATUS_LIMIT);
        return;
    }
    bool takeover = claim_id(s, *d, false);
    reply(s, P2P_CMD_REGISTER, P2P_STATUS_OK);
    announce_claim(s, *d, takeover);
}

bool Relay::claim_id(Session& s, Device& d, bool authenticated) {
    // A connection holds one id: claiming another releases the first.
    release_id(s);
    bool elsewhere = !d.online() && cluster_ != nullptr && cluster_->held_elsewhere(d.key());
    Session* old = devices_.claim(s, d);
    if (cluster_ != nullptr) cluster_->claimed(d.key(), authenticated);
    if (old == nullptr && elsewhere) {
        // The other relay closes its holder when our claim reaches it.
        ++stats_.takeovers;
        LOG_EVENT(LogLevel::info, s.log_event("took_over", d.key()),
                  "%s took over \"%s\" from another relay", s.label(), PrintableId(d.key()).text);
        return true;
    }
    if (old == nullptr) {
        LOG_EVENT(LogLevel::info, s.log_event("registered", d.key()), "%s registered \"%s\"",
                  s.label(), PrintableId(d.key()).text);
        return false;
    }
    // Takeover: the old holder is told (v2), loses its subscriptions and is
    // closed after its output.
    ++stats_.takeovers;
    LOG_EVENT(LogLevel::info, s.log_event("took_over", d.key()), "%s took over \"%s\" from %s",
              s.label(), PrintableId(d.key()).text, old->label());
    old->close(CloseReason::taken_over);
    return true;
}

void Relay::announce_claim(Session& s, Device& d, bool takeover) {
    // A takeover is not silent: the subscribers see the old holder go and
    // the new one come, so that nobody takes a hijacked id for the device
    // they trusted without being told. It is never held back by damping
    // (takeovers have their own bound, allow_takeover), but counts in it.
    if (takeover)
        announce_takeover(d, &s);
    else
        presence_changed(d, &s);
    // The new id may reach fewer devices than the old one did.
    if (auth_) drop_unreachable_subscriptions(s);
}

void Relay::announce_takeover(Device& d, const Session* except) {
    IntrusiveList<Device, PresenceDampedTag>::unlink(d);
    count_change(d);
    count_change(d);
    announce_state(d, except, P2P_PRESENCE_OFFLINE);
    announce_state(d, except, P2P_PRESENCE_ONLINE);
}

void Relay::on_subscribe(Session& s, std::string_view id) {
    bool v2 = is_v2(s);
    if (s.device != nullptr && s.device->key() == id) {
        fail(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    if (!may_reach(id, s)) {
        fail(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_NOT_AUTHORIZED);
        return;
    }
    Device* d = devices_.find(id);
    if (!v2 && !held(id)) {
        reply(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_FAILURE);
        return;
    }
    if (d == nullptr || !devices_.subscribed(s, *d)) {
        if (s.subscription_count >= limits_.max_subs) {
            ++stats_.subscribe_limit;
            fail(s, P2P_CMD_SUBSCRIBE, P2P_STATUS_LIMIT);
            return;
        }
        if (d == nullptr) {
            d = devices_.find_or_create(id);
            // A new entry: what subscribers know of it is its state now
            // (offline, unless another relay holds it).
            if (d != nullptr) d->presence.announced_online = held(*d);
        }
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
    flush_presence(d);  // PRESENCE online before the id's first delivery
    // In a cluster, subscribers elsewhere are not known here.
    if (d.subscriber_count == 0 && cluster_ == nullptr) ++stats_.dropped_no_subscriber;
    DeliveryHeads heads(d.key());
    for (Subscription* sub = d.subscribers.front(); sub != nullptr; sub = d.subscribers.next(*sub)) {
        if (sub->subscriber != &s) deliver(*sub->subscriber, heads, data, len);
    }
    if (cluster_ != nullptr) cluster_->sent(d.key(), data, len);
    if (acks_sends(s)) reply(s, P2P_CMD_SEND, P2P_STATUS_OK);
}

void Relay::on_unregister(Session& s) {
    if (s.device != nullptr)
        LOG_EVENT(LogLevel::info, s.log_event("unregistered", s.device->key()),
                  "%s unregistered \"%s\"", s.label(), PrintableId(s.device->key()).text);
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
    // Offline is an answer, not a failure: 86 00 in every version. A device
    // the caller may not reach is offline to it: the answer reveals nothing.
    bool online = held(id) && may_reach(id, s);
    reply(s, P2P_CMD_CHECK_ALIVE, online ? P2P_STATUS_OK : P2P_STATUS_FAILURE);
}

void Relay::on_hello(Session& s, uint8_t version, uint8_t flags) {
    // A failure leaves the session as it was.
    if (version == 0 || (flags & ~P2P_HELLO_FLAGS_KNOWN) != 0) {
        reply(s, P2P_CMD_HELLO, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    uint8_t granted = version < P2P_VERSION_MAX ? version : static_cast<uint8_t>(P2P_VERSION_MAX);
    s.version = granted;
    s.quiet = (flags & P2P_HELLO_FLAG_QUIET) != 0;
    s.drop_deliveries = (flags & P2P_HELLO_FLAG_DROP) != 0;
    uint8_t out[P2P_HELLO_REPLY_SIZE];
    s.enqueue(out, p2p_encode_hello_reply(out, granted, limits_.max_frame, limits_.idle_timeout_s),
              nullptr, 0);
    LOG_DEBUG("%s negotiated protocol v%u%s%s", s.label(), granted, s.quiet ? " (quiet)" : "",
              s.drop_deliveries ? " (drop)" : "");
}

void Relay::on_send_to(Session& s, std::string_view target, const uint8_t* data, size_t len) {
    // Reasons, first that applies: 4 bad argument (own id), 2 not
    // registered, 5 not among the target's PEERS (before 3, so that the
    // answer reveals nothing about a device the sender may not reach), 3
    // offline, 5 a v1 target that does not subscribe to the sender.
    if (s.device != nullptr && s.device->key() == target) {
        fail(s, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    if (s.device == nullptr) {
        fail(s, P2P_CMD_SEND_TO, P2P_STATUS_NOT_REGISTERED);
        return;
    }
    if (!may_reach(target, s)) {
        fail(s, P2P_CMD_SEND_TO, P2P_STATUS_NOT_AUTHORIZED);
        return;
    }
    Device* d = devices_.find(target);
    if (d == nullptr || !d->online()) {
        if (cluster_ == nullptr || !cluster_->held_elsewhere(target)) {
            fail(s, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
            return;
        }
        // Held on another relay: the v1 rule below is checked there (a
        // refusal is counted there, not answered here: relay_cluster.cpp).
        flush_presence(*s.device);
        cluster_->sent_to(s.device->key(), target, data, len);
        if (acks_sends(s)) reply(s, P2P_CMD_SEND_TO, P2P_STATUS_OK);
        return;
    }
    // A v1 session receives [03] + data, byte-identical whoever sent it: it
    // takes it as coming from the devices it subscribes to, so only they
    // may write to it.
    if (!is_v2(*d->holder) && !devices_.subscribed(*d->holder, *s.device)) {
        fail(s, P2P_CMD_SEND_TO, P2P_STATUS_NOT_AUTHORIZED);
        return;
    }
    flush_presence(*s.device);
    DeliveryHeads heads(s.device->key());
    deliver(*d->holder, heads, data, len);
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
    s.auth_challenge.reset();
}
