// test_cluster_wire.cpp - unit tests for src/server/cluster_wire.{h,cpp}:
// the subjects and binary payloads the relays of a cluster exchange. Every
// message is encoded and parsed back, byte-exact against the layout in
// cluster_wire.h; every shorter prefix of every message is refused, and so
// are trailing bytes, other versions and kinds, bad node names and
// malformed ids (what a foreign publisher on the same NATS could send).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "cluster_wire.h"

extern "C" {
#include <cmocka.h>
}

namespace {

using Bytes = std::vector<uint8_t>;

void test_node_names(void**) {
    assert_true(cluster_node_name_valid("r0"));
    assert_true(cluster_node_name_valid("relay_1-eu"));
    assert_true(cluster_node_name_valid(std::string(64, 'a')));
    assert_false(cluster_node_name_valid(""));
    assert_false(cluster_node_name_valid(std::string(65, 'a')));
    for (const char* bad : {"a.b", "a b", "a*", "a>", "é", "a\tb", "a/b"})
        if (cluster_node_name_valid(bad)) fail_msg("accepted '%s'", bad);
}

void test_subjects(void**) {
    char s[kClusterSubjectMax];
    size_t n = cluster_subject_data(s, sizeof s, std::string_view("dev\0\xff", 5));
    assert_string_equal(std::string(s, n).c_str(), "sp.d.64657600ff");
    n = cluster_subject_own(s, sizeof s, "A");
    assert_string_equal(std::string(s, n).c_str(), "sp.own.41");
    n = cluster_subject_send_to(s, sizeof s, "r1", "ab");
    assert_string_equal(std::string(s, n).c_str(), "sp.to.r1.6162");
    n = cluster_subject_node(s, sizeof s, "sp.hb", "node-7");
    assert_string_equal(std::string(s, n).c_str(), "sp.hb.node-7");
    // The longest: a 64-character node and a 255-byte id.
    std::string node(64, 'n'), id(255, '\x7f');
    n = cluster_subject_send_to(s, sizeof s, node, id);
    assert_int_equal(n, 6 + 64 + 1 + 510);
    assert_true(n <= kClusterSubjectMax);
    // Refused: empty or overlong ids, bad node names, no room.
    assert_int_equal(cluster_subject_data(s, sizeof s, ""), 0);
    assert_int_equal(cluster_subject_data(s, sizeof s, std::string(256, 'x')), 0);
    assert_int_equal(cluster_subject_send_to(s, sizeof s, "a.b", "x"), 0);
    assert_int_equal(cluster_subject_node(s, sizeof s, "sp.hb", ""), 0);
    assert_int_equal(cluster_subject_data(s, 7, "ab"), 0);

    uint8_t out[255];
    assert_int_equal(cluster_subject_id("sp.d.64657600ff", "sp.d.", out), 5);
    assert_memory_equal(out, "dev\0\xff", 5);
    assert_int_equal(cluster_subject_id("sp.to.r1.6162", "sp.to.r1.", out), 2);
    for (const char* bad : {"sp.d.", "sp.d.6", "sp.d.6G", "sp.d.6A", "sp.x.61", "sp.d", "sp.d.61.62"})
        if (cluster_subject_id(bad, "sp.d.", out) != 0) fail_msg("decoded '%s'", bad);
    assert_int_equal(cluster_subject_id("sp.to.r2.61", "sp.to.r1.", out), 0);
    std::string too_long = "sp.d." + std::string(512, 'a');
    assert_int_equal(cluster_subject_id(too_long, "sp.d.", out), 0);
}

// Every prefix shorter than the whole must be refused by parse.
template <class Parse>
void every_prefix_refused(const Bytes& whole, Parse parse) {
    for (size_t n = 0; n < whole.size(); ++n)
        if (parse(whole.data(), n)) fail_msg("a prefix of %zu of %zu bytes parsed", n, whole.size());
}

void test_data(void**) {
    Bytes m(kClusterDataHeader);
    cluster_encode_data_header(m.data(), 0x0102030405060708ull, 0x1112131415161718ull);
    const Bytes head = {1, 1, 1, 2, 3, 4, 5, 6, 7, 8, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18};
    assert_true(m == head);
    // Three SENDs: "hi", an empty one, "abc".
    for (const char* data : {"hi", "", "abc"}) {
        uint8_t len[kClusterDataEntryHeader];
        cluster_encode_entry_length(len, static_cast<uint32_t>(std::strlen(data)));
        m.insert(m.end(), len, len + sizeof len);
        m.insert(m.end(), data, data + std::strlen(data));
    }
    assert_true(Bytes(m.begin() + kClusterDataHeader, m.begin() + kClusterDataHeader + 6) ==
                (Bytes{0, 0, 0, 2, 'h', 'i'}));
    ClusterData d;
    assert_true(cluster_parse_data(m.data(), m.size(), &d));
    assert_true(d.incarnation == 0x0102030405060708ull);
    assert_true(d.sequence == 0x1112131415161718ull);
    ClusterDataReader r(d);
    std::string got;
    const uint8_t* p = nullptr;
    size_t n = 0;
    while (r.next(&p, &n)) got += "[" + std::string(reinterpret_cast<const char*>(p), n) + "]";
    assert_string_equal(got.c_str(), "[hi][][abc]");
    // A prefix parses exactly when it ends between two SENDs (after the
    // first): a header alone has none, and a cut entry is refused.
    for (size_t k = 0; k <= m.size(); ++k) {
        bool boundary = k == kClusterDataHeader + 6 || k == kClusterDataHeader + 10 || k == m.size();
        if (cluster_parse_data(m.data(), k, &d) != boundary)
            fail_msg("a prefix of %zu of %zu bytes: parsed %d", k, m.size(), !boundary);
    }
    // A length that runs past the end.
    Bytes bad = head;
    bad.insert(bad.end(), {0, 0, 1, 0, 'x'});
    assert_false(cluster_parse_data(bad.data(), bad.size(), &d));
    Bytes other = m;
    other[0] = 2;  // another version
    assert_false(cluster_parse_data(other.data(), other.size(), &d));
    other = m;
    other[1] = static_cast<uint8_t>(ClusterKind::claim);
    assert_false(cluster_parse_data(other.data(), other.size(), &d));
}

void test_send_to(void**) {
    uint8_t head[kClusterSendToHeaderMax];
    size_t n = cluster_encode_send_to_header(head, "me");
    Bytes m(head, head + n);
    assert_true(m == (Bytes{1, 2, 2, 'm', 'e'}));
    m.insert(m.end(), {'x', 'y', 'z'});
    ClusterSendTo s;
    assert_true(cluster_parse_send_to(m.data(), m.size(), &s));
    assert_string_equal(std::string(s.sender).c_str(), "me");
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.data, "xyz", 3);
    every_prefix_refused(Bytes(head, head + n),
                         [&](const uint8_t* p, size_t k) { return cluster_parse_send_to(p, k, &s); });
    assert_int_equal(cluster_encode_send_to_header(head, ""), 0);
    assert_int_equal(cluster_encode_send_to_header(head, std::string(256, 'a')), 0);
    assert_int_equal(cluster_encode_send_to_header(head, std::string(255, 'a')), 258);
    const Bytes empty_sender = {1, 2, 0, 'x'};
    assert_false(cluster_parse_send_to(empty_sender.data(), empty_sender.size(), &s));
}

