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
//  - close() ends the session for a reason. The implementation calls
//    Relay::end_session() on it before returning (so the BYE is queued and
//    the id released at once), then closes the connection once the pending
//    output has been flushed. Safe to call on a session already closing.
//  - Once `ended` is set, the relay never queues anything for the session
//    but its one BYE.
#pragma once

#include <cstddef>
#include <cstdint>

#include "close_reason.h"
#include "intrusive_list.h"

struct Device;
struct Subscription;
struct BySession {};

class Session {
   public:
    Session() = default;
    Session(const Session&) = delete;
    Session& operator=(const Session&) = delete;

    virtual void enqueue(const uint8_t* head, size_t head_len, const uint8_t* data,
                         size_t data_len) = 0;
    virtual void close(CloseReason reason) = 0;
    // "conn 7 [127.0.0.1:51234]", for log lines.
    virtual const char* label() const = 0;

    uint64_t session_id = 0;    // for logs: "conn N"
    Device* device = nullptr;   // the id this session holds, if any
    IntrusiveList<Subscription, BySession> subscriptions;
    uint32_t subscription_count = 0;
    uint8_t version = 1;        // 1 until HELLO negotiates 2
    bool quiet = false;         // v2 QUIET: successful sends not acknowledged
    bool ended = false;         // the relay is done with it: no frames, no deliveries

   protected:
    ~Session() = default;  // owned and destroyed as the implementing type
};
