// cluster_view.cpp - see cluster_view.h.
#include "cluster_view.h"

#include <cstdio>
#include <cstring>
#include <new>

#include "invariants.h"

using invariants::broken;

namespace {

// The digest must be computed alike by every relay: a fixed key, not the
// table's random one. It protects nothing (an id's holder is public to the
// cluster); it only has to spread.
const HashKey kDigestKey{0x736f6d6570736575ull, 0x646f72616e646f6dull};

bool beats(uint64_t ts_a, std::string_view node_a, uint64_t ts_b, std::string_view node_b) {
    if (ts_a != ts_b) return ts_a > ts_b;
    return node_a > node_b;
}

}  // namespace

ClusterView::ClusterView(ClusterViewListener& listener, const HashKey& key,
                         std::string_view self_name, uint64_t self_incarnation, size_t max_entries,
                         MemoryBudget* budget)
    : listener_(listener), table_(key, siphash13, budget), max_entries_(max_entries), budget_(budget) {
    // The server cannot run without its own node: this one allocation may
    // throw (at start, like the relay's).
    nodes_[0] = std::make_unique<ClusterNode>();
    ClusterNode& self = *nodes_[0];
    size_t n = self_name.size() < kClusterNodeNameMax ? self_name.size() : kClusterNodeNameMax;
    std::memcpy(self.name_, self_name.data(), n);
    self.name_len_ = static_cast<uint8_t>(n);
    self.incarnation_ = self_incarnation;
    self.self_ = true;
    self.alive_ = true;
    node_count_ = 1;
}

ClusterView::~ClusterView() {
    for (size_t i = 0; i < node_count_; ++i) {
        while (ViewEntry* e = nodes_[i]->entries_.pop_front()) {
            table_.erase(e->key());
            free_entry(e);
        }
    }
}

size_t ClusterView::alive_nodes() const {
    size_t n = 0;
    for (size_t i = 0; i < node_count_; ++i) n += nodes_[i]->alive_ ? 1 : 0;
    return n;
}

// ---- entries -------------------------------------------------------------------

uint64_t ClusterView::mix(const ViewEntry& e) const {
    uint64_t h = siphash13(kDigestKey, e.id_bytes(), e.id_len_);
    return h ^ (e.timestamp_ * 0x9E3779B97F4A7C15ull) ^ (e.authenticated_ ? 1u : 0u);
}

ViewEntry* ClusterView::new_entry(std::string_view id) {
    if (id.empty() || id.size() > 255 || table_.size() >= max_entries_) return nullptr;
    size_t bytes = sizeof(ViewEntry) + id.size();
    void* block = budget_allocate(budget_, bytes);
    if (block == nullptr) return nullptr;
    auto* e = new (block) ViewEntry(static_cast<uint8_t>(id.size()));
    id.copy(e->id_bytes(), id.size());
    if (!table_.insert(e)) {
        e->~ViewEntry();
        budget_free(budget_, block, bytes);
        return nullptr;
    }
    entry_bytes_ += bytes;
    return e;
}

void ClusterView::free_entry(ViewEntry* e) {
    size_t bytes = sizeof(ViewEntry) + e->id_len_;
    e->~ViewEntry();
    budget_free(budget_, e, bytes);
    entry_bytes_ -= bytes;
}

void ClusterView::attach(ViewEntry* e, ClusterNode& node, uint64_t timestamp, bool authenticated) {
    e->node_ = &node;
    e->timestamp_ = timestamp;
    e->authenticated_ = authenticated;
    e->data_sequence_ = 0;
    e->mark_ = node.mark_;
    node.entries_.push_back(*e);
    ++node.holdings_;
    node.digest_ ^= mix(*e);
}

void ClusterView::detach(ViewEntry* e) {
    ClusterNode& node = *e->node_;
    // A cursor on it moves on first, so that no walk loses its place.
    for (int c = 0; c < kMaxCursors; ++c)
        if (cursor_used_[c] && cursors_[c] == e) cursors_[c] = node.entries_.next(*e);
    node.digest_ ^= mix(*e);
    --node.holdings_;
    IntrusiveList<ViewEntry, ViewEntryTag>::unlink(*e);
    e->node_ = nullptr;
}