// A direct message: the header for d, then frame.
Bytes direct(const ClusterDirect& d, const uint8_t* frame, size_t len) {
    Bytes m(kClusterDirectHeader);
    cluster_encode_direct_header(m.data(), d);
    m.insert(m.end(), frame, frame + len);
    return m;
}

void test_direct(void**) {
    ClusterDirect d;
    d.from_relay = 0x0102030405060708ull;
    d.from_session = 0x1112131415161718ull;
    d.to_relay = 0x2122232425262728ull;
    d.to_session = 0x3132333435363738ull;
    uint8_t frame[P2P_DIRECT_MAX];
    size_t n = p2p_encode_direct_sync(frame, P2P_EVT_DIRECT_SYNC,
                                      reinterpret_cast<const uint8_t*>("me"), 2, 0xA0B0C0D0u);
    Bytes m = direct(d, frame, n);
    const Bytes want = {1,    8,    1,    2,    3,    4,    5,    6,    7,    8,    0x11,
                        0x12, 0x13, 0x14, 0x15, 0x16, 0x17, 0x18, 0x21, 0x22, 0x23, 0x24,
                        0x25, 0x26, 0x27, 0x28, 0x31, 0x32, 0x33, 0x34, 0x35, 0x36, 0x37,
                        0x38, 0x1A, 2,    'm',  'e',  0xA0, 0xB0, 0xC0, 0xD0};
    assert_true(m == want);
    ClusterKind kind;
    assert_true(cluster_payload_kind(m.data(), m.size(), &kind));
    assert_int_equal(static_cast<int>(kind), static_cast<int>(ClusterKind::direct));
    ClusterDirect p;
    assert_true(cluster_parse_direct(m.data(), m.size(), &p));
    assert_true(p.from_relay == d.from_relay && p.from_session == d.from_session);
    assert_true(p.to_relay == d.to_relay && p.to_session == d.to_session);
    assert_int_equal(p.len, n);
    assert_ptr_equal(p.frame, m.data() + kClusterDirectHeader);
    assert_int_equal(p.step.cmd, P2P_EVT_DIRECT_SYNC);
    assert_int_equal(p.step.id_len, 2);
    assert_memory_equal(p.step.id, "me", 2);
    assert_int_equal(p.step.attempt, 0xA0B0C0D0u);
    every_prefix_refused(
        m, [&](const uint8_t* q, size_t k) { return cluster_parse_direct(q, k, &p); });
    // Trailing bytes make the step malformed.
    Bytes longer = m;
    longer.push_back(0);
    assert_false(cluster_parse_direct(longer.data(), longer.size(), &p));
    // Not another kind, nor another version.
    Bytes bad = m;
    bad[1] = static_cast<uint8_t>(ClusterKind::send_to);
    assert_false(cluster_parse_direct(bad.data(), bad.size(), &p));
    bad = m;
    bad[0] = 2;
    assert_false(cluster_parse_direct(bad.data(), bad.size(), &p));

    // Every step that may cross relays parses: the four events and RESULT.
    const uint8_t nonce[P2P_DIRECT_NONCE_SIZE] = {7};
    const uint8_t secret[P2P_DIRECT_SECRET_SIZE] = {9};
    p2p_candidate c{};
    c.kind = P2P_CANDIDATE_REFLEXIVE;
    c.port = 4242;
    c.addr_len = 4;
    std::memcpy(c.addr, "\x7f\0\0\x01", 4);
    const uint8_t* id = reinterpret_cast<const uint8_t*>("peer");
    auto encode = [&](uint8_t cmd) -> size_t {
        switch (cmd) {
            case P2P_EVT_DIRECT_OFFER:
                return p2p_encode_direct_offer_event(frame, id, 4, 5, secret, nonce, 80, &c, 1);
            case P2P_EVT_DIRECT_ANSWER:
                return p2p_encode_direct_answer(frame, P2P_EVT_DIRECT_ANSWER, id, 4, 5,
                                                P2P_DIRECT_ACCEPT, nonce, 81, &c, 1);
            case P2P_EVT_DIRECT_MARK:
                return p2p_encode_direct_mark(frame, P2P_EVT_DIRECT_MARK, id, 4, 5, P2P_MARK_SWITCH,
                                              1);
            default:
                return p2p_encode_direct_result(frame, id, 4, 5, P2P_DIRECT_OUTCOME_DIRECT, 30);
        }
    };
    for (uint8_t cmd : {uint8_t{P2P_EVT_DIRECT_OFFER}, uint8_t{P2P_EVT_DIRECT_ANSWER},
                        uint8_t{P2P_EVT_DIRECT_MARK}, uint8_t{P2P_CMD_DIRECT_RESULT}}) {
        Bytes one = direct(d, frame, encode(cmd));
        if (!cluster_parse_direct(one.data(), one.size(), &p)) fail_msg("step 0x%02x refused", cmd);
        assert_int_equal(p.step.cmd, cmd);
        assert_int_equal(p.step.id_len, 4);
        assert_int_equal(p.step.attempt, 5);
        every_prefix_refused(
            one, [&](const uint8_t* q, size_t k) { return cluster_parse_direct(q, k, &p); });
    }
    // Requests other than RESULT never cross (they are answered where they
    // are made), nor replies, nor anything else.
    n = p2p_encode_direct_sync(frame, P2P_CMD_DIRECT_SYNC, id, 4, 5);
    Bytes request = direct(d, frame, n);
    assert_false(cluster_parse_direct(request.data(), request.size(), &p));
    n = p2p_encode_direct_mark(frame, P2P_CMD_DIRECT_MARK, id, 4, 5, P2P_MARK_SWITCH, 1);
    request = direct(d, frame, n);
    assert_false(cluster_parse_direct(request.data(), request.size(), &p));
    for (uint8_t cmd :
         {uint8_t{0x03}, uint8_t{0x09}, uint8_t{0x90}, uint8_t{0x1C}, uint8_t{0xFF}}) {
        frame[0] = cmd;
        Bytes other = direct(d, frame, 8);
        if (cluster_parse_direct(other.data(), other.size(), &p)) fail_msg("0x%02x taken", cmd);
    }
    // An event with an empty id, and one longer than any DIRECT_* payload.
    const uint8_t empty_id[] = {P2P_EVT_DIRECT_SYNC, 0, 0, 0, 0, 5};
    Bytes e = direct(d, empty_id, sizeof empty_id);
    assert_false(cluster_parse_direct(e.data(), e.size(), &p));
    Bytes huge = direct(d, frame, 1);
    huge.resize(kClusterDirectHeader + P2P_DIRECT_MAX + 1, 0);
    huge[kClusterDirectHeader] = P2P_EVT_DIRECT_OFFER;
    assert_false(cluster_parse_direct(huge.data(), huge.size(), &p));
}

