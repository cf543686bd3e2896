// cluster.cpp - see cluster.h and doc/cluster.md.
#include "cluster.h"

#include <time.h>

#include <cerrno>
#include <cstring>
#include <new>

#include "log.h"
#include "relay.h"

namespace {

// An id for a log line (log_escape).
struct LogId {
    explicit LogId(std::string_view id) { log_escape(id.data(), id.size(), text, sizeof text); }
    char text[kLogEscapeCap];
};

uint64_t realtime_us() {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000000u + static_cast<uint64_t>(ts.tv_nsec) / 1000u;
}

HashKey random_key() {
    HashKey key;
    if (!hash_key_from_os(&key)) {
        // The tables' layout is all that depends on it here.
        key.k0 = realtime_us() * 0x9E3779B97F4A7C15ull;
        key.k1 = ~key.k0;
    }
    return key;
}

NatsLinkOptions link_options(const ClusterOptions& o) {
    NatsLinkOptions l;
    l.servers = o.servers;
    l.name = o.node_name;
    l.version = o.version;
    l.max_output = Cluster::kLinkOutputBytes;
    return l;
}

std::string_view as_view(const uint8_t* p, size_t n) {
    return std::string_view(reinterpret_cast<const char*>(p), n);
}

}  // namespace

Cluster::Cluster(EventLoop& loop, Relay& relay, ClusterOptions options, MemoryBudget* budget)
    : loop_(loop),
      relay_(relay),
      options_(std::move(options)),
      // Microseconds of the wall clock: a restarted relay has a greater one
      // (unless the clock went back by more than its downtime).
      incarnation_(realtime_us()),
      hash_key_(random_key()),
      budget_(budget),
      link_(loop, *this, link_options(options_)),
      view_(*this, hash_key_, options_.node_name, incarnation_, options_.max_entries, budget),
      interest_(hash_key_, siphash13, budget) {
    subject_hb_ = "sp.hb." + options_.node_name;
    subject_snap_ = "sp.snap." + options_.node_name;
    subject_inbox_ = "sp.in." + options_.node_name;
    subject_to_prefix_ = "sp.to." + options_.node_name + ".";
}

Cluster::~Cluster() {
    EventLoop::cancel(*this);
    drop_jobs();
    link_.stop();
    interest_.for_each([this](Interest* i) { free_interest(i); });
}

uint64_t Cluster::wall_ms() const { return realtime_us() / 1000u; }

bool Cluster::start() {
    batch_.reset(new (std::nothrow) uint8_t[kSnapshotBatchBytes + kClusterSnapshotEntryMax +
                                            kClusterControlHeaderMax + 16]);
    batch_data_.reset(new (std::nothrow) uint8_t[kClusterDataHeader + kBatchBytes]);
    if (!batch_ || !batch_data_) return false;
    sid_own_ = link_.subscribe("sp.own.*");
    sid_hb_ = link_.subscribe("sp.hb.*");
    sid_snap_ = link_.subscribe("sp.snap.*");
    sid_inbox_ = link_.subscribe(subject_inbox_);
    sid_sync_all_ = link_.subscribe("sp.sync");
    sid_sync_me_ = link_.subscribe("sp.sync." + options_.node_name);
    sid_to_ = link_.subscribe(subject_to_prefix_ + ">");
    if (sid_own_ == 0 || sid_hb_ == 0 || sid_snap_ == 0 || sid_inbox_ == 0 || sid_sync_all_ == 0 ||
        sid_sync_me_ == 0 || sid_to_ == 0)
        return false;
    down_since_ms_ = loop_.now_ms();
    LOG_INFO("cluster: this relay is node %s (incarnation %llu)", options_.node_name.c_str(),
             static_cast<unsigned long long>(incarnation_));
    return link_.start();
}

void Cluster::leave() {
    if (leaving_) return;
    publish_heartbeat(true);
    leaving_ = true;
    drop_jobs();
}

