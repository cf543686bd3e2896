// connection.cpp - see connection.h.
#include "connection.h"

#include <bit>
#include <cstdio>
#include <cstring>
#include <new>

#include "codec.h"
#include "frame_reader.h"
#include "log.h"
#include "protocol.h"
#include "relay.h"

namespace {

constexpr uint64_t kLingerMs = 5000;        // bound on flushing before close
constexpr size_t kReadBudget = 256 * 1024;  // per connection per iteration
constexpr size_t kReadChunk = 16 * 1024;    // free space wanted before a read
// The first allocation of a ring. An output ring starts small: most
// connections are sent only short replies and events, and every
// connection that is sent something in one iteration holds its ring until
// the iteration's end (256 connections answered at once held 1 MiB of
// 4 KiB rings, which the heap kept once freed: 28 bytes per connection of
// an idle server of 19,000, measured). Rings remember the size they grew
// to (RingBuffer::regrow_capacity_), so a busy subscriber does not pay the
// doubling again.
constexpr uint32_t kInitialInputRing = 4096;
constexpr uint32_t kInitialOutputRing = 512;
// Pending output growth within one iteration after which it is written at
// once rather than at the end of the iteration.
constexpr uint32_t kWriteThreshold = 64 * 1024;
// Room kept under --max-output for the BYE that may follow any frame, so
// that closing never has to grow the ring past the cap.
constexpr uint32_t kByeRoom = P2P_FRAME_HEADER_SIZE + P2P_BYE_MAX;
static_assert(kByeRoom <= UINT16_MAX, "Connection::bye_len_ holds a BYE's length");
// Room under --max-output that deliveries a session may drop leave to its
// replies and events, which it may not.
constexpr uint32_t kControlRoom = 64 * 1024;

// log2 of a power of two.
int size_class(uint32_t capacity) { return std::countr_zero(capacity); }

template <class T>
void add_saturating(T& counter, uint64_t n) {
    constexpr T kMax = static_cast<T>(~T{0});
    counter = n >= static_cast<uint64_t>(kMax - counter) ? kMax : static_cast<T>(counter + n);
}

}  // namespace

// The drops of one episode from the publishers named in the GAP events to
// come; allocated when dropping begins, freed when the GAPs are queued.
struct GapTable {
    struct Entry {
        uint64_t bytes;
        uint32_t frames;
        uint8_t id_len;
        char id[P2P_ID_MAX];
    };
    uint32_t named = 0;
    Entry entries[P2P_GAP_NAMED_MAX];
};

ConnectionContext::ConnectionContext(EventLoop& l, Relay& r, MemoryBudget* b,
                                     const ConnectionLimits& lim)
    : loop(l),
      relay(r),
      budget(b),
      limits(lim),
      input_rings(lim.in_ring_max, kInitialInputRing, b),
      output_rings(lim.out_ring_max, kInitialOutputRing, b) {}

size_t connection_scratch_size(uint32_t max_frame) {
    return max_frame > kReadChunk ? max_frame : kReadChunk;
}

Connection::Connection(ConnectionContext& ctx, int fd, const PeerAddress& peer, uint64_t id)
    : ctx_(ctx),
      in_(ctx.input_rings),
      out_(ctx.output_rings),
      next_write_at_(kWriteThreshold),
      fd_(fd),
      peer_(peer) {
    session_id = id;
    timer_ms_ = ms32(ctx.loop.now_ms());
    ctx.idle.push_back(*this);
}

Connection::~Connection() { free_gap_table(); }

bool Connection::address(SessionAddress* out) const {
    if (peer_.family != AF_INET && peer_.family != AF_INET6) return false;
    out->len = peer_.family == AF_INET ? 4 : 16;
    std::memcpy(out->bytes, peer_.bytes, out->len);
    out->port = peer_.port;
    return true;
}

const char* Connection::peer() const {
    static char buffers[4][64];
    static unsigned next = 0;
    char* text = buffers[next++ % 4];
    io_format_peer(peer_, text, sizeof buffers[0]);
    return text;
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
    if (state_ == ConnState::open && write_error_ != 0) {
        log_io_error("write", write_error_);
        close(CloseReason::io_error);
        return;
    }
    if (state_ == ConnState::open && cut_off_) {
        if (cut_reason_ == CloseReason::slow_consumer)
            LOG_WARN("%s: slow consumer: output would exceed %u bytes; disconnecting", label(),
                     ctx_.limits.max_output);
        close(cut_reason_);
    }
    next_write_at_ = out_.size() + kWriteThreshold;
    if (state_ != ConnState::dead && !out_.empty()) flush();
}

