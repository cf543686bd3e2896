// nats_link.cpp - see nats_link.h.
#include "nats_link.h"

#include <sys/epoll.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <new>

#include "io.h"
#include "io.h"
#include "log.h"

namespace {

constexpr size_t kInitialInput = 4096;
// Output and input buffers larger than this are freed when a connection
// ends; smaller ones are kept for the next.
constexpr size_t kKeepInput = 64 * 1024;
// The smallest max_output that still holds a resubscription line.
constexpr uint32_t kMinOutput = 2 * kNatsMaxControlLine;

HashKey random_key() {
    HashKey key;
    if (!hash_key_from_os(&key)) {
        // Only the spread of reconnect times and the sid table's layout
        // depend on it; a fixed key is a weaker, not a wrong, fallback.
        key.k0 = static_cast<uint64_t>(EventLoop::monotonic_ms()) * 0x9E3779B97F4A7C15ull;
        key.k1 = ~key.k0;
    }
    return key;
}

NatsLinkOptions checked(NatsLinkOptions o) {
    if (o.servers.size() > kNatsMaxServers) o.servers.resize(kNatsMaxServers);
    if (o.max_output < kMinOutput) o.max_output = kMinOutput;
    if (o.max_output > RingBuffer::kMaxCapacity - NatsLink::kControlHeadroom)
        o.max_output = RingBuffer::kMaxCapacity - NatsLink::kControlHeadroom;
    if (o.reconnect_min_ms == 0) o.reconnect_min_ms = 1;  // never a busy loop of attempts
    if (o.reconnect_max_ms < o.reconnect_min_ms) o.reconnect_max_ms = o.reconnect_min_ms;
    if (o.max_pings_outstanding == 0) o.max_pings_outstanding = 1;
    if (o.ping_interval_ms == 0) o.ping_interval_ms = 1;
    return o;
}

// Decimal digits of v into out (at least 20 bytes); returns the count.
uint8_t format_sid(uint64_t v, char* out) {
    char digits[20];
    uint8_t n = 0;
    do {
        digits[n++] = static_cast<char>('0' + v % 10);
        v /= 10;
    } while (v != 0);
    for (uint8_t i = 0; i < n; ++i) out[i] = digits[n - 1 - i];
    return n;
}

void destroy(NatsSubscription* s, char* text) {
    delete[] text;
    delete s;
}

}  // namespace

NatsLink::NatsLink(EventLoop& loop, Listener& listener, NatsLinkOptions options)
    : loop_(loop),
      listener_(listener),
      options_(checked(std::move(options))),
      out_limits_(options_.max_output + kControlHeadroom, 4096),
      out_(out_limits_),
      hash_key_(random_key()),
      subs_(hash_key_) {
    servers_.reserve(kNatsMaxServers);
    servers_ = options_.servers;
    HashKey seed = random_key();
    random_state_ = (seed.k0 ^ seed.k1) | 1;
}

NatsLink::~NatsLink() {
    stop();
    while (NatsSubscription* s = sub_order_.pop_front()) {
        subs_.erase(s->key());
        destroy(s, s->text_);
    }
    std::free(in_);
}

uint64_t NatsLink::next_random() {
    // xorshift64* (Vigna): plenty for spreading reconnect times.
    random_state_ ^= random_state_ >> 12;
    random_state_ ^= random_state_ << 25;
    random_state_ ^= random_state_ >> 27;
    return random_state_ * 0x2545F4914F6CDD1Dull;
}

// ---- life of a connection --------------------------------------------------

bool NatsLink::start() {
    if (state_ != State::stopped || servers_.empty()) return false;
    failures_in_row_ = 0;
    start_attempt();
    return true;
}

void NatsLink::stop() {
    if (state_ == State::stopped) return;
    close_socket();
    state_ = State::stopped;
}

