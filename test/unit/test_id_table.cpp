// test_id_table.cpp - unit tests for src/server/id_table.h and hash.{h,cpp}.
//
// The table is tested through its public interface only: insert, find,
// erase, size, capacity, for_each. Hashers are injected through the
// constructor: the real siphash13, a constant (every key collides), and a
// few-homes hasher whose probe runs wrap around the end of the slot array,
// which is where backward-shift deletion is easiest to get wrong. The
// churn tests compare against std::unordered_map, which is fine in a test.
// Loops are bounded; seeds are fixed.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <string_view>
#include <unordered_map>
#include <unordered_set>
#include <vector>

// CMocka last among the system headers: it defines fail() and friends as
// macros. Its 1.1 header has no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

#include "hash.h"
#include "id_table.h"
#include "mem_limit.h"

namespace {

struct Dev {
    std::string id;
    int tag = 0;
    std::string_view key() const { return id; }
};

using Table = IdTable<Dev>;

const HashKey kKey{0x0123456789ABCDEFull, 0xFEDCBA9876543210ull};

uint64_t constant_hash(const HashKey&, const void*, size_t) { return 42; }

// Only four homes, all in the last slots of any table (the top bits are
// masked away): every probe run wraps from the end of the array to its
// start.
uint64_t few_homes_hash(const HashKey& key, const void* data, size_t len) {
    return ~uint64_t{0} - (siphash13(key, data, len) & 3);
}

// Low-quality hash: the length and first byte only. Many partial
// collisions with different homes.
uint64_t weak_hash(const HashKey&, const void* data, size_t len) {
    const auto* p = static_cast<const uint8_t*>(data);
    return len * 7 + (len ? p[0] : 0);
}

bool is_pow2(size_t x) { return x != 0 && (x & (x - 1)) == 0; }

// The table's size and load limits as the header states them.
void check_shape(const Table& t) {
    if (t.capacity() != 0) {
        assert_true(is_pow2(t.capacity()));
        assert_true(t.size() * 4 <= t.capacity() * 3);
    } else {
        assert_int_equal(t.size(), 0);
    }
}

std::string key_for(uint32_t i) {
    char buf[32];
    int n = std::snprintf(buf, sizeof buf, "device-%u", i);
    return std::string(buf, static_cast<size_t>(n));
}

// ---- hash ------------------------------------------------------------------

// SipHash-1-3 known answers. Key 0: CPython 3.11's bytes hash with
// PYTHONHASHSEED=0 (siphash13, zero key) and, for the empty input, the
// RustCrypto sip-hash tests. Key (0xaed66ce184be2329, 0xebe9bbf1f1499052):
// CPython with PYTHONHASHSEED=1, whose secret is that key.
void test_siphash13_known_answers(void**) {
    uint8_t seq[64];
    for (int i = 0; i < 64; ++i) seq[i] = static_cast<uint8_t>(i);
    const uint8_t nul9[9] = {0};

    HashKey zero{0, 0};
    assert_int_equal(siphash13(zero, "", 0), 0xd1fba762150c532cull);
    assert_int_equal(siphash13(zero, "a", 1), 0x407448d2b89b1813ull);
    assert_int_equal(siphash13(zero, nul9, 1), 0x68a914128e01e473ull);
    assert_int_equal(siphash13(zero, "hello", 5), 0xe2e77b41cb4e1f9eull);
    assert_int_equal(siphash13(zero, seq, 8), 0xead411e67ebe2eeaull);
    assert_int_equal(siphash13(zero, seq, 15), 0xf30eb725bb91c9eaull);
    assert_int_equal(siphash13(zero, seq, 64), 0x75e05fd5bbc870c6ull);

    HashKey k{0xaed66ce184be2329ull, 0xebe9bbf1f1499052ull};
    assert_int_equal(siphash13(k, "hello", 5), 0xe83d39dd9f7ed1ceull);
    assert_int_equal(siphash13(k, seq, 15), 0xfa87985f39e97a53ull);
    assert_int_equal(siphash13(k, nul9, 9), 0x819cedc99acc8dc6ull);
}

// The key matters (that is the point of keying), and so does every byte
// and the length (trailing NULs).
void test_siphash13_key_and_length_matter(void**) {
    HashKey a{1, 2}, b{2, 1}, c{1, 3};
    uint64_t ha = siphash13(a, "device", 6);
    assert_true(ha != siphash13(b, "device", 6));
    assert_true(ha != siphash13(c, "device", 6));
    assert_int_equal(ha, siphash13(a, "device", 6));
    assert_true(siphash13(a, "a", 1) != siphash13(a, "a\0", 2));
    assert_true(siphash13(a, "\0", 1) != siphash13(a, "", 0));
    assert_true(siphash13(a, "abcdefgh", 8) != siphash13(a, "abcdefgi", 8));
}

void test_hash_key_from_os(void**) {
    HashKey a, b;
    assert_true(hash_key_from_os(&a));
    assert_true(hash_key_from_os(&b));
    // 128 random bits twice: equal (or zero) only if the kernel is broken.
    assert_true(a.k0 != b.k0 || a.k1 != b.k1);
    assert_true(a.k0 != 0 || a.k1 != 0);
}

// ---- table basics ------------------------------------------------------------

void test_empty_table(void**) {
    Table t(kKey);
    assert_int_equal(t.size(), 0);
    assert_int_equal(t.capacity(), 0);  // nothing allocated until the first insert
    assert_null(t.find("x"));
    assert_null(t.find(""));
    assert_null(t.erase("x"));
    int calls = 0;
    t.for_each([&](Dev*) { ++calls; });
    assert_int_equal(calls, 0);
}

void test_insert_find_erase(void**) {
    Table t(kKey);
    Dev a{"alpha", 1}, b{"beta", 2}, c{"gamma", 3};
    assert_true(t.insert(&a));
    assert_true(t.insert(&b));
    assert_int_equal(t.size(), 2);
    assert_int_equal(t.capacity(), 16);
    assert_ptr_equal(t.find("alpha"), &a);
    assert_ptr_equal(t.find("beta"), &b);
    assert_null(t.find("gamma"));
    assert_null(t.find("alph"));
    assert_null(t.find("alphaa"));

    assert_ptr_equal(t.erase("alpha"), &a);
    assert_int_equal(t.size(), 1);
    assert_null(t.find("alpha"));
    assert_ptr_equal(t.find("beta"), &b);
    // Erasing what is not there: nullptr, nothing changes.
    assert_null(t.erase("alpha"));
    assert_null(t.erase("gamma"));
    assert_int_equal(t.size(), 1);
    assert_ptr_equal(t.find("beta"), &b);

    assert_true(t.insert(&c));
    assert_true(t.insert(&a));  // back again after erase
    assert_int_equal(t.size(), 3);
    assert_ptr_equal(t.find("alpha"), &a);
    assert_ptr_equal(t.find("gamma"), &c);
    assert_ptr_equal(t.erase("beta"), &b);
    assert_ptr_equal(t.erase("gamma"), &c);
    assert_ptr_equal(t.erase("alpha"), &a);
    assert_int_equal(t.size(), 0);
    assert_null(t.find("alpha"));
    assert_null(t.erase("alpha"));
}

// A second entry with a key already present is refused; the first stays.
void test_duplicate_refused(void**) {
    Table t(kKey);
    Dev a{"same", 1}, a2{"same", 2}, other{"other", 3};
    assert_true(t.insert(&a));
    assert_false(t.insert(&a2));
    assert_false(t.insert(&a));
    assert_int_equal(t.size(), 1);
    assert_ptr_equal(t.find("same"), &a);
    assert_int_equal(t.find("same")->tag, 1);

    // Also at the load limit, where the insert would first grow the table:
    // 12 entries in 16 slots.
    std::vector<Dev> devs(11);
    for (uint32_t i = 0; i < 11; ++i) {
        devs[i].id = key_for(i);
        assert_true(t.insert(&devs[i]));
    }
    assert_int_equal(t.size(), 12);
    Dev dup{key_for(5), 99};
    assert_false(t.insert(&dup));
    assert_int_equal(t.size(), 12);
    assert_ptr_equal(t.find(key_for(5)), &devs[5]);
    assert_ptr_equal(t.find("same"), &a);
    for (uint32_t i = 0; i < 11; ++i) assert_ptr_equal(t.find(key_for(i)), &devs[i]);
    assert_true(t.insert(&other));
    assert_int_equal(t.size(), 13);
    check_shape(t);
}

// Keys are bytes: NUL, high bytes, prefixes and lengths are all distinct.
void test_binary_keys_exact(void**) {
    using namespace std::string_literals;
    const std::string keys[] = {
        "a"s,
        "a\0"s,
        "\0a"s,
        "\0"s,
        "\0\0"s,
        "\0\0\0"s,
        "\xff"s,
        "\xff\xff"s,
        "\x80"s,
        "\x7f"s,
        "ab"s,
        "abc"s,
        "abc\0"s,
        "ABC"s,
        "a\0b\0c"s,
        "\xff\0\xff"s,
        std::string(255, 'x'),
        std::string(254, 'x') + "y"s,
        std::string(254, 'x'),
        std::string(255, '\0'),
        std::string(255, '\xff'),
        std::string(8, '\0'),  // a whole SipHash block of NULs
        std::string(7, '\0'),
        std::string(9, '\0'),
    };
    const size_t n = sizeof keys / sizeof keys[0];
    std::vector<Dev> devs(n);
    Table t(kKey);
    for (size_t i = 0; i < n; ++i) {
        devs[i].id = keys[i];
        devs[i].tag = static_cast<int>(i);
        assert_true(t.insert(&devs[i]));
    }
    assert_int_equal(t.size(), n);
    for (size_t i = 0; i < n; ++i) {
        Dev* d = t.find(keys[i]);
        assert_ptr_equal(d, &devs[i]);
        // A copy of the key finds it too (compared by bytes, not address).
        std::string copy(keys[i]);
        assert_ptr_equal(t.find(copy), &devs[i]);
    }
    const std::string absent[] = {""s, "\0\0\0\0"s, "a\0\0"s, "b"s, "\xfe"s, std::string(253, 'x'),
                                  std::string(255, 'y'), "abc\0\0"s, std::string(6, '\0')};
    for (const std::string& k : absent) assert_null(t.find(k));
    // Erase every other; the rest stay exact.
    for (size_t i = 0; i < n; i += 2) assert_ptr_equal(t.erase(keys[i]), &devs[i]);
    for (size_t i = 0; i < n; ++i) {
        if (i % 2 == 0)
            assert_null(t.find(keys[i]));
        else
            assert_ptr_equal(t.find(keys[i]), &devs[i]);
    }
}

// The same set of binary keys, every one colliding: only the byte compare
// tells them apart.
void test_binary_keys_colliding(void**) {
    using namespace std::string_literals;
    const std::string keys[] = {"a"s, "a\0"s, "\0a"s, "\0"s, "\0\0"s, "\xff"s, "ab"s, "abc"s};
    const size_t n = sizeof keys / sizeof keys[0];
    std::vector<Dev> devs(n);
    Table t(kKey, constant_hash);
    for (size_t i = 0; i < n; ++i) {
        devs[i].id = keys[i];
        assert_true(t.insert(&devs[i]));
    }
    for (size_t i = 0; i < n; ++i) assert_ptr_equal(t.find(keys[i]), &devs[i]);
    assert_null(t.find(""));
    assert_null(t.find("a\0\0"s));
    Dev dup{"a\0"s, 0};
    assert_false(t.insert(&dup));
}

// ---- growth and shrink ---------------------------------------------------

void test_growth_many_keys(void**) {
    const uint32_t n = 100000;
    std::vector<Dev> devs(n);
    Table t(kKey);
    size_t last_cap = 0;
    int growths = 0;
    for (uint32_t i = 0; i < n; ++i) {
        devs[i].id = key_for(i);
        devs[i].tag = static_cast<int>(i);
        assert_true(t.insert(&devs[i]));
        if (t.capacity() != last_cap) {
            assert_true(t.capacity() > last_cap);
            last_cap = t.capacity();
            ++growths;
            check_shape(t);
        }
    }
    assert_int_equal(t.size(), n);
    check_shape(t);
    // 16 doubled until 3/4 of it holds 100000: 262144 = 16 << 14.
    assert_int_equal(t.capacity(), 262144);
    assert_int_equal(growths, 15);
    for (uint32_t i = 0; i < n; ++i) {
        Dev* d = t.find(devs[i].id);
        assert_ptr_equal(d, &devs[i]);
    }
    for (uint32_t i = n; i < n + 1000; ++i) assert_null(t.find(key_for(i)));
    // A duplicate of each of a sample is refused.
    for (uint32_t i = 0; i < n; i += 997) {
        Dev dup{devs[i].id, -1};
        assert_false(t.insert(&dup));
    }
    assert_int_equal(t.size(), n);

    // Mass erase, in an order unrelated to insertion: the table shrinks.
    for (uint32_t j = 0; j < n; ++j) {
        uint32_t i = static_cast<uint32_t>((uint64_t{j} * 40503u) % n);  // 40503 is coprime to n
        if (i < 1000) continue;  // keep 1000
        assert_ptr_equal(t.erase(devs[i].id), &devs[i]);
    }
    assert_int_equal(t.size(), 1000);
    check_shape(t);
    assert_true(t.capacity() <= 16 * t.size());
    for (uint32_t i = 0; i < 1000; ++i) assert_ptr_equal(t.find(devs[i].id), &devs[i]);
    for (uint32_t i = 1000; i < n; i += 101) assert_null(t.find(devs[i].id));

    for (uint32_t i = 0; i < 1000; ++i) assert_ptr_equal(t.erase(devs[i].id), &devs[i]);
    assert_int_equal(t.size(), 0);
    assert_true(t.capacity() <= 64);
    // Still usable after shrinking all the way.
    assert_true(t.insert(&devs[7]));
    assert_ptr_equal(t.find(devs[7].id), &devs[7]);
}

// for_each visits every entry exactly once, at any size.
void test_for_each_once(void**) {
    const uint32_t n = 3000;
    std::vector<Dev> devs(n);
    Table t(kKey);
    for (uint32_t i = 0; i < n; ++i) {
        devs[i].id = key_for(i);
        devs[i].tag = static_cast<int>(i);
        assert_true(t.insert(&devs[i]));
        if (i == 0 || i == 11 || i == 12 || i == 999 || i == n - 1) {
            std::vector<int> seen(n, 0);
            size_t calls = 0;
            t.for_each([&](Dev* d) {
                ++calls;
                assert_true(d >= &devs[0] && d <= &devs[i]);
                ++seen[static_cast<size_t>(d->tag)];
            });
            assert_int_equal(calls, i + 1);
            for (uint32_t k = 0; k <= i; ++k) assert_int_equal(seen[k], 1);
        }
    }
    for (uint32_t i = 0; i < n; i += 3) t.erase(devs[i].id);
    std::vector<int> seen(n, 0);
    size_t calls = 0;
    t.for_each([&](Dev* d) {
        ++calls;
        ++seen[static_cast<size_t>(d->tag)];
    });
    assert_int_equal(calls, t.size());
    for (uint32_t k = 0; k < n; ++k) assert_int_equal(seen[k], k % 3 == 0 ? 0 : 1);
}

// Out of memory during growth (RLIMIT_AS lowered, see mem_limit.h):
// insert() returns false and the table is unchanged.
void test_insert_out_of_memory(void**) {
    MEM_LIMIT_REQUIRED();
    // 3/4 of 2^18 slots: the next insert must grow to 2^19 slots (8 MiB).
    const uint32_t n = 196608;
    std::vector<Dev> devs(n + 1);
    Table t(kKey);
    for (uint32_t i = 0; i <= n; ++i) devs[i].id = key_for(i);
    for (uint32_t i = 0; i < n; ++i) assert_true(t.insert(&devs[i]));
    assert_int_equal(t.capacity(), 262144);
    bool inserted;
    {
        MemLimit lim(2u << 20);
        assert_true(lim.ok());
        inserted = t.insert(&devs[n]);
    }
    assert_false(inserted);
    assert_int_equal(t.size(), n);
    assert_int_equal(t.capacity(), 262144);
    assert_null(t.find(devs[n].id));
    for (uint32_t i = 0; i < n; i += 61) assert_ptr_equal(t.find(devs[i].id), &devs[i]);
    // With memory back, the same insert works.
    assert_true(t.insert(&devs[n]));
    assert_int_equal(t.capacity(), 524288);
    assert_ptr_equal(t.find(devs[n].id), &devs[n]);
}

// ---- collisions ------------------------------------------------------------

void run_colliding(Table::Hasher hasher, uint32_t n) {
    std::vector<Dev> devs(n);
    Table t(kKey, hasher);
    for (uint32_t i = 0; i < n; ++i) {
        devs[i].id = key_for(i);
        assert_true(t.insert(&devs[i]));
    }
    assert_int_equal(t.size(), n);
    check_shape(t);
    for (uint32_t i = 0; i < n; ++i) assert_ptr_equal(t.find(devs[i].id), &devs[i]);
    assert_null(t.find(key_for(n)));
    Dev dup{key_for(n / 2), 0};
    assert_false(t.insert(&dup));

    // Erase from the front, middle and end of the one long run.
    for (uint32_t i = 0; i < n; i += 2) assert_ptr_equal(t.erase(devs[i].id), &devs[i]);
    assert_int_equal(t.size(), n / 2);
    for (uint32_t i = 0; i < n; ++i) {
        if (i % 2 == 0)
            assert_null(t.find(devs[i].id));
        else
            assert_ptr_equal(t.find(devs[i].id), &devs[i]);
    }
    // Put them back, erase the others in reverse.
    for (uint32_t i = 0; i < n; i += 2) assert_true(t.insert(&devs[i]));
    for (uint32_t i = n; i-- > 0;)
        if (i % 2 == 1) assert_ptr_equal(t.erase(devs[i].id), &devs[i]);
    for (uint32_t i = 0; i < n; ++i) {
        if (i % 2 == 1)
            assert_null(t.find(devs[i].id));
        else
            assert_ptr_equal(t.find(devs[i].id), &devs[i]);
    }
    for (uint32_t i = 0; i < n; i += 2) assert_ptr_equal(t.erase(devs[i].id), &devs[i]);
    assert_int_equal(t.size(), 0);
    assert_null(t.find(devs[0].id));
}

void test_all_keys_collide(void**) { run_colliding(constant_hash, 2000); }

void test_runs_wrap_around_the_array_end(void**) {
    run_colliding(few_homes_hash, 2000);
    run_colliding(few_homes_hash, 13);  // small: one table of 16 slots
    run_colliding(weak_hash, 3000);
}

// ---- churn against a model -------------------------------------------------

struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    uint32_t below(uint32_t n) { return static_cast<uint32_t>(next() % n); }
};

