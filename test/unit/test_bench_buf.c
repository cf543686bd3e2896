/*
 * test_bench_buf.c - p2pBench's byte queue (test/bench/bench_buf.c) against
 * a simple model: a long pseudo-random run of appends and consumes of
 * every size, checking after each step that the bytes waiting are exactly
 * the model's, that the cap is never passed and that a refused reserve
 * changes nothing. Links bench_buf.c alone.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "../bench/bench_buf.h"

#define CAP 5000u

static uint32_t rng_state = 12345;

static uint32_t rnd(uint32_t below)
{
    rng_state = rng_state * 1103515245u + 12345u;
    return (rng_state >> 8) % below;
}

static void test_against_model(void **state)
{
    (void)state;
    struct bench_buf b = {0};
    static uint8_t model[CAP];
    size_t model_len = 0;
    uint8_t next = 0;
    for (int step = 0; step < 200000; ++step) {
        if (rnd(2) == 0) {
            size_t n = rnd(700);
            uint8_t *w = bench_buf_reserve(&b, n, CAP);
            if (model_len + n > CAP) {
                assert_null(w); /* refused past the cap, queue unchanged */
            } else {
                assert_non_null(w);
                for (size_t i = 0; i < n; ++i)
                    model[model_len + i] = w[i] = next++;
                bench_buf_commit(&b, n);
                model_len += n;
            }
        } else {
            size_t n = model_len ? rnd((uint32_t)model_len + 1) : 0;
            bench_buf_consume(&b, n);
            memmove(model, model + n, model_len - n);
            model_len -= n;
        }
        assert_int_equal(bench_buf_len(&b), model_len);
        if (model_len != 0)
            assert_memory_equal(bench_buf_bytes(&b), model, model_len);
        assert_true(b.cap <= 2 * CAP);
    }
    bench_buf_free(&b);
    assert_int_equal(bench_buf_len(&b), 0);
}

/* A queue never used owns nothing; appending nothing allocates nothing. */
static void test_empty_owns_nothing(void **state)
{
    (void)state;
    struct bench_buf b = {0};
    assert_int_equal(bench_buf_append(&b, "", 0, 10), 0);
    assert_null(b.data);
    assert_int_equal(bench_buf_append(&b, "abc", 3, 2), -1); /* over the cap */
    assert_null(b.data);
    assert_int_equal(bench_buf_append(&b, "abc", 3, 3), 0);
    assert_memory_equal(bench_buf_bytes(&b), "abc", 3);
    bench_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_against_model),
        cmocka_unit_test(test_empty_owns_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
