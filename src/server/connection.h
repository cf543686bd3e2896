// connection.h - one client connection: its socket, its buffers, its place
// on the server's lists, and (as its Session base) its protocol state.
//
// Life cycle (one transition function, Server::close_connection):
//
//   open ──close(flush)──▶ draining ──output sent──▶ half_closed ──EOF──▶ dead
//     │                       │                          │
//     └──close(no flush)──────┴──────── linger deadline ─┴───────────────▶ dead
//
//   open        reads frames, hands them to the relay, writes its output.
//   draining    the relay is done with it (its id released, a BYE queued for
//               v2); no more input is processed; pending output is flushed.
//   half_closed output flushed and shut down for writing; input is read and
//               discarded until the peer's EOF, so that closing cannot turn
//               unread input into a reset that destroys what we just sent.
//   dead        on the reap list; its fd is closed and memory freed after
//               the current loop iteration, never inside one.
//
// A Connection is on at most one lifecycle list at a time (idle LRU while
// open, linger list while draining/half_closed, reap list when dead), which
// is why those share one hook.
#pragma once

#include <cstdint>

#include "event_loop.h"
#include "io.h"
#include "intrusive_list.h"
#include "ring_buffer.h"
#include "session.h"

class Server;

struct LifecycleTag {};
struct FlushTag {};
struct CutoffTag {};

enum class ConnState : uint8_t { open, draining, half_closed, dead };

class Connection final : public EventHandler,
                         public Session,
                         public ListHook<LifecycleTag>,
                         public ListHook<FlushTag>,
                         public ListHook<CutoffTag> {
   public:
    Connection(Server& server, int fd, uint32_t in_max, uint32_t out_max)
        : in(in_max, 4096), out(out_max, 4096), server_(server), fd_(fd) {}
    Connection(const Connection&) = delete;
    Connection& operator=(const Connection&) = delete;

    void on_events(uint32_t events) override;
    void on_resume() override;

    int fd() const { return fd_; }

    RingBuffer in;
    RingBuffer out;
    uint64_t last_active_ms = 0;  // open: last complete frame (idle LRU key)
    uint64_t deadline_ms = 0;     // draining/half_closed: linger deadline
    ConnState state = ConnState::open;
    bool cut_off = false;         // output cap exceeded: being closed
    bool peer_eof = false;        // the peer has shut down its side
    PeerAddress peer;

    // "conn 7 [1.2.3.4:5678]" for log lines. Formatted on demand into one of
    // a few static buffers, so that one log line may name two connections;
    // single-threaded server only.
    const char* label() const;

   private:
    Server& server_;
    int fd_;
};
