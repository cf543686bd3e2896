// test_relay_cluster.cpp - unit tests of the relay's side of a cluster
// (src/server/relay_cluster.cpp and the hooks in relay.cpp), with a fake
// ClusterHooks that records what the relay tells it and says which ids
// other relays hold: what the relay publishes (claims, releases, SENDs,
// SEND_TOs, the first and last subscriber of an id, on every path that
// makes or drops a subscription), how it answers from the other relays'
// state (CHECK_ALIVE, SUBSCRIBE, SEND_TO's status, PRESENCE), and what it
// does with what comes from them (presence changes, takeovers of its own
// holders, data and SEND_TO for its sessions). The harness is
// relay_world.h.
#include <set>
#include <string>

#include "relay_world.h"

namespace {

using namespace relay_test;

class FakeCluster final : public ClusterHooks {
   public:
    std::set<std::string> elsewhere;  // ids other relays hold
    std::vector<std::string> calls;

    bool held_elsewhere(std::string_view id) const override {
        return elsewhere.count(std::string(id)) != 0;
    }
    uint64_t holder_relay(std::string_view id) const override { return held_elsewhere(id) ? 7 : 0; }
    void sent_direct(std::string_view target, const DirectHop&, const uint8_t* frame,
                     size_t len) override {
        calls.push_back("sent_direct >" + std::string(target) + " " +
                        std::to_string(len != 0 ? frame[0] : 0));
    }
    void claimed(std::string_view id, bool authenticated) override {
        elsewhere.erase(std::string(id));
        calls.push_back("claimed " + std::string(id) + (authenticated ? " auth" : ""));
    }
    void released(std::string_view id) override { calls.push_back("released " + std::string(id)); }
    void sent(std::string_view from, const uint8_t* data, size_t len) override {
        calls.push_back("sent " + std::string(from) + " " +
                        std::string(reinterpret_cast<const char*>(data), len));
    }
    void sent_to(std::string_view from, std::string_view target, const uint8_t* data,
                 size_t len) override {
        calls.push_back("sent_to " + std::string(from) + ">" + std::string(target) + " " +
                        std::string(reinterpret_cast<const char*>(data), len));
    }
    void first_follower(std::string_view id) override { calls.push_back("follow " + std::string(id)); }
    void last_follower_gone(std::string_view id) override {
        calls.push_back("unfollow " + std::string(id));
    }

    std::string take() {
        std::string out;
        for (const std::string& c : calls) out += (out.empty() ? "" : "; ") + c;
        calls.clear();
        return out;
    }
};

struct ClusterWorld : World {
    FakeCluster cluster;
    ClusterWorld() { relay.set_cluster(&cluster); }
    ~ClusterWorld() { relay.set_cluster(nullptr); }
    void expect_calls(const char* want, std::source_location at = std::source_location::current()) {
        std::string got = cluster.take();
        _assert_string_equal(got.c_str(), want, at.file_name(), static_cast<int>(at.line()));
    }
};

void test_claims_and_releases_are_told(void**) {
    ClusterWorld w;
    Session& a = w.v1();
    Session& b = w.v2();
    w.in(a, req(P2P_CMD_REGISTER, "dev"));
    w.in(a, req(P2P_CMD_REGISTER, "dev"));  // already ours: nothing new
    w.in(a, req(P2P_CMD_REGISTER, "other"));
    w.in(a, req(P2P_CMD_UNREGISTER));
    w.expect(a, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_REGISTER, 1),
                 rep(P2P_CMD_UNREGISTER, 1)});
    w.expect_calls("claimed dev; released dev; claimed other; released other");
    // A local takeover is a new claim; the old holder's end is not a release.
    w.in(a, req(P2P_CMD_REGISTER, "dev"));
    w.in(b, req(P2P_CMD_REGISTER, "dev"));
    w.expect(a, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(b, {rep(P2P_CMD_REGISTER, 1)});
    w.expect_calls("claimed dev; claimed dev");
    w.relay.end_session(b, CloseReason::peer_closed);
    w.expect_calls("released dev");
    w.finish();
}

