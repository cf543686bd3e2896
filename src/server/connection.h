// connection.h - one client connection: its socket, its buffers and its
// life, and (as a Session) the relay's sink for the session's output.
//
// The connection reads into its input ring, cuts frames out of it through
// the codec and hands each to the relay; the relay answers by enqueue()ing
// frames on this and other connections, which append to their output rings
// and ask the loop for on_iteration_end(), where each connection writes out
// what the iteration produced for it in one writev. The server accepts
// connections, applies timeouts and frees dead ones, but is not on the
// path of a frame.
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
//               after the current loop iteration, never inside one. Its
//               buffers are freed at once.
//
// A Connection is on at most one of the lists in ConnectionContext's
// lifecycle lists at a time (idle LRU while open, linger list while
// draining/half_closed, reap list when dead), which is why those share one
// hook.
//
// Output, and the limits on it (issue 10):
//  - Pending output counts only what the kernel has not taken. Output is
//    normally written once, at the end of the iteration; but when a
//    connection's pending output grows by kWriteThreshold bytes within an
//    iteration, or a frame would not fit under --max-output, it is written
//    at once, so that a burst from many publishers in one pass cannot cut
//    off a subscriber that reads as fast as the kernel lets it.
//  - Over --max-output the session is cut off (BYE 3), or, if it chose the
//    drop policy (v2 HELLO flag DROP), its deliveries are dropped whole
//    until it has caught up (its output all written), and then it is told
//    what it missed in GAP events, one per publisher (P2P_GAP_NAMED_MAX
//    named, the rest together), placed where the missed deliveries would
//    have been. Replies and other events are never dropped: deliveries
//    that may be dropped leave them the last eighth of the cap (at most
//    64 KiB); past the cap itself the session is cut off all the same.
//  - Every buffer is charged to the server's MemoryBudget (--max-memory).
//    When a buffer cannot grow, the connections with the largest output
//    buffers (by allocated size, in powers of two) are evicted first: their
//    pending output is discarded but for the rest of a frame already partly
//    sent, and they are closed with BYE 3; a draining connection keeps only
//    that and its BYE. If nothing larger is left to evict, the growth
//    is refused: the frame is dropped (drop policy) or the connection cut
//    off (BYE 3 for output, BYE 7 for input).
//  - A frame that has begun to arrive must be complete within
//    --frame-timeout (the server checks the `partial` list on its tick).
//
// Closing never happens inside enqueue(): the relay may be walking a
// subscriber list. Cut-offs, evictions and write errors found there are
// acted on at the end of the iteration.
#pragma once

#include <cstdint>
#include <string_view>

#include "event_loop.h"
#include "intrusive_list.h"
#include "io.h"
#include "memory_budget.h"
#include "ring_buffer.h"
#include "session.h"

class Relay;
class Connection;
struct GapTable;

struct LifecycleTag {};
struct PartialFrameTag {};
struct OutputClassTag {};

enum class ConnState : uint8_t { open, draining, half_closed, dead };

struct ConnectionLimits {
    uint32_t max_frame = 65536;         // largest payload a client may send
    uint32_t max_output = 4u << 20;     // pending output of a slow consumer
    uint32_t in_ring_max = 1u << 17;    // one frame and its header, at least
    uint32_t out_ring_max = 5u << 20;   // max_output and a frame's slack
};

// Counters over all connections, for the metrics endpoint, logs and tests.
struct ConnectionStats {
    uint64_t bytes_in = 0;
    uint64_t bytes_out = 0;           // taken by the kernel
    uint64_t frames_out = 0;          // queued
    uint64_t output_pending = 0;      // queued and not yet taken by the kernel
    uint64_t closes[kCloseReasonCount] = {};
    uint64_t evictions = 0;           // connections evicted at the memory limit
    uint64_t dropped_deliveries = 0;  // deliveries dropped (drop policy)
    uint64_t gap_events = 0;          // GAP frames queued
    uint64_t early_writes = 0;        // writes made inside an iteration
};

// A test seam: called around every frame handed to the relay, with the
// payload the relay sees (which may lie in the shared scratch buffer).
class FrameObserver {
   public:
    virtual void before_frame(const Connection& c, const uint8_t* payload, uint32_t len) = 0;
    virtual void after_frame(const Connection& c, const uint8_t* payload, uint32_t len) = 0;

   protected:
    ~FrameObserver() = default;
};

// Buckets of connections by the allocated size of their output ring.
constexpr int kOutputClasses = 32;

// What every connection of one server shares. Owned by the server, which
// outlives its connections.
struct ConnectionContext {
    ConnectionContext(EventLoop& l, Relay& r, MemoryBudget* b = nullptr,
                      const ConnectionLimits& lim = ConnectionLimits{});

    EventLoop& loop;
    Relay& relay;
    MemoryBudget* budget;  // every ring is charged here (nullptr: none)
    const ConnectionLimits limits;
    // What every connection's input (output) ring refers to: its cap,
    // first allocation and the budget.
    const RingLimits input_rings;
    const RingLimits output_rings;
    ConnectionStats stats;
    FrameObserver* observer = nullptr;
    // max(max_frame, read chunk) bytes: payloads that straddle a ring's
    // wrap. Used by one frame at a time.
    uint8_t* scratch = nullptr;
    // Where input read while closing is thrown away: never the scratch
    // buffer, which may hold the payload of the frame being handled when a
    // takeover closes another connection.
    uint8_t discard[16384];
    // No linger deadline beyond this (the server's shutdown deadline).
    uint64_t linger_cap_ms = UINT64_MAX;