void NatsLink::start_attempt() {
    const NatsServerAddress& server = servers_[current_];
    ++stats_.connect_attempts;
    ++epoch_;
    state_ = State::connecting;
    attempt_deadline_ms_ = loop_.now_ms() + options_.connect_timeout_ms;
    info_seen_ = false;
    handshake_ping_sent_ = false;
    oversize_logged_ = false;
    parser_.reset();
    LOG_DEBUG("nats: connecting to %s", server.label.c_str());
    ConnectResult c =
        io_connect_start(reinterpret_cast<const struct sockaddr*>(&server.addr), server.addr_len);
    if (c.status == IoStatus::error) {
        fail(strerrordesc_np(c.err));
        return;
    }
    fd_ = c.fd;
    // PINGs and small publishes leave at once; batching is ours.
    if (int err = io_set_nodelay(fd_)) LOG_DEBUG("nats: TCP_NODELAY: %s", strerrordesc_np(err));
    if (!loop_.add(fd_, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, this)) {
        int err = errno;
        io_close(fd_);
        fd_ = -1;
        LOG_ERROR("nats: epoll_ctl: %s", strerrordesc_np(err));
        fail("cannot watch the socket");
        return;
    }
    if (c.status == IoStatus::ok) state_ = State::handshaking;
}

// Ends the connection or the attempt, for `why`, and schedules the next.
void NatsLink::fail(const char* why) {
    bool was_connected = state_ == State::connected;
    const std::string& label = servers_[current_].label;
    close_socket();
    if (was_connected) {
        ++stats_.disconnects;
        LOG_WARN("nats: lost %s: %s; trying the next server", label.c_str(), why);
        bool stable = loop_.now_ms() - connected_at_ms_ >= kStableMs;
        failures_in_row_ = stable ? 0 : failures_in_row_ + 1;
    } else {
        ++stats_.connect_failures;
        ++failures_in_row_;
        LOG_DEBUG("nats: cannot connect to %s: %s", label.c_str(), why);
        if (!unreachable_logged_ && failures_in_row_ >= servers_.size()) {
            unreachable_logged_ = true;
            LOG_WARN("nats: no server reachable (%zu tried; %s: %s); retrying with a backoff of up "
                     "to %u ms",
                     servers_.size(), label.c_str(), why, options_.reconnect_max_ms);
        }
    }
    current_ = (current_ + 1) % servers_.size();
    schedule_attempt();
    if (was_connected) listener_.on_nats_disconnected();
}

void NatsLink::close_socket() {
    if (fd_ != -1) {
        loop_.remove(fd_);
        io_close(fd_);
        fd_ = -1;
    }
    ++generation_;
    EventLoop::cancel(*this);
    pending_failure_ = nullptr;
    in_len_ = 0;
    skip_remaining_ = 0;
    if (in_cap_ > kKeepInput) {
        std::free(in_);
        in_ = nullptr;
        in_cap_ = 0;
    }
    out_.consume(out_.size());
    out_.release();
    resend_next_ = nullptr;
    info_seen_ = false;
    handshake_ping_sent_ = false;
    pings_outstanding_ = 0;
    if (output_full_) {
        output_full_ = false;
        LOG_INFO("nats: %llu publishes were dropped while the output was full",
                 static_cast<unsigned long long>(dropped_while_full_));
    }
}

void NatsLink::schedule_attempt() {
    state_ = State::waiting;
    uint64_t delay = backoff_for(failures_in_row_);
    if (delay > 0) delay = delay / 2 + next_random() % (delay / 2 + 1);
    last_delay_ms_ = delay;
    next_attempt_ms_ = loop_.now_ms() + delay;
    if (delay == 0) loop_.defer(*this);  // next iteration; later ones from on_tick
}

uint64_t NatsLink::backoff_for(uint64_t failures) const {
    uint64_t n = servers_.size();
    if (failures < n) return 0;  // one pass through the rotation without waiting
    uint64_t doublings = failures / n - 1;
    if (doublings > 30) doublings = 30;
    uint64_t delay = static_cast<uint64_t>(options_.reconnect_min_ms) << doublings;
    return delay < options_.reconnect_max_ms ? delay : options_.reconnect_max_ms;
}

void NatsLink::on_tick(uint64_t now_ms) {
    // An output-full episode ends after a quiet second: a reader that takes
    // a little and stalls again is one episode, not one per iteration.
    if (output_full_ && now_ms - last_slow_drop_ms_ >= kEpisodeQuietMs) {
        output_full_ = false;
        LOG_INFO("nats: %s takes our output again; %llu publishes were dropped while it was full",
                 servers_[current_].label.c_str(), static_cast<unsigned long long>(dropped_while_full_));
    }
    switch (state_) {
        case State::stopped:
            return;
        case State::waiting:
            if (now_ms >= next_attempt_ms_) start_attempt();
            return;
        case State::connecting:
        case State::handshaking:
            if (now_ms >= attempt_deadline_ms_) fail("timed out");
            return;
        case State::connected:
            if (now_ms < next_ping_ms_) return;
            if (pings_outstanding_ >= options_.max_pings_outstanding) {
                ++stats_.stale;
                fail("no PONG to our PINGs");
                return;
            }
            if (!queue_control(kNatsPing.data(), kNatsPing.size())) {
                fail("output full");
                return;
            }
            ++pings_outstanding_;
            next_ping_ms_ = now_ms + options_.ping_interval_ms;
            return;
    }
}

