// test_relay_send.cpp - unit tests of the relay (src/server/relay.cpp):
// SEND: deliveries in both formats, fan-out order, QUIET, subscriptions that
// outlive a reconnect, and a slow consumer among the subscribers. The
// harness is relay_world.h.
#include "relay_world.h"

namespace {

using namespace relay_test;

void test_v1_send_and_deliveries(void**) {
    World w;
    Session& pub = w.v1();
    Session& s1 = w.v1();
    w.in(pub, req(P2P_CMD_REGISTER, "p"));
    w.expect(pub, {rep(P2P_CMD_REGISTER, 1)});

    // Nobody subscribed: dropped, still 83 01.
    w.in(pub, req(P2P_CMD_SEND, "lost"));
    w.expect(pub, {rep(P2P_CMD_SEND, 1)});
    assert_int_equal(w.relay.stats().dropped_no_subscriber, 1);
    assert_int_equal(w.relay.stats().deliveries, 0);

    w.in(s1, req(P2P_CMD_SUBSCRIBE, "p"));
    w.expect(s1, {rep(P2P_CMD_SUBSCRIBE, 1)});
    // Empty data, binary data with NUL and high bytes: byte for byte.
    std::string bin("\x00\xff\x80\x03\x00", 5);
    w.in(pub, req(P2P_CMD_SEND));
    w.in(pub, req(P2P_CMD_SEND, bin));
    w.expect(s1, {v1_delivery(""), v1_delivery(bin)});
    w.expect(pub, {rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND, 1)});
    assert_int_equal(w.relay.stats().deliveries, 2);
    assert_int_equal(w.relay.stats().dropped_no_subscriber, 1);

    // A subscriber of several devices gets each one's messages.
    Session& q = w.v1();
    w.in(q, req(P2P_CMD_REGISTER, "q"));
    w.in(s1, req(P2P_CMD_SUBSCRIBE, "q"));
    w.in(q, req(P2P_CMD_SEND, "from q"));
    w.in(pub, req(P2P_CMD_SEND, "from p"));
    w.expect(q, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND, 1)});
    w.expect(pub, {rep(P2P_CMD_SEND, 1)});
    w.expect(s1, {rep(P2P_CMD_SUBSCRIBE, 1), v1_delivery("from q"), v1_delivery("from p")});
    w.finish();
}

// A subscription names the id: it survives the holder leaving and another
// connection registering the id, and the sender never gets its own message
// back even when it is subscribed to its own id (via a takeover).
void test_subscription_survives_reconnect_and_no_self_copy(void**) {
    World w;
    Session& old_pub = w.v1();
    Session& sub = w.v1();
    w.in(old_pub, req(P2P_CMD_REGISTER, "p"));
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "p"));
    w.expect(old_pub, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 1)});

    w.relay.end_session(old_pub, CloseReason::peer_closed);
    w.expect_nothing(old_pub);
    w.expect_nothing(sub);  // v1: no PRESENCE
    assert_int_equal(w.relay.device_count(), 1);  // kept for the subscriber

    Session& new_pub = w.v1();
    w.in(new_pub, req(P2P_CMD_SUBSCRIBE, "p"));  // offline: 82 00 in v1
    w.expect(new_pub, {rep(P2P_CMD_SUBSCRIBE, 0)});
    w.in(new_pub, req(P2P_CMD_REGISTER, "p"));
    w.in(new_pub, req(P2P_CMD_SEND, "back"));
    w.expect(new_pub, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND, 1)});
    w.expect(sub, {v1_delivery("back")});

    // sub subscribes to q (held by another), then takes q over: it is now
    // subscribed to its own id, and its SEND must not come back to it.
    Session& q = w.v1();
    w.in(q, req(P2P_CMD_REGISTER, "q"));
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "q"));
    w.in(sub, req(P2P_CMD_REGISTER, "q"));
    w.expect(q, {rep(P2P_CMD_REGISTER, 1)});
    w.expect_closes({{q.session_id, CloseReason::taken_over}});
    assert_true(q.ended);
    w.in(sub, req(P2P_CMD_SEND, "mine"));
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 1), rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND, 1)});
    w.expect_nothing(q);  // v1: closed without a word
    w.finish();
}

