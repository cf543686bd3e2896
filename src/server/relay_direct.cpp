// relay_direct.cpp - the Relay's part in direct paths (stupidp2p(7),
// DIRECT PATHS): it introduces two devices to each other and steps aside.
//
// The relay is the rendezvous: DIRECT_OFFER goes to the target with the
// address the relay sees for the offerer's connection (its reflexive
// candidate: what a NAT made of it) and a fresh attempt id and secret,
// which the offerer gets in the reply; DIRECT_ANSWER comes back the same
// way with the target's, and DIRECT_SYNC tells the target when to dial.
// DIRECT_MARK, the marker that orders a switch between the relay and the
// direct path, travels like a SEND_TO: in the order of the sender's other
// relayed messages. DIRECT_RESULT is only counted (metrics).
//
// Rules, and why:
//  - v2 only: a v1 session ignores these bytes, as it ignores every command
//    the original did not know, and is never offered a path.
//  - The two devices must be allowed to reach each other both ways (PEERS):
//    a direct connection carries messages in both directions, beyond the
//    relay's eye, so an offer between devices of which only one may reach
//    the other is refused (status 5).
//  - Offers are rate-limited per connection (kDirectOffers per
//    kDirectOfferWindowMs, status 7): each makes the target's device dial
//    out, and a client must not make others dial at its command.
//  - The relay keeps nothing that locates a device: an attempt is two ids,
//    two session ids and flags (direct_attempts.h), forgotten when both
//    sides reported, when declined, or after kDirectAttemptTtlMs.
//    Candidates, nonces and the secret are forwarded and forgotten.
//  - ANSWER and SYNC are forwarded only for an open attempt, by its target
//    and its offerer respectively, once each, and only to the very
//    connection that took part (a device that reconnected meanwhile has
//    forgotten the attempt).
//
// All forwarding goes through forward_direct(), which routes a step to the
// relay of the cluster holding the peer when it is not held here
// (ClusterHooks::sent_direct; the message is doc/cluster.md's "direct").
// Across relays:
//  - The attempt lives at the offerer's relay only, which draws its id and
//    secret and adds the offerer's reflexive candidate (the address it
//    sees) before publishing; the target's relay keeps nothing, adds the
//    target's reflexive candidate to its ANSWER, and sends the ANSWER and
//    the target's RESULT back to the offerer's relay, where the attempt
//    decides (remote_direct_answer, remote_direct_result).
//  - A relay is named by its incarnation and a connection by its session
//    id there, so "only that connection" holds across relays: the attempt
//    records the target's relay at the offer and the answering connection
//    with the ANSWER; the SYNC goes only to that connection, which its
//    relay checks (a takeover there meanwhile: dropped and counted), and
//    only if the target's relay still holds the id (moved to another
//    relay: 3, as offline).
//  - PEERS are checked at the sender's relay before it answers, and again
//    at the receiving relay (all relays load the same auth file).
//  - What the sender's relay cannot know is decided at the other relay,
//    which drops and counts what fails (stupidp2p_cluster_direct_total):
//    a v1 target, a takeover there, an ANSWER or RESULT for an attempt the
//    offerer's relay no longer has. The sender was answered 1, as for a
//    SEND_TO to a v1 device on another relay (relay_cluster.cpp).
#include <cerrno>
#include <cstring>

#include "log.h"
#include "os_random.h"
#include "relay.h"
#include "relay_helpers.h"

using namespace relay_detail;

namespace {

std::string_view peer_of(const p2p_direct& d) { return as_view(d.id, d.id_len); }

// The session's reflexive candidate, first in the list it is forwarded
// with, then its own: out holds P2P_DIRECT_EVENT_CANDIDATES_MAX.
size_t candidates_with_reflexive(const Session& s, const p2p_direct& d, p2p_candidate* out) {
    size_t n = 0;
    SessionAddress a;
    if (s.address(&a) && a.port != 0) {
        p2p_candidate& c = out[n++];
        c.kind = P2P_CANDIDATE_REFLEXIVE;
        c.port = a.port;
        c.addr_len = a.len;
        std::memcpy(c.addr, a.bytes, a.len);
    }
    for (size_t i = 0; i < d.candidate_count; ++i) out[n++] = d.candidates[i];
    return n;
}

}  // namespace

