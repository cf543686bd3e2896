// poller.cpp - see poller.h.
#include "poller.h"

#include <unistd.h>

#include <cerrno>

Poller::~Poller() {
    if (epfd_ != -1) close(epfd_);
}

bool Poller::open() {
    epfd_ = epoll_create1(EPOLL_CLOEXEC);
    return epfd_ != -1;
}

bool Poller::add(int fd, uint32_t events, void* data) {
    struct epoll_event ev;
    ev.events = events;
    ev.data.ptr = data;
    return epoll_ctl(epfd_, EPOLL_CTL_ADD, fd, &ev) == 0;
}

bool Poller::remove(int fd) {
    // Since Linux 2.6.9 the event argument may be NULL for EPOLL_CTL_DEL.
    return epoll_ctl(epfd_, EPOLL_CTL_DEL, fd, nullptr) == 0;
}

int Poller::wait(struct epoll_event* events, int max_events, int timeout_ms) {
    int n = epoll_wait(epfd_, events, max_events, timeout_ms);
    if (n == -1 && errno == EINTR) return 0;
    return n;
}