// ---- timers ----------------------------------------------------------------------

void Cluster::on_tick(uint64_t now_ms) {
    link_.on_tick(now_ms);
    if (leaving_) return;
    if (down_) {
        // Before the first connection there is nobody to drop (the link
        // logs that no server answers).
        if (!alone_ && ever_connected_ && now_ms - down_since_ms_ >= kLinkGraceMs)
            go_alone(now_ms);
        return;
    }
    publish_heartbeat(false);
    while (const ClusterNode* n = view_.silent_node(now_ms, kSilentMs)) {
        LOG_WARN("cluster: relay %.*s not heard from for %llu ms: its %u devices are offline here",
                 static_cast<int>(n->name().size()), n->name().data(),
                 static_cast<unsigned long long>(now_ms - n->last_heard_ms()), n->holdings());
        view_.node_gone(*n, false);
    }
    if (own_dirty_ && !link_.dropping_publishes() && add_job(subject_snap_)) own_dirty_ = false;
    pump_snapshots();
}

void Cluster::go_alone(uint64_t now_ms) {
    alone_ = true;
    ++stats_.episodes_alone;
    size_t devices = view_.remote_entries();
    size_t relays = view_.alive_nodes() - 1;
    LOG_WARN("cluster: no NATS server for %llu ms: the %zu devices of %zu other relays are offline "
             "to this relay's clients, which are relayed among themselves until NATS is back",
             static_cast<unsigned long long>(now_ms - down_since_ms_), devices, relays);
    view_.drop_remote();
}

// ---- the link -----------------------------------------------------------------------

void Cluster::on_nats_connected(const NatsInfo&) {
    uint64_t now = loop_.now_ms();
    if (alone_)
        LOG_INFO("cluster: NATS is back after %llu ms: asking the other relays for their devices",
                 static_cast<unsigned long long>(now - down_since_ms_));
    down_ = false;
    alone_ = false;
    ever_connected_ = true;
    // Silence while we were away was ours, not theirs.
    view_.heard_all(now);
    if (leaving_) return;
    // Whatever was in flight while we were away is lost, in both
    // directions: tell everyone what we hold, and ask what they hold.
    drop_jobs();
    own_dirty_ = !add_job(subject_snap_);
    ask_sync("sp.sync");
    publish_heartbeat(false);
}

void Cluster::on_nats_disconnected() {
    down_ = true;
    down_since_ms_ = loop_.now_ms();
    drop_jobs();
}

void Cluster::on_nats_message(const NatsMessage& msg) {
    // A status, not a message: "503 no responders" to a snapshot request
    // (sp.sync.<node> of a relay that is gone, or sp.sync with no other
    // relay yet). Nothing to wait for: snapshots are never awaited.
    if (leaving_ || msg.status != 0) return;
    if (msg.sid == sid_own_) return on_ownership(msg);
    if (msg.sid == sid_hb_) return on_heartbeat(msg);
    if (msg.sid == sid_snap_ || msg.sid == sid_inbox_) return on_snapshot(msg);
    if (msg.sid == sid_sync_all_ || msg.sid == sid_sync_me_) return on_sync_request(msg);
    if (msg.sid == sid_to_) return on_to(msg);
    on_data(msg);  // an sp.d.<id> subscription
}

void Cluster::bad_message(const NatsMessage& msg, const char* why) {
    ++stats_.bad_messages;
    if (bad_logged_) return;
    bad_logged_ = true;  // one line: the counter says how many more
    char subject[kLogEscapeCap];
    log_escape(msg.subject.data(), msg.subject.size(), subject, sizeof subject);
    LOG_WARN("cluster: a message on %s is not ours (%s): ignored, and the next ones counted",
             subject, why);
}

