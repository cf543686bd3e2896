// cluster_wire.cpp - see cluster_wire.h.
#include "cluster_wire.h"

#include <cstring>

#include "nats_protocol.h"

namespace {

constexpr size_t kIdMax = 255;

void put_u32(uint8_t* p, uint32_t v) {
    for (int i = 3; i >= 0; --i) {
        p[i] = static_cast<uint8_t>(v);
        v >>= 8;
    }
}

void put_u64(uint8_t* p, uint64_t v) {
    for (int i = 7; i >= 0; --i) {
        p[i] = static_cast<uint8_t>(v);
        v >>= 8;
    }
}

uint32_t get_u32(const uint8_t* p) {
    uint32_t v = 0;
    for (int i = 0; i < 4; ++i) v = v << 8 | p[i];
    return v;
}

uint64_t get_u64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 0; i < 8; ++i) v = v << 8 | p[i];
    return v;
}

std::string_view as_view(const uint8_t* p, size_t n) {
    return std::string_view(reinterpret_cast<const char*>(p), n);
}

bool is_control(ClusterKind k) {
    return k == ClusterKind::claim || k == ClusterKind::release || k == ClusterKind::heartbeat ||
           k == ClusterKind::snapshot || k == ClusterKind::sync_request;
}

// Appends s to out[*n..cap); false if it does not fit.
bool append(char* out, size_t cap, size_t* n, std::string_view s) {
    if (s.size() > cap - *n) return false;
    std::memcpy(out + *n, s.data(), s.size());
    *n += s.size();
    return true;
}

// Appends id as a hex token.
bool append_id(char* out, size_t cap, size_t* n, std::string_view id) {
    if (id.empty() || id.size() > kIdMax) return false;
    size_t w = nats_token_encode(id.data(), id.size(), out + *n, cap - *n);
    if (w == 0) return false;
    *n += w;
    return true;
}

}  // namespace

bool cluster_node_name_valid(std::string_view name) {
    if (name.empty() || name.size() > kClusterNodeNameMax) return false;
    for (char c : name) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '_' || c == '-';
        if (!ok) return false;
    }
    return true;
}

// ---- subjects ----------------------------------------------------------------

size_t cluster_subject_data(char* out, size_t cap, std::string_view id) {
    size_t n = 0;
    return append(out, cap, &n, "sp.d.") && append_id(out, cap, &n, id) ? n : 0;
}

size_t cluster_subject_send_to(char* out, size_t cap, std::string_view node, std::string_view id) {
    size_t n = 0;
    if (!cluster_node_name_valid(node)) return 0;
    return append(out, cap, &n, "sp.to.") && append(out, cap, &n, node) &&
                   append(out, cap, &n, ".") && append_id(out, cap, &n, id)
               ? n
               : 0;
}

size_t cluster_subject_own(char* out, size_t cap, std::string_view id) {
    size_t n = 0;
    return append(out, cap, &n, "sp.own.") && append_id(out, cap, &n, id) ? n : 0;
}

size_t cluster_subject_node(char* out, size_t cap, std::string_view prefix, std::string_view node) {
    size_t n = 0;
    if (!cluster_node_name_valid(node)) return 0;
    return append(out, cap, &n, prefix) && append(out, cap, &n, ".") && append(out, cap, &n, node)
               ? n
               : 0;
}

size_t cluster_subject_id(std::string_view subject, std::string_view prefix, uint8_t* out) {
    if (subject.size() <= prefix.size() || subject.substr(0, prefix.size()) != prefix) return 0;
    return nats_token_decode(subject.substr(prefix.size()), out, kIdMax);
}

// ---- payloads ----------------------------------------------------------------

void cluster_encode_data_header(uint8_t* out, uint64_t incarnation, uint64_t sequence) {
    out[0] = kClusterWireVersion;
    out[1] = static_cast<uint8_t>(ClusterKind::data);
    put_u64(out + 2, incarnation);
    put_u64(out + 10, sequence);
}

void cluster_encode_entry_length(uint8_t* out, uint32_t len) { put_u32(out, len); }

size_t cluster_encode_send_to_header(uint8_t* out, std::string_view sender) {
    if (sender.empty() || sender.size() > kIdMax) return 0;
    out[0] = kClusterWireVersion;
    out[1] = static_cast<uint8_t>(ClusterKind::send_to);
    out[2] = static_cast<uint8_t>(sender.size());
    std::memcpy(out + 3, sender.data(), sender.size());
    return 3 + sender.size();
}

void cluster_encode_direct_header(uint8_t* out, const ClusterDirect& d) {
    out[0] = kClusterWireVersion;
    out[1] = static_cast<uint8_t>(ClusterKind::direct);
    put_u64(out + 2, d.from_relay);
    put_u64(out + 10, d.from_session);
    put_u64(out + 18, d.to_relay);
    put_u64(out + 26, d.to_session);
}

size_t cluster_encode_control(uint8_t* out, size_t cap, const ClusterControl& c) {
    if (!is_control(c.kind) || !cluster_node_name_valid(c.node)) return 0;
    size_t body = 0;
    switch (c.kind) {
        case ClusterKind::claim:
        case ClusterKind::release: body = 8; break;
        case ClusterKind::heartbeat: body = 4 + 8; break;
        case ClusterKind::snapshot: body = 8 + 4; break;
        default: break;
    }
    size_t n = 3 + 8 + 1 + c.node.size();
    if (n + body > cap) return 0;
    out[0] = kClusterWireVersion;
    out[1] = static_cast<uint8_t>(c.kind);
    out[2] = c.flags;
    put_u64(out + 3, c.incarnation);
    out[11] = static_cast<uint8_t>(c.node.size());
    std::memcpy(out + 12, c.node.data(), c.node.size());
    switch (c.kind) {
        case ClusterKind::claim:
        case ClusterKind::release: put_u64(out + n, c.timestamp); break;
        case ClusterKind::heartbeat:
            put_u32(out + n, c.holdings);
            put_u64(out + n + 4, c.digest);
            break;
        case ClusterKind::snapshot:
            put_u64(out + n, c.snapshot_id);
            put_u32(out + n + 8, c.batch);
            break;
        default: break;
    }
    return n + body;
}

