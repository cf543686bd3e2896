// connection.h - one client connection: its socket, its buffers and its
// life, and (as a Session) the relay's sink for the session's output.
//
// The connection reads into its input ring, cuts frames out of it through
// the codec and hands each to the relay; the relay answers by enqueue()ing
// frames on this and other connections, which only append to their output
// rings and ask the loop for on_iteration_end(), where each connection
// writes out what the iteration produced for it in one writev. The server
// accepts connections, applies timeouts and frees dead ones, but is not on
// the path of a frame.
//
// Life cycle; state changes only in transition(), and close() is the one
// way to start ending:
//
//   open ──close(flush)──▶ draining ──output sent──▶ half_closed ──EOF──▶ dead
//     │                       │                          │
//     └──close(no flush)──────┴── close(io_error, linger_expired) ───────▶ dead
//
//   open        reads frames, hands them to the relay, writes its output.
//   draining    the relay is done with it (its id released, a BYE queued for
//               v2); no more input is processed; pending output is flushed.
//   half_closed output flushed and shut down for writing; input is read and
//               discarded until the peer's EOF, so that closing cannot turn
//               unread input into a reset that destroys what we just sent.
//   dead        on the reap list; the server closes its fd and frees it
//               after the current loop iteration, never inside one.
//
// A Connection is on at most one of the lists in ConnectionLists at a time
// (idle LRU while open, linger list while draining/half_closed, reap list
// when dead), which is why those share one hook.
#pragma once

#include <cstdint>

#include "event_loop.h"
#include "intrusive_list.h"
#include "io.h"
#include "ring_buffer.h"
#include "session.h"

class Relay;
class Connection;

struct LifecycleTag {};

enum class ConnState : uint8_t { open, draining, half_closed, dead };

struct ConnectionLimits {
    uint32_t max_frame = 65536;         // largest payload a client may send
    uint32_t max_output = 4u << 20;     // pending output of a slow consumer
    uint32_t in_ring_max = 1u << 17;    // one frame and its header, at least
    uint32_t out_ring_max = 5u << 20;   // max_output and a frame's slack
};

// Counters over all connections, for the metrics endpoint.
struct ConnectionStats {
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;         // taken by the kernel
    uint64_t frames_out = 0;        // queued
    uint64_t output_pending = 0;    // queued and not yet taken by the kernel
    uint64_t closes[kCloseReasonCount] = {};
};

// What every connection of one server shares. Owned by the server, which
// outlives its connections.
struct ConnectionContext {
    ConnectionContext(EventLoop& l, Relay& r) : loop(l), relay(r) {}

    EventLoop& loop;
    Relay& relay;
    ConnectionLimits limits;
    // max(max_frame, read chunk) bytes: payloads that straddle a ring's
    // wrap, and input discarded while closing. Used by one handler at a time.
    uint8_t* scratch = nullptr;
    // No linger deadline beyond this (the server's shutdown deadline).
    uint64_t linger_cap_ms = UINT64_MAX;
    ConnectionStats stats;

    IntrusiveList<Connection, LifecycleTag> idle;    // open, least recently active first
    IntrusiveList<Connection, LifecycleTag> linger;  // draining/half_closed, earliest deadline first
    IntrusiveList<Connection, LifecycleTag> reap;    // dead
};

// The size ConnectionContext::scratch must have for a server's max_frame.
size_t connection_scratch_size(uint32_t max_frame);

class Connection final : public EventHandler, public Session, public ListHook<LifecycleTag> {
   public:
    // Takes fd (non-blocking, registered with the loop by the caller) and
    // puts the connection at the back of the idle list.
    Connection(ConnectionContext& ctx, int fd, const PeerAddress& peer, uint64_t id);
    ~Connection() override = default;

    // EventHandler
    void on_events(uint32_t events) override;
    void on_resume() override;
    void on_iteration_end() override;

    // Session: the relay's sink.
    void enqueue(const uint8_t* head, size_t head_len, const uint8_t* data,
                 size_t data_len) override;
    void close(CloseReason reason) override;
    const char* label() const override;

    int fd() const { return fd_; }
    ConnState state() const { return state_; }
    uint32_t pending_output() const { return out_.size(); }
    uint64_t last_active_ms() const { return last_active_ms_; }  // open
    uint64_t deadline_ms() const { return deadline_ms_; }        // draining, half_closed
    // Brings the linger deadline forward to at most ms.
    void cap_deadline(uint64_t ms) {
        if (deadline_ms_ > ms) deadline_ms_ = ms;
    }

   private:
    void read_input();
    size_t process_frames();
    void discard_input();
    void drop_input();
    void flush();
    void output_sent();
    void log_io_error(const char* doing, int err) const;
    // The one place state_ changes.
    void transition(ConnState next);

    ConnectionContext& ctx_;
    RingBuffer in_;
    RingBuffer out_;
    uint64_t last_active_ms_ = 0;
    uint64_t deadline_ms_ = 0;
    int fd_;
    ConnState state_ = ConnState::open;
    bool cut_off_ = false;   // output cap exceeded: closed at the end of the iteration
    bool peer_eof_ = false;  // the peer has shut down its side
    bool reading_ = false;   // inside read_input: the relay may hold a pointer into in_
    PeerAddress peer_;
};
