// test_relay_direct.cpp - unit tests of the relay's direct-path rendezvous
// (src/server/relay_direct.cpp): the attempt table's bound and expiry (a
// relay with room for 2 attempts, the clock moved by hand), the offer rate
// limit per connection, ANSWER/SYNC/RESULT only from the attempt's own
// sessions and only once, an offerer that reconnected is not answered, v1
// sessions ignore the commands. The wire itself (reflexive candidates,
// PEERS, malformed offers, metrics) is test/integration/test_v2_direct.c.
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
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
