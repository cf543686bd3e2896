// test_event_loop.cpp - unit tests for src/server/event_loop.{h,cpp} and
// poller.{h,cpp}, driven by eventfds: no sockets, no relay code.
//
// What is checked: dispatch of a readable fd to its handler with the epoll
// mask; defer() leading to on_resume() in the next iteration without new
// readiness and without the loop sleeping; cancel(), also from inside a
// batch; the order within one iteration (events, then resumes, then
// iteration-end calls, then after_iteration) and one now_ms() per
// iteration; on_iteration_end() once per request; signals through
// watch_signals(); the periodic tick; stop() from any hook ending run(); a
// signal interrupting epoll_wait not being an error; and the ownership rule the loop relies on: it never frees a handler
// and has no stale-event guard, so a handler closed by another handler in
// the same batch still gets the events already fetched for it, and it is
// the owner's job to keep it alive until after_iteration() (STYLE.md,
// practice 9) and to withdraw its defer before freeing it.
//
// Every run() is bounded: either an eventfd or the tick guarantees
// progress, hooks stop the loop after a bounded number of iterations, and a
// watchdog alarm ends the whole binary with a message if a test hangs.
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "event_loop.h"
#include "poller.h"

// CMocka last: it defines fail() and friends as macros. Its 1.1 header has
// no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

namespace {

const unsigned kWatchdogSeconds = 5;

void on_watchdog(int) {
    static const char msg[] = "test_event_loop: watchdog: a test hung, aborting\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(3);
}

int arm_watchdog(void**) {
    alarm(kWatchdogSeconds);
    return 0;
}

int disarm_watchdog(void**) {
    alarm(0);
    return 0;
}

// An eventfd, non-blocking, closed on destruction unless already closed.
struct EventFd {
    int fd;
    EventFd() : fd(eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC)) { assert_true(fd >= 0); }
    ~EventFd() {
        if (fd != -1) close(fd);
    }
    EventFd(const EventFd&) = delete;
    EventFd& operator=(const EventFd&) = delete;
    void signal() const {
        uint64_t one = 1;
        assert_int_equal(write(fd, &one, sizeof one), sizeof one);
    }
};

void drain(int fd) {
    uint64_t v;
    while (read(fd, &v, sizeof v) == static_cast<ssize_t>(sizeof v)) {
    }
}

struct Hooks : EventLoop::Hooks {
    EventLoop* loop = nullptr;
    std::vector<std::string>* trace = nullptr;
    int ticks = 0;
    int iterations = 0;  // completed iterations
    std::vector<uint64_t> tick_now;
    std::vector<uint64_t> after_now;
    std::vector<int> signals;
    std::function<void(Hooks&)> tick_fn;
    std::function<void(Hooks&)> after_fn;

    void on_tick(uint64_t now) override {
        ++ticks;
        tick_now.push_back(now);
        if (trace) trace->push_back("tick");
        if (tick_fn) tick_fn(*this);
    }
    void on_signal(int signo) override {
        signals.push_back(signo);
        if (trace) trace->push_back("signal");
        loop->stop();
    }
    void after_iteration(uint64_t now) override {
        ++iterations;
        after_now.push_back(now);
        if (trace) trace->push_back("after");
        if (after_fn) after_fn(*this);
    }
};

// Records what the loop does to it. `iteration` values are 1-based.
struct Probe : EventHandler {
    std::string name;
    Hooks* hooks = nullptr;
    EventLoop* loop = nullptr;
    std::vector<std::string>* trace = nullptr;
    int fd = -1;  // drained on events, if set and not closed
    bool closed = false;
    int events = 0;
    int resumes = 0;
    uint32_t last_mask = 0;
    bool got_events_while_closed = false;
    std::vector<int> event_iters;
    std::vector<int> resume_iters;
    std::vector<uint64_t> now_seen;
    int ends = 0;
    std::function<void(Probe&)> ev_fn;
    std::function<void(Probe&)> res_fn;
    std::function<void(Probe&)> end_fn;

    Probe(const char* n, Hooks& h, EventLoop& l, std::vector<std::string>* t = nullptr)
        : name(n), hooks(&h), loop(&l), trace(t) {}

