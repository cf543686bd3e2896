// fuzz_cluster_wire.cpp - libFuzzer harness for what the relays of a
// cluster say to each other (src/server/cluster_wire.cpp): whatever a
// foreign or broken publisher on the same NATS could put on our subjects.
//
// The input is given whole to every parser, as a payload, and as a subject
// to the subject decoder. What must hold, or the harness aborts:
//  - no parser reads outside the input (ASan) or misbehaves (UBSan);
//  - the kind byte decides: a payload parses as at most one kind, the one
//    cluster_payload_kind() says;
//  - what parses encodes back to the very same bytes (data header and
//    entries, send_to header, control messages, direct header), and its
//    pieces (entries, sender, DIRECT_* step) lie inside the input;
//  - a direct message's step is a DIRECT_* event or a RESULT that the
//    codec accepts whole;
//  - a subject decodes to 1..255 bytes whose hex is the subject's tail.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string_view>

#include "cluster_wire.h"
#include "codec.h"
#include "fuzz.h"
#include "nats_protocol.h"

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool inside(const uint8_t* p, size_t n, const uint8_t* base, size_t len) {
    return p >= base && p + n <= base + len;
}

void data_message(const uint8_t* p, size_t len) {
    ClusterData d;
    if (!cluster_parse_data(p, len, &d)) return;
    uint8_t head[kClusterDataHeader];
    cluster_encode_data_header(head, d.incarnation, d.sequence);
    check(std::memcmp(head, p, sizeof head) == 0);
    ClusterDataReader reader(d);
    const uint8_t* entry = nullptr;
    size_t n = 0, used = 0, count = 0;
    while (reader.next(&entry, &n)) {
        check(inside(entry, n, p, len));
        uint8_t length[kClusterDataEntryHeader];
        cluster_encode_entry_length(length, static_cast<uint32_t>(n));
        check(std::memcmp(length, entry - sizeof length, sizeof length) == 0);
        used += sizeof length + n;
        ++count;
    }
    check(count >= 1 && used == d.len);
}

void send_to_message(const uint8_t* p, size_t len) {
    ClusterSendTo s;
    if (!cluster_parse_send_to(p, len, &s)) return;
    uint8_t head[kClusterSendToHeaderMax];
    size_t n = cluster_encode_send_to_header(head, s.sender);
    check(n != 0 && n + s.len == len && std::memcmp(head, p, n) == 0);
    check(inside(s.data, s.len, p, len) || s.len == 0);
}

void control_message(const uint8_t* p, size_t len) {
    ClusterControl c;
    if (!cluster_parse_control(p, len, &c)) return;
    uint8_t out[kClusterControlMax];
    size_t n = cluster_encode_control(out, sizeof out, c);
    check(n != 0 && n <= len && std::memcmp(out, p, n) == 0);
    if (c.kind != ClusterKind::snapshot) {
        check(n == len);
        return;
    }
    check(n + c.entries_len == len && inside(c.entries, c.entries_len, p, len));
    ClusterEntryReader reader(c.entries, c.entries_len);
    std::string_view id;
    uint64_t timestamp = 0;
    uint8_t flags = 0;
    while (reader.next(&id, &timestamp, &flags)) {
        uint8_t entry[kClusterSnapshotEntryMax];
        size_t e = cluster_encode_entry(entry, sizeof entry, id, timestamp, flags);
        check(e != 0 && inside(reinterpret_cast<const uint8_t*>(id.data()), id.size(), p, len));
    }
}

void direct_message(const uint8_t* p, size_t len) {
    ClusterDirect d;
    if (!cluster_parse_direct(p, len, &d)) return;
    uint8_t head[kClusterDirectHeader];
    cluster_encode_direct_header(head, d);
    check(std::memcmp(head, p, sizeof head) == 0);
    check(d.frame == p + kClusterDirectHeader && d.len == len - kClusterDirectHeader);
    check(d.len <= P2P_DIRECT_MAX);
    uint8_t cmd = d.frame[0];
    check(cmd == d.step.cmd);
    check(cmd == P2P_CMD_DIRECT_RESULT ||
          (cmd >= P2P_EVT_DIRECT_OFFER && cmd <= P2P_EVT_DIRECT_MARK));
    check(d.step.id_len >= 1 && inside(d.step.id, d.step.id_len, p, len));
}

void subject(const uint8_t* p, size_t len) {
    std::string_view s(reinterpret_cast<const char*>(p), len);
    for (std::string_view prefix : {"sp.d.", "sp.own.", "sp.to.r1."}) {
        uint8_t id[255];
        size_t n = cluster_subject_id(s, prefix, id);
        if (n == 0) continue;
        check(n <= 255 && s.substr(0, prefix.size()) == prefix);
        char hex[2 * 255 + 1];
        size_t w = nats_token_encode(reinterpret_cast<const char*>(id), n, hex, sizeof hex);
        check(w == 2 * n && s.substr(prefix.size()) == std::string_view(hex, w));
    }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    ClusterKind kind;
    bool known = cluster_payload_kind(data, size, &kind);
    ClusterData d;
    ClusterSendTo s;
    ClusterControl c;
    ClusterDirect x;
    int parsed = cluster_parse_data(data, size, &d) + cluster_parse_send_to(data, size, &s) +
                 cluster_parse_control(data, size, &c) + cluster_parse_direct(data, size, &x);
    check(parsed <= 1 && (parsed == 0 || known));
    data_message(data, size);
    send_to_message(data, size);
    control_message(data, size);
    direct_message(data, size);
    subject(data, size);
    return 0;
}
