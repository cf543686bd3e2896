// fuzz_nats.cpp - libFuzzer harness for what a relay reads from NATS: the
// NATS client protocol parser (src/server/nats_protocol.cpp) fed a server's
// byte stream, and the cluster decoder (src/server/cluster_wire.cpp) and
// the cluster room (src/server/cluster.cpp) fed every message that stream
// carries, as another relay (or anything else that can publish on the
// cluster's subjects) would send it.
//
// The first byte of the input says how (the rest is the stream):
//   bit 7      the rest is not a NATS stream but one cluster message:
//              [subject length u8][subject][payload], decoded as below
//   bit 6      small limits (control lines of 96 bytes, INFO of 512,
//              payloads of 300 until an INFO says otherwise), so that
//              every limit is reached by short inputs
//   bits 0..5  how the stream is cut into the chunks the parser sees as
//              they arrive: 0 byte by byte, else pseudo-random chunks of 1
//              to 4 * this many bytes
//
// The stream is parsed twice, whole and in chunks (appended to one buffer,
// parsed from the start of the current operation, as the link does), and
// both must give the same operations, field by field, then end the same
// way (the same error, or incomplete at the same offset). Every pointer an
// operation holds must lie inside the bytes given to the parser (each call
// sees an exact heap copy, so ASan catches a read past them). A MSG or HMSG
// written back in canonical form (single spaces, upper-case verb) must
// parse to the same fields; an INFO must leave NUL-terminated strings,
// bounded counts and a max_payload limit within the ceiling.
//
// Every message's subject and payload go through the cluster decoder:
// cluster_payload_kind(), the public entry point every receiver starts
// from, then every parser in kDecoders, whatever the kind byte says (a
// new kind that an existing parser takes is covered as it is; one with a
// parser of its own needs one line there); a parser that accepts must
// agree with the entry point, keep its pointers inside the payload, and
// its encoder must give back the payload's bytes exactly, kind byte
// included; snapshot entries are walked and re-encoded the same way.
// Subjects that decode to a device id must encode back to the same
// subject. Every message also reaches a real cluster room (ClusterWorld
// below) as the link would hand it over, dispatched by its sid as the
// room dispatches (a handler a new kind adds is reached as it is), with
// the view's and the relay's invariants checked after each. Any breach
// aborts.
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "cluster.h"
#include "cluster_wire.h"
#include "event_loop.h"
#include "fuzz.h"
#include "log.h"
#include "nats_protocol.h"
#include "relay.h"