// ---- events ------------------------------------------------------------------

void NatsLink::on_events(uint32_t events) {
    if (fd_ == -1) return;
    if (state_ == State::connecting) {
        if ((events & (EPOLLOUT | EPOLLERR | EPOLLHUP)) == 0) return;
        int err = io_connect_outcome(fd_);
        if (err != 0) {
            fail(strerrordesc_np(err));
            return;
        }
        state_ = State::handshaking;
    }
    read_input();
    if ((events & EPOLLOUT) != 0) flush();
}

void NatsLink::on_resume() {
    if (state_ == State::waiting) {
        if (loop_.now_ms() >= next_attempt_ms_) start_attempt();
    } else if (state_ == State::handshaking || state_ == State::connected) {
        read_input();
    }
}

void NatsLink::on_iteration_end() {
    if (pending_failure_ != nullptr) {
        fail(pending_failure_);
        return;
    }
    flush();
}

// ---- input -------------------------------------------------------------------

size_t NatsLink::input_limit() const {
    uint64_t payload = parser_.limits().max_payload;
    if (payload > options_.max_input_payload) payload = options_.max_input_payload;
    size_t message = kNatsMaxControlLine + 2 + static_cast<size_t>(payload) + 2;
    size_t info = kNatsMaxInfoLine + 2;
    return message > info ? message : info;
}

bool NatsLink::grow_input(size_t needed) {
    if (needed <= in_cap_) return true;
    if (needed > input_limit()) return false;
    size_t cap = in_cap_ ? in_cap_ : kInitialInput;
    while (cap < needed) cap *= 2;
    if (cap > input_limit()) cap = input_limit();
    auto* grown = static_cast<uint8_t*>(std::realloc(in_, cap));
    if (grown == nullptr) return false;
    in_ = grown;
    in_cap_ = cap;
    return true;
}

void NatsLink::read_input() {
    uint64_t generation = generation_;
    size_t budget = kReadBudget;
    while (budget > 0) {
        if (in_len_ == in_cap_ && !grow_input(in_len_ + 1)) {
            fail("no room for input");
            return;
        }
        size_t room = in_cap_ - in_len_;
        IoResult r = io_read(fd_, in_ + in_len_, room < budget ? room : budget);
        if (r.status == IoStatus::would_block) return;
        if (r.status == IoStatus::eof) {
            fail("closed by the server");
            return;
        }
        if (r.status == IoStatus::error) {
            fail(strerrordesc_np(r.err));
            return;
        }
        in_len_ += r.bytes;
        budget -= r.bytes;
        process_input();
        if (generation != generation_) return;
    }
    loop_.defer(*this);  // a firehose: the rest after the other handlers
}

void NatsLink::process_input() {
    uint64_t generation = generation_;
    size_t off = 0;
    while (off < in_len_) {
        if (skip_remaining_ > 0) {
            size_t n = in_len_ - off < skip_remaining_ ? in_len_ - off : skip_remaining_;
            off += n;
            skip_remaining_ -= n;
            continue;
        }
        NatsOp op;
        NatsParseResult r = parser_.parse(in_ + off, in_len_ - off, &op);
        if (r.status == NatsParseStatus::op) {
            off += r.consumed;
            if (!info_seen_ && op.type != NatsOpType::info) {
                ++stats_.protocol_errors;
                fail("the server did not start with INFO");
                return;
            }
            if ((op.type == NatsOpType::msg || op.type == NatsOpType::hmsg) &&
                op.msg.headers_len + op.msg.payload_len > options_.max_input_payload) {
                skip_oversize(op.msg.headers_len + op.msg.payload_len);  // arrived whole
                continue;
            }
            handle(op);
            if (generation != generation_) return;
            continue;
        }
        if (r.status == NatsParseStatus::error) {
            ++stats_.protocol_errors;
            LOG_WARN("nats: %s sent what is not the NATS protocol (%s)", servers_[current_].label.c_str(),
                     nats_parse_error_name(r.error));
            fail("protocol error");
            return;
        }
        if (r.needed > 0 && r.message_bytes > options_.max_input_payload) {
            // A message the server may send (it is within its max_payload)
            // but larger than we take: skipped as it streams past, never
            // buffered.
            skip_oversize(r.message_bytes);
            parser_.forget_partial();
            skip_remaining_ = r.needed;
            continue;
        }
        if (r.needed > in_cap_ && !grow_input(r.needed)) {
            fail("out of memory for input");
            return;
        }
        break;
    }
    if (off > 0) {
        std::memmove(in_, in_ + off, in_len_ - off);
        in_len_ -= off;
    }
}

