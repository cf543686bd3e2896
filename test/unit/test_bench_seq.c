/*
 * test_bench_seq.c - the check p2pBench makes on every delivery
 * (test/bench/bench_seq.c): the payload header layout, and that a loss, a
 * duplicate or a reorder is always caught, including a loss at the tail,
 * which no later arrival reveals. The checker is run against a simple
 * model on streams with one fault injected at every position.
 * Links bench_seq.c alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "../bench/bench_seq.h"

/* The header is [u32 source][u64 sequence], little-endian, as relaybench
 * writes it. */
static void test_payload_layout(void **state)
{
    (void)state;
    uint8_t p[16];
    memset(p, 0xee, sizeof p);
    bench_payload_stamp(p, 0x04030201u, UINT64_C(0x0c0b0a0908070605));
    const uint8_t want[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 0xee, 0xee, 0xee, 0xee};
    assert_memory_equal(p, want, sizeof want);
    uint32_t source = 0;
    uint64_t seq = 0;
    assert_int_equal(bench_payload_read(p, sizeof p, &source, &seq), 0);
    assert_int_equal(source, 0x04030201u);
    assert_true(seq == UINT64_C(0x0c0b0a0908070605));
}

static void test_payload_too_short(void **state)
{
    (void)state;
    uint8_t p[BENCH_PAYLOAD_HEADER] = {0};
    uint32_t source;
    uint64_t seq;
    assert_int_equal(bench_payload_read(p, BENCH_PAYLOAD_HEADER - 1, &source, &seq), -1);
    assert_int_equal(bench_payload_read(p, BENCH_PAYLOAD_HEADER, &source, &seq), 0);
}

static void test_in_order_is_clean(void **state)
{
    (void)state;
    struct bench_seq s = {0};
    for (uint64_t i = 0; i < 1000; ++i)
        assert_int_equal(bench_seq_accept(&s, i), BENCH_SEQ_IN_ORDER);
    assert_true(bench_seq_disorder(&s) == 0);
    assert_true(bench_seq_missing(&s, 1000) == 0);
    assert_true(s.received == 1000);
}

enum fault { DROP, DUPLICATE, SWAP, DROP_TAIL };

/* Feeds 0..n-1 with one fault at position at, and returns whether the
 * checker flags the stream (disorder or missing). */
static int caught(enum fault f, uint64_t n, uint64_t at)
{
    struct bench_seq s = {0};
    for (uint64_t i = 0; i < n; ++i) {
        if (f == DROP && i == at)
            continue;
        if (f == DROP_TAIL && i >= at)
            break;
        if (f == SWAP && i == at && i + 1 < n) {
            bench_seq_accept(&s, i + 1);
            bench_seq_accept(&s, i);
            ++i;
            continue;
        }
        bench_seq_accept(&s, i);
        if (f == DUPLICATE && i == at)
            bench_seq_accept(&s, i);
    }
    return bench_seq_disorder(&s) != 0 || bench_seq_missing(&s, n) != 0;
}

static void test_every_fault_caught_everywhere(void **state)
{
    (void)state;
    const uint64_t n = 64;
    for (uint64_t at = 0; at < n; ++at) {
        assert_true(caught(DROP, n, at));
        assert_true(caught(DUPLICATE, n, at));
        assert_true(caught(DROP_TAIL, n, at));
        if (at + 1 < n)
            assert_true(caught(SWAP, n, at));
    }
    /* and the control: no fault, nothing flagged */
    assert_false(caught(DROP_TAIL, n, n));
}

/* A gap is classified as such, and what it skipped counts as missing even
 * if it arrives later (late = reordered, still a failure). */
static void test_gap_then_late(void **state)
{
    (void)state;
    struct bench_seq s = {0};
    assert_int_equal(bench_seq_accept(&s, 0), BENCH_SEQ_IN_ORDER);
    assert_int_equal(bench_seq_accept(&s, 3), BENCH_SEQ_GAP);
    assert_true(s.skipped == 2);
    assert_int_equal(bench_seq_accept(&s, 4), BENCH_SEQ_IN_ORDER);
    assert_int_equal(bench_seq_accept(&s, 1), BENCH_SEQ_OLD);
    assert_int_equal(bench_seq_accept(&s, 2), BENCH_SEQ_OLD);
    assert_true(bench_seq_disorder(&s) == 3);
    assert_true(bench_seq_missing(&s, 5) == 2);
}

/* Only the tail is lost: no arrival is out of order, but the count is. */
static void test_tail_loss_only_missing(void **state)
{
    (void)state;
    struct bench_seq s = {0};
    for (uint64_t i = 0; i < 10; ++i)
        bench_seq_accept(&s, i);
    assert_true(bench_seq_disorder(&s) == 0);
    assert_true(bench_seq_missing(&s, 13) == 3);
    assert_true(bench_seq_missing(&s, 10) == 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_payload_layout),
        cmocka_unit_test(test_payload_too_short),
        cmocka_unit_test(test_in_order_is_clean),
        cmocka_unit_test(test_every_fault_caught_everywhere),
        cmocka_unit_test(test_gap_then_late),
        cmocka_unit_test(test_tail_loss_only_missing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
