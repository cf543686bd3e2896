// test_relay_subscribe.cpp - unit tests of the relay (src/server/relay.cpp):
// SUBSCRIBE and UNSUBSCRIBE in v1 and v2, and the subscription limit. The
// harness is relay_world.h.
#include "relay_world.h"

namespace {

using namespace relay_test;

void test_v1_subscribe_rules(void**) {
    World w;
    Session& pub = w.v1();
    Session& sub = w.v1();  // never registers: not needed to subscribe

    // Offline: 82 00, and no device entry is created for it.
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 0)});
    assert_int_equal(w.relay.device_count(), 0);
    assert_int_equal(sub.subscription_count, 0);

    // Empty and over-long ids: 82 00.
    w.in(sub, req(P2P_CMD_SUBSCRIBE));
    w.in(sub, req(P2P_CMD_SUBSCRIBE, long_id(256)));
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 0), rep(P2P_CMD_SUBSCRIBE, 0)});

    // Own id: 82 00.
    w.in(pub, req(P2P_CMD_REGISTER, "pub"));
    w.in(pub, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.expect(pub, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 0)});
    assert_int_equal(pub.subscription_count, 0);

    // Online: 82 01 and no PRESENCE in v1; twice delivers once.
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 1), rep(P2P_CMD_SUBSCRIBE, 1)});
    assert_int_equal(sub.subscription_count, 1);
    assert_int_equal(pub.device->subscriber_count, 1);
    w.in(pub, req(P2P_CMD_SEND, "hello"));
    w.expect(sub, {v1_delivery("hello")});
    w.expect(pub, {rep(P2P_CMD_SEND, 1)});

    // UNSUBSCRIBE stops deliveries, and is idempotent.
    w.in(sub, req(P2P_CMD_UNSUBSCRIBE, "pub"));
    w.in(sub, req(P2P_CMD_UNSUBSCRIBE, "pub"));
    w.expect(sub, {rep(P2P_CMD_UNSUBSCRIBE, 1), rep(P2P_CMD_UNSUBSCRIBE, 1)});
    w.in(pub, req(P2P_CMD_SEND, "again"));
    w.expect(pub, {rep(P2P_CMD_SEND, 1)});
    w.expect_nothing(sub);
    assert_int_equal(sub.subscription_count, 0);
    w.finish();
}

void test_v2_subscribe_rules(void**) {
    World w;
    Session& s = w.v2();
    Session& p = w.v1();
    w.in(s, req(P2P_CMD_SUBSCRIBE, "p"));  // offline: 82 01 + PRESENCE offline
    w.expect(s, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "p")});
    assert_int_equal(w.relay.device_count(), 1);
    w.in(p, req(P2P_CMD_REGISTER, "p"));
    w.expect(p, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(s, {presence(kOnline, "p")});
    // Again: 82 01 + PRESENCE online, still one subscription.
    w.in(s, req(P2P_CMD_SUBSCRIBE, "p"));
    w.expect(s, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "p")});
    assert_int_equal(s.subscription_count, 1);
    w.in(p, req(P2P_CMD_SEND, "once"));
    w.expect(s, {v2_delivery("p", "once")});
    w.expect(p, {rep(P2P_CMD_SEND, 1)});

    // Bad arguments: 82 04, no PRESENCE.
    w.in(s, req(P2P_CMD_REGISTER, "me"));
    w.in(s, req(P2P_CMD_SUBSCRIBE, "me"));
    w.in(s, req(P2P_CMD_SUBSCRIBE));
    w.in(s, req(P2P_CMD_SUBSCRIBE, long_id(256)));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 4), rep(P2P_CMD_SUBSCRIBE, 4),
                 rep(P2P_CMD_SUBSCRIBE, 4)});
    w.in(s, req(P2P_CMD_CHECK_ALIVE));
    w.in(s, req(P2P_CMD_CHECK_ALIVE, "nobody"));
    w.in(s, req(P2P_CMD_UNREGISTER));
    w.in(s, req(P2P_CMD_UNREGISTER));
    w.in(s, req(P2P_CMD_UNSUBSCRIBE, "nobody"));
    w.in(s, req(P2P_CMD_SEND, "x"));
    w.expect(s, {rep(P2P_CMD_CHECK_ALIVE, 4), rep(P2P_CMD_CHECK_ALIVE, 0),
                 rep(P2P_CMD_UNREGISTER, 1), rep(P2P_CMD_UNREGISTER, 1),
                 rep(P2P_CMD_UNSUBSCRIBE, 1), rep(P2P_CMD_SEND, 2)});
    // UNREGISTER dropped s's subscription to p.
    assert_int_equal(s.subscription_count, 0);
    w.in(p, req(P2P_CMD_SEND, "gone"));
    w.expect(p, {rep(P2P_CMD_SEND, 1)});
    w.expect_nothing(s);
    w.finish();
}

void test_max_subs_limit(void**) {
    RelayLimits limits;
    limits.max_subs = 3;
    World w(limits);
    Session& s = w.v2();
    w.in(s, req(P2P_CMD_SUBSCRIBE, "a"));
    w.in(s, req(P2P_CMD_SUBSCRIBE, "b"));
    w.in(s, req(P2P_CMD_SUBSCRIBE, "c"));
    w.in(s, req(P2P_CMD_SUBSCRIBE, "d"));  // over the limit: 82 07, no PRESENCE
    w.in(s, req(P2P_CMD_SUBSCRIBE, "a"));  // repeated: never the limit
    w.expect(s, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "a"), rep(P2P_CMD_SUBSCRIBE, 1),
                 presence(kOffline, "b"), rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "c"),
                 rep(P2P_CMD_SUBSCRIBE, 7), rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "a")});
    assert_int_equal(s.subscription_count, 3);
    assert_int_equal(w.relay.device_count(), 3);  // no entry for "d"
    w.in(s, req(P2P_CMD_UNSUBSCRIBE, "b"));
    w.in(s, req(P2P_CMD_SUBSCRIBE, "d"));
    w.expect(s, {rep(P2P_CMD_UNSUBSCRIBE, 1), rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "d")});
    assert_int_equal(w.relay.device_count(), 3);  // b freed, d created

    // v1: the same limit answers 82 00.
    Session& v = w.v1();
    Session* holders[4];
    const char* ids[4] = {"h0", "h1", "h2", "h3"};
    for (int i = 0; i < 4; ++i) {
        holders[i] = &w.v1();
        w.in(*holders[i], req(P2P_CMD_REGISTER, ids[i]));
        w.expect(*holders[i], {rep(P2P_CMD_REGISTER, 1)});
        w.in(v, req(P2P_CMD_SUBSCRIBE, ids[i]));
    }
    w.expect(v, {rep(P2P_CMD_SUBSCRIBE, 1), rep(P2P_CMD_SUBSCRIBE, 1), rep(P2P_CMD_SUBSCRIBE, 1),
                 rep(P2P_CMD_SUBSCRIBE, 0)});
    w.in(*holders[3], req(P2P_CMD_SEND, "no"));
    w.expect(*holders[3], {rep(P2P_CMD_SEND, 1)});
    w.expect_nothing(v);
    w.finish();
}

}  // namespace

int main(void) {
    log_set_level(LogLevel::error);  // the relay's info lines are noise here
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_subscribe_rules),
        cmocka_unit_test(test_v2_subscribe_rules),
        cmocka_unit_test(test_max_subs_limit),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
