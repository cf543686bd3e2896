// test_relay_floods.cpp - unit tests of the relay (src/server/relay.cpp):
// the bounds on what one client can make the relay produce or hold (issue
// 10): presence flapping is damped without losing the final state,
// takeover fights are refused after kTakeovers takeovers in a window, and
// the device table is capped by --max-devices and by the memory budget.
// Time is the World's FakeClock, moved by hand: nothing here waits.
#include "relay_world.h"

namespace {

using namespace relay_test;

// The PRESENCE frames among frames, in order, as their state bytes.
std::string presence_states(const std::vector<Bytes>& frames) {
    std::string out;
    for (const Bytes& f : frames)
        if (!f.empty() && f[0] == P2P_EVT_PRESENCE) out += f[1] == kOnline ? '1' : '0';
    return out;
}

// f sends n times REGISTER "flap" then UNREGISTER (or the other way round
// when offline_first); its replies are taken.
void toggle(World& w, Session& f, int n, bool offline_first = false) {
    for (int i = 0; i < n; ++i) {
        if (offline_first) w.in(f, req(P2P_CMD_UNREGISTER));
        w.in(f, req(P2P_CMD_REGISTER, "flap"));
        if (!offline_first) w.in(f, req(P2P_CMD_UNREGISTER));
    }
    w.take(f);
}

// A connection toggling its id holds back all but the first kPresenceChanges
// changes of a window; when the window ends its subscribers get the final
// state. A REGISTER/UNREGISTER flood of 1,000 toggles costs each subscriber
// a handful of frames, not 2,000.
void test_flapping_is_damped(void**) {
    World w;
    Session& watch = w.v2();
    Session& other = w.v2();
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "flap"));
    w.in(other, req(P2P_CMD_SUBSCRIBE, "flap"));
    w.expect(watch, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "flap")});
    w.expect(other, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "flap")});
    Session& f = w.v1();
    toggle(w, f, 1000);
    w.in(f, req(P2P_CMD_REGISTER, "flap"));  // ends online
    w.take(f);
    std::string seen = presence_states(w.take(watch));
    assert_string_equal(seen.c_str(), "1010");  // kPresenceChanges, then held back
    assert_string_equal(presence_states(w.take(other)).c_str(), "1010");
    w.check();

    // Half a window later nothing has changed; at its end, the final state.
    w.advance(kPresenceWindowMs / 2);
    w.expect_nothing(watch);
    w.advance(kPresenceWindowMs / 2);
    w.expect(watch, {presence(kOnline, "flap")});
    w.expect(other, {presence(kOnline, "flap")});
    w.advance(kPresenceWindowMs);
    w.expect_nothing(watch);

    // The flood again, ending offline: the final state is offline.
    toggle(w, f, 1000, true);
    w.in(f, req(P2P_CMD_UNREGISTER));
    w.take(f);
    assert_string_equal(presence_states(w.take(watch)).c_str(), "0101");
    w.take(other);
    w.advance(kPresenceWindowMs);
    w.expect(watch, {presence(kOffline, "flap")});
    w.expect(other, {presence(kOffline, "flap")});
    w.finish();
}

// A flood that ends in the state subscribers were last told sends nothing
// more when the window ends: the changes cancel out.
void test_flapping_back_to_the_told_state(void**) {
    World w;
    Session& watch = w.v2();
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "flap"));
    w.take(watch);
    Session& f = w.v1();
    toggle(w, f, 10);
    w.take(f);
    assert_string_equal(presence_states(w.take(watch)).c_str(), "1010");
    w.advance(kPresenceWindowMs);
    w.expect_nothing(watch);
    w.finish();
}