void ClusterView::drop_holdings(ClusterNode& node) {
    while (ViewEntry* e = node.entries_.front()) {
        detach(e);
        table_.erase(e->key());
        // The id is copied out first: the entry is gone before the listener
        // acts (it may look the id up and must not find it).
        char id[255];
        size_t len = e->id_len_;
        std::memcpy(id, e->id_bytes(), len);
        free_entry(e);
        if (!node.self_) listener_.holder_changed(std::string_view(id, len), HolderChange::went);
    }
}

// ---- this relay -------------------------------------------------------------------

uint64_t ClusterView::claim_here(std::string_view id, bool authenticated, uint64_t wall_ms) {
    ClusterNode& self = *nodes_[0];
    ViewEntry* e = table_.find(id);
    uint64_t ts = wall_ms;
    if (e != nullptr) {
        if (e->timestamp_ >= ts) ts = e->timestamp_ + 1;
        detach(e);
    } else {
        e = new_entry(id);
        if (e == nullptr) {
            ++stats_.entries_refused;
            return 0;
        }
    }
    attach(e, self, ts, authenticated);
    return ts;
}

uint64_t ClusterView::release_here(std::string_view id) {
    ViewEntry* e = table_.find(id);
    if (e == nullptr || !e->node_->self_) return 0;
    uint64_t ts = e->timestamp_;
    detach(e);
    table_.erase(e->key());
    free_entry(e);
    return ts;
}

// ---- other relays -------------------------------------------------------------------

ClusterNode* ClusterView::node_heard(std::string_view name, uint64_t incarnation, uint64_t now_ms,
                                     NodeHeard* heard) {
    ClusterNode* node = nullptr;
    for (size_t i = 0; i < node_count_ && node == nullptr; ++i)
        if (nodes_[i]->name() == name) node = nodes_[i].get();
    if (node != nullptr && node->self_) {
        *heard = NodeHeard::self_name;
        return nullptr;
    }
    if (node == nullptr) {
        if (node_count_ >= kMaxNodes) {
            *heard = NodeHeard::full;
            return nullptr;
        }
        node = new (std::nothrow) ClusterNode;
        if (node == nullptr) {
            *heard = NodeHeard::full;
            return nullptr;
        }
        nodes_[node_count_++].reset(node);
        std::memcpy(node->name_, name.data(), name.size());
        node->name_len_ = static_cast<uint8_t>(name.size());
        node->incarnation_ = incarnation;
        node->alive_ = true;
        node->last_heard_ms_ = now_ms;
        *heard = NodeHeard::joined;
        return node;
    }
    if (incarnation < node->incarnation_ || (incarnation == node->incarnation_ && node->left_)) {
        *heard = NodeHeard::stale;
        return nullptr;
    }
    *heard = NodeHeard::known;
    if (incarnation > node->incarnation_) {
        // A new process under the name: what the old one held is gone with it.
        drop_holdings(*node);
        node->incarnation_ = incarnation;
        node->left_ = false;
        node->snapshot_open_ = false;
        node->mismatched_ = false;
        node->sync_asked_ = false;
        *heard = NodeHeard::restarted;
    } else if (!node->alive_) {
        *heard = NodeHeard::revived;
    }
    node->alive_ = true;
    node->last_heard_ms_ = now_ms;
    return node;
}

