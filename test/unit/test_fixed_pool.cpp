// test_fixed_pool.cpp - unit tests for src/server/fixed_pool.{h,cpp}.
//
// Links the pool and nothing else. Blocks are checked to be distinct,
// aligned, inside one slab each and writable whole (a pattern per block,
// checked before it is freed); slabs are counted as they fill, empty and
// go back (all but the one spare); a randomized churn runs against a
// model of which blocks are held. Seeds are fixed, loops bounded.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cstring>
#include <random>
#include <set>
#include <vector>

// CMocka last among the system headers: it defines fail() and friends as
// macros. Its 1.1 header has no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

#include "fixed_pool.h"

namespace {

void fill(void* block, size_t n, uint32_t seed) {
    auto* p = static_cast<uint8_t*>(block);
    for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(seed * 31u + i);
}

bool holds(const void* block, size_t n, uint32_t seed) {
    const auto* p = static_cast<const uint8_t*>(block);
    for (size_t i = 0; i < n; ++i)
        if (p[i] != static_cast<uint8_t>(seed * 31u + i)) return false;
    return true;
}

uintptr_t slab_base(const void* p) {
    return reinterpret_cast<uintptr_t>(p) & ~(uintptr_t{FixedPool::kSlabBytes} - 1);
}

void test_sizes(void**) {
    FixedPool small(1);
    assert_int_equal(small.block_size(), 8);  // holds the free list's link
    FixedPool sub(48);
    assert_int_equal(sub.block_size(), 48);
    assert_int_equal(sub.blocks_per_slab(), (FixedPool::kSlabBytes - 32) / 48);
    FixedPool odd(313);
    assert_int_equal(odd.block_size(), 320);
    assert_int_equal(odd.slabs(), 0);  // nothing before the first block
}

// Two slabs and a block: every block distinct, 8-aligned, whole inside its
// slab, and keeps what was written into it while the others are written.
void test_blocks_distinct_and_whole(void**) {
    FixedPool pool(312);
    const size_t n = 2 * pool.blocks_per_slab() + 1;
    std::vector<void*> blocks;
    std::set<uintptr_t> seen;
    for (size_t i = 0; i < n; ++i) {
        void* b = pool.allocate();
        assert_non_null(b);
        assert_int_equal(reinterpret_cast<uintptr_t>(b) % 8, 0);
        assert_int_equal(slab_base(b), slab_base(static_cast<uint8_t*>(b) + 311));
        assert_true(seen.insert(reinterpret_cast<uintptr_t>(b)).second);
        fill(b, 312, static_cast<uint32_t>(i));
        blocks.push_back(b);
    }
    assert_int_equal(pool.slabs(), 3);
    assert_int_equal(pool.blocks_in_use(), n);
    for (size_t i = 0; i < n; ++i) assert_true(holds(blocks[i], 312, static_cast<uint32_t>(i)));
    for (void* b : blocks) pool.free(b);
    assert_int_equal(pool.blocks_in_use(), 0);
    assert_int_equal(pool.slabs(), 1);  // the spare
}

// A slab whose last block goes is given back, but one empty slab is kept:
// a block allocated and freed at a slab's edge does not cost a slab each
// time.
void test_empty_slabs_go_back_but_one(void**) {
    FixedPool pool(48);
    const size_t per = pool.blocks_per_slab();
    std::vector<void*> first, second;
    for (size_t i = 0; i < per; ++i) first.push_back(pool.allocate());
    assert_int_equal(pool.slabs(), 1);
    second.push_back(pool.allocate());
    assert_int_equal(pool.slabs(), 2);
    for (int round = 0; round < 100; ++round) {
        pool.free(second[0]);
        assert_int_equal(pool.slabs(), 2);  // kept as the spare
        second[0] = pool.allocate();
        assert_int_equal(pool.slabs(), 2);
    }
    for (void* b : first) pool.free(b);
    assert_int_equal(pool.slabs(), 2);  // the first slab is the spare now
    pool.free(second[0]);
    assert_int_equal(pool.slabs(), 1);  // two empty: one goes
    // Freed blocks are handed out again before a new slab is taken.
    for (size_t i = 0; i < per; ++i) assert_non_null(pool.allocate());
    assert_int_equal(pool.slabs(), 1);
}

// Random allocations and frees against a model of the blocks held: no
// block handed out twice, contents kept, slabs bounded by what is held.
void test_churn_against_model(void**) {
    FixedPool pool(48);
    std::mt19937 rng(12);
    std::vector<std::pair<void*, uint32_t>> held;
    uint32_t next_seed = 0;
    for (int step = 0; step < 200000; ++step) {
        bool grow = held.empty() || (rng() % 100) < (step < 100000 ? 60u : 35u);
        if (grow) {
            void* b = pool.allocate();
            assert_non_null(b);
            fill(b, 48, next_seed);
            held.emplace_back(b, next_seed++);
        } else {
            size_t i = rng() % held.size();
            assert_true(holds(held[i].first, 48, held[i].second));
            pool.free(held[i].first);
            held[i] = held.back();
            held.pop_back();
        }
        assert_int_equal(pool.blocks_in_use(), held.size());
    }
    std::set<void*> distinct;
    for (auto& h : held) {
        assert_true(distinct.insert(h.first).second);
        assert_true(holds(h.first, 48, h.second));
    }
    for (auto& h : held) pool.free(h.first);
    assert_int_equal(pool.slabs(), 1);
}

// Blocks still held when the pool goes are freed with it (the sanitizer
// builds check that nothing leaks).
void test_destroyed_with_blocks_held(void**) {
    FixedPool pool(100);
    for (int i = 0; i < 1000; ++i) assert_non_null(pool.allocate());
    assert_true(pool.slabs() >= 1000 / pool.blocks_per_slab());
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sizes),
        cmocka_unit_test(test_blocks_distinct_and_whole),
        cmocka_unit_test(test_empty_slabs_go_back_but_one),
        cmocka_unit_test(test_churn_against_model),
        cmocka_unit_test(test_destroyed_with_blocks_held),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
