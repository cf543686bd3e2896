// connection.cpp - see connection.h.
#include "connection.h"

#include <cstdio>
#include <cstring>

#include "codec.h"
#include "frame_reader.h"
#include "log.h"
#include "protocol.h"
#include "relay.h"

namespace {

constexpr uint64_t kLingerMs = 5000;        // bound on flushing before close
constexpr size_t kReadBudget = 256 * 1024;  // per connection per iteration
constexpr size_t kReadChunk = 16 * 1024;    // free space wanted before a read
constexpr uint32_t kInitialRing = 4096;

}  // namespace

size_t connection_scratch_size(uint32_t max_frame) {
    return max_frame > kReadChunk ? max_frame : kReadChunk;
}

Connection::Connection(ConnectionContext& ctx, int fd, const PeerAddress& peer, uint64_t id)
    : ctx_(ctx),
      in_(ctx.limits.in_ring_max, kInitialRing),
      out_(ctx.limits.out_ring_max, kInitialRing),
      fd_(fd),
      peer_(peer) {
    session_id = id;
    last_active_ms_ = ctx.loop.now_ms();
    ctx.idle.push_back(*this);
}

const char* Connection::label() const {
    // A few static buffers, so that one log line may name two connections;
    // single-threaded server only.
    static char buffers[4][96];
    static unsigned next = 0;
    char* text = buffers[next++ % 4];
    char where[64];
    io_format_peer(peer_, where, sizeof where);
    std::snprintf(text, sizeof buffers[0], "conn %llu [%s]",
                  static_cast<unsigned long long>(session_id), where);
    return text;
}

// A socket error: routine ones a peer causes (reset, broken pipe) quietly,
// anything else loudly, with the connection and what it was doing.
void Connection::log_io_error(const char* doing, int err) const {
    if (io_error_is_peer(err))
        LOG_DEBUG("%s: %s: %s", label(), doing, strerrordesc_np(err));
    else
        LOG_WARN("%s: %s: %s", label(), doing, strerrordesc_np(err));
}

// ---- events --------------------------------------------------------------------

void Connection::on_events(uint32_t events) {
    if (state_ == ConnState::dead) return;  // stale event in this batch
    if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) && !out_.empty()) flush();
    if (state_ == ConnState::dead) return;
    if (events & (EPOLLIN | EPOLLRDHUP | EPOLLERR | EPOLLHUP)) {
        if (state_ == ConnState::open)
            read_input();
        else
            discard_input();
    }
}

void Connection::on_resume() {
    if (state_ == ConnState::open)
        read_input();
    else if (state_ != ConnState::dead)
        discard_input();
}

void Connection::on_iteration_end() {
    if (state_ == ConnState::open && cut_off_) {
        LOG_WARN("%s: slow consumer: output would exceed %u bytes; disconnecting", label(),
                 ctx_.limits.max_output);
        close(CloseReason::slow_consumer);
    }
    if (state_ != ConnState::dead && !out_.empty()) flush();
}

// ---- reading -------------------------------------------------------------------

void Connection::read_input() {
    size_t budget = kReadBudget;
    size_t frames = 0;
    reading_ = true;
    while (state_ == ConnState::open) {
        size_t room = in_.max_bytes() - in_.size();
        if (!in_.reserve(room < kReadChunk ? room : kReadChunk) || in_.free_space() == 0) {
            // Cannot happen while in_ring_max holds a whole frame, unless
            // memory is exhausted.
            LOG_ERROR("%s: cannot allocate input buffer", label());
            close(CloseReason::io_error);
            break;
        }
        struct iovec spans[2];
        int count = in_.write_spans(spans);
        IoResult r = io_readv(fd_, spans, count);
        if (r.status == IoStatus::ok) {
            ctx_.stats.bytes_in += r.bytes;
            in_.commit(r.bytes);
            frames += process_frames();
            if (r.bytes >= budget) {
                ctx_.loop.defer(*this);  // fairness: the rest next iteration
                break;
            }
            budget -= r.bytes;
            continue;
        }
        if (r.status == IoStatus::would_block) break;
        if (r.status == IoStatus::eof) {
            peer_eof_ = true;
            close(CloseReason::peer_closed);
            break;
        }
        log_io_error("read", r.err);
        close(CloseReason::io_error);
        break;
    }
    reading_ = false;
    if (state_ != ConnState::open) {
        drop_input();
        return;
    }
    // Any complete frame refreshes the idle timer.
    if (frames != 0) {
        last_active_ms_ = ctx_.loop.now_ms();
        ctx_.idle.push_back(*this);
    }
    if (in_.empty()) in_.release();
}

// Hands every complete frame in the input ring to the relay; returns how
// many (empty frames included: they are ignored, but they count as activity).
size_t Connection::process_frames() {
    size_t frames = 0;
    while (state_ == ConnState::open) {
        FrameView frame;
        FrameStatus st = next_frame(in_, ctx_.limits.max_frame, ctx_.scratch, &frame);
        if (st == FrameStatus::incomplete) break;
        if (st == FrameStatus::too_long) {
            LOG_INFO("%s: frame of %u bytes exceeds the maximum of %u", label(), frame.length,
                     ctx_.limits.max_frame);
            close(CloseReason::protocol_error);
            break;
        }
        if (frame.length != 0) ctx_.relay.on_frame(*this, frame.payload, frame.length);
        // Still ours even if the relay closed this connection: close() leaves
        // the ring to read_input while reading_.
        in_.consume(P2P_FRAME_HEADER_SIZE + frame.length);
        ++frames;
    }
    return frames;
}

