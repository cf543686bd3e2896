// cluster.h - the cluster room: makes this relay one of several that
// behave, to every client, as one server, over a NATS cluster. It sits
// between the relay (which it serves through ClusterHooks and calls
// through the relay's "from the other relays" methods) and one NatsLink
// (nats_link.h), and keeps the replicated view of who holds which id
// (cluster_view.h). The wire is cluster_wire.h; the design, with every
// subject and message, is doc/cluster.md.
//
// In short:
//  - Ownership is replicated, never asked for: a REGISTER publishes a
//    claim (sp.own.<id>), an UNREGISTER or a close its release; every
//    relay applies them to its view, and answers CHECK_ALIVE, SUBSCRIBE,
//    SEND_TO's status and PRESENCE from it at once.
//  - Data goes where there is interest: a relay subscribes sp.d.<id> while
//    it has a local subscriber of <id>, and every SEND of a local holder is
//    published there (NATS routes it only to relays that subscribed).
//    SENDs of one device that come in a row (a burst read from its socket)
//    go as one NATS message of up to kBatchBytes, published at the end of
//    the loop iteration like every other output, and before any other
//    message of ours so that nothing overtakes them: NATS's cost is per
//    message, and this is what makes a relay-to-relay hop cheaper than a
//    message (doc/cluster.md, "Throughput").
//    SEND_TO goes to the holder's relay, sp.to.<node>.<id>.
//  - Every relay publishes a heartbeat every tick (250 ms); one not
//    heard for kSilentMs is dead and its devices offline everywhere. A
//    heartbeat carries a digest of its relay's holdings, so that a view
//    that drifted (a message lost) asks for a snapshot and is repaired.
//  - On every (re)connection to NATS the relay publishes a snapshot of its
//    holdings and asks every relay for theirs (answered to its inbox).
//  - Without NATS for kLinkGraceMs, the relay drops what it knew of the
//    others (their devices go offline to its clients) and relays among its
//    own clients until NATS is back; it logs the episode once.
//
// Threading: the loop's thread only. Timers run from on_tick() (the
// server's 250 ms tick).
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "cluster_hooks.h"
#include "cluster_view.h"
#include "cluster_wire.h"
#include "event_loop.h"
#include "id_table.h"
#include "memory_budget.h"
#include "nats_link.h"

class Relay;

struct ClusterOptions {
    std::vector<NatsServerAddress> servers;  // resolved (nats_servers_from_list)
    std::string node_name;                   // cluster_node_name_valid()
    std::string version;                     // sent in CONNECT
    size_t max_entries = 10000000;           // ids in the view, all relays together
};

struct ClusterStats {
    uint64_t data_out = 0;          // SENDs published for other relays (batched)
    uint64_t data_in = 0;           // data from other relays delivered here
    uint64_t data_unfollowed = 0;   // data for an id nobody here follows any more
    uint64_t send_to_out = 0;
    uint64_t send_to_in = 0;        // delivered here
    uint64_t send_to_not_here = 0;  // the target had moved or gone
    uint64_t send_to_refused = 0;   // PEERS, or a v1 target not subscribed to the sender
    uint64_t direct_out = 0;        // direct-path steps published (relay_direct.cpp)
    uint64_t direct_in = 0;         // taken here (forwarded to a device, or a RESULT counted)
    uint64_t direct_not_here = 0;   // no such device, connection or attempt here (any more)
    uint64_t direct_refused = 0;    // PEERS, a v1 target, or the sender's own id
    uint64_t claims_out = 0;        // claims published (reasserted ones included)
    uint64_t releases_out = 0;
    uint64_t claims_in = 0;         // claims and releases received
    uint64_t lost_here = 0;         // local holders closed by another relay's claim
    uint64_t syncs_asked = 0;       // snapshot requests published
    uint64_t syncs_served = 0;      // snapshots published (ours, to one relay or all)
    uint64_t syncs_refused = 0;     // requests beyond kMaxJobs
    uint64_t bad_messages = 0;      // on our subjects, not our wire format
    uint64_t interest_failed = 0;   // sp.d subscriptions that could not be made
    uint64_t episodes_alone = 0;    // times the link was down past kLinkGraceMs
};

