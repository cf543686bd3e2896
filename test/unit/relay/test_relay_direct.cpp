// test_relay_direct.cpp - unit tests of the relay's direct-path rendezvous
// (src/server/relay_direct.cpp): the attempt table's bound and expiry (a
// relay with room for 2 attempts, the clock moved by hand), the offer rate
// limit per connection, ANSWER/SYNC/RESULT only from the attempt's own
// sessions and only once, an offerer that reconnected is not answered, v1
// sessions ignore the commands; across two relays joined by a fake
// cluster, the steps each relay publishes and takes, and what it drops
// (an ANSWER from another relay than the attempt's, a v1 target, an
// offerer that reconnected, a local session whose number is the remote
// answerer's). The wire itself (reflexive candidates, PEERS, malformed
// offers, metrics) is test/integration/test_v2_direct.c, across relays
// test/integration/test_cluster_direct.c.
#include <set>

#include "relay_world.h"

#include "codec.h"

namespace {

using namespace relay_test;

const uint8_t kNonce[P2P_DIRECT_NONCE_SIZE] = {1, 2, 3};

Bytes encoded(const uint8_t* p, size_t n) { return Bytes(p, p + n); }

Bytes offer(std::string_view target) {
    uint8_t out[P2P_DIRECT_MAX];
    p2p_candidate c{};
    c.kind = P2P_CANDIDATE_LAN;
    c.port = 4000;
    c.addr_len = 4;
    c.addr[0] = 10;
    size_t n = p2p_encode_direct_offer(out, reinterpret_cast<const uint8_t*>(target.data()), target.size(),
                                       kNonce, 4001, &c, 1);
    return encoded(out, n);
}

Bytes answer(std::string_view offerer, uint32_t attempt, uint8_t accept) {
    uint8_t out[P2P_DIRECT_MAX];
    size_t n = p2p_encode_direct_answer(out, P2P_CMD_DIRECT_ANSWER,
                                        reinterpret_cast<const uint8_t*>(offerer.data()), offerer.size(),
                                        attempt, accept, kNonce, 4002, nullptr, 0);
    return encoded(out, n);
}

Bytes sync_req(std::string_view target, uint32_t attempt) {
    uint8_t out[P2P_DIRECT_MAX];
    size_t n = p2p_encode_direct_sync(out, P2P_CMD_DIRECT_SYNC,
                                      reinterpret_cast<const uint8_t*>(target.data()), target.size(), attempt);
    return encoded(out, n);
}

Bytes result(std::string_view peer, uint32_t attempt) {
    uint8_t out[P2P_DIRECT_MAX];
    size_t n = p2p_encode_direct_result(out, reinterpret_cast<const uint8_t*>(peer.data()), peer.size(),
                                        attempt, P2P_DIRECT_OUTCOME_DIRECT, 5);
    return encoded(out, n);
}

// Sends an OFFER from `from` to `target` and returns the attempt id of the
// success reply (0 when it failed, with the status in *status); the event
// the target got is taken (and counted in *events).
uint32_t offer_from(World& w, Session& from, Session& target, std::string_view target_id,
                    uint8_t* status = nullptr, int* events = nullptr) {
    w.in(from, offer(target_id));
    std::vector<Bytes> got = w.take(from);
    assert_int_equal(got.size(), 1);
    assert_int_equal(got[0][0], 0x90);
    if (status != nullptr) *status = got[0][1];
    std::vector<Bytes> ev = w.take(target);
    if (events != nullptr) *events += static_cast<int>(ev.size());
    if (got[0][1] != P2P_STATUS_OK) {
        assert_int_equal(ev.size(), 0);
        return 0;
    }
    assert_int_equal(got[0].size(), P2P_DIRECT_OFFER_REPLY_SIZE);
    assert_int_equal(ev.size(), 1);
    assert_int_equal(ev[0][0], P2P_EVT_DIRECT_OFFER);
    return p2p_get_be32(got[0].data() + 2);
}

struct Pair {
    Session* a;
    Session* b;
};

Pair registered_pair(World& w) {
    Session& a = w.v2();
    Session& b = w.v2();
    w.in(a, req(P2P_CMD_REGISTER, "a"));
    w.in(b, req(P2P_CMD_REGISTER, "b"));
    w.expect(a, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(b, {rep(P2P_CMD_REGISTER, 1)});
    return {&a, &b};
}

void test_table_bound_and_expiry(void**) {
    RelayLimits limits;
    limits.max_direct_attempts = 2;
    World w(limits);
    Pair p = registered_pair(w);
    uint8_t st = 0;
    uint32_t first = offer_from(w, *p.a, *p.b, "b");
    uint32_t second = offer_from(w, *p.a, *p.b, "b");
    assert_int_not_equal(first, 0);
    assert_int_equal(second, first + 1);
    assert_int_equal(offer_from(w, *p.a, *p.b, "b", &st), 0);  // full
    assert_int_equal(st, P2P_STATUS_LIMIT);
    // A declined attempt is gone: its slot takes the next one.
    w.in(*p.b, answer("a", first, P2P_DIRECT_DECLINE));
    w.expect(*p.b, {rep(P2P_CMD_DIRECT_ANSWER, 1)});
    std::vector<Bytes> ev = w.take(*p.a);
    assert_int_equal(ev.size(), 1);
    assert_int_equal(ev[0][0], P2P_EVT_DIRECT_ANSWER);
    assert_int_equal(ev[0].back(), P2P_DIRECT_DECLINE);
    uint32_t third = offer_from(w, *p.a, *p.b, "b");
    assert_int_equal(third, second + 1);
    // Full again until the open ones are older than the TTL.
    assert_int_equal(offer_from(w, *p.a, *p.b, "b", &st), 0);
    w.advance(kDirectAttemptTtlMs - 1);
    assert_int_equal(offer_from(w, *p.a, *p.b, "b", &st), 0);
    assert_int_equal(st, P2P_STATUS_LIMIT);
    w.advance(1);
    assert_int_not_equal(offer_from(w, *p.a, *p.b, "b"), 0);
    // The expired attempt is unknown now.
    w.in(*p.b, answer("a", second, P2P_DIRECT_ACCEPT));
    w.expect(*p.b, {rep(P2P_CMD_DIRECT_ANSWER, P2P_STATUS_OFFLINE)});
    w.expect_nothing(*p.a);
    assert_int_equal(w.relay.stats().direct_offers_refused, 3);
    w.finish();
}

void test_rate_limit(void**) {
    World w;
    Pair p = registered_pair(w);
    uint8_t st = 0;
    int events = 0;
    // Malformed offers count too: they cost the server as much.
    w.in(*p.a, Bytes{P2P_CMD_DIRECT_OFFER});
    w.expect(*p.a, {rep(P2P_CMD_DIRECT_OFFER, P2P_STATUS_BAD_ARGUMENT)});
    for (uint32_t i = 1; i < kDirectOffers; ++i) assert_int_not_equal(offer_from(w, *p.a, *p.b, "b", &st, &events), 0);
    assert_int_equal(offer_from(w, *p.a, *p.b, "b", &st, &events), 0);
    assert_int_equal(st, P2P_STATUS_LIMIT);
    assert_int_equal(events, kDirectOffers - 1);
    // Over the limit, even a malformed one gets 7.
    w.in(*p.a, Bytes{P2P_CMD_DIRECT_OFFER});
    w.expect(*p.a, {rep(P2P_CMD_DIRECT_OFFER, P2P_STATUS_LIMIT)});
    // Another connection is not limited by this one.
    assert_int_not_equal(offer_from(w, *p.b, *p.a, "a"), 0);
    w.advance(kDirectOfferWindowMs);
    assert_int_not_equal(offer_from(w, *p.a, *p.b, "b"), 0);
    assert_int_equal(w.relay.stats().direct_offers_limited, 2);
    w.finish();
}

void test_only_the_parties_once(void**) {
    World w;
    Pair p = registered_pair(w);
    Session& c = w.v2();
    w.in(c, req(P2P_CMD_REGISTER, "c"));
    w.expect(c, {rep(P2P_CMD_REGISTER, 1)});
    uint32_t id = offer_from(w, *p.a, *p.b, "b");
    // SYNC before the answer, a stranger answering, the offerer answering
    // itself, a wrong offerer id: all 3.
    w.in(*p.a, sync_req("b", id));
    w.expect(*p.a, {rep(P2P_CMD_DIRECT_SYNC, P2P_STATUS_OFFLINE)});
    w.in(c, answer("a", id, P2P_DIRECT_ACCEPT));
    w.expect(c, {rep(P2P_CMD_DIRECT_ANSWER, P2P_STATUS_OFFLINE)});
    w.in(*p.b, answer("c", id, P2P_DIRECT_ACCEPT));
    w.expect(*p.b, {rep(P2P_CMD_DIRECT_ANSWER, P2P_STATUS_OFFLINE)});
    w.expect_nothing(*p.a);
    w.expect_nothing(c);
    // The answer, once.
    w.in(*p.b, answer("a", id, P2P_DIRECT_ACCEPT));
    w.expect(*p.b, {rep(P2P_CMD_DIRECT_ANSWER, 1)});
    assert_int_equal(w.take(*p.a).size(), 1);
    w.in(*p.b, answer("a", id, P2P_DIRECT_ACCEPT));
    w.expect(*p.b, {rep(P2P_CMD_DIRECT_ANSWER, P2P_STATUS_OFFLINE)});
    // SYNC: by the offerer only, once.
    w.in(*p.b, sync_req("a", id));
    w.expect(*p.b, {rep(P2P_CMD_DIRECT_SYNC, P2P_STATUS_OFFLINE)});
    w.in(*p.a, sync_req("b", id));
    uint8_t ev[P2P_DIRECT_MAX];
    w.expect(*p.b, {encoded(ev, p2p_encode_direct_sync(ev, P2P_EVT_DIRECT_SYNC,
                                                       reinterpret_cast<const uint8_t*>("a"), 1, id))});
    w.expect(*p.a, {rep(P2P_CMD_DIRECT_SYNC, 1)});
    w.in(*p.a, sync_req("b", id));
    w.expect(*p.a, {rep(P2P_CMD_DIRECT_SYNC, P2P_STATUS_OFFLINE)});
    // RESULT: once per side, from the parties; a stranger's is refused.
    w.in(c, result("a", id));
    w.expect(c, {rep(P2P_CMD_DIRECT_RESULT, P2P_STATUS_OFFLINE)});
    w.in(*p.a, result("b", id));
    w.in(*p.a, result("b", id));
    w.expect(*p.a, {rep(P2P_CMD_DIRECT_RESULT, 1), rep(P2P_CMD_DIRECT_RESULT, P2P_STATUS_OFFLINE)});
    w.in(*p.b, result("a", id));
    w.expect(*p.b, {rep(P2P_CMD_DIRECT_RESULT, 1)});
    assert_int_equal(w.relay.stats().direct_results_direct, 2);
    w.finish();
}

void test_reconnected_offerer_not_answered(void**) {
    World w;
    Pair p = registered_pair(w);
    uint32_t id = offer_from(w, *p.a, *p.b, "b");
    p.a->close(CloseReason::peer_closed);
    Session& again = w.v2();
    w.in(again, req(P2P_CMD_REGISTER, "a"));
    w.expect(again, {rep(P2P_CMD_REGISTER, 1)});
    w.in(*p.b, answer("a", id, P2P_DIRECT_ACCEPT));
    w.expect(*p.b, {rep(P2P_CMD_DIRECT_ANSWER, P2P_STATUS_OFFLINE)});
    w.expect_nothing(again);
    w.finish();
}

// Two relays joined by a fake cluster: each says the other holds what the
// other's sessions claimed, and keeps the direct-path steps its relay
// publishes for the test to carry across, as the cluster room does
// (cluster.cpp: on_direct).
struct Published {
    std::string target;
    DirectHop hop;
    Bytes frame;
};

class LinkedCluster final : public ClusterHooks {
   public:
    explicit LinkedCluster(uint64_t incarnation_) : incarnation(incarnation_) {}
    uint64_t incarnation;
    LinkedCluster* peer = nullptr;
    std::set<std::string> held;  // by this relay's sessions
    std::vector<Published> out;

    bool held_elsewhere(std::string_view id) const override {
        return peer->held.count(std::string(id)) != 0;
    }
    uint64_t holder_relay(std::string_view id) const override {
        return held_elsewhere(id) ? peer->incarnation : 0;
    }
    void claimed(std::string_view id, bool) override { held.insert(std::string(id)); }
    void released(std::string_view id) override { held.erase(std::string(id)); }
    void sent(std::string_view, const uint8_t*, size_t) override {}
    void sent_to(std::string_view, std::string_view, const uint8_t*, size_t) override {}
    void sent_direct(std::string_view target, const DirectHop& hop, const uint8_t* frame,
                     size_t len) override {
        Published p{std::string(target), hop, Bytes(frame, frame + len)};
        p.hop.from_relay = incarnation;
        out.push_back(p);
    }
    void first_follower(std::string_view) override {}
    void last_follower_gone(std::string_view) override {}
};

struct TwoRelays {
    LinkedCluster la{1111}, lb{2222};
    World a, b;
    TwoRelays() {
        la.peer = &lb;
        lb.peer = &la;
        a.relay.set_cluster(&la);
        b.relay.set_cluster(&lb);
    }
    ~TwoRelays() {
        a.relay.set_cluster(nullptr);
        b.relay.set_cluster(nullptr);
    }
    // Takes the one step `from` published and hands it to `to` (with
    // from_relay replaced when not 0).
    RemoteDelivery carry(LinkedCluster& from, World& to, uint64_t from_relay = 0) {
        assert_int_equal(from.out.size(), 1);
        Published p = from.out.back();
        from.out.clear();
        if (from_relay != 0) p.hop.from_relay = from_relay;
        assert_true(p.hop.to_relay == from.peer->incarnation);
        p2p_direct step;
        assert_int_equal(p2p_direct_parse(p.frame.data(), p.frame.size(), &step), P2P_PARSE_OK);
        return to.relay.deliver_remote_direct(p.target, p.hop, step, p.frame.data(),
                                              p.frame.size());
    }
    void expect_carry(LinkedCluster& from, World& to, RemoteDelivery want, uint64_t from_relay = 0,
                      std::source_location at = std::source_location::current()) {
        int got = static_cast<int>(carry(from, to, from_relay));
        _assert_int_equal(got, static_cast<int>(want), at.file_name(), static_cast<int>(at.line()));
    }
};

Session& registered(World& w, const char* id) {
    Session& s = w.v2();
    w.in(s, req(P2P_CMD_REGISTER, id));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1)});
    return s;
}

