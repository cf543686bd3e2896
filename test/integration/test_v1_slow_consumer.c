/*
 * test_v1_slow_consumer.c - a subscriber that stops reading: once its
 * pending output would exceed --max-output it is disconnected (a v1 client
 * gets no frame about it), after receiving an intact, in-order prefix of
 * the data; the publisher and the other subscribers carry on.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "protocol.h"

static const char *const small_output[] = {"--max-output", "262144", NULL};

enum { LEN = 60 * 1024, FRAMES = 200 }; /* 12 MB: far beyond any buffering */

static void test_slow_subscriber_disconnected(void **state)
{
    uint8_t *data = malloc(LEN);
    uint8_t *got = malloc(LEN + 1);
    assert_non_null(data);
    assert_non_null(got);
    int p = tc_connect(tc_port(state));
    int fast = tc_connect(tc_port(state));
    int slow = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    tc_register(slow, "slow", 1);
    tc_subscribe(fast, "pub", 1);
    tc_subscribe(slow, "pub", 1);
    /* The fast subscriber and the publisher keep up; slow never reads. */
    for (int i = 0; i < FRAMES; i++) {
        tc_fill_indexed(data, LEN, i);
        tc_send_data(p, data, LEN, 1);
        tc_expect_data(fast, data, LEN);
    }
    tc_expect_nothing_pending(fast);
    tc_expect_nothing_pending(p);
    /* slow: an intact prefix of the frames, in order, then the close. */
    int n = 0;
    for (;;) {
        ssize_t r = tc_recv_frame(slow, got, LEN + 1, TC_WAIT_MS);
        if (r < 0)
            break;
        assert_true(n < FRAMES);
        tc_fill_indexed(data, LEN, n);
        assert_int_equal(r, LEN + 1);
        assert_int_equal(got[0], P2P_CMD_SEND);
        if (memcmp(got + 1, data, LEN) != 0)
            fail_msg("frame %d delivered to the slow consumer is corrupt", n);
        n++;
    }
    if (n >= FRAMES)
        fail_msg("the slow consumer received all %d frames: not disconnected", n);
    /* It is closed (tc_recv_frame saw EOF or a reset, not a timeout). */
    assert_int_equal(tc_is_open(slow), 0);
    /* Its id went with it. */
    tc_check_alive(p, "slow", 0);
    /* The publisher still reaches the fast one. */
    tc_send_data(p, "after", 5, 1);
    tc_expect_data(fast, "after", 5);
    free(data);
    free(got);
    tc_close(p);
    tc_close(fast);
    tc_close(slow);
}

/* Below the cap nothing happens: a subscriber that reads late, after less
 * than --max-output was queued, gets everything. */
static void test_late_reader_within_limit(void **state)
{
    enum { SMALL = 1000, COUNT = 100 }; /* 100 KB < 256 KiB */
    uint8_t data[SMALL];
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    for (int i = 0; i < COUNT; i++) {
        memset(data, i, sizeof data);
        tc_send_data(p, data, sizeof data, 1);
    }
    for (int i = 0; i < COUNT; i++) {
        memset(data, i, sizeof data);
        tc_expect_data(s, data, sizeof data);
    }
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST_ARGS(test_slow_subscriber_disconnected, small_output),
        TC_SERVER_TEST_ARGS(test_late_reader_within_limit, small_output),
    };
    return cmocka_run_group_tests_name("v1 slow consumer", tests, NULL, NULL);
}
