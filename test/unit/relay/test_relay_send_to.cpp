// test_relay_send_to.cpp - unit tests of the relay (src/server/relay.cpp):
// SEND_TO: every failure reason in v2, and 0 in v1; a v1 target takes
// SEND_TO only from a device it subscribes to. The harness is
// relay_world.h.
#include "relay_world.h"

namespace {

using namespace relay_test;

void test_send_to_reasons_v2(void**) {
    World w;
    Session& s = w.v2();
    Session& t2 = w.v2();
    Session& t1 = w.v1();
    Session& fan = w.v1();  // subscriber of s: SEND_TO must not reach it
    w.in(t2, req(P2P_CMD_REGISTER, "t2"));
    w.in(t1, req(P2P_CMD_REGISTER, "t1"));
    w.in(t1, req(P2P_CMD_SUBSCRIBE, "t2"));  // t1 (v1) hears t2: it may write to t1 too
    w.expect(t2, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(t1, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 1)});

    // Unregistered sender: 4 wins over 2, 2 over 3.
    w.in(s, req(P2P_CMD_SEND_TO));                               // no id_len
    w.in(s, Bytes{P2P_CMD_SEND_TO, 0});                          // id_len 0
    w.in(s, Bytes{P2P_CMD_SEND_TO, 0, 'x'});                     // id_len 0 with data
    w.in(s, Bytes{P2P_CMD_SEND_TO, 3, 't', '2'});                // runs past the end
    w.in(s, Bytes{P2P_CMD_SEND_TO, 0xff} + long_id(254));        // runs past by one
    w.in(s, send_to("nobody", "x"));                             // 2, not 3
    w.in(s, send_to("t2", "x"));                                 // 2
    w.expect(s, {rep(P2P_CMD_SEND_TO, 4), rep(P2P_CMD_SEND_TO, 4), rep(P2P_CMD_SEND_TO, 4),
                 rep(P2P_CMD_SEND_TO, 4), rep(P2P_CMD_SEND_TO, 4), rep(P2P_CMD_SEND_TO, 2),
                 rep(P2P_CMD_SEND_TO, 2)});

    w.in(s, req(P2P_CMD_REGISTER, "s"));
    w.in(fan, req(P2P_CMD_SUBSCRIBE, "s"));
    w.in(t1, req(P2P_CMD_SUBSCRIBE, "s"));
    w.expect(fan, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.expect(t1, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.in(s, send_to("s", "x"));                // own id: 4, not 3 or 2
    w.in(s, Bytes{P2P_CMD_SEND_TO, 2, 's'});   // runs past, even though "s" is own
    w.in(s, send_to("nobody", "x"));           // 3
    w.in(s, send_to("T2", "x"));               // ids are exact: 3
    w.expect(s, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND_TO, 4), rep(P2P_CMD_SEND_TO, 4),
                 rep(P2P_CMD_SEND_TO, 3), rep(P2P_CMD_SEND_TO, 3)});

    // Success: the delivery is queued before the 8a 01; v2 and v1 formats;
    // empty data; the sender's subscribers get nothing.
    size_t mark = w.host.log.size();
    w.in(s, send_to("t2", "hi"));
    std::string want = std::to_string(t2.session_id) + ":" + render(v2_delivery("s", "hi")) +
                       " | " + std::to_string(s.session_id) + ":" +
                       render(rep(P2P_CMD_SEND_TO, 1));
    assert_string_equal(w.since(mark).c_str(), want.c_str());
    w.in(s, send_to("t1", "yo"));
    w.in(s, send_to("t2", ""));
    std::string id255 = long_id(255);
    Session& big = w.v2();
    w.in(big, req(P2P_CMD_REGISTER, id255));
    w.in(s, send_to(id255, "!"));
    w.expect(big, {rep(P2P_CMD_REGISTER, 1), v2_delivery("s", "!")});
    w.expect(s, {rep(P2P_CMD_SEND_TO, 1), rep(P2P_CMD_SEND_TO, 1), rep(P2P_CMD_SEND_TO, 1),
                 rep(P2P_CMD_SEND_TO, 1)});
    w.expect(t2, {v2_delivery("s", "hi"), v2_delivery("s", "")});
    w.expect(t1, {v1_delivery("yo")});
    w.expect_nothing(fan);
    // t1 sends back: SEND_TO from a v1 session works, and a v2 target sees
    // its id.
    w.in(t1, send_to("s", "back"));
    w.expect(t1, {rep(P2P_CMD_SEND_TO, 1)});
    w.expect(s, {v2_delivery("t1", "back")});
    w.finish();
}

void test_send_to_v1_failures_are_zero(void**) {
    World w;
    Session& s = w.v1();
    Session& t = w.v1();
    w.in(t, req(P2P_CMD_REGISTER, "t"));
    w.expect(t, {rep(P2P_CMD_REGISTER, 1)});
    w.in(s, req(P2P_CMD_SEND_TO));
    w.in(s, Bytes{P2P_CMD_SEND_TO, 0});
    w.in(s, Bytes{P2P_CMD_SEND_TO, 5, 't'});
    w.in(s, send_to("t", "x"));  // not registered
    w.in(s, req(P2P_CMD_REGISTER, "s"));
    w.in(s, send_to("s", "x"));  // own id
    w.in(s, send_to("u", "x"));  // offline
    w.in(s, send_to("t", "x"));  // t (v1) does not subscribe to s
    w.expect(s, {rep(P2P_CMD_SEND_TO, 0), rep(P2P_CMD_SEND_TO, 0), rep(P2P_CMD_SEND_TO, 0),
                 rep(P2P_CMD_SEND_TO, 0), rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND_TO, 0),
                 rep(P2P_CMD_SEND_TO, 0), rep(P2P_CMD_SEND_TO, 0)});
    w.expect_nothing(t);
    w.in(t, req(P2P_CMD_SUBSCRIBE, "s"));
    w.in(s, send_to("t", "x"));
    w.expect(t, {rep(P2P_CMD_SUBSCRIBE, 1), v1_delivery("x")});
    w.expect(s, {rep(P2P_CMD_SEND_TO, 1)});
    w.finish();
}

}  // namespace

int main(void) {
    log_set_level(LogLevel::error);  // the relay's info lines are noise here
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_to_reasons_v2),
        cmocka_unit_test(test_send_to_v1_failures_are_zero),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