// An OFFER from `from` on relay a to target on relay b: 90 01 at once, one
// step published; returns the attempt id.
uint32_t offer_across(TwoRelays& k, Session& from, std::string_view target) {
    k.a.in(from, offer(target));
    std::vector<Bytes> got = k.a.take(from);
    assert_int_equal(got.size(), 1);
    assert_int_equal(got[0].size(), P2P_DIRECT_OFFER_REPLY_SIZE);
    assert_int_equal(got[0][1], P2P_STATUS_OK);
    return p2p_get_be32(got[0].data() + 2);
}

void expect_event(World& w, Session& s, uint8_t cmd, uint32_t attempt) {
    std::vector<Bytes> ev = w.take(s);
    assert_int_equal(ev.size(), 1);
    assert_int_equal(ev[0][0], cmd);
    p2p_direct d;
    assert_int_equal(p2p_direct_parse(ev[0].data(), ev[0].size(), &d), P2P_PARSE_OK);
    assert_int_equal(d.attempt, attempt);
}

void test_across_relays_only_the_parties(void**) {
    TwoRelays k;
    Session& a = registered(k.a, "a");  // session 1 of relay a
    Session& c = registered(k.a, "c");  // session 2 of relay a
    registered(k.b, "x");               // session 1 of relay b
    Session& b = registered(k.b, "b");  // session 2 of relay b: c's number
    uint32_t id = offer_across(k, a, "b");
    k.expect_carry(k.la, k.b, RemoteDelivery::delivered);
    expect_event(k.b, b, P2P_EVT_DIRECT_OFFER, id);
    // The answer: 1 from relay b; relay a takes it only from the relay the
    // offer went to.
    k.b.in(b, answer("a", id, P2P_DIRECT_ACCEPT));
    k.b.expect(b, {rep(P2P_CMD_DIRECT_ANSWER, 1)});
    Published kept = k.lb.out.back();
    k.expect_carry(k.lb, k.a, RemoteDelivery::not_here, 3333);
    k.a.expect_nothing(a);
    k.lb.out.push_back(kept);
    k.expect_carry(k.lb, k.a, RemoteDelivery::delivered);
    expect_event(k.a, a, P2P_EVT_DIRECT_ANSWER, id);
    assert_int_equal(k.a.relay.stats().direct_accepted, 1);
    assert_int_equal(k.b.relay.stats().direct_accepted, 0);
    // c, whose session number on relay a is the answerer's on relay b, is
    // not the target: its RESULT is 3.
    k.a.in(c, result("a", id));
    k.a.expect(c, {rep(P2P_CMD_DIRECT_RESULT, P2P_STATUS_OFFLINE)});
    // SYNC, for b's connection only.
    k.a.in(a, sync_req("b", id));
    k.a.expect(a, {rep(P2P_CMD_DIRECT_SYNC, 1)});
    assert_true(k.la.out.back().hop.to_session == b.session_id);
    k.expect_carry(k.la, k.b, RemoteDelivery::delivered);
    expect_event(k.b, b, P2P_EVT_DIRECT_SYNC, id);
    // The target's RESULT is counted on the offerer's relay, once.
    for (int i = 0; i < 2; ++i) {
        k.b.in(b, result("a", id));
        k.b.expect(b, {rep(P2P_CMD_DIRECT_RESULT, 1)});
        k.expect_carry(k.lb, k.a, i == 0 ? RemoteDelivery::delivered : RemoteDelivery::not_here);
    }
    assert_int_equal(k.a.relay.stats().direct_results_direct, 1);
    assert_int_equal(k.b.relay.stats().direct_results_direct, 0);
    k.a.in(a, result("b", id));
    k.a.expect(a, {rep(P2P_CMD_DIRECT_RESULT, 1)});
    assert_int_equal(k.a.relay.stats().direct_results_direct, 2);
    k.a.finish();
    k.b.finish();
}

