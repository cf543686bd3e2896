// invariants.h - the failure path shared by the check_invariants()
// functions (for tests and fuzzers): the first broken invariant, written
// printf-style into the caller's buffer, and false.
#pragma once

#include <cstdarg>
#include <cstddef>
#include <cstdio>

namespace invariants {

inline bool broken(char* why, size_t cap, const char* fmt, ...) __attribute__((format(printf, 3, 4)));
inline bool broken(char* why, size_t cap, const char* fmt, ...) {
    if (cap != 0) {
        va_list ap;
        va_start(ap, fmt);
        std::vsnprintf(why, cap, fmt, ap);
        va_end(ap);
    }
    return false;
}

}  // namespace invariants
