// test_cluster_view.cpp - unit tests for src/server/cluster_view.{h,cpp},
// the replicated view of who holds which id across relays, without a
// network: claims and releases in every order, the tie-break (later
// timestamp, then greater node name) converging in every view whatever
// the arrival order, takeovers of and by this relay, protected ids,
// restarts and dead nodes, heartbeat digests asking for snapshots,
// snapshots in batches (the sweep, a missing batch), data taken only from
// the known holder in order, cursors over this relay's holdings, and the
// bounds. Every step ends with the view's invariants checked.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <algorithm>
#include <set>
#include <string>
#include <string_view>
#include <vector>

#include "cluster_view.h"
#include "cluster_wire.h"

extern "C" {
#include <cmocka.h>
}

namespace {

const HashKey kKey{1, 2};

struct Recorder final : ClusterViewListener {
    std::vector<std::string> events;
    std::set<std::string> protected_ids;
    void holder_changed(std::string_view id, HolderChange change) override {
        static const char* const names[] = {"came", "went", "moved", "lost"};
        events.push_back(std::string(names[static_cast<int>(change)]) + ":" + std::string(id));
    }
    void reassert(const ViewEntry& e) override {
        events.push_back("reassert:" + std::string(e.key()) + "@" + std::to_string(e.timestamp()));
    }
    bool claim_allowed(std::string_view id, bool authenticated) override {
        return authenticated || protected_ids.count(std::string(id)) == 0;
    }
    std::string take() {
        std::string out;
        for (const std::string& e : events) out += (out.empty() ? "" : " ") + e;
        events.clear();
        return out;
    }
};

struct Fixture {
    Recorder rec;
    ClusterView view;
    explicit Fixture(const char* self = "me", size_t max_entries = 1000, MemoryBudget* budget = nullptr)
        : view(rec, kKey, self, 100, max_entries, budget) {}
    ClusterNode& node(const char* name, uint64_t incarnation = 1, uint64_t now = 0) {
        NodeHeard heard;
        ClusterNode* n = view.node_heard(name, incarnation, now, &heard);
        assert_non_null(n);
        return *n;
    }
    void check() {
        char why[256] = "";
        if (!view.check_invariants(why, sizeof why)) fail_msg("invariant: %s", why);
    }
    std::string holder(std::string_view id) {
        const ViewEntry* e = view.find(id);
        return e == nullptr ? "-" : std::string(e->node().name()) + "@" + std::to_string(e->timestamp());
    }
};

void expect_events(Fixture& f, const char* want) {
    std::string got = f.rec.take();
    assert_string_equal(got.c_str(), want);
    f.check();
}

void test_claims_and_releases(void**) {
    Fixture f;
    ClusterNode& a = f.node("a");
    assert_true(f.view.apply_claim(a, "x", 10, false) == ClaimResult::applied);
    expect_events(f, "came:x");
    assert_true(f.view.held_elsewhere("x"));
    assert_int_equal(f.view.remote_entries(), 1);
    // The same claim again changes nothing; an older one is stale.
    assert_true(f.view.apply_claim(a, "x", 10, false) == ClaimResult::unchanged);
    assert_true(f.view.apply_claim(a, "x", 9, false) == ClaimResult::stale);
    expect_events(f, "");
    // A release of an older claim is ignored when a newer one is known
    // (a re-registration on that relay overtook it)...
    assert_true(f.view.apply_claim(a, "x", 12, false) == ClaimResult::applied);
    expect_events(f, "moved:x");
    assert_false(f.view.apply_release(a, "x", 10));
    // ... and one from another relay, or of an id nobody holds, too.
    ClusterNode& b = f.node("b");
    assert_false(f.view.apply_release(b, "x", 12));
    assert_false(f.view.apply_release(a, "y", 12));
    expect_events(f, "");
    // The release of the claim we know, or a later one, drops it.
    assert_true(f.view.apply_release(a, "x", 13));
    expect_events(f, "went:x");
    assert_false(f.view.held_elsewhere("x"));
    assert_int_equal(a.holdings(), 0);
}

void test_takeovers_of_and_by_this_relay(void**) {
    Fixture f("me");
    ClusterNode& a = f.node("a");
    f.view.apply_claim(a, "x", 1000, false);
    expect_events(f, "came:x");
    // We take it over: our claim is later than theirs whatever our clock
    // says (here it is behind by 500 ms).
    uint64_t ts = f.view.claim_here("x", false, 500);
    assert_int_equal(ts, 1001);
    assert_false(f.view.held_elsewhere("x"));
    expect_events(f, "");  // the relay announces its own takeover
    // Their older claim arrives late: refuted, ours published again.
    assert_true(f.view.apply_claim(a, "x", 1000, false) == ClaimResult::refuted_here);
    expect_events(f, "reassert:x@1001");
    // Their newer claim takes it from us.
    assert_true(f.view.apply_claim(a, "x", 2000, false) == ClaimResult::applied);
    expect_events(f, "lost:x");
    assert_true(f.view.held_elsewhere("x"));
    assert_int_equal(f.view.release_here("x"), 0);  // not ours any more
    // Our own claims and releases.
    assert_int_equal(f.view.claim_here("y", true, 3000), 3000);
    assert_int_equal(f.view.claim_here("y", true, 3000), 3001);  // a local takeover: later still
    assert_int_equal(f.view.self().holdings(), 1);
    assert_int_equal(f.view.release_here("y"), 3001);
    assert_int_equal(f.view.release_here("y"), 0);
    expect_events(f, "");
}

// Claims of one id from several relays, applied in every order to the
// views of relays that did not claim it and of those that did (their own
// claims made first, before they heard of the others): every view ends
// with the same holder, the later timestamp and then the greater name.
void test_tie_break_converges(void**) {
    struct Claim {
        const char* node;
        uint64_t ts;
    };
    const std::vector<Claim> claims = {{"b", 50}, {"c", 50}, {"a", 49}, {"a", 50}};
    std::vector<int> order = {0, 1, 2, 3};
    int permutations = 0;
    do {
        for (const char* self : {"x", "a", "b", "c"}) {
            Fixture f(self);
            for (const Claim& c : claims)
                if (std::string(c.node) == self) assert_int_equal(f.view.claim_here("id", false, c.ts), c.ts);
            for (int i : order) {
                const Claim& c = claims[static_cast<size_t>(i)];
                if (std::string(c.node) != self) f.view.apply_claim(f.node(c.node), "id", c.ts, false);
                f.check();
            }
            if (f.holder("id") != "c@50")
                fail_msg("view of %s ended with %s, not c@50", self, f.holder("id").c_str());
            f.rec.take();
        }
        ++permutations;
    } while (std::next_permutation(order.begin(), order.end()));
    assert_int_equal(permutations, 24);
}

void test_protected_ids(void**) {
    Fixture f;
    f.rec.protected_ids.insert("cam");
    ClusterNode& a = f.node("a");
    ClusterNode& b = f.node("b");
    assert_true(f.view.apply_claim(a, "cam", 10, true) == ClaimResult::applied);
    expect_events(f, "came:cam");
    // Later, but without AUTH: refused.
    assert_true(f.view.apply_claim(b, "cam", 20, false) == ClaimResult::refused);
    expect_events(f, "");
    assert_string_equal(f.holder("cam").c_str(), "a@10");
    assert_true(f.view.apply_claim(b, "cam", 20, true) == ClaimResult::applied);
    expect_events(f, "moved:cam");
    // Unprotected ids need nothing.
    assert_true(f.view.apply_claim(b, "open", 1, false) == ClaimResult::applied);
    assert_int_equal(f.view.stats().claims_refused, 1);
    f.rec.take();
}

void test_nodes(void**) {
    Fixture f("me");
    NodeHeard heard;
    ClusterNode* a = f.view.node_heard("a", 5, 1000, &heard);
    assert_true(heard == NodeHeard::joined);
    f.view.apply_claim(*a, "x", 1, false);
    f.view.apply_claim(*a, "y", 1, false);
    f.rec.take();
    assert_true(f.view.node_heard("a", 5, 1100, &heard) == a && heard == NodeHeard::known);
    assert_null(f.view.node_heard("a", 4, 1100, &heard));  // an older process
    assert_true(heard == NodeHeard::stale);
    assert_null(f.view.node_heard("me", 1, 1100, &heard));  // our own name
    assert_true(heard == NodeHeard::self_name);
    assert_int_equal(f.view.alive_nodes(), 2);
    // A restart under the name: what the old process held is gone.
    assert_true(f.view.node_heard("a", 6, 1200, &heard) == a && heard == NodeHeard::restarted);
    std::string ev = f.rec.take();
    assert_true(ev == "went:x went:y" || ev == "went:y went:x");
    assert_int_equal(a->holdings(), 0);
    f.view.apply_claim(*a, "z", 2, false);
    f.rec.take();
    // Silent: dead, its holdings go; heard again: revived.
    assert_null(f.view.silent_node(1200 + 2000, 2000));
    const ClusterNode* silent = f.view.silent_node(1200 + 2001, 2000);
    assert_true(silent == a);
    f.view.node_gone(*silent, false);
    expect_events(f, "went:z");
    assert_int_equal(f.view.alive_nodes(), 1);
    assert_int_equal(f.view.stats().nodes_dead, 1);
    assert_true(f.view.node_heard("a", 6, 5000, &heard) == a && heard == NodeHeard::revived);
    // Gone for good (it said it left): the same process is not revived.
    f.view.node_gone(*a, true);
    assert_null(f.view.node_heard("a", 6, 5100, &heard));
    assert_true(heard == NodeHeard::stale);
    assert_true(f.view.node_heard("a", 7, 5200, &heard) == a && heard == NodeHeard::restarted);
        // drop_remote: every other relay at once.
    ClusterNode& b = f.node("b");
    f.view.apply_claim(b, "w", 1, false);
    f.view.claim_here("mine", false, 1);
    f.rec.take();
    f.view.drop_remote();
    expect_events(f, "went:w");
    assert_int_equal(f.view.alive_nodes(), 1);
    assert_int_equal(f.view.entries(), 1);  // ours stay
    // heard_all: after a gap of ours, the alive count as heard now.
    ClusterNode& quiet = f.node("quiet", 1, 6000);
    assert_true(f.view.silent_node(8001, 2000) == &quiet);
    f.view.heard_all(8000);
    assert_null(f.view.silent_node(8001, 2000));
    // At most kMaxNodes.
    for (size_t i = f.view.alive_nodes(); i < ClusterView::kMaxNodes + 5; ++i) {
        std::string name = "n" + std::to_string(i);
        f.view.node_heard(name, 1, 6000, &heard);
    }
    assert_true(heard == NodeHeard::full);
    f.check();
}

void test_heartbeat_digest(void**) {
    Fixture f;
    ClusterNode& a = f.node("a");
    f.view.apply_claim(a, "x", 7, false);
    f.rec.take();
    // What a's own view of its holdings would be: the same claims.
    Fixture mirror("a");
    mirror.view.claim_here("x", false, 7);
    uint32_t holdings = mirror.view.self().holdings();
    uint64_t digest = mirror.view.self().digest();
    assert_false(f.view.heartbeat(a, holdings, digest, 0));
    // a also holds y, which we missed: no request until it has disagreed
    // for kMismatchMs.
    mirror.view.claim_here("y", false, 8);
    holdings = mirror.view.self().holdings();
    digest = mirror.view.self().digest();
    assert_false(f.view.heartbeat(a, holdings, digest, 100));
    assert_false(f.view.heartbeat(a, holdings, digest, 100 + ClusterView::kMismatchMs - 1));
    assert_true(f.view.heartbeat(a, holdings, digest, 100 + ClusterView::kMismatchMs));
    f.view.sync_asked(a, 1100);
    // Asked: not again before kSyncIntervalMs, even if it still differs.
    assert_false(f.view.heartbeat(a, holdings, digest, 1200));
    assert_false(f.view.heartbeat(a, holdings, digest, 1100 + ClusterView::kSyncIntervalMs - 1));
    assert_true(f.view.heartbeat(a, holdings, digest, 1100 + ClusterView::kSyncIntervalMs + 200));
    // Agreement clears it; the timestamp counts in the digest.
    f.view.apply_claim(a, "y", 8, false);
    assert_false(f.view.heartbeat(a, holdings, digest, 9000));
    Fixture other("a");
    other.view.claim_here("x", false, 7);
    other.view.claim_here("y", false, 9);
    assert_true(other.view.self().digest() != digest);
    f.rec.take();
}

// A snapshot batch of a's holdings.
std::vector<uint8_t> entries(std::initializer_list<std::pair<const char*, uint64_t>> list) {
    std::vector<uint8_t> out;
    for (const auto& e : list) {
        uint8_t buf[kClusterSnapshotEntryMax];
        size_t n = cluster_encode_entry(buf, sizeof buf, e.first, e.second, 0);
        out.insert(out.end(), buf, buf + n);
    }
    return out;
}

void test_snapshots(void**) {
    Fixture f;
    ClusterNode& a = f.node("a");
    ClusterNode& b = f.node("b");
    f.view.apply_claim(a, "gone", 1, false);   // a let it go; we missed the release
    f.view.apply_claim(a, "kept", 2, false);
    f.view.apply_claim(b, "b-owned", 3, false);
    f.rec.take();
    auto b1 = entries({{"kept", 2}, {"new1", 4}});
    auto b2 = entries({{"new2", 5}});
    assert_true(f.view.snapshot_batch(a, 77, 0, kClusterFirstBatch, b1.data(), b1.size()));
    expect_events(f, "came:new1");
    // A claim of a's while the snapshot comes: it survives the sweep.
    f.view.apply_claim(a, "during", 6, false);
    expect_events(f, "came:during");
    assert_true(f.view.snapshot_batch(a, 77, 1, kClusterLastBatch, b2.data(), b2.size()));
    expect_events(f, "came:new2 went:gone");
    assert_int_equal(a.holdings(), 4);
    assert_string_equal(f.holder("b-owned").c_str(), "b@3");
    assert_int_equal(f.view.stats().snapshots_complete, 1);

    // A batch missing: abandoned, nothing swept.
    auto c1 = entries({{"kept", 2}});
    assert_true(f.view.snapshot_batch(a, 78, 0, kClusterFirstBatch, c1.data(), c1.size()));
    assert_false(f.view.snapshot_batch(a, 78, 2, kClusterLastBatch, c1.data(), c1.size()));
    assert_int_equal(a.holdings(), 4);
    // A batch of another snapshot, or with no first batch: abandoned too.
    assert_false(f.view.snapshot_batch(a, 79, 1, kClusterLastBatch, c1.data(), c1.size()));
    // Malformed entries end it.
    std::vector<uint8_t> bad = {0, 0, 0, 0, 0, 0, 0, 1, 0};
    assert_false(f.view.snapshot_batch(a, 80, 0, kClusterFirstBatch | kClusterLastBatch,
                                       bad.data(), bad.size()));
    assert_int_equal(a.holdings(), 4);
    expect_events(f, "");
    // An entry that lost to a newer claim elsewhere does not come back.
    f.view.apply_claim(b, "kept", 9, false);
    expect_events(f, "moved:kept");
    auto d = entries({{"kept", 2}, {"new1", 4}, {"new2", 5}, {"during", 6}});
    assert_true(f.view.snapshot_batch(a, 81, 0, kClusterFirstBatch | kClusterLastBatch, d.data(),
                                      d.size()));
    expect_events(f, "");
    assert_string_equal(f.holder("kept").c_str(), "b@9");
    // An empty snapshot: a holds nothing.
    assert_true(f.view.snapshot_batch(a, 82, 0, kClusterFirstBatch | kClusterLastBatch, nullptr, 0));
    std::string ev = f.rec.take();
    assert_int_equal(std::count(ev.begin(), ev.end(), ':'), 3);
    assert_int_equal(a.holdings(), 0);
    f.check();
}

void test_data_from_the_holder_only(void**) {
    Fixture f;
    ClusterNode& a = f.node("a", 11);
    ClusterNode& b = f.node("b", 22);
    f.view.apply_claim(a, "x", 1, false);
    assert_true(f.view.accept_data("x", 11, 1));
    assert_true(f.view.accept_data("x", 11, 5));
    assert_false(f.view.accept_data("x", 11, 5));  // again
    assert_false(f.view.accept_data("x", 11, 3));  // late
    assert_false(f.view.accept_data("x", 22, 9));  // not the holder
    assert_false(f.view.accept_data("nobody", 11, 9));
    // Taken over by b: a's data in flight is dropped from then on.
    f.view.apply_claim(b, "x", 2, false);
    assert_false(f.view.accept_data("x", 11, 6));
    assert_true(f.view.accept_data("x", 22, 1));
    // Held here: nobody else's data.
    f.view.claim_here("x", false, 3);
    assert_false(f.view.accept_data("x", 22, 2));
    assert_int_equal(f.view.stats().data_stale, 4);
    assert_int_equal(f.view.stats().data_out_of_order, 2);
    f.rec.take();
}

void test_cursors(void**) {
    Fixture f;
    for (int i = 0; i < 5; ++i) f.view.claim_here("id" + std::to_string(i), false, 1);
    int c = f.view.open_cursor();
    assert_true(c >= 0);
    std::vector<std::string> seen;
    seen.push_back(std::string(f.view.cursor_entry(c)->key()));  // id0
    f.view.cursor_advance(c);
    // The entry under the cursor goes, one behind it goes, one is added.
    f.view.release_here("id1");
    f.view.release_here("id0");
    f.view.claim_here("late", false, 2);
    f.check();
    while (const ViewEntry* e = f.view.cursor_entry(c)) {
        seen.push_back(std::string(e->key()));
        f.view.cursor_advance(c);
    }
    std::string all;
    for (const std::string& s : seen) all += s + " ";
    assert_string_equal(all.c_str(), "id0 id2 id3 id4 late ");
    // Lost to another relay while the cursor sits on it.
    f.view.close_cursor(c);
    c = f.view.open_cursor();
    ClusterNode& a = f.node("a");
    f.view.apply_claim(a, "id2", 100, false);
    assert_string_equal(std::string(f.view.cursor_entry(c)->key()).c_str(), "id3");
    f.check();
    // kMaxCursors at most.
    for (int i = 1; i < ClusterView::kMaxCursors; ++i) assert_true(f.view.open_cursor() >= 0);
    assert_int_equal(f.view.open_cursor(), -1);
    f.rec.take();
}

void test_bounds(void**) {
    Fixture f("me", 3);
    ClusterNode& a = f.node("a");
    f.view.apply_claim(a, "1", 1, false);
    f.view.apply_claim(a, "2", 1, false);
    assert_int_equal(f.view.claim_here("3", false, 1), 1);
    assert_true(f.view.apply_claim(a, "4", 1, false) == ClaimResult::no_room);
    assert_int_equal(f.view.claim_here("5", false, 1), 0);
    assert_int_equal(f.view.stats().entries_refused, 2);
    f.rec.take();
    f.check();
    // A memory budget: refusals, and what is charged is given back.
    MemoryBudget budget(4096);
    {
        Fixture g("me", 1000000, &budget);
        ClusterNode& b = g.node("b");
        int refused = 0;
        for (int i = 0; i < 200; ++i)
            if (g.view.apply_claim(b, "id" + std::to_string(i), 1, false) == ClaimResult::no_room)
                ++refused;
        assert_true(refused > 0);
        assert_true(budget.used() <= budget.limit());
        assert_true(g.view.memory() == budget.used());
        g.rec.take();
        g.check();
    }
    assert_int_equal(budget.used(), 0);
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_claims_and_releases),
        cmocka_unit_test(test_takeovers_of_and_by_this_relay),
        cmocka_unit_test(test_tie_break_converges),
        cmocka_unit_test(test_protected_ids),
        cmocka_unit_test(test_nodes),
        cmocka_unit_test(test_heartbeat_digest),
        cmocka_unit_test(test_snapshots),
        cmocka_unit_test(test_data_from_the_holder_only),
        cmocka_unit_test(test_cursors),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
