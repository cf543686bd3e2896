// test_relay_session_end.cpp - unit tests of the relay
// (src/server/relay.cpp): end_session(): BYE reasons, what a session's end
// releases, and device entries freed. The harness is relay_world.h.
#include "relay_world.h"

namespace {

using namespace relay_test;

void test_end_session_bye_reasons(void**) {
    struct Case {
        CloseReason reason;
        int bye;  // 0: none
    };
    const Case cases[] = {
        {CloseReason::taken_over, P2P_BYE_TAKEN_OVER},
        {CloseReason::idle_timeout, P2P_BYE_IDLE_TIMEOUT},
        {CloseReason::slow_consumer, P2P_BYE_SLOW_CONSUMER},
        {CloseReason::shutdown, P2P_BYE_SHUTDOWN},
        {CloseReason::protocol_error, P2P_BYE_PROTOCOL_ERROR},
        {CloseReason::not_authorized, P2P_BYE_NOT_AUTHORIZED},
        {CloseReason::limit, P2P_BYE_LIMIT},
        {CloseReason::peer_closed, 0},
        {CloseReason::io_error, 0},
    };
    for (const Case& c : cases) {
        World w;
        Session& v2 = w.v2();
        Session& v1 = w.v1();
        w.relay.end_session(v2, c.reason);
        w.relay.end_session(v1, c.reason);
        if (c.bye != 0)
            w.expect(v2, {bye(u8(c.bye))});
        else
            w.expect_nothing(v2);
        w.expect_nothing(v1);  // v1: never a word
        assert_true(v2.ended && v1.ended);
        // A second end_session sends nothing more.
        w.relay.end_session(v2, c.reason);
        w.expect_nothing(v2);
        w.expect_closes({});
        w.finish();
    }
}

void test_end_session_releases_id_and_subscriptions(void**) {
    World w;
    Session& h = w.v2();
    Session& w2 = w.v2();
    Session& w1 = w.v1();
    Session& p = w.v1();
    w.in(h, req(P2P_CMD_REGISTER, "h"));
    w.in(h, req(P2P_CMD_SUBSCRIBE, "p"));  // offline, v2: allowed
    w.in(h, req(P2P_CMD_SUBSCRIBE, "w1"));
    w.in(w2, req(P2P_CMD_SUBSCRIBE, "h"));
    w.in(w1, req(P2P_CMD_SUBSCRIBE, "h"));
    w.in(p, req(P2P_CMD_REGISTER, "p"));
    w.expect(h, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "p"),
                 rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "w1"), presence(kOnline, "p")});
    w.expect(w2, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "h")});
    w.expect(w1, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.expect(p, {rep(P2P_CMD_REGISTER, 1)});
    assert_int_equal(w.relay.device_count(), 3);  // h, p, w1

    // Deliveries from h come before the PRESENCE offline.
    w.in(h, req(P2P_CMD_SEND, "last"));
    w.relay.end_session(h, CloseReason::peer_closed);
    w.expect(h, {rep(P2P_CMD_SEND, 1)});  // peer closed: no BYE
    w.expect(w2, {v2_delivery("h", "last"), presence(kOffline, "h")});
    w.expect(w1, {v1_delivery("last")});
    assert_null(h.device);
    assert_int_equal(h.subscription_count, 0);
    // "w1" had only h as subscriber: freed; "h" stays for its subscribers.
    assert_int_equal(w.relay.device_count(), 2);
    assert_int_equal(w.relay.stats().deliveries, 2);

    // h no longer receives from p.
    w.in(p, req(P2P_CMD_SEND, "x"));
    w.expect(p, {rep(P2P_CMD_SEND, 1)});
    w.expect_nothing(h);
    assert_int_equal(w.relay.stats().dropped_no_subscriber, 1);

    // The last subscriber of "h" leaving frees it.
    w.relay.end_session(w2, CloseReason::io_error);
    assert_int_equal(w.relay.device_count(), 2);  // w1 still subscribes
    w.relay.end_session(w1, CloseReason::peer_closed);
    assert_int_equal(w.relay.device_count(), 1);  // "p", held
    w.relay.end_session(p, CloseReason::shutdown);
    assert_int_equal(w.relay.device_count(), 0);
    w.expect_nothing(w2);
    w.expect_nothing(w1);
    w.expect_nothing(p);  // v1

    // Ending a session that holds nothing, twice.
    Session& idle = w.v1();
    w.relay.end_session(idle, CloseReason::idle_timeout);
    w.relay.end_session(idle, CloseReason::idle_timeout);
    w.expect_nothing(idle);
    w.finish();
}

void test_device_entries_freed(void**) {
    World w;
    Session& a = w.v2();
    Session& b = w.v1();
    assert_int_equal(w.relay.device_count(), 0);
    w.in(a, req(P2P_CMD_REGISTER, "a"));
    assert_int_equal(w.relay.device_count(), 1);
    w.in(a, req(P2P_CMD_SUBSCRIBE, "z"));
    assert_int_equal(w.relay.device_count(), 2);
    w.in(a, req(P2P_CMD_UNSUBSCRIBE, "z"));
    assert_int_equal(w.relay.device_count(), 1);
    w.in(b, req(P2P_CMD_SUBSCRIBE, "z"));  // v1, offline: nothing created
    w.in(b, req(P2P_CMD_CHECK_ALIVE, "zz"));
    w.in(b, req(P2P_CMD_UNSUBSCRIBE, "zzz"));
    assert_int_equal(w.relay.device_count(), 1);
    w.in(b, req(P2P_CMD_SUBSCRIBE, "a"));
    w.in(a, req(P2P_CMD_UNREGISTER));
    assert_int_equal(w.relay.device_count(), 1);  // b still subscribes to "a"
    w.in(b, req(P2P_CMD_UNSUBSCRIBE, "a"));
    assert_int_equal(w.relay.device_count(), 0);
    // Register, register another, unregister: the first is freed at once.
    w.in(a, req(P2P_CMD_REGISTER, "a1"));
    w.in(a, req(P2P_CMD_REGISTER, "a2"));
    assert_int_equal(w.relay.device_count(), 1);
    w.in(a, req(P2P_CMD_UNREGISTER));
    assert_int_equal(w.relay.device_count(), 0);
    // Many ids through one session, then many subscriptions dropped by
    // UNREGISTER.
    for (int i = 0; i < 300; ++i) {
        std::string id = "dev-" + std::to_string(i);
        w.in(a, req(P2P_CMD_REGISTER, id));
        w.in(a, req(P2P_CMD_SUBSCRIBE, "sub-" + std::to_string(i)));
    }
    assert_int_equal(w.relay.device_count(), 301);
    assert_int_equal(a.subscription_count, 300);
    w.in(a, req(P2P_CMD_UNREGISTER));
    assert_int_equal(w.relay.device_count(), 0);
    assert_int_equal(a.subscription_count, 0);
    w.take(a);
    w.expect(b, {rep(P2P_CMD_SUBSCRIBE, 0), rep(P2P_CMD_CHECK_ALIVE, 0),
                 rep(P2P_CMD_UNSUBSCRIBE, 1), rep(P2P_CMD_SUBSCRIBE, 1),
                 rep(P2P_CMD_UNSUBSCRIBE, 1)});
    w.finish();
}

}  // namespace

int main(void) {
    log_set_level(LogLevel::error);  // the relay's info lines are noise here
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_end_session_bye_reasons),
        cmocka_unit_test(test_end_session_releases_id_and_subscriptions),
        cmocka_unit_test(test_device_entries_freed),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