void NatsLink::skip_oversize(size_t bytes) {
    ++stats_.received_skipped;
    if (!oversize_logged_) {
        oversize_logged_ = true;
        LOG_WARN("nats: %s sent a message of %zu bytes, above the %u we take; skipped (and any "
                 "more on this connection, counted)",
                 servers_[current_].label.c_str(), bytes, options_.max_input_payload);
    }
}

void NatsLink::handle(const NatsOp& op) {
    switch (op.type) {
        case NatsOpType::info:
            handle_info();
            return;
        case NatsOpType::msg:
        case NatsOpType::hmsg: {
            if (subs_.find(op.msg.sid_text) == nullptr) {
                ++stats_.received_skipped;  // unsubscribed while it was in flight
                return;
            }
            ++stats_.received;
            stats_.received_bytes += op.msg.headers_len + op.msg.payload_len;
            listener_.on_nats_message(op.msg);
            return;
        }
        case NatsOpType::ping:
            if (!queue_control(kNatsPong.data(), kNatsPong.size())) fail("output full");
            return;
        case NatsOpType::pong:
            if (state_ == State::handshaking) {
                if (handshake_ping_sent_) handshake_done();
            } else if (pings_outstanding_ > 0) {
                --pings_outstanding_;
            }
            return;
        case NatsOpType::ok:
            return;
        case NatsOpType::err: {
            ++stats_.server_errors;
            char text[kLogEscapeCap];
            log_escape(op.error_text.data(), op.error_text.size(), text, sizeof text);
            bool closes = nats_error_closes(op.error);
            // An attempt refused again and again (a wrong password) logs
            // once, at the start of the episode.
            if (state_ == State::connected || failures_in_row_ == 0 || !closes)
                LOG_WARN("nats: %s: -ERR '%s'%s", servers_[current_].label.c_str(), text,
                         closes ? "" : " (connection kept)");
            else
                LOG_DEBUG("nats: %s: -ERR '%s'", servers_[current_].label.c_str(), text);
            if (closes) fail(nats_server_error_name(op.error));
            return;
        }
    }
}

void NatsLink::handle_info() {
    const NatsInfo& info = parser_.info();
    learn_servers(info);
    if (info.ldm) LOG_INFO("nats: %s is entering lame duck mode", servers_[current_].label.c_str());
    if (state_ != State::handshaking || info_seen_) return;  // a topology update
    info_seen_ = true;
    if (info.tls_required) {
        fail("the server requires TLS, which the link does not speak");
        return;
    }
    if (!info.headers) {
        fail("the server has no header support (nats-server 2.2 or later is needed)");
        return;
    }
    const NatsCredentials& cred = servers_[current_].credentials;
    NatsConnectOptions o;
    o.name = options_.name.empty() ? nullptr : options_.name.c_str();
    o.version = options_.version.c_str();
    o.echo = options_.echo;
    if (!cred.user.empty()) {
        o.user = cred.user.c_str();
        o.pass = cred.pass.c_str();
    }
    if (!cred.token.empty()) o.auth_token = cred.token.c_str();
    // Every byte of a string may become a 6-byte \u escape.
    size_t cap = 512 + 6 * (options_.name.size() + options_.version.size() + cred.user.size() +
                            cred.pass.size() + cred.token.size());
    std::unique_ptr<char[]> line(new (std::nothrow) char[cap]);
    size_t n = line ? nats_encode_connect(line.get(), cap, o) : 0;
    if (n == 0 || !queue_control(line.get(), n)) {
        fail("cannot queue CONNECT");
        return;
    }
    resend_next_ = sub_order_.front();
    send_pending_subscriptions();
}

