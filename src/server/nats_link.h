// nats_link.h - one client connection to a NATS cluster, on the relay's
// event loop: no thread, no blocking call. It knows the NATS protocol
// (nats_protocol.h) and nothing of the relay; its user (the cluster room)
// subscribes, publishes and is told of messages and of the link going up
// and down.
//
// Connecting. The servers are the configured addresses (nats_url.h,
// resolved at start) and, once a server has answered, the numeric
// addresses the cluster advertises in INFO connect_urls, up to
// kNatsMaxServers in all. One attempt: a non-blocking connect, the
// server's INFO, then CONNECT, a SUB for every live subscription, and a
// PING; the server's PONG means it has processed all of them, and only
// then is the link "connected" (on_connected). The whole attempt has one
// deadline (connect_timeout_ms).
//
// Failing over. When the connection is lost (EOF, reset, an -ERR that
// closes, a protocol error, or max_pings_outstanding PINGs unanswered for
// as many ping intervals) or an attempt fails, the next server in the
// rotation is tried, in the next loop iteration. One pass through the
// rotation goes without delay (the server just lost comes last); after
// that, every attempt waits a backoff that doubles from reconnect_min_ms to
// reconnect_max_ms, with jitter (a random delay between half and all of
// it) so that relays do not come back in step. A connection that dies
// within kStableMs of its handshake does not reset the backoff. Timers are
// checked on the loop's tick (on_tick()), so their resolution is the tick.
//
// Subscriptions. The link keeps the table of live subscriptions (sid ->
// subject, queue) and re-sends all of them on every new connection before
// the handshake's PING: interest is restored before on_connected. Sids are
// never reused, so a message still in flight for an unsubscribed sid is
// dropped (counted), never delivered to the wrong subscription. A
// resubscription larger than the output buffer goes out in pieces as the
// buffer drains.
//
// Bounds.
//  - Output: a ring of max_output bytes for publishes, plus
//    kControlHeadroom that only protocol lines (SUB, UNSUB, PING, PONG)
//    may use. A publish that does not fit is dropped and counted, with one
//    log line when a "NATS is not taking our output" episode starts and one
//    when it ends (kEpisodeQuietMs without a drop); nothing grows without
//    bound. A protocol line that does
//    not fit even in the headroom means the connection is hopeless: it is
//    closed and re-established. Publishes while not connected are dropped
//    and counted (no reconnect buffer: what was in flight during a gap is
//    lost, counted, never duplicated), again one log line per episode.
//  - Input: control lines as nats_protocol.h bounds them (INFO up to 64
//    KiB), and messages of at most max_input_payload header and payload
//    bytes; a larger one that the server may legitimately send (up to its
//    max_payload) is skipped as it streams past, never buffered, and
//    counted; one above max_payload is a protocol error. Reads take at most kReadBudget bytes per loop
//    iteration, then yield to the other handlers.
//
// Credentials go into CONNECT and nowhere else: logs name servers by
// "host:port".
//
// Threading: everything on the loop's thread. Callbacks may publish,
// subscribe, unsubscribe and stop(); they must not destroy the link.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "event_loop.h"
#include "hash.h"
#include "id_table.h"
#include "intrusive_list.h"
#include "nats_protocol.h"
#include "nats_url.h"
#include "ring_buffer.h"

struct NatsLinkOptions {
    std::vector<NatsServerAddress> servers;  // at least one (nats_servers_from_list)
    std::string name;                        // CONNECT name: the relay's node name
    std::string version;                     // CONNECT version
    uint32_t connect_timeout_ms = 2000;      // connect + INFO + CONNECT/PING -> PONG
    uint32_t ping_interval_ms = 2000;
    uint32_t max_pings_outstanding = 2;
    uint32_t reconnect_min_ms = 100;
    uint32_t reconnect_max_ms = 2000;
    uint32_t max_output = 4u << 20;          // bytes of publishes waiting for the socket
    uint32_t max_input_payload = 1u << 20;   // larger messages (headers + payload) are skipped
    bool echo = false;  // false: our publishes do not come back to our own subscriptions
};

