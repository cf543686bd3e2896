// server.cpp - see server.h.
#include "server.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <new>

#include "io.h"
#include "listener.h"
#include "log.h"
#include "protocol.h"

namespace {

constexpr uint32_t kTickMs = 250;            // timeout resolution
constexpr uint64_t kShutdownGraceMs = 2000;  // bound on flushing at exit
constexpr int kAcceptBurst = 128;            // accepts per listener per iteration
constexpr uint32_t kReservedFds = 32;        // listeners, epoll, logs, spare

uint32_t round_up_pow2(uint64_t n) {
    uint64_t p = 1;
    while (p < n) p <<= 1;
    return static_cast<uint32_t>(p);
}

int open_spare_fd() { return open("/dev/null", O_RDONLY | O_CLOEXEC); }

}  // namespace

void Server::Listener::close_fd() {
    if (fd_ != -1) io_close(fd_);
    fd_ = -1;
}

// ---- start and stop ------------------------------------------------------------

Server::Server(const ServerOptions& options)
    : options_(options),
      budget_(options.max_memory != 0 ? options.max_memory : default_max_memory()),
      device_budget_(budget_.limit() / 8 * 7, &budget_) {}

Server::~Server() {
    // Only reached after run(): every connection is dead and reaped by then,
    // except on a fatal error, where we free what is left.
    if (connections_) {
        while (Connection* c = connections_->idle.front()) c->close(CloseReason::io_error);
        while (Connection* c = connections_->linger.front()) c->close(CloseReason::io_error);
        reap();
        std::free(connections_->scratch);
    }
    for (size_t i = 0; i < listener_count_; ++i) listeners_[i]->close_fd();
    if (spare_fd_ != -1) io_close(spare_fd_);
}

// Connections are bounded by --max-conns and by what the open-file limit
// allows; the soft limit is raised to the hard one first.
bool Server::apply_fd_limit() {
    max_conns_ = options_.max_conns;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == -1) {
        LOG_WARN("getrlimit(RLIMIT_NOFILE): %s", strerrordesc_np(errno));
        return true;
    }
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
            LOG_WARN("cannot raise the open-file limit: %s", strerrordesc_np(errno));
        if (getrlimit(RLIMIT_NOFILE, &rl) == -1) return true;
    }
    uint64_t allowed = rl.rlim_cur > kReservedFds ? rl.rlim_cur - kReservedFds : 1;
    if (allowed < max_conns_) {
        LOG_INFO("open-file limit %llu allows %llu connections, not %u",
                 static_cast<unsigned long long>(rl.rlim_cur),
                 static_cast<unsigned long long>(allowed), options_.max_conns);
        max_conns_ = static_cast<uint32_t>(allowed);
    }
    return true;
}

bool Server::start() {
    // SIGPIPE: writes use MSG_NOSIGNAL, but be safe against any other path.
    struct sigaction ign;
    std::memset(&ign, 0, sizeof ign);
    ign.sa_handler = SIG_IGN;
    if (sigaction(SIGPIPE, &ign, nullptr) == -1) {
        LOG_ERROR("cannot ignore SIGPIPE: %s", strerrordesc_np(errno));
        return false;
    }
    if (!loop_.init(this, kTickMs)) {
        LOG_ERROR("cannot set up epoll/timerfd: %s", strerrordesc_np(errno));
        return false;
    }
    static const int kSignals[] = {SIGINT, SIGTERM};
    if (!loop_.watch_signals(kSignals, sizeof kSignals / sizeof kSignals[0])) {
        LOG_ERROR("cannot watch SIGINT/SIGTERM: %s", strerrordesc_np(errno));
        return false;
    }
    apply_fd_limit();
    spare_fd_ = open_spare_fd();
    if (spare_fd_ == -1) LOG_WARN("cannot reserve a spare descriptor: %s", strerrordesc_np(errno));

    HashKey key;
    if (!hash_key_from_os(&key)) {
        LOG_ERROR("getrandom failed: %s", strerrordesc_np(errno));
        return false;
    }
    RelayLimits limits;
    limits.max_frame = options_.max_frame;
    limits.idle_timeout_s = options_.idle_timeout_s;
    limits.max_subs = options_.max_subs;
    limits.max_devices = options_.max_devices;
    relay_ = std::make_unique<Relay>(limits, key, &loop_, &device_budget_);

    connections_ = std::make_unique<ConnectionContext>(loop_, *relay_, &budget_);
    ConnectionLimits& cl = connections_->limits;
    cl.max_frame = options_.max_frame;
    cl.max_output = options_.max_output;
    // An input ring holds at most one partial frame beyond what was parsed;
    // an output ring the cap plus the largest frame that may cross it.
    cl.in_ring_max = round_up_pow2(uint64_t{P2P_FRAME_HEADER_SIZE} + options_.max_frame);
    cl.out_ring_max = options_.max_output + 2 * P2P_SERVER_FRAME_SLACK;
    connections_->scratch =
        static_cast<uint8_t*>(std::malloc(connection_scratch_size(options_.max_frame)));
    if (connections_->scratch == nullptr) {
        LOG_ERROR("out of memory");
        return false;
    }

    int fds[kMaxListeners];
    char err[256];
    listener_count_ = listen_tcp(options_.bind_address.c_str(), options_.port, fds, kMaxListeners,
                                 err, sizeof err);
    if (listener_count_ == 0) {
        LOG_ERROR("%s", err);
        return false;
    }
    for (size_t i = 0; i < listener_count_; ++i) {
        listeners_[i] = std::make_unique<Listener>(*this, fds[i]);
        if (!loop_.add(fds[i], EPOLLIN | EPOLLET, listeners_[i].get())) {
            LOG_ERROR("epoll_ctl(listener): %s", strerrordesc_np(errno));
            return false;
        }
    }
    LOG_INFO("listening on %s port %u (max %u connections, max frame %u, idle timeout %u s, "
             "max memory %llu, max devices %u, frame timeout %u s)",
             options_.bind_address.empty() ? "all interfaces" : options_.bind_address.c_str(),
             options_.port, max_conns_, options_.max_frame, options_.idle_timeout_s,
             static_cast<unsigned long long>(budget_.limit()), options_.max_devices,
             options_.frame_timeout_s);
    return true;
}

