// relay.h - the stupidP2P protocol, v1 and v2: what each command does to the
// device table and which frames it produces. Knows nothing of sockets,
// buffers or the event loop: frames go out, and sessions are closed, through
// the SessionHost the server provides.
//
// Contract with the host:
//  - on_frame() is called for each complete frame of a session that has not
//    ended, in arrival order.
//  - end_session() is called exactly once per session, when the server or
//    the peer ends it for any reason; it announces the end to a v2 peer (BYE)
//    where the reason calls for one, releases the session's id (subscribers
//    see it go offline) and cancels its subscriptions. Afterwards the session
//    is inert: the relay never sends to it again.
//  - The relay asks for a session's end (takeover, protocol error) through
//    SessionHost::close_session, and the host answers by calling
//    end_session() at once, then closing the connection after its output.
//  - SessionHost::send_frame may drop a frame for a session that cannot
//    take more (a slow consumer): the host then ends that session after the
//    current call returns, never from inside a delivery loop.
#pragma once

#include <cstddef>
#include <cstdint>

#include "hash.h"
#include "id_table.h"
#include "session.h"

class SessionHost {
   public:
    virtual ~SessionHost() = default;
    // Queues the frame [prefix][data] (a 4-byte length header in front) for
    // the session's peer.
    virtual void send_frame(Session& to, const uint8_t* prefix, size_t prefix_len,
                            const uint8_t* data, size_t data_len) = 0;
    // Ends `session` for `reason`: the host calls Relay::end_session() on it
    // before returning, then closes the connection once the pending output
    // (the BYE included) has been flushed. A takeover detaches the id from
    // the old session first, so the id does not go offline.
    virtual void close_session(Session& session, CloseReason reason) = 0;
    // "conn 7 [127.0.0.1:51234]", for log lines.
    virtual const char* describe(const Session& session) = 0;
};

struct RelayLimits {
    uint32_t max_frame = 65536;      // announced in the HELLO reply
    uint32_t idle_timeout_s = 300;   // announced in the HELLO reply
    uint32_t max_subs = 4096;        // per session
};

struct RelayStats {
    uint64_t frames_in = 0;
    uint64_t deliveries = 0;         // frames queued to subscribers/targets
    uint64_t dropped_no_subscriber = 0;
};

class Relay {
   public:
    Relay(SessionHost& host, const RelayLimits& limits, const HashKey& key);
    ~Relay();
    Relay(const Relay&) = delete;
    Relay& operator=(const Relay&) = delete;

    // Handles one frame's payload (may be empty) from session.
    void on_frame(Session& session, const uint8_t* payload, size_t len);

    // See the contract above. Safe to call on a session that holds nothing.
    void end_session(Session& session, CloseReason reason);

    size_t device_count() const { return devices_.size(); }
    const RelayStats& stats() const { return stats_; }

   private:
    void on_register(Session& s, const uint8_t* id, size_t len);
    void on_subscribe(Session& s, const uint8_t* id, size_t len);
    void on_send(Session& s, const uint8_t* data, size_t len);
    void on_unregister(Session& s);
    void on_unsubscribe(Session& s, const uint8_t* id, size_t len);
    void on_check_alive(Session& s, const uint8_t* id, size_t len);
    void on_hello(Session& s, const uint8_t* args, size_t len);
    void on_send_to(Session& s, const uint8_t* args, size_t len);

    void reply(Session& s, uint8_t cmd, uint8_t status);
    // Reply with a failure: the v2 reason, or 0 in a v1 session.
    void fail(Session& s, uint8_t cmd, uint8_t reason);
    void deliver(Session& to, const Session& from, const uint8_t* data, size_t len);
    // Tells every v2 subscriber of device its current state, except the
    // session whose register/release caused the change (a connection is not
    // told about its own id).
    void announce_presence(Device& device, const Session* except);
    void send_presence(Session& to, const Device& device);
    void send_bye(Session& s, uint8_t reason, const char* text);

    Device* find_or_create(const uint8_t* id, size_t len);
    void release_device(Session& s, bool announce);
    void drop_subscription(Subscription* sub);
    void drop_all_subscriptions(Session& s);
    void maybe_free(Device* device);

    SessionHost& host_;
    RelayLimits limits_;
    IdTable<Device> devices_;
    RelayStats stats_;
};
