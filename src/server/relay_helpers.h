// relay_helpers.h - small things the relay's two files (relay.cpp, the
// commands; relay_auth.cpp, AUTH and the auth table's rules) both need.
// Internal to the relay.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "log.h"
#include "protocol.h"
#include "session.h"

namespace relay_detail {

inline std::string_view as_view(const uint8_t* p, size_t n) {
    return std::string_view(reinterpret_cast<const char*>(p), n);
}

inline const uint8_t* as_bytes(std::string_view s) {
    return reinterpret_cast<const uint8_t*>(s.data());
}

inline bool is_v2(const Session& s) { return s.version >= P2P_VERSION_2; }

// An id for a log line; see log_escape().
struct PrintableId {
    explicit PrintableId(std::string_view id) { log_escape(id.data(), id.size(), text, sizeof text); }
    char text[kLogEscapeCap];
};

}  // namespace relay_detail