    void on_events(uint32_t mask) override {
        ++events;
        last_mask = mask;
        if (closed) got_events_while_closed = true;
        event_iters.push_back(hooks->iterations + 1);
        now_seen.push_back(loop->now_ms());
        if (trace) trace->push_back(name + ":ev");
        if (fd != -1 && !closed) drain(fd);
        if (ev_fn) ev_fn(*this);
    }
    void on_resume() override {
        ++resumes;
        resume_iters.push_back(hooks->iterations + 1);
        now_seen.push_back(loop->now_ms());
        if (trace) trace->push_back(name + ":resume");
        if (res_fn) res_fn(*this);
    }
    void on_iteration_end() override {
        ++ends;
        if (trace) trace->push_back(name + ":end");
        if (end_fn) end_fn(*this);
    }
};

// A handler that keeps the default on_resume().
struct PlainHandler : EventHandler {
    EventLoop* loop = nullptr;
    int calls = 0;
    uint32_t mask = 0;
    void on_events(uint32_t m) override {
        ++calls;
        mask = m;
        loop->stop();
    }
};

struct Rig {
    EventLoop loop;
    Hooks hooks;
    std::vector<std::string> trace;
    explicit Rig(uint32_t tick_ms) {
        hooks.loop = &loop;
        assert_true(loop.init(&hooks, tick_ms));
    }
    std::string joined() const {
        std::string out;
        for (const std::string& s : trace) out += (out.empty() ? "" : " ") + s;
        return out;
    }
};

// Stops the loop at the nth tick: a fail-safe bound for tests that expect
// to stop earlier by other means.
void stop_at_tick(Hooks& h, int n) {
    h.tick_fn = [n](Hooks& hk) {
        if (hk.ticks >= n) hk.loop->stop();
    };
}

// ---- poller ------------------------------------------------------------------

void test_poller_add_remove_wait(void**) {
    Poller p;
    assert_true(p.open());
    EventFd e;
    struct epoll_event ev[4];
    int tag1 = 1, tag2 = 2;

    assert_int_equal(p.wait(ev, 4, 0), 0);  // nothing registered, nothing ready
    assert_true(p.add(e.fd, EPOLLIN, &tag1));
    assert_int_equal(p.wait(ev, 4, 0), 0);  // registered, not readable
    e.signal();
    assert_int_equal(p.wait(ev, 4, 0), 1);
    assert_ptr_equal(ev[0].data.ptr, &tag1);
    assert_true((ev[0].events & EPOLLIN) != 0);
    // Level-triggered: reported again until drained.
    assert_int_equal(p.wait(ev, 4, 0), 1);

    // Registered again with another mask and pointer: edge-triggered reports
    // the pending readiness once, then not again without a new write.
    assert_true(p.remove(e.fd));
    assert_true(p.add(e.fd, EPOLLIN | EPOLLET, &tag2));
    assert_int_equal(p.wait(ev, 4, 0), 1);
    assert_ptr_equal(ev[0].data.ptr, &tag2);
    assert_int_equal(p.wait(ev, 4, 0), 0);
    e.signal();
    assert_int_equal(p.wait(ev, 4, 0), 1);

    // Removed: no events even though data is pending.
    assert_true(p.remove(e.fd));
    e.signal();
    assert_int_equal(p.wait(ev, 4, 0), 0);

    // Errors come back as false with errno.
    errno = 0;
    assert_false(p.remove(e.fd));
    assert_int_equal(errno, ENOENT);
    assert_true(p.add(e.fd, EPOLLIN, &tag1));
    errno = 0;
    assert_false(p.add(e.fd, EPOLLIN, &tag1));
    assert_int_equal(errno, EEXIST);
    errno = 0;
    assert_false(p.add(-1, EPOLLIN, &tag1));
    assert_int_equal(errno, EBADF);
}

void on_usr1(int) {}

// A signal during epoll_wait is not an error: wait() returns 0.