// ---- reading -------------------------------------------------------------------

void Connection::read_input() {
    size_t budget = kReadBudget;
    size_t frames = 0;
    reading_ = true;
    while (state_ == ConnState::open) {
        size_t room = in_.max_bytes() - in_.size();
        if (!reserve_input(room < kReadChunk ? room : kReadChunk)) {
            // Not even by evicting larger buffers: refused at the memory
            // limit (a ring holds a whole frame by construction).
            LOG_WARN("%s: no memory for input at the memory limit; disconnecting", label());
            close(CloseReason::memory_limit);
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
        timer_ms_ = ms32(ctx_.loop.now_ms());
        ctx_.idle.push_back(*this);
    }
    if (in_.empty()) {
        in_.release();
        IntrusiveList<Connection, PartialFrameTag>::unlink(*this);
    } else if (frames != 0 || !IntrusiveList<Connection, PartialFrameTag>::linked(*this)) {
        // A frame has begun since the last one completed: its clock starts.
        partial_since_ms_ = ms32(ctx_.loop.now_ms());
        ctx_.partial.push_back(*this);
    }
}

// Room for n more input bytes, evicting larger output buffers at the
// memory limit if need be.
bool Connection::reserve_input(size_t n) {
    if (n == 0) return false;  // cannot happen: in_ring_max holds a whole frame
    while (!in_.reserve(n)) {
        if (!evict_largest(ctx_, this, -1)) return false;
    }
    return true;
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
        if (frame.length != 0) {
            if (ctx_.observer != nullptr)
                ctx_.observer->before_frame(*this, frame.payload, frame.length);
            ctx_.relay.on_frame(*this, frame.payload, frame.length);
            if (ctx_.observer != nullptr)
                ctx_.observer->after_frame(*this, frame.payload, frame.length);
        }
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
        struct iovec span = {ctx_.discard, sizeof ctx_.discard};
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
    IntrusiveList<Connection, PartialFrameTag>::unlink(*this);
    if (reading_) return;  // read_input does it once the relay returns
    in_.consume(in_.size());
    in_.release();
}

// ---- output --------------------------------------------------------------------

void Connection::enqueue(const uint8_t* head, size_t head_len, const uint8_t* data,
                         size_t data_len) {
    queue_frame(head, head_len, data, data_len, std::string_view(), false);
}

void Connection::enqueue_delivery(std::string_view from, const uint8_t* head, size_t head_len,
                                  const uint8_t* data, size_t data_len) {
    queue_frame(head, head_len, data, data_len, from, true);
}

bool Connection::drops_deliveries() const {
    return drop_deliveries && version >= P2P_VERSION_2 && !ended;
}

// Under the cap, keeping room for a BYE, and, for deliveries that may be
// dropped, room for the replies and events that may not (an eighth of the
// cap, at most 64 KiB). An empty ring takes any frame (the options make
// --max-output hold the largest).
bool Connection::fits_under_cap(size_t total, bool droppable) const {
    uint32_t cap = ctx_.limits.max_output > kByeRoom ? ctx_.limits.max_output - kByeRoom : 0;
    if (droppable) cap -= cap / 8 < kControlRoom ? cap / 8 : kControlRoom;
    return out_.empty() || out_.size() + total <= cap;
}

void Connection::queue_frame(const uint8_t* head, size_t head_len, const uint8_t* data,
                             size_t data_len, std::string_view from, bool delivery) {
    if (state_ != ConnState::open || write_error_ != 0) return;
    // A session being cut off gets nothing but its BYE (sent once ended).
    if (cut_off_ && !ended) return;
    bool may_drop = delivery && drops_deliveries();
    if (may_drop && dropping_ && out_.empty()) emit_gap();  // caught up meanwhile
    if (may_drop && dropping_) {
        count_drop(from, data_len);
        return;
    }
    size_t total = P2P_FRAME_HEADER_SIZE + head_len + data_len;
    if (!ended && !fits_under_cap(total, may_drop)) {
        // The cap counts what the kernel has not taken: give it the chance.
        write_now();
        if (write_error_ != 0) return;
        if (!fits_under_cap(total, may_drop)) {
            if (may_drop) {
                count_drop(from, data_len);
                return;
            }
            cut_off(CloseReason::slow_consumer);
            return;
        }
    }
    if (total > out_.free_space() && !reserve_output(total)) {
        if (may_drop) {
            count_drop(from, data_len);
            return;
        }
        // Nothing larger to evict: this one is among the largest itself.
        if (!ended) evict();
        return;
    }
    append_frame(head, head_len, data, data_len);
    if (ended) bye_len_ = static_cast<uint16_t>(total);  // the last frame: the BYE (kByeRoom at most)
    ctx_.loop.at_iteration_end(*this);
    if (out_.size() >= next_write_at_) write_now();
}

// Room for n more output bytes, evicting larger output buffers at the
// memory limit if need be (never this one's own, nor smaller ones).
bool Connection::reserve_output(size_t n) {
    if (n <= out_.free_space()) return true;  // no growth: the usual case
    for (;;) {
        bool ok = out_.reserve(n);
        track_output_memory();
        if (ok) return true;
        if (n > out_.max_bytes() - out_.size()) return false;
        if (!evict_largest(ctx_, this, output_class_)) return false;
    }
}

// Appends [length][head][data]; reserve_output() made the room.
void Connection::append_frame(const uint8_t* head, size_t head_len, const uint8_t* data,
                              size_t data_len) {
    size_t total = P2P_FRAME_HEADER_SIZE + head_len + data_len;
    if (uint8_t* p = out_.contiguous_room(total)) {
        // The usual case, the frame fits before the ring's wrap: build it in
        // place, header included (three library calls per delivery were a
        // third of the relay's instructions in fan-out).
        p2p_frame_header_encode(p, static_cast<uint32_t>(head_len + data_len));
        p += P2P_FRAME_HEADER_SIZE;
        for (size_t i = 0; i < head_len; ++i) p[i] = head[i];  // 1 byte in v1, 2 + id in v2
        if (data_len != 0) std::memcpy(p + head_len, data, data_len);
        out_.commit(total);
    } else {
        uint8_t header[P2P_FRAME_HEADER_SIZE];
        p2p_frame_header_encode(header, static_cast<uint32_t>(head_len + data_len));
        const struct iovec parts[3] = {{header, sizeof header},
                                       {const_cast<uint8_t*>(head), head_len},
                                       {const_cast<uint8_t*>(data), data_len}};
        out_.append_parts(parts, data_len != 0 ? 3 : 2);
    }
    ++ctx_.stats.frames_out;
    ctx_.stats.output_pending += total;
}

// A write inside the iteration, from enqueue: never closes (the relay may
// be walking a subscriber list); an error is acted on at the iteration's
// end. The next such write waits for kWriteThreshold more bytes, so a
// consumer whose socket is full costs one failed write per threshold.
void Connection::write_now() {
    ++ctx_.stats.early_writes;
    write_out();
}

// Writes what the kernel takes. False after a write error, which is kept in
// write_error_ for the caller (or the iteration's end) to close on.
bool Connection::write_out() {
    if (write_error_ != 0) return false;
    while (!out_.empty()) {
        struct iovec spans[2];
        int count = out_.read_spans(spans);
        IoResult r = io_writev(fd_, spans, count);
        if (r.status == IoStatus::ok) {
            consume_output(r.bytes);
            ctx_.stats.bytes_out += r.bytes;
            ctx_.stats.output_pending -= r.bytes;
            continue;
        }
        if (r.status == IoStatus::would_block) {  // EPOLLOUT will call us
            next_write_at_ = out_.size() + kWriteThreshold;
            return true;
        }
        write_error_ = static_cast<int16_t>(r.err);  // errno values are small (< 4096)
        ctx_.loop.at_iteration_end(*this);
        return false;
    }
    next_write_at_ = kWriteThreshold;
    output_drained();
    return true;
}

// Consumes written bytes, keeping count of where the oldest frame ends so
// that an eviction can discard whole frames only. When everything was
// written (the usual case) there is nothing to count.
void Connection::consume_output(size_t n) {
    if (n == out_.size()) {
        out_.consume(n);
        front_left_ = 0;
        return;
    }
    while (n != 0) {
        if (front_left_ == 0) {
            uint8_t header[P2P_FRAME_HEADER_SIZE];
            const uint8_t* h = out_.contiguous(0, sizeof header);
            if (h == nullptr) {
                out_.peek(header, 0, sizeof header);
                h = header;
            }
            front_left_ = P2P_FRAME_HEADER_SIZE + p2p_frame_header_decode(h);
        }
        uint32_t step = n < front_left_ ? static_cast<uint32_t>(n) : front_left_;
        out_.consume(step);
        front_left_ -= step;
        n -= step;
    }
}

// All pending output has reached the kernel: a dropping session has caught
// up and is told what it missed; otherwise the ring is given back, and a
// draining connection goes on to close.
void Connection::output_drained() {
    front_left_ = 0;
    if (state_ == ConnState::open && dropping_ && emit_gap()) {
        ctx_.loop.at_iteration_end(*this);  // the GAPs go out at the iteration's end
        return;
    }
    out_.release();
    track_output_memory();
    if (state_ == ConnState::draining) finish_draining();
}

void Connection::flush() {
    if (!write_out()) {
        log_io_error("write", write_error_);
        close(CloseReason::io_error);
    }
}

// A draining connection's output is all sent.
void Connection::finish_draining() {
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
    // may be inside another connection's frame (a takeover).
    ctx_.loop.defer(*this);
}

// Keeps the connection in the bucket of its output storage's size.
void Connection::track_output_memory() {
    // An evicted connection has nothing more to give: no longer a candidate.
    int cls = out_.capacity() == 0 || evicted_ ? -1 : size_class(out_.capacity());
    if (cls == output_class_) return;  // the usual case
    if (cls < 0)
        IntrusiveList<Connection, OutputClassTag>::unlink(*this);
    else
        ctx_.output_class[cls].push_back(*this);
    output_class_ = static_cast<int8_t>(cls);
}

void Connection::cut_off(CloseReason reason) {
    if (cut_off_) return;
    cut_off_ = true;
    cut_reason_ = reason;
    ctx_.loop.at_iteration_end(*this);
}

bool Connection::evict_largest(ConnectionContext& ctx, const Connection* except, int above) {
    for (int cls = kOutputClasses - 1; cls > above; --cls) {
        IntrusiveList<Connection, OutputClassTag>& list = ctx.output_class[cls];
        Connection* victim = list.front();
        if (victim == except) victim = list.next(*victim);
        if (victim == nullptr) continue;
        victim->evict();
        return true;
    }
    return false;
}

// Frees this connection's output at once, keeping only the rest of a frame
// already partly written, so that the peer never sees a frame cut short,
// and a BYE already queued (its last frame). An open connection is closed
// at the iteration's end, with BYE 3; one already closing goes on closing.
void Connection::evict() {
    ++ctx_.stats.evictions;
    evicted_ = true;
    uint64_t used = ctx_.budget != nullptr ? ctx_.budget->used() : 0;
    LOG_WARN("%s: memory limit (%llu bytes in use): evicting %s output (%u bytes pending, %u "
             "allocated)",
             label(), static_cast<unsigned long long>(used),
             state_ == ConnState::open ? "the largest" : "a closing connection's", out_.size(),
             out_.capacity());
    uint8_t bye[kByeRoom];
    uint32_t bye_len = bye_len_ <= out_.size() - front_left_ ? bye_len_ : 0;
    if (bye_len != 0) out_.peek(bye, out_.size() - bye_len, bye_len);
    ctx_.stats.output_pending -= out_.size() - front_left_ - bye_len;  // never to be sent
    out_.truncate(front_left_);
    if (bye_len != 0) out_.append(bye, bye_len);  // room: the ring held more
    out_.shrink_to_fit(state_ == ConnState::open ? kByeRoom : 0);
    track_output_memory();
    free_gap_table();
    if (state_ == ConnState::open)
        cut_off(CloseReason::evicted);
    else if (out_.empty())
        output_drained();
}

// ---- the drop policy -------------------------------------------------------------

void Connection::count_drop(std::string_view from, size_t data_len) {
    ++ctx_.stats.dropped_deliveries;
    if (!dropping_) {
        dropping_ = true;
        LOG_INFO("%s: output over %u bytes: dropping deliveries until it catches up", label(),
                 ctx_.limits.max_output);
    }
    if (gap_ == nullptr && budget_charge(ctx_.budget, sizeof(GapTable))) {
        gap_ = new (std::nothrow) GapTable;
        if (gap_ == nullptr) budget_release(ctx_.budget, sizeof(GapTable));
    }
    GapTable::Entry* entry = nullptr;
    if (gap_ != nullptr) {
        for (uint32_t i = 0; i < gap_->named && entry == nullptr; ++i) {
            GapTable::Entry& e = gap_->entries[i];
            if (std::string_view(e.id, e.id_len) == from) entry = &e;
        }
        if (entry == nullptr && gap_->named < P2P_GAP_NAMED_MAX && !from.empty() &&
            from.size() <= P2P_ID_MAX) {
            entry = &gap_->entries[gap_->named++];
            entry->bytes = 0;
            entry->frames = 0;
            entry->id_len = static_cast<uint8_t>(from.size());
            from.copy(entry->id, from.size());
        }
    }
    if (entry != nullptr) {
        add_saturating(entry->frames, 1);
        add_saturating(entry->bytes, data_len);
    } else {
        add_saturating(gap_other_frames_, 1);
        add_saturating(gap_other_bytes_, data_len);
    }
}

// Queues the GAP events of the episode (all or none) and ends it. False
// when they cannot be queued (the memory limit): still dropping, and tried
// again when the output next drains or the next delivery comes.
bool Connection::emit_gap() {
    uint32_t named = gap_ != nullptr ? gap_->named : 0;
    size_t total = 0;
    for (uint32_t i = 0; i < named; ++i)
        total += P2P_FRAME_HEADER_SIZE + P2P_GAP_FIXED + gap_->entries[i].id_len;
    if (gap_other_frames_ != 0) total += P2P_FRAME_HEADER_SIZE + P2P_GAP_FIXED;
    if (total != 0 && !reserve_output(total)) return false;
    uint8_t frame[P2P_GAP_MAX];
    uint64_t frames = gap_other_frames_;
    for (uint32_t i = 0; i < named; ++i) {
        const GapTable::Entry& e = gap_->entries[i];
        append_frame(frame,
                     p2p_encode_gap(frame, reinterpret_cast<const uint8_t*>(e.id), e.id_len,
                                    e.frames, e.bytes),
                     nullptr, 0);
        frames += e.frames;
    }
    if (gap_other_frames_ != 0)
        append_frame(frame, p2p_encode_gap(frame, nullptr, 0, gap_other_frames_, gap_other_bytes_),
                     nullptr, 0);
    ctx_.stats.gap_events += named + (gap_other_frames_ != 0 ? 1 : 0);
    LOG_INFO("%s: caught up after %llu deliveries were dropped", label(),
             static_cast<unsigned long long>(frames));
    free_gap_table();
    gap_other_frames_ = 0;
    gap_other_bytes_ = 0;
    dropping_ = false;
    return true;
}

void Connection::free_gap_table() {
    if (gap_ == nullptr) return;
    delete gap_;
    gap_ = nullptr;
    budget_release(ctx_.budget, sizeof(GapTable));
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
        LOG_EVENT(LogLevel::info, log_event("closed", {}, info.label), "%s closed: %s", label(),
                  info.name);
    else
        LOG_EVENT(LogLevel::info, log_event("closed", {}, info.label),
                  "%s closing: %s (%u bytes of output pending)", label(), info.name, out_.size());
    // The relay releases the id at once and queues a BYE for v2 peers, while
    // the connection is still open for output.
    ctx_.relay.end_session(*this, reason);
    drop_input();
    free_gap_table();
    dropping_ = false;
    if (!info.flush || write_error_ != 0) {
        transition(ConnState::dead);
        return;
    }
    transition(ConnState::draining);
    uint64_t deadline = ctx_.loop.now_ms() + kLingerMs;
    timer_ms_ = ms32(deadline < ctx_.linger_cap_ms ? deadline : ctx_.linger_cap_ms);
    ctx_.linger.push_back(*this);
    if (out_.empty())
        output_drained();
    else
        ctx_.loop.at_iteration_end(*this);  // written at the end of this iteration
}

void Connection::transition(ConnState next) {
    state_ = next;
    if (next != ConnState::open) IntrusiveList<Connection, PartialFrameTag>::unlink(*this);
    if (next == ConnState::dead) {
        ctx_.stats.output_pending -= out_.size();  // dropped, never to be sent
        EventLoop::cancel(*this);
        ctx_.reap.push_back(*this);
        // Nothing more will be written: the output's memory goes back now.
        if (!out_.empty())
            LOG_DEBUG("%s: %u bytes of output dropped at close", label(), out_.size());
        out_.truncate(0);
        out_.release();
        track_output_memory();
        front_left_ = 0;
    }
}
