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
#pragma once

#include <cstddef>
#include <cstdint>

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

   private:
    void on_register(Session& s, std::string_view id);
    void on_subscribe(Session& s, std::string_view id);
    void on_send(Session& s, const uint8_t* data, size_t len);
    void on_unregister(Session& s);
    void on_unsubscribe(Session& s, std::string_view id);
    void on_check_alive(Session& s, std::string_view id);
    void on_hello(Session& s, uint8_t version, uint8_t flags);
    void on_send_to(Session& s, std::string_view target, const uint8_t* data, size_t len);

    void reply(Session& s, uint8_t cmd, uint8_t status);
    // Reply with a failure: the v2 reason, or 0 in a v1 session.
    void fail(Session& s, uint8_t cmd, uint8_t reason);
    void deliver(Session& to, const Session& from, const uint8_t* data, size_t len);
    // Tells every v2 subscriber of device its current state, except the
    // session whose register/release caused the change (a connection is not
    // told about its own id).
    void announce_presence(Device& device, const Session* except);
    void send_presence(Session& to, const Device& device);
    // Lets go of the session's id and tells its v2 subscribers.
    void release_id(Session& s);

    RelayLimits limits_;
    Devices devices_;
    RelayStats stats_;
};