ClusterNode* Cluster::heard_from(const ClusterControl& c) {
    NodeHeard heard = NodeHeard::known;
    ClusterNode* node = view_.node_heard(c.node, c.incarnation, loop_.now_ms(), &heard);
    std::string_view name = c.node;
    switch (heard) {
        case NodeHeard::known: break;
        case NodeHeard::joined:
            LOG_INFO("cluster: relay %.*s joined", static_cast<int>(name.size()), name.data());
            break;
        case NodeHeard::restarted:
            LOG_INFO("cluster: relay %.*s restarted: what it held before is offline",
                     static_cast<int>(name.size()), name.data());
            break;
        case NodeHeard::revived:
            // It never knew we dropped it: ask for everything it holds.
            LOG_INFO("cluster: relay %.*s is heard from again", static_cast<int>(name.size()),
                     name.data());
            ask_sync("sp.sync." + std::string(name));
            view_.sync_asked(*node, loop_.now_ms());
            break;
        case NodeHeard::stale: break;  // an old incarnation's message in flight
        case NodeHeard::self_name:
            if (!self_name_logged_) {
                self_name_logged_ = true;
                LOG_ERROR("cluster: another relay uses this relay's node name %.*s: its "
                          "messages are ignored; give every relay its own --node-name",
                          static_cast<int>(name.size()), name.data());
            }
            break;
        case NodeHeard::full:
            LOG_WARN("cluster: more than %zu relays: relay %.*s is ignored", ClusterView::kMaxNodes,
                     static_cast<int>(name.size()), name.data());
            break;
    }
    return node;
}

// ---- data ---------------------------------------------------------------------------

void Cluster::sent(std::string_view from, const uint8_t* data, size_t len) {
    size_t need = kClusterDataEntryHeader + len;
    std::string_view batched(reinterpret_cast<const char*>(batch_id_), batch_id_len_);
    if (batch_len_ != 0 && (from != batched || batch_len_ + need > kClusterDataHeader + kBatchBytes))
        flush_batch();
    if (need > kBatchBytes) {
        // Alone, without a copy into the batch.
        char subject[kClusterSubjectMax];
        size_t n = cluster_subject_data(subject, sizeof subject, from);
        uint8_t head[kClusterDataHeader + kClusterDataEntryHeader];
        cluster_encode_data_header(head, incarnation_, ++data_sequence_);
        cluster_encode_entry_length(head + kClusterDataHeader, static_cast<uint32_t>(len));
        if (link_.publish_parts(std::string_view(subject, n), head, sizeof head, data, len))
            ++stats_.data_out;
        return;
    }
    if (batch_len_ == 0) {
        batch_subject_len_ = cluster_subject_data(batch_subject_, sizeof batch_subject_, from);
        batch_id_len_ = from.size();
        std::memcpy(batch_id_, from.data(), from.size());
        batch_len_ = kClusterDataHeader;
        loop_.at_iteration_end(*this);
    }
    uint8_t* out = batch_data_.get() + batch_len_;
    cluster_encode_entry_length(out, static_cast<uint32_t>(len));
    if (len != 0) std::memcpy(out + kClusterDataEntryHeader, data, len);
    batch_len_ += need;
    ++batch_count_;
}

void Cluster::flush_batch() {
    if (batch_len_ == 0) return;
    cluster_encode_data_header(batch_data_.get(), incarnation_, ++data_sequence_);
    if (link_.publish(std::string_view(batch_subject_, batch_subject_len_), {}, batch_data_.get(),
                      batch_len_))
        stats_.data_out += batch_count_;
    batch_len_ = 0;
    batch_count_ = 0;
}

void Cluster::on_data(const NatsMessage& msg) {
    uint8_t id[255];
    size_t id_len = cluster_subject_id(msg.subject, "sp.d.", id);
    ClusterData d;
    if (id_len == 0 || !cluster_parse_data(msg.payload, msg.payload_len, &d))
        return bad_message(msg, "not a data message");
    std::string_view from = as_view(id, id_len);
    if (!view_.accept_data(from, d.incarnation, d.sequence)) return;
    ClusterDataReader reader(d);
    const uint8_t* data = nullptr;
    size_t len = 0;
    while (reader.next(&data, &len)) {
        if (relay_.deliver_remote(from, data, len))
            ++stats_.data_in;
        else
            ++stats_.data_unfollowed;
    }
}