void test_answers_from_other_relays(void**) {
    ClusterWorld w;
    w.cluster.elsewhere.insert("far");
    Session& v1 = w.v1();
    Session& v2 = w.v2();
    w.in(v1, req(P2P_CMD_CHECK_ALIVE, "far"));
    w.in(v1, req(P2P_CMD_CHECK_ALIVE, "none"));
    w.in(v1, req(P2P_CMD_SUBSCRIBE, "far"));   // v1 needs it online: it is, elsewhere
    w.in(v1, req(P2P_CMD_SUBSCRIBE, "none"));
    w.in(v2, req(P2P_CMD_SUBSCRIBE, "far"));
    w.in(v2, req(P2P_CMD_SUBSCRIBE, "none"));
    w.expect(v1, {rep(P2P_CMD_CHECK_ALIVE, 1), rep(P2P_CMD_CHECK_ALIVE, 0),
                  rep(P2P_CMD_SUBSCRIBE, 1), rep(P2P_CMD_SUBSCRIBE, 0)});
    w.expect(v2, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "far"), rep(P2P_CMD_SUBSCRIBE, 1),
                  presence(kOffline, "none")});
    // The first subscriber of each id starts the interest, once.
    w.expect_calls("follow far; follow none");
    // SEND_TO: elsewhere is sent there and answered 1; nowhere is 3.
    w.in(v2, req(P2P_CMD_REGISTER, "me"));
    w.in(v2, send_to("far", "hi"));
    w.in(v2, send_to("none", "hi"));
    w.expect(v2, {rep(P2P_CMD_REGISTER, 1), rep(P2P_CMD_SEND_TO, 1), rep(P2P_CMD_SEND_TO, 3)});
    w.expect_calls("claimed me; sent_to me>far hi");
    // SEND goes to the local subscribers and to the cluster.
    Session& fan = w.v1();
    w.in(fan, req(P2P_CMD_SUBSCRIBE, "me"));
    w.in(v2, req(P2P_CMD_SEND, "data"));
    w.expect(fan, {rep(P2P_CMD_SUBSCRIBE, 1), v1_delivery("data")});
    w.expect(v2, {rep(P2P_CMD_SEND, 1)});
    w.expect_calls("follow me; sent me data");
    w.relay.end_session(fan, CloseReason::peer_closed);
    w.relay.end_session(v1, CloseReason::peer_closed);
    w.expect_calls("unfollow me");
    // v2 still follows both; its end drops them (and releases its id).
    w.relay.end_session(v2, CloseReason::peer_closed);
    std::string calls = w.cluster.take();
    assert_true(calls.find("released me") != std::string::npos);
    assert_true(calls.find("unfollow far") != std::string::npos);
    assert_true(calls.find("unfollow none") != std::string::npos);
    w.finish();
}

void test_remote_presence_and_takeovers(void**) {
    ClusterWorld w;
    Session& sub = w.v2();
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "x"));
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "x")});
    w.cluster.elsewhere.insert("x");
    w.relay.remote_holder_changed("x", RemoteChange::came);
    w.expect(sub, {presence(kOnline, "x")});
    w.relay.remote_holder_changed("x", RemoteChange::moved);
    w.expect(sub, {presence(kOffline, "x"), presence(kOnline, "x")});
    w.cluster.elsewhere.erase("x");
    w.relay.remote_holder_changed("x", RemoteChange::went);
    w.expect(sub, {presence(kOffline, "x")});
    w.relay.remote_holder_changed("nobody-follows", RemoteChange::came);  // no entry: nothing

    // A REGISTER here of an id held elsewhere is a takeover: visible. (A
    // new presence window first: four changes were announced in this one.)
    w.advance(kPresenceWindowMs);
    w.cluster.elsewhere.insert("x");
    w.relay.remote_holder_changed("x", RemoteChange::came);
    w.expect(sub, {presence(kOnline, "x")});
    Session& holder = w.v2();
    w.in(holder, req(P2P_CMD_REGISTER, "x"));
    w.expect(holder, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(sub, {presence(kOffline, "x"), presence(kOnline, "x")});
    // Another relay's claim beats ours: BYE 1, the takeover shown, and no
    // release told (the id moved, it did not go).
    w.cluster.take();
    w.cluster.elsewhere.insert("x");
    w.relay.lost_to_remote("x");
    w.expect(holder, {bye(P2P_BYE_TAKEN_OVER)});
    w.expect(sub, {presence(kOffline, "x"), presence(kOnline, "x")});
    w.expect_closes({{holder.session_id, CloseReason::taken_over}});
    w.expect_calls("");
    w.relay.lost_to_remote("x");  // not held here any more: nothing
    w.finish();
}