ClaimResult ClusterView::apply_claim(ClusterNode& from, std::string_view id, uint64_t timestamp,
                                     bool authenticated) {
    ViewEntry* e = table_.find(id);
    if (e != nullptr && e->node_ == &from && e->timestamp_ == timestamp) {
        e->mark_ = from.mark_;  // confirmed (a snapshot, or a claim sent again)
        return ClaimResult::unchanged;
    }
    if (e != nullptr && !beats(timestamp, from.name(), e->timestamp_, e->node_->name())) {
        if (e->node_->self_) {
            listener_.reassert(*e);
            return ClaimResult::refuted_here;
        }
        ++stats_.claims_stale;
        return ClaimResult::stale;
    }
    if (!listener_.claim_allowed(id, authenticated)) {
        ++stats_.claims_refused;
        return ClaimResult::refused;
    }
    HolderChange change = HolderChange::came;
    if (e != nullptr) {
        change = e->node_->self_ ? HolderChange::lost_here : HolderChange::moved;
        detach(e);
    } else {
        e = new_entry(id);
        if (e == nullptr) {
            ++stats_.entries_refused;
            return ClaimResult::no_room;
        }
    }
    attach(e, from, timestamp, authenticated);
    ++stats_.claims_applied;
    listener_.holder_changed(id, change);
    return ClaimResult::applied;
}

bool ClusterView::apply_release(ClusterNode& from, std::string_view id, uint64_t timestamp) {
    ViewEntry* e = table_.find(id);
    if (e == nullptr || e->node_ != &from || e->timestamp_ > timestamp) return false;
    detach(e);
    table_.erase(e->key());
    free_entry(e);
    listener_.holder_changed(id, HolderChange::went);
    return true;
}

bool ClusterView::heartbeat(ClusterNode& from, uint32_t holdings, uint64_t digest, uint64_t now_ms) {
    if (from.snapshot_open_ || (holdings == from.holdings_ && digest == from.digest_)) {
        from.mismatched_ = false;
        return false;
    }
    if (!from.mismatched_) {
        from.mismatched_ = true;
        from.mismatch_since_ms_ = now_ms;
    }
    if (now_ms - from.mismatch_since_ms_ < kMismatchMs) return false;
    if (from.sync_asked_ && now_ms - from.sync_asked_ms_ < kSyncIntervalMs) return false;
    return true;
}

void ClusterView::sync_asked(ClusterNode& node, uint64_t now_ms) {
    node.sync_asked_ = true;
    node.sync_asked_ms_ = now_ms;
    node.mismatched_ = false;
}

bool ClusterView::snapshot_batch(ClusterNode& from, uint64_t snapshot_id, uint32_t batch,
                                 uint8_t flags, const uint8_t* entries, size_t len) {
    if ((flags & kClusterFirstBatch) != 0) {
        if (from.snapshot_open_) ++stats_.snapshots_abandoned;  // replaced by a new one
        from.snapshot_open_ = true;
        from.snapshot_id_ = snapshot_id;
        from.next_batch_ = 0;
        ++from.mark_;
    }
    if (!from.snapshot_open_ || from.snapshot_id_ != snapshot_id || from.next_batch_ != batch) {
        if (from.snapshot_open_) ++stats_.snapshots_abandoned;
        from.snapshot_open_ = false;
        return false;
    }
    ClusterEntryReader reader(entries, len);
    std::string_view id;
    uint64_t ts = 0;
    uint8_t entry_flags = 0;
    while (reader.next(&id, &ts, &entry_flags))
        apply_claim(from, id, ts, (entry_flags & kClusterAuthenticated) != 0);
    if (reader.malformed()) {
        ++stats_.snapshots_abandoned;
        from.snapshot_open_ = false;
        return false;
    }
    ++from.next_batch_;
    if ((flags & kClusterLastBatch) == 0) return true;
    from.snapshot_open_ = false;
    ++stats_.snapshots_complete;
    // What the snapshot did not confirm, and no claim since did, is not
    // held there any more.
    ViewEntry* e = from.entries_.front();
    while (e != nullptr) {
        ViewEntry* next = from.entries_.next(*e);
        if (e->mark_ != from.mark_) {
            char id_copy[255];
            size_t n = e->id_len_;
            std::memcpy(id_copy, e->id_bytes(), n);
            detach(e);
            table_.erase(e->key());
            free_entry(e);
            listener_.holder_changed(std::string_view(id_copy, n), HolderChange::went);
        }
        e = next;
    }
    return true;
}