void NatsLink::handshake_done() {
    const NatsInfo& info = parser_.info();
    uint64_t now = loop_.now_ms();
    state_ = State::connected;
    ++stats_.connects;
    if (ever_connected_) ++stats_.reconnects;
    ever_connected_ = true;
    connected_at_ms_ = now;
    next_ping_ms_ = now + options_.ping_interval_ms;
    pings_outstanding_ = 0;
    LOG_INFO("nats: connected to %s (%s, nats-server %s; %zu subscriptions sent)",
             servers_[current_].label.c_str(), info.server_name[0] ? info.server_name : info.server_id,
             info.version[0] ? info.version : "?", subs_.size());
    if (unreachable_logged_) {
        unreachable_logged_ = false;
        LOG_INFO("nats: reachable again after %llu failed attempts",
                 static_cast<unsigned long long>(failures_in_row_));
    }
    if (dropped_in_gap_ > 0) {
        LOG_INFO("nats: %llu publishes were dropped while not connected",
                 static_cast<unsigned long long>(dropped_in_gap_));
        dropped_in_gap_ = 0;
    }
    listener_.on_nats_connected(info);
}

void NatsLink::learn_servers(const NatsInfo& info) {
    NatsCredentials cred = servers_[current_].credentials;
    for (size_t i = 0; i < info.connect_url_count; ++i) {
        if (servers_.size() >= kNatsMaxServers) return;
        NatsServerAddress a;
        // A name is skipped: no DNS after start.
        if (!nats_parse_host_port(info.connect_urls[i], &a)) continue;
        bool known = false;
        for (const NatsServerAddress& s : servers_) known = known || nats_same_address(s, a);
        if (known) continue;
        a.credentials = cred;  // the same cluster: the credentials of the server that told us
        a.discovered = true;
        LOG_DEBUG("nats: learned of server %s", a.label.c_str());
        servers_.push_back(std::move(a));
    }
}

// ---- output ------------------------------------------------------------------

bool NatsLink::queue_control(const void* data, size_t len) {
    if (!out_.append(data, len)) return false;
    loop_.at_iteration_end(*this);
    return true;
}

void NatsLink::send_pending_subscriptions() {
    char line[kNatsMaxControlLine + 64];
    while (resend_next_ != nullptr) {
        NatsSubscription* s = resend_next_;
        size_t n = nats_encode_sub(line, sizeof line, s->subject_, s->queue_, s->sid_);
        // The rest when the buffer drains (flush() calls again).
        if (out_.size() + n > options_.max_output || !out_.append(line, n)) break;
        s->sent_epoch_ = epoch_;
        resend_next_ = sub_order_.next(*s);
    }
    loop_.at_iteration_end(*this);
    if (resend_next_ == nullptr && state_ == State::handshaking && !handshake_ping_sent_) {
        if (!queue_control(kNatsPing.data(), kNatsPing.size())) {
            fail("output full");
            return;
        }
        handshake_ping_sent_ = true;
    }
}

void NatsLink::flush() {
    if (fd_ == -1 || state_ == State::connecting) return;
    while (!out_.empty()) {
        struct iovec spans[2];
        int count = out_.read_spans(spans);
        IoResult r = io_writev(fd_, spans, count);
        if (r.status == IoStatus::would_block) break;  // EPOLLOUT resumes it
        if (r.status != IoStatus::ok) {
            fail(r.status == IoStatus::error ? strerrordesc_np(r.err) : "closed");
            return;
        }
        out_.consume(r.bytes);
        if (resend_next_ != nullptr) {
            send_pending_subscriptions();
            if (fd_ == -1) return;
        }
    }
}

bool NatsLink::publish(std::string_view subject, std::string_view reply, const void* payload,
                       size_t len) {
    return publish_message(subject, reply, nullptr, 0, nullptr, 0, payload, len);
}

bool NatsLink::publish_parts(std::string_view subject, const void* prefix, size_t prefix_len,
                             const void* payload, size_t len) {
    return publish_message(subject, {}, nullptr, 0, prefix, prefix_len, payload, len);
}

bool NatsLink::publish_with_headers(std::string_view subject, std::string_view reply,
                                    const void* headers, size_t headers_len, const void* payload,
                                    size_t len) {
    if (headers == nullptr) return false;
    return publish_message(subject, reply, headers, headers_len, nullptr, 0, payload, len);
}

