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
