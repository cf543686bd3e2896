// server.cpp - see server.h.
#include "server.h"

#include <fcntl.h>
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <unistd.h>

#include <string>

#include <cerrno>
#include <cstdio>
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
    if (cluster_) {
        relay_->set_cluster(nullptr);
        cluster_.reset();
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
        // Worth a line of its own only when someone asked for more; the
        // effective limit is in the start-up line either way.
        if (options_.max_conns_given)
            LOG_WARN("--max-conns %u lowered to %llu: the open-file limit is %llu",
                     options_.max_conns, static_cast<unsigned long long>(allowed),
                     static_cast<unsigned long long>(rl.rlim_cur));
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
    loop_.set_busy_poll(options_.busy_poll_us);
    static const int kSignals[] = {SIGINT, SIGTERM, SIGHUP, SIGUSR1};
    if (!loop_.watch_signals(kSignals, sizeof kSignals / sizeof kSignals[0])) {
        LOG_ERROR("cannot watch signals: %s", strerrordesc_np(errno));
        return false;
    }
    apply_fd_limit();
    spare_fd_ = open_spare_fd();
    if (spare_fd_ == -1) LOG_WARN("cannot reserve a spare descriptor: %s", strerrordesc_np(errno));

    if (!hash_key_from_os(&hash_key_)) {
        LOG_ERROR("getrandom failed: %s", strerrordesc_np(errno));
        return false;
    }
    RelayLimits limits;
    limits.max_frame = options_.max_frame;
    limits.idle_timeout_s = options_.idle_timeout_s;
    limits.max_subs = options_.max_subs;
    limits.max_devices = options_.max_devices;
    relay_ = std::make_unique<Relay>(limits, hash_key_, &loop_, &device_budget_);
    relay_->set_auth_required(options_.auth_required);
    if (!options_.auth_file.empty() && !load_auth_file_now()) return false;
    if (!options_.cluster.empty() && !start_cluster()) return false;

    ConnectionLimits cl;
    cl.max_frame = options_.max_frame;
    cl.max_output = options_.max_output;
    // An input ring holds at most one partial frame beyond what was parsed;
    // an output ring the cap plus the largest frame that may cross it.
    cl.in_ring_max = round_up_pow2(uint64_t{P2P_FRAME_HEADER_SIZE} + options_.max_frame);
    cl.out_ring_max = options_.max_output + 2 * P2P_SERVER_FRAME_SLACK;
    connections_ = std::make_unique<ConnectionContext>(loop_, *relay_, &budget_, cl);
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
    if (options_.metrics && !start_metrics()) return false;
    LOG_INFO("listening on %s port %u (max %u connections, max frame %u, idle timeout %u s, "
             "max memory %llu, max devices %u, frame timeout %u s)",
             options_.bind_address.empty() ? "all interfaces" : options_.bind_address.c_str(),
             options_.port, max_conns_, options_.max_frame, options_.idle_timeout_s,
             static_cast<unsigned long long>(budget_.limit()), options_.max_devices,
             options_.frame_timeout_s);
    if (notifier_.open()) notifier_.ready();
    return true;
}

int Server::run() {
    if (!loop_.run()) return 1;
    LOG_INFO("shut down");
    return exit_status_;
}