void test_across_relays_dropped_where_found(void**) {
    TwoRelays k;
    Session& a = registered(k.a, "a");
    Session& b = registered(k.b, "b");
    Session& old = k.b.v1();
    k.b.in(old, req(P2P_CMD_REGISTER, "old"));
    k.b.expect(old, {rep(P2P_CMD_REGISTER, 1)});
    // A v1 target on relay b: relay a cannot know (1), relay b refuses.
    offer_across(k, a, "old");
    k.expect_carry(k.la, k.b, RemoteDelivery::refused_v1);
    k.b.expect_nothing(old);
    // The offerer reconnected before the answer: dropped on its relay, and
    // the attempt is over.
    uint32_t id = offer_across(k, a, "b");
    k.expect_carry(k.la, k.b, RemoteDelivery::delivered);
    expect_event(k.b, b, P2P_EVT_DIRECT_OFFER, id);
    a.close(CloseReason::peer_closed);
    Session& again = registered(k.a, "a");
    k.b.in(b, answer("a", id, P2P_DIRECT_ACCEPT));
    k.b.expect(b, {rep(P2P_CMD_DIRECT_ANSWER, 1)});
    k.expect_carry(k.lb, k.a, RemoteDelivery::not_here);
    k.a.expect_nothing(again);
    k.b.in(b, result("a", id));
    k.b.expect(b, {rep(P2P_CMD_DIRECT_RESULT, 1)});
    k.expect_carry(k.lb, k.a, RemoteDelivery::not_here);
    assert_int_equal(k.a.relay.stats().direct_results_direct, 0);
    k.a.finish();
    k.b.finish();
}