struct NatsLinkStats {
    uint64_t published = 0;             // messages queued for NATS
    uint64_t published_bytes = 0;       // their payload and header bytes
    uint64_t dropped_disconnected = 0;  // publishes while not connected
    uint64_t dropped_slow = 0;          // publishes that did not fit the output buffer
    uint64_t dropped_too_large = 0;     // publishes above the server's max_payload
    uint64_t received = 0;              // messages handed to the listener
    uint64_t received_bytes = 0;
    uint64_t received_skipped = 0;      // above max_input_payload, or for no live sid
    uint64_t connects = 0;              // handshakes completed
    uint64_t reconnects = 0;            // of which not the first
    uint64_t disconnects = 0;           // established connections lost
    uint64_t connect_attempts = 0;
    uint64_t connect_failures = 0;      // attempts that did not reach "connected"
    uint64_t stale = 0;                 // connections lost to unanswered PINGs
    uint64_t server_errors = 0;         // -ERR received
    uint64_t protocol_errors = 0;       // server input the parser refused

    uint64_t dropped() const { return dropped_disconnected + dropped_slow + dropped_too_large; }
};

struct NatsSubscriptionTag {};

// One live subscription; owned by the link.
class NatsSubscription : public ListHook<NatsSubscriptionTag> {
   public:
    std::string_view key() const { return std::string_view(sid_text_, sid_len_); }

   private:
    friend class NatsLink;
    uint64_t sid_ = 0;
    uint64_t sent_epoch_ = 0;  // the connection it was last sent on
    char sid_text_[20];
    uint8_t sid_len_ = 0;
    std::string_view subject_;
    std::string_view queue_;
    char* text_ = nullptr;  // subject then queue, owned (nothrow allocation)
};

class NatsLink final : public EventHandler {
   public:
    static constexpr uint32_t kControlHeadroom = 64 * 1024;
    static constexpr size_t kReadBudget = 256 * 1024;
    static constexpr uint64_t kStableMs = 1000;
    // An episode of dropped publishes ends after this long without a drop.
    static constexpr uint64_t kEpisodeQuietMs = 1000;

    class Listener {
       public:
        virtual ~Listener() = default;
        // The handshake is complete: every live subscription is registered
        // with this server (and reaches the rest of the cluster as its
        // routes propagate it). Publishes are accepted from now on.
        virtual void on_nats_connected(const NatsInfo& server) = 0;
        // An established connection is lost; publishes are dropped until
        // on_nats_connected. Not called for failed attempts, nor by stop().
        virtual void on_nats_disconnected() = 0;
        // A message for a live subscription; the pointers are valid during
        // the call only.
        virtual void on_nats_message(const NatsMessage& msg) = 0;
    };

    NatsLink(EventLoop& loop, Listener& listener, NatsLinkOptions options);
    ~NatsLink() override;
    NatsLink(const NatsLink&) = delete;
    NatsLink& operator=(const NatsLink&) = delete;

    // Starts connecting (the first attempt at once). False when there is
    // no server or the link has already started.
    bool start();
    // Closes the connection, withdraws every loop request; no callback
    // after it. Subscriptions stay in the table; start() again re-sends
    // them.
    void stop();
    // Drives the timers: the attempt deadline, the backoff, the PINGs.
    // Call from the loop's tick.
    void on_tick(uint64_t now_ms);

    // Adds a subscription (wildcards allowed; queue empty for none) and
    // returns its sid (> 0), sent at once when connected or with the next
    // handshake. 0 when subject or queue is invalid or memory is short.
    uint64_t subscribe(std::string_view subject, std::string_view queue = {});
    // Removes it (UNSUB when the server knows it). False for an unknown sid.
    bool unsubscribe(uint64_t sid);

    // Queues a message (reply empty for none). True when queued; false when
    // dropped (not connected, output full, above max_payload: counted) or
    // invalid (a bad subject: not counted).
    bool publish(std::string_view subject, std::string_view reply, const void* payload, size_t len);
    // The same with a header block (nats_encode_headers()).
    bool publish_with_headers(std::string_view subject, std::string_view reply, const void* headers,
                              size_t headers_len, const void* payload, size_t len);
    // A message whose payload is prefix then payload, copied once, into the
    // output buffer (a small header before data the caller does not own).
    bool publish_parts(std::string_view subject, const void* prefix, size_t prefix_len,
                       const void* payload, size_t len);

