// test_relay_peers.cpp - unit tests of the relay (src/server/relay_auth.cpp
// and the checks in relay.cpp): the auth table's PEERS (stupidp2p(7),
// AUTHORIZATION) for SUBSCRIBE, SEND_TO and CHECK_ALIVE in both versions,
// the unregistered caller, a device reaching itself, subscriptions lost when
// a session's id changes, and what installing a new table (a reload) does:
// BYE 6 for removed, changed or newly protected ids, cancelled
// subscriptions with PRESENCE offline, everything else untouched. The
// harness is relay_world.h and auth_world.h.
#include "auth_world.h"

namespace {

using namespace relay_test;

// alice: bob only; bob: everyone; carol: alice and bob.
std::string three_devices() {
    return auth_line("alice", kTokenA, "bob") + auth_line("bob", kTokenB, "*") +
           auth_line("carol", kTokenB, "alice,bob");
}

void test_reach_rules(void**) {
    World w;
    install(w, three_devices());
    Session& alice = w.v2();
    auth_ok(w, alice, "alice", kTokenA);
    Session& bob = w.v2();
    auth_ok(w, bob, "bob", kTokenB);
    Session& m2 = w.v2();  // mallory, v2
    Session& m1 = w.v1();  // trudy, v1
    Session& anon = w.v2();
    w.in(m2, req(P2P_CMD_REGISTER, "mallory"));
    w.in(m1, req(P2P_CMD_REGISTER, "trudy"));
    w.expect(m2, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(m1, {rep(P2P_CMD_REGISTER, 1)});

    for (Session* s : {&m2, &m1, &anon}) {
        w.in(*s, req(P2P_CMD_SUBSCRIBE, "alice"));
        w.in(*s, send_to("alice", "x"));
        w.in(*s, req(P2P_CMD_CHECK_ALIVE, "alice"));
        w.in(*s, send_to("carol", "x"));  // offline: still not authorized
    }
    w.expect(m2, {rep(P2P_CMD_SUBSCRIBE, 5), rep(P2P_CMD_SEND_TO, 5), rep(P2P_CMD_CHECK_ALIVE, 0),
                  rep(P2P_CMD_SEND_TO, 5)});
    w.expect(m1, {rep(P2P_CMD_SUBSCRIBE, 0), rep(P2P_CMD_SEND_TO, 0), rep(P2P_CMD_CHECK_ALIVE, 0),
                  rep(P2P_CMD_SEND_TO, 0)});
    // The unregistered: SUBSCRIBE refused; SEND_TO needs an id anyway (2).
    w.expect(anon, {rep(P2P_CMD_SUBSCRIBE, 5), rep(P2P_CMD_SEND_TO, 2), rep(P2P_CMD_CHECK_ALIVE, 0),
                     rep(P2P_CMD_SEND_TO, 2)});
    w.expect_nothing(alice);

    // bob may; anyone may reach bob, even with no id.
    w.in(bob, req(P2P_CMD_SUBSCRIBE, "alice"));
    w.in(bob, req(P2P_CMD_CHECK_ALIVE, "alice"));
    w.in(bob, send_to("alice", "hi"));
    w.expect(bob, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "alice"), rep(P2P_CMD_CHECK_ALIVE, 1),
                   rep(P2P_CMD_SEND_TO, 1)});
    w.expect(alice, {v2_delivery("bob", "hi")});
    w.in(anon, req(P2P_CMD_SUBSCRIBE, "bob"));
    w.in(anon, req(P2P_CMD_CHECK_ALIVE, "bob"));
    w.expect(anon, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "bob"), rep(P2P_CMD_CHECK_ALIVE, 1)});
    // A device reaches itself; unlisted ids are open to all.
    w.in(alice, req(P2P_CMD_CHECK_ALIVE, "alice"));
    w.in(m2, req(P2P_CMD_CHECK_ALIVE, "trudy"));
    w.expect(alice, {rep(P2P_CMD_CHECK_ALIVE, 1)});
    w.expect(m2, {rep(P2P_CMD_CHECK_ALIVE, 1)});
    // alice's SEND reaches only the allowed subscriber.
    w.in(alice, req(P2P_CMD_SEND, "data"));
    w.expect(alice, {rep(P2P_CMD_SEND, 1)});
    w.expect(bob, {v2_delivery("alice", "data")});
    w.expect_nothing(m2);
    w.expect_nothing(m1);
    w.finish();
}