namespace {

void check(bool ok) {
    if (!ok) std::abort();
}

bool inside(const void* p, size_t n, const uint8_t* base, size_t len) {
    const auto* q = static_cast<const uint8_t*>(p);
    if (n == 0) return true;  // an empty view may point anywhere (or nowhere)
    return q >= base && n <= len && static_cast<size_t>(q - base) <= len - n;
}

bool inside(std::string_view s, const uint8_t* base, size_t len) {
    return inside(s.data(), s.size(), base, len);
}

using Bytes = std::vector<uint8_t>;

// ---- the cluster decoder ----------------------------------------------------

// A subject that decodes to an id must be the one the encoder builds for
// that id: ids have exactly one spelling.
void check_subject(std::string_view subject) {
    uint8_t id[255];
    char again[kClusterSubjectMax];
    std::string_view v;
    size_t n = cluster_subject_id(subject, "sp.d.", id);
    if (n != 0) {
        v = std::string_view(reinterpret_cast<const char*>(id), n);
        check(std::string_view(again, cluster_subject_data(again, sizeof again, v)) == subject);
    }
    n = cluster_subject_id(subject, "sp.own.", id);
    if (n != 0) {
        v = std::string_view(reinterpret_cast<const char*>(id), n);
        check(std::string_view(again, cluster_subject_own(again, sizeof again, v)) == subject);
    }
    // sp.to.<node>.<id>: the node is the token after "sp.to.".
    constexpr std::string_view kTo = "sp.to.";
    if (subject.substr(0, kTo.size()) == kTo) {
        size_t dot = subject.find('.', kTo.size());
        if (dot != std::string_view::npos) {
            std::string_view node = subject.substr(kTo.size(), dot - kTo.size());
            n = cluster_subject_id(subject, subject.substr(0, dot + 1), id);
            if (n != 0 && cluster_node_name_valid(node)) {
                v = std::string_view(reinterpret_cast<const char*>(id), n);
                check(std::string_view(again, cluster_subject_send_to(again, sizeof again, node, v)) ==
                      subject);
            }
        }
    }
}

// Each decoder checks what its parser makes of p (false when the parser
// refuses p). Generic on purpose: every payload goes to every decoder, and
// no list of kinds is kept here: what a parser accepts must re-encode to
// the same bytes, kind byte included, so a kind the wire gains that an
// existing parser takes is covered as it is.
struct Decoder {
    const char* name;
    bool (*decode)(const uint8_t* p, size_t len);
};

bool decode_data(const uint8_t* p, size_t len) {
    ClusterData d;
    if (!cluster_parse_data(p, len, &d)) return false;
    check(d.len > 0 && inside(d.entries, d.len, p, len) && d.entries + d.len == p + len);
    Bytes again(kClusterDataHeader);
    cluster_encode_data_header(again.data(), d.incarnation, d.sequence);
    ClusterDataReader reader(d);
    const uint8_t* data = nullptr;
    size_t n = 0, count = 0;
    while (reader.next(&data, &n)) {
        check(inside(data, n, p, len) && n <= UINT32_MAX);
        uint8_t head[kClusterDataEntryHeader];
        cluster_encode_entry_length(head, static_cast<uint32_t>(n));
        again.insert(again.end(), head, head + sizeof head);
        again.insert(again.end(), data, data + n);
        check(++count <= len);
    }
    check(count >= 1 && again.size() == len && std::memcmp(again.data(), p, len) == 0);
    return true;
}

bool decode_send_to(const uint8_t* p, size_t len) {
    ClusterSendTo m;
    if (!cluster_parse_send_to(p, len, &m)) return false;
    check(!m.sender.empty() && inside(m.sender, p, len) && inside(m.data, m.len, p, len));
    uint8_t head[kClusterSendToHeaderMax];
    size_t h = cluster_encode_send_to_header(head, m.sender);
    check(h != 0 && h + m.len == len && std::memcmp(head, p, h) == 0);
    check(m.len == 0 || m.data == p + h);
    return true;
}

bool decode_control(const uint8_t* p, size_t len) {
    ClusterControl c;
    if (!cluster_parse_control(p, len, &c)) return false;
    check(static_cast<uint8_t>(c.kind) == p[1]);
    check(cluster_node_name_valid(c.node) && inside(c.node, p, len));
    uint8_t again[kClusterControlMax];
    size_t n = cluster_encode_control(again, sizeof again, c);
    check(n != 0 && n <= len && std::memcmp(again, p, n) == 0);
    if (c.kind != ClusterKind::snapshot) {
        check(n == len && c.entries == nullptr && c.entries_len == 0);
        return true;
    }
    // The entries follow the header; each one, re-encoded, is its bytes.
    check(c.entries == p + n && c.entries_len == len - n);
    ClusterEntryReader reader(c.entries, c.entries_len);
    std::string_view id;
    uint64_t ts = 0;
    uint8_t flags = 0;
    size_t off = 0;
    while (reader.next(&id, &ts, &flags)) {
        check(!id.empty() && inside(id, c.entries, c.entries_len));
        uint8_t entry[kClusterSnapshotEntryMax];
        size_t e = cluster_encode_entry(entry, sizeof entry, id, ts, flags);
        check(e != 0 && e <= c.entries_len - off && std::memcmp(entry, c.entries + off, e) == 0);
        off += e;
    }
    // Walked to the end, or stopped at the first entry that does not fit.
    check(reader.malformed() ? off < c.entries_len : off == c.entries_len);
    return true;
}

bool decode_direct(const uint8_t* p, size_t len) {
    ClusterDirect d;
    if (!cluster_parse_direct(p, len, &d)) return false;
    uint8_t head[kClusterDirectHeader];
    cluster_encode_direct_header(head, d);
    check(std::memcmp(head, p, sizeof head) == 0);
    check(d.frame == p + kClusterDirectHeader && d.len == len - kClusterDirectHeader);
    check(d.len <= P2P_DIRECT_MAX && d.frame[0] == d.step.cmd);
    check(d.step.cmd == P2P_CMD_DIRECT_RESULT ||
          (d.step.cmd >= P2P_EVT_DIRECT_OFFER && d.step.cmd <= P2P_EVT_DIRECT_MARK));
    check(d.step.id_len >= 1 && inside(d.step.id, d.step.id_len, p, len));
    return true;
}

// A message kind with a parser of its own gets a line here.
constexpr Decoder kDecoders[] = {
    {"data", decode_data},
    {"send_to", decode_send_to},
    {"control", decode_control},
    {"direct", decode_direct},
};

void check_cluster_message(std::string_view subject, const uint8_t* payload, size_t len) {
    check_subject(subject);
    // An exact copy: a parser reading past the payload is caught by ASan.
    Bytes copy(payload, payload + len);
    const uint8_t* p = copy.empty() ? nullptr : copy.data();
    ClusterKind kind{};
    bool known = cluster_payload_kind(p, len, &kind);
    check(!known || (len >= 2 && p[0] == kClusterWireVersion && static_cast<uint8_t>(kind) == p[1]));
    int accepted = 0;
    for (const Decoder& d : kDecoders) {
        if (!d.decode(p, len)) continue;
        check(known);  // nothing the entry point refuses parses
        ++accepted;
    }
    check(accepted <= 1);  // one layout per kind byte
}

// ---- the cluster room ---------------------------------------------------------

// A relay of a cluster that receives what the stream carries, as the link
// hands it over: the real Cluster room (cluster.cpp, its view and the
// relay's side of it) on a Relay without sessions. The link never
// connects (no server is configured: start() subscribes, then says it has
// nothing to connect to), so what the room publishes is dropped and
// counted; a MSG's sid picks the room's handler as on a real link (the
// room's subscriptions are sids 1 to 7, an sp.d.<id> interest any other).
// The loop is never run: its now_ms() stays 0, and each PING in the stream
// is a tick of 250 ms for the room's timers. After each operation the
// view's and the relay's own invariants must hold.
class ClusterWorld {
   public:
    ClusterWorld() : relay_(RelayLimits(), HashKey{1, 2}, &loop_), cluster_(loop_, relay_, options(), nullptr) {
        relay_.set_cluster(&cluster_);
        (void)cluster_.start();
        cluster_.on_nats_connected(NatsInfo());
    }
    ~ClusterWorld() { relay_.set_cluster(nullptr); }
    ClusterWorld(const ClusterWorld&) = delete;
    ClusterWorld& operator=(const ClusterWorld&) = delete;

