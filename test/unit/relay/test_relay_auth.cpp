// test_relay_auth.cpp - unit tests of the relay (src/server/relay_auth.cpp):
// AUTH byte for byte (stupidp2p(7), AUTH): v1 and "no auth file" answers,
// malformed steps, the challenge and the signature, every kind of failure,
// the third failure closing the session with BYE 6, a challenge good for
// one proof, AUTH as a takeover and as a change of id; REGISTER refused
// for protected ids and under --auth-required. The harness is
// relay_world.h and auth_world.h.
#include "auth_world.h"

namespace {

using namespace relay_test;

std::string two_devices() { return auth_line("alice", kTokenA) + auth_line("bob", kTokenB); }

void test_auth_v1_and_without_table(void**) {
    World w;
    Session& v1 = w.v1();
    Session& v2 = w.v2();
    uint8_t nonce[32] = {};
    // No table: v1 0, v2 6, whatever the layout.
    for (Session* s : {&v1, &v2}) {
        w.in(*s, auth_start("alice", nonce));
        w.in(*s, auth_proof(nonce));
        w.in(*s, req(P2P_CMD_AUTH));
    }
    w.expect(v1, {rep(P2P_CMD_AUTH, 0), rep(P2P_CMD_AUTH, 0), rep(P2P_CMD_AUTH, 0)});
    w.expect(v2, {rep(P2P_CMD_AUTH, 6), rep(P2P_CMD_AUTH, 6), rep(P2P_CMD_AUTH, 6)});
    // With a table: v1 still 0 for every step.
    install(w, two_devices());
    w.in(v1, auth_start("alice", nonce));
    w.in(v1, auth_proof(nonce));
    w.expect(v1, {rep(P2P_CMD_AUTH, 0), rep(P2P_CMD_AUTH, 0)});
    assert_int_equal(v1.auth_failures, 0);
    assert_null(v1.auth_challenge.get());
    w.finish();
}

void test_auth_bad_arguments(void**) {
    World w;
    install(w, two_devices());
    Session& s = w.v2();
    uint8_t nonce[32] = {};
    Bytes start = auth_start("alice", nonce);
    for (size_t n = 1; n < start.size(); ++n) w.in(s, Bytes(start.begin(), start.begin() + n));
    Bytes longer = start + "x";
    w.in(s, longer);
    Bytes proof = auth_proof(nonce);
    w.in(s, Bytes(proof.begin(), proof.end() - 1));
    w.in(s, proof + "x");
    w.in(s, Bytes{P2P_CMD_AUTH, 3});
    std::vector<Bytes> got = w.take(s);
    assert_int_equal(got.size(), start.size() - 1 + 4);
    for (const Bytes& g : got) assert_string_equal(render(g).c_str(), "8c 04");
    assert_int_equal(s.auth_failures, 0);
    assert_int_equal(w.relay.stats().auth_failures, 0);
    w.finish();
}

void test_auth_exchange(void**) {
    World w;
    install(w, two_devices());
    Session& watch = w.v2();
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "alice"));
    w.expect(watch, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "alice")});
    Session& s = w.v2();
    // Two step 1s: two challenges, different nonces; the second replaces
    // the first.
    uint8_t nonce[32] = {9};
    w.in(s, auth_start("alice", nonce));
    w.in(s, auth_start("alice", nonce));
    std::vector<Bytes> got = w.take(s);
    assert_int_equal(got.size(), 2);
    assert_memory_not_equal(got[0].data() + 3, got[1].data() + 3, 32);
    assert_non_null(s.auth_challenge.get());

    ClientAuth c = authenticate(w, s, "alice", kTokenA);
    w.expect(s, {auth_accepted(c)});
    assert_null(s.auth_challenge.get());
    assert_true(s.device != nullptr && s.device->key() == "alice");
    w.expect(watch, {presence(kOnline, "alice")});
    assert_int_equal(w.relay.stats().auth_successes, 1);

    // Again, same id: success, nothing else happens.
    c = authenticate(w, s, "alice", kTokenA);
    w.expect(s, {auth_accepted(c)});
    w.expect_nothing(watch);
    w.in(s, req(P2P_CMD_SEND, "hi"));
    w.expect(s, {rep(P2P_CMD_SEND, 1)});
    w.expect(watch, {v2_delivery("alice", "hi")});
    w.expect_closes({});
    w.finish();
}

void test_auth_failures(void**) {
    World w;
    install(w, two_devices());
    Session& s = w.v2();
    authenticate(w, s, "alice", kTokenB);  // wrong token
    w.expect(s, {rep(P2P_CMD_AUTH, 5)});
    assert_null(s.device);
    // Unknown id: the challenge is given all the same, then 5.
    authenticate(w, s, "nobody", kTokenA);
    w.expect(s, {rep(P2P_CMD_AUTH, 5)});
    assert_int_equal(s.auth_failures, 2);
    w.expect_closes({});
    // A success does not reset the count.
    authenticate(w, s, "bob", kTokenB);
    assert_int_equal(w.take(s).size(), 1);
    // Step 2 without a challenge: the third failure.
    uint8_t zeros[32] = {};
    w.in(s, auth_proof(zeros));
    w.expect(s, {rep(P2P_CMD_AUTH, 5), bye(P2P_BYE_NOT_AUTHORIZED)});
    w.expect_closes({{s.session_id, CloseReason::not_authorized}});
    assert_true(s.ended);
    assert_null(s.device);
    assert_int_equal(w.relay.stats().auth_failures, 3);
    w.finish();
}