void test_fanout_order_and_formats(void**) {
    World w;
    Session& pub = w.v2();
    Session& a = w.v1();
    Session& b = w.v2();
    Session& c = w.v1();
    w.in(pub, req(P2P_CMD_REGISTER, "pub"));
    w.in(a, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(b, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(c, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.expect(pub, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(a, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.expect(b, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "pub")});
    w.expect(c, {rep(P2P_CMD_SUBSCRIBE, 1)});

    // Deliveries are queued before the sender's reply; each subscriber gets
    // its own format.
    size_t mark = w.host.log.size();
    w.in(pub, req(P2P_CMD_SEND, "msg"));
    std::string want = std::to_string(a.session_id) + ":" + render(v1_delivery("msg")) + " | " +
                       std::to_string(b.session_id) + ":" + render(v2_delivery("pub", "msg")) +
                       " | " + std::to_string(c.session_id) + ":" + render(v1_delivery("msg")) +
                       " | " + std::to_string(pub.session_id) + ":" + render(rep(P2P_CMD_SEND, 1));
    assert_string_equal(w.since(mark).c_str(), want.c_str());
    w.expect(a, {v1_delivery("msg")});
    w.expect(b, {v2_delivery("pub", "msg")});
    w.expect(c, {v1_delivery("msg")});
    w.expect(pub, {rep(P2P_CMD_SEND, 1)});

    // The v1 sender's messages reach a v2 subscriber as DELIVER naming it;
    // a 255-byte sender id with NUL and high bytes is copied exactly.
    Session& big = w.v1();
    std::string id255 = long_id(255);
    w.in(big, req(P2P_CMD_REGISTER, id255));
    w.in(b, req(P2P_CMD_SUBSCRIBE, id255));
    w.in(a, req(P2P_CMD_SUBSCRIBE, id255));
    w.in(big, req(P2P_CMD_SEND, std::string_view("\x00z", 2)));
    w.in(big, req(P2P_CMD_SEND));
    w.expect(big, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND, 1)});
    w.expect(b, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, id255),
                 v2_delivery(id255, std::string_view("\x00z", 2)), v2_delivery(id255, "")});
    w.expect(a, {rep(P2P_CMD_SUBSCRIBE, 1), v1_delivery(std::string_view("\x00z", 2)),
                 v1_delivery("")});
    assert_int_equal(w.relay.stats().deliveries, 7);
    w.finish();
}

void test_quiet(void**) {
    World w;
    Session& q = w.v2(true);
    assert_true(q.quiet);
    Session& t = w.v2();
    Session& sub = w.v1();
    w.in(t, req(P2P_CMD_REGISTER, "t"));
    w.expect(t, {rep(P2P_CMD_REGISTER, 1)});

    // Failures are still answered.
    w.in(q, req(P2P_CMD_SEND, "x"));
    w.in(q, send_to("t", "x"));
    w.expect(q, {rep(P2P_CMD_SEND, 2), rep(P2P_CMD_SEND_TO, 2)});

    w.in(q, req(P2P_CMD_REGISTER, "q"));
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "q"));
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.in(q, req(P2P_CMD_SEND, "s1"));
    w.in(q, send_to("t", "s2"));
    w.in(q, send_to("nobody", "s3"));
    w.in(q, send_to("q", "s4"));
    w.in(q, req(P2P_CMD_HEARTBEAT));
    // Successful SEND and SEND_TO: no reply; the rest as usual.
    w.expect(q, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND_TO, 3), rep(P2P_CMD_SEND_TO, 4),
                 rep(P2P_CMD_HEARTBEAT, 1)});
    w.expect(sub, {v1_delivery("s1")});
    w.expect(t, {v2_delivery("q", "s2")});

    // A second HELLO clears the flag.
    w.in(q, hello(2, 0));
    w.expect(q, {Bytes{0x88, 1, 2, 0, 1, 0, 0, 0, 0, 1, 0x2c}});
    assert_false(q.quiet);
    w.in(q, req(P2P_CMD_SEND, "s5"));
    w.expect(q, {rep(P2P_CMD_SEND, 1)});
    w.expect(sub, {v1_delivery("s5")});

    // QUIET in a v1 session has no effect.
    Session& v1q = w.v1();
    w.in(v1q, hello(1, 1));
    w.expect(v1q, {Bytes{0x88, 1, 1, 0, 1, 0, 0, 0, 0, 1, 0x2c}});
    assert_int_equal(v1q.version, 1);
    w.in(v1q, req(P2P_CMD_REGISTER, "v1q"));
    w.in(v1q, req(P2P_CMD_SEND, "x"));
    w.in(v1q, send_to("t", "y"));
    w.expect(v1q, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND_TO, 1)});
    w.expect(t, {v2_delivery("v1q", "y")});
    w.finish();
}

