// test_devices.cpp - unit tests for src/server/devices.{h,cpp}: ids and
// subscriptions without the protocol.
//
// The cost test counts steps (Devices::lookup_steps: subscription entries
// examined), never time: SUBSCRIBE's duplicate check and UNSUBSCRIBE must
// cost the same whether the session holds one subscription or thousands and
// whether the device has one follower or thousands (issue 10: 100,000
// UNSUBSCRIBEs of a session holding 4,096 subscriptions took 55 times as
// long as with none, stalling every other connection). Loops are bounded.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cstdio>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "devices.h"

// CMocka last: it defines fail() and friends as macros. Its 1.1 header has
// no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

namespace {

const HashKey kKey{0x0123456789ABCDEFull, 0xFEDCBA9876543210ull};

// A session that is only protocol state: Devices never calls its virtuals.
class BareSession final : public Session {
   public:
    explicit BareSession(uint64_t id) { session_id = id; }
    void enqueue(const uint8_t*, size_t, const uint8_t*, size_t) override {}
    void enqueue_delivery(std::string_view, const uint8_t*, size_t, const uint8_t*,
                          size_t) override {}
    void close(CloseReason) override {}
    const char* label() const override { return "bare"; }
};

std::string id_of(const char* prefix, int i) { return prefix + std::to_string(i); }

// Steps taken by `rounds` rounds of the commands' lookups on (s, target),
// the targets taken in turn: SUBSCRIBE's duplicate check when absent and
// when present, the subscribe, an UNSUBSCRIBE that finds it and one that
// does not. Averaged over several targets, because one key's cost depends
// on where its hash falls among the others.
uint64_t steps_of_rounds(Devices& devices, Session& s, const std::vector<Device*>& targets,
                         int rounds) {
    uint64_t before = devices.lookup_steps();
    for (int i = 0; i < rounds; ++i) {
        Device& target = *targets[static_cast<size_t>(i) % targets.size()];
        assert_false(devices.subscribed(s, target));
        assert_true(devices.subscribe(s, target));
        assert_true(devices.subscribed(s, target));
        devices.unsubscribe(s, target);
        devices.unsubscribe(s, target);
    }
    return devices.lookup_steps() - before;
}

void test_lookup_cost_does_not_grow(void**) {
    constexpr int kMany = 4096;
    constexpr int kTargets = 64;
    constexpr int kRounds = 1000;
    Devices devices(kKey);

    // The small case: a session with one subscription besides the targets',
    // and targets with one follower (so that they are not collected).
    BareSession small(1), keeper(2);
    Device* one = devices.find_or_create("one");
    assert_non_null(one);
    assert_true(devices.subscribe(small, *one));
    std::vector<Device*> small_targets;
    for (int j = 0; j < kTargets; ++j) {
        small_targets.push_back(devices.find_or_create(id_of("small-target", j)));
        assert_non_null(small_targets.back());
        assert_true(devices.subscribe(keeper, *small_targets.back()));
    }
    uint64_t small_steps = steps_of_rounds(devices, small, small_targets, kRounds);

    // The large case: a session with kMany subscriptions, and targets with
    // kMany followers each, so that neither side's list is short.
    BareSession big(3);
    for (int i = 0; i < kMany; ++i) {
        Device* d = devices.find_or_create(id_of("dev", i));
        assert_non_null(d);
        assert_true(devices.subscribe(big, *d));
    }
    std::vector<std::unique_ptr<BareSession>> followers;
    for (int i = 0; i < kMany; ++i) followers.push_back(std::make_unique<BareSession>(100 + i));
    std::vector<Device*> big_targets;
    for (int j = 0; j < kTargets; ++j) {
        big_targets.push_back(devices.find_or_create(id_of("big-target", j)));
        assert_non_null(big_targets.back());
        for (auto& f : followers) assert_true(devices.subscribe(*f, *big_targets.back()));
    }
    assert_int_equal(big.subscription_count, kMany);
    assert_int_equal(big_targets[0]->subscriber_count, kMany);
    uint64_t big_steps = steps_of_rounds(devices, big, big_targets, kRounds);

    std::printf("lookup steps for %d rounds: %llu with 1 subscription, %llu with %d\n", kRounds,
                static_cast<unsigned long long>(small_steps),
                static_cast<unsigned long long>(big_steps), kMany);
    // Five lookups a round; an open-addressing probe at most 3/4 full takes
    // a few steps on average whatever the size. A list walk would take
    // thousands.
    assert_true(big_steps <= 16u * 5u * kRounds);
    assert_true(small_steps <= 16u * 5u * kRounds);

    devices.unsubscribe_all(big);
    devices.unsubscribe_all(small);
    devices.unsubscribe_all(keeper);
    for (auto& f : followers) devices.unsubscribe_all(*f);
    assert_int_equal(devices.size(), 0);
}

// check_invariants holds through ordinary use and reports breakage: a
// count off by one, an entry that should have been collected.
void test_invariants(void**) {
    MemoryBudget budget;
    Devices devices(kKey, 10, &budget);
    char why[128] = "";
    BareSession a(1), b(2);
    Device* x = devices.find_or_create("x");
    Device* y = devices.find_or_create(std::string_view("y\0z", 3));
    assert_non_null(x);
    assert_non_null(y);
    assert_null(devices.claim(a, *x));
    assert_true(devices.subscribe(b, *x));
    assert_true(devices.subscribe(b, *y));
    assert_true(devices.subscribe(a, *y));
    assert_true(devices.check_invariants(why, sizeof why));
    assert_true(devices.check_session(a, why, sizeof why));
    assert_true(devices.check_session(b, why, sizeof why));
    assert_int_equal(budget.used(), devices.memory());
    assert_true(y->key() == std::string_view("y\0z", 3));

    ++x->subscriber_count;
    assert_false(devices.check_invariants(why, sizeof why));
    assert_non_null(std::strstr(why, "subscribers"));
    --x->subscriber_count;
    ++b.subscription_count;
    assert_false(devices.check_session(b, why, sizeof why));
    --b.subscription_count;

    devices.unsubscribe(b, *x);  // x is held: stays
    devices.unsubscribe_all(a);
    assert_non_null(devices.find("x"));
    assert_true(devices.check_invariants(why, sizeof why));
    // A device left offline and unfollowed without collect() is reported.
    assert_true(devices.release(a) == x);
    assert_false(devices.check_invariants(why, sizeof why));
    assert_non_null(std::strstr(why, "collected"));
    devices.collect(x);
    assert_true(devices.check_invariants(why, sizeof why));
    devices.unsubscribe_all(b);
    assert_int_equal(devices.size(), 0);
    assert_int_equal(devices.subscriptions(), 0);
    assert_int_equal(budget.used(), devices.memory());
}

// --max-devices and the budget bound find_or_create; ids already in the
// table are still found.
void test_limits(void**) {
    MemoryBudget budget(1 << 20);
    Devices devices(kKey, 2, &budget);
    assert_non_null(devices.find_or_create("a"));
    assert_non_null(devices.find_or_create("b"));
    assert_null(devices.find_or_create("c"));
    assert_non_null(devices.find_or_create("a"));
    assert_null(devices.find_or_create(""));
    assert_null(devices.find_or_create(std::string(256, 'x')));
    devices.collect(devices.find("a"));
    assert_non_null(devices.find_or_create("c"));
    devices.collect(devices.find("b"));
    devices.collect(devices.find("c"));
    assert_int_equal(devices.size(), 0);

    MemoryBudget tiny(64);
    Devices starved(kKey, 100, &tiny);
    assert_null(starved.find_or_create("too-big-for-the-budget"));
    assert_int_equal(tiny.used(), 0);
    assert_true(tiny.refusals() > 0);
}

}  // namespace

int main() {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lookup_cost_does_not_grow),
        cmocka_unit_test(test_invariants),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