size_t cluster_encode_entry(uint8_t* out, size_t cap, std::string_view id, uint64_t timestamp,
                            uint8_t flags) {
    if (id.empty() || id.size() > kIdMax || 10 + id.size() > cap) return 0;
    put_u64(out, timestamp);
    out[8] = flags;
    out[9] = static_cast<uint8_t>(id.size());
    std::memcpy(out + 10, id.data(), id.size());
    return 10 + id.size();
}

bool cluster_payload_kind(const uint8_t* p, size_t len, ClusterKind* kind) {
    if (len < 2 || p[0] != kClusterWireVersion || p[1] < 1 || p[1] > 8) return false;
    *kind = static_cast<ClusterKind>(p[1]);
    return true;
}

bool cluster_parse_data(const uint8_t* p, size_t len, ClusterData* out) {
    ClusterKind kind;
    if (!cluster_payload_kind(p, len, &kind) || kind != ClusterKind::data ||
        len < kClusterDataHeader)
        return false;
    out->incarnation = get_u64(p + 2);
    out->sequence = get_u64(p + 10);
    out->entries = p + kClusterDataHeader;
    out->len = len - kClusterDataHeader;
    // Every entry whole, and one at least.
    size_t off = 0;
    while (off < out->len) {
        if (out->len - off < kClusterDataEntryHeader) return false;
        uint32_t n = get_u32(out->entries + off);
        off += kClusterDataEntryHeader;
        if (n > out->len - off) return false;
        off += n;
    }
    return out->len > 0;
}

bool ClusterDataReader::next(const uint8_t** data, size_t* len) {
    if (off_ == len_) return false;
    uint32_t n = get_u32(p_ + off_);
    *data = p_ + off_ + kClusterDataEntryHeader;
    *len = n;
    off_ += kClusterDataEntryHeader + n;
    return true;
}

bool cluster_parse_send_to(const uint8_t* p, size_t len, ClusterSendTo* out) {
    ClusterKind kind;
    if (!cluster_payload_kind(p, len, &kind) || kind != ClusterKind::send_to || len < 3) return false;
    size_t sender_len = p[2];
    if (sender_len == 0 || len < 3 + sender_len) return false;
    out->sender = as_view(p + 3, sender_len);
    out->data = p + 3 + sender_len;
    out->len = len - 3 - sender_len;
    return true;
}

bool cluster_parse_direct(const uint8_t* p, size_t len, ClusterDirect* out) {
    ClusterKind kind;
    if (!cluster_payload_kind(p, len, &kind) || kind != ClusterKind::direct ||
        len <= kClusterDirectHeader || len - kClusterDirectHeader > P2P_DIRECT_MAX)
        return false;
    out->from_relay = get_u64(p + 2);
    out->from_session = get_u64(p + 10);
    out->to_relay = get_u64(p + 18);
    out->to_session = get_u64(p + 26);
    out->frame = p + kClusterDirectHeader;
    out->len = len - kClusterDirectHeader;
    uint8_t cmd = out->frame[0];
    bool step =
        cmd == P2P_CMD_DIRECT_RESULT || (cmd >= P2P_EVT_DIRECT_OFFER && cmd <= P2P_EVT_DIRECT_MARK);
    return step && p2p_direct_parse(out->frame, out->len, &out->step) == P2P_PARSE_OK;
}

bool cluster_parse_control(const uint8_t* p, size_t len, ClusterControl* out) {
    ClusterKind kind;
    if (!cluster_payload_kind(p, len, &kind) || !is_control(kind) || len < 12) return false;
    size_t name_len = p[11];
    size_t n = 12 + name_len;
    if (len < n) return false;
    *out = ClusterControl();
    out->kind = kind;
    out->flags = p[2];
    out->incarnation = get_u64(p + 3);
    out->node = as_view(p + 12, name_len);
    if (!cluster_node_name_valid(out->node)) return false;
    size_t rest = len - n;
    const uint8_t* b = p + n;
    switch (kind) {
        case ClusterKind::claim:
        case ClusterKind::release:
            if (rest != 8) return false;
            out->timestamp = get_u64(b);
            return true;
        case ClusterKind::heartbeat:
            if (rest != 12) return false;
            out->holdings = get_u32(b);
            out->digest = get_u64(b + 4);
            return true;
        case ClusterKind::snapshot:
            if (rest < 12) return false;
            out->snapshot_id = get_u64(b);
            out->batch = get_u32(b + 8);
            out->entries = b + 12;
            out->entries_len = rest - 12;
            return true;
        case ClusterKind::sync_request: return rest == 0;
        default: return false;
    }
}

bool ClusterEntryReader::next(std::string_view* id, uint64_t* timestamp, uint8_t* flags) {
    if (malformed_ || off_ == len_) return false;
    size_t rest = len_ - off_;
    const uint8_t* e = p_ + off_;
    if (rest < 10 || e[9] == 0 || rest < 10u + e[9]) {
        malformed_ = true;
        return false;
    }
    *timestamp = get_u64(e);
    *flags = e[8];
    *id = as_view(e + 10, e[9]);
    off_ += 10u + e[9];
    return true;
}