    IntrusiveList<Connection, LifecycleTag> idle;    // open, least recently active first
    IntrusiveList<Connection, LifecycleTag> linger;  // draining/half_closed, earliest deadline first
    IntrusiveList<Connection, LifecycleTag> reap;    // dead
    // Open connections with a frame begun and not complete, the oldest
    // beginning first (for --frame-timeout).
    IntrusiveList<Connection, PartialFrameTag> partial;
    // Connections with output storage, by log2 of its size: the eviction
    // order at the memory limit.
    IntrusiveList<Connection, OutputClassTag> output_class[kOutputClasses];
};

// The size ConnectionContext::scratch must have for a server's max_frame.
size_t connection_scratch_size(uint32_t max_frame);

class Connection final : public EventHandler,
                         public Session,
                         public ListHook<LifecycleTag>,
                         public ListHook<PartialFrameTag>,
                         public ListHook<OutputClassTag> {
   public:
    // Takes fd (non-blocking, registered with the loop by the caller) and
    // puts the connection at the back of the idle list.
    Connection(ConnectionContext& ctx, int fd, const PeerAddress& peer, uint64_t id);
    ~Connection() override;

    // EventHandler
    void on_events(uint32_t events) override;
    void on_resume() override;
    void on_iteration_end() override;

    // Session: the relay's sink.
    void enqueue(const uint8_t* head, size_t head_len, const uint8_t* data,
                 size_t data_len) override;
    void enqueue_delivery(std::string_view from, const uint8_t* head, size_t head_len,
                          const uint8_t* data, size_t data_len) override;
    void close(CloseReason reason) override;
    const char* label() const override;
    const char* peer() const override;
    bool address(SessionAddress* out) const override;

    int fd() const { return fd_; }
    ConnState state() const { return state_; }
    uint32_t pending_output() const { return out_.size(); }
    uint32_t buffered_input() const { return in_.size(); }
    uint32_t input_capacity() const { return in_.capacity(); }
    uint32_t output_capacity() const { return out_.capacity(); }
    bool dropping() const { return dropping_; }
    uint64_t last_active_ms() const { return widen_ms(timer_ms_); }  // open
    uint64_t deadline_ms() const { return widen_ms(timer_ms_); }     // draining, half_closed
    uint64_t partial_since_ms() const { return widen_ms(partial_since_ms_); }  // on the partial list
    // Brings the linger deadline forward to at most ms.
    void cap_deadline(uint64_t ms) {
        if (deadline_ms() > ms) timer_ms_ = ms32(ms);
    }

    // At the memory limit: evicts the connection with the largest output
    // storage, if its size class is above `above` (-1: any), never
    // `except`. Returns whether one was evicted (its memory is free now).
    static bool evict_largest(ConnectionContext& ctx, const Connection* except, int above);

   private:
    void read_input();
    bool reserve_input(size_t n);
    size_t process_frames();
    void discard_input();
    void drop_input();

    // Output: see the essay above.
    void queue_frame(const uint8_t* head, size_t head_len, const uint8_t* data, size_t data_len,
                     std::string_view from, bool delivery);
    bool fits_under_cap(size_t total, bool droppable) const;
    bool reserve_output(size_t n);
    void append_frame(const uint8_t* head, size_t head_len, const uint8_t* data, size_t data_len);
    void write_now();
    bool write_out();
    void consume_output(size_t n);
    void output_drained();
    void flush();
    void finish_draining();
    void track_output_memory();
    void cut_off(CloseReason reason);
    void evict();
    bool drops_deliveries() const;
    void count_drop(std::string_view from, size_t data_len);
    bool emit_gap();
    void free_gap_table();

    // Times are kept in 32 bits (clock.h, ms32): exact within 24.8 days of
    // now, and what they serve is nearer: the idle and frame timeouts are
    // at most 7 days (options.cpp), the linger deadline 5 s away.
    uint64_t widen_ms(uint32_t ms) const { return widen_ms32(ctx_.loop.now_ms(), ms); }
    void log_io_error(const char* doing, int err) const;
    // The one place state_ changes.
    void transition(ConnState next);

    // Fields ordered by size: there is one Connection per client, idle or
    // not (BENCHMARKS.md, "Memory and connections per machine").
    ConnectionContext& ctx_;
    RingBuffer in_;
    RingBuffer out_;
    // Drops not yet told, for publishers beyond the named ones.
    uint64_t gap_other_bytes_ = 0;
    GapTable* gap_ = nullptr;       // named publishers' drops, while dropping
    uint32_t gap_other_frames_ = 0;
    // While open, when the last complete frame came (the idle timeout);
    // from close() on, the linger deadline: a connection needs one of the
    // two at a time. Both times in 32 bits (widen_ms).
    uint32_t timer_ms_ = 0;
    uint32_t partial_since_ms_ = 0;
    uint32_t front_left_ = 0;       // bytes of the oldest output frame not yet written
    uint32_t next_write_at_ = 0;    // pending output at which to write within the iteration
    int fd_;
    int16_t write_error_ = 0;       // errno of a failed write inside enqueue, closed later
    uint16_t bye_len_ = 0;          // the BYE's bytes at the end of the output, once queued
    int8_t output_class_ = -1;      // index in ctx_.output_class, -1 without storage
    ConnState state_ = ConnState::open;
    CloseReason cut_reason_ = CloseReason::slow_consumer;
    bool cut_off_ : 1 = false;   // closed at the end of the iteration (cut_reason_)
    bool dropping_ : 1 = false;  // drop policy engaged: deliveries dropped until caught up
    bool evicted_ : 1 = false;   // its output was taken at the memory limit
    bool peer_eof_ : 1 = false;  // the peer has shut down its side
    bool reading_ : 1 = false;   // inside read_input: the relay may hold a pointer into in_
    PeerAddress peer_;
};