bool Cluster::publish_to_holder(std::string_view target, const uint8_t* head, size_t head_len,
                                const uint8_t* data, size_t len) {
    flush_batch();  // what the sender sent before goes first
    const ViewEntry* e = view_.find(target);
    if (e == nullptr || e->node().self()) return false;  // the relay asked the view first
    char subject[kClusterSubjectMax];
    size_t n = cluster_subject_send_to(subject, sizeof subject, e->node().name(), target);
    return n != 0 && head_len != 0 &&
           link_.publish_parts(std::string_view(subject, n), head, head_len, data, len);
}

void Cluster::sent_to(std::string_view from, std::string_view target, const uint8_t* data,
                      size_t len) {
    uint8_t head[kClusterSendToHeaderMax];
    size_t head_len = cluster_encode_send_to_header(head, from);
    if (publish_to_holder(target, head, head_len, data, len)) ++stats_.send_to_out;
}

void Cluster::on_to(const NatsMessage& msg) {
    uint8_t id[255];
    size_t id_len = cluster_subject_id(msg.subject, subject_to_prefix_, id);
    ClusterKind kind;
    if (id_len == 0 || !cluster_payload_kind(msg.payload, msg.payload_len, &kind))
        return bad_message(msg, "not a SEND_TO or direct-path message");
    if (kind == ClusterKind::direct) return on_direct(msg, as_view(id, id_len));
    on_send_to(msg, as_view(id, id_len));
}

void Cluster::on_send_to(const NatsMessage& msg, std::string_view target) {
    ClusterSendTo m;
    if (!cluster_parse_send_to(msg.payload, msg.payload_len, &m))
        return bad_message(msg, "not a SEND_TO message");
    switch (relay_.deliver_remote_to(target, m.sender, m.data, m.len)) {
        case RemoteDelivery::delivered: ++stats_.send_to_in; break;
        case RemoteDelivery::not_here: ++stats_.send_to_not_here; break;
        case RemoteDelivery::refused:
        case RemoteDelivery::refused_v1: ++stats_.send_to_refused; break;
    }
}

uint64_t Cluster::holder_relay(std::string_view id) const {
    const ViewEntry* e = view_.find(id);
    return e == nullptr || e->node().self() ? 0 : e->node().incarnation();
}

void Cluster::sent_direct(std::string_view target, const DirectHop& hop, const uint8_t* frame,
                          size_t len) {
    ClusterDirect d;
    d.from_relay = incarnation_;
    d.from_session = hop.from_session;
    d.to_relay = hop.to_relay;
    d.to_session = hop.to_session;
    uint8_t head[kClusterDirectHeader];
    cluster_encode_direct_header(head, d);
    if (publish_to_holder(target, head, sizeof head, frame, len)) ++stats_.direct_out;
}

void Cluster::on_direct(const NatsMessage& msg, std::string_view target) {
    ClusterDirect d;
    if (!cluster_parse_direct(msg.payload, msg.payload_len, &d))
        return bad_message(msg, "not a direct-path message");
    if (d.to_relay != 0 && d.to_relay != incarnation_) {
        ++stats_.direct_not_here;  // for an earlier run of this relay
        return;
    }
    DirectHop hop;
    hop.from_relay = d.from_relay;
    hop.from_session = d.from_session;
    hop.to_session = d.to_session;
    switch (relay_.deliver_remote_direct(target, hop, d.step, d.frame, d.len)) {
        case RemoteDelivery::delivered: ++stats_.direct_in; break;
        case RemoteDelivery::not_here: ++stats_.direct_not_here; break;
        case RemoteDelivery::refused:
        case RemoteDelivery::refused_v1: ++stats_.direct_refused; break;
    }
}

