// relay_auth.cpp - the Relay's AUTH command and the auth table's rules (see
// relay.h): who may claim an id, who may reach one, and what a new table
// does to the sessions. The proof's arithmetic is src/common/auth_proof.h,
// the file's format src/server/auth_table.h, the wire stupidp2p(7), AUTH.
//
// Why a challenge in two steps: the HELLO reply stays 11 bytes (clients
// depend on it), and a fresh server nonce per attempt, drawn when step 1 is
// answered and forgotten when step 2 is checked, makes every proof good for
// one exchange only: a recorded exchange replayed on another connection
// meets another nonce and fails.
//
// What an attacker learns: step 1 is answered alike whether or not the id
// is in the auth file, and a step 2 for an unknown id is checked against a
// verifier no token has, so that neither the answer nor (to first order)
// the time tells which ids are protected. Three failed step 2s close the
// connection (BYE 6): guessing costs a connection per three proofs, on top
// of a 256-bit token.
//
// Authorization is enforced where a relation is made (SUBSCRIBE, SEND_TO,
// CHECK_ALIVE) and re-checked whenever what it was based on changes: when
// a session's id changes (announce_claim) and when a table is installed.
// A delivery to a subscriber therefore needs no check of its own.
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "auth_proof.h"
#include "log.h"
#include "os_random.h"
#include "relay.h"
#include "relay_helpers.h"

using namespace relay_detail;

namespace {

// No token has this StoredKey: it would need SHA-256(ClientKey) == 0.
const uint8_t kNoStoredKey[P2P_AUTH_KEY_SIZE] = {};

// Whether the holder of id must go when `fresh` replaces `old`: its id was
// removed, newly protected (it holds it without a proof), or given another
// verifier.
bool holder_must_go(const AuthTable* old, const AuthTable& fresh, std::string_view id) {
    const AuthEntry* before = old != nullptr ? old->find(id) : nullptr;
    const AuthEntry* after = fresh.find(id);
    if (before == nullptr || after == nullptr) return before != after;
    return std::memcmp(&before->verifier, &after->verifier, sizeof before->verifier) != 0;
}

}  // namespace

// ---- AUTH ------------------------------------------------------------------------

void Relay::on_auth(Session& s, const p2p_request& req, bool parsed) {
    if (!is_v2(s)) {
        // AUTH is v2 only; a v1 session keeps the answer it always had.
        reply(s, P2P_CMD_AUTH, P2P_STATUS_FAILURE);
        return;
    }
    if (!auth_) {
        reply(s, P2P_CMD_AUTH, P2P_STATUS_UNSUPPORTED);  // no auth file
        return;
    }
    if (!parsed) {
        reply(s, P2P_CMD_AUTH, P2P_STATUS_BAD_ARGUMENT);
        return;
    }
    if (req.step == P2P_AUTH_STEP_START)
        auth_start(s, req);
    else
        auth_proof(s, req);
}

void Relay::auth_start(Session& s, const p2p_request& req) {
    // A new step 1 replaces a challenge still open.
    if (!s.auth_challenge) {
        s.auth_challenge.reset(new (std::nothrow) AuthChallenge);
        if (!s.auth_challenge) {
            reply(s, P2P_CMD_AUTH, P2P_STATUS_LIMIT);
            return;
        }
    }
    AuthChallenge& c = *s.auth_challenge;
    c.id_len = static_cast<uint8_t>(req.id_len);
    std::memcpy(c.id, req.id, req.id_len);
    std::memcpy(c.client_nonce, req.data, P2P_AUTH_NONCE_SIZE);
    if (!os_random(c.server_nonce, sizeof c.server_nonce)) {
        LOG_ERROR("%s: getrandom: %s: AUTH refused", s.label(), strerrordesc_np(errno));
        s.auth_challenge.reset();
        reply(s, P2P_CMD_AUTH, P2P_STATUS_FAILURE);
        return;
    }
    uint8_t out[P2P_AUTH_REPLY_SIZE];
    s.enqueue(out, p2p_encode_auth_reply(out, P2P_AUTH_STEP_START, c.server_nonce), nullptr, 0);
}

void Relay::auth_proof(Session& s, const p2p_request& req) {
    // A challenge answers one proof, right or wrong.
    std::unique_ptr<AuthChallenge> c = std::move(s.auth_challenge);
    if (!c) {
        auth_failed(s, {}, "step 2 without a challenge");
        return;
    }
    std::string_view id = as_view(c->id, c->id_len);
    uint8_t msg[P2P_AUTH_MESSAGE_MAX];
    size_t len = p2p_auth_message(msg, c->id, c->id_len, c->client_nonce, c->server_nonce);
    const AuthEntry* entry = auth_->find(id);
    bool valid = p2p_auth_proof_valid(entry != nullptr ? entry->verifier.stored_key : kNoStoredKey,
                                      msg, len, req.data);
    if (entry == nullptr || !valid) {
        auth_failed(s, id, entry == nullptr ? "id not in the auth file" : "wrong proof");
        return;
    }
    Device* d = s.device;
    bool claimed = false, takeover = false;
    if (d == nullptr || d->key() != id) {
        d = devices_.find_or_create(id);
        if (d == nullptr) {
            fail(s, P2P_CMD_AUTH, P2P_STATUS_LIMIT);
            return;
        }
        LOG_EVENT(LogLevel::info, s.log_event("authenticated", id), "%s authenticated as \"%s\"",
                  s.label(), PrintableId(id).text);
        takeover = claim_id(s, *d, true);
        claimed = true;
    }
    ++stats_.auth_successes;
    uint8_t signature[P2P_AUTH_PROOF_SIZE];
    p2p_auth_server_signature(entry->verifier.server_key, msg, len, signature);
    uint8_t out[P2P_AUTH_REPLY_SIZE];
    s.enqueue(out, p2p_encode_auth_reply(out, P2P_AUTH_STEP_PROOF, signature), nullptr, 0);
    if (claimed) announce_claim(s, *d, takeover);
}

