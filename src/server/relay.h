// relay.h - the stupidP2P protocol, v1 and v2: what each command does to
// the devices and which frames it produces. Knows nothing of sockets,
// buffers or the event loop: frames go out, and sessions are closed,
// through the Session interface (session.h); payloads are split and built
// by the wire codec (codec.h); ids and subscriptions live in Devices.
//
// Contract with the connection layer:
//  - on_frame() is called for each complete, non-empty frame of a session
//    that has not ended, in arrival order.
//  - end_session() is called exactly once per session, when the server or
//    the peer ends it for any reason (Session::close() calls it): it
//    announces the end to a v2 peer (BYE) where the reason calls for one,
//    releases the session's id (subscribers see it go offline) and cancels
//    its subscriptions. Afterwards the session is inert: the relay never
//    sends to it again.
//  - on_tick() is called periodically (the server: four times a second):
//    presence held back by damping goes out there.
//
// Floods one client can cause, and their bounds (issue 10):
//  - Presence flapping: an id that changes state (online/offline) more than
//    kPresenceChanges times in a presence window is damped: further
//    changes are not announced one by one; when the window ends, its
//    subscribers get the id's state then, if it differs from what they were
//    last told. No state is lost and the final state always arrives.
//    SUBSCRIBE answers with the state subscribers were last told, so that
//    every subscriber of an id holds the same view; a SEND or SEND_TO from
//    an id whose coming online is held back announces it first, so that
//    PRESENCE online still precedes the id's deliveries. A takeover is
//    never held back (its PRESENCE offline then online keeps it visible);
//    its two changes count in the window.
//  - Takeover fights: two connections registering one id in turn. After
//    kTakeovers takeovers of an id in a takeover window, further
//    REGISTERs taking it over are refused (status 7, 0 in v1) until the
//    window ends, logged once per window.
//  - Every command costs O(1) amortised in the number of devices,
//    subscriptions and sessions (devices.h), apart from the frames it
//    produces.
//
// Authentication and authorization (relay_auth.cpp): with an auth table
// installed, AUTH claims the ids it lists and REGISTER may not, and the
// table's PEERS decide who may reach a listed id. Without one, AUTH is
// unsupported and every id is open to everyone, as in the original.
//
// Clusters (relay_cluster.cpp; the design is doc/cluster.md): with
// ClusterHooks set, an id is online when a local session holds it or when
// the hooks say another relay's does, and every answer (CHECK_ALIVE,
// SUBSCRIBE, SEND_TO's status, PRESENCE) uses that, at once. The relay
// tells the hooks what its sessions claim, release and send; the cluster
// room calls the "from the other relays" methods with what the others did.
// The relay never learns how the other relays are reached.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "auth_table.h"
#include "clock.h"
#include "cluster_hooks.h"
#include "codec.h"
#include "devices.h"
#include "direct_attempts.h"
#include "hash.h"
#include "memory_budget.h"
#include "session.h"

struct RelayLimits {
    uint32_t max_frame = 65536;        // announced in the HELLO reply
    uint32_t idle_timeout_s = 300;     // announced in the HELLO reply
    uint32_t max_subs = 4096;          // per session
    uint32_t max_devices = 1000000;    // entries in the device table
    uint32_t max_direct_attempts = 4096;  // open direct-path attempts (a power of two)
};

// Damping (see above), documented in stupidp2p(7) and p2pServer(8).
constexpr uint64_t kPresenceWindowMs = 1000;
constexpr uint8_t kPresenceChanges = 4;
constexpr uint64_t kTakeoverWindowMs = 10000;
constexpr uint8_t kTakeovers = 10;
// DIRECT_OFFERs one connection may make in a window (relay_direct.cpp).
constexpr uint64_t kDirectOfferWindowMs = 10000;
constexpr uint32_t kDirectOffers = 8;