void Server::on_signal(int signo) {
    if (signo == SIGHUP) {
        if (!shutting_down_) reload();
        return;
    }
    if (signo == SIGUSR1) {
        // Every counter on one line, for whoever has only the log.
        std::string line;
        render_metrics(line, MetricsText::Form::log_line);
        if (!line.empty()) line.pop_back();
        LOG_INFO("counters: %s", line.c_str());
        if (cluster_) {
            // A line of its own: both would not fit in one (kLineMax).
            line.clear();
            MetricsText m(line, MetricsText::Form::log_line);
            render_cluster_metrics(m);
            if (!line.empty()) line.pop_back();
            LOG_INFO("cluster counters: %s", line.c_str());
        }
        return;
    }
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
    if (cluster_) cluster_->leave();
    notifier_.stopping();
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
            ++refused_max_conns_;
            if (!at_conn_limit_) {
                LOG_WARN("connection limit (%u) reached: refusing new connections", max_conns_);
                at_conn_limit_ = true;
            }
            io_close(r.fd);
            continue;
        }
        if (int e = io_set_nodelay(r.fd); e != 0) LOG_DEBUG("TCP_NODELAY: %s", strerrordesc_np(e));
        PeerAddress peer = io_peer_address(reinterpret_cast<struct sockaddr*>(&r.peer), r.peer_len);
        void* block = connection_pool_.allocate();
        auto* conn = block != nullptr
                         ? new (block) Connection(*connections_, r.fd, peer, next_session_id_++)
                         : nullptr;
        if (conn == nullptr) {
            LOG_ERROR("out of memory: refusing a connection");
            io_close(r.fd);
            continue;
        }
        if (!loop_.add(r.fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, conn)) {
            LOG_ERROR("%s: epoll_ctl: %s", conn->label(), strerrordesc_np(errno));
            io_close(r.fd);
            free_connection(conn);
            continue;
        }
        ++live_connections_;
        ++accepted_;
        LOG_EVENT(LogLevel::info, conn->log_event("connected"), "%s connected", conn->label());
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
    if (r.status == IoStatus::ok) {
        io_close(r.fd);
        ++refused_no_fds_;
    }
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
        free_connection(c);
        freed = true;
    }
    if (at_conn_limit_ && live_connections_ < max_conns_) {
        LOG_INFO("below the connection limit again");
        at_conn_limit_ = false;
    }
    if (freed) resume_accept();  // a descriptor is free for a waiting client
}

void Server::free_connection(Connection* c) {
    c->~Connection();
    connection_pool_.free(c);
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
    if (cluster_) cluster_->on_tick(now);
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
    report_status(now);
    if (metrics_) metrics_->on_tick(now);
}

// systemd's STATUS= line: at most once a second, and only when it changed.
void Server::report_status(uint64_t now) {
    if (!notifier_.active() || shutting_down_ || now - status_sent_ms_ < 1000) return;
    uint64_t devices = relay_->device_count();
    if (live_connections_ == status_connections_ && devices == status_devices_) return;
    status_connections_ = live_connections_;
    status_devices_ = devices;
    status_sent_ms_ = now;
    char text[128];
    std::snprintf(text, sizeof text, "serving: %u connections, %llu devices", live_connections_,
                  static_cast<unsigned long long>(devices));
    notifier_.status(text);
}

// ---- the cluster -------------------------------------------------------------------

namespace {

// HOSTNAME-PORT, with what a node name may not hold turned into '-'.
std::string default_node_name(uint16_t port) {
    char host[256] = "relay";
    if (gethostname(host, sizeof host) == -1) std::snprintf(host, sizeof host, "relay");
    host[sizeof host - 1] = '\0';
    std::string suffix = "-" + std::to_string(port);
    std::string name;
    for (const char* p = host; *p != '\0' && name.size() + suffix.size() < kClusterNodeNameMax; ++p) {
        char c = *p;
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        name += ok ? c : '-';
    }
    return (name.empty() ? std::string("relay") : name) + suffix;
}

}  // namespace

bool Server::start_cluster() {
    ClusterOptions co;
    std::string error;
    if (!nats_servers_from_list(options_.cluster, "/etc/hosts", &co.servers, &error)) {
        LOG_ERROR("--cluster: %s", error.c_str());
        return false;
    }
    co.node_name = options_.node_name.empty() ? default_node_name(options_.port) : options_.node_name;
    co.version = P2P_VERSION;
    // The view holds every relay's ids; the memory budget is its real
    // bound, this one a backstop.
    co.max_entries = uint64_t{options_.max_devices} * 16u;
    std::string labels;
    for (const NatsServerAddress& a : co.servers) labels += (labels.empty() ? "" : ", ") + a.label;
    cluster_ = std::make_unique<Cluster>(loop_, *relay_, std::move(co), &device_budget_);
    relay_->set_cluster(cluster_.get());
    if (!cluster_->start()) {
        LOG_ERROR("--cluster: cannot start (out of memory)");
        return false;
    }
    LOG_INFO("cluster: NATS servers %s", labels.c_str());
    return true;
}