void test_remote_presence_is_damped(void**) {
    ClusterWorld w;
    Session& sub = w.v2();
    w.in(sub, req(P2P_CMD_SUBSCRIBE, "flap"));
    w.expect(sub, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOffline, "flap")});
    for (int i = 0; i < 10; ++i) {
        if (i % 2 == 0) w.cluster.elsewhere.insert("flap");
        else w.cluster.elsewhere.erase("flap");
        w.relay.remote_holder_changed("flap", i % 2 == 0 ? RemoteChange::came : RemoteChange::went);
    }
    // kPresenceChanges announced, the rest held back; it ends offline.
    w.expect(sub, {presence(kOnline, "flap"), presence(kOffline, "flap"), presence(kOnline, "flap"),
                   presence(kOffline, "flap")});
    w.cluster.elsewhere.insert("flap");
    w.relay.remote_holder_changed("flap", RemoteChange::came);
    w.expect_nothing(sub);
    // Its data arrives: the held-back PRESENCE online goes first.
    assert_true(w.relay.deliver_remote("flap", reinterpret_cast<const uint8_t*>("d"), 1));
    w.expect(sub, {presence(kOnline, "flap"), v2_delivery("flap", "d")});
    w.finish();
}

void test_data_and_send_to_from_other_relays(void**) {
    ClusterWorld w;
    Session& v1 = w.v1();
    Session& v2 = w.v2();
    w.cluster.elsewhere.insert("pub");
    w.in(v1, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.in(v2, req(P2P_CMD_SUBSCRIBE, "pub"));
    w.expect(v1, {rep(P2P_CMD_SUBSCRIBE, 1)});
    w.expect(v2, {rep(P2P_CMD_SUBSCRIBE, 1), presence(kOnline, "pub")});
    const uint8_t* d = reinterpret_cast<const uint8_t*>("abc");
    assert_true(w.relay.deliver_remote("pub", d, 3));
    w.expect(v1, {v1_delivery("abc")});
    w.expect(v2, {v2_delivery("pub", "abc")});
    assert_false(w.relay.deliver_remote("unfollowed", d, 3));

    // SEND_TO from "pub" on another relay to the holders here.
    w.in(v1, req(P2P_CMD_REGISTER, "t1"));
    w.in(v2, req(P2P_CMD_REGISTER, "t2"));
    w.expect(v1, {rep(P2P_CMD_REGISTER, 1)});
    w.expect(v2, {rep(P2P_CMD_REGISTER, 1)});
    assert_true(w.relay.deliver_remote_to("t2", "pub", d, 3) == RemoteDelivery::delivered);
    w.expect(v2, {v2_delivery("pub", "abc")});
    // v1 t1 subscribes to pub: allowed; from a stranger: refused.
    assert_true(w.relay.deliver_remote_to("t1", "pub", d, 3) == RemoteDelivery::delivered);
    w.expect(v1, {v1_delivery("abc")});
    assert_true(w.relay.deliver_remote_to("t1", "stranger", d, 3) == RemoteDelivery::refused_v1);
    w.expect_nothing(v1);
    assert_true(w.relay.deliver_remote_to("nobody", "pub", d, 3) == RemoteDelivery::not_here);
    w.cluster.take();
    w.finish();
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims_and_releases_are_told),
        cmocka_unit_test(test_answers_from_other_relays),
        cmocka_unit_test(test_remote_presence_and_takeovers),
        cmocka_unit_test(test_remote_presence_is_damped),
        cmocka_unit_test(test_data_and_send_to_from_other_relays),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