void Cluster::first_follower(std::string_view id) {
    char subject[kClusterSubjectMax];
    size_t n = cluster_subject_data(subject, sizeof subject, id);
    if (n == 0 || interest_.find(id) != nullptr) return;
    size_t bytes = sizeof(Interest) + id.size();
    void* block = budget_allocate(budget_, bytes);
    auto* interest = block != nullptr ? new (block) Interest : nullptr;
    if (interest != nullptr) {
        interest->id_len = static_cast<uint8_t>(id.size());
        std::memcpy(interest + 1, id.data(), id.size());
        interest_bytes_ += bytes;
        interest->sid = link_.subscribe(std::string_view(subject, n));
        if (interest->sid != 0 && interest_.insert(interest)) return;
        if (interest->sid != 0) link_.unsubscribe(interest->sid);
        free_interest(interest);
    }
    // Data from the other relays will not reach this id's subscribers.
    ++stats_.interest_failed;
    LOG_WARN("cluster: no memory to follow \"%s\" on the other relays", LogId(id).text);
}

void Cluster::free_interest(Interest* interest) {
    size_t bytes = sizeof(Interest) + interest->id_len;
    interest->~Interest();
    budget_free(budget_, interest, bytes);
    interest_bytes_ -= bytes;
}

void Cluster::last_follower_gone(std::string_view id) {
    Interest* interest = interest_.find(id);
    if (interest == nullptr) return;
    link_.unsubscribe(interest->sid);
    interest_.erase(id);
    free_interest(interest);
}

// ---- ownership -----------------------------------------------------------------------

bool Cluster::publish_control(std::string_view subject, ClusterKind kind, uint8_t flags,
                              uint64_t timestamp, std::string_view reply) {
    flush_batch();  // data first: a release must not overtake its holder's last SENDs
    ClusterControl c;
    c.kind = kind;
    c.flags = flags;
    c.incarnation = incarnation_;
    c.node = options_.node_name;
    c.timestamp = timestamp;
    if (kind == ClusterKind::heartbeat) {
        c.holdings = view_.self().holdings();
        c.digest = view_.self().digest();
    }
    uint8_t out[kClusterControlMax];
    size_t n = cluster_encode_control(out, sizeof out, c);
    return n != 0 && link_.publish(subject, reply, out, n);
}

void Cluster::publish_claim(std::string_view id, uint64_t timestamp, bool authenticated) {
    char subject[kClusterSubjectMax];
    size_t n = cluster_subject_own(subject, sizeof subject, id);
    if (publish_control(std::string_view(subject, n), ClusterKind::claim,
                        authenticated ? kClusterAuthenticated : 0, timestamp))
        ++stats_.claims_out;
    else
        own_dirty_ = true;  // a snapshot will carry it
}

void Cluster::claimed(std::string_view id, bool authenticated) {
    uint64_t ts = view_.claim_here(id, authenticated, wall_ms());
    if (ts == 0) {
        if (!view_full_logged_) {
            view_full_logged_ = true;
            LOG_WARN("cluster: no room to record \"%s\" (%zu ids known): the other relays do not "
                     "see it; more are counted",
                     LogId(id).text, view_.entries());
        }
        return;
    }
    view_full_logged_ = false;
    if (!leaving_) publish_claim(id, ts, authenticated);
}

void Cluster::released(std::string_view id) {
    uint64_t ts = view_.release_here(id);
    if (ts == 0 || leaving_) return;
    char subject[kClusterSubjectMax];
    size_t n = cluster_subject_own(subject, sizeof subject, id);
    if (publish_control(std::string_view(subject, n), ClusterKind::release, 0, ts))
        ++stats_.releases_out;
    else
        own_dirty_ = true;
}

