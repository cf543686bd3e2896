// cluster_wire.h - what the relays of a cluster say to each other over
// NATS: the subjects and the payloads, encoded and parsed. No I/O, no
// allocation, no state: the cluster room (cluster.h) publishes what this
// builds and hands what arrives to the parsers here. The design, with a
// table of every subject, is doc/cluster.md.
//
// Subjects ("<id>" is a device id as a lowercase hex token, nats_protocol.h;
// "<node>" a relay's node name, itself a token):
//   sp.d.<id>               data: SENDs from the relay holding <id>
//   sp.to.<node>.<id>       a SEND_TO <id>, or a direct-path step for <id>,
//                           for the relay <node> that holds it
//   sp.own.<id>             a claim of <id> by a relay, or its release
//   sp.hb.<node>            the heartbeat of relay <node>
//   sp.snap.<node>          the holdings of relay <node>, for everyone
//   sp.sync, sp.sync.<node> a request for the holdings of every relay, or of
//                           one; the answer goes to the request's reply
//                           subject, the requester's inbox sp.in.<node>
//
// Payloads are binary, big-endian, and start with a version byte (1) and a
// kind byte, so that a relay refuses what it does not understand (a
// foreign publisher, a newer relay) instead of misreading it:
//   data       [1][1][incarnation u64][sequence u64] then one or more
//              [length u32][data]: consecutive SENDs of one device,
//              batched (cluster.h)
//   send_to    [1][2][sender id length u8][sender id] then the data
//   direct     [1][8][from relay u64][from session u64][to relay u64]
//              [to session u64] then one DIRECT_* payload (codec.h): an
//              event 0x18..0x1B, or a RESULT 0x14 naming its sender
//              (relay_direct.cpp; "relay" is an incarnation, 0 for none)
//   control    [1][kind][flags u8][incarnation u64][node name length u8]
//              [node name] then, by kind:
//     claim, release   [claim timestamp u64]           (the id: the subject)
//     heartbeat        [holdings u32][digest u64]
//     snapshot         [snapshot id u64][batch u32] then entries
//                      [claim timestamp u64][flags u8][id length u8][id]...
//     sync_request     nothing
// Data carries the sending relay's incarnation and a sequence number per
// relay (per NATS message, a batch being one), so that a receiver takes
// data only from the holder it knows of, once, in order (cluster_view.h).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

#include "codec.h"

constexpr uint8_t kClusterWireVersion = 1;
// A node name: 1..64 of [A-Za-z0-9_-] (a subject token, and readable in
// logs).
constexpr size_t kClusterNodeNameMax = 64;
// The longest subject built here: sp.to.<node>.<id>, a 255-byte id.
constexpr size_t kClusterSubjectMax = 6 + kClusterNodeNameMax + 1 + 2 * 255 + 1;
// Bytes a data message starts with, and that each SEND in it adds.
constexpr size_t kClusterDataHeader = 2 + 8 + 8;
constexpr size_t kClusterDataEntryHeader = 4;
// Bytes a send_to message adds before the data, at most.
constexpr size_t kClusterSendToHeaderMax = 3 + 255;
// Bytes a direct message adds before its DIRECT_* payload.
constexpr size_t kClusterDirectHeader = 2 + 4 * 8;
// Bytes of a control header, at most (the longest node name).
constexpr size_t kClusterControlHeaderMax = 3 + 8 + 1 + kClusterNodeNameMax;
// Control messages other than snapshots fit in this.
constexpr size_t kClusterControlMax = kClusterControlHeaderMax + 8 + 4 + 8;
// A snapshot entry: timestamp, flags, length, id.
constexpr size_t kClusterSnapshotEntryMax = 8 + 1 + 1 + 255;

enum class ClusterKind : uint8_t {
    data = 1,
    send_to = 2,
    claim = 3,
    release = 4,
    heartbeat = 5,
    snapshot = 6,
    sync_request = 7,
    direct = 8,
};

// Control flags.
constexpr uint8_t kClusterAuthenticated = 1;  // claim, snapshot entry: claimed by AUTH
constexpr uint8_t kClusterLeaving = 1;        // heartbeat: the relay is shutting down
constexpr uint8_t kClusterFirstBatch = 1;     // snapshot: the first batch of a snapshot
constexpr uint8_t kClusterLastBatch = 2;      // snapshot: the last one

bool cluster_node_name_valid(std::string_view name);

// ---- subjects ----------------------------------------------------------------
// Each writes the subject into out[0..cap) and returns its length, or 0
// when an argument is invalid (an empty or overlong id, a bad node name) or
// out is too small.

size_t cluster_subject_data(char* out, size_t cap, std::string_view id);
size_t cluster_subject_send_to(char* out, size_t cap, std::string_view node, std::string_view id);
size_t cluster_subject_own(char* out, size_t cap, std::string_view id);
// prefix.<node>: "sp.hb", "sp.snap", "sp.sync", "sp.in", "sp.to" (the
// latter with ".>" appended by the caller for its subscription).
size_t cluster_subject_node(char* out, size_t cap, std::string_view prefix, std::string_view node);