// ---- metrics ---------------------------------------------------------------------

bool Server::start_metrics() {
    int fd = -1;
    char err[256];
    if (listen_tcp(options_.metrics_address.c_str(), options_.metrics_port, &fd, 1, err,
                   sizeof err) != 1) {
        LOG_ERROR("--metrics: %s", err);
        return false;
    }
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    char where[64] = "?";
    if (getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len) == 0)
        io_format_peer(io_peer_address(reinterpret_cast<struct sockaddr*>(&ss), len), where,
                       sizeof where);
    metrics_ = std::make_unique<HttpEndpoint>(loop_, *this);
    if (!metrics_->start(fd)) {
        LOG_ERROR("--metrics: epoll_ctl: %s", strerrordesc_np(errno));
        io_close(fd);
        return false;
    }
    LOG_INFO("serving metrics on http://%s/metrics", where);
    return true;
}

bool Server::on_http_get(const std::string& path, HttpResponse* out) {
    if (path == "/metrics") {
        out->content_type = "text/plain; version=0.0.4; charset=utf-8";
        render_metrics(out->body, MetricsText::Form::prometheus);
        return true;
    }
    if (path == "/healthz") {
        out->status = shutting_down_ ? 503 : 200;
        out->body = shutting_down_ ? "shutting down\n" : "ok\n";
        return true;
    }
    return false;
}

