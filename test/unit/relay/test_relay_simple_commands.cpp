// test_relay_simple_commands.cpp - unit tests of the relay
// (src/server/relay.cpp): HEARTBEAT, UNREGISTER, CHECK_ALIVE, empty frames,
// unknown command bytes and the reply bit. The harness is relay_world.h.
#include "relay_world.h"

namespace {

using namespace relay_test;

void test_v1_simple_replies(void**) {
    World w;
    Session& a = w.v1();
    w.in(a, req(P2P_CMD_HEARTBEAT));
    w.in(a, req(P2P_CMD_HEARTBEAT, "ignored data"));
    w.in(a, req(P2P_CMD_UNREGISTER));       // not registered: still 84 01
    w.in(a, req(P2P_CMD_UNSUBSCRIBE, "x"));  // no such subscription: 85 01
    w.in(a, req(P2P_CMD_UNSUBSCRIBE));       // empty id: 85 01
    w.in(a, req(P2P_CMD_CHECK_ALIVE, "x"));  // unknown: 86 00
    w.in(a, req(P2P_CMD_CHECK_ALIVE));       // empty: 86 00 in v1
    w.in(a, req(P2P_CMD_CHECK_ALIVE, long_id(256)));
    w.in(a, req(P2P_CMD_SEND, "data"));      // no id: 83 00
    w.expect(a, {rep(P2P_CMD_HEARTBEAT, 1), rep(P2P_CMD_HEARTBEAT, 1), rep(P2P_CMD_UNREGISTER, 1),
                 rep(P2P_CMD_UNSUBSCRIBE, 1), rep(P2P_CMD_UNSUBSCRIBE, 1),
                 rep(P2P_CMD_CHECK_ALIVE, 0), rep(P2P_CMD_CHECK_ALIVE, 0),
                 rep(P2P_CMD_CHECK_ALIVE, 0), rep(P2P_CMD_SEND, 0)});

    w.in(a, req(P2P_CMD_REGISTER, "a"));
    w.in(a, req(P2P_CMD_CHECK_ALIVE, "a"));
    w.in(a, req(P2P_CMD_UNREGISTER));
    w.in(a, req(P2P_CMD_CHECK_ALIVE, "a"));
    w.in(a, req(P2P_CMD_UNREGISTER));
    w.expect(a, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_CHECK_ALIVE, 1), rep(P2P_CMD_UNREGISTER, 1),
                 rep(P2P_CMD_CHECK_ALIVE, 0), rep(P2P_CMD_UNREGISTER, 1)});
    assert_null(a.device);
    assert_int_equal(w.relay.device_count(), 0);
    assert_int_equal(w.relay.stats().frames_in, 14);
    w.finish();
}

void test_empty_frame_ignored(void**) {
    World w;
    Session& a = w.v1();
    Session& b = w.v2();
    uint64_t before = w.relay.stats().frames_in;
    w.relay.on_frame(a, nullptr, 0);
    w.relay.on_frame(b, nullptr, 0);
    uint8_t byte = P2P_CMD_HEARTBEAT;
    w.relay.on_frame(b, &byte, 0);  // a length of 0, whatever the pointer
    w.expect_nothing(a);
    w.expect_nothing(b);
    assert_int_equal(w.relay.stats().frames_in, before);
    w.expect_closes({});
    w.in(a, req(P2P_CMD_HEARTBEAT));
    w.expect(a, {rep(P2P_CMD_HEARTBEAT, 1)});
    w.finish();
}

void test_unknown_commands_v1_ignored(void**) {
    World w;
    Session& s = w.v1();
    w.in(s, req(P2P_CMD_REGISTER, "s"));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1)});
    for (unsigned c = 0; c <= 0xff; ++c) {
        if ((c >= 0x01 && c <= 0x08) || c == 0x0a || c == 0x0c) continue;
        w.in(s, req(u8(c), "data"));
        w.in(s, req(u8(c)));
    }
    w.expect_nothing(s);
    w.expect_closes({});
    assert_false(s.ended);
    // AUTH is known: 8c 00 in v1.
    w.in(s, req(P2P_CMD_AUTH, "token"));
    w.in(s, req(P2P_CMD_HEARTBEAT));
    w.expect(s, {rep(P2P_CMD_AUTH, 0), rep(P2P_CMD_HEARTBEAT, 1)});
    w.finish();
}

void test_unknown_commands_v2_unsupported(void**) {
    World w;
    Session& s = w.v2();
    std::vector<Bytes> want;
    for (unsigned c = 0; c < 0x80; ++c) {
        if ((c >= 0x01 && c <= 0x08) || c == 0x0a) continue;
        w.in(s, req(u8(c), "data"));
        // The direct-path requests know their layout: "data" is not one
        // (test_relay_direct.cpp). 0x0c AUTH is included: 8c 06.
        bool direct = c >= P2P_CMD_DIRECT_OFFER && c <= P2P_CMD_DIRECT_RESULT;
        want.push_back(rep(u8(c), direct ? P2P_STATUS_BAD_ARGUMENT : 6));
    }
    std::string got = render_list(w.take(s));
    assert_string_equal(got.c_str(), render_list(want).c_str());
    // The examples from the man page: 0d -> 8d 06, 7f -> ff 06, 00 -> 80 06.
    w.in(s, req(0x0d));
    w.in(s, req(0x7f));
    w.in(s, req(0x00));
    w.expect(s, {Bytes{0x8d, 6}, Bytes{0xff, 6}, Bytes{0x80, 6}});
    w.expect_closes({});
    assert_false(s.ended);
    w.finish();
}

void test_reply_bit_is_protocol_error_in_v2(void**) {
    const uint8_t bad[] = {0x80, 0x81, 0x88, 0xfe, 0xff};
    for (uint8_t cmd : bad) {
        World w;
        Session& s = w.v2();
        Session& watch = w.v2();
        w.in(s, req(P2P_CMD_REGISTER, "s"));
        w.in(s, req(P2P_CMD_SUBSCRIBE, "other"));
        w.in(watch, req(P2P_CMD_SUBSCRIBE, "s"));
        w.expect(s, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOffline, "other")});
        w.expect(watch, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "s")});

        w.in(s, req(cmd, "junk"));
        w.expect_closes({{s.session_id, CloseReason::protocol_error}});
        assert_true(s.ended);
        w.expect(s, {bye(P2P_BYE_PROTOCOL_ERROR)});
        w.expect(watch, {presence(kOffline, "s")});
        assert_int_equal(w.relay.device_count(), 1);  // "s", for watch
        // Inert from now on.
        w.in(s, req(P2P_CMD_HEARTBEAT));
        w.in(s, req(P2P_CMD_REGISTER, "s"));
        w.expect_nothing(s);
        w.in(watch, req(P2P_CMD_CHECK_ALIVE, "s"));
        w.expect(watch, {rep(P2P_CMD_CHECK_ALIVE, 0)});
        w.finish();
    }
}

}  // namespace

int main(void) {
    log_set_level(LogLevel::error);  // the relay's info lines are noise here
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_simple_replies),
        cmocka_unit_test(test_empty_frame_ignored),
        cmocka_unit_test(test_unknown_commands_v1_ignored),
        cmocka_unit_test(test_unknown_commands_v2_unsupported),
        cmocka_unit_test(test_reply_bit_is_protocol_error_in_v2),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