// A POSIX timer that raises SIGUSR1 once, 30 ms from now (a signal landing
// inside epoll_wait). The caller deletes it.
timer_t sigusr1_in_30ms() {
    struct sigevent sev;
    std::memset(&sev, 0, sizeof sev);
    sev.sigev_notify = SIGEV_SIGNAL;
    sev.sigev_signo = SIGUSR1;
    timer_t timer;
    assert_int_equal(timer_create(CLOCK_MONOTONIC, &sev, &timer), 0);
    struct itimerspec its;
    std::memset(&its, 0, sizeof its);
    its.it_value.tv_nsec = 30 * 1000000L;
    assert_int_equal(timer_settime(timer, 0, &its, nullptr), 0);
    return timer;
}

void test_poller_wait_eintr_returns_zero(void**) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;  // no SA_RESTART (epoll_wait never restarts anyway)
    assert_int_equal(sigaction(SIGUSR1, &sa, nullptr), 0);
    timer_t timer = sigusr1_in_30ms();

    Poller p;
    assert_true(p.open());
    EventFd e;
    assert_true(p.add(e.fd, EPOLLIN, nullptr));
    struct epoll_event ev[1];
    uint64_t t0 = EventLoop::monotonic_ms();
    int n = p.wait(ev, 1, 3000);
    uint64_t elapsed = EventLoop::monotonic_ms() - t0;
    timer_delete(timer);
    assert_int_equal(n, 0);
    assert_true(elapsed < 2000);  // woken by the signal, not the timeout
}

// ---- event loop --------------------------------------------------------------

void test_readable_fd_dispatched(void**) {
    Rig r(10);
    stop_at_tick(r.hooks, 100);  // fail-safe: 1 s
    EventFd ready, idle;
    Probe a("a", r.hooks, r.loop), b("b", r.hooks, r.loop);
    a.fd = ready.fd;
    b.fd = idle.fd;
    a.ev_fn = [](Probe& p) { p.loop->stop(); };
    assert_true(r.loop.add(ready.fd, EPOLLIN | EPOLLET, &a));
    assert_true(r.loop.add(idle.fd, EPOLLIN | EPOLLET, &b));
    ready.signal();
    assert_true(r.loop.run());
    assert_int_equal(a.events, 1);
    assert_int_equal(a.last_mask, EPOLLIN);
    assert_int_equal(b.events, 0);
    assert_int_equal(r.hooks.iterations, a.event_iters.back());  // after_iteration ran

    // run() again after stop(): the next readiness is dispatched as well;
    // a handler registered anew for the fd is honoured.
    Probe c("c", r.hooks, r.loop);
    c.fd = ready.fd;
    c.ev_fn = [](Probe& p) { p.loop->stop(); };
    assert_true(r.loop.remove(ready.fd));
    assert_true(r.loop.add(ready.fd, EPOLLIN | EPOLLET, &c));
    ready.signal();
    assert_true(r.loop.run());
    assert_int_equal(c.events, 1);
    assert_int_equal(a.events, 1);

    // A removed fd is not dispatched: the loop runs until the 3rd tick from
    // now and nothing reaches the handler.
    assert_true(r.loop.remove(ready.fd));
    int base = r.hooks.ticks;
    stop_at_tick(r.hooks, base + 3);
    ready.signal();
    assert_true(r.loop.run());
    assert_int_equal(c.events, 1);
    assert_int_equal(r.hooks.ticks, base + 3);
}