void check_full(const Table& t, const std::unordered_map<std::string, Dev*>& model) {
    assert_int_equal(t.size(), model.size());
    check_shape(t);
    std::unordered_set<Dev*> seen;
    t.for_each([&](Dev* d) {
        assert_true(seen.insert(d).second);
        auto it = model.find(d->id);
        assert_true(it != model.end());
        assert_ptr_equal(it->second, d);
    });
    assert_int_equal(seen.size(), model.size());
    for (const auto& [k, d] : model) assert_ptr_equal(t.find(k), d);
}

// Phases alternate between insert-heavy and delete-heavy, so the table grows
// and shrinks several times; each step is checked against the model.
void run_churn(Table::Hasher hasher, uint64_t seed, uint32_t universe, int steps) {
    std::vector<Dev> devs(universe);
    for (uint32_t i = 0; i < universe; ++i) {
        devs[i].id = key_for(i);
        if (i % 5 == 0) devs[i].id.push_back('\0');  // some binary keys
        if (i % 7 == 0) devs[i].id.insert(0, 1, '\xff');
    }
    Table t(kKey, hasher);
    std::unordered_map<std::string, Dev*> model;
    Rng rng{seed};
    size_t max_cap = 0, shrinks = 0, last_cap = 0;
    for (int step = 0; step < steps; ++step) {
        // 4 phases of steps/8, repeated: grow, churn, shrink hard, churn.
        int phase = (step / (steps / 8)) % 4;
        uint32_t insert_pct = phase == 0 ? 80 : phase == 2 ? 10 : 50;
        Dev* d = &devs[rng.below(universe)];
        uint32_t r = rng.below(100);
        bool present = model.count(d->id) != 0;
        if (r < insert_pct) {
            assert_int_equal(t.insert(d), !present);
            model.emplace(d->id, d);
        } else if (r < 95) {
            assert_ptr_equal(t.erase(d->id), present ? d : nullptr);
            model.erase(d->id);
        } else {
            assert_ptr_equal(t.find(d->id), present ? d : nullptr);
        }
        assert_int_equal(t.size(), model.size());
        if (t.capacity() < last_cap) ++shrinks;
        last_cap = t.capacity();
        if (last_cap > max_cap) max_cap = last_cap;
        if (step % 997 == 0) check_full(t, model);
    }
    check_full(t, model);
    // The test did what it meant to: the table grew and shrank.
    assert_true(max_cap >= universe);
    assert_true(shrinks > 0);
}

void test_churn_against_model(void**) {
    run_churn(siphash13, 1, 4000, 200000);
    run_churn(siphash13, 2, 300, 50000);
}

void test_churn_against_model_bad_hashes(void**) {
    run_churn(weak_hash, 3, 2000, 60000);
    run_churn(few_homes_hash, 4, 1500, 40000);
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_siphash13_known_answers),
        cmocka_unit_test(test_siphash13_key_and_length_matter),
        cmocka_unit_test(test_hash_key_from_os),
        cmocka_unit_test(test_empty_table),
        cmocka_unit_test(test_insert_find_erase),
        cmocka_unit_test(test_duplicate_refused),
        cmocka_unit_test(test_binary_keys_exact),
        cmocka_unit_test(test_binary_keys_colliding),
        cmocka_unit_test(test_growth_many_keys),
        cmocka_unit_test(test_for_each_once),
        cmocka_unit_test(test_insert_out_of_memory),
        cmocka_unit_test(test_all_keys_collide),
        cmocka_unit_test(test_runs_wrap_around_the_array_end),
        cmocka_unit_test(test_churn_against_model),
        cmocka_unit_test(test_churn_against_model_bad_hashes),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
