// server.cpp - see server.h and connection.h.
#include "server.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "codec.h"
#include "frame_reader.h"
#include "io.h"
#include "listener.h"
#include "log.h"
#include "protocol.h"

namespace {

constexpr uint32_t kTickMs = 250;            // timeout resolution
constexpr uint64_t kLingerMs = 5000;         // bound on flushing before close
constexpr uint64_t kShutdownGraceMs = 2000;  // bound on flushing at exit
constexpr size_t kReadBudget = 256 * 1024;   // per connection per iteration
constexpr size_t kReadChunk = 16 * 1024;     // free space wanted before a read
constexpr int kAcceptBurst = 128;            // accepts per listener per iteration
constexpr uint32_t kReservedFds = 32;        // listeners, epoll, logs, spare

uint32_t round_up_pow2(uint64_t n) {
    uint64_t p = 1;
    while (p < n) p <<= 1;
    return static_cast<uint32_t>(p);
}

}  // namespace

// ---- Connection --------------------------------------------------------------

void Connection::on_events(uint32_t events) { server_.on_connection_events(*this, events); }
void Connection::on_resume() { server_.on_connection_resume(*this); }

const char* Connection::label() const {
    static char buffers[4][96];
    static unsigned next = 0;
    char* text = buffers[next++ % 4];
    char where[64];
    io_format_peer(peer, where, sizeof where);
    std::snprintf(text, sizeof buffers[0], "conn %llu [%s]",
                  static_cast<unsigned long long>(session_id), where);
    return text;
}

void Server::Listener::close_fd() {
    if (fd_ != -1) close(fd_);
    fd_ = -1;
}

// A socket error: routine ones a peer causes (reset, broken pipe) quietly,
// anything else loudly, with the connection and what it was doing.
static void log_io_error(const Connection& conn, const char* doing, int err) {
    if (io_error_is_peer(err))
        LOG_DEBUG("%s: %s: %s", conn.label(), doing, strerrordesc_np(err));
    else
        LOG_WARN("%s: %s: %s", conn.label(), doing, strerrordesc_np(err));
}

// ---- start and stop ------------------------------------------------------------

Server::Server(const ServerOptions& options) : options_(options) {}

Server::~Server() {
    // Only reached after run(): every connection is dead and reaped by then,
    // except on a fatal error, where we free what is left.
    while (Connection* c = idle_.front()) kill_connection(*c);
    while (Connection* c = linger_.front()) kill_connection(*c);
    reap();
    for (size_t i = 0; i < listener_count_; ++i) listeners_[i]->close_fd();
    if (signal_fd_ != -1) close(signal_fd_);
    if (spare_fd_ != -1) close(spare_fd_);
    std::free(scratch_);
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
    sigset_t mask;
    sigemptyset(&mask);
    sigaddset(&mask, SIGINT);
    sigaddset(&mask, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &mask, nullptr) == -1) {
        LOG_ERROR("cannot block SIGINT/SIGTERM: %s", strerrordesc_np(errno));
        return false;
    }
    signal_fd_ = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
    if (signal_fd_ == -1) {
        LOG_ERROR("signalfd: %s", strerrordesc_np(errno));
        return false;
    }

    // Connections are bounded by --max-conns and by what the open-file
    // limit allows; raise the soft limit to the hard one first.
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max) {
            rlim_t wanted = rl.rlim_max;
            rl.rlim_cur = wanted;
            if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
                LOG_WARN("cannot raise the open-file limit: %s", strerrordesc_np(errno));
            getrlimit(RLIMIT_NOFILE, &rl);
        }
        uint64_t allowed = rl.rlim_cur > kReservedFds ? rl.rlim_cur - kReservedFds : 1;
        max_conns_ = options_.max_conns;
        if (allowed < max_conns_) {
            LOG_INFO("open-file limit %llu allows %llu connections, not %u",
                     static_cast<unsigned long long>(rl.rlim_cur),
                     static_cast<unsigned long long>(allowed), options_.max_conns);
            max_conns_ = static_cast<uint32_t>(allowed);
        }
    } else {
        max_conns_ = options_.max_conns;
    }
    spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
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
    relay_ = std::make_unique<Relay>(*this, limits, key);

    // An input ring holds at most one partial frame beyond what was parsed.
    in_ring_max_ = round_up_pow2(uint64_t{P2P_FRAME_HEADER_SIZE} + options_.max_frame);
    scratch_ = static_cast<uint8_t*>(std::malloc(options_.max_frame > kReadChunk ? options_.max_frame : kReadChunk));
    if (scratch_ == nullptr) {
        LOG_ERROR("out of memory");
        return false;
    }

    if (!loop_.init(this, kTickMs)) {
        LOG_ERROR("cannot set up epoll/timerfd: %s", strerrordesc_np(errno));
        return false;
    }
    if (!loop_.add(signal_fd_, EPOLLIN, &signal_handler_)) {
        LOG_ERROR("epoll_ctl(signalfd): %s", strerrordesc_np(errno));
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
    LOG_INFO("listening on %s port %u (max %u connections, max frame %u, idle timeout %u s)",
             options_.bind_address.empty() ? "all interfaces" : options_.bind_address.c_str(),
             options_.port, max_conns_, options_.max_frame, options_.idle_timeout_s);
    return true;
}