bool ClusterView::accept_data(std::string_view id, uint64_t incarnation, uint64_t sequence) {
    ViewEntry* e = table_.find(id);
    if (e == nullptr || e->node_->self_ || e->node_->incarnation_ != incarnation) {
        ++stats_.data_stale;
        return false;
    }
    if (sequence <= e->data_sequence_) {
        ++stats_.data_out_of_order;
        return false;
    }
    e->data_sequence_ = sequence;
    return true;
}

const ClusterNode* ClusterView::silent_node(uint64_t now_ms, uint64_t silent_ms) const {
    for (size_t i = 1; i < node_count_; ++i) {
        const ClusterNode& n = *nodes_[i];
        if (n.alive_ && now_ms - n.last_heard_ms_ > silent_ms) return &n;
    }
    return nullptr;
}

void ClusterView::node_gone(const ClusterNode& node, bool left) {
    for (size_t i = 1; i < node_count_; ++i) {
        ClusterNode& n = *nodes_[i];
        if (&n != &node) continue;
        if (n.alive_) ++stats_.nodes_dead;
        n.alive_ = false;
        n.left_ = n.left_ || left;
        n.snapshot_open_ = false;
        n.mismatched_ = false;
        drop_holdings(n);
        return;
    }
}

void ClusterView::drop_remote() {
    for (size_t i = 1; i < node_count_; ++i) node_gone(*nodes_[i], false);
}

void ClusterView::heard_all(uint64_t now_ms) {
    for (size_t i = 1; i < node_count_; ++i)
        if (nodes_[i]->alive_) nodes_[i]->last_heard_ms_ = now_ms;
}

// ---- cursors ----------------------------------------------------------------------

int ClusterView::open_cursor() {
    for (int c = 0; c < kMaxCursors; ++c) {
        if (cursor_used_[c]) continue;
        cursor_used_[c] = true;
        cursors_[c] = nodes_[0]->entries_.front();
        return c;
    }
    return -1;
}

void ClusterView::cursor_advance(int cursor) {
    if (cursors_[cursor] != nullptr) cursors_[cursor] = nodes_[0]->entries_.next(*cursors_[cursor]);
}

void ClusterView::close_cursor(int cursor) {
    cursor_used_[cursor] = false;
    cursors_[cursor] = nullptr;
}

// ---- invariants ---------------------------------------------------------------------

bool ClusterView::check_invariants(char* why, size_t cap) const {
    size_t total = 0;
    uint64_t bytes = 0;
    for (size_t i = 0; i < node_count_; ++i) {
        const ClusterNode& n = *nodes_[i];
        uint32_t count = 0;
        uint64_t digest = 0;
        for (const ViewEntry* e = n.entries_.front(); e != nullptr; e = n.entries_.next(*e)) {
            ++count;
            digest ^= mix(*e);
            bytes += sizeof(ViewEntry) + e->id_len_;
            if (e->node_ != &n) return broken(why, cap, "entry on the list of another node");
            if (table_.find(e->key()) != e) return broken(why, cap, "entry not in the table");
        }
        if (count != n.holdings_)
            return broken(why, cap, "node %.*s counts %u holdings, list has %u",
                          static_cast<int>(n.name_len_), n.name_, n.holdings_, count);
        if (digest != n.digest_) return broken(why, cap, "node digest does not match its list");
        if (!n.alive_ && !n.entries_.empty()) return broken(why, cap, "a dead node holds ids");
        total += count;
    }
    if (total != table_.size())
        return broken(why, cap, "%zu entries on lists, %zu in the table", total, table_.size());
    if (bytes != entry_bytes_) return broken(why, cap, "entry bytes do not match");
    for (int c = 0; c < kMaxCursors; ++c) {
        if (!cursor_used_[c] || cursors_[c] == nullptr) continue;
        if (cursors_[c]->node_ != nodes_[0].get())
            return broken(why, cap, "a cursor points at an entry not held here");
    }
    return true;
}
