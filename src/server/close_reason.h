// close_reason.h - why a connection ends, and everything that follows from
// the reason, in one table: the BYE a v2 peer is told (code and text), the
// name in log lines, and whether pending output is flushed first.
//
// The first group are the server's decisions and are announced to v2
// sessions by a BYE (stupidp2p(7), BYE REASONS); the rest are the peer's
// doing or the end of a close already under way, and send nothing.
#pragma once

#include <cstddef>
#include <cstdint>

enum class CloseReason : uint8_t {
    taken_over,      // BYE 1: another connection registered the id
    idle_timeout,    // BYE 2
    slow_consumer,   // BYE 3: the output cap was exceeded
    shutdown,        // BYE 4: the server is shutting down
    protocol_error,  // BYE 5: frame too long, command byte >= 0x80 in v2
    not_authorized,  // BYE 6: a third failed AUTH, or the auth file withdrew the id
    limit,           // BYE 7: a server limit (reserved; none sends it yet)
    evicted,         // BYE 3: its output was among the largest at the memory limit
    frame_timeout,   // BYE 2: a frame was begun and not finished in time
    memory_limit,    // BYE 7: no memory for its input at the memory limit
    peer_closed,     // the peer shut down its side (EOF)
    io_error,        // a socket error or no memory for a buffer: no flush
    linger_expired,  // a closing connection's output was not taken in time
};

constexpr size_t kCloseReasonCount = static_cast<size_t>(CloseReason::linger_expired) + 1;

struct CloseReasonInfo {
    uint8_t bye;           // BYE reason byte, 0 for none
    bool flush;            // let pending output (and the BYE) reach the peer
    bool routine;          // logged as an ordinary end, without the backlog
    const char* name;      // for log lines: "closed: <name>"
    const char* bye_text;  // the BYE's free-form text (empty without a BYE)
    const char* label;     // for metrics: reason="<label>"
};

const CloseReasonInfo& close_reason_info(CloseReason reason);

inline const char* close_reason_name(CloseReason reason) { return close_reason_info(reason).name; }
