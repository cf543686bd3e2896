// session.h - the relay's view of a connection, of a device id, and of a
// subscription between them. Plain data: the relay (relay.cpp) owns the
// rules, the server owns the sockets.
//
// A Device exists while its id is held by a session or subscribed to by one:
// subscriptions name the device id, not the connection that holds it, so a
// subscriber keeps receiving when the device reconnects, re-registers from a
// new connection or is taken over.
//
// A Subscription links one subscriber Session and one Device and sits on two
// lists at once (the device's subscribers, the session's subscriptions), so
// either side can drop it in O(1).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "intrusive_list.h"

struct Session;

struct ByDevice {};
struct BySession {};

struct Subscription : ListHook<ByDevice>, ListHook<BySession> {
    Session* subscriber = nullptr;
    struct Device* device = nullptr;
};

struct Device {
    std::string id;
    Session* holder = nullptr;  // the session that registered it, if online
    IntrusiveList<Subscription, ByDevice> subscribers;
    uint32_t subscriber_count = 0;

    std::string_view key() const { return id; }
    bool online() const { return holder != nullptr; }
};

// Why a session ends. The first group are the server's decisions and, for v2
// sessions, are announced by a BYE; the rest are the peer's doing.
enum class CloseReason : uint8_t {
    taken_over,      // BYE 1
    idle_timeout,    // BYE 2
    slow_consumer,   // BYE 3
    shutdown,        // BYE 4
    protocol_error,  // BYE 5 (frame too long, command byte >= 0x80 in v2)
    not_authorized,  // BYE 6 (reserved for token authentication)
    limit,           // BYE 7 (too many connections)
    peer_closed,     // the peer closed its side
    io_error,        // a socket error (reset, ...)
};

const char* close_reason_name(CloseReason reason);

struct Session {
    uint64_t session_id = 0;    // for logs: "conn N"
    Device* device = nullptr;   // the id this session holds, if any
    IntrusiveList<Subscription, BySession> subscriptions;
    uint32_t subscription_count = 0;
    uint8_t version = 1;        // 1 until HELLO negotiates 2
    bool quiet = false;         // v2 QUIET: successful sends not acknowledged
    bool ended = false;         // the relay is done with it: no frames, no deliveries
};
