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
//
// Authentication and authorization (relay_auth.cpp): with an auth table
// installed, AUTH claims the ids it lists and REGISTER may not, and the
// table's PEERS decide who may reach a listed id. Without one, AUTH is
// unsupported and every id is open to everyone, as in the original.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "auth_table.h"
#include "codec.h"
#include "devices.h"
#include "hash.h"
#include "session.h"

struct RelayLimits {
    uint32_t max_frame = 65536;      // announced in the HELLO reply
    uint32_t idle_timeout_s = 300;   // announced in the HELLO reply
    uint32_t max_subs = 4096;        // per session
};

struct RelayStats {
    uint64_t frames_in = 0;
    uint64_t deliveries = 0;         // frames queued to subscribers/targets
    uint64_t dropped_no_subscriber = 0;
    uint64_t takeovers = 0;
    uint64_t subscribe_limit = 0;    // SUBSCRIBEs refused for --max-subs
    uint64_t auth_successes = 0;
    uint64_t auth_failures = 0;      // failed AUTH step 2s, every connection
};

// What installing an auth table did to the sessions (Relay::install_auth).
struct AuthChanges {
    uint32_t sessions_closed = 0;         // BYE 6: id removed or verifier changed
    uint32_t subscriptions_cancelled = 0; // no longer allowed by PEERS
};

class Relay {
   public:
    Relay(const RelayLimits& limits, const HashKey& key);
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    // Handles one frame's payload (len >= 1) from session.
    void on_frame(Session& session, const uint8_t* payload, size_t len);

    // See the contract above. Safe to call on a session that holds nothing.
    void end_session(Session& session, CloseReason reason);

    size_t device_count() const { return devices_.size(); }
    const Devices& devices() const { return devices_; }
    const RelayStats& stats() const { return stats_; }

    // --auth-required: with a table installed, REGISTER is refused for every
    // id, listed or not.
    void set_auth_required(bool required) { auth_required_ = required; }

    // Puts table (not null) in force, at start and on every reload: each
    // session that holds an id whose verifier the table removes, changes
    // or newly sets is closed with BYE 6, and each subscription the table's
    // PEERS no longer allow is cancelled (PRESENCE offline to a v2
    // subscriber). False, with nothing changed, when memory for the
    // change is missing. *changes (may be null) says what was done.
    bool install_auth(std::unique_ptr<AuthTable> table, AuthChanges* changes);

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
    // holder is closed (taken over). Returns true for a takeover. Then,
    // after the caller's reply, announce_claim() tells d's subscribers.
    bool claim_id(Session& s, Device& d);
    void announce_claim(Session& s, Device& d, bool takeover);

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
    bool may_reach(const AuthTable* table, std::string_view target, const Session& caller) const;
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
    void deliver(Session& to, const Session& from, const uint8_t* data, size_t len);
    // Tells every v2 subscriber of device its current state, except the
    // session whose register/release caused the change (a connection is not
    // told about its own id).
    void announce_presence(Device& device, const Session* except);
    void announce_state(Device& device, const Session* except, uint8_t state);
    void send_presence(Session& to, const Device& device);
    void send_state(Session& to, const Device& device, uint8_t state);
    // Lets go of the session's id and tells its v2 subscribers.
    void release_id(Session& s);

    RelayLimits limits_;
    Devices devices_;
    RelayStats stats_;
    std::unique_ptr<AuthTable> auth_;  // null: no auth file
    bool auth_required_ = false;
};