int Server::run() {
    if (!loop_.run()) return 1;
    LOG_INFO("shut down");
    return exit_status_;
}

void Server::on_signal(int signo) {
    if (!shutting_down_) {
        LOG_INFO("%s received: shutting down", signo == SIGINT ? "SIGINT" : "SIGTERM");
        begin_shutdown();
    } else {
        LOG_INFO("second signal: closing every connection now");
        while (Connection* c = connections_->linger.front()) c->close(CloseReason::linger_expired);
    }
}

void Server::begin_shutdown() {
    shutting_down_ = true;
    shutdown_deadline_ms_ = loop_.now_ms() + kShutdownGraceMs;
    connections_->linger_cap_ms = shutdown_deadline_ms_;
    for (size_t i = 0; i < listener_count_; ++i) {
        loop_.remove(listeners_[i]->fd());
        EventLoop::cancel(*listeners_[i]);
        listeners_[i]->close_fd();
    }
    for (Connection* c = connections_->linger.front(); c != nullptr; c = connections_->linger.next(*c))
        c->cap_deadline(shutdown_deadline_ms_);
    while (Connection* c = connections_->idle.front()) c->close(CloseReason::shutdown);
}

// ---- accepting -------------------------------------------------------------------

void Server::accept_connections(Listener& listener) {
    if (shutting_down_ || listener.fd() == -1 || accept_paused_) return;
    for (int i = 0; i < kAcceptBurst; ++i) {
        AcceptResult r = io_accept(listener.fd());
        if (r.status == IoStatus::would_block) return;  // EPOLLET: told of the next one
        if (r.status == IoStatus::error) {
            if (r.err == EMFILE || r.err == ENFILE) {
                if (!refuse_over_emfile(listener)) return;
                continue;
            }
            // ENOBUFS, ENOMEM, ...: try again at the next tick rather than
            // spin on a failing accept.
            LOG_ERROR("accept: %s; pausing accept until the next tick", strerrordesc_np(r.err));
            pause_accept(nullptr);
            return;
        }
        if (out_of_fds_) {
            LOG_INFO("file descriptors available again");
            out_of_fds_ = false;
            pause_logged_ = false;
        }
        if (live_connections_ >= max_conns_) {
            if (!at_conn_limit_) {
                LOG_WARN("connection limit (%u) reached: refusing new connections", max_conns_);
                at_conn_limit_ = true;
            }
            io_close(r.fd);
            continue;
        }
        if (int e = io_set_nodelay(r.fd); e != 0) LOG_DEBUG("TCP_NODELAY: %s", strerrordesc_np(e));
        PeerAddress peer = io_peer_address(reinterpret_cast<struct sockaddr*>(&r.peer), r.peer_len);
        auto* conn = new (std::nothrow) Connection(*connections_, r.fd, peer, next_session_id_++);
        if (conn == nullptr) {
            LOG_ERROR("out of memory: refusing a connection");
            io_close(r.fd);
            continue;
        }
        if (!loop_.add(r.fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, conn)) {
            LOG_ERROR("%s: epoll_ctl: %s", conn->label(), strerrordesc_np(errno));
            io_close(r.fd);
            delete conn;
            continue;
        }
        ++live_connections_;
        LOG_INFO("%s connected", conn->label());
    }
    // Fairness: more may be pending; continue next iteration.
    loop_.defer(listener);
}