class Cluster final : public ClusterHooks,
                      public NatsLink::Listener,
                      public ClusterViewListener,
                      public EventHandler {
   public:
    // A heartbeat goes out on every tick (the server's, 250 ms).
    static constexpr uint64_t kSilentMs = 2000;
    static constexpr uint64_t kLinkGraceMs = 2000;
    static constexpr size_t kSnapshotBatchBytes = 32 * 1024;
    // Snapshot batches are queued only while the link has less than this
    // waiting, so that a large snapshot never crowds data out.
    static constexpr uint32_t kSnapshotPumpBelow = 512 * 1024;
    static constexpr int kMaxJobs = ClusterView::kMaxCursors;
    // Data bytes in one batch of SENDs.
    static constexpr size_t kBatchBytes = 64 * 1024;
    // What the link buffers for NATS: SENDs of every local device together
    // (NATS's own buffer for a client is 64 MiB). Allocated as used.
    static constexpr uint32_t kLinkOutputBytes = 32u << 20;

    // relay and loop outlive the cluster; budget (may be null) is charged
    // for the view and the interest table.
    Cluster(EventLoop& loop, Relay& relay, ClusterOptions options, MemoryBudget* budget);
    ~Cluster() override;
    Cluster(const Cluster&) = delete;
    Cluster& operator=(const Cluster&) = delete;

    // Subscribes the cluster's subjects and starts connecting. False when
    // the subscriptions cannot be made (no memory) or the link will not
    // start.
    bool start();
    // Heartbeats, silent relays, the grace without NATS, snapshots.
    void on_tick(uint64_t now_ms);
    // The server is shutting down: tells the others to drop our devices at
    // once (instead of when our heartbeats stop), and publishes nothing
    // more.
    void leave();

    const ClusterStats& stats() const { return stats_; }
    const ClusterViewStats& view_stats() const { return view_.stats(); }
    const NatsLinkStats& link_stats() const { return link_.stats(); }
    bool link_up() const { return link_.connected(); }
    uint32_t link_output_pending() const { return link_.output_pending(); }
    size_t nodes_alive() const { return view_.alive_nodes(); }
    size_t remote_devices() const { return view_.remote_entries(); }
    size_t interest_count() const { return interest_.size(); }
    uint64_t memory() const { return view_.memory() + interest_bytes_ + interest_.memory(); }
    const std::string& node_name() const { return options_.node_name; }
    uint64_t incarnation() const { return incarnation_; }
    bool check_invariants(char* why, size_t cap) const { return view_.check_invariants(why, cap); }

    // ClusterHooks (cluster_hooks.h)
    bool held_elsewhere(std::string_view id) const override { return view_.held_elsewhere(id); }
    uint64_t holder_relay(std::string_view id) const override;
    void claimed(std::string_view id, bool authenticated) override;
    void released(std::string_view id) override;
    void sent(std::string_view from, const uint8_t* data, size_t len) override;
    void sent_to(std::string_view from, std::string_view target, const uint8_t* data,
                 size_t len) override;
    void sent_direct(std::string_view target, const DirectHop& hop, const uint8_t* frame,
                     size_t len) override;
    void first_follower(std::string_view id) override;
    void last_follower_gone(std::string_view id) override;

    // NatsLink::Listener
    void on_nats_connected(const NatsInfo& server) override;
    void on_nats_disconnected() override;
    void on_nats_message(const NatsMessage& msg) override;

    // ClusterViewListener
    void holder_changed(std::string_view id, HolderChange change) override;
    void reassert(const ViewEntry& entry) override;
    bool claim_allowed(std::string_view id, bool authenticated) override;

    // EventHandler: snapshot batches, in the next iteration while the link
    // takes them; the batch of SENDs, at the end of the iteration.
    void on_events(uint32_t) override {}
    void on_resume() override { pump_snapshots(); }
    void on_iteration_end() override { flush_batch(); }

   private:
    // A subscription to sp.d.<id> while the id has local subscribers.
    struct Interest {
        uint64_t sid = 0;
        uint8_t id_len = 0;
        std::string_view key() const {
            return std::string_view(reinterpret_cast<const char*>(this + 1), id_len);
        }
    };
    // Our holdings, being published as a snapshot to `reply`.
    struct SnapshotJob {
        bool used = false;
        int cursor = -1;
        uint64_t order = 0;  // jobs go out one after the other, oldest first
        uint64_t snapshot_id = 0;
        uint32_t batch = 0;
        size_t reply_len = 0;
        char reply[kNatsMaxControlLine / 4] = {};
    };

    void free_interest(Interest* interest);
    uint64_t wall_ms() const;
    // Publishes the batch of SENDs being gathered, if any.
    void flush_batch();
    // The node a control message is from, or nullptr (ignored, counted).
    ClusterNode* heard_from(const ClusterControl& c);
    void on_data(const NatsMessage& msg);
    // Publishes head then data to sp.to.<node>.<target> for the relay that
    // holds target, after the batch of SENDs; false when none does or the
    // link dropped it.
    bool publish_to_holder(std::string_view target, const uint8_t* head, size_t head_len,
                           const uint8_t* data, size_t len);
    // sp.to.<node>.<id>: a SEND_TO, or a direct-path step.
    void on_to(const NatsMessage& msg);
    void on_send_to(const NatsMessage& msg, std::string_view target);
    void on_direct(const NatsMessage& msg, std::string_view target);
    void on_ownership(const NatsMessage& msg);
    void on_heartbeat(const NatsMessage& msg);
    void on_snapshot(const NatsMessage& msg);
    void on_sync_request(const NatsMessage& msg);
    void bad_message(const NatsMessage& msg, const char* why);

    bool publish_control(std::string_view subject, ClusterKind kind, uint8_t flags,
                         uint64_t timestamp, std::string_view reply = {});
    void publish_claim(std::string_view id, uint64_t timestamp, bool authenticated);
    void publish_heartbeat(bool leaving);
    void ask_sync(std::string_view subject);
    bool add_job(std::string_view reply);
    void drop_jobs();
    void pump_snapshots();
    void go_alone(uint64_t now_ms);

    EventLoop& loop_;
    Relay& relay_;
    ClusterOptions options_;
    uint64_t incarnation_;
    HashKey hash_key_;
    MemoryBudget* budget_;
    NatsLink link_;
    ClusterView view_;
    IdTable<Interest> interest_;
    uint64_t interest_bytes_ = 0;

    // Subscriptions made at start.
    uint64_t sid_own_ = 0, sid_hb_ = 0, sid_snap_ = 0, sid_inbox_ = 0, sid_sync_all_ = 0,
             sid_sync_me_ = 0, sid_to_ = 0;
    std::string subject_hb_, subject_snap_, subject_inbox_, subject_to_prefix_;

    uint64_t data_sequence_ = 0;
    // The batch of SENDs being gathered: one device's, header first.
    std::unique_ptr<uint8_t[]> batch_data_;
    size_t batch_len_ = 0;  // 0: none
    uint32_t batch_count_ = 0;
    char batch_subject_[kClusterSubjectMax];
    size_t batch_subject_len_ = 0;
    uint8_t batch_id_[255];
    size_t batch_id_len_ = 0;
    SnapshotJob jobs_[kMaxJobs];
    uint64_t next_job_order_ = 1;
    uint64_t next_snapshot_id_ = 1;
    std::unique_ptr<uint8_t[]> batch_;  // kSnapshotBatchBytes + one entry

    uint64_t down_since_ms_ = 0;
    bool down_ = true;      // not connected (before the first connection too)
    bool alone_ = false;    // down past the grace: the others were dropped
    bool ever_connected_ = false;
    bool own_dirty_ = false;  // a claim or release was dropped: publish a snapshot
    bool leaving_ = false;
    bool self_name_logged_ = false;
    bool view_full_logged_ = false;
    bool bad_logged_ = false;
    ClusterStats stats_;
};
