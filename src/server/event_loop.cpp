// event_loop.cpp - see event_loop.h.
#include "event_loop.h"

#include <signal.h>
#include <sys/signalfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <ctime>

#include "io.h"
#include "log.h"

EventLoop::~EventLoop() {
    if (tick_fd_ != -1) close(tick_fd_);
    if (signal_fd_ != -1) close(signal_fd_);
}

uint64_t EventLoop::monotonic_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

bool EventLoop::init(Hooks* hooks, uint32_t tick_ms) {
    hooks_ = hooks;
    now_ms_ = monotonic_ms();
    if (!poller_.open()) return false;
    tick_fd_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tick_fd_ == -1) return false;
    struct itimerspec spec;
    spec.it_interval.tv_sec = tick_ms / 1000;
    spec.it_interval.tv_nsec = static_cast<long>(tick_ms % 1000) * 1000000L;
    spec.it_value = spec.it_interval;
    if (timerfd_settime(tick_fd_, 0, &spec, nullptr) == -1) return false;
    return poller_.add(tick_fd_, EPOLLIN, &tick_handler_);
}

bool EventLoop::watch_signals(const int* signos, size_t count) {
    sigset_t mask;
    sigemptyset(&mask);
    for (size_t i = 0; i < count; ++i) sigaddset(&mask, signos[i]);
    // Blocked, so that they queue for the signalfd instead of running a
    // default action; sigprocmask(2) is the single-threaded form.
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) == -1) return false;
    signal_fd_ = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd_ == -1) return false;
    return poller_.add(signal_fd_, EPOLLIN, &signal_handler_);
}

void EventLoop::TickHandler::on_events(uint32_t) {
    uint64_t expirations = 0;
    // Level-triggered and non-blocking: one read drains the counter. EAGAIN
    // is a spurious wake-up; the tick runs anyway, harmlessly.
    IoResult r = io_read(loop_.tick_fd_, &expirations, sizeof expirations);
    if (r.status == IoStatus::error) LOG_ERROR("timerfd read: %s", strerrordesc_np(r.err));
    loop_.hooks_->on_tick(loop_.now_ms_);
}

void EventLoop::SignalHandler::on_events(uint32_t) {
    for (;;) {
        struct signalfd_siginfo info;
        IoResult r = io_read(loop_.signal_fd_, &info, sizeof info);
        // signalfd(2): each read returns whole siginfo structures.
        if (r.status != IoStatus::ok || r.bytes != sizeof info) return;  // drained
        loop_.hooks_->on_signal(static_cast<int>(info.ssi_signo));
    }
}

// Polls without sleeping for up to busy_poll_us_, then sleeps as usual: a
// process that is woken for every message (a ping-pong) pays for the
// wake-up on each; spinning a little after each batch of I/O trades CPU
// for that latency (a batch of nothing but the tick spins not: an idle
// server sleeps). The clock is read every 64 polls (a poll is about a
// microsecond), so the spin ends within a few of them of its limit.
int EventLoop::busy_wait(struct epoll_event* events, int max_events) {
    uint64_t start = monotonic_us();
    for (unsigned spins = 1;; ++spins) {
        int n = poller_.wait(events, max_events, 0);
        if (n != 0) return n;
        if (spins % 64 == 0 && monotonic_us() - start >= busy_poll_us_) break;
    }
    return poller_.wait(events, max_events, -1);
}

uint64_t EventLoop::monotonic_us() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

bool EventLoop::run() {
    running_ = true;
    struct epoll_event events[kMaxEvents];
    bool spin = false;  // the last batch had I/O (not just the tick)
    while (running_) {
        int timeout = deferred_.empty() ? -1 : 0;
        int n = timeout == 0 || !spin ? poller_.wait(events, kMaxEvents, timeout)
                                      : busy_wait(events, kMaxEvents);
        if (n == -1) {
            int err = errno;
            LOG_ERROR("epoll_wait failed: %s", strerrordesc_np(err));
            errno = err;
            return false;
        }
        now_ms_ = monotonic_ms();
        // Handlers deferred before this batch; ones that defer during it
        // are resumed in the next iteration.
        IntrusiveList<EventHandler, DeferTag> resume;
        while (EventHandler* h = deferred_.pop_front()) resume.push_back(*h);
        spin = false;
        for (int i = 0; i < n; ++i) {
            auto* h = static_cast<EventHandler*>(events[i].data.ptr);
            spin = spin || (busy_poll_us_ != 0 && h != &tick_handler_);
            h->on_events(events[i].events);
        }
        while (EventHandler* h = resume.pop_front()) h->on_resume();
        // A handler may ask again, or ask for another, from its own call.
        while (EventHandler* h = iteration_end_.pop_front()) h->on_iteration_end();
        hooks_->after_iteration(now_ms_);
    }
    return true;
}