void test_v1_ignores(void**) {
    World w;
    Session& v2 = w.v2();
    w.in(v2, req(P2P_CMD_REGISTER, "b"));
    w.expect(v2, {rep(P2P_CMD_REGISTER, 1)});
    Session& v1 = w.v1();
    w.in(v1, req(P2P_CMD_REGISTER, "a"));
    w.expect(v1, {rep(P2P_CMD_REGISTER, 1)});
    w.in(v1, offer("b"));
    w.in(v1, Bytes{P2P_CMD_DIRECT_RESULT});
    w.in(v1, req(P2P_CMD_HEARTBEAT));
    w.expect(v1, {rep(P2P_CMD_HEARTBEAT, 1)});
    w.expect_nothing(v2);
    // And a v1 target cannot be offered a path: 6.
    w.in(v2, offer("a"));
    w.expect(v2, {rep(P2P_CMD_DIRECT_OFFER, P2P_STATUS_UNSUPPORTED)});
    w.expect_nothing(v1);
    w.finish();
}

}  // namespace

int main() {
    const CMUnitTest tests[] = {
        cmocka_unit_test(test_table_bound_and_expiry),
        cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_only_the_parties_once),
        cmocka_unit_test(test_reconnected_offerer_not_answered),
        cmocka_unit_test(test_v1_ignores),
        cmocka_unit_test(test_across_relays_only_the_parties),
        cmocka_unit_test(test_across_relays_dropped_where_found),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