Bytes control(const ClusterControl& c) {
    uint8_t out[kClusterControlMax];
    size_t n = cluster_encode_control(out, sizeof out, c);
    assert_true(n > 0);
    return Bytes(out, out + n);
}

void test_control_messages(void**) {
    ClusterControl c;
    c.kind = ClusterKind::claim;
    c.flags = kClusterAuthenticated;
    c.incarnation = 0xA1A2A3A4A5A6A7A8ull;
    c.node = "r1";
    c.timestamp = 0x0000018C00000001ull;
    Bytes claim = control(c);
    const Bytes want = {1,    3,    1,    0xA1, 0xA2, 0xA3, 0xA4, 0xA5, 0xA6, 0xA7, 0xA8, 2, 'r',
                        '1',  0x00, 0x00, 0x01, 0x8C, 0x00, 0x00, 0x00, 0x01};
    assert_true(claim == want);
    ClusterControl p;
    assert_true(cluster_parse_control(claim.data(), claim.size(), &p));
    assert_true(p.kind == ClusterKind::claim);
    assert_int_equal(p.flags, kClusterAuthenticated);
    assert_true(p.incarnation == c.incarnation);
    assert_string_equal(std::string(p.node).c_str(), "r1");
    assert_true(p.timestamp == c.timestamp);
    every_prefix_refused(claim, [&](const uint8_t* b, size_t n) { return cluster_parse_control(b, n, &p); });
    Bytes longer = claim;
    longer.push_back(0);
    assert_false(cluster_parse_control(longer.data(), longer.size(), &p));

    c.kind = ClusterKind::release;
    c.flags = 0;
    Bytes release = control(c);
    assert_true(cluster_parse_control(release.data(), release.size(), &p));
    assert_true(p.kind == ClusterKind::release && p.timestamp == c.timestamp);

    c.kind = ClusterKind::heartbeat;
    c.flags = kClusterLeaving;
    c.holdings = 70000;
    c.digest = 0xDEADBEEFCAFEF00Dull;
    Bytes hb = control(c);
    assert_int_equal(hb.size(), 12 + 2 + 12);
    assert_true(cluster_parse_control(hb.data(), hb.size(), &p));
    assert_true(p.kind == ClusterKind::heartbeat && p.holdings == 70000 && p.digest == c.digest);
    assert_int_equal(p.flags, kClusterLeaving);
    every_prefix_refused(hb, [&](const uint8_t* b, size_t n) { return cluster_parse_control(b, n, &p); });

    c.kind = ClusterKind::sync_request;
    Bytes req = control(c);
    assert_int_equal(req.size(), 14);
    assert_true(cluster_parse_control(req.data(), req.size(), &p));
    assert_true(p.kind == ClusterKind::sync_request);
    longer = req;
    longer.push_back(1);
    assert_false(cluster_parse_control(longer.data(), longer.size(), &p));

    // Bad node names, other kinds and versions.
    c.node = "a.b";
    uint8_t out[kClusterControlMax];
    assert_int_equal(cluster_encode_control(out, sizeof out, c), 0);
    Bytes bad = claim;
    bad[12] = '.';
    assert_false(cluster_parse_control(bad.data(), bad.size(), &p));
    bad = claim;
    bad[11] = 0;  // empty name
    assert_false(cluster_parse_control(bad.data(), bad.size(), &p));
    bad = claim;
    bad[1] = static_cast<uint8_t>(ClusterKind::data);
    assert_false(cluster_parse_control(bad.data(), bad.size(), &p));
    bad[1] = 9;
    ClusterKind kind;
    assert_false(cluster_payload_kind(bad.data(), bad.size(), &kind));
    bad = claim;
    bad[0] = 0;
    assert_false(cluster_parse_control(bad.data(), bad.size(), &p));
    c.node = "r1";
    assert_int_equal(cluster_encode_control(out, 10, c), 0);  // no room
}