void Server::render_metrics(std::string& out, MetricsText::Form form) const {
    MetricsText m(out, form);
    const RelayStats& relay = relay_->stats();
    const Devices& devices = relay_->devices();
    const ConnectionStats& conns = connections_->stats;

    m.family("stupidp2p_build_info", "gauge", "The server's version; always 1.");
    m.sample("version", P2P_VERSION, 1);
    m.family("stupidp2p_connections_open", "gauge", "Connections open now, closing ones included.");
    m.sample(live_connections_);
    m.family("stupidp2p_connections_max", "gauge",
             "Most simultaneous connections (--max-conns, lowered to the open-file limit).");
    m.sample(max_conns_);
    m.family("stupidp2p_connections_accepted_total", "counter", "Connections accepted.");
    m.sample(accepted_);
    m.family("stupidp2p_connections_closed_total", "counter",
             "Connections closed, by the reason of their close.");
    for (size_t i = 0; i < kCloseReasonCount; ++i)
        m.sample("reason", close_reason_info(static_cast<CloseReason>(i)).label, conns.closes[i]);
    m.family("stupidp2p_limits_hit_total", "counter",
             "Requests refused because a server limit was reached.");
    m.sample("limit", "max_conns", refused_max_conns_);
    m.sample("limit", "open_files", refused_no_fds_);
    m.sample("limit", "max_subs", relay.subscribe_limit);
    m.sample("limit", "takeover_fight", relay.takeovers_refused);
    m.family("stupidp2p_memory_used_bytes", "gauge",
             "Bytes of buffers and device entries counted against --max-memory.");
    m.sample(budget_.used());
    m.family("stupidp2p_memory_limit_bytes", "gauge", "--max-memory.");
    m.sample(budget_.limit());
    m.family("stupidp2p_evictions_total", "counter",
             "Connections whose output was evicted at the memory limit.");
    m.sample(conns.evictions);
    m.family("stupidp2p_deliveries_dropped_total", "counter",
             "Deliveries dropped for subscribers with the DROP flag that fell behind.");
    m.sample(conns.dropped_deliveries);
    m.family("stupidp2p_gap_events_total", "counter", "GAP events queued.");
    m.sample(conns.gap_events);
    m.family("stupidp2p_presence_held_total", "counter",
             "Presence changes held back because the id was flapping.");
    m.sample(relay.presence_held);
    m.family("stupidp2p_devices_online", "gauge", "Device ids registered by a connection now.");
    m.sample(devices.online());
    m.family("stupidp2p_device_entries", "gauge",
             "Device ids known now: registered, or subscribed to while offline.");
    m.sample(devices.size());
    m.family("stupidp2p_subscriptions", "gauge", "Subscriptions over all connections now.");
    m.sample(devices.subscriptions());
    m.family("stupidp2p_takeovers_total", "counter",
             "Registrations of an id that another connection held.");
    m.sample(relay.takeovers);
    m.family("stupidp2p_auth_total", "counter",
             "AUTH exchanges completed (step 2), by result.");
    m.sample("result", "success", relay.auth_successes);
    m.sample("result", "failure", relay.auth_failures);
    m.family("stupidp2p_direct_offers_total", "counter",
             "DIRECT_OFFERs, by what became of them (direct paths, stupidp2p(7)).");
    m.sample("result", "forwarded", relay.direct_offers);
    m.sample("result", "refused", relay.direct_offers_refused);
    m.sample("result", "rate_limited", relay.direct_offers_limited);
    m.family("stupidp2p_direct_answers_total", "counter", "DIRECT_ANSWERs forwarded, by answer.");
    m.sample("answer", "accept", relay.direct_accepted);
    m.sample("answer", "decline", relay.direct_declined);
    m.family("stupidp2p_direct_marks_total", "counter",
             "DIRECT_MARKs forwarded (switches between relay and direct path).");
    m.sample(relay.direct_marks);
    m.family("stupidp2p_direct_results_total", "counter",
             "DIRECT_RESULTs reported by clients, one per side and attempt, by outcome.");
    m.sample("outcome", "direct", relay.direct_results_direct);
    m.sample("outcome", "failed", relay.direct_results_failed);
    m.family("stupidp2p_frames_in_total", "counter", "Non-empty frames received from clients.");
    m.sample(relay.frames_in);
    m.family("stupidp2p_bytes_in_total", "counter", "Bytes received from clients.");
    m.sample(conns.bytes_in);
    m.family("stupidp2p_frames_out_total", "counter",
             "Frames queued for clients: replies, deliveries and events.");
    m.sample(conns.frames_out);
    m.family("stupidp2p_bytes_out_total", "counter", "Bytes the kernel took for clients.");
    m.sample(conns.bytes_out);
    m.family("stupidp2p_deliveries_total", "counter",
             "Messages queued for a subscriber or a SEND_TO target.");
    m.sample(relay.deliveries);
    m.family("stupidp2p_sends_dropped_no_subscriber_total", "counter",
             "SENDs from a device that nobody subscribed to.");
    m.sample(relay.dropped_no_subscriber);
    m.family("stupidp2p_output_pending_bytes", "gauge",
             "Bytes queued for clients that the kernel has not taken yet.");
    m.sample(conns.output_pending);
    if (cluster_ && form == MetricsText::Form::prometheus) render_cluster_metrics(m);
    m.family("stupidp2p_metrics_requests_total", "counter",
             "HTTP requests to this endpoint; bad ones are also counted apart.");
    m.sample(metrics_ ? metrics_->requests() : 0);
    m.family("stupidp2p_metrics_bad_requests_total", "counter", "Malformed HTTP requests.");
    m.sample(metrics_ ? metrics_->bad_requests() : 0);
}