// While changes are held back, SUBSCRIBE answers what the other subscribers
// were last told, so that when the window ends everyone holds the final
// state; a SEND from the id announces it online first, so PRESENCE online
// still precedes its deliveries.
void test_damped_subscribe_and_send(void**) {
    World w;
    Session& watch = w.v2();
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "flap"));
    w.take(watch);
    Session& f = w.v1();
    toggle(w, f, 2);
    w.in(f, req(P2P_CMD_REGISTER, "flap"));  // online, held back
    w.take(f);
    assert_string_equal(presence_states(w.take(watch)).c_str(), "1010");

    Session& late = w.v2();
    w.in(late, req(P2P_CMD_SUBSCRIBE, "flap"));
    w.expect(late, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "flap")});
    w.in(late, req(P2P_CMD_CHECK_ALIVE, "flap"));  // a question gets the truth
    w.expect(late, {rep(P2P_CMD_CHECK_ALIVE, 1)});

    w.in(f, req(P2P_CMD_SEND, "hi"));
    w.expect(f, {rep(P2P_CMD_SEND, 1)});
    w.expect(watch, {presence(kOnline, "flap"), v2_delivery("flap", "hi")});
    w.expect(late, {presence(kOnline, "flap"), v2_delivery("flap", "hi")});
    w.advance(kPresenceWindowMs);  // nothing left to tell
    w.expect_nothing(watch);
    w.expect_nothing(late);

    // SEND_TO likewise: offline, a new window, then four changes told and
    // the fifth (online) held back.
    Session& target = w.v2();
    w.in(target, req(P2P_CMD_REGISTER, "target"));
    w.take(target);
    w.in(f, req(P2P_CMD_UNREGISTER));
    w.advance(kPresenceWindowMs);
    toggle(w, f, 2);
    w.in(f, req(P2P_CMD_REGISTER, "flap"));
    w.take(f);
    assert_string_equal(presence_states(w.take(watch)).c_str(), "01010");
    assert_string_equal(presence_states(w.take(late)).c_str(), "01010");
    w.in(f, send_to("target", "direct"));
    w.expect(f, {rep(P2P_CMD_SEND_TO, 1)});
    w.expect(watch, {presence(kOnline, "flap")});
    w.expect(late, {presence(kOnline, "flap")});
    w.expect(target, {v2_delivery("flap", "direct")});
    w.finish();
}

// Damping is per id: another id's changes are announced at once.
void test_damping_is_per_id(void**) {
    World w;
    Session& watch = w.v2();
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "flap"));
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "calm"));
    w.take(watch);
    Session& f = w.v1();
    toggle(w, f, 5);
    w.take(f);
    w.take(watch);
    Session& c = w.v1();
    w.in(c, req(P2P_CMD_REGISTER, "calm"));
    w.expect(c, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(watch, {presence(kOnline, "calm")});
    w.finish();
}

// A damped id whose subscribers all leave, and which goes offline, is
// collected with its pending change: nothing dangles on the damped list.
void test_damped_device_collected(void**) {
    World w;
    Session& watch = w.v2();
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "flap"));
    w.take(watch);
    Session& f = w.v1();
    toggle(w, f, 3);
    w.in(f, req(P2P_CMD_REGISTER, "flap"));
    w.take(f);
    w.take(watch);
    w.in(watch, req(P2P_CMD_UNSUBSCRIBE, "flap"));
    w.in(f, req(P2P_CMD_UNREGISTER));
    w.take(f);
    w.expect(watch, {rep(P2P_CMD_UNSUBSCRIBE, 1)});
    w.check();
    assert_int_equal(w.relay.device_count(), 0);
    w.advance(kPresenceWindowMs);
    w.expect_nothing(watch);
    w.finish();
}

// Takeover fights: kTakeovers takeovers of one id in a window are allowed;
// the next is refused (81 07 in v2, 81 00 in v1) and the holder keeps the
// id, until the window ends.
void test_takeover_fight_refused(void**) {
    World w;
    Session& watch = w.v2();
    w.in(watch, req(P2P_CMD_SUBSCRIBE, "x"));
    w.take(watch);
    Session* holder = &w.v2();
    w.in(*holder, req(P2P_CMD_REGISTER, "x"));
    w.expect(*holder, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(watch, {presence(kOnline, "x")});
    for (int i = 0; i < kTakeovers; ++i) {
        Session& next = (i % 2) ? w.v1() : w.v2();
        w.in(next, req(P2P_CMD_REGISTER, "x"));
        w.expect(next, {rep(P2P_CMD_REGISTER, 1)});
        w.take(*holder);  // its BYE 1 (v2)
        assert_null(holder->device);
        // Every takeover is told, never held back by damping.
        w.expect(watch, {presence(kOffline, "x"), presence(kOnline, "x")});
        holder = &next;
    }
    Session& v2 = w.v2();
    w.in(v2, req(P2P_CMD_REGISTER, "mine"));
    w.in(v2, req(P2P_CMD_REGISTER, "x"));
    w.expect(v2, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_REGISTER, 7)});
    assert_true(v2.device != nullptr && v2.device->key() == "mine");  // kept its id
    Session& v1 = w.v1();
    w.in(v1, req(P2P_CMD_REGISTER, "x"));
    w.expect(v1, {rep(P2P_CMD_REGISTER, 0)});
    assert_true(holder->device != nullptr && holder->device->key() == "x");
    assert_false(holder->ended);
    w.expect_nothing(*holder);
    w.expect_nothing(watch);  // refused takeovers change nothing

    // Almost a window later: still refused. Then allowed again.
    w.advance(kTakeoverWindowMs - 1);
    w.in(v1, req(P2P_CMD_REGISTER, "x"));
    w.expect(v1, {rep(P2P_CMD_REGISTER, 0)});
    w.advance(1);
    w.in(v1, req(P2P_CMD_REGISTER, "x"));
    w.expect(v1, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(watch, {presence(kOffline, "x"), presence(kOnline, "x")});
    w.take(*holder);
    assert_true(holder->ended);
    w.finish();
}

