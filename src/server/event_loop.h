// event_loop.h - a small edge-triggered reactor that knows nothing of the
// relay.
//
// One iteration:
//   1. wait for readiness (not at all if some handler asked to be resumed),
//   2. read the monotonic clock once; every handler of this iteration sees
//      the same now_ms(),
//   3. dispatch each event to its handler,
//   4. resume the handlers that deferred themselves in the previous
//      iteration (fairness: under EPOLLET a handler that stops reading before
//      EAGAIN is not told again, so it asks to be resumed instead),
//   5. call the iteration hook (the server flushes output and frees closed
//      connections there: never inside a batch that may still name them).
// A periodic tick (timerfd) drives timeouts; the loop itself has no timer
// list because the server's timeouts are O(1) LRU lists.
#pragma once

#include <sys/epoll.h>

#include <cstdint>

#include "intrusive_list.h"
#include "poller.h"

struct DeferTag {};

// Anything registered with the loop. on_events gets the epoll event mask;
// on_resume is called for a handler that called defer().
class EventHandler : public ListHook<DeferTag> {
   public:
    virtual ~EventHandler() = default;
    virtual void on_events(uint32_t events) = 0;
    virtual void on_resume() { on_events(EPOLLIN); }
};

class EventLoop {
   public:
    class Hooks {
       public:
        virtual ~Hooks() = default;
        virtual void on_tick(uint64_t now_ms) = 0;       // every tick interval
        virtual void after_iteration(uint64_t now_ms) = 0;
    };

    EventLoop() = default;
    ~EventLoop();
    EventLoop(const EventLoop&) = delete;
    EventLoop& operator=(const EventLoop&) = delete;

    // Creates the epoll instance and the tick timerfd. False with errno set.
    bool init(Hooks* hooks, uint32_t tick_ms);

    bool add(int fd, uint32_t events, EventHandler* handler) {
        return poller_.add(fd, events, handler);
    }
    bool modify(int fd, uint32_t events, EventHandler* handler) {
        return poller_.modify(fd, events, handler);
    }
    bool remove(int fd) { return poller_.remove(fd); }

    // Asks for handler->on_resume() in the next iteration, without waiting.
    void defer(EventHandler& handler) { deferred_.push_back(handler); }
    // Withdraws a defer (a handler about to be freed must call this).
    static void cancel_defer(EventHandler& handler) {
        IntrusiveList<EventHandler, DeferTag>::unlink(handler);
    }

    // Runs until stop(). Returns false if epoll_wait failed (errno set).
    bool run();
    void stop() { running_ = false; }

    uint64_t now_ms() const { return now_ms_; }
    // Reads CLOCK_MONOTONIC in milliseconds.
    static uint64_t monotonic_ms();

   private:
    class TickHandler : public EventHandler {
       public:
        explicit TickHandler(EventLoop& loop) : loop_(loop) {}
        void on_events(uint32_t events) override;

       private:
        EventLoop& loop_;
    };

    static constexpr int kMaxEvents = 256;

    Poller poller_;
    Hooks* hooks_ = nullptr;
    int tick_fd_ = -1;
    TickHandler tick_handler_{*this};
    IntrusiveList<EventHandler, DeferTag> deferred_;
    uint64_t now_ms_ = 0;
    bool running_ = false;
};