void Cluster::reassert(const ViewEntry& entry) {
    if (!leaving_) publish_claim(entry.key(), entry.timestamp(), entry.authenticated());
}

bool Cluster::claim_allowed(std::string_view id, bool authenticated) {
    if (authenticated || relay_.register_allowed(id)) return true;
    LOG_WARN("cluster: a claim of \"%s\" without AUTH was refused: the id is protected here (do "
             "all relays load the same auth file?)",
             LogId(id).text);
    return false;
}

void Cluster::holder_changed(std::string_view id, HolderChange change) {
    switch (change) {
        case HolderChange::came: relay_.remote_holder_changed(id, RemoteChange::came); break;
        case HolderChange::went: relay_.remote_holder_changed(id, RemoteChange::went); break;
        case HolderChange::moved: relay_.remote_holder_changed(id, RemoteChange::moved); break;
        case HolderChange::lost_here:
            ++stats_.lost_here;
            relay_.lost_to_remote(id);
            break;
    }
}

void Cluster::on_ownership(const NatsMessage& msg) {
    uint8_t id[255];
    size_t id_len = cluster_subject_id(msg.subject, "sp.own.", id);
    ClusterControl c;
    if (id_len == 0 || !cluster_parse_control(msg.payload, msg.payload_len, &c) ||
        (c.kind != ClusterKind::claim && c.kind != ClusterKind::release))
        return bad_message(msg, "not a claim or a release");
    ClusterNode* node = heard_from(c);
    if (node == nullptr) return;
    ++stats_.claims_in;
    std::string_view key = as_view(id, id_len);
    if (c.kind == ClusterKind::claim)
        view_.apply_claim(*node, key, c.timestamp, (c.flags & kClusterAuthenticated) != 0);
    else
        view_.apply_release(*node, key, c.timestamp);
}

// ---- liveness ---------------------------------------------------------------------------

void Cluster::publish_heartbeat(bool leaving) {
    if (leaving_) return;
    publish_control(subject_hb_, ClusterKind::heartbeat, leaving ? kClusterLeaving : 0, 0);
}

void Cluster::on_heartbeat(const NatsMessage& msg) {
    ClusterControl c;
    if (!cluster_parse_control(msg.payload, msg.payload_len, &c) ||
        c.kind != ClusterKind::heartbeat)
        return bad_message(msg, "not a heartbeat");
    ClusterNode* node = heard_from(c);
    if (node == nullptr) return;
    if ((c.flags & kClusterLeaving) != 0) {
        LOG_INFO("cluster: relay %.*s left: its %u devices are offline here",
                 static_cast<int>(c.node.size()), c.node.data(), node->holdings());
        view_.node_gone(*node, true);
        return;
    }
    if (view_.heartbeat(*node, c.holdings, c.digest, loop_.now_ms())) {
        LOG_INFO("cluster: what relay %.*s holds (%u ids) differs from what we know of it (%u): "
                 "asking it for a snapshot",
                 static_cast<int>(c.node.size()), c.node.data(), c.holdings, node->holdings());
        ask_sync("sp.sync." + std::string(c.node));
        view_.sync_asked(*node, loop_.now_ms());
    }
}

// ---- snapshots ---------------------------------------------------------------------------

void Cluster::ask_sync(std::string_view subject) {
    if (publish_control(subject, ClusterKind::sync_request, 0, 0, subject_inbox_))
        ++stats_.syncs_asked;
}

void Cluster::on_sync_request(const NatsMessage& msg) {
    ClusterControl c;
    if (!cluster_parse_control(msg.payload, msg.payload_len, &c) ||
        c.kind != ClusterKind::sync_request || msg.reply.empty() ||
        msg.reply.size() >= sizeof(SnapshotJob::reply))
        return bad_message(msg, "not a snapshot request");
    if (heard_from(c) == nullptr) return;
    if (!add_job(msg.reply)) {
        ++stats_.syncs_refused;
        LOG_WARN("cluster: %d snapshots are being sent already: a request from relay %.*s is "
                 "refused (it asks again while its view of this relay differs)",
                 kMaxJobs, static_cast<int>(c.node.size()), c.node.data());
    }
}