// At the open-file limit the pending connection cannot even be accepted to
// be refused, and under EPOLLET nothing would tell us again: give up the
// spare descriptor, accept and close at once, take the spare back. Returns
// true when a connection was refused (more may be waiting), false when
// there is nothing more to do now: the backlog is empty (accept(2) fails
// with EMFILE before it looks at the backlog, so an empty one is found
// only this way), or the spare is gone and accepting pauses until the
// tick or a reaped connection gives a descriptor back. Never a reason to
// run the next iteration without waiting: that was a busy loop (issue 10).
bool Server::refuse_over_emfile(Listener& listener) {
    if (!out_of_fds_) {
        LOG_WARN("out of file descriptors: refusing connections");
        out_of_fds_ = true;  // one line per episode; reset by the next accept
    }
    if (spare_fd_ == -1) spare_fd_ = open_spare_fd();
    if (spare_fd_ == -1) {
        pause_accept("no spare descriptor");
        return false;
    }
    io_close(spare_fd_);
    AcceptResult r = io_accept(listener.fd());
    if (r.status == IoStatus::ok) io_close(r.fd);
    spare_fd_ = open_spare_fd();
    if (r.status == IoStatus::ok) return true;
    if (r.status != IoStatus::would_block) pause_accept("accept failed with the spare given up");
    return false;
}

// Stops accepting until resume_accept(): from the tick, or when a reaped
// connection gives a descriptor back. why: logged once per pause, or null.
void Server::pause_accept(const char* why) {
    if (!pause_logged_ && why != nullptr) {
        LOG_WARN("pausing accept: %s; retrying %u times a second", why, 1000u / kTickMs);
        pause_logged_ = true;  // once per episode, like out_of_fds_
    }
    accept_paused_ = true;
}

void Server::resume_accept() {
    if (!accept_paused_ || shutting_down_) return;
    accept_paused_ = false;
    for (size_t i = 0; i < listener_count_; ++i) accept_connections(*listeners_[i]);
}

// ---- reaping and timeouts ------------------------------------------------------------

void Server::reap() {
    bool freed = false;
    while (Connection* c = connections_->reap.pop_front()) {
        if (int e = io_close(c->fd()); e != 0) LOG_WARN("%s: close: %s", c->label(), strerrordesc_np(e));
        --live_connections_;
        delete c;
        freed = true;
    }
    if (at_conn_limit_ && live_connections_ < max_conns_) {
        LOG_INFO("below the connection limit again");
        at_conn_limit_ = false;
    }
    if (freed) resume_accept();  // a descriptor is free for a waiting client
}

void Server::after_iteration(uint64_t) {
    reap();
    if (shutting_down_ && live_connections_ == 0) loop_.stop();
    if (connections_->stats.evictions != evictions_trimmed_) {
        evictions_trimmed_ = connections_->stats.evictions;
        malloc_trim(0);
    }
    log_flush();
}

// --frame-timeout: the partial list is in the order frames began.
void Server::close_stalled_frames(uint64_t now) {
    if (options_.frame_timeout_s == 0) return;
    uint64_t limit = uint64_t{options_.frame_timeout_s} * 1000u;
    while (Connection* c = connections_->partial.front()) {
        if (now - c->partial_since_ms() < limit) break;
        LOG_INFO("%s: frame not complete after %u s (%u bytes buffered)", c->label(),
                 options_.frame_timeout_s, c->buffered_input());
        c->close(CloseReason::frame_timeout);
    }
}

void Server::on_tick(uint64_t now) {
    close_stalled_frames(now);
    relay_->on_tick();
    log_tick();
    if (options_.idle_timeout_s != 0) {
        uint64_t limit = uint64_t{options_.idle_timeout_s} * 1000u;
        while (Connection* c = connections_->idle.front()) {
            if (now - c->last_active_ms() < limit) break;
            c->close(CloseReason::idle_timeout);
        }
    }
    while (Connection* c = connections_->linger.front()) {
        if (now < c->deadline_ms()) break;
        c->close(CloseReason::linger_expired);
    }
    resume_accept();
}