void Relay::auth_failed(Session& s, std::string_view id, const char* why) {
    ++stats_.auth_failures;
    if (s.auth_failures < P2P_AUTH_MAX_FAILURES) ++s.auth_failures;
    // The id, escaped, and the peer (in the label); never the proof.
    LOG_EVENT(LogLevel::warn, s.log_event("auth_failed", id, why),
              "%s: AUTH as \"%s\" failed: %s (%u of %u)", s.label(), PrintableId(id).text, why,
             s.auth_failures, P2P_AUTH_MAX_FAILURES);
    reply(s, P2P_CMD_AUTH, P2P_STATUS_NOT_AUTHORIZED);
    if (s.auth_failures >= P2P_AUTH_MAX_FAILURES) s.close(CloseReason::not_authorized);
}

// ---- the rules ---------------------------------------------------------------------

bool Relay::may_register(std::string_view id) const {
    if (!auth_) return true;
    return !auth_required_ && auth_->find(id) == nullptr;
}

bool Relay::may_reach(const AuthTable* table, std::string_view target,
                      std::string_view caller) const {
    if (table == nullptr) return true;
    const AuthEntry* entry = table->find(target);
    if (entry == nullptr) return true;
    if (caller == target) return true;  // a device may always reach itself
    return table->allows(*entry, caller);
}

void Relay::cancel_subscription(Session& s, Device& d) {
    send_state(s, d, P2P_PRESENCE_OFFLINE);
    devices_.unsubscribe(s, d);
}

void Relay::drop_unreachable_subscriptions(Session& s) {
    Subscription* sub = s.subscriptions.front();
    while (sub != nullptr) {
        Subscription* next = s.subscriptions.next(*sub);
        Device& d = *sub->device;
        if (!may_reach(d.key(), s)) {
            LOG_INFO("%s: subscription to \"%s\" cancelled: not among its peers", s.label(),
                     PrintableId(d.key()).text);
            cancel_subscription(s, d);
        }
        sub = next;
    }
}

// ---- a new table -------------------------------------------------------------------

bool Relay::install_auth(std::unique_ptr<AuthTable> table, AuthChanges* changes) {
    const AuthTable& fresh = *table;
    // Acting (closing sessions, dropping subscriptions) changes the device
    // table, which may not change while it is walked: find what to do
    // first, into arrays sized by a counting walk, then do it.
    struct Cancel {
        Session* subscriber;
        Device* device;
    };
    size_t close_count = 0, cancel_count = 0;
    auto walk = [&](Session** to_close, Cancel* to_cancel) {
        close_count = cancel_count = 0;
        devices_.for_each([&](Device* d) {
            if (d->holder != nullptr && holder_must_go(auth_.get(), fresh, d->key())) {
                if (to_close != nullptr) to_close[close_count] = d->holder;
                ++close_count;
            }
            for (Subscription* sub = d->subscribers.front(); sub != nullptr;
                 sub = d->subscribers.next(*sub)) {
                if (may_reach(&fresh, d->key(), *sub->subscriber)) continue;
                if (to_cancel != nullptr) to_cancel[cancel_count] = Cancel{sub->subscriber, d};
                ++cancel_count;
            }
        });
    };
    walk(nullptr, nullptr);
    auto* to_close = static_cast<Session**>(std::malloc((close_count + 1) * sizeof(Session*)));
    auto* to_cancel = static_cast<Cancel*>(std::malloc((cancel_count + 1) * sizeof(Cancel)));
    if (to_close == nullptr || to_cancel == nullptr) {
        std::free(to_close);
        std::free(to_cancel);
        return false;
    }
    walk(to_close, to_cancel);

    std::unique_ptr<AuthTable> previous = std::move(auth_);
    auth_ = std::move(table);
    for (size_t i = 0; i < cancel_count; ++i) {
        Cancel& c = to_cancel[i];
        LOG_INFO("%s: subscription to \"%s\" cancelled: not among its peers any more",
                 c.subscriber->label(), PrintableId(c.device->key()).text);
        cancel_subscription(*c.subscriber, *c.device);
    }
    for (size_t i = 0; i < close_count; ++i) {
        Session& s = *to_close[i];
        LOG_INFO("%s: \"%s\" was removed from the auth file or its verifier changed", s.label(),
                 s.device != nullptr ? PrintableId(s.device->key()).text : "");
        s.close(CloseReason::not_authorized);
    }
    std::free(to_close);
    std::free(to_cancel);
    if (changes != nullptr) {
        changes->sessions_closed = static_cast<uint32_t>(close_count);
        changes->subscriptions_cancelled = static_cast<uint32_t>(cancel_count);
    }
    return true;
}
