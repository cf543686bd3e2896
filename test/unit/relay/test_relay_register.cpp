// test_relay_register.cpp - unit tests of the relay (src/server/relay.cpp):
// REGISTER: replies, takeover of a held id (visible to v2 subscribers),
// a second id, presence on register, and the table that cannot grow. The harness is relay_world.h.
#include "relay_world.h"

namespace {

using namespace relay_test;

void test_v1_register_replies(void**) {
    World w;
    Session& a = w.v1();
    w.in(a, req(P2P_CMD_REGISTER, "dev1"));
    w.expect(a, {rep(P2P_CMD_REGISTER, 1)});
    assert_int_equal(w.relay.device_count(), 1);
    assert_non_null(a.device);
    assert_true(a.device->holder == &a);

    // Again the same id: succeeds and changes nothing.
    w.in(a, req(P2P_CMD_REGISTER, "dev1"));
    w.expect(a, {rep(P2P_CMD_REGISTER, 1)});
    assert_int_equal(w.relay.device_count(), 1);

    // Empty and over-long ids fail with 0 and keep the id held.
    w.in(a, req(P2P_CMD_REGISTER));
    w.in(a, req(P2P_CMD_REGISTER, long_id(256)));
    w.expect(a, {rep(P2P_CMD_REGISTER, 0), rep(P2P_CMD_REGISTER, 0)});
    w.in(a, req(P2P_CMD_CHECK_ALIVE, "dev1"));
    w.expect(a, {rep(P2P_CMD_CHECK_ALIVE, 1)});

    // 255 bytes, NUL and high bytes included, is a valid id, compared exactly.
    Session& b = w.v1();
    std::string id255 = long_id(255);
    w.in(b, req(P2P_CMD_REGISTER, id255));
    w.expect(b, {rep(P2P_CMD_REGISTER, 1)});
    w.in(b, req(P2P_CMD_CHECK_ALIVE, id255));
    w.in(b, req(P2P_CMD_CHECK_ALIVE, id255.substr(0, 254)));
    w.in(b, req(P2P_CMD_CHECK_ALIVE, "DEV1"));
    w.in(b, req(P2P_CMD_CHECK_ALIVE, std::string_view("dev1\0", 5)));
    w.expect(b, {rep(P2P_CMD_CHECK_ALIVE, 1), rep(P2P_CMD_CHECK_ALIVE, 0),
                 rep(P2P_CMD_CHECK_ALIVE, 0), rep(P2P_CMD_CHECK_ALIVE, 0)});
    assert_int_equal(w.relay.device_count(), 2);
    w.expect_closes({});
    w.finish();
}

void test_takeover_v2_holder(void**) {
    World w;
    Session& old_h = w.v2();
    Session& watcher = w.v2();  // v2 subscriber of the id
    Session& other = w.v1();    // a device old_h subscribes to
    w.in(other, req(P2P_CMD_REGISTER, "other"));
    w.in(old_h, req(P2P_CMD_REGISTER, "dev"));
    w.in(old_h, req(P2P_CMD_SUBSCRIBE, "other"));
    w.in(old_h, req(P2P_CMD_SUBSCRIBE, "offline-id"));
    w.in(watcher, req(P2P_CMD_SUBSCRIBE, "dev"));
    w.expect(other, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(old_h, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOnline, "other"), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOffline, "offline-id")});
    w.expect(watcher, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "dev")});
    assert_int_equal(w.relay.device_count(), 3);

    Session& new_h = w.v1();
    w.in(new_h, req(P2P_CMD_REGISTER, "dev"));
    w.expect_closes({{old_h.session_id, CloseReason::taken_over}});
    assert_true(old_h.ended);
    assert_null(old_h.device);
    assert_true(new_h.device != nullptr && new_h.device->holder == &new_h);
    // Old holder: BYE 1 and nothing else.
    w.expect(old_h, {bye(P2P_BYE_TAKEN_OVER)});
    w.expect(new_h, {rep(P2P_CMD_REGISTER, 1)});
    // The takeover is visible: offline (the old holder went), then online.
    w.expect(watcher, {presence(kOffline, "dev"), presence(kOnline, "dev")});
    // old_h's subscriptions are gone: "offline-id" had no one else.
    assert_int_equal(old_h.subscription_count, 0);
    assert_int_equal(w.relay.device_count(), 2);

    Session& probe = w.v1();
    w.in(probe, req(P2P_CMD_CHECK_ALIVE, "dev"));
    w.expect(probe, {rep(P2P_CMD_CHECK_ALIVE, 1)});

    // The watcher receives from the new holder; old_h receives nothing more
    // and is inert.
    w.in(new_h, req(P2P_CMD_SEND, "n"));
    w.in(other, req(P2P_CMD_SEND, "o"));
    w.in(old_h, req(P2P_CMD_HEARTBEAT));
    w.in(old_h, req(P2P_CMD_REGISTER, "dev"));
    w.expect(new_h, {rep(P2P_CMD_SEND, 1)});
    w.expect(other, {rep(P2P_CMD_SEND, 1)});
    w.expect(watcher, {v2_delivery("dev", "n")});
    w.expect_nothing(old_h);
    assert_true(new_h.device->holder == &new_h);

    // Ending the old session again (the server would reap it later) is
    // harmless: no second BYE, the id stays with the new holder.
    w.relay.end_session(old_h, CloseReason::peer_closed);
    w.expect_nothing(old_h);
    w.expect_nothing(watcher);
    assert_true(new_h.device->holder == &new_h);
    w.finish();
}

