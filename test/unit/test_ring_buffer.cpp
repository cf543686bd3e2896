// test_ring_buffer.cpp - unit tests for src/server/ring_buffer.{h,cpp}.
//
// Links the real RingBuffer and nothing of the relay. Covers lazy
// allocation, append/peek/consume, the wrap with read/write spans, growth
// (also while the bytes wrap), the max_bytes cap, release, contiguous(), and
// a randomized comparison (append and append_parts alike) against a
// std::deque model with the free-running
// counters started just below the 32-bit wrap point (STYLE.md practice 10).
// Every loop is bounded and every seed fixed.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cstring>
#include <deque>
#include <vector>

// CMocka last among the system headers: it defines fail() and friends as
// macros. Its 1.1 header has no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

#include "mem_limit.h"
#include "ring_buffer.h"

namespace {

// A byte that depends on its position in the stream, so that a misplaced or
// duplicated byte shows.
uint8_t pat(uint32_t i) { return static_cast<uint8_t>((i * 131u + 7u) ^ (i >> 8)); }

// Never a null data(), even for n == 0 (see test_zero_length_append).
std::vector<uint8_t> pattern(uint32_t from, size_t n) {
    std::vector<uint8_t> v;
    v.reserve(n + 1);
    v.resize(n);
    for (size_t i = 0; i < n; ++i) v[i] = pat(from + static_cast<uint32_t>(i));
    return v;
}

// All bytes of the ring, through read_spans (also checks the span shape).
std::vector<uint8_t> span_bytes(const RingBuffer& r) {
    struct iovec sp[2];
    int cnt = r.read_spans(sp);
    std::vector<uint8_t> out;
    assert_true(cnt >= 0 && cnt <= 2);
    if (r.empty()) assert_int_equal(cnt, 0);
    for (int i = 0; i < cnt; ++i) {
        assert_true(sp[i].iov_len > 0);
        const auto* b = static_cast<const uint8_t*>(sp[i].iov_base);
        out.insert(out.end(), b, b + sp[i].iov_len);
    }
    return out;
}

std::vector<uint8_t> peek_all(const RingBuffer& r) {
    std::vector<uint8_t> v(r.size());
    assert_true(r.peek(v.data(), 0, v.size()));
    return v;
}

bool is_pow2(uint32_t x) { return x != 0 && (x & (x - 1)) == 0; }

// Moves the ring's counters to `tail` (ring must be empty and allocated or
// not) and then fills it with n pattern bytes numbered from `from`.
void append_pattern(RingBuffer& r, uint32_t from, size_t n) {
    std::vector<uint8_t> v = pattern(from, n);
    assert_true(r.append(v.data(), v.size()));
}

// ---------------------------------------------------------------------------

void test_lazy_allocation(void**) {
    const RingLimits r_limits(4096, 64);
    RingBuffer r(r_limits);
    assert_int_equal(r.capacity(), 0);
    assert_int_equal(r.size(), 0);
    assert_true(r.empty());
    assert_int_equal(r.free_space(), 0);
    assert_int_equal(r.max_bytes(), 4096);

    struct iovec sp[2];
    assert_int_equal(r.read_spans(sp), 0);
    assert_int_equal(r.write_spans(sp), 0);
    assert_null(r.contiguous(0, 0));
    assert_null(r.contiguous(0, 1));
    uint8_t b = 0xAA;
    assert_true(r.peek(&b, 0, 0));
    assert_false(r.peek(&b, 0, 1));
    assert_int_equal(b, 0xAA);

    // Nothing needed, nothing allocated.
    assert_true(r.reserve(0));
    assert_int_equal(r.capacity(), 0);
    // Releasing an empty, unallocated ring is fine.
    assert_true(r.release());
    assert_int_equal(r.capacity(), 0);

    // The first real reserve allocates the initial capacity.
    assert_true(r.reserve(1));
    assert_int_equal(r.capacity(), 64);
    assert_int_equal(r.size(), 0);
    assert_int_equal(r.free_space(), 64);
}

void test_initial_capacity_rounded_up(void**) {
    const RingLimits r_limits(4096, 100);
    RingBuffer r(r_limits);
    assert_int_equal(r.capacity(), 0);
    const uint8_t x = 1;
    assert_true(r.append(&x, 1));
    assert_int_equal(r.capacity(), 128);

    const RingLimits one_limits(4096, 0);
    RingBuffer one(one_limits);  // 0 is treated as 1
    assert_true(one.append(&x, 1));
    assert_int_equal(one.capacity(), 1);
    assert_true(one.append(&x, 1));
    assert_int_equal(one.capacity(), 2);
}

void test_append_peek_consume(void**) {
    const RingLimits r_limits(4096, 16);
    RingBuffer r(r_limits);
    const char* msg = "hello, world";
    assert_true(r.append(msg, 12));
    assert_int_equal(r.size(), 12);
    assert_false(r.empty());
    assert_int_equal(r.capacity(), 16);
    assert_int_equal(r.free_space(), 4);

    char out[16];
    std::memset(out, 0, sizeof out);
    assert_true(r.peek(out, 7, 5));
    assert_memory_equal(out, "world", 5);
    assert_true(r.peek(out, 0, 12));
    assert_memory_equal(out, msg, 12);
    assert_true(r.peek(out, 12, 0));  // empty range at the end

    // Out of range: false, dst untouched.
    std::memset(out, 'z', sizeof out);
    assert_false(r.peek(out, 0, 13));
    assert_false(r.peek(out, 8, 5));
    assert_false(r.peek(out, 13, 0));
    for (char c : out) assert_int_equal(c, 'z');

    r.consume(7);
    assert_int_equal(r.size(), 5);
    assert_true(r.peek(out, 0, 5));
    assert_memory_equal(out, "world", 5);
    r.consume(0);
    assert_int_equal(r.size(), 5);
    r.consume(5);
    assert_true(r.empty());
    assert_int_equal(r.size(), 0);
    assert_int_equal(r.free_space(), 16);

    // Zero-length append on an allocated ring is a no-op.
    assert_true(r.append(msg, 0));
    assert_true(r.empty());

    assert_true(r.append("abc", 3));
    assert_true(r.peek(out, 0, 3));
    assert_memory_equal(out, "abc", 3);
}

// Read spans: the used bytes straddle the end of the storage.
void test_read_spans_across_wrap(void**) {
    const RingLimits r_limits(4096, 16);
    RingBuffer r(r_limits);
    append_pattern(r, 0, 12);
    r.consume(10);  // tail index 10, head index 12
    append_pattern(r, 12, 10);  // indices 12..15 then 0..5
    assert_int_equal(r.capacity(), 16);
    assert_int_equal(r.size(), 12);

    struct iovec sp[2];
    assert_int_equal(r.read_spans(sp), 2);
    assert_int_equal(sp[0].iov_len, 6);
    assert_int_equal(sp[1].iov_len, 6);
    // The second span starts at the storage's beginning, the first at index
    // 10 of the same storage.
    const auto* s0 = static_cast<const uint8_t*>(sp[0].iov_base);
    const auto* s1 = static_cast<const uint8_t*>(sp[1].iov_base);
    assert_ptr_equal(s0, s1 + 10);
    std::vector<uint8_t> want = pattern(10, 12);
    assert_memory_equal(s0, want.data(), 6);
    assert_memory_equal(s1, want.data() + 6, 6);
    assert_true(span_bytes(r) == want);
    assert_true(peek_all(r) == want);

    // The free bytes are one span now: indices 6..9.
    assert_int_equal(r.write_spans(sp), 1);
    assert_int_equal(sp[0].iov_len, 4);
    assert_ptr_equal(sp[0].iov_base, s1 + 6);

    // Consume across the wrap: one span remains.
    r.consume(8);
    assert_int_equal(r.read_spans(sp), 1);
    assert_int_equal(sp[0].iov_len, 4);
    assert_ptr_equal(sp[0].iov_base, s1 + 2);
    assert_memory_equal(sp[0].iov_base, want.data() + 8, 4);
}

// Write spans: the free bytes straddle the end; write into both and commit.
void test_write_spans_across_wrap(void**) {
    const RingLimits r_limits(4096, 16);
    RingBuffer r(r_limits);
    append_pattern(r, 0, 14);
    r.consume(10);  // tail 10, head 14: used 10..13, free 14..15 and 0..9
    struct iovec sp[2];
    assert_int_equal(r.write_spans(sp), 2);
    assert_int_equal(sp[0].iov_len, 2);
    assert_int_equal(sp[1].iov_len, 10);
    assert_ptr_equal(static_cast<uint8_t*>(sp[0].iov_base),
                     static_cast<uint8_t*>(sp[1].iov_base) + 14);

    // A partial write that crosses the wrap: 2 + 3 bytes, commit 5.
    std::vector<uint8_t> more = pattern(14, 12);
    std::memcpy(sp[0].iov_base, more.data(), 2);
    std::memcpy(sp[1].iov_base, more.data() + 2, 3);
    r.commit(5);
    assert_int_equal(r.size(), 9);
    assert_true(peek_all(r) == pattern(10, 9));

    // The rest of the free space is one span (indices 3..9); fill it.
    assert_int_equal(r.write_spans(sp), 1);
    assert_int_equal(sp[0].iov_len, 7);
    std::memcpy(sp[0].iov_base, more.data() + 5, 7);
    r.commit(7);
    assert_int_equal(r.size(), 16);
    assert_int_equal(r.free_space(), 0);
    assert_int_equal(r.write_spans(sp), 0);

    // Full ring: two read spans, 6 + 10, exact bytes.
    assert_int_equal(r.read_spans(sp), 2);
    assert_int_equal(sp[0].iov_len, 6);
    assert_int_equal(sp[1].iov_len, 10);
    assert_true(span_bytes(r) == pattern(10, 16));
    assert_true(peek_all(r) == pattern(10, 16));
}

// The same with the counters about to overflow 32 bits: the masks must not
// care.
void test_spans_across_counter_overflow(void**) {
    const RingLimits r_limits(4096, 16);
    RingBuffer r(r_limits);
    r.set_counters_for_test(0xFFFFFFFAu);  // index 10 of 16
    append_pattern(r, 0, 12);               // head wraps past 2^32
    assert_int_equal(r.size(), 12);
    struct iovec sp[2];
    assert_int_equal(r.read_spans(sp), 2);
    assert_int_equal(sp[0].iov_len, 6);
    assert_int_equal(sp[1].iov_len, 6);
    assert_true(span_bytes(r) == pattern(0, 12));
    assert_int_equal(r.write_spans(sp), 1);
    assert_int_equal(sp[0].iov_len, 4);
    r.consume(7);
    assert_int_equal(r.size(), 5);
    assert_true(peek_all(r) == pattern(7, 5));
    append_pattern(r, 12, 11);
    assert_int_equal(r.size(), 16);
    assert_int_equal(r.capacity(), 16);
    assert_true(peek_all(r) == pattern(7, 16));
    assert_true(span_bytes(r) == pattern(7, 16));
}

// Growth doubles the capacity and keeps every byte in order.
void test_growth_preserves_content(void**) {
    const RingLimits r_limits(1u << 20, 16);
    RingBuffer r(r_limits);
    uint32_t written = 0;
    uint32_t expected_cap = 16;
    while (written < 5000) {
        size_t n = 1 + (written % 37);
        append_pattern(r, written, n);
        written += static_cast<uint32_t>(n);
        while (expected_cap < written) expected_cap *= 2;
        assert_int_equal(r.capacity(), expected_cap);
    }
    assert_int_equal(r.size(), written);
    assert_true(peek_all(r) == pattern(0, written));
    assert_true(span_bytes(r) == pattern(0, written));
}

// Growth while the bytes wrap: the old layout (split at the old end) must
// become the new one (the oldest byte at tail & (new_cap - 1)).
void grow_while_wrapped(uint32_t start) {
    const RingLimits r_limits(1u << 20, 16);
    RingBuffer r(r_limits);
    r.set_counters_for_test(start);
    append_pattern(r, 0, 16);
    r.consume(10);
    append_pattern(r, 16, 8);  // 14 bytes, wrapped in 16
    struct iovec sp[2];
    assert_int_equal(r.capacity(), 16);
    assert_int_equal(r.size(), 14);
    if ((start + 10) % 16 > 2) assert_int_equal(r.read_spans(sp), 2);

    // Needs 24: grows to 32 in one step.
    append_pattern(r, 24, 10);
    assert_int_equal(r.capacity(), 32);
    assert_int_equal(r.size(), 24);
    assert_true(peek_all(r) == pattern(10, 24));
    assert_true(span_bytes(r) == pattern(10, 24));

    // Needs 24 + 100 = 124: grows to 128 in one call.
    append_pattern(r, 34, 100);
    assert_int_equal(r.capacity(), 128);
    assert_int_equal(r.size(), 124);
    assert_true(peek_all(r) == pattern(10, 124));
    assert_true(span_bytes(r) == pattern(10, 124));

    // The ring still works after growth: consume, wrap, append.
    r.consume(120);
    append_pattern(r, 134, 120);
    assert_int_equal(r.capacity(), 128);
    assert_true(peek_all(r) == pattern(130, 124));
    assert_true(span_bytes(r) == pattern(130, 124));
}

void test_growth_while_wrapped(void**) {
    grow_while_wrapped(0);
    grow_while_wrapped(5);
    grow_while_wrapped(0xFFFFFFF0u);  // wrapped in 16 and again in 32
    grow_while_wrapped(0xFFFFFFF0u + 8);  // not wrapped in 16 (index 2)
    grow_while_wrapped(0xFFFFFF00u);
    grow_while_wrapped(0x7FFFFFFEu);
}

// Growth through reserve() and then write_spans/commit (the readv path).
void test_reserve_then_write_spans(void**) {
    const RingLimits r_limits(1u << 16, 8);
    RingBuffer r(r_limits);
    r.set_counters_for_test(0xFFFFFFF8u);
    append_pattern(r, 0, 6);
    r.consume(4);  // 2 bytes at counters 0xFFFFFFFC..0xFFFFFFFD
    assert_true(r.reserve(100));
    assert_int_equal(r.capacity(), 128);
    assert_int_equal(r.free_space(), 126);
    struct iovec sp[2];
    int cnt = r.write_spans(sp);
    size_t total = 0;
    std::vector<uint8_t> more = pattern(6, 126);
    for (int i = 0; i < cnt; ++i) {
        std::memcpy(sp[i].iov_base, more.data() + total, sp[i].iov_len);
        total += sp[i].iov_len;
    }
    assert_int_equal(total, 126);
    r.commit(total);
    assert_int_equal(r.size(), 128);
    assert_true(peek_all(r) == pattern(4, 128));
    assert_true(span_bytes(r) == pattern(4, 128));
}

// The cap: reserve/append fail past max_bytes and leave the ring unchanged.
void test_max_bytes_cap(void**) {
    const RingLimits r_limits(100, 16);
    RingBuffer r(r_limits);
    append_pattern(r, 0, 100);
    assert_int_equal(r.size(), 100);
    assert_int_equal(r.capacity(), 128);

    uint8_t x = 0x5A;
    assert_false(r.append(&x, 1));
    assert_false(r.reserve(1));
    assert_false(r.reserve(SIZE_MAX));
    assert_false(r.reserve((size_t{1} << 32) + 1));  // no 32-bit truncation
    assert_int_equal(r.size(), 100);
    assert_int_equal(r.capacity(), 128);
    assert_true(peek_all(r) == pattern(0, 100));

    r.consume(50);
    assert_true(r.reserve(50));
    assert_false(r.reserve(51));
    std::vector<uint8_t> big = pattern(100, 51);
    assert_false(r.append(big.data(), 51));
    assert_int_equal(r.size(), 50);
    assert_true(peek_all(r) == pattern(50, 50));
    assert_true(r.append(big.data(), 50));
    assert_int_equal(r.size(), 100);
    assert_true(peek_all(r) == pattern(50, 100));
    assert_true(span_bytes(r) == pattern(50, 100));
    assert_int_equal(r.capacity(), 128);
}

// An empty ring refuses a single append larger than the cap.
void test_max_bytes_cap_on_empty_ring(void**) {
    const RingLimits r_limits(1000, 16);
    RingBuffer r(r_limits);
    std::vector<uint8_t> v = pattern(0, 1001);
    assert_false(r.append(v.data(), v.size()));
    assert_true(r.empty());
    assert_int_equal(r.capacity(), 0);  // nothing allocated for a refusal
    assert_true(r.append(v.data(), 1000));
    assert_int_equal(r.size(), 1000);
    assert_int_equal(r.capacity(), 1024);
}

// The storage never grows beyond max_bytes rounded up to a power of two,
// even when the initial capacity asks for more.
void test_capacity_bounded_by_max_bytes(void**) {
    const RingLimits r_limits(10, 1024);
    RingBuffer r(r_limits);
    uint8_t x = 1;
    assert_true(r.append(&x, 1));
    assert_int_equal(r.capacity(), 16);

    const RingLimits p_limits(64, 1024);
    RingBuffer p(p_limits);
    assert_true(p.append(&x, 1));
    assert_int_equal(p.capacity(), 64);

    // max_bytes 0 is treated as 1, above kMaxCapacity as kMaxCapacity.
    const RingLimits z_limits(0, 16);
    RingBuffer z(z_limits);
    assert_int_equal(z.max_bytes(), 1);
    assert_true(z.append(&x, 1));
    assert_false(z.append(&x, 1));
    const RingLimits huge_limits(0xFFFFFFFFu, 16);
    RingBuffer huge(huge_limits);
    assert_int_equal(huge.max_bytes(), RingBuffer::kMaxCapacity);
}

// max_bytes is "the most the ring may ever hold". With a max_bytes that is
// not a power of two the storage is larger than the cap; the free bytes
// offered to readv must still not take the ring past max_bytes. (This
// failed at first with 38 offered: a readv could commit 128 bytes into a
// ring capped at 100, after which reserve()'s `max_bytes_ - size()` wrapped
// around and stopped refusing.)
void test_write_spans_respect_max_bytes(void**) {
    const RingLimits r_limits(100, 16);
    RingBuffer r(r_limits);
    append_pattern(r, 0, 90);
    assert_int_equal(r.capacity(), 128);
    struct iovec sp[2];
    int cnt = r.write_spans(sp);
    size_t total = 0;
    for (int i = 0; i < cnt; ++i) total += sp[i].iov_len;
    // Exactly the 10 bytes the cap allows.
    assert_int_equal(total, 10);
    std::vector<uint8_t> more = pattern(90, 10);
    std::memcpy(sp[0].iov_base, more.data(), sp[0].iov_len);
    if (cnt == 2) std::memcpy(sp[1].iov_base, more.data() + sp[0].iov_len, sp[1].iov_len);
    r.commit(total);
    assert_int_equal(r.size(), 100);
    assert_int_equal(r.write_spans(sp), 0);
    assert_false(r.reserve(1));
    uint8_t x = 1;
    assert_false(r.append(&x, 1));
    assert_true(peek_all(r) == pattern(0, 100));

    // The same across the wrap: 60 consumed, 60 free under the cap, of
    // which 28 at the end of storage and 32 at its start.
    r.consume(60);
    cnt = r.write_spans(sp);
    assert_int_equal(cnt, 2);
    assert_int_equal(sp[0].iov_len, 28);
    assert_int_equal(sp[1].iov_len, 32);
    // Under the cap and within the storage: one span.
    r.consume(40);
    r.set_counters_for_test(0);
    assert_int_equal(r.write_spans(sp), 1);
    assert_int_equal(sp[0].iov_len, 100);
}

// release() frees only an empty ring; afterwards the ring starts over at
// its initial capacity and keeps working from the same counters.
void test_release_only_when_empty(void**) {
    const RingLimits r_limits(4096, 16);
    RingBuffer r(r_limits);
    append_pattern(r, 0, 40);
    assert_int_equal(r.capacity(), 64);
    assert_false(r.release());
    assert_int_equal(r.capacity(), 64);
    assert_true(peek_all(r) == pattern(0, 40));

    r.consume(39);
    assert_false(r.release());
    assert_int_equal(r.size(), 1);
    r.consume(1);
    assert_true(r.release());
    assert_int_equal(r.capacity(), 0);
    assert_int_equal(r.free_space(), 0);
    assert_true(r.empty());
    struct iovec sp[2];
    assert_int_equal(r.read_spans(sp), 0);
    assert_int_equal(r.write_spans(sp), 0);

    // Counters are at 40 now; the next storage is the size released (64,
    // not the initial 16: see test_regrow_after_release), so the bytes land
    // at index 40 & 63 = 40 and run on to 63 without wrapping.
    append_pattern(r, 100, 30);
    assert_int_equal(r.capacity(), 64);
    assert_int_equal(r.read_spans(sp), 2);
    assert_int_equal(sp[0].iov_len, 24);
    assert_int_equal(sp[1].iov_len, 6);
    assert_true(span_bytes(r) == pattern(100, 30));
    assert_false(r.release());
}

// contiguous() points into the ring when the range does not straddle the
// end, and is nullptr when it does or when it is out of range.
void test_contiguous(void**) {
    const RingLimits r_limits(4096, 16);
    RingBuffer r(r_limits);
    append_pattern(r, 0, 10);
    r.consume(10);
    append_pattern(r, 10, 12);  // indices 10..15, then 0..5
    std::vector<uint8_t> want = pattern(10, 12);

    const uint8_t* p = r.contiguous(0, 6);
    assert_non_null(p);
    assert_memory_equal(p, want.data(), 6);
    assert_null(r.contiguous(0, 7));
    assert_null(r.contiguous(5, 2));
    assert_null(r.contiguous(0, 12));
    const uint8_t* q = r.contiguous(6, 6);
    assert_non_null(q);
    assert_memory_equal(q, want.data() + 6, 6);
    assert_ptr_equal(p, q + 10);
    const uint8_t* m = r.contiguous(7, 3);
    assert_ptr_equal(m, q + 1);
    assert_memory_equal(m, want.data() + 7, 3);
    const uint8_t* one = r.contiguous(5, 1);
    assert_ptr_equal(one, p + 5);

    // Out of range.
    assert_null(r.contiguous(0, 13));
    assert_null(r.contiguous(12, 1));
    assert_null(r.contiguous(13, 0));
    assert_null(r.contiguous(SIZE_MAX, 1));
    assert_null(r.contiguous(1, SIZE_MAX));
}

// A zero-byte append is a no-op in every state: on a ring with no storage
// yet (data_ is null), after release() with the counters elsewhere, and with
// a null source pointer (an empty vector's data()). Under UBSan this checks
// that no null pointer reaches memcpy.
void test_zero_length_append(void**) {
    uint8_t x = 7;
    const RingLimits fresh_limits(4096, 16);
    RingBuffer fresh(fresh_limits);
    assert_true(fresh.append(&x, 0));
    assert_true(fresh.empty());
    assert_int_equal(fresh.capacity(), 0);

    const RingLimits r_limits(4096, 16);
    RingBuffer r(r_limits);
    r.set_counters_for_test(0xFFFFFF00u);
    assert_true(r.append(&x, 0));
    assert_true(r.empty());
    r.commit(0);
    r.consume(0);
    assert_true(r.empty());
    assert_true(r.append(&x, 1));
    assert_int_equal(r.size(), 1);

    std::vector<uint8_t> none;
    assert_true(r.append(none.data(), 0));
    assert_int_equal(r.size(), 1);
    r.consume(1);
    assert_true(r.release());
    assert_true(r.append(none.data(), 0));
    assert_true(r.empty());
}

// Out of memory (RLIMIT_AS lowered, see mem_limit.h): growth fails,
// reserve() returns false and the ring is unchanged, bytes and all; the
// first allocation of a lazy ring fails the same way.
void test_grow_out_of_memory(void**) {
    MEM_LIMIT_REQUIRED();
    const RingLimits r_limits(RingBuffer::kMaxCapacity, 16);
    RingBuffer r(r_limits);
    append_pattern(r, 0, 10);
    r.consume(4);
    append_pattern(r, 10, 8);  // 14 bytes, wrapped in 16
    std::vector<uint8_t> before = peek_all(r);
    bool grew;
    {
        MemLimit lim(32u << 20);
        assert_true(lim.ok());
        grew = r.reserve(256u << 20);
    }
    assert_false(grew);
    assert_int_equal(r.capacity(), 16);
    assert_int_equal(r.size(), 14);
    assert_true(peek_all(r) == before);
    assert_true(span_bytes(r) == before);
    // Still usable once memory is back.
    append_pattern(r, 18, 20);
    assert_int_equal(r.capacity(), 64);
    assert_true(peek_all(r) == pattern(4, 34));

    const RingLimits lazy_limits(RingBuffer::kMaxCapacity, 512u << 20);
    RingBuffer lazy(lazy_limits);
    bool allocated;
    {
        MemLimit lim(32u << 20);
        assert_true(lim.ok());
        allocated = lazy.reserve(1);
    }
    assert_false(allocated);
    assert_int_equal(lazy.capacity(), 0);
    assert_true(lazy.empty());
}

// ---- randomized comparison with a model -----------------------------------

// splitmix64: a fixed, portable PRNG (std distributions differ between
// standard libraries).
struct Rng {
    uint64_t s;
    uint64_t next() {
        uint64_t z = (s += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    // Uniform-ish in [0, n], n small.
    uint32_t upto(uint32_t n) { return static_cast<uint32_t>(next() % (uint64_t{n} + 1)); }
};

void check_against_model(const RingBuffer& r, const std::deque<uint8_t>& model) {
    assert_int_equal(r.size(), model.size());
    assert_true(r.size() <= r.max_bytes());
    assert_true(r.capacity() == 0 || is_pow2(r.capacity()));
    assert_true(r.size() <= r.capacity());
    assert_int_equal(r.free_space(), r.capacity() - r.size());
    std::vector<uint8_t> got = span_bytes(r);
    assert_int_equal(got.size(), model.size());
    assert_true(std::equal(got.begin(), got.end(), model.begin()));
}

void run_model(uint64_t seed, uint32_t start, uint32_t max_bytes, uint32_t initial, int steps) {
    const RingLimits r_limits(max_bytes, initial);
    RingBuffer r(r_limits);
    r.set_counters_for_test(start);
    std::deque<uint8_t> model;
    Rng rng{seed};
    uint32_t next_byte = 0;  // stream position of the next byte produced
    uint64_t moved = 0;
    std::vector<uint8_t> buf;

    for (int step = 0; step < steps; ++step) {
        uint32_t op = rng.upto(99);
        uint32_t size = r.size();
        if (op < 30) {  // append
            uint32_t n = rng.upto(op < 3 ? max_bytes + 10 : max_bytes / 8);
            // A zero-length append to a ring without storage has its own
            // test (test_zero_length_append); keep it out of here so that
            // this test runs to the end under UBSan whatever that one finds.
            if (n == 0 && r.capacity() == 0) n = 1;
            buf = pattern(next_byte, n);
            bool fits = size + n <= max_bytes;
            uint32_t cap_before = r.capacity();
            if (op % 2 == 0) {
                assert_int_equal(r.append(buf.data(), n), fits);
            } else {
                // The same bytes as up to three parts (a frame's header,
                // head and data), some empty, small and large alike.
                uint32_t a = rng.upto(n), b = rng.upto(n - a);
                const struct iovec parts[3] = {{buf.data(), a},
                                               {buf.data() + a, b},
                                               {buf.data() + a + b, n - a - b}};
                assert_int_equal(r.append_parts(parts, 3), fits);
            }
            if (fits) {
                model.insert(model.end(), buf.begin(), buf.end());
                next_byte += n;
                moved += n;
            } else {
                assert_int_equal(r.capacity(), cap_before);
            }
        } else if (op < 50) {  // reserve + write spans + partial commit
            uint32_t want = rng.upto(max_bytes / 4);
            bool fits = size + want <= max_bytes;
            assert_int_equal(r.reserve(want), fits);
            if (fits) assert_true(r.free_space() >= want);
            struct iovec sp[2];
            int cnt = r.write_spans(sp);
            size_t total = 0;
            for (int i = 0; i < cnt; ++i) {
                assert_true(sp[i].iov_len > 0);
                total += sp[i].iov_len;
            }
            uint32_t allowed = max_bytes - r.size();
            assert_int_equal(total, r.free_space() < allowed ? r.free_space() : allowed);
            if (cnt == 2) assert_ptr_equal(sp[0].iov_base, static_cast<uint8_t*>(sp[1].iov_base) +
                                                               (r.capacity() - sp[0].iov_len));
            uint32_t k = rng.upto(static_cast<uint32_t>(total));
            buf = pattern(next_byte, k);
            size_t done = 0;
            for (int i = 0; i < cnt && done < k; ++i) {
                size_t part = sp[i].iov_len < k - done ? sp[i].iov_len : k - done;
                std::memcpy(sp[i].iov_base, buf.data() + done, part);
                done += part;
            }
            r.commit(k);
            model.insert(model.end(), buf.begin(), buf.end());
            next_byte += k;
            moved += k;
        } else if (op < 75) {  // consume
            uint32_t n = rng.upto(size);
            r.consume(n);
            model.erase(model.begin(), model.begin() + n);
        } else if (op < 88) {  // peek
            uint32_t off = rng.upto(size + 2);
            uint32_t n = rng.upto(size + 2);
            buf.assign(n, 0xEE);
            bool ok = off <= size && n <= size - off;
            assert_int_equal(r.peek(buf.data(), off, n), ok);
            if (ok) {
                assert_true(std::equal(buf.begin(), buf.end(), model.begin() + off));
            } else {
                for (uint8_t b : buf) assert_int_equal(b, 0xEE);
            }
        } else if (op < 96) {  // contiguous
            uint32_t off = rng.upto(size);
            uint32_t n = rng.upto(size - off);
            const uint8_t* p = r.contiguous(off, n);
            if (n != 0) {
                struct iovec sp[2];
                int cnt = r.read_spans(sp);
                bool straddles = cnt == 2 && off < sp[0].iov_len && off + n > sp[0].iov_len;
                if (straddles) {
                    assert_null(p);
                } else {
                    assert_non_null(p);
                    assert_true(std::equal(p, p + n, model.begin() + off));
                }
            }
        } else {  // release
            uint32_t cap_before = r.capacity();
            bool was_empty = r.empty();
            assert_int_equal(r.release(), was_empty);
            assert_int_equal(r.capacity(), was_empty ? 0 : cap_before);
        }
        check_against_model(r, model);
    }
    // The run moved far more bytes than the distance to the counter wrap.
    assert_true(moved > 0x100);
}

void test_model_randomized(void**) {
    const uint32_t starts[] = {0u, 0xFFFFFF00u, 0xFFFFFFF0u, 0xFFFFFFFFu, 0x7FFFFFF0u, 0x80000000u};
    const uint64_t seeds[] = {1, 2, 3, 0xC0FFEE};
    for (uint32_t start : starts)
        for (uint64_t seed : seeds) {
            run_model(seed, start, 256, 4, 6000);
            run_model(seed * 7 + 1, start, 4096, 16, 3000);
            run_model(seed * 13 + 5, start, 1000, 64, 4000);  // cap below the storage
        }
}

// The budget is charged the storage a ring holds, both storages while it
// grows, and given everything back when the ring is released or destroyed;
// a growth the budget refuses fails like running out of memory and leaves
// the ring as it was.
void test_budget(void**) {
    MemoryBudget budget(10000);
    {
        const RingLimits r_limits(1u << 20, 1024, &budget);
        RingBuffer r(r_limits);
        assert_int_equal(budget.used(), 0);
        append_pattern(r, 0, 100);
        assert_int_equal(budget.used(), 1024);
        append_pattern(r, 100, 3000);  // 1024 -> 4096: both held while copying
        assert_int_equal(r.capacity(), 4096);
        assert_int_equal(budget.used(), 4096);
        assert_int_equal(budget.peak(), 4096 + 1024);
        // 8192 would need 4096 + 8192 at once: refused, nothing changes.
        std::vector<uint8_t> more = pattern(3100, 2000);
        assert_false(r.append(more.data(), more.size()));
        assert_int_equal(r.capacity(), 4096);
        assert_int_equal(r.size(), 3100);
        assert_int_equal(budget.used(), 4096);
        assert_int_equal(budget.refusals(), 1);
        assert_true(peek_all(r) == pattern(0, 3100));
        r.consume(3100);
        assert_true(r.release());
        assert_int_equal(budget.used(), 0);
        append_pattern(r, 0, 10);  // at once the size it had: 4096
        assert_int_equal(budget.used(), 4096);
    }
    assert_int_equal(budget.used(), 0);
}

// A released ring comes back at the capacity it had (at most kRegrowMax),
// in one allocation: no doubling from the initial capacity, no copies.
void test_regrow_after_release(void**) {
    MemoryBudget budget;
    const RingLimits r_limits(1u << 22, 1024, &budget);
    RingBuffer r(r_limits);
    append_pattern(r, 0, 70000);  // 1024 -> ... -> 131072
    assert_int_equal(r.capacity(), 131072);
    r.consume(70000);
    assert_true(r.release());
    uint64_t peak_before = budget.peak();
    append_pattern(r, 1, 10);
    assert_int_equal(r.capacity(), 131072);
    append_pattern(r, 2, 70000);  // fits: no growth
    assert_int_equal(r.capacity(), 131072);
    assert_int_equal(budget.peak(), peak_before);  // one storage at a time
    // A burst beyond kRegrowMax is not remembered whole.
    append_pattern(r, 3, 900000);
    assert_int_equal(r.capacity(), 1u << 20);
    r.consume(r.size());
    assert_true(r.release());
    append_pattern(r, 4, 10);
    assert_int_equal(r.capacity(), RingBuffer::kRegrowMax);
}

// truncate keeps the oldest bytes; shrink_to_fit moves them into the
// smallest storage that holds them (also when they wrap) and gives the
// difference back to the budget.
void test_truncate_and_shrink(void**) {
    MemoryBudget budget;
    const RingLimits r_limits(1u << 20, 1024, &budget);
    RingBuffer r(r_limits);
    r.set_counters_for_test(0xFFFFFF00u);
    append_pattern(r, 0, 60000);  // 65536 bytes of storage
    assert_int_equal(r.capacity(), 65536);
    r.consume(59000);  // the oldest byte near the end of the storage
    append_pattern(r, 60000, 5000);
    assert_int_equal(r.size(), 6000);
    r.truncate(1500);
    assert_int_equal(r.size(), 1500);
    assert_true(peek_all(r) == pattern(59000, 1500));
    assert_true(r.shrink_to_fit(3000));  // room for 3000 more: 8192
    assert_int_equal(r.capacity(), 8192);
    assert_true(span_bytes(r) == pattern(59000, 1500));
    assert_false(r.shrink_to_fit(10000));  // would grow: no
    assert_true(r.shrink_to_fit());
    assert_int_equal(r.capacity(), 2048);
    assert_int_equal(budget.used(), 2048);
    assert_true(span_bytes(r) == pattern(59000, 1500));
    assert_false(r.shrink_to_fit());  // already the smallest
    r.truncate(5000);                 // more than it holds: nothing changes
    assert_int_equal(r.size(), 1500);
    r.truncate(0);
    assert_true(r.shrink_to_fit(100));  // empty, spare wanted: the initial capacity
    assert_int_equal(r.capacity(), 1024);
    assert_false(r.shrink_to_fit(100));
    assert_true(r.shrink_to_fit());  // empty: released
    assert_int_equal(r.capacity(), 0);
    assert_int_equal(budget.used(), 0);
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lazy_allocation),
        cmocka_unit_test(test_initial_capacity_rounded_up),
        cmocka_unit_test(test_append_peek_consume),
        cmocka_unit_test(test_read_spans_across_wrap),
        cmocka_unit_test(test_write_spans_across_wrap),
        cmocka_unit_test(test_spans_across_counter_overflow),
        cmocka_unit_test(test_growth_preserves_content),
        cmocka_unit_test(test_growth_while_wrapped),
        cmocka_unit_test(test_reserve_then_write_spans),
        cmocka_unit_test(test_max_bytes_cap),
        cmocka_unit_test(test_max_bytes_cap_on_empty_ring),
        cmocka_unit_test(test_capacity_bounded_by_max_bytes),
        cmocka_unit_test(test_write_spans_respect_max_bytes),
        cmocka_unit_test(test_release_only_when_empty),
        cmocka_unit_test(test_contiguous),
        cmocka_unit_test(test_grow_out_of_memory),
        cmocka_unit_test(test_model_randomized),
        cmocka_unit_test(test_budget),
        cmocka_unit_test(test_truncate_and_shrink),
        cmocka_unit_test(test_regrow_after_release),
        // Last: under UBSan a failure here aborts the binary.
        cmocka_unit_test(test_zero_length_append),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
