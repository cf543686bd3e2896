// poller.h - the narrow interface to epoll(7): add, remove, wait.
//
// The event loop talks to readiness only through this, so its logic can be
// driven by pipes and eventfds in tests. Descriptors are registered with a
// caller-chosen pointer that comes back with each event.
#pragma once

#include <sys/epoll.h>

#include <cstdint>

class Poller {
   public:
    Poller() = default;
    ~Poller();
    Poller(const Poller&) = delete;
    Poller& operator=(const Poller&) = delete;

    // epoll_create1(EPOLL_CLOEXEC). False with errno set on failure.
    bool open();

    // false with errno set on failure.
    bool add(int fd, uint32_t events, void* data);
    bool remove(int fd);

    // Waits up to timeout_ms (-1: forever). Returns the number of events,
    // 0 on timeout or EINTR (a signal is not an error), -1 with errno set
    // on a real failure.
    int wait(struct epoll_event* events, int max_events, int timeout_ms);

   private:
    int epfd_ = -1;
};