// --max-devices: entries for held ids and for ids only subscribed to count
// alike; beyond, REGISTER and SUBSCRIBE of a new id get status 7 (0 in v1).
// Freed entries make room again.
void test_max_devices(void**) {
    RelayLimits limits;
    limits.max_devices = 3;
    World w(limits);
    Session& a = w.v2();
    Session& b = w.v2();
    Session& c = w.v1();
    w.in(a, req(P2P_CMD_REGISTER, "a"));
    w.in(a, req(P2P_CMD_SUBSCRIBE, "offline1"));
    w.in(b, req(P2P_CMD_SUBSCRIBE, "offline2"));
    w.expect(a, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SUBSCRIBE, 1),
                 presence(kOffline, "offline1")});
    w.expect(b, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "offline2")});
    assert_int_equal(w.relay.device_count(), 3);
    w.in(b, req(P2P_CMD_REGISTER, "b"));
    w.in(b, req(P2P_CMD_SUBSCRIBE, "offline3"));
    w.in(c, req(P2P_CMD_REGISTER, "c"));
    w.expect(b, {rep(P2P_CMD_REGISTER, 7), rep(P2P_CMD_SUBSCRIBE, 7)});
    w.expect(c, {rep(P2P_CMD_REGISTER, 0)});
    // Known ids still work.
    w.in(b, req(P2P_CMD_SUBSCRIBE, "offline1"));
    w.expect(b, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "offline1")});
    assert_int_equal(w.relay.device_count(), 3);
    w.in(b, req(P2P_CMD_UNSUBSCRIBE, "offline2"));
    w.in(b, req(P2P_CMD_REGISTER, "b"));
    w.expect(b, {rep(P2P_CMD_UNSUBSCRIBE, 1), rep(P2P_CMD_REGISTER, 1)});
    w.finish();
}

// The memory budget: device entries and subscriptions are charged to it;
// what it cannot take is refused with status 7, and everything is given
// back when the sessions end.
void test_memory_budget(void**) {
    MemoryBudget budget(4096);
    {
        World w(RelayLimits{}, &budget);
        Session& s = w.v2();
        int granted = 0, refused = 0;
        for (int i = 0; i < 200; ++i) {
            w.in(s, req(P2P_CMD_SUBSCRIBE, "id" + std::to_string(i)));
            std::vector<Bytes> got = w.take(s);
            if (got[0] == rep(P2P_CMD_SUBSCRIBE, 1))
                ++granted;
            else if (got[0] == rep(P2P_CMD_SUBSCRIBE, 7))
                ++refused;
        }
        assert_true(granted > 0);
        assert_true(refused > 0);
        assert_int_equal(granted + refused, 200);
        assert_int_equal(s.subscription_count, granted);
        assert_true(budget.used() <= budget.limit());
        assert_int_equal(budget.used(), w.relay.devices().memory());
        w.check();
        w.finish();
    }
    assert_int_equal(budget.used(), 0);
}

}  // namespace

int main(void) {
    log_set_level(LogLevel::error);  // the relay's info lines are noise here
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_flapping_is_damped),
        cmocka_unit_test(test_flapping_back_to_the_told_state),
        cmocka_unit_test(test_damped_subscribe_and_send),
        cmocka_unit_test(test_damping_is_per_id),
        cmocka_unit_test(test_damped_device_collected),
        cmocka_unit_test(test_takeover_fight_refused),
        cmocka_unit_test(test_max_devices),
        cmocka_unit_test(test_memory_budget),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