// Input of a connection that is closing: read and drop it, so the socket's
// receive queue is empty when we close (a close with unread data sends a
// reset, which can destroy the output the peer has not read yet).
void Connection::discard_input() {
    size_t budget = kReadBudget;
    while (state_ != ConnState::dead) {
        struct iovec span = {ctx_.scratch, kReadChunk};
        IoResult r = io_readv(fd_, &span, 1);
        if (r.status == IoStatus::ok) {
            if (r.bytes >= budget) {
                ctx_.loop.defer(*this);
                return;
            }
            budget -= r.bytes;
            continue;
        }
        if (r.status == IoStatus::would_block) return;
        if (r.status == IoStatus::eof) {
            peer_eof_ = true;
            if (state_ == ConnState::half_closed) transition(ConnState::dead);
            return;
        }
        transition(ConnState::dead);  // reset by the peer: nothing more to do
        return;
    }
}

// The relay is done with the input: give the ring back.
void Connection::drop_input() {
    if (reading_) return;  // read_input does it once the relay returns
    in_.consume(in_.size());
    in_.release();
}

// ---- writing -------------------------------------------------------------------

void Connection::enqueue(const uint8_t* head, size_t head_len, const uint8_t* data,
                         size_t data_len) {
    if (state_ != ConnState::open) return;
    // A session being cut off gets nothing but its BYE (sent once ended).
    if (cut_off_ && !ended) return;
    size_t payload = head_len + data_len;
    size_t total = P2P_FRAME_HEADER_SIZE + payload;
    if (!ended && out_.size() + total > ctx_.limits.max_output) {
        cut_off_ = true;
        ctx_.loop.at_iteration_end(*this);
        return;
    }
    if (!out_.reserve(total)) {
        LOG_ERROR("%s: cannot allocate output buffer", label());
        cut_off_ = true;
        ctx_.loop.at_iteration_end(*this);
        return;
    }
    uint8_t header[P2P_FRAME_HEADER_SIZE];
    p2p_frame_header_encode(header, static_cast<uint32_t>(payload));
    out_.append(header, sizeof header);
    out_.append(head, head_len);
    if (data_len != 0) out_.append(data, data_len);
    ++ctx_.stats.frames_out;
    ctx_.stats.output_pending += total;
    ctx_.loop.at_iteration_end(*this);
}

void Connection::flush() {
    while (!out_.empty()) {
        struct iovec spans[2];
        int count = out_.read_spans(spans);
        IoResult r = io_writev(fd_, spans, count);
        if (r.status == IoStatus::ok) {
            out_.consume(r.bytes);
            ctx_.stats.bytes_out += r.bytes;
            ctx_.stats.output_pending -= r.bytes;
            continue;
        }
        if (r.status == IoStatus::would_block) return;  // EPOLLOUT will call us
        log_io_error("write", r.err);
        close(CloseReason::io_error);
        return;
    }
    output_sent();
}

// All pending output has reached the kernel.
void Connection::output_sent() {
    out_.release();
    if (state_ != ConnState::draining) return;
    if (peer_eof_) {
        transition(ConnState::dead);
        return;
    }
    // Lingering close: FIN after our last byte, then wait for the peer's.
    if (io_shutdown_write(fd_) != 0) {
        transition(ConnState::dead);
        return;
    }
    transition(ConnState::half_closed);
    // Read what the peer still sends in the next iteration, not here: we
    // may be inside another connection's frame (a takeover), whose payload
    // may be in the shared scratch buffer that discarding reads into.
    ctx_.loop.defer(*this);
}

// ---- closing -------------------------------------------------------------------

void Connection::close(CloseReason reason) {
    const CloseReasonInfo& info = close_reason_info(reason);
    if (state_ == ConnState::dead) return;
    if (state_ != ConnState::open) {
        // Already closing: only a reason that gives up on the output matters.
        if (info.flush) return;
        if (reason == CloseReason::linger_expired && !out_.empty())
            LOG_INFO("%s: closed before its output was flushed (%u bytes left)", label(),
                     out_.size());
        transition(ConnState::dead);
        return;
    }
    ++ctx_.stats.closes[static_cast<size_t>(reason)];  // once a connection, for its first reason
    if (info.routine)
        LOG_INFO("%s closed: %s", label(), info.name);
    else
        LOG_INFO("%s closing: %s (%u bytes of output pending)", label(), info.name, out_.size());
    // The relay releases the id at once and queues a BYE for v2 peers, while
    // the connection is still open for output.
    ctx_.relay.end_session(*this, reason);
    drop_input();
    if (!info.flush) {
        transition(ConnState::dead);
        return;
    }
    transition(ConnState::draining);
    uint64_t deadline = ctx_.loop.now_ms() + kLingerMs;
    deadline_ms_ = deadline < ctx_.linger_cap_ms ? deadline : ctx_.linger_cap_ms;
    ctx_.linger.push_back(*this);
    if (out_.empty())
        output_sent();
    else
        ctx_.loop.at_iteration_end(*this);  // written at the end of this iteration
}

void Connection::transition(ConnState next) {
    state_ = next;
    if (next == ConnState::dead) {
        ctx_.stats.output_pending -= out_.size();  // dropped, never to be sent
        EventLoop::cancel(*this);
        ctx_.reap.push_back(*this);
    }
}
