// event_loop.h - a small edge-triggered reactor that knows nothing of the
// relay or of connections: descriptors, a periodic tick and signals.
//
// One iteration:
//   1. wait for readiness (not at all if some handler asked to be resumed),
//   2. read the monotonic clock once; every handler of this iteration sees
//      the same now_ms(),
//   3. dispatch each event to its handler,
//   4. resume the handlers that deferred themselves in the previous
//      iteration (fairness: under EPOLLET a handler that stops reading before
//      EAGAIN is not told again, so it asks to be resumed instead),
//   5. call on_iteration_end() of every handler that asked for it during
//      this iteration (the place to write out what the iteration produced
//      for a connection in one writev), until none is left,
//   6. call the after_iteration hook (the server frees closed connections
//      there: never inside a batch that may still name them).
// A periodic tick (timerfd) drives timeouts; the loop itself has no timer
// list because the server's timeouts are O(1) LRU lists. Signals chosen by
// the owner are blocked and read through a signalfd, so a handler runs in
// the loop like any other event, never asynchronously.
#pragma once

#include <sys/epoll.h>

#include <cstddef>
#include <cstdint>

#include "clock.h"
#include "intrusive_list.h"
#include "poller.h"

struct DeferTag {};
struct IterationEndTag {};

// Anything registered with the loop. on_events gets the epoll event mask;
// on_resume is called for a handler that called defer(); on_iteration_end
// for one that called at_iteration_end().
class EventHandler : public ListHook<DeferTag>, public ListHook<IterationEndTag> {
   public:
    virtual ~EventHandler() = default;
    virtual void on_events(uint32_t events) = 0;
    virtual void on_resume() { on_events(EPOLLIN); }
    virtual void on_iteration_end() {}
};

class EventLoop final : public Clock {
   public:
    class Hooks {
       public:
        virtual ~Hooks() = default;
        virtual void on_tick(uint64_t now_ms) = 0;  // every tick interval
        virtual void on_signal(int signo) = 0;      // one of watch_signals()'
        virtual void after_iteration(uint64_t now_ms) = 0;
    };

    EventLoop() = default;
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Creates the epoll instance and the tick timerfd. False with errno set.
    bool init(Hooks* hooks, uint32_t tick_ms);

    // Blocks signos[0..count) for the process and delivers them through
    // Hooks::on_signal. Call once, after init and before any thread starts.
    // False with errno set.
    bool watch_signals(const int* signos, size_t count);

    bool add(int fd, uint32_t events, EventHandler* handler) {
        return poller_.add(fd, events, handler);
    }
    bool remove(int fd) { return poller_.remove(fd); }

    // Asks for handler->on_resume() in the next iteration, without waiting.
    void defer(EventHandler& handler) { deferred_.push_back(handler); }
    // Asks for handler->on_iteration_end() at the end of this iteration;
    // asking twice is asking once.
    void at_iteration_end(EventHandler& handler) {
        if (!IntrusiveList<EventHandler, IterationEndTag>::linked(handler))
            iteration_end_.push_back(handler);
    }
    // Withdraws both requests (a handler about to be freed must call this).
    static void cancel(EventHandler& handler) {
        IntrusiveList<EventHandler, DeferTag>::unlink(handler);
        IntrusiveList<EventHandler, IterationEndTag>::unlink(handler);
    }

    // Before sleeping in epoll_wait, poll for up to usec microseconds
    // (--busy-poll; 0, the default, never spins: an idle loop uses no CPU).
    void set_busy_poll(uint32_t usec) { busy_poll_us_ = usec; }

    // Runs until stop(). Returns false if epoll_wait failed (errno set).
    bool run();
    void stop() { running_ = false; }

    // The time read when this iteration's wait returned.
    uint64_t now_ms() const override { return now_ms_; }
    // Reads CLOCK_MONOTONIC in milliseconds, or microseconds.
    static uint64_t monotonic_ms();
    static uint64_t monotonic_us();

   private:
    // The tick timerfd and the signalfd: loop-owned descriptors whose events
    // become Hooks calls.
    class TickHandler : public EventHandler {
       public:
        explicit TickHandler(EventLoop& loop) : loop_(loop) {}
        void on_events(uint32_t events) override;

       private:
        EventLoop& loop_;
    };
    class SignalHandler : public EventHandler {
       public:
        explicit SignalHandler(EventLoop& loop) : loop_(loop) {}
        void on_events(uint32_t events) override;

       private:
        EventLoop& loop_;
    };

    static constexpr int kMaxEvents = 256;

    int busy_wait(struct epoll_event* events, int max_events);

    Poller poller_;
    Hooks* hooks_ = nullptr;
    int tick_fd_ = -1;
    int signal_fd_ = -1;
    TickHandler tick_handler_{*this};
    SignalHandler signal_handler_{*this};
    IntrusiveList<EventHandler, DeferTag> deferred_;
    IntrusiveList<EventHandler, IterationEndTag> iteration_end_;
    uint64_t now_ms_ = 0;
    uint32_t busy_poll_us_ = 0;
    bool running_ = false;
};
