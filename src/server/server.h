// server.h - the relay server: accepts connections, moves bytes between
// sockets and ring buffers, cuts frames out of the input and hands them to
// the Relay, and decides when connections close.
//
// The Server is the only piece that knows both sockets and sessions. It is
// the SessionHost of the Relay (frames out, sessions closed) and the Hooks
// of the EventLoop (the tick drives timeouts; after each iteration it cuts
// off slow consumers, flushes output and frees dead connections).
//
// Output batching: send_frame only appends to the connection's output ring
// and puts the connection on the flush list; everything produced for one
// connection during one iteration leaves in one writev at its end.
#pragma once

#include <cstdint>
#include <memory>

#include "connection.h"
#include "event_loop.h"
#include "options.h"
#include "relay.h"

class Server final : public EventLoop::Hooks, public SessionHost {
   public:
    explicit Server(const ServerOptions& options);
    ~Server() override;
    Server(const Server&) = delete;
    Server& operator=(const Server&) = delete;

    // Opens the listeners, the signalfd and the loop. On failure logs why
    // and returns false.
    bool start();
    // Runs until SIGINT/SIGTERM and a graceful shutdown. Returns the exit
    // status: 0 after a graceful shutdown, 1 on a fatal error.
    int run();

    // SessionHost
    void send_frame(Session& to, const uint8_t* prefix, size_t prefix_len, const uint8_t* data,
                    size_t data_len) override;
    void close_session(Session& session, CloseReason reason) override;
    const char* describe(const Session& session) override;

    // EventLoop::Hooks
    void on_tick(uint64_t now_ms) override;
    void after_iteration(uint64_t now_ms) override;

    // Called by Connection.
    void on_connection_events(Connection& conn, uint32_t events);
    void on_connection_resume(Connection& conn);

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
    class SignalHandler final : public EventHandler {
       public:
        explicit SignalHandler(Server& server) : server_(server) {}
        void on_events(uint32_t) override { server_.on_signal(); }

       private:
        Server& server_;
    };

    static constexpr size_t kMaxListeners = 8;

    void accept_connections(Listener& listener);
    void refuse_over_emfile(Listener& listener);
    void on_signal();
    void begin_shutdown();

    void read_input(Connection& conn);
    void discard_input(Connection& conn);
    size_t process_frames(Connection& conn);
    void flush_output(Connection& conn);
    // The one transition function; see connection.h. flush: let pending
    // output (and a v2 BYE) reach the peer before closing.
    void close_connection(Connection& conn, CloseReason reason, bool flush);
    void kill_connection(Connection& conn);
    void output_sent(Connection& conn);
    void reap();

    ServerOptions options_;
    EventLoop loop_;
    std::unique_ptr<Relay> relay_;
    std::unique_ptr<Listener> listeners_[kMaxListeners];
    size_t listener_count_ = 0;
    SignalHandler signal_handler_{*this};
    int signal_fd_ = -1;
    int spare_fd_ = -1;  // reserved so that EMFILE can still be answered

    IntrusiveList<Connection, LifecycleTag> idle_;    // open, LRU order
    IntrusiveList<Connection, LifecycleTag> linger_;  // draining/half_closed
    IntrusiveList<Connection, LifecycleTag> reap_;    // dead
    IntrusiveList<Connection, FlushTag> flush_;       // output queued
    IntrusiveList<Connection, CutoffTag> cutoff_;     // over the output cap

    uint8_t* scratch_ = nullptr;  // max_frame bytes: wrapped payloads, discards
    uint64_t next_session_id_ = 1;
    uint32_t live_connections_ = 0;
    uint32_t max_conns_ = 0;
    uint32_t in_ring_max_ = 0;
    bool accept_paused_ = false;
    bool at_conn_limit_ = false;
    bool out_of_fds_ = false;
    bool shutting_down_ = false;
    uint64_t shutdown_deadline_ms_ = 0;
    int exit_status_ = 0;
};