// The host drops every frame for one session (its output cap is reached) and
// ends it after the call, as the server does in after_iteration: the
// publisher and the other subscribers see nothing of it.
void test_slow_consumer_does_not_disturb_others(void**) {
    World w;
    Session& pub = w.v2();
    Session& fast1 = w.v1();
    Session& slow = w.v2();
    Session& fast2 = w.v2();
    w.in(pub, req(P2P_CMD_REGISTER, "pub"));
    w.in(slow, req(P2P_CMD_REGISTER, "slow"));
    w.in(fast1, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(slow, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(fast2, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(fast2, req(P2P_CMD_SUBSCRIBE, "slow"));
    w.expect(pub, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(slow, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "pub")});
    w.expect(fast1, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.expect(fast2, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "pub"), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOnline, "slow")});

    w.host.refusing.insert(slow.session_id);
    for (int i = 0; i < 5; ++i) w.in(pub, req(P2P_CMD_SEND, "m" + std::to_string(i)));
    w.in(pub, send_to("slow", "direct"));
    w.expect(pub, {rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND, 1),
                   rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND_TO, 1)});
    w.expect(fast1, {v1_delivery("m0"), v1_delivery("m1"), v1_delivery("m2"), v1_delivery("m3"),
                     v1_delivery("m4")});
    w.expect(fast2, {v2_delivery("pub", "m0"), v2_delivery("pub", "m1"), v2_delivery("pub", "m2"),
                     v2_delivery("pub", "m3"), v2_delivery("pub", "m4")});
    w.expect_nothing(slow);
    assert_int_equal(w.host.dropped, 6);
    assert_int_equal(w.host.cut_off.size(), 1);
    assert_true(w.host.cut_off[0] == &slow);
    w.expect_closes({});  // the relay itself closes nobody

    // The host ends it after the call: a BYE 3 gets through, its id goes
    // offline for its subscribers, and it receives nothing after that.
    w.relay.end_session(slow, CloseReason::slow_consumer);
    w.expect(slow, {bye(P2P_BYE_SLOW_CONSUMER)});
    w.expect(fast2, {presence(kOffline, "slow")});
    w.in(pub, req(P2P_CMD_SEND, "after"));
    w.in(pub, send_to("slow", "after"));
    w.expect(pub, {rep(P2P_CMD_SEND, 1), rep(P2P_CMD_SEND_TO, 3)});
    w.expect(fast1, {v1_delivery("after")});
    w.expect(fast2, {v2_delivery("pub", "after")});
    w.expect_nothing(slow);
    assert_int_equal(w.host.dropped, 6);
    w.finish();
}

}  // namespace

int main(void) {
    log_set_level(LogLevel::error);  // the relay's info lines are noise here
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_send_and_deliveries),
        cmocka_unit_test(test_subscription_survives_reconnect_and_no_self_copy),
        cmocka_unit_test(test_fanout_order_and_formats),
        cmocka_unit_test(test_quiet),
        cmocka_unit_test(test_slow_consumer_does_not_disturb_others),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