int Server::run() {
    if (!loop_.run()) return 1;
    LOG_INFO("shut down");
    return exit_status_;
}

void Server::on_signal() {
    for (;;) {
        struct signalfd_siginfo info;
        ssize_t n = read(signal_fd_, &info, sizeof info);
        if (n == -1 && errno == EINTR) continue;
        if (n != static_cast<ssize_t>(sizeof info)) return;  // drained (EAGAIN)
        if (!shutting_down_) {
            LOG_INFO("%s received: shutting down", info.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM");
            begin_shutdown();
        } else {
            LOG_INFO("second signal: closing every connection now");
            while (Connection* c = linger_.front()) kill_connection(*c);
        }
    }
}

void Server::begin_shutdown() {
    shutting_down_ = true;
    shutdown_deadline_ms_ = loop_.now_ms() + kShutdownGraceMs;
    for (size_t i = 0; i < listener_count_; ++i) {
        loop_.remove(listeners_[i]->fd());
        EventLoop::cancel_defer(*listeners_[i]);
        listeners_[i]->close_fd();
    }
    while (Connection* c = idle_.front()) close_connection(*c, CloseReason::shutdown, true);
    for (Connection* c = linger_.front(); c != nullptr; c = linger_.next(*c))
        if (c->deadline_ms > shutdown_deadline_ms_) c->deadline_ms = shutdown_deadline_ms_;
}

// ---- accepting -------------------------------------------------------------------

void Server::accept_connections(Listener& listener) {
    if (shutting_down_ || listener.fd() == -1) return;
    for (int i = 0; i < kAcceptBurst; ++i) {
        AcceptResult r = io_accept(listener.fd());
        if (r.status == IoStatus::would_block) {
            accept_paused_ = false;
            return;
        }
        if (r.status == IoStatus::error) {
            if (r.err == EMFILE || r.err == ENFILE) {
                refuse_over_emfile(listener);
                continue;
            }
            // ENOBUFS, ENOMEM, ...: try again at the next tick rather than
            // spin on a failing accept.
            LOG_ERROR("accept: %s; pausing accept until the next tick", strerrordesc_np(r.err));
            accept_paused_ = true;
            return;
        }
        if (out_of_fds_) {
            LOG_INFO("file descriptors available again");
            out_of_fds_ = false;
        }
        if (live_connections_ >= max_conns_) {
            if (!at_conn_limit_) {
                LOG_WARN("connection limit (%u) reached: refusing new connections", max_conns_);
                at_conn_limit_ = true;
            }
            close(r.fd);
            continue;
        }
        int one = 1;
        if (setsockopt(r.fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1)
            LOG_DEBUG("TCP_NODELAY: %s", strerrordesc_np(errno));
        auto* conn = new Connection(*this, r.fd, in_ring_max_,
                                    options_.max_output + 2 * P2P_SERVER_FRAME_SLACK);
        conn->session_id = next_session_id_++;
        conn->peer = io_peer_address(reinterpret_cast<struct sockaddr*>(&r.peer), r.peer_len);
        if (!loop_.add(r.fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, conn)) {
            LOG_ERROR("%s: epoll_ctl: %s", conn->label(), strerrordesc_np(errno));
            close(r.fd);
            delete conn;
            continue;
        }
        ++live_connections_;
        conn->last_active_ms = loop_.now_ms();
        idle_.push_back(*conn);
        LOG_INFO("%s connected", conn->label());
    }
    // Fairness: more may be pending; continue next iteration.
    loop_.defer(listener);
}

// At the open-file limit the pending connection cannot even be accepted to
// be refused, and under EPOLLET nothing would tell us again: give up the
// spare descriptor, accept and close at once, take the spare back.
void Server::refuse_over_emfile(Listener& listener) {
    if (!out_of_fds_) {
        LOG_WARN("out of file descriptors: refusing connections");
        out_of_fds_ = true;  // one line per episode; reset by the next accept
    }
    if (spare_fd_ == -1) {
        accept_paused_ = true;
        return;
    }
    close(spare_fd_);
    int fd = accept4(listener.fd(), nullptr, nullptr, SOCK_CLOEXEC);
    if (fd != -1) close(fd);
    spare_fd_ = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

// ---- reading -------------------------------------------------------------------------

void Server::on_connection_events(Connection& conn, uint32_t events) {
    if (conn.state == ConnState::dead) return;  // stale event in this batch
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && !conn.out.empty()) flush_output(conn);
    if (conn.state == ConnState::dead) return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
        if (conn.state == ConnState::open)
            read_input(conn);
        else
            discard_input(conn);
    }
}

void Server::on_connection_resume(Connection& conn) {
    if (conn.state == ConnState::open)
        read_input(conn);
    else if (conn.state != ConnState::dead)
        discard_input(conn);
}

void Server::read_input(Connection& conn) {
    size_t budget = kReadBudget;
    size_t frames = 0;
    while (conn.state == ConnState::open) {
        size_t room = conn.in.max_bytes() - conn.in.size();
        if (!conn.in.reserve(room < kReadChunk ? room : kReadChunk) || conn.in.free_space() == 0) {
            // Cannot happen while in_ring_max_ holds a whole frame, unless
            // memory is exhausted.
            LOG_ERROR("%s: cannot allocate input buffer", conn.label());
            close_connection(conn, CloseReason::io_error, false);
            return;
        }
        struct iovec spans[2];
        int count = conn.in.write_spans(spans);
        IoResult r = io_readv(conn.fd(), spans, count);
        if (r.status == IoStatus::ok) {
            conn.in.commit(r.bytes);
            frames += process_frames(conn);
            if (r.bytes >= budget) {
                loop_.defer(conn);  // fairness: the rest next iteration
                break;
            }
            budget -= r.bytes;
            continue;
        }
        if (r.status == IoStatus::would_block) break;
        if (r.status == IoStatus::eof) {
            conn.peer_eof = true;
            close_connection(conn, CloseReason::peer_closed, true);
            break;
        }
        log_io_error(conn, "read", r.err);
        close_connection(conn, CloseReason::io_error, false);
        break;
    }
    // Any complete frame refreshes the idle timer.
    if (frames != 0 && conn.state == ConnState::open) {
        conn.last_active_ms = loop_.now_ms();
        idle_.push_back(conn);
    }
    if (conn.in.empty()) conn.in.release();
}

// Hands every complete frame in the input ring to the relay; returns how
// many (empty frames included: they are ignored, but they count as activity).
size_t Server::process_frames(Connection& conn) {
    size_t frames = 0;
    while (conn.state == ConnState::open) {
        FrameView frame;
        FrameStatus st = next_frame(conn.in, options_.max_frame, scratch_, &frame);
        if (st == FrameStatus::incomplete) break;
        if (st == FrameStatus::too_long) {
            LOG_INFO("%s: frame of %u bytes exceeds the maximum of %u", conn.label(), frame.length,
                     options_.max_frame);
            close_connection(conn, CloseReason::protocol_error, true);
            break;
        }
        if (frame.length != 0) relay_->on_frame(conn, frame.payload, frame.length);
        conn.in.consume(P2P_FRAME_HEADER_SIZE + frame.length);
        ++frames;
    }
    return frames;
}

// Input of a connection that is closing: read and drop it, so the socket's
// receive queue is empty when we close (a close with unread data sends a
// reset, which can destroy the output the peer has not read yet).
void Server::discard_input(Connection& conn) {
    size_t budget = kReadBudget;
    while (conn.state != ConnState::dead) {
        struct iovec span = {scratch_, kReadChunk};
        IoResult r = io_readv(conn.fd(), &span, 1);
        if (r.status == IoStatus::ok) {
            if (r.bytes >= budget) {
                loop_.defer(conn);
                return;
            }
            budget -= r.bytes;
            continue;
        }
        if (r.status == IoStatus::would_block) return;
        if (r.status == IoStatus::eof) {
            conn.peer_eof = true;
            if (conn.state == ConnState::half_closed) kill_connection(conn);
            return;
        }
        kill_connection(conn);  // reset by the peer: nothing more to do
        return;
    }
}

// ---- writing -------------------------------------------------------------------------

void Server::send_frame(Session& to, const uint8_t* prefix, size_t prefix_len,
                        const uint8_t* data, size_t data_len) {
    auto& conn = static_cast<Connection&>(to);
    if (conn.state != ConnState::open) return;
    // A session being cut off gets nothing but its BYE (sent once ended).
    if (conn.cut_off && !conn.ended) return;
    size_t payload = prefix_len + data_len;
    size_t total = P2P_FRAME_HEADER_SIZE + payload;
    if (!conn.ended && conn.out.size() + total > options_.max_output) {
        conn.cut_off = true;
        cutoff_.push_back(conn);
        return;
    }
    if (!conn.out.reserve(total)) {
        LOG_ERROR("%s: cannot allocate output buffer", conn.label());
        conn.cut_off = true;
        cutoff_.push_back(conn);
        return;
    }
    uint8_t header[P2P_FRAME_HEADER_SIZE];
    p2p_frame_header_encode(header, static_cast<uint32_t>(payload));
    conn.out.append(header, sizeof header);
    conn.out.append(prefix, prefix_len);
    if (data_len != 0) conn.out.append(data, data_len);
    flush_.push_back(conn);
}

void Server::flush_output(Connection& conn) {
    while (!conn.out.empty()) {
        struct iovec spans[2];
        int count = conn.out.read_spans(spans);
        IoResult r = io_writev(conn.fd(), spans, count);
        if (r.status == IoStatus::ok) {
            conn.out.consume(r.bytes);
            continue;
        }
        if (r.status == IoStatus::would_block) return;  // EPOLLOUT will call us
        log_io_error(conn, "write", r.err);
        if (conn.state == ConnState::open) {
            close_connection(conn, CloseReason::io_error, false);
        } else {
            kill_connection(conn);
        }
        return;
    }
    output_sent(conn);
}

// All pending output has reached the kernel.
void Server::output_sent(Connection& conn) {
    conn.out.release();
    IntrusiveList<Connection, FlushTag>::unlink(conn);
    if (conn.state != ConnState::draining) return;
    if (conn.peer_eof) {
        kill_connection(conn);
        return;
    }
    // Lingering close: FIN after our last byte, then wait for the peer's.
    if (shutdown(conn.fd(), SHUT_WR) == -1) {
        kill_connection(conn);
        return;
    }
    conn.state = ConnState::half_closed;
    discard_input(conn);
}

// ---- closing -------------------------------------------------------------------------

void Server::close_session(Session& session, CloseReason reason) {
    close_connection(static_cast<Connection&>(session), reason, true);
}

const char* Server::describe(const Session& session) {
    return static_cast<const Connection&>(session).label();
}

void Server::close_connection(Connection& conn, CloseReason reason, bool flush) {
    if (conn.state == ConnState::dead) return;
    if (conn.state != ConnState::open) {
        if (!flush) kill_connection(conn);
        return;
    }
    bool routine = reason == CloseReason::peer_closed || reason == CloseReason::shutdown;
    if (routine)
        LOG_INFO("%s closed: %s", conn.label(), close_reason_name(reason));
    else
        LOG_INFO("%s closing: %s (%u bytes of output pending)", conn.label(),
                 close_reason_name(reason), conn.out.size());
    // The relay releases the id at once and queues a BYE for v2 peers, while
    // the connection is still open for output.
    relay_->end_session(conn, reason);
    conn.in.consume(conn.in.size());
    conn.in.release();
    if (!flush) {
        kill_connection(conn);
        return;
    }
    conn.state = ConnState::draining;
    uint64_t deadline = loop_.now_ms() + kLingerMs;
    if (shutting_down_ && deadline > shutdown_deadline_ms_) deadline = shutdown_deadline_ms_;
    conn.deadline_ms = deadline;
    linger_.push_back(conn);
    if (!conn.out.empty())
        flush_.push_back(conn);  // written at the end of this iteration
    else
        output_sent(conn);
}

// Straight to dead: closed and freed at the end of this iteration.
void Server::kill_connection(Connection& conn) {
    if (conn.state == ConnState::dead) return;
    if (conn.state == ConnState::open) relay_->end_session(conn, CloseReason::io_error);
    conn.state = ConnState::dead;
    IntrusiveList<Connection, FlushTag>::unlink(conn);
    IntrusiveList<Connection, CutoffTag>::unlink(conn);
    EventLoop::cancel_defer(conn);
    reap_.push_back(conn);
}

void Server::reap() {
    while (Connection* c = reap_.pop_front()) {
        if (!c->out.empty())
            LOG_DEBUG("%s: %u bytes of output dropped at close", c->label(), c->out.size());
        if (close(c->fd()) == -1) LOG_WARN("%s: close: %s", c->label(), strerrordesc_np(errno));
        --live_connections_;
        delete c;
    }
    if (at_conn_limit_ && live_connections_ < max_conns_) {
        LOG_INFO("below the connection limit again");
        at_conn_limit_ = false;
    }
}

// ---- loop hooks ------------------------------------------------------------------------

void Server::after_iteration(uint64_t) {
    while (Connection* c = cutoff_.pop_front()) {
        LOG_WARN("%s: slow consumer: output would exceed %u bytes; disconnecting", c->label(),
                 options_.max_output);
        close_connection(*c, CloseReason::slow_consumer, true);
    }
    while (Connection* c = flush_.pop_front()) flush_output(*c);
    reap();
    if (shutting_down_ && live_connections_ == 0) loop_.stop();
}

void Server::on_tick(uint64_t now) {
    if (options_.idle_timeout_s != 0) {
        uint64_t limit = uint64_t{options_.idle_timeout_s} * 1000u;
        while (Connection* c = idle_.front()) {
            if (now - c->last_active_ms < limit) break;
            close_connection(*c, CloseReason::idle_timeout, true);
        }
    }
    while (Connection* c = linger_.front()) {
        if (now < c->deadline_ms) break;
        if (!c->out.empty())
            LOG_INFO("%s: closed before its output was flushed (%u bytes left)", c->label(),
                     c->out.size());
        kill_connection(*c);
    }
    if (shutting_down_ && now >= shutdown_deadline_ms_) {
        while (Connection* c = linger_.front()) kill_connection(*c);
    }
    if (accept_paused_) {
        accept_paused_ = false;
        for (size_t i = 0; i < listener_count_; ++i) accept_connections(*listeners_[i]);
    }
}
