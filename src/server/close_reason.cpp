// close_reason.cpp - see close_reason.h.
#include "close_reason.h"

#include <cstddef>

#include "protocol.h"

namespace {

struct Row {
    CloseReason reason;
    CloseReasonInfo info;
};

// One row per reason, in declaration order (checked below).
constexpr Row kReasons[] = {
    {CloseReason::taken_over,
     {P2P_BYE_TAKEN_OVER, true, false, "taken over", "device id registered by another connection",
      "taken_over"}},
    {CloseReason::idle_timeout,
     {P2P_BYE_IDLE_TIMEOUT, true, false, "idle timeout", "idle timeout", "idle_timeout"}},
    {CloseReason::slow_consumer,
     {P2P_BYE_SLOW_CONSUMER, true, false, "slow consumer",
      "output buffer limit exceeded: not reading fast enough", "slow_consumer"}},
    {CloseReason::shutdown,
     {P2P_BYE_SHUTDOWN, true, true, "server shutting down", "server shutting down", "shutdown"}},
    {CloseReason::protocol_error,
     {P2P_BYE_PROTOCOL_ERROR, true, false, "protocol error", "protocol error", "protocol_error"}},
    {CloseReason::not_authorized,
     {P2P_BYE_NOT_AUTHORIZED, true, false, "not authorized", "not authorized", "not_authorized"}},
    {CloseReason::limit, {P2P_BYE_LIMIT, true, false, "limit reached", "limit reached", "limit"}},
    {CloseReason::evicted,
     {P2P_BYE_SLOW_CONSUMER, true, false, "evicted at the memory limit",
      "server memory limit reached: output buffer among the largest", "evicted"}},
    {CloseReason::frame_timeout,
     {P2P_BYE_IDLE_TIMEOUT, true, false, "frame timeout", "frame not completed in time",
      "frame_timeout"}},
    {CloseReason::memory_limit,
     {P2P_BYE_LIMIT, true, false, "memory limit", "server memory limit reached", "memory_limit"}},
    {CloseReason::peer_closed, {0, true, true, "closed by peer", "", "peer_closed"}},
    {CloseReason::io_error, {0, false, false, "socket error", "", "io_error"}},
    {CloseReason::linger_expired,
     {0, false, false, "output not taken before the linger deadline", "", "linger_expired"}},
};

constexpr size_t kCount = sizeof kReasons / sizeof kReasons[0];

constexpr bool rows_in_order() {
    for (size_t i = 0; i < kCount; ++i)
        if (static_cast<size_t>(kReasons[i].reason) != i) return false;
    return true;
}

static_assert(kCount == kCloseReasonCount, "one row per CloseReason");
static_assert(rows_in_order(), "rows in CloseReason order");

}  // namespace

const CloseReasonInfo& close_reason_info(CloseReason reason) {
    return kReasons[static_cast<size_t>(reason)].info;
}
