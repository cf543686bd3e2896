// cluster_view.h - who holds which device id across the relays of a
// cluster, as this relay knows it: a replicated table, fed by what the
// other relays publish (claims, releases, heartbeats, snapshots) and by
// this relay's own claims. No I/O and no clock of its own (times are
// passed in), so that every rule here is tested without a network
// (test/unit/test_cluster_view.cpp). The cluster room (cluster.h) feeds it
// from NATS and acts on what it reports.
//
// Why a replicated view and not a question to the holder: replies must go
// out in request order and at once (CHECK_ALIVE, SUBSCRIBE's "is it
// online", SEND_TO's status, PRESENCE), so every relay answers from what it
// knows now; what it knows is at most a NATS hop behind.
//
// One holder per id, everywhere. A claim is (timestamp, node name); of two
// claims of one id, the one with the later timestamp wins, and between
// equal timestamps the greater node name (bytewise). Every relay applies
// the same rule to the claims it sees, in whatever order they arrive, so
// all views converge on the same holder, and a relay whose own holder's
// claim lost closes it (HolderChange::lost_here). Timestamps are wall-clock
// milliseconds, but a relay claiming an id it knows a claim of takes at
// least that claim's timestamp plus one, so that a takeover always beats
// the claim it takes over whatever the clocks say; only claims made at
// about the same time on relays with skewed clocks are decided by the
// clocks (the relay ahead wins).
//
// A claim that loses to this relay's own holding is answered: the listener
// is asked to publish our claim again (reassert), so that a relay that
// missed it learns it lost. A claim of a protected id that is not
// authenticated is refused (claim_allowed), whatever its timestamp.
//
// Nodes. Each relay is a node with a name and an incarnation (its start
// time in microseconds): a message from a higher incarnation of a known
// name means the relay restarted, and what the old one held is dropped;
// one from a lower incarnation is from a dead process and is ignored. A
// node not heard from for a while is dead (expired()), one that says it is
// leaving is gone at once; either way its holdings go (HolderChange::went).
//
// Repair. A heartbeat carries the number of ids its relay holds and a
// digest of them (the XOR of a hash of every (id, timestamp)); when our
// view of that relay disagrees for kMismatchMs, a snapshot of its holdings
// is asked for (at most one per kSyncIntervalMs). A snapshot comes in
// batches, in order; when its last batch arrives, every id our view
// credited to that relay and the snapshot did not confirm (and no claim
// since did) is dropped. A snapshot with a batch missing is abandoned.
//
// Data. A data message names the incarnation and a per-relay sequence
// number; accept_data() takes it only from the incarnation that holds the
// id in our view and only in increasing sequence, so that data in flight
// from a holder that lost the id is dropped (counted, never delivered
// after the takeover) and nothing is ever delivered twice or out of order.
//
// Bounds: at most kMaxNodes nodes and max_entries entries (claims beyond
// are refused and counted); entries are charged to the memory budget.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string_view>

#include "cluster_wire.h"
#include "hash.h"
#include "id_table.h"
#include "intrusive_list.h"
#include "memory_budget.h"

class ClusterNode;
struct ViewEntryTag {};

// One id held somewhere, allocated with its id in one block.
class ViewEntry : public ListHook<ViewEntryTag> {
   public:
    std::string_view key() const { return std::string_view(id_bytes(), id_len_); }
    const ClusterNode& node() const { return *node_; }
    uint64_t timestamp() const { return timestamp_; }
    bool authenticated() const { return authenticated_; }

   private:
    friend class ClusterView;
    explicit ViewEntry(uint8_t len) : id_len_(len) {}
    ~ViewEntry() = default;
    char* id_bytes() { return reinterpret_cast<char*>(this + 1); }
    const char* id_bytes() const { return reinterpret_cast<const char*>(this + 1); }

    ClusterNode* node_ = nullptr;
    uint64_t timestamp_ = 0;
    uint64_t data_sequence_ = 0;  // the last data taken from the holder
    uint32_t mark_ = 0;           // the node's snapshot mark when last confirmed
    bool authenticated_ = false;
    uint8_t id_len_;
};