// The handler gets the mask epoll reported, not a fixed EPOLLIN: data on a
// pipe, then the write end closed (EPOLLHUP, reported unasked), and an
// EPOLLOUT registration.
void test_event_mask_passed_through(void**) {
    Rig r(10);
    stop_at_tick(r.hooks, 100);  // fail-safe: 1 s
    int p[2];
    assert_int_equal(pipe2(p, O_NONBLOCK | O_CLOEXEC), 0);
    Probe rd("rd", r.hooks, r.loop);
    rd.ev_fn = [](Probe& self) { self.loop->stop(); };
    assert_true(r.loop.add(p[0], EPOLLIN | EPOLLET, &rd));
    assert_int_equal(write(p[1], "x", 1), 1);
    assert_true(r.loop.run());
    assert_int_equal(rd.events, 1);
    assert_int_equal(rd.last_mask, EPOLLIN);
    char c;
    assert_int_equal(read(p[0], &c, 1), 1);

    close(p[1]);
    assert_true(r.loop.run());
    assert_int_equal(rd.events, 2);
    assert_true((rd.last_mask & EPOLLHUP) != 0);
    assert_true((rd.last_mask & EPOLLOUT) == 0);
    assert_true(r.loop.remove(p[0]));
    close(p[0]);

    EventFd e;
    Probe wr("wr", r.hooks, r.loop);
    wr.ev_fn = [](Probe& self) { self.loop->stop(); };
    assert_true(r.loop.add(e.fd, EPOLLOUT | EPOLLET, &wr));
    assert_true(r.loop.run());
    assert_int_equal(wr.events, 1);
    assert_int_equal(wr.last_mask, EPOLLOUT);
    assert_true(r.hooks.ticks < 100);
}

// defer() gets on_resume() in the very next iteration, with no new
// readiness, and the loop does not block while something is deferred: with
// a 2 s tick, 50 resumes in a row must take far less than a tick.
void test_defer_resumes_next_iteration_without_sleeping(void**) {
    Rig r(2000);
    r.hooks.tick_fn = [](Hooks& h) { h.loop->stop(); };  // a tick means it slept
    EventFd e;
    Probe p("p", r.hooks, r.loop);
    p.fd = e.fd;
    p.ev_fn = [](Probe& self) { self.loop->defer(self); };
    p.res_fn = [](Probe& self) {
        if (self.resumes < 50)
            self.loop->defer(self);
        else
            self.loop->stop();
    };
    assert_true(r.loop.add(e.fd, EPOLLIN | EPOLLET, &p));
    e.signal();
    uint64_t t0 = EventLoop::monotonic_ms();
    assert_true(r.loop.run());
    uint64_t elapsed = EventLoop::monotonic_ms() - t0;
    assert_int_equal(r.hooks.ticks, 0);
    assert_int_equal(p.events, 1);  // no new readiness was reported
    assert_int_equal(p.resumes, 50);
    assert_int_equal(p.event_iters[0], 1);
    for (int i = 0; i < 50; ++i) assert_int_equal(p.resume_iters[static_cast<size_t>(i)], i + 2);
    assert_int_equal(r.hooks.iterations, 51);
    assert_true(elapsed < 1000);
}

// The default on_resume() is on_events(EPOLLIN); a handler deferred twice
// is resumed once; a defer made before run() is honoured at once.
void test_default_resume_and_double_defer(void**) {
    Rig r(2000);
    r.hooks.tick_fn = [](Hooks& h) { h.loop->stop(); };
    PlainHandler h;
    h.loop = &r.loop;
    r.loop.defer(h);
    r.loop.defer(h);
    uint64_t t0 = EventLoop::monotonic_ms();
    assert_true(r.loop.run());
    assert_true(EventLoop::monotonic_ms() - t0 < 1000);
    assert_int_equal(h.calls, 1);
    assert_int_equal(h.mask, EPOLLIN);
    assert_int_equal(r.hooks.iterations, 1);
    assert_int_equal(r.hooks.ticks, 0);
}