void test_takeover_v1_holder_gets_no_bye(void**) {
    World w;
    Session& old_h = w.v1();
    Session& new_h = w.v2();
    w.in(old_h, req(P2P_CMD_REGISTER, "dev"));
    w.in(new_h, req(P2P_CMD_REGISTER, "dev"));
    w.expect(old_h, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(new_h, {rep(P2P_CMD_REGISTER, 1)});
    w.expect_closes({{old_h.session_id, CloseReason::taken_over}});
    assert_true(old_h.ended);
    assert_int_equal(w.relay.device_count(), 1);
    w.finish();
}

// Registering a second id releases the first (offline), then the second
// comes online; re-registering the held id changes nothing.
void test_register_second_id(void**) {
    World w;
    Session& s = w.v1();
    Session& watch = w.v2();
    Session& watch1 = w.v1();
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "a"));
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "b"));
    w.expect(watch, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "a"), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOffline, "b")});
    w.in(s, req(P2P_CMD_REGISTER, "a"));
    w.in(watch1, req(P2P_CMD_SUBSCRIBE, "a"));
    w.expect(watch1, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.in(s, req(P2P_CMD_REGISTER, "a"));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_REGISTER, 1)});
    w.expect(watch, {presence(kOnline, "a")});

    size_t mark = w.host.log.size();
    w.in(s, req(P2P_CMD_REGISTER, "b"));
    std::string want = std::to_string(watch.session_id) + ":" + render(presence(kOffline, "a")) +
                       " | " + std::to_string(s.session_id) + ":" +
                       render(rep(P2P_CMD_REGISTER, 1)) + " | " +
                       std::to_string(watch.session_id) + ":" + render(presence(kOnline, "b"));
    assert_string_equal(w.since(mark).c_str(), want.c_str());
    w.expect(s, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(watch, {presence(kOffline, "a"), presence(kOnline, "b")});
    w.expect_nothing(watch1);  // v1: never PRESENCE

    w.in(s, req(P2P_CMD_CHECK_ALIVE, "a"));
    w.in(s, req(P2P_CMD_CHECK_ALIVE, "b"));
    w.expect(s, {rep(P2P_CMD_CHECK_ALIVE, 0), rep(P2P_CMD_CHECK_ALIVE, 1)});
    // A failed REGISTER (empty id) keeps "b".
    w.in(s, req(P2P_CMD_REGISTER));
    w.expect(s, {rep(P2P_CMD_REGISTER, 0)});
    w.expect_nothing(watch);
    assert_true(s.device != nullptr && s.device->key() == "b");
    w.finish();
}

// A connection is never told about its own id going on- or offline.
void test_presence_never_to_self(void**) {
    World w;
    Session& s = w.v2();
    Session& other = w.v2();
    w.in(s, req(P2P_CMD_SUBSCRIBE, "x"));  // offline: allowed in v2
    w.in(other, req(P2P_CMD_SUBSCRIBE, "x"));
    w.expect(s, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "x")});
    w.expect(other, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "x")});

    w.in(s, req(P2P_CMD_REGISTER, "x"));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(other, {presence(kOnline, "x")});
    // Its own SEND does not come back to it either.
    w.in(s, req(P2P_CMD_SEND, "m"));
    w.expect(s, {rep(P2P_CMD_SEND, 1)});
    w.expect(other, {v2_delivery("x", "m")});

    // Registering another id: x goes offline for the others only.
    w.in(s, req(P2P_CMD_REGISTER, "y"));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(other, {presence(kOffline, "x")});
    w.in(s, req(P2P_CMD_REGISTER, "x"));
    w.expect(s, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(other, {presence(kOnline, "x")});

    // The server ends it: BYE only, no PRESENCE about itself.
    w.relay.end_session(s, CloseReason::idle_timeout);
    w.expect(s, {bye(P2P_BYE_IDLE_TIMEOUT)});
    w.expect(other, {presence(kOffline, "x")});
    assert_int_equal(s.subscription_count, 0);
    w.finish();
}