// The id of a subject "<prefix><hex id>" (prefix "sp.d." or "sp.own."), or
// of "sp.to.<node>.<hex id>" (prefix "sp.to.<node>."), decoded into
// out[0..255]. Returns its length, or 0 if the subject is not of that form.
size_t cluster_subject_id(std::string_view subject, std::string_view prefix, uint8_t* out);

// ---- payloads ----------------------------------------------------------------

// A data message: its header, and its SENDs (entries) for ClusterDataReader.
struct ClusterData {
    uint64_t incarnation = 0;
    uint64_t sequence = 0;
    const uint8_t* entries = nullptr;
    size_t len = 0;
};

struct ClusterSendTo {
    std::string_view sender;
    const uint8_t* data = nullptr;
    size_t len = 0;
};

// A direct-path step between two devices on different relays: the
// sender's end (its relay's incarnation, its connection's session id) and
// the end it is for (0 for "any": whichever relay, whichever session holds
// the target), then the DIRECT_* payload, split.
struct ClusterDirect {
    uint64_t from_relay = 0;
    uint64_t from_session = 0;
    uint64_t to_relay = 0;
    uint64_t to_session = 0;
    const uint8_t* frame = nullptr;
    size_t len = 0;
    p2p_direct step{};  // frame, split: step.id is the sender's id
};

// Any control message; the fields its kind has are set.
struct ClusterControl {
    ClusterKind kind = ClusterKind::claim;
    uint8_t flags = 0;
    uint64_t incarnation = 0;
    std::string_view node;
    uint64_t timestamp = 0;    // claim, release
    uint32_t holdings = 0;     // heartbeat
    uint64_t digest = 0;       // heartbeat
    uint64_t snapshot_id = 0;  // snapshot
    uint32_t batch = 0;        // snapshot
    const uint8_t* entries = nullptr;  // snapshot: the entries, for ClusterEntryReader
    size_t entries_len = 0;
};

// The header of a data message into out (kClusterDataHeader bytes); the
// caller appends its entries, each the length (cluster_encode_entry_length,
// kClusterDataEntryHeader bytes) then the data.
void cluster_encode_data_header(uint8_t* out, uint64_t incarnation, uint64_t sequence);
void cluster_encode_entry_length(uint8_t* out, uint32_t len);
// The header of a send_to message into out (at least kClusterSendToHeaderMax
// bytes); returns its length, 0 for an empty or overlong sender.
size_t cluster_encode_send_to_header(uint8_t* out, std::string_view sender);
// The header of a direct message into out (kClusterDirectHeader bytes); the
// caller appends the DIRECT_* payload.
void cluster_encode_direct_header(uint8_t* out, const ClusterDirect& d);
// A whole control message (not a snapshot's entries: the caller appends
// them) into out[0..cap); returns its length or 0 (an invalid node name,
// out too small).
size_t cluster_encode_control(uint8_t* out, size_t cap, const ClusterControl& c);
// One snapshot entry into out[0..cap); returns its length or 0.
size_t cluster_encode_entry(uint8_t* out, size_t cap, std::string_view id, uint64_t timestamp,
                            uint8_t flags);

// The kind of a payload (its second byte) if its version is ours; false
// otherwise.
bool cluster_payload_kind(const uint8_t* p, size_t len, ClusterKind* kind);
// Parsers: false when the payload is not a well-formed message of that
// kind (wrong version or kind, too short, trailing bytes where none may be,
// an invalid node name, an empty id). Pointers point into p.
// A data message parses only if its entries are whole and at least one.
bool cluster_parse_data(const uint8_t* p, size_t len, ClusterData* out);
bool cluster_parse_send_to(const uint8_t* p, size_t len, ClusterSendTo* out);
bool cluster_parse_control(const uint8_t* p, size_t len, ClusterControl* out);
// A direct message parses only if its payload is one DIRECT_* event
// (0x18..0x1B) or RESULT (0x14) that p2p_direct_parse() accepts whole.
bool cluster_parse_direct(const uint8_t* p, size_t len, ClusterDirect* out);

// Walks the SENDs of a data message that cluster_parse_data() accepted.
class ClusterDataReader {
   public:
    explicit ClusterDataReader(const ClusterData& d) : p_(d.entries), len_(d.len) {}
    bool next(const uint8_t** data, size_t* len);

   private:
    const uint8_t* p_;
    size_t len_;
    size_t off_ = 0;
};

// Walks a snapshot's entries. next() returns false at the end, or at the
// first malformed entry (then malformed() is true).
class ClusterEntryReader {
   public:
    ClusterEntryReader(const uint8_t* p, size_t len) : p_(p), len_(len) {}
    bool next(std::string_view* id, uint64_t* timestamp, uint8_t* flags);
    bool malformed() const { return malformed_; }

   private:
    const uint8_t* p_;
    size_t len_;
    size_t off_ = 0;
    bool malformed_ = false;
};