struct RelayStats {
    uint64_t frames_in = 0;
    uint64_t deliveries = 0;         // frames queued to subscribers/targets
    uint64_t dropped_no_subscriber = 0;
    uint64_t takeovers = 0;
    uint64_t takeovers_refused = 0;  // REGISTERs refused in a takeover fight
    uint64_t presence_held = 0;      // presence changes held back (damping)
    uint64_t subscribe_limit = 0;    // SUBSCRIBEs refused for --max-subs
    uint64_t auth_successes = 0;
    uint64_t auth_failures = 0;      // failed AUTH step 2s, every connection
    // Direct paths (relay_direct.cpp).
    uint64_t direct_offers = 0;          // forwarded to their target
    uint64_t direct_offers_refused = 0;  // refused (reach, offline, v1, table full, ...)
    uint64_t direct_offers_limited = 0;  // refused by the per-connection rate limit
    uint64_t direct_accepted = 0;        // ANSWERs forwarded, accepting
    uint64_t direct_declined = 0;        // ANSWERs forwarded, declining
    uint64_t direct_marks = 0;           // DIRECT_MARKs forwarded
    uint64_t direct_results_direct = 0;  // RESULTs reported: a direct path was made
    uint64_t direct_results_failed = 0;  // RESULTs reported: none was
};

// What installing an auth table did to the sessions (Relay::install_auth).
struct AuthChanges {
    uint32_t sessions_closed = 0;         // BYE 6: id removed or verifier changed
    uint32_t subscriptions_cancelled = 0; // no longer allowed by PEERS
};

class Relay {
   public:
    // clock: the time for presence and takeover windows (nullptr: the
    // system's monotonic clock); budget: charged for device entries and
    // subscriptions (nullptr: unlimited). Both must outlive the relay.
    Relay(const RelayLimits& limits, const HashKey& key, const Clock* clock = nullptr,
          MemoryBudget* budget = nullptr);
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    // Handles one frame's payload (len >= 1) from session.
    void on_frame(Session& session, const uint8_t* payload, size_t len);

    // See the contract above. Safe to call on a session that holds nothing.
    void end_session(Session& session, CloseReason reason);

    // Ends the presence windows that are due (see above).
    void on_tick();

    size_t device_count() const { return devices_.size(); }
    const Devices& devices() const { return devices_; }
    const RelayStats& stats() const { return stats_; }

    // Devices::check_invariants, plus the relay's own: every damped device
    // is in the table. For tests and fuzzers; false with the reason in why.
    bool check_invariants(char* why, size_t cap) const;

    // --auth-required: with a table installed, REGISTER is refused for every
    // id, listed or not.
    void set_auth_required(bool required) { auth_required_ = required; }
    // What a reload may change (SIGHUP): the idle timeout HELLO announces,
    // and the subscriptions a session may hold from now on.
    void set_reloadable_limits(uint32_t idle_timeout_s, uint32_t max_subs) {
        limits_.idle_timeout_s = idle_timeout_s;
        limits_.max_subs = max_subs;
    }

    // Puts table (not null) in force, at start and on every reload: each
    // session that holds an id whose verifier the table removes, changes
    // or newly sets is closed with BYE 6, and each subscription the table's
    // PEERS no longer allow is cancelled (PRESENCE offline to a v2
    // subscriber). False, with nothing changed, when memory for the
    // change is missing. *changes (may be null) says what was done.
    bool install_auth(std::unique_ptr<AuthTable> table, AuthChanges* changes);

    // ---- clusters (relay_cluster.cpp) ---------------------------------------
    // hooks: the other relays (nullptr: none, the default). Set before the
    // first session, or with none left; it must outlive the relay or be
    // unset first.
    void set_cluster(ClusterHooks* hooks);

    // From the other relays. The holder of id (not held here) changed
    // elsewhere: v2 subscribers here are told, as on one server (a
    // takeover as PRESENCE offline then online).
    void remote_holder_changed(std::string_view id, RemoteChange change);
    // Another relay's claim of id beat the local holder's: it is closed
    // (BYE 1, taken over) and the id's subscribers here see the takeover.
    void lost_to_remote(std::string_view id);
    // Data sent by id's holder on another relay, for the subscribers here,
    // delivered as a local SEND would be. False when nobody here follows id.
    bool deliver_remote(std::string_view from, const uint8_t* data, size_t len);
    // A SEND_TO target from `from` on another relay, to its holder here.
    RemoteDelivery deliver_remote_to(std::string_view target, std::string_view from,
                                     const uint8_t* data, size_t len);
    // A direct-path step from the device step.id on another relay
    // (hop.from_relay) for target here (relay_direct.cpp): an event for its
    // holder (hop.to_session, when not 0, must be that connection), or an
    // ANSWER or RESULT for an attempt this relay opened for target.
    RemoteDelivery deliver_remote_direct(std::string_view target, const DirectHop& hop,
                                         const p2p_direct& step, const uint8_t* frame, size_t len);
    // Whether a REGISTER may claim id here (not a protected id, nor any
    // under --auth-required): a claim elsewhere of an id REGISTER may not
    // take must be authenticated.
    bool register_allowed(std::string_view id) const { return may_register(id); }

