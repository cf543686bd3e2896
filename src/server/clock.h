// clock.h - where code above the event loop gets the time: milliseconds on
// a monotonic clock. The server passes its EventLoop, which reads the clock
// once per iteration so that every handler of an iteration sees the same
// time; unit tests pass a clock they move by hand, so that time-driven
// behaviour (the relay's presence windows) is tested without waiting.
#pragma once

#include <time.h>

#include <cstdint>

class Clock {
   public:
    virtual uint64_t now_ms() const = 0;

   protected:
    ~Clock() = default;
};

// CLOCK_MONOTONIC read at every call: for code given no other clock.
class MonotonicClock final : public Clock {
   public:
    uint64_t now_ms() const override {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        return static_cast<uint64_t>(ts.tv_sec) * 1000u +
               static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
    }
};

// Times kept in 32 bits: the low bits of a clock's milliseconds (they wrap
// every 49.7 days), made whole again against now_ms. Exact for a time
// within 2^31 ms (24.8 days) either side of now, past or future; for what
// holds a time per client and needs it only that near (Connection).
inline uint32_t ms32(uint64_t ms) { return static_cast<uint32_t>(ms); }
inline uint64_t widen_ms32(uint64_t now_ms, uint32_t ms) {
    auto delta = static_cast<int32_t>(ms - ms32(now_ms));
    return now_ms + static_cast<uint64_t>(int64_t{delta});  // modulo 2^64: earlier when negative
}
