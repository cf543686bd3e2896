/*
 * test_v1_limits.c - server limits as a v1 client sees them: --max-subs
 * (a SUBSCRIBE beyond the limit gets 82 00; re-subscribing and unsubscribing
 * work at the limit) and --max-conns (connections beyond the limit are
 * closed at once, and accepted again once below it).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "protocol.h"

static const char *const max_subs_3[] = {"--max-subs", "3", NULL};
static const char *const max_conns_3[] = {"--max-conns", "3", NULL};

static void test_max_subs(void **state)
{
    enum { PUBS = 5 };
    int pubs[PUBS];
    tc_connect_registered(tc_port(state), pubs, PUBS, "p");
    int s = tc_connect(tc_port(state));
    tc_subscribe(s, "p0", 1);
    tc_subscribe(s, "p1", 1);
    tc_subscribe(s, "p2", 1);
    /* The fourth: v1 status 0, and no subscription is made. */
    tc_subscribe(s, "p3", 0);
    tc_send_data(pubs[3], "no", 2, 1);
    tc_expect_nothing_pending(s);
    /* Subscribing again to one it has is not a new subscription. */
    tc_subscribe(s, "p0", 1);
    tc_send_data(pubs[0], "yes", 3, 1);
    tc_expect_data(s, "yes", 3);
    tc_expect_nothing_pending(s);
    /* Unsubscribing frees a slot. */
    tc_unsubscribe(s, "p1");
    tc_subscribe(s, "p4", 1);
    tc_subscribe(s, "p3", 0);
    tc_send_data(pubs[4], "p4", 2, 1);
    tc_expect_data(s, "p4", 2);
    /* The limit is per connection: another connection has its own. */
    int s2 = tc_connect(tc_port(state));
    tc_subscribe(s2, "p1", 1);
    tc_subscribe(s2, "p2", 1);
    tc_subscribe(s2, "p3", 1);
    tc_subscribe(s2, "p4", 0);
    assert_true(tc_is_open(s));
    assert_true(tc_is_open(s2));
    for (int i = 0; i < PUBS; i++)
        tc_close(pubs[i]);
    tc_close(s);
    tc_close(s2);
}

/* UNREGISTER cancels the subscriptions, and frees the slots with them. */
static void test_max_subs_freed_by_unregister(void **state)
{
    int pubs[4];
    tc_connect_registered(tc_port(state), pubs, 4, "p");
    int s = tc_connect(tc_port(state));
    tc_subscribe(s, "p0", 1);
    tc_subscribe(s, "p1", 1);
    tc_subscribe(s, "p2", 1);
    tc_subscribe(s, "p3", 0);
    tc_unregister(s);
    tc_subscribe(s, "p3", 1);
    tc_send_data(pubs[3], "x", 1, 1);
    tc_expect_data(s, "x", 1);
    for (int i = 0; i < 4; i++)
        tc_close(pubs[i]);
    tc_close(s);
}

static void test_max_conns(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int c = tc_connect(tc_port(state));
    tc_register(a, "a", 1);
    assert_true(tc_is_open(b));
    assert_true(tc_is_open(c));
    /* The fourth is closed without a frame (the kernel accepts the TCP
     * connection; the server closes it). */
    int d = tc_connect(tc_port(state));
    tc_expect_closed(d, TC_WAIT_MS, 0);
    tc_close(d);
    /* The others are untouched. */
    tc_check_alive(b, "a", 1);
    /* Below the limit again, a new connection is served. */
    tc_close_and_wait(c);
    int e = tc_connect(tc_port(state));
    assert_true(tc_is_open(e));
    tc_close(a);
    tc_close(b);
    tc_close(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST_ARGS(test_max_subs, max_subs_3),
        TC_SERVER_TEST_ARGS(test_max_subs_freed_by_unregister, max_subs_3),
        TC_SERVER_TEST_ARGS(test_max_conns, max_conns_3),
    };
    return cmocka_run_group_tests_name("v1 limits", tests, NULL, NULL);
}
