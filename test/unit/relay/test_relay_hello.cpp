// test_relay_hello.cpp - unit tests of the relay (src/server/relay.cpp):
// HELLO: negotiation, the reply's fields, and every refusal. The harness is
// relay_world.h.
#include "relay_world.h"

namespace {

using namespace relay_test;

void test_hello(void**) {
    RelayLimits limits;
    limits.max_frame = 0x01020304u;
    limits.idle_timeout_s = 0x0a0b0c0du;
    World w(limits);
    Session& s = w.v1();
    w.in(s, hello(2, 0));
    w.expect(s, {Bytes{0x88, 1, 2, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d}});
    assert_int_equal(s.version, 2);
    assert_false(s.quiet);

    // Asking for more than 2 gets 2; asking for 1 goes back to v1.
    w.in(s, hello(0xff, 1));
    w.expect(s, {Bytes{0x88, 1, 2, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d}});
    assert_int_equal(s.version, 2);
    assert_true(s.quiet);

    // Failures: 88 04 in any session; version and flags unchanged.
    w.in(s, hello(0, 0));
    w.in(s, hello(2, 4));
    w.in(s, hello(2, 0x80));
    w.in(s, hello(2, 0x07));
    w.in(s, Bytes{P2P_CMD_HELLO, 2});
    w.in(s, Bytes{P2P_CMD_HELLO, 2, 0, 0});
    w.in(s, Bytes{P2P_CMD_HELLO});
    w.expect(s, {rep(P2P_CMD_HELLO, 4), rep(P2P_CMD_HELLO, 4), rep(P2P_CMD_HELLO, 4),
                 rep(P2P_CMD_HELLO, 4), rep(P2P_CMD_HELLO, 4), rep(P2P_CMD_HELLO, 4),
                 rep(P2P_CMD_HELLO, 4)});
    assert_int_equal(s.version, 2);
    assert_true(s.quiet);

    w.in(s, hello(1, 0));
    w.expect(s, {Bytes{0x88, 1, 1, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d}});
    assert_int_equal(s.version, 1);
    assert_false(s.quiet);
    // Back in v1: unknown commands ignored again, failures are 0.
    w.in(s, req(0x0d));
    w.in(s, req(P2P_CMD_SUBSCRIBE));
    w.expect(s, {rep(P2P_CMD_SUBSCRIBE, 0)});

    Session& v1 = w.v1();
    w.in(v1, hello(0, 0));
    w.in(v1, Bytes{P2P_CMD_HELLO, 1, 0, 9});
    w.expect(v1, {rep(P2P_CMD_HELLO, 4), rep(P2P_CMD_HELLO, 4)});
    assert_int_equal(v1.version, 1);

    // The request right after HELLO is handled under the new version.
    Session& n = w.v1();
    w.in(n, hello(2, 0));
    w.in(n, req(P2P_CMD_SEND, "x"));
    w.expect(n, {Bytes{0x88, 1, 2, 0x01, 0x02, 0x03, 0x04, 0x0a, 0x0b, 0x0c, 0x0d},
                 rep(P2P_CMD_SEND, 2)});

    // The defaults, as in the man page's example.
    World d;
    Session& x = d.v1();
    d.in(x, hello(2, 1));
    d.expect(x, {Bytes{0x88, 1, 2, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c}});
    d.finish();
    w.finish();
}

// DROP (flag bit 1) is taken with or without QUIET, in either version (it
// has an effect in v2 only, which the connection decides), and a later
// HELLO can clear it.
void test_hello_drop_flag(void**) {
    World w;
    Session& s = w.v1();
    w.in(s, hello(2, P2P_HELLO_FLAG_DROP));
    std::vector<Bytes> got = w.take(s);
    assert_int_equal(got.size(), 1);
    assert_int_equal(got[0][1], 1);
    assert_true(s.drop_deliveries);
    assert_false(s.quiet);
    w.in(s, hello(2, P2P_HELLO_FLAG_DROP | P2P_HELLO_FLAG_QUIET));
    got = w.take(s);
    assert_int_equal(got[0][1], 1);
    assert_true(s.drop_deliveries);
    assert_true(s.quiet);
    w.in(s, hello(2, 0x06));  // a reserved bit with it: refused, nothing changes
    w.expect(s, {rep(P2P_CMD_HELLO, 4)});
    assert_true(s.drop_deliveries);
    w.in(s, hello(2, 0));
    got = w.take(s);
    assert_int_equal(got[0][1], 1);
    assert_false(s.drop_deliveries);
    w.in(s, hello(1, P2P_HELLO_FLAG_DROP));
    got = w.take(s);
    assert_int_equal(got[0][2], 1);
    assert_int_equal(s.version, 1);
    assert_true(s.drop_deliveries);
    w.finish();
}

}  // namespace

int main(void) {
    log_set_level(LogLevel::error);  // the relay's info lines are noise here
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello),
        cmocka_unit_test(test_hello_drop_flag),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