void Cluster::on_snapshot(const NatsMessage& msg) {
    ClusterControl c;
    if (!cluster_parse_control(msg.payload, msg.payload_len, &c) || c.kind != ClusterKind::snapshot)
        return bad_message(msg, "not a snapshot");
    ClusterNode* node = heard_from(c);
    if (node == nullptr) return;
    if (!view_.snapshot_batch(*node, c.snapshot_id, c.batch, c.flags, c.entries, c.entries_len))
        LOG_DEBUG("cluster: a snapshot of relay %.*s missed a batch: abandoned",
                  static_cast<int>(c.node.size()), c.node.data());
}

bool Cluster::add_job(std::string_view reply) {
    if (leaving_ || !link_.connected()) return false;
    SnapshotJob* job = nullptr;
    // A request from a relay whose snapshot is under way starts it again
    // (it abandons the one it was receiving when the new first batch
    // comes).
    for (SnapshotJob& j : jobs_)
        if (j.used && std::string_view(j.reply, j.reply_len) == reply) job = &j;
    if (job != nullptr) {
        view_.close_cursor(job->cursor);
    } else {
        for (SnapshotJob& j : jobs_)
            if (!j.used && job == nullptr) job = &j;
        if (job == nullptr) return false;
        job->order = next_job_order_++;
    }
    job->cursor = view_.open_cursor();
    if (job->cursor < 0) {
        job->used = false;
        return false;
    }
    job->used = true;
    job->snapshot_id = next_snapshot_id_++;
    job->batch = 0;
    job->reply_len = reply.size();
    std::memcpy(job->reply, reply.data(), reply.size());
    loop_.defer(*this);
    return true;
}

void Cluster::drop_jobs() {
    for (SnapshotJob& j : jobs_) {
        if (j.used) view_.close_cursor(j.cursor);
        j.used = false;
    }
}

void Cluster::pump_snapshots() {
    flush_batch();
    while (link_.connected() && link_.output_pending() < kSnapshotPumpBelow) {
        SnapshotJob* job = nullptr;
        for (SnapshotJob& j : jobs_)
            if (j.used && (job == nullptr || j.order < job->order)) job = &j;
        if (job == nullptr) return;
        ClusterControl c;
        c.kind = ClusterKind::snapshot;
        c.incarnation = incarnation_;
        c.node = options_.node_name;
        c.snapshot_id = job->snapshot_id;
        c.batch = job->batch;
        c.flags = job->batch == 0 ? kClusterFirstBatch : 0;
        uint8_t* out = batch_.get();
        size_t n = cluster_encode_control(out, kClusterControlHeaderMax + 16, c);
        const size_t header = n;
        while (const ViewEntry* e = view_.cursor_entry(job->cursor)) {
            if (n - header >= kSnapshotBatchBytes) break;
            n += cluster_encode_entry(out + n, kClusterSnapshotEntryMax, e->key(), e->timestamp(),
                                      e->authenticated() ? kClusterAuthenticated : 0);
            view_.cursor_advance(job->cursor);
        }
        bool last = view_.cursor_entry(job->cursor) == nullptr;
        if (last) out[2] |= kClusterLastBatch;
        std::string_view reply(job->reply, job->reply_len);
        bool sent = link_.publish(reply, {}, out, n);
        if (!sent || last) {
            // A dropped batch ends the snapshot (its receiver abandons it
            // at the gap); ours to everyone is published again later.
            if (!sent && reply == subject_snap_) own_dirty_ = true;
            if (sent) ++stats_.syncs_served;
            view_.close_cursor(job->cursor);
            job->used = false;
            continue;
        }
        ++job->batch;
    }
    // The rest on the next tick, once the link has drained.
}
