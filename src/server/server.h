// server.h - the relay server: listens, accepts connections within the
// configured and the descriptor limits, applies timeouts, shuts down on a
// signal, and frees connections that have died. It is not on the path of a
// frame: connections read, hand frames to the relay and write on their own
// (connection.h).
//
// The Server is the EventLoop's Hooks: the tick drives idle and linger
// timeouts, SIGINT/SIGTERM start the shutdown, SIGHUP a reload, SIGUSR1
// logs the counters, and after each iteration dead connections are reaped.
// Under systemd (Type=notify) it reports readiness, reloads, stopping and a
// status line through ServiceNotifier. With --cluster it owns the cluster
// room (cluster.h), ticks it, tells it of the shutdown and shows its
// counters; the relay reaches it through ClusterHooks.
#pragma once

#include <cstdint>
#include <memory>

#include "cluster.h"
#include "connection.h"
#include "event_loop.h"
#include "fixed_pool.h"
#include "memory_budget.h"
#include "http_endpoint.h"
#include "metrics.h"
#include "notify.h"
#include "options.h"
#include "relay.h"

class Server final : public EventLoop::Hooks, public HttpEndpoint::Handler {
   public:
    explicit Server(const ServerOptions& options);
    ~Server() override;
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Opens the listeners, the signal watch and the loop. On failure logs
    // why and returns false.
    bool start();
    // Runs until SIGINT/SIGTERM and a graceful shutdown. Returns the exit
    // status: 0 after a graceful shutdown, 1 on a fatal error.
    int run();

    // EventLoop::Hooks
    void on_tick(uint64_t now_ms) override;
    void on_signal(int signo) override;
    void after_iteration(uint64_t now_ms) override;

    // HttpEndpoint::Handler: /metrics and /healthz.
    bool on_http_get(const std::string& path, HttpResponse* out) override;
    // Re-reads what may change while the server runs (server_reload.cpp):
    // today the auth file. Connections stay; what failed to load is logged
    // and the previous settings stay in force.
    void reload();
    void apply_reloaded_options(const ServerOptions& next);

   private:
    class Listener final : public EventHandler {
       public:
        Listener(Server& server, int fd) : server_(server), fd_(fd) {}
        void on_events(uint32_t) override { server_.accept_connections(*this); }
        int fd() const { return fd_; }
        void close_fd();

       private:
        Server& server_;
        int fd_;
    };

    static constexpr size_t kMaxListeners = 8;

    bool apply_fd_limit();
    void accept_connections(Listener& listener);
    bool refuse_over_emfile(Listener& listener);
    void pause_accept(const char* why);
    void resume_accept();
    void close_stalled_frames(uint64_t now);
    void begin_shutdown();
    void reap();
    void free_connection(Connection* c);
    void report_status(uint64_t now_ms);
    bool start_metrics();
    void render_metrics(std::string& out, MetricsText::Form form) const;
    // Loads --auth-file and puts it in force (server_reload.cpp). False,
    // with the reason logged, when it cannot be read, parsed or applied.
    bool load_auth_file_now();
    // --cluster: resolves the NATS servers and starts the cluster room.
    bool start_cluster();
    void render_cluster_metrics(MetricsText& m) const;

    ServerOptions options_;
    EventLoop loop_;
    MemoryBudget budget_;          // --max-memory: before the relay and the connections
    MemoryBudget device_budget_;   // the device table's share of it
    HashKey hash_key_;
    std::unique_ptr<Relay> relay_;
    std::unique_ptr<Cluster> cluster_;  // null without --cluster
    // One Connection per client: pooled, 312 bytes each instead of
    // malloc's 320 (fixed_pool.h). Allocated in accept_connections, freed
    // by free_connection.
    FixedPool connection_pool_{sizeof(Connection)};
    std::unique_ptr<ConnectionContext> connections_;
    std::unique_ptr<Listener> listeners_[kMaxListeners];
    size_t listener_count_ = 0;
    int spare_fd_ = -1;  // reserved so that EMFILE can still be answered
    ServiceNotifier notifier_;
    std::unique_ptr<HttpEndpoint> metrics_;
    uint64_t status_sent_ms_ = 0;
    uint64_t status_connections_ = UINT64_MAX;  // what the last STATUS= said
    uint64_t status_devices_ = UINT64_MAX;

    uint64_t next_session_id_ = 1;
    uint64_t evictions_trimmed_ = 0;
    uint64_t accepted_ = 0;
    uint64_t refused_max_conns_ = 0;
    uint64_t refused_no_fds_ = 0;
    uint32_t live_connections_ = 0;
    uint32_t max_conns_ = 0;
    bool accept_paused_ = false;  // resumed by the tick or when a connection is reaped
    bool at_conn_limit_ = false;
    bool out_of_fds_ = false;
    bool pause_logged_ = false;
    bool shutting_down_ = false;
    uint64_t shutdown_deadline_ms_ = 0;
    int exit_status_ = 0;
};