// One relay of the cluster, this one included.
class ClusterNode {
   public:
    std::string_view name() const { return std::string_view(name_, name_len_); }
    uint64_t incarnation() const { return incarnation_; }
    bool self() const { return self_; }
    bool alive() const { return alive_; }
    uint32_t holdings() const { return holdings_; }
    uint64_t digest() const { return digest_; }
    uint64_t last_heard_ms() const { return last_heard_ms_; }

   private:
    friend class ClusterView;
    char name_[kClusterNodeNameMax] = {};
    uint8_t name_len_ = 0;
    uint64_t incarnation_ = 0;
    uint64_t last_heard_ms_ = 0;
    bool self_ = false;
    bool alive_ = false;
    bool left_ = false;  // said it was leaving: its incarnation is not revived
    IntrusiveList<ViewEntry, ViewEntryTag> entries_;
    uint32_t holdings_ = 0;
    uint64_t digest_ = 0;
    // A snapshot being received from it.
    bool snapshot_open_ = false;
    uint64_t snapshot_id_ = 0;
    uint32_t next_batch_ = 0;
    uint32_t mark_ = 0;
    // Heartbeats that disagreed with our view of it, and our last request.
    bool mismatched_ = false;
    uint64_t mismatch_since_ms_ = 0;
    uint64_t sync_asked_ms_ = 0;
    bool sync_asked_ = false;
};

enum class HolderChange : uint8_t {
    came,       // held nowhere before, now by another relay
    went,       // held by another relay before, now nowhere
    moved,      // held by another relay before, now by a newer claim elsewhere: a takeover
    lost_here,  // held here; another relay's newer claim took it: the local holder must go
};

// What the view reports. Callbacks must not change the view (no claim_here,
// release_here or apply_*): they may publish and act on the relay.
class ClusterViewListener {
   public:
    virtual void holder_changed(std::string_view id, HolderChange change) = 0;
    // A claim lost to this relay's own claim of id: publish ours again.
    virtual void reassert(const ViewEntry& entry) = 0;
    // Whether a claim of id (authenticated or not) may take it: false for a
    // protected id claimed without AUTH.
    virtual bool claim_allowed(std::string_view id, bool authenticated) = 0;

   protected:
    ~ClusterViewListener() = default;
};

// Why a message from a node is ignored (node_heard()).
enum class NodeHeard : uint8_t {
    known,       // an alive node, as before
    joined,      // a node first heard of
    revived,     // a node taken for dead is back (its holdings were dropped)
    restarted,   // a higher incarnation: the old one's holdings were dropped
    stale,       // a lower incarnation than the one known, or one that left: ignored
    self_name,   // another relay uses our name: ignored
    full,        // kMaxNodes reached: ignored
};

enum class ClaimResult : uint8_t { applied, unchanged, stale, refuted_here, refused, no_room };

struct ClusterViewStats {
    uint64_t claims_applied = 0;   // remote claims that changed the view
    uint64_t claims_stale = 0;     // that lost to a newer claim
    uint64_t claims_refused = 0;   // of protected ids, without AUTH
    uint64_t entries_refused = 0;  // no room: max_entries or memory
    uint64_t data_stale = 0;       // data not from the holder we know
    uint64_t data_out_of_order = 0;
    uint64_t snapshots_complete = 0;
    uint64_t snapshots_abandoned = 0;
    uint64_t nodes_dead = 0;       // declared dead (silent) or gone (left)
};

class ClusterView {
   public:
    static constexpr size_t kMaxNodes = 64;
    static constexpr uint64_t kMismatchMs = 1000;
    static constexpr uint64_t kSyncIntervalMs = 2000;
    static constexpr int kMaxCursors = 8;

    ClusterView(ClusterViewListener& listener, const HashKey& key, std::string_view self_name,
                uint64_t self_incarnation, size_t max_entries, MemoryBudget* budget = nullptr);
    ~ClusterView();
    ClusterView(const ClusterView&) = delete;
    ClusterView& operator=(const ClusterView&) = delete;

    const ClusterNode& self() const { return *nodes_[0]; }
    const ViewEntry* find(std::string_view id) const { return table_.find(id); }
    bool held_elsewhere(std::string_view id) const {
        const ViewEntry* e = table_.find(id);
        return e != nullptr && !e->node_->self_;
    }
    size_t entries() const { return table_.size(); }
    size_t remote_entries() const { return table_.size() - nodes_[0]->holdings_; }
    size_t alive_nodes() const;  // this one included
    const ClusterViewStats& stats() const { return stats_; }
    uint64_t memory() const { return entry_bytes_ + table_.memory(); }