    bool connected() const { return state_ == State::connected; }
    const NatsLinkStats& stats() const { return stats_; }
    // Bytes queued and not yet taken by the kernel.
    uint32_t output_pending() const { return out_.size(); }
    // In an episode of publishes dropped because the output is full.
    bool dropping_publishes() const { return output_full_; }
    size_t subscription_count() const { return subs_.size(); }
    // The rotation, configured servers first then discovered ones.
    const std::vector<NatsServerAddress>& servers() const { return servers_; }
    // The server connected to, or being tried, or tried last.
    const std::string& server_label() const { return servers_[current_].label; }
    // What the backoff would wait before the next attempt if one failed now.
    uint64_t backoff_ms() const { return backoff_for(failures_in_row_ + 1); }
    // The delay chosen, jitter included, before the attempt now waiting
    // (0: in the next loop iteration).
    uint64_t last_delay_ms() const { return last_delay_ms_; }
    // Attempts failed (or connections lost within kStableMs) in a row.
    uint64_t failures_in_row() const { return failures_in_row_; }

    // EventHandler
    void on_events(uint32_t events) override;
    void on_resume() override;
    void on_iteration_end() override;

   private:
    enum class State : uint8_t {
        stopped,      // not started, or stop()ped
        waiting,      // for the next attempt (backoff)
        connecting,   // TCP connect in progress
        handshaking,  // TCP up: INFO, CONNECT, SUBs, PING -> PONG
        connected,
    };

    void start_attempt();
    void fail(const char* why);
    void close_socket();
    void schedule_attempt();
    // The delay before the next attempt after `failures` in a row, before
    // jitter.
    uint64_t backoff_for(uint64_t failures) const;
    uint64_t next_random();

    void read_input();
    void process_input();
    void handle(const NatsOp& op);
    void skip_oversize(size_t bytes);  // counts, and logs once per connection
    void handle_info();
    void handshake_done();
    void learn_servers(const NatsInfo& info);

    bool queue_control(const void* data, size_t len);
    void send_pending_subscriptions();
    // headers: an HPUB block, or nullptr for PUB; the payload is prefix
    // then payload (either may be empty).
    bool publish_message(std::string_view subject, std::string_view reply, const void* headers,
                         size_t headers_len, const void* prefix, size_t prefix_len,
                         const void* payload, size_t len);
    void flush();
    bool grow_input(size_t needed);
    // The most the input buffer may hold: an INFO line, or a message up to
    // min(max_input_payload, the server's max_payload).
    size_t input_limit() const;

    EventLoop& loop_;
    Listener& listener_;
    NatsLinkOptions options_;
    std::vector<NatsServerAddress> servers_;
    size_t current_ = 0;

    State state_ = State::stopped;
    int fd_ = -1;
    uint64_t epoch_ = 0;       // connections made; a subscription's sent_epoch_ compares to it
    uint64_t generation_ = 0;  // sockets closed: a callback that closed ours is noticed

    NatsParser parser_;
    uint8_t* in_ = nullptr;
    size_t in_len_ = 0;
    size_t in_cap_ = 0;
    size_t in_max_ = 0;
    size_t skip_remaining_ = 0;  // bytes of an oversize message still to discard
    RingLimits out_limits_;  // before out_, which refers to it
    RingBuffer out_;

    HashKey hash_key_;
    IdTable<NatsSubscription> subs_;
    IntrusiveList<NatsSubscription, NatsSubscriptionTag> sub_order_;  // by sid
    NatsSubscription* resend_next_ = nullptr;  // first not yet sent on this connection
    uint64_t next_sid_ = 1;

    bool info_seen_ = false;
    bool handshake_ping_sent_ = false;
    bool ever_connected_ = false;
    uint64_t attempt_deadline_ms_ = 0;
    uint64_t next_attempt_ms_ = 0;
    uint64_t next_ping_ms_ = 0;
    uint32_t pings_outstanding_ = 0;
    uint64_t connected_at_ms_ = 0;
    uint64_t failures_in_row_ = 0;
    uint64_t last_delay_ms_ = 0;
    uint64_t random_state_ = 0;

    // Episodes, each logged once at its start and once at its end.
    bool unreachable_logged_ = false;
    uint64_t dropped_in_gap_ = 0;       // while disconnected
    bool output_full_ = false;
    uint64_t dropped_while_full_ = 0;
    uint64_t last_slow_drop_ms_ = 0;
    bool oversize_logged_ = false;      // per connection
    const char* pending_failure_ = nullptr;  // fail() at the end of the iteration

    NatsLinkStats stats_;
};