void test_cancel_defer(void**) {
    // Cancelled before run(): never resumed, and the loop then blocks until
    // the tick (one iteration, woken by the tick).
    {
        Rig r(10);
        stop_at_tick(r.hooks, 1);
        Probe p("p", r.hooks, r.loop);
        r.loop.defer(p);
        EventLoop::cancel(p);
        EventLoop::cancel(p);  // twice: harmless
        Probe never("never", r.hooks, r.loop);
        EventLoop::cancel(never);  // never deferred: harmless
        assert_true(r.loop.run());
        assert_int_equal(p.resumes, 0);
        assert_int_equal(r.hooks.ticks, 1);
        assert_int_equal(r.hooks.iterations, 1);
    }
    // Cancelled from inside the batch that would have resumed it: a handler
    // closing another one withdraws its defer, and it is not resumed.
    {
        Rig r(2000);
        r.hooks.tick_fn = [](Hooks& h) { h.loop->stop(); };
        EventFd e;
        Probe victim("victim", r.hooks, r.loop);
        Probe killer("killer", r.hooks, r.loop);
        killer.fd = e.fd;
        killer.ev_fn = [&victim](Probe& self) {
            EventLoop::cancel(victim);
            self.loop->stop();
        };
        assert_true(r.loop.add(e.fd, EPOLLIN | EPOLLET, &killer));
        r.loop.defer(victim);
        e.signal();
        assert_true(r.loop.run());
        assert_int_equal(killer.events, 1);
        assert_int_equal(victim.resumes, 0);
        assert_int_equal(r.hooks.iterations, 1);
    }
    // Cancelled from after_iteration, after a defer made in the batch, then
    // freed there: the next iteration does not touch it.
    {
        Rig r(10);
        stop_at_tick(r.hooks, 2);
        EventFd e;
        auto doomed = std::make_unique<Probe>("doomed", r.hooks, r.loop);
        doomed->fd = e.fd;
        doomed->ev_fn = [](Probe& self) { self.loop->defer(self); };
        assert_true(r.loop.add(e.fd, EPOLLIN | EPOLLET, doomed.get()));
        int events_seen = 0;
        r.hooks.after_fn = [&](Hooks& h) {
            if (doomed && doomed->events == 1) {
                events_seen = doomed->events;
                assert_int_equal(doomed->resumes, 0);
                assert_true(h.loop->remove(e.fd));
                EventLoop::cancel(*doomed);
                doomed.reset();  // the owner frees it, at the safe point
            }
        };
        e.signal();
        assert_true(r.loop.run());
        assert_int_equal(events_seen, 1);
        assert_null(doomed.get());
        assert_int_equal(r.hooks.ticks, 2);
    }
}

// One iteration: the batch's events, then the handlers deferred in the
// previous iteration, then after_iteration. Everyone in it sees the same
// now_ms(), and it does not go backwards.
void test_iteration_order_and_clock(void**) {
    Rig r(2000);
    r.hooks.trace = &r.trace;
    r.hooks.tick_fn = [](Hooks& h) { h.loop->stop(); };
    EventFd e;
    Probe a("a", r.hooks, r.loop, &r.trace);
    Probe d("d", r.hooks, r.loop, &r.trace);
    a.fd = e.fd;
    // a defers itself in iteration 1: resumed in 2, not in 1's resume phase.
    a.ev_fn = [](Probe& self) {
        if (self.events == 1) self.loop->defer(self);
    };
    assert_true(r.loop.add(e.fd, EPOLLIN | EPOLLET, &a));
    r.loop.defer(d);
    e.signal();
    r.hooks.after_fn = [&e](Hooks& h) {
        if (h.iterations < 3) e.signal();  // readiness for the next iteration
        if (h.iterations == 3) h.loop->stop();
    };
    assert_true(r.loop.run());
    assert_string_equal(r.joined().c_str(),
                        "a:ev d:resume after a:ev a:resume after a:ev after");
    assert_int_equal(r.hooks.iterations, 3);
    // Same clock within an iteration (events, resumes and the hook).
    assert_int_equal(a.now_seen.size(), 4);
    assert_int_equal(a.now_seen[0], r.hooks.after_now[0]);
    assert_int_equal(d.now_seen[0], r.hooks.after_now[0]);
    assert_int_equal(a.now_seen[1], r.hooks.after_now[1]);
    assert_int_equal(a.now_seen[2], r.hooks.after_now[1]);
    assert_int_equal(a.now_seen[3], r.hooks.after_now[2]);
    assert_true(r.hooks.after_now[0] <= r.hooks.after_now[1]);
    assert_true(r.hooks.after_now[1] <= r.hooks.after_now[2]);
    assert_int_equal(r.loop.now_ms(), r.hooks.after_now[2]);
    assert_int_equal(r.hooks.ticks, 0);
}