   private:
    void on_register(Session& s, std::string_view id);
    void on_subscribe(Session& s, std::string_view id);
    void on_send(Session& s, const uint8_t* data, size_t len);
    void on_unregister(Session& s);
    void on_unsubscribe(Session& s, std::string_view id);
    void on_check_alive(Session& s, std::string_view id);
    void on_hello(Session& s, uint8_t version, uint8_t flags);
    void on_send_to(Session& s, std::string_view target, const uint8_t* data, size_t len);

    // Makes s the holder of d, releasing the id it held before; a previous
    // holder is closed (taken over), one on another relay by the claim the
    // cluster hooks publish (authenticated: claimed by AUTH). Returns true
    // for a takeover. Then, after the caller's reply, announce_claim()
    // tells d's subscribers.
    bool claim_id(Session& s, Device& d, bool authenticated);
    void announce_claim(Session& s, Device& d, bool takeover);
    // PRESENCE offline then online to d's v2 subscribers but `except`: a
    // takeover is never silent, nor held back by damping (it counts in it).
    void announce_takeover(Device& d, const Session* except);
    // Whether d is online: held here or, in a cluster, by another relay.
    bool held(const Device& d) const {
        return d.online() || (cluster_ != nullptr && cluster_->held_elsewhere(d.key()));
    }
    bool held(std::string_view id) const {
        const Device* d = devices_.find(id);
        return d != nullptr ? held(*d) : cluster_ != nullptr && cluster_->held_elsewhere(id);
    }

    // relay_direct.cpp: the DIRECT_* requests (payload[0] 0x10..0x14, v2).
    void on_direct(Session& s, const uint8_t* payload, size_t len);
    void direct_offer(Session& s, const p2p_direct& d);
    void direct_answer(Session& s, const p2p_direct& d);
    void direct_sync(Session& s, const p2p_direct& d);
    void direct_mark(Session& s, const p2p_direct& d);
    void direct_result(Session& s, const p2p_direct& d);
    // Where a direct-path step may go: the relay holding the target (its
    // incarnation in the cluster; 0: this relay) and the connection (its
    // session id there; 0: whichever holds the target). Both 0: wherever
    // the target is (a MARK, like a SEND_TO).
    struct DirectEnd {
        uint64_t relay = 0;
        uint64_t session = 0;
    };
    // Forwards one DIRECT_* event (encoded, naming `from`'s id) to the
    // connection holding `target`, here or, in a cluster, on another relay
    // (ClusterHooks::sent_direct): the one place where a direct-path frame
    // crosses from one device to another, as a SEND_TO's delivery does.
    // Returns the status for the sender: 1, or 5 (from may not reach
    // target; with both_ways also the reverse), 3 (offline, or not where
    // `only` says), 6 (a v1 session here; one on another relay is refused
    // there, and counted).
    uint8_t forward_direct(Session& from, std::string_view target, bool both_ways, DirectEnd only,
                           const uint8_t* frame, size_t len);
    // The local half of forward_direct, also for steps from other relays:
    // the frame to `to` (which holds the target) if it is only_session (or
    // that is 0), a v2 session, and (both_ways) may reach `from`.
    uint8_t deliver_direct(std::string_view from, Session& to, bool both_ways,
                           uint64_t only_session, const uint8_t* frame, size_t len);
    // The other relay holding id, or 0 (held here, or offline).
    uint64_t remote_holder(std::string_view id) const;
    // Counts a RESULT from one side of a, once (*reported).
    void count_result(DirectAttempt& a, bool* reported, const p2p_direct& d, const char* who);
    // Steps from another relay for the offerer held here.
    RemoteDelivery remote_direct_answer(std::string_view offerer, const DirectHop& hop,
                                        const p2p_direct& step, const uint8_t* frame, size_t len);
    RemoteDelivery remote_direct_result(std::string_view offerer, const DirectHop& hop,
                                        const p2p_direct& step);