void test_snapshot(void**) {
    ClusterControl c;
    c.kind = ClusterKind::snapshot;
    c.flags = kClusterFirstBatch | kClusterLastBatch;
    c.incarnation = 7;
    c.node = "node";
    c.snapshot_id = 0x0102030405060708ull;
    c.batch = 3;
    Bytes m = control(c);
    uint8_t e[kClusterSnapshotEntryMax];
    size_t n = cluster_encode_entry(e, sizeof e, "id1", 0x10, kClusterAuthenticated);
    assert_true(Bytes(e, e + n) == (Bytes{0, 0, 0, 0, 0, 0, 0, 0x10, 1, 3, 'i', 'd', '1'}));
    m.insert(m.end(), e, e + n);
    n = cluster_encode_entry(e, sizeof e, std::string(255, 'z'), 0x20, 0);
    assert_int_equal(n, kClusterSnapshotEntryMax);
    m.insert(m.end(), e, e + n);
    assert_int_equal(cluster_encode_entry(e, sizeof e, "", 1, 0), 0);
    assert_int_equal(cluster_encode_entry(e, 12, "abc", 1, 0), 0);

    ClusterControl p;
    assert_true(cluster_parse_control(m.data(), m.size(), &p));
    assert_true(p.kind == ClusterKind::snapshot && p.snapshot_id == c.snapshot_id && p.batch == 3);
    assert_int_equal(p.flags, kClusterFirstBatch | kClusterLastBatch);
    ClusterEntryReader r(p.entries, p.entries_len);
    std::string_view id;
    uint64_t ts = 0;
    uint8_t flags = 0;
    assert_true(r.next(&id, &ts, &flags));
    assert_string_equal(std::string(id).c_str(), "id1");
    assert_true(ts == 0x10 && flags == kClusterAuthenticated);
    assert_true(r.next(&id, &ts, &flags));
    assert_int_equal(id.size(), 255);
    assert_true(ts == 0x20 && flags == 0);
    assert_false(r.next(&id, &ts, &flags));
    assert_false(r.malformed());

    // A batch cut anywhere inside an entry is malformed at that entry.
    size_t header = m.size() - p.entries_len;
    for (size_t cut = header + 1; cut < m.size(); ++cut) {
        ClusterControl q;
        assert_true(cluster_parse_control(m.data(), cut, &q));
        ClusterEntryReader rr(q.entries, q.entries_len);
        size_t whole = 0;
        while (rr.next(&id, &ts, &flags)) ++whole;
        bool at_boundary = cut == header + 13;
        if (rr.malformed() == at_boundary) fail_msg("cut at %zu: malformed %d", cut, rr.malformed());
        assert_int_equal(whole, cut >= header + 13 ? 1 : 0);
    }
    // An entry with an empty id.
    Bytes zero = {0, 0, 0, 0, 0, 0, 0, 1, 0, 0};
    ClusterEntryReader rz(zero.data(), zero.size());
    assert_false(rz.next(&id, &ts, &flags));
    assert_true(rz.malformed());
    // Too short for its header: refused.
    every_prefix_refused(control(c), [&](const uint8_t* b, size_t k) { return cluster_parse_control(b, k, &p); });
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_node_names), cmocka_unit_test(test_subjects),
        cmocka_unit_test(test_data),       cmocka_unit_test(test_send_to),
        cmocka_unit_test(test_direct),     cmocka_unit_test(test_control_messages),
        cmocka_unit_test(test_snapshot),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