// A challenge answers one proof: the same proof again fails, and so does
// the proof of one exchange sent after the step 1 of another.
void test_auth_challenge_used_once(void**) {
    World w;
    install(w, two_devices());
    Session& s = w.v2();
    ClientAuth c = authenticate(w, s, "alice", kTokenA);
    w.expect(s, {auth_accepted(c)});
    w.in(s, auth_proof(c.proof));
    w.expect(s, {rep(P2P_CMD_AUTH, 5)});
    Session& thief = w.v2();
    w.in(thief, auth_start("alice", c.client_nonce));
    std::vector<Bytes> got = w.take(thief);
    assert_int_equal(got.size(), 1);
    assert_memory_not_equal(got[0].data() + 3, c.server_nonce, 32);
    w.in(thief, auth_proof(c.proof));
    w.expect(thief, {rep(P2P_CMD_AUTH, 5)});
    assert_null(thief.device);
    assert_true(s.device != nullptr && s.device->holder == &s);
    w.finish();
}

// AUTH of a held id takes it over like REGISTER; AUTH while holding another
// id releases that one first.
void test_auth_takeover_and_switch(void**) {
    World w;
    install(w, two_devices());
    Session& watch = w.v2();
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "alice"));
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "temp"));
    w.expect(watch, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "alice"), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOffline, "temp")});
    Session& old_h = w.v2();
    auth_ok(w, old_h, "alice", kTokenA);
    w.expect(watch, {presence(kOnline, "alice")});

    Session& new_h = w.v2();
    w.in(new_h, req(P2P_CMD_REGISTER, "temp"));
    w.expect(new_h, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(watch, {presence(kOnline, "temp")});
    auth_ok(w, new_h, "alice", kTokenA);
    w.expect(old_h, {bye(P2P_BYE_TAKEN_OVER)});
    w.expect_closes({{old_h.session_id, CloseReason::taken_over}});
    w.expect(watch, {presence(kOffline, "temp"), presence(kOffline, "alice"), presence(kOnline, "alice")});
    w.finish();
}

void test_register_refused(void**) {
    World w;
    install(w, two_devices());
    Session& holder = w.v2();
    auth_ok(w, holder, "alice", kTokenA);
    Session& v2 = w.v2();
    Session& v1 = w.v1();
    w.in(v2, req(P2P_CMD_REGISTER, "alice"));
    w.in(v1, req(P2P_CMD_REGISTER, "alice"));
    w.in(v1, req(P2P_CMD_REGISTER, "bob"));  // offline, but protected all the same
    w.in(v2, req(P2P_CMD_REGISTER, "plain"));
    w.in(v2, req(P2P_CMD_REGISTER, "alice"));  // refused: "plain" is kept
    w.expect(v2, {rep(P2P_CMD_REGISTER, 5), rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_REGISTER, 5)});
    w.expect(v1, {rep(P2P_CMD_REGISTER, 0), rep(P2P_CMD_REGISTER, 0)});
    assert_true(v2.device != nullptr && v2.device->key() == "plain");
    assert_true(holder.device != nullptr && holder.device->holder == &holder);
    // The holder may REGISTER its own id: it holds it already.
    w.in(holder, req(P2P_CMD_REGISTER, "alice"));
    w.expect(holder, {rep(P2P_CMD_REGISTER, 1)});
    w.expect_closes({});
    assert_int_equal(w.relay.stats().auth_failures, 0);  // REGISTER is not AUTH
    w.finish();
}

void test_auth_required(void**) {
    World w;
    w.relay.set_auth_required(true);
    install(w, auth_line("alice", kTokenA));
    Session& v2 = w.v2();
    Session& v1 = w.v1();
    w.in(v2, req(P2P_CMD_REGISTER, "plain"));
    w.in(v1, req(P2P_CMD_REGISTER, "plain"));
    w.expect(v2, {rep(P2P_CMD_REGISTER, 5)});
    w.expect(v1, {rep(P2P_CMD_REGISTER, 0)});
    auth_ok(w, v2, "alice", kTokenA);
    w.in(v2, req(P2P_CMD_REGISTER, "alice"));
    w.expect(v2, {rep(P2P_CMD_REGISTER, 1)});
    w.finish();
}

}  // namespace

int main(void) {
    log_set_level(LogLevel::error);  // the relay's info lines are noise here
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_v1_and_without_table),
        cmocka_unit_test(test_auth_bad_arguments),
        cmocka_unit_test(test_auth_exchange),
        cmocka_unit_test(test_auth_failures),
        cmocka_unit_test(test_auth_challenge_used_once),
        cmocka_unit_test(test_auth_takeover_and_switch),
        cmocka_unit_test(test_register_refused),
        cmocka_unit_test(test_auth_required),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