// The tick fires every tick_ms; stop() from on_tick ends run(), and with
// nothing else registered only the tick wakes the loop.
void test_tick_and_stop_from_tick(void**) {
    uint64_t t0 = EventLoop::monotonic_ms();
    Rig r(10);
    stop_at_tick(r.hooks, 5);
    assert_true(r.loop.run());
    uint64_t elapsed = EventLoop::monotonic_ms() - t0;
    assert_int_equal(r.hooks.ticks, 5);
    assert_int_equal(r.hooks.iterations, 5);
    // The 5th expiry of a 10 ms timer armed after t0.
    assert_true(elapsed >= 50);
    assert_true(elapsed < 3000);
    for (size_t i = 1; i < r.hooks.tick_now.size(); ++i)
        assert_true(r.hooks.tick_now[i] > r.hooks.tick_now[i - 1]);
    assert_true(r.hooks.tick_now[4] - t0 >= 50);
}

// A tick of more than a second: 1100 ms is 1 s + 100 ms in the itimerspec.
void test_tick_over_one_second(void**) {
    uint64_t t0 = EventLoop::monotonic_ms();
    Rig r(1100);
    stop_at_tick(r.hooks, 1);
    assert_true(r.loop.run());
    uint64_t elapsed = EventLoop::monotonic_ms() - t0;
    assert_int_equal(r.hooks.ticks, 1);
    assert_true(elapsed >= 1100);
    assert_true(elapsed < 3000);
}

// A signal interrupting epoll_wait is not an error: run() goes on (an
// iteration with no events) instead of returning false.
void test_run_survives_eintr(void**) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_usr1;
    assert_int_equal(sigaction(SIGUSR1, &sa, nullptr), 0);
    Rig r(2000);
    r.hooks.tick_fn = [](Hooks& h) { h.loop->stop(); };
    r.hooks.after_fn = [](Hooks& h) { h.loop->stop(); };
    timer_t timer = sigusr1_in_30ms();
    bool ok = r.loop.run();
    timer_delete(timer);
    assert_true(ok);
    assert_int_equal(r.hooks.iterations, 1);
    assert_int_equal(r.hooks.ticks, 0);  // woken by the signal, not the tick
}

// Two handlers ready in one batch; whichever runs first closes the other
// (removes and closes its fd, marks it closed). The loop has already
// fetched the other's event and delivers it anyway: the loop never frees
// or filters anything, so the object must still be alive, and it is the
// owner's job to free it only in after_iteration (here: a reap list).
void test_closed_in_same_batch_still_delivered(void**) {
    Rig r(2000);
    r.hooks.tick_fn = [](Hooks& h) { h.loop->stop(); };
    EventFd ea, eb;
    auto a = std::make_unique<Probe>("a", r.hooks, r.loop);
    auto b = std::make_unique<Probe>("b", r.hooks, r.loop);
    a->fd = ea.fd;
    b->fd = eb.fd;
    std::vector<std::unique_ptr<Probe>> reap;
    Probe* first = nullptr;
    auto close_other = [&](Probe& self) {
        if (first != nullptr) return;
        first = &self;
        Probe& other = (&self == a.get()) ? *b : *a;
        EventFd& other_fd = (&self == a.get()) ? eb : ea;
        assert_true(r.loop.remove(other_fd.fd));
        close(other_fd.fd);
        other_fd.fd = -1;
        other.closed = true;
        EventLoop::cancel(other);
    };
    a->ev_fn = close_other;
    b->ev_fn = close_other;
    assert_true(r.loop.add(ea.fd, EPOLLIN | EPOLLET, a.get()));
    assert_true(r.loop.add(eb.fd, EPOLLIN | EPOLLET, b.get()));
    ea.signal();
    eb.signal();
    int delivered_a = 0, delivered_b = 0, late = 0;
    r.hooks.after_fn = [&](Hooks& h) {
        // The safe point: free what was closed during the batch.
        delivered_a = a->events;
        delivered_b = b->events;
        late = a->got_events_while_closed + b->got_events_while_closed;
        if (a->closed) reap.push_back(std::move(a));
        if (b->closed) reap.push_back(std::move(b));
        reap.clear();
        h.loop->stop();
    };
    assert_true(r.loop.run());
    assert_non_null(first);
    assert_int_equal(delivered_a, 1);
    assert_int_equal(delivered_b, 1);
    assert_int_equal(late, 1);  // the closed one still got its event
    assert_int_equal(r.hooks.iterations, 1);
    // Exactly one survivor, the one that ran first.
    assert_true((a == nullptr) != (b == nullptr));
    assert_true((a ? a.get() : b.get()) == first);
}