    void message(const NatsMessage& m) {
        cluster_.on_nats_message(m);
        check_invariants();
    }
    void tick() {
        now_ += 250;
        cluster_.on_tick(now_);
        check_invariants();
    }

   private:
    static ClusterOptions options() {
        ClusterOptions o;
        o.node_name = "self";
        o.version = "fuzz";
        o.max_entries = 64;  // small: the view fills up
        return o;
    }
    void check_invariants() const {
        char why[256];
        check(cluster_.check_invariants(why, sizeof why));
        check(relay_.check_invariants(why, sizeof why));
    }

    EventLoop loop_;
    Relay relay_;
    Cluster cluster_;
    uint64_t now_ = 0;
};

// ---- the NATS parser --------------------------------------------------------

// One operation as parsed, with every view as an offset into the stream,
// so that the whole and the chunked parse can be compared.
struct Span {
    size_t off = 0, len = 0;
    bool operator==(const Span&) const = default;
};

struct Event {
    NatsOpType type = NatsOpType::ping;
    size_t start = 0, consumed = 0;
    Span subject, reply, sid_text, headers, payload, status_text, error_text;
    uint64_t sid = 0;
    int status = 0;
    NatsServerError error = NatsServerError::other;
    std::string info;  // the fields of NatsInfo, written out
    bool operator==(const Event&) const = default;
};

// How a parse of the stream ended.
struct End {
    NatsParseStatus status = NatsParseStatus::incomplete;
    NatsParseError error = NatsParseError::none;
    size_t at = 0;  // the start of the operation it ended in
    bool operator==(const End&) const = default;
};

Span span(const void* p, size_t n, const uint8_t* view, size_t view_off, size_t view_len) {
    check(inside(p, n, view, view_len));
    if (n == 0) return Span{};
    return Span{view_off + static_cast<size_t>(static_cast<const uint8_t*>(p) - view), n};
}

Span span(std::string_view s, const uint8_t* view, size_t view_off, size_t view_len) {
    return span(s.data(), s.size(), view, view_off, view_len);
}

bool terminated(const char* s, size_t cap) { return std::memchr(s, '\0', cap) != nullptr; }

std::string info_text(const NatsInfo& i, uint64_t limit) {
    check(terminated(i.server_id, sizeof i.server_id) && terminated(i.server_name, sizeof i.server_name) &&
          terminated(i.version, sizeof i.version) && terminated(i.nonce, sizeof i.nonce));
    check(i.connect_url_count <= kNatsMaxConnectUrls);
    // The limit INFO leaves: its max_payload (0: the default) clamped.
    uint64_t want = i.max_payload == 0 ? kNatsDefaultMaxPayload : i.max_payload;
    check(limit == (want < kNatsMaxPayloadCeiling ? want : kNatsMaxPayloadCeiling));
    std::string t = std::string(i.server_id) + '|' + i.server_name + '|' + i.version + '|' + i.nonce + '|' +
                    std::to_string(i.max_payload) + '|' + std::to_string(i.client_id) + '|' +
                    std::to_string(i.proto) + '|' + std::to_string(i.connect_urls_dropped) + '|' +
                    char('0' + i.headers) + char('0' + i.auth_required) + char('0' + i.tls_required) +
                    char('0' + i.ldm);
    for (size_t k = 0; k < i.connect_url_count; ++k) {
        check(terminated(i.connect_urls[k], kNatsMaxUrlText) && i.connect_urls[k][0] != '\0');
        t += '|';
        t += i.connect_urls[k];
    }
    return t;
}

// A MSG or HMSG written back with single spaces parses to the same fields.
void check_canonical(const NatsMessage& m, bool hmsg, const NatsParser::Limits& limits) {
    std::string line = std::string(hmsg ? "HMSG " : "MSG ") + std::string(m.subject) + ' ' +
                       std::string(m.sid_text) + ' ';
    if (!m.reply.empty()) line += std::string(m.reply) + ' ';
    if (hmsg) line += std::to_string(m.headers_len) + ' ';
    line += std::to_string(m.headers_len + m.payload_len) + "\r\n";
    Bytes b(line.begin(), line.end());
    if (hmsg) b.insert(b.end(), m.headers, m.headers + m.headers_len);
    if (m.payload_len != 0) b.insert(b.end(), m.payload, m.payload + m.payload_len);
    b.push_back('\r');
    b.push_back('\n');
    NatsParser again(limits);
    NatsOp op;
    NatsParseResult r = again.parse(b.data(), b.size(), &op);
    check(r.status == NatsParseStatus::op && r.consumed == b.size());
    const NatsMessage& a = op.msg;
    check(a.subject == m.subject && a.reply == m.reply && a.sid_text == m.sid_text && a.sid == m.sid);
    check(a.headers_len == m.headers_len && a.payload_len == m.payload_len && a.status == m.status &&
          a.status_text == m.status_text);
}

// Records one operation parsed from view[0..view_len), which starts at
// stream offset view_off, and checks it.
Event record(const NatsOp& op, const NatsParseResult& r, const NatsParser& parser, const uint8_t* view,
             size_t view_off, size_t view_len) {
    check(r.consumed > 0 && r.consumed <= view_len && r.error == NatsParseError::none);
    Event e;
    e.type = op.type;
    e.start = view_off;
    e.consumed = r.consumed;
    const uint8_t* end = view;  // the operation's bytes: view[0..consumed)
    size_t op_len = r.consumed;
    switch (op.type) {
        case NatsOpType::msg:
        case NatsOpType::hmsg: {
            const NatsMessage& m = op.msg;
            e.subject = span(m.subject, end, view_off, op_len);
            e.reply = span(m.reply, end, view_off, op_len);
            e.sid_text = span(m.sid_text, end, view_off, op_len);
            e.headers = span(m.headers, m.headers_len, end, view_off, op_len);
            e.payload = span(m.payload, m.payload_len, end, view_off, op_len);
            e.status_text = span(m.status_text, end, view_off, op_len);
            e.sid = m.sid;
            e.status = m.status;
            check(!m.subject.empty() && !m.sid_text.empty());
            check(m.payload_len <= parser.limits().max_payload);
            check((op.type == NatsOpType::hmsg) == (m.headers != nullptr));
            if (m.headers != nullptr) {
                check(m.headers_len >= 12 && inside(m.status_text, m.headers, m.headers_len));
                std::string_view value;
                if (nats_header_value(m.headers, m.headers_len, "Nats-Msg-Id", &value))
                    check(inside(value, m.headers, m.headers_len));
            }
            // The payload ends two bytes (CRLF) before the operation does.
            check(m.payload_len == 0 || m.payload + m.payload_len == view + r.consumed - 2);
            check_canonical(m, op.type == NatsOpType::hmsg, parser.limits());
            check_cluster_message(m.subject, m.payload, m.payload_len);
            break;
        }
        case NatsOpType::err:
            e.error_text = span(op.error_text, end, view_off, op_len);
            e.error = op.error;
            check(op.error == nats_classify_error(op.error_text));
            check(nats_server_error_name(op.error) != nullptr);
            (void)nats_error_closes(op.error);
            break;
        case NatsOpType::info:
            e.info = info_text(parser.info(), parser.limits().max_payload);
            break;
        default: break;
    }
    return e;
}

NatsParser::Limits limits_for(uint8_t mode) {
    NatsParser::Limits l;
    if (mode & 0x40) {
        l.max_control_line = 96;
        l.max_info_line = 512;
        l.max_payload = 300;
    }
    return l;
}

// The whole stream at once: each call sees the rest of it. Messages go to
// the cluster room too.
End parse_whole(const uint8_t* s, size_t n, uint8_t mode, std::vector<Event>* events) {
    NatsParser parser(limits_for(mode));
    ClusterWorld world;
    size_t off = 0;
    for (;;) {
        Bytes view(s + off, s + n);  // exact copy (see the file comment)
        NatsOp op;
        NatsParseResult r = parser.parse(view.data(), view.size(), &op);
        if (r.status != NatsParseStatus::op) {
            check(r.status == NatsParseStatus::error ? r.error != NatsParseError::none
                                                     : r.error == NatsParseError::none);
            check(nats_parse_error_name(r.error) != nullptr);
            if (r.status == NatsParseStatus::incomplete && r.needed != 0)
                check(r.needed > view.size() && r.message_bytes < r.needed);
            return End{r.status, r.error, off};
        }
        events->push_back(record(op, r, parser, view.data(), off, view.size()));
        if (op.type == NatsOpType::msg || op.type == NatsOpType::hmsg) world.message(op.msg);
        if (op.type == NatsOpType::ping) world.tick();
        off += r.consumed;
    }
}

// The stream in chunks: what has arrived of the current operation is
// parsed again after each chunk, as the link does.
End parse_chunked(const uint8_t* s, size_t n, uint8_t mode, std::vector<Event>* events) {
    NatsParser parser(limits_for(mode));
    uint32_t rng = 0x9e3779b9u ^ mode;
    size_t step = mode & 0x3f;
    size_t start = 0, have = 0;
    while (have < n) {
        size_t chunk = 1;
        if (step != 0) {
            rng ^= rng << 13;
            rng ^= rng >> 17;
            rng ^= rng << 5;
            chunk = 1 + rng % (4 * step);
        }
        have += chunk < n - have ? chunk : n - have;
        for (;;) {
            Bytes view(s + start, s + have);
            NatsOp op;
            NatsParseResult r = parser.parse(view.data(), view.size(), &op);
            if (r.status == NatsParseStatus::error) return End{r.status, r.error, start};
            if (r.status == NatsParseStatus::incomplete) break;
            events->push_back(record(op, r, parser, view.data(), start, view.size()));
            start += r.consumed;
        }
    }
    return End{NatsParseStatus::incomplete, NatsParseError::none, start};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
    static bool quiet = (log_set_level(LogLevel::error), true);
    (void)quiet;
    if (size == 0) return 0;
    uint8_t mode = data[0];
    const uint8_t* s = data + 1;
    size_t n = size - 1;
    if (mode & 0x80) {
        if (n == 0) return 0;
        size_t subject_len = s[0] < n - 1 ? s[0] : n - 1;
        const char* subject = reinterpret_cast<const char*>(s + 1);
        check_cluster_message(std::string_view(subject, subject_len), s + 1 + subject_len,
                              n - 1 - subject_len);
        return 0;
    }
    std::vector<Event> whole, chunked;
    End a = parse_whole(s, n, mode, &whole);
    End b = parse_chunked(s, n, mode, &chunked);
    check(whole == chunked);
    check(a == b);
    return 0;
}
