// session.h - a connection as the relay sees it: its protocol state (the id
// it holds, its subscriptions, its version) and the three things the relay
// may ask of it. The relay (relay.cpp) owns the rules, the connection
// (connection.cpp) implements the output; in unit tests a fake does.
//
// Contract for implementations:
//  - enqueue() queues one frame, [head][data] behind a 4-byte length, for
//    the peer. It may drop the frame for a session that cannot take more
//    (a slow consumer); that session is then closed after the current
//    event is handled, never from inside the relay's delivery loop.
//  - enqueue_delivery() is enqueue() for a delivery (DELIVER, or a v1
//    session's 03 + data) of data_len bytes from the device `from`. A
//    session that chose the drop policy (`drop_deliveries`, HELLO flag
//    DROP, v2 only) may drop it whole instead of being closed, and counts
//    it for a GAP event (stupidp2p(7)); any other session treats it as
//    enqueue(). Replies and other events are never dropped that way.
//  - close() ends the session for a reason. The implementation calls
//    Relay::end_session() on it before returning (so the BYE is queued and
//    the id released at once), then closes the connection once the pending
//    output has been flushed. Safe to call on a session already closing.
//  - Once `ended` is set, the relay never queues anything for the session
//    but its one BYE.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "close_reason.h"
#include "intrusive_list.h"
#include "log.h"
#include "protocol.h"

struct Device;
struct Subscription;
struct BySession {};

// An AUTH step 1 that was answered and awaits its step 2 (relay_auth.cpp):
// what the proof must cover. Allocated for the exchange only.
struct AuthChallenge {
    uint8_t id[P2P_ID_MAX];
    uint8_t id_len = 0;
    uint8_t client_nonce[P2P_AUTH_NONCE_SIZE];
    uint8_t server_nonce[P2P_AUTH_NONCE_SIZE];
};

// The address and port a session's connection comes from, as the server
// sees it (for direct paths, the device's reflexive candidate).
struct SessionAddress {
    uint8_t len = 0;  // 4 (IPv4) or 16 (IPv6); 0: none
    uint8_t bytes[16] = {};
    uint16_t port = 0;
};

class Session {
   public:
    Session() = default;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    virtual void enqueue(const uint8_t* head, size_t head_len, const uint8_t* data,
                         size_t data_len) = 0;
    virtual void enqueue_delivery(std::string_view from, const uint8_t* head, size_t head_len,
                                  const uint8_t* data, size_t data_len) = 0;
    virtual void close(CloseReason reason) = 0;
    // "conn 7 [127.0.0.1:51234]", for log lines.
    virtual const char* label() const = 0;
    // The peer's address ("1.2.3.4:5"), for structured log lines; nullptr
    // where there is none (test sessions).
    virtual const char* peer() const { return nullptr; }
    // The peer's address as bytes; false where there is none.
    virtual bool address(SessionAddress* out) const {
        (void)out;
        return false;
    }

    // The fields of a log line about this session (log.h, LOG_EVENT).
    LogEvent log_event(const char* event, std::string_view id = {},
                       const char* reason = nullptr) const {
        LogEvent ev;
        ev.event = event;
        ev.conn = session_id;
        ev.peer = peer();
        if (!id.empty()) {
            ev.id = id.data();
            ev.id_len = id.size();
        }
        ev.reason = reason;
        return ev;
    }

    uint64_t session_id = 0;    // for logs: "conn N"
    Device* device = nullptr;   // the id this session holds, if any
    IntrusiveList<Subscription, BySession> subscriptions;
    uint8_t version = 1;        // 1 until HELLO negotiates 2
    bool quiet = false;         // v2 QUIET: successful sends not acknowledged
    bool drop_deliveries = false;  // v2 DROP: deliveries dropped, not the session
    bool ended = false;         // the relay is done with it: no frames, no deliveries
    uint8_t auth_failures = 0;  // failed AUTH step 2s on this connection
    std::unique_ptr<AuthChallenge> auth_challenge;  // AUTH step 2 awaited
    // DIRECT_OFFERs in the current rate window (relay_direct.cpp).
    uint64_t direct_window_start_ms = 0;
    uint32_t direct_offers = 0;
    // Here, next to another 4-byte field, it saves 8 bytes per connection.
    uint32_t subscription_count = 0;

   protected:
    ~Session() = default;  // owned and destroyed as the implementing type
};