// at_iteration_end(): called after the batch and the resumes, before
// after_iteration, once however often it was asked for; a handler may ask
// again (or for another) from its own call and is called again in the same
// iteration; cancel() withdraws the request.
void test_iteration_end(void**) {
    Rig r(2000);
    r.hooks.tick_fn = [](Hooks& h) { h.loop->stop(); };
    r.hooks.trace = &r.trace;
    EventFd e;
    Probe a("a", r.hooks, r.loop, &r.trace), b("b", r.hooks, r.loop, &r.trace);
    Probe c("c", r.hooks, r.loop, &r.trace), gone("gone", r.hooks, r.loop, &r.trace);
    a.fd = e.fd;
    a.ev_fn = [&](Probe& self) {
        self.loop->at_iteration_end(self);
        self.loop->at_iteration_end(self);  // twice: once
        self.loop->at_iteration_end(gone);
        EventLoop::cancel(gone);            // withdrawn before the end
    };
    a.end_fn = [&](Probe& self) {
        if (self.ends == 1) self.loop->at_iteration_end(b);  // another, from inside
    };
    b.end_fn = [&](Probe& self) {
        if (self.ends == 1) self.loop->at_iteration_end(self);  // itself again
    };
    c.res_fn = [&](Probe& self) { self.loop->at_iteration_end(self); };
    r.hooks.after_fn = [](Hooks& h) { h.loop->stop(); };
    assert_true(r.loop.add(e.fd, EPOLLIN | EPOLLET, &a));
    r.loop.defer(c);
    e.signal();
    assert_true(r.loop.run());
    assert_string_equal(r.joined().c_str(), "a:ev c:resume a:end c:end b:end b:end after");
    assert_int_equal(gone.ends, 0);
    assert_int_equal(r.hooks.iterations, 1);
}

// watch_signals(): a watched signal is blocked and arrives through the loop
// as on_signal(signo), after the events of its batch, never asynchronously.
void test_watch_signals(void**) {
    Rig r(2000);
    r.hooks.tick_fn = [](Hooks& h) { h.loop->stop(); };
    const int sigs[] = {SIGUSR2};
    assert_true(r.loop.watch_signals(sigs, 1));
    sigset_t blocked;
    assert_int_equal(sigprocmask(SIG_BLOCK, nullptr, &blocked), 0);
    assert_true(sigismember(&blocked, SIGUSR2));
    assert_int_equal(raise(SIGUSR2), 0);  // pending, not delivered
    assert_true(r.loop.run());
    assert_int_equal(r.hooks.signals.size(), 1);
    assert_int_equal(r.hooks.signals[0], SIGUSR2);
    assert_int_equal(r.hooks.ticks, 0);
}

}  // namespace

int main(void) {
    struct sigaction sa;
    std::memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_watchdog;
    sigaction(SIGALRM, &sa, nullptr);
#define T(fn) cmocka_unit_test_setup_teardown(fn, arm_watchdog, disarm_watchdog)
    const struct CMUnitTest tests[] = {
        T(test_poller_add_remove_wait),
        T(test_poller_wait_eintr_returns_zero),
        T(test_readable_fd_dispatched),
        T(test_event_mask_passed_through),
        T(test_defer_resumes_next_iteration_without_sleeping),
        T(test_default_resume_and_double_defer),
        T(test_cancel_defer),
        T(test_iteration_order_and_clock),
        T(test_tick_and_stop_from_tick),
        T(test_tick_over_one_second),
        T(test_run_survives_eintr),
        T(test_closed_in_same_batch_still_delivered),
        T(test_iteration_end),
        T(test_watch_signals),
    };
#undef T
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