    // relay_auth.cpp
    void on_auth(Session& s, const p2p_request& req, bool parsed);
    void auth_start(Session& s, const p2p_request& req);
    void auth_proof(Session& s, const p2p_request& req);
    void auth_failed(Session& s, std::string_view id, const char* why);
    // Whether REGISTER may claim id: not with --auth-required, nor for an
    // id the auth table lists.
    bool may_register(std::string_view id) const;
    // Whether `caller` may SUBSCRIBE to, SEND_TO and CHECK_ALIVE the id
    // `target` (and so receive its PRESENCE), under table (null: no table).
    bool may_reach(const AuthTable* table, std::string_view target, std::string_view caller) const;
    bool may_reach(const AuthTable* table, std::string_view target, const Session& caller) const {
        return may_reach(table, target,
                         caller.device != nullptr ? caller.device->key() : std::string_view{});
    }
    bool may_reach(std::string_view target, const Session& caller) const {
        return may_reach(auth_.get(), target, caller);
    }
    // Cancels s's subscriptions that the table does not allow now that s
    // holds another id.
    void drop_unreachable_subscriptions(Session& s);
    // Tells a v2 subscriber the device is offline to it, then drops the
    // subscription.
    void cancel_subscription(Session& s, Device& d);

    void reply(Session& s, uint8_t cmd, uint8_t status);
    // Reply with a failure: the v2 reason, or 0 in a v1 session.
    void fail(Session& s, uint8_t cmd, uint8_t reason);
    // A delivery from the device heads.from (held here or elsewhere).
    // The heads of one message's deliveries, encoded once for all of its
    // recipients (a fan-out to 100 subscribers encodes them once, not 100
    // times): [03] for v1 sessions, DELIVER's [09][id_len][id] for v2, the
    // latter only when a v2 recipient first needs it.
    struct DeliveryHeads {
        explicit DeliveryHeads(std::string_view sender) : from(sender) {}
        std::string_view from;
        size_t v2_len = 0;  // 0: not encoded yet
        uint8_t v2[P2P_ID_HEAD_MAX];
    };
    void deliver(Session& to, DeliveryHeads& heads, const uint8_t* data, size_t len);
    // The device went online or offline because of `cause`: announce it,
    // or hold it back if the id is flapping (see above).
    void presence_changed(Device& device, const Session* cause);
    // Counts one announced change in the device's presence window.
    void count_change(Device& device);
    // If the device's state differs from what its subscribers were told
    // (held back by damping), tells them now.
    void flush_presence(Device& device);
    // Tells every v2 subscriber of device its current state (or `state`),
    // except `except` (a connection is not told about its own id), and
    // remembers it as what subscribers were told.
    void announce_presence(Device& device, const Session* except);
    void announce_state(Device& device, const Session* except, uint8_t state);
    // What subscribers were last told (SUBSCRIBE repeats it).
    void send_presence(Session& to, const Device& device);
    void send_state(Session& to, const Device& device, uint8_t state);
    // Counts a takeover of the device; false when the takeover window's
    // allowance is spent (a fight), logged once per window.
    bool allow_takeover(Device& device, const Session& taker);
    // Lets go of the session's id and tells its v2 subscribers.
    void release_id(Session& s);

    // A v1 delivery's head ([03]), the same for every message.
    uint8_t v1_head_[1];
    size_t v1_head_len_;
    RelayLimits limits_;
    const Clock* clock_;
    // Devices whose presence changes are being held back, in the order
    // their damping began. Declared before devices_, which unlinks its
    // entries from it as it frees them.
    IntrusiveList<Device, PresenceDampedTag> damped_;
    Devices devices_;
    RelayStats stats_;
    std::unique_ptr<AuthTable> auth_;  // null: no auth file
    bool auth_required_ = false;
    ClusterHooks* cluster_ = nullptr;  // null: no other relays
    DirectAttempts direct_;
};