void Relay::on_direct(Session& s, const uint8_t* payload, size_t len) {
    p2p_direct d;
    uint8_t cmd = payload[0];
    // Every OFFER counts in the connection's window, malformed or refused
    // ones too: the limit is on what a client makes the server do.
    bool over_limit = false;
    if (cmd == P2P_CMD_DIRECT_OFFER) {
        uint64_t now = clock_->now_ms();
        if (now - s.direct_window_start_ms >= kDirectOfferWindowMs) {
            s.direct_window_start_ms = now;
            s.direct_offers = 0;
        }
        over_limit = s.direct_offers >= kDirectOffers;
        if (!over_limit) ++s.direct_offers;
    }
    if (over_limit) {
        ++stats_.direct_offers_limited;
        reply(s, cmd, P2P_STATUS_LIMIT);
        return;
    }
    if (p2p_direct_parse(payload, len, &d) != P2P_PARSE_OK ||
        (s.device != nullptr && s.device->key() == peer_of(d))) {
        if (cmd == P2P_CMD_DIRECT_OFFER) ++stats_.direct_offers_refused;
        reply(s, cmd, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    if (s.device == nullptr) {
        if (cmd == P2P_CMD_DIRECT_OFFER) ++stats_.direct_offers_refused;
        reply(s, cmd, P2P_STATUS_NOT_REGISTERED);
        return;
    }
    switch (cmd) {
        case P2P_CMD_DIRECT_OFFER: direct_offer(s, d); return;
        case P2P_CMD_DIRECT_ANSWER: direct_answer(s, d); return;
        case P2P_CMD_DIRECT_SYNC: direct_sync(s, d); return;
        case P2P_CMD_DIRECT_MARK: direct_mark(s, d); return;
        default: direct_result(s, d); return;
    }
}

uint64_t Relay::remote_holder(std::string_view id) const {
    const Device* d = devices_.find(id);
    if (cluster_ == nullptr || (d != nullptr && d->online())) return 0;
    return cluster_->holder_relay(id);
}

uint8_t Relay::forward_direct(Session& from, std::string_view target, bool both_ways,
                              DirectEnd only, const uint8_t* frame, size_t len) {
    if (!may_reach(target, from)) return P2P_STATUS_NOT_AUTHORIZED;
    Device* d = devices_.find(target);
    if (d != nullptr && d->online() && !d->holder->ended) {
        if (only.relay != 0) return P2P_STATUS_OFFLINE;  // the attempt's target was elsewhere
        return deliver_direct(from.device->key(), *d->holder, both_ways, only.session, frame, len);
    }
    uint64_t relay = remote_holder(target);
    bool anywhere = only.relay == 0 && only.session == 0;
    if (relay == 0 || (!anywhere && only.relay != relay)) return P2P_STATUS_OFFLINE;
    if (both_ways && !may_reach(auth_.get(), from.device->key(), target))
        return P2P_STATUS_NOT_AUTHORIZED;
    flush_presence(*from.device);  // PRESENCE online before anything from the id
    DirectHop hop;
    hop.from_session = from.session_id;
    hop.to_relay = relay;
    hop.to_session = only.session;
    cluster_->sent_direct(target, hop, frame, len);
    return P2P_STATUS_OK;
}

uint8_t Relay::deliver_direct(std::string_view from, Session& to, bool both_ways,
                              uint64_t only_session, const uint8_t* frame, size_t len) {
    if (only_session != 0 && to.session_id != only_session) return P2P_STATUS_OFFLINE;
    if (!is_v2(to)) return P2P_STATUS_UNSUPPORTED;
    if (both_ways && !may_reach(from, to)) return P2P_STATUS_NOT_AUTHORIZED;
    if (Device* sender = devices_.find(from)) flush_presence(*sender);
    to.enqueue(frame, len, nullptr, 0);
    return P2P_STATUS_OK;
}

void Relay::direct_offer(Session& s, const p2p_direct& d) {
    std::string_view target = peer_of(d);
    uint64_t now = clock_->now_ms();
    // The target's connection, or its relay, for the attempt; forward_direct
    // checks again.
    Device* td = devices_.find(target);
    uint64_t target_session = td != nullptr && td->online() ? td->holder->session_id : 0;
    uint64_t target_relay = target_session == 0 ? remote_holder(target) : 0;
    DirectAttempt* a = direct_.create(now, s.device->key(), s.session_id, target, target_session);
    if (a == nullptr) {
        ++stats_.direct_offers_refused;
        LOG_WARN("%s: DIRECT_OFFER refused: %u direct-path attempts are open", s.label(),
                 direct_.capacity());
        reply(s, P2P_CMD_DIRECT_OFFER, P2P_STATUS_LIMIT);
        return;
    }
    a->target_relay = target_relay;
    uint8_t secret[P2P_DIRECT_SECRET_SIZE];
    if (!os_random(secret, sizeof secret)) {
        LOG_ERROR("%s: getrandom: %s: DIRECT_OFFER refused", s.label(), strerrordesc_np(errno));
        direct_.remove(*a);
        ++stats_.direct_offers_refused;
        reply(s, P2P_CMD_DIRECT_OFFER, P2P_STATUS_FAILURE);
        return;
    }
    p2p_candidate cands[P2P_DIRECT_EVENT_CANDIDATES_MAX];
    size_t n = candidates_with_reflexive(s, d, cands);
    uint8_t event[P2P_DIRECT_MAX];
    std::string_view from = s.device->key();
    size_t len = p2p_encode_direct_offer_event(event, as_bytes(from), from.size(), a->id, secret,
                                               d.nonce, d.local_port, cands, n);
    uint8_t status =
        target_session == 0 && target_relay == 0
            ? (may_reach(target, s) ? uint8_t{P2P_STATUS_OFFLINE}
                                    : uint8_t{P2P_STATUS_NOT_AUTHORIZED})
            : forward_direct(s, target, true, DirectEnd{target_relay, target_session}, event, len);
    std::memset(event, 0, sizeof event);  // the secret
    if (status != P2P_STATUS_OK) {
        direct_.remove(*a);
        ++stats_.direct_offers_refused;
        reply(s, P2P_CMD_DIRECT_OFFER, status);
        std::memset(secret, 0, sizeof secret);
        return;
    }
    ++stats_.direct_offers;
    LOG_DEBUG("%s: direct-path attempt %u offered to \"%s\"%s", s.label(), a->id,
              PrintableId(target).text, target_relay != 0 ? " on another relay" : "");
    uint8_t out[P2P_DIRECT_OFFER_REPLY_SIZE];
    s.enqueue(out, p2p_encode_direct_offer_reply(out, a->id, secret), nullptr, 0);
    std::memset(secret, 0, sizeof secret);
}

void Relay::direct_answer(Session& s, const p2p_direct& d) {
    DirectAttempt* a = direct_.find(d.attempt, clock_->now_ms());
    bool ours = a != nullptr && !a->answered && a->target_relay == 0 &&
                a->target_session == s.session_id && a->offerer_id() == peer_of(d);
    // An offerer on another relay: the attempt is there, and decides.
    uint64_t offerer_relay = ours ? 0 : remote_holder(peer_of(d));
    if (!ours && offerer_relay == 0) {
        reply(s, P2P_CMD_DIRECT_ANSWER, P2P_STATUS_OFFLINE);  // no such attempt (any more)
        return;
    }
    p2p_candidate cands[P2P_DIRECT_EVENT_CANDIDATES_MAX];
    size_t n = d.accept == P2P_DIRECT_ACCEPT ? candidates_with_reflexive(s, d, cands) : 0;
    uint8_t event[P2P_DIRECT_MAX];
    std::string_view from = s.device->key();
    size_t len = p2p_encode_direct_answer(event, P2P_EVT_DIRECT_ANSWER, as_bytes(from), from.size(),
                                          d.attempt, d.accept, d.nonce, d.local_port, cands, n);
    if (!ours) {
        reply(s, P2P_CMD_DIRECT_ANSWER,
              forward_direct(s, peer_of(d), true, DirectEnd{offerer_relay, 0}, event, len));
        return;
    }
    uint8_t status =
        forward_direct(s, a->offerer_id(), true, DirectEnd{0, a->offerer_session}, event, len);
    if (status != P2P_STATUS_OK || d.accept != P2P_DIRECT_ACCEPT) {
        direct_.remove(*a);
    } else {
        a->answered = true;
        a->accepted = true;
    }
    if (status == P2P_STATUS_OK)
        ++(d.accept == P2P_DIRECT_ACCEPT ? stats_.direct_accepted : stats_.direct_declined);
    reply(s, P2P_CMD_DIRECT_ANSWER, status);
}

void Relay::direct_sync(Session& s, const p2p_direct& d) {
    DirectAttempt* a = direct_.find(d.attempt, clock_->now_ms());
    if (a == nullptr || !a->accepted || a->synced || a->offerer_session != s.session_id ||
        a->target_id() != peer_of(d)) {
        reply(s, P2P_CMD_DIRECT_SYNC, P2P_STATUS_OFFLINE);
        return;
    }
    uint8_t event[P2P_DIRECT_MAX];
    std::string_view from = s.device->key();
    size_t len = p2p_encode_direct_sync(event, P2P_EVT_DIRECT_SYNC, as_bytes(from), from.size(), a->id);
    uint8_t status = forward_direct(s, a->target_id(), true,
                                    DirectEnd{a->target_relay, a->target_session}, event, len);
    if (status == P2P_STATUS_OK)
        a->synced = true;
    else
        direct_.remove(*a);
    reply(s, P2P_CMD_DIRECT_SYNC, status);
}

void Relay::direct_mark(Session& s, const p2p_direct& d) {
    uint8_t event[P2P_DIRECT_MAX];
    std::string_view from = s.device->key();
    size_t len = p2p_encode_direct_mark(event, P2P_EVT_DIRECT_MARK, as_bytes(from), from.size(),
                                        d.attempt, d.mark_kind, d.seq);
    uint8_t status = forward_direct(s, peer_of(d), false, DirectEnd{}, event, len);
    if (status == P2P_STATUS_OK) ++stats_.direct_marks;
    reply(s, P2P_CMD_DIRECT_MARK, status);
}

void Relay::count_result(DirectAttempt& a, bool* reported, const p2p_direct& d, const char* who) {
    *reported = true;
    ++(d.outcome == P2P_DIRECT_OUTCOME_DIRECT ? stats_.direct_results_direct
                                              : stats_.direct_results_failed);
    LOG_DEBUG("%s: direct-path attempt %u %s after %u ms", who, a.id,
              d.outcome == P2P_DIRECT_OUTCOME_DIRECT ? "connected" : "failed", d.elapsed_ms);
    if (a.offerer_reported && a.target_reported) direct_.remove(a);
}

void Relay::direct_result(Session& s, const p2p_direct& d) {
    DirectAttempt* a = direct_.find(d.attempt, clock_->now_ms());
    bool offerer = a != nullptr && a->offerer_session == s.session_id && a->target_id() == peer_of(d);
    bool target = a != nullptr && a->target_relay == 0 && a->target_session == s.session_id &&
                  a->offerer_id() == peer_of(d);
    bool* reported = offerer ? &a->offerer_reported : target ? &a->target_reported : nullptr;
    if (reported == nullptr) {
        // The target of an attempt made on the offerer's relay: counted there.
        uint64_t offerer_relay = remote_holder(peer_of(d));
        if (offerer_relay != 0) {
            uint8_t event[P2P_DIRECT_MAX];
            std::string_view from = s.device->key();
            size_t len = p2p_encode_direct_result(event, as_bytes(from), from.size(), d.attempt,
                                                  d.outcome, d.elapsed_ms);
            reply(s, P2P_CMD_DIRECT_RESULT,
                  forward_direct(s, peer_of(d), false, DirectEnd{offerer_relay, 0}, event, len));
            return;
        }
    }
    if (reported == nullptr || *reported || !a->accepted) {
        reply(s, P2P_CMD_DIRECT_RESULT, P2P_STATUS_OFFLINE);
        return;
    }
    count_result(*a, reported, d, s.label());
    reply(s, P2P_CMD_DIRECT_RESULT, P2P_STATUS_OK);
}

// ---- from the other relays ---------------------------------------------------------

namespace {

RemoteDelivery delivery_of(uint8_t status) {
    switch (status) {
        case P2P_STATUS_OK: return RemoteDelivery::delivered;
        case P2P_STATUS_OFFLINE: return RemoteDelivery::not_here;
        case P2P_STATUS_UNSUPPORTED: return RemoteDelivery::refused_v1;
        default: return RemoteDelivery::refused;
    }
}

}  // namespace

RemoteDelivery Relay::deliver_remote_direct(std::string_view target, const DirectHop& hop,
                                            const p2p_direct& step, const uint8_t* frame,
                                            size_t len) {
    std::string_view from = peer_of(step);
    if (from == target || !may_reach(auth_.get(), target, from)) return RemoteDelivery::refused;
    if (step.cmd == P2P_EVT_DIRECT_ANSWER)
        return remote_direct_answer(target, hop, step, frame, len);
    if (step.cmd == P2P_CMD_DIRECT_RESULT) return remote_direct_result(target, hop, step);
    Device* d = devices_.find(target);
    if (d == nullptr || !d->online() || d->holder->ended) return RemoteDelivery::not_here;
    return delivery_of(deliver_direct(from, *d->holder, step.cmd != P2P_EVT_DIRECT_MARK,
                                      hop.to_session, frame, len));
}

RemoteDelivery Relay::remote_direct_answer(std::string_view offerer, const DirectHop& hop,
                                           const p2p_direct& step, const uint8_t* frame,
                                           size_t len) {
    DirectAttempt* a = direct_.find(step.attempt, clock_->now_ms());
    if (a == nullptr || a->answered || a->target_relay == 0 || a->target_relay != hop.from_relay ||
        a->offerer_id() != offerer || a->target_id() != peer_of(step))
        return RemoteDelivery::not_here;
    Device* d = devices_.find(offerer);
    uint8_t status =
        d != nullptr && d->online() && !d->holder->ended
            ? deliver_direct(a->target_id(), *d->holder, true, a->offerer_session, frame, len)
            : uint8_t{P2P_STATUS_OFFLINE};
    bool accepted = step.accept == P2P_DIRECT_ACCEPT;
    if (status != P2P_STATUS_OK || !accepted) {
        direct_.remove(*a);
    } else {
        a->answered = true;
        a->accepted = true;
        a->target_session = hop.from_session;  // the SYNC and its RESULT: this one only
    }
    if (status == P2P_STATUS_OK) ++(accepted ? stats_.direct_accepted : stats_.direct_declined);
    return delivery_of(status);
}

RemoteDelivery Relay::remote_direct_result(std::string_view offerer, const DirectHop& hop,
                                           const p2p_direct& step) {
    DirectAttempt* a = direct_.find(step.attempt, clock_->now_ms());
    if (a == nullptr || !a->accepted || a->target_reported || a->target_relay == 0 ||
        a->target_relay != hop.from_relay || a->target_session != hop.from_session ||
        a->offerer_id() != offerer || a->target_id() != peer_of(step))
        return RemoteDelivery::not_here;
    count_result(*a, &a->target_reported, step, "another relay");
    return RemoteDelivery::delivered;
}