    // ---- this relay's holdings -------------------------------------------

    // A local session now holds id: records our claim and returns its
    // timestamp (at least wall_ms, and later than any claim of id we know),
    // or 0 when there is no room for it (counted).
    uint64_t claim_here(std::string_view id, bool authenticated, uint64_t wall_ms);
    // The local holder let id go: drops our claim and returns its
    // timestamp, or 0 if we held no claim of id.
    uint64_t release_here(std::string_view id);

    // ---- other relays ------------------------------------------------------

    // A message from relay `name`, incarnation `incarnation`: the node, or
    // nullptr when the message must be ignored; *heard says which case.
    ClusterNode* node_heard(std::string_view name, uint64_t incarnation, uint64_t now_ms,
                            NodeHeard* heard);
    ClaimResult apply_claim(ClusterNode& from, std::string_view id, uint64_t timestamp,
                            bool authenticated);
    // Drops from's claim of id if it is the one we know or an older one.
    // True when it was dropped.
    bool apply_release(ClusterNode& from, std::string_view id, uint64_t timestamp);
    // A heartbeat: true when a snapshot of the node should be asked for now
    // (our view of it has disagreed for kMismatchMs; see the top).
    bool heartbeat(ClusterNode& from, uint32_t holdings, uint64_t digest, uint64_t now_ms);
    // Records that a snapshot of node was asked for (revived and restarted
    // nodes are asked at once by the caller).
    void sync_asked(ClusterNode& node, uint64_t now_ms);
    // One snapshot batch from `from`. False when the snapshot is abandoned
    // (a batch missing); malformed entries end the batch and abandon it.
    bool snapshot_batch(ClusterNode& from, uint64_t snapshot_id, uint32_t batch, uint8_t flags,
                        const uint8_t* entries, size_t len);
    // Whether data from incarnation, numbered sequence, may be delivered
    // for id (see the top); counts what is refused.
    bool accept_data(std::string_view id, uint64_t incarnation, uint64_t sequence);

    // The first alive remote node silent for more than silent_ms, or
    // nullptr.
    const ClusterNode* silent_node(uint64_t now_ms, uint64_t silent_ms) const;
    // The node is dead (silent) or gone (left): its holdings go.
    void node_gone(const ClusterNode& node, bool left);
    // Every remote node is dropped (this relay lost NATS): their holdings go.
    void drop_remote();
    // This relay is connected again after a gap: the alive nodes count as
    // heard now (their heartbeats of the gap were not lost by them).
    void heard_all(uint64_t now_ms);

    // ---- reading this relay's holdings, for snapshots ----------------------
    // A cursor walks the holdings in claim order; entries released or lost
    // while it walks are skipped, entries claimed meanwhile are reached.
    // open_cursor() returns -1 when kMaxCursors are open.
    int open_cursor();
    const ViewEntry* cursor_entry(int cursor) const { return cursors_[cursor]; }
    void cursor_advance(int cursor);
    void close_cursor(int cursor);
    bool cursor_open(int cursor) const { return cursor_used_[cursor]; }

    // Counts, digests and lists agree; every entry is in the table under
    // its id. For tests; false with the reason in why.
    bool check_invariants(char* why, size_t cap) const;

   private:
    ViewEntry* new_entry(std::string_view id);
    void free_entry(ViewEntry* e);
    void attach(ViewEntry* e, ClusterNode& node, uint64_t timestamp, bool authenticated);
    void detach(ViewEntry* e);
    // Drops every entry of node (HolderChange::went for each).
    void drop_holdings(ClusterNode& node);
    uint64_t mix(const ViewEntry& e) const;

    ClusterViewListener& listener_;
    IdTable<ViewEntry> table_;
    std::unique_ptr<ClusterNode> nodes_[kMaxNodes];
    size_t node_count_ = 0;
    size_t max_entries_;
    MemoryBudget* budget_;
    uint64_t entry_bytes_ = 0;
    const ViewEntry* cursors_[kMaxCursors] = {};
    bool cursor_used_[kMaxCursors] = {};
    ClusterViewStats stats_;
};