void Server::render_cluster_metrics(MetricsText& m) const {
    const ClusterStats& c = cluster_->stats();
    const ClusterViewStats& v = cluster_->view_stats();
    const NatsLinkStats& l = cluster_->link_stats();
    m.family("stupidp2p_cluster_link_up", "gauge", "1 while connected to a NATS server.");
    m.sample(cluster_->link_up() ? 1 : 0);
    m.family("stupidp2p_cluster_nodes", "gauge", "Relays of the cluster alive, this one included.");
    m.sample(cluster_->nodes_alive());
    m.family("stupidp2p_cluster_remote_devices", "gauge",
             "Device ids held by sessions of the other relays, as this relay knows.");
    m.sample(cluster_->remote_devices());
    m.family("stupidp2p_cluster_followed_ids", "gauge",
             "Ids with local subscribers whose data this relay takes from the cluster.");
    m.sample(cluster_->interest_count());
    m.family("stupidp2p_cluster_nats_connects_total", "counter",
             "Connections to a NATS server completed (the first and every reconnection).");
    m.sample(l.connects);
    m.family("stupidp2p_cluster_nats_disconnects_total", "counter",
             "Established NATS connections lost.");
    m.sample(l.disconnects);
    m.family("stupidp2p_cluster_alone_total", "counter",
             "Times NATS was out of reach long enough for the other relays' devices to go offline.");
    m.sample(c.episodes_alone);
    m.family("stupidp2p_cluster_messages_total", "counter", "NATS messages, by direction.");
    m.sample("direction", "out", l.published);
    m.sample("direction", "in", l.received);
    m.family("stupidp2p_cluster_bytes_total", "counter", "NATS payload bytes, by direction.");
    m.sample("direction", "out", l.published_bytes);
    m.sample("direction", "in", l.received_bytes);
    m.family("stupidp2p_cluster_output_pending_bytes", "gauge",
             "Bytes queued for NATS that the kernel has not taken yet.");
    m.sample(cluster_->link_output_pending());
    m.family("stupidp2p_cluster_sends_total", "counter",
             "SEND and SEND_TO crossing relays, by direction and kind.");
    m.sample("kind", "send_out", c.data_out);
    m.sample("kind", "send_in", c.data_in);
    m.sample("kind", "send_to_out", c.send_to_out);
    m.sample("kind", "send_to_in", c.send_to_in);
    m.family("stupidp2p_cluster_direct_total", "counter",
             "Direct-path steps (DIRECT_* events, RESULTs) crossing relays, by what became of "
             "them.");
    m.sample("kind", "out", c.direct_out);
    m.sample("kind", "in", c.direct_in);
    m.sample("kind", "not_here", c.direct_not_here);
    m.sample("kind", "refused", c.direct_refused);
    m.family("stupidp2p_cluster_dropped_total", "counter",
             "Messages to or from the other relays that were not delivered, by reason.");
    m.sample("reason", "nats_disconnected", l.dropped_disconnected);
    m.sample("reason", "nats_slow", l.dropped_slow);
    m.sample("reason", "nats_too_large", l.dropped_too_large);
    m.sample("reason", "nats_skipped", l.received_skipped);
    m.sample("reason", "stale_holder", v.data_stale);
    m.sample("reason", "out_of_order", v.data_out_of_order);
    m.sample("reason", "unfollowed", c.data_unfollowed);
    m.sample("reason", "target_moved", c.send_to_not_here);
    m.sample("reason", "refused", c.send_to_refused);
    m.sample("reason", "malformed", c.bad_messages);
    m.family("stupidp2p_cluster_claims_total", "counter",
             "Ownership messages (claims and releases), by what became of them.");
    m.sample("kind", "sent", c.claims_out + c.releases_out);
    m.sample("kind", "received", c.claims_in);
    m.sample("kind", "applied", v.claims_applied);
    m.sample("kind", "stale", v.claims_stale);
    m.sample("kind", "refused", v.claims_refused);
    m.sample("kind", "no_room", v.entries_refused);
    m.sample("kind", "taken_here", c.lost_here);
    m.family("stupidp2p_cluster_nodes_lost_total", "counter",
             "Relays declared dead (silent) or gone (left).");
    m.sample(v.nodes_dead);
    m.family("stupidp2p_cluster_snapshots_total", "counter",
             "Snapshots of holdings, by what happened to them.");
    m.sample("kind", "asked", c.syncs_asked);
    m.sample("kind", "sent", c.syncs_served);
    m.sample("kind", "refused", c.syncs_refused);
    m.sample("kind", "received", v.snapshots_complete);
    m.sample("kind", "abandoned", v.snapshots_abandoned);
}