// A session's subscriptions follow its id: taking another id (REGISTER or
// AUTH) drops those the new id may not hold, PRESENCE offline in v2.
void test_id_change_drops_subscriptions(void**) {
    World w;
    install(w, three_devices());
    Session& s = w.v2();
    auth_ok(w, s, "bob", kTokenB);
    w.in(s, req(P2P_CMD_SUBSCRIBE, "alice"));
    w.in(s, req(P2P_CMD_SUBSCRIBE, "carol"));
    w.in(s, req(P2P_CMD_SUBSCRIBE, "plain"));
    w.expect(s, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "alice"), rep(P2P_CMD_SUBSCRIBE, 1),
                 presence(kOffline, "carol"), rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "plain")});
    // As alice: alice is itself, carol lists alice, "plain" is open: all
    // three stay.
    auth_ok(w, s, "alice", kTokenA);
    w.expect_nothing(s);
    assert_int_equal(s.subscription_count, 3);
    // As "other": alice and carol go, "plain" stays.
    w.in(s, req(P2P_CMD_REGISTER, "other"));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1), presence(kOffline, "alice"), presence(kOffline, "carol")});
    assert_int_equal(s.subscription_count, 1);
    // A v1 session cannot AUTH: it reaches only what every connection may.
    Session& v1 = w.v1();
    Session& alice = w.v2();
    auth_ok(w, alice, "alice", kTokenA);
    w.in(v1, req(P2P_CMD_SUBSCRIBE, "alice"));
    w.in(v1, req(P2P_CMD_SUBSCRIBE, "other"));
    w.expect(v1, {rep(P2P_CMD_SUBSCRIBE, 0), rep(P2P_CMD_SUBSCRIBE, 1)});
    w.finish();
}

// A reload: removed id, changed verifier, newly protected id held by
// REGISTER (v1 and v2), shrunk PEERS; bystanders untouched.
void test_install_new_table(void**) {
    World w;
    install(w, three_devices());
    Session& alice = w.v2();
    auth_ok(w, alice, "alice", kTokenA);
    Session& bob = w.v2();
    auth_ok(w, bob, "bob", kTokenB);
    Session& carol = w.v2();
    auth_ok(w, carol, "carol", kTokenB);
    Session& plain1 = w.v1();
    Session& plain2 = w.v2();
    Session& bystander = w.v2();
    w.in(plain1, req(P2P_CMD_REGISTER, "dave"));
    w.in(plain2, req(P2P_CMD_REGISTER, "erin"));
    w.in(plain2, req(P2P_CMD_SUBSCRIBE, "bob"));
    w.in(bob, req(P2P_CMD_SUBSCRIBE, "alice"));
    w.in(carol, req(P2P_CMD_SUBSCRIBE, "bob"));
    w.in(bystander, req(P2P_CMD_SUBSCRIBE, "bob"));
    w.in(bystander, req(P2P_CMD_SUBSCRIBE, "dave"));
    w.expect(plain1, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(plain2, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "bob")});
    w.expect(bob, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "alice")});
    w.expect(carol, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "bob")});
    w.expect(bystander, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "bob"), rep(P2P_CMD_SUBSCRIBE, 1),
                         presence(kOnline, "dave")});

    // alice: gone. bob: now only alice may reach it. carol: another token.
    // dave and erin: newly protected.
    std::string text = auth_line("bob", kTokenB, "alice") + auth_line("carol", kTokenA, "*") +
                       auth_line("dave", kTokenA) + auth_line("erin", kTokenA);
    AuthChanges changes = install(w, text);
    assert_int_equal(changes.sessions_closed, 4);        // alice, carol, dave, erin
    assert_int_equal(changes.subscriptions_cancelled, 3); // plain2, carol, bystander -> bob
    w.expect(alice, {bye(P2P_BYE_NOT_AUTHORIZED)});
    w.expect(carol, {presence(kOffline, "bob"), bye(P2P_BYE_NOT_AUTHORIZED)});
    w.expect(plain2, {presence(kOffline, "bob"), bye(P2P_BYE_NOT_AUTHORIZED)});
    w.expect_nothing(plain1);  // v1: closed without a word
    // bob saw alice go (she was removed); the bystander lost bob and saw
    // dave go (its holder had not proved anything).
    w.expect(bob, {presence(kOffline, "alice")});
    w.expect(bystander, {presence(kOffline, "bob"), presence(kOffline, "dave")});
    assert_true(alice.ended && carol.ended && plain1.ended && plain2.ended);
    assert_false(bob.ended);
    assert_false(bystander.ended);
    std::string closes;
    for (const auto& c : w.host.closes) closes += close_reason_name(c.second) + std::string(";");
    assert_string_equal(closes.c_str(), "not authorized;not authorized;not authorized;not authorized;");
    // bob is untouched and still reachable by... only alice now.
    assert_true(bob.device != nullptr && bob.device->holder == &bob);
    w.in(bystander, req(P2P_CMD_SUBSCRIBE, "bob"));
    w.expect(bystander, {rep(P2P_CMD_SUBSCRIBE, 5)});

    // The same table again changes nothing.
    changes = install(w, text);
    assert_int_equal(changes.sessions_closed, 0);
    assert_int_equal(changes.subscriptions_cancelled, 0);
    w.expect_nothing(bob);
    w.expect_nothing(bystander);
    w.finish();
}

}  // namespace

int main(void) {
    log_set_level(LogLevel::error);  // the relay's info lines are noise here
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reach_rules),
        cmocka_unit_test(test_id_change_drops_subscriptions),
        cmocka_unit_test(test_install_new_table),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