// When the device table cannot grow (out of memory, injected by lowering
// RLIMIT_AS; skipped under ASan), REGISTER of a new id answers 81 07 and
// SUBSCRIBE to a new id 82 07 (00 in v1), nothing is half-created, and ids
// already in the table keep working. 3/4 of 2^16 slots are filled first, so
// the next new id must grow the table to 2^17 slots (2 MiB). The
// subscription table (keyed by session and device) is grown past that
// point beforehand, so that subscriptions to known ids need no memory.
void test_device_table_full(void**) {
    MEM_LIMIT_REQUIRED();
    RelayLimits limits;
    limits.max_subs = 100000;
    World w(limits);
    Session& filler = w.v2();
    w.host.refusing.insert(filler.session_id);  // its 2 x 49151 frames: dropped
    const size_t fill = 49151;
    for (size_t i = 0; i < fill; ++i) w.in(filler, req(P2P_CMD_SUBSCRIBE, "f" + std::to_string(i)));
    assert_int_equal(filler.subscription_count, fill);
    Session& extra = w.v2();
    w.host.refusing.insert(extra.session_id);
    for (size_t i = 0; i < 1000; ++i) w.in(extra, req(P2P_CMD_SUBSCRIBE, "f" + std::to_string(i)));
    Session& x = w.v2();
    Session& watch = w.v2();
    Session& v1 = w.v1();
    w.in(x, req(P2P_CMD_REGISTER, "old"));
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "old"));
    w.expect(x, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(watch, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "old")});
    assert_int_equal(w.relay.device_count(), 49152);  // 3/4 of 65536

    {
        MemLimit lim(1u << 20);
        assert_true(lim.ok());
        w.in(watch, req(P2P_CMD_SUBSCRIBE, "zzz"));
        w.in(v1, req(P2P_CMD_REGISTER, "new1"));
        // Ids already in the table need no growth.
        w.in(v1, req(P2P_CMD_SUBSCRIBE, "old"));
        w.in(x, req(P2P_CMD_REGISTER, "new"));
        w.in(watch, req(P2P_CMD_SUBSCRIBE, "f7"));
    }
    w.expect(v1, {rep(P2P_CMD_REGISTER, 0), rep(P2P_CMD_SUBSCRIBE, 1)});  // v1: 0
    assert_int_equal(w.relay.device_count(), 49152);
    assert_null(v1.device);
    // x: 81 07, and it keeps the id it had: the new id's entry is made
    // before the old id is released, so a failure changes nothing.
    assert_non_null(x.device);
    assert_true(x.device->key() == "old");
    w.expect(watch, {rep(P2P_CMD_SUBSCRIBE, 7), rep(P2P_CMD_SUBSCRIBE, 1),
                     presence(kOffline, "f7")});
    w.in(watch, req(P2P_CMD_CHECK_ALIVE, "old"));
    w.expect(watch, {rep(P2P_CMD_CHECK_ALIVE, 1)});
    w.expect(x, {rep(P2P_CMD_REGISTER, 7)});

    // With memory back, the table grows; "old" is released now.
    w.in(x, req(P2P_CMD_REGISTER, "new"));
    w.expect(x, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(watch, {presence(kOffline, "old")});
    assert_true(w.relay.device_count() >= 49153);
    w.finish();
}

}  // namespace

int main(void) {
    log_set_level(LogLevel::error);  // the relay's info lines are noise here
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v1_register_replies),
        cmocka_unit_test(test_takeover_v2_holder),
        cmocka_unit_test(test_takeover_v1_holder_gets_no_bye),
        cmocka_unit_test(test_register_second_id),
        cmocka_unit_test(test_presence_never_to_self),
        cmocka_unit_test(test_device_table_full),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