bool NatsLink::publish_message(std::string_view subject, std::string_view reply, const void* headers,
                               size_t headers_len, const void* prefix, size_t prefix_len,
                               const void* payload, size_t len) {
    char line[kNatsMaxControlLine];
    size_t body = prefix_len + len;
    size_t n = headers != nullptr
                   ? nats_encode_hpub(line, sizeof line, subject, reply, headers_len, body)
                   : nats_encode_pub(line, sizeof line, subject, reply, body);
    if (n == 0) return false;  // invalid: the caller's bug, not a drop
    if (state_ != State::connected) {
        ++stats_.dropped_disconnected;
        if (dropped_in_gap_++ == 0)
            LOG_WARN("nats: not connected: publishes are dropped until a server is back");
        return false;
    }
    if (headers_len + body > parser_.limits().max_payload) {
        // The server would close the connection for it (Maximum Payload
        // Violation).
        ++stats_.dropped_too_large;
        LOG_DEBUG("nats: a publish of %zu bytes is above the server's max_payload; dropped",
                  headers_len + body);
        return false;
    }
    size_t total = n + headers_len + body + 2;
    if (out_.size() + total > options_.max_output || !out_.reserve(total)) {
        ++stats_.dropped_slow;
        if (!output_full_) {
            output_full_ = true;
            dropped_while_full_ = 0;
            LOG_WARN("nats: %s is not taking our output (%u bytes pending): publishes are dropped",
                     servers_[current_].label.c_str(), out_.size());
        }
        ++dropped_while_full_;
        last_slow_drop_ms_ = loop_.now_ms();
        return false;
    }
    out_.append(line, n);
    if (headers_len > 0) out_.append(headers, headers_len);
    if (prefix_len > 0) out_.append(prefix, prefix_len);
    if (len > 0) out_.append(payload, len);
    out_.append("\r\n", 2);
    ++stats_.published;
    stats_.published_bytes += headers_len + body;
    loop_.at_iteration_end(*this);
    return true;
}

// ---- subscriptions -----------------------------------------------------------

uint64_t NatsLink::subscribe(std::string_view subject, std::string_view queue) {
    char line[kNatsMaxControlLine + 64];
    uint64_t sid = next_sid_;
    // One check for subject, queue and length: the line must encode.
    size_t n = subject.size() + queue.size() < kNatsMaxControlLine
                   ? nats_encode_sub(line, sizeof line, subject, queue, sid)
                   : 0;
    if (n == 0) return 0;
    auto* s = new (std::nothrow) NatsSubscription;
    char* text = new (std::nothrow) char[subject.size() + queue.size() + 1];
    if (s == nullptr || text == nullptr) {
        destroy(s, text);
        return 0;
    }
    std::memcpy(text, subject.data(), subject.size());
    if (!queue.empty()) std::memcpy(text + subject.size(), queue.data(), queue.size());
    s->text_ = text;
    s->subject_ = std::string_view(text, subject.size());
    s->queue_ = std::string_view(text + subject.size(), queue.size());
    s->sid_ = sid;
    s->sid_len_ = format_sid(sid, s->sid_text_);
    if (!subs_.insert(s)) {
        destroy(s, text);
        return 0;
    }
    ++next_sid_;
    sub_order_.push_back(*s);
    // CONNECT went out on this connection and every earlier subscription
    // with it: this one goes now, or the resend walk starts at it.
    if (fd_ != -1 && info_seen_ && resend_next_ == nullptr) {
        if (queue_control(line, n)) s->sent_epoch_ = epoch_;
        else resend_next_ = s;
    }
    return sid;
}

bool NatsLink::unsubscribe(uint64_t sid) {
    char key[20];
    uint8_t key_len = format_sid(sid, key);
    NatsSubscription* s = subs_.find(std::string_view(key, key_len));
    if (s == nullptr) return false;
    if (resend_next_ == s) resend_next_ = sub_order_.next(*s);
    if (fd_ != -1 && s->sent_epoch_ == epoch_) {
        char line[64];
        size_t n = nats_encode_unsub(line, sizeof line, sid, 0);
        // The server would keep sending for it: a connection that cannot
        // take an UNSUB is started afresh (at the end of the iteration, not
        // under the caller's feet).
        if (!queue_control(line, n)) {
            pending_failure_ = "output full";
            loop_.at_iteration_end(*this);
        }
    }
    subs_.erase(s->key());
    IntrusiveList<NatsSubscription, NatsSubscriptionTag>::unlink(*s);
    destroy(s, s->text_);
    return true;
}
