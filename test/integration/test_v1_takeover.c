/*
 * test_v1_takeover.c - v1 REGISTER of an id held by another connection: the
 * new connection takes the id over (81 01) and the old holder is closed,
 * after its pending output has been flushed, without a frame of its own.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "protocol.h"

static void test_takeover_closes_old_holder(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    tc_register(a, "phone", 1);
    tc_register(b, "phone", 1);
    /* v1: no BYE, no frame at all, just the close. */
    tc_expect_closed(a, TC_WAIT_MS, 0);
    tc_check_alive(q, "phone", 1);
    assert_true(tc_is_open(b));
    tc_send_data(b, "x", 1, 1);
    tc_close(a);
    tc_close(b);
    tc_close(q);
}

/* Subscribers of the id receive from the new holder, once. */
static void test_takeover_new_holder_reaches_subscribers(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    tc_register(a, "cam", 1);
    tc_subscribe(s, "cam", 1);
    tc_send_data(a, "from a", 6, 1);
    tc_expect_data(s, "from a", 6);
    tc_register(b, "cam", 1);
    tc_expect_closed(a, TC_WAIT_MS, 0);
    tc_send_data(b, "from b", 6, 1);
    tc_expect_data(s, "from b", 6);
    tc_expect_nothing_pending(s);
    tc_close(a);
    tc_close(b);
    tc_close(s);
}

/* Output queued for the old holder before the takeover is delivered in full
 * before the close. 12 MB is more than the kernel buffers between server
 * and a client that does not read (tcp_wmem max + the receive window), so
 * part of it waits in the server: the server runs with --max-output 32 MiB
 * so that this is not a slow consumer. Nothing sent after the takeover
 * reaches the closing connection. */
enum { FLUSH_N = 200, FLUSH_LEN = 60 * 1024 };

static const char *const large_output[] = {"--max-output", "33554432", NULL};

static void test_takeover_flushes_pending_output(void **state)
{
    uint8_t *data = malloc(FLUSH_LEN);
    assert_non_null(data);
    int a = tc_connect(tc_port(state));
    int p = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    tc_register(a, "old", 1);
    tc_register(p, "pub", 1);
    tc_subscribe(a, "pub", 1);
    for (int i = 0; i < FLUSH_N; i++) {
        tc_fill_indexed(data, FLUSH_LEN, i);
        tc_send_data(p, data, FLUSH_LEN, 1);
    }
    tc_register(b, "old", 1);
    /* a is closing now: this one is not for it. */
    tc_send_data(p, "late", 4, 1);
    for (int i = 0; i < FLUSH_N; i++) {
        tc_fill_indexed(data, FLUSH_LEN, i);
        tc_expect_data(a, data, FLUSH_LEN);
    }
    tc_expect_closed(a, TC_WAIT_MS, 0);
    free(data);
    tc_close(a);
    tc_close(p);
    tc_close(b);
}

/* The connection taking over already held another id: that one is released
 * (offline), and it gets the new one. */
static void test_takeover_by_registered_connection(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    tc_register(a, "x", 1);
    tc_register(b, "w", 1);
    tc_register(b, "x", 1);
    tc_expect_closed(a, TC_WAIT_MS, 0);
    tc_check_alive(q, "w", 0);
    tc_check_alive(q, "x", 1);
    tc_close(a);
    tc_close(b);
    tc_close(q);
}

/* A chain of takeovers: each previous holder is closed, the last one holds
 * the id, and the id is online throughout. */
static void test_repeated_takeovers(void **state)
{
    enum { N = 5 };
    int fds[N];
    int q = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    for (int i = 0; i < N; i++) {
        fds[i] = tc_connect(tc_port(state));
        tc_register(fds[i], "hot", 1);
        if (i == 0)
            tc_subscribe(s, "hot", 1);
        if (i > 0)
            tc_expect_closed(fds[i - 1], TC_WAIT_MS, 0);
        tc_check_alive(q, "hot", 1);
    }
    tc_send_data(fds[N - 1], "last", 4, 1);
    tc_expect_data(s, "last", 4);
    tc_expect_nothing_pending(s);
    for (int i = 0; i < N; i++)
        tc_close(fds[i]);
    tc_close(q);
    tc_close(s);
}

/* The old holder's own subscriptions die with it: the new holder of the id
 * does not inherit them. */
static void test_takeover_does_not_transfer_subscriptions(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int p = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    tc_register(a, "dev", 1);
    tc_subscribe(a, "pub", 1);
    tc_register(b, "dev", 1);
    tc_expect_closed(a, TC_WAIT_MS, 0);
    tc_send_data(p, "m", 1, 1);
    tc_expect_nothing_pending(b);
    tc_close(a);
    tc_close(b);
    tc_close(p);
}

/* Unrelated connections are untouched by a takeover. */
static void test_takeover_leaves_others_alone(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int other = tc_connect(tc_port(state));
    tc_register(other, "bystander", 1);
    tc_register(a, "id", 1);
    tc_register(b, "id", 1);
    tc_expect_closed(a, TC_WAIT_MS, 0);
    assert_true(tc_is_open(other));
    tc_check_alive(other, "bystander", 1);
    tc_close(a);
    tc_close(b);
    tc_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_takeover_closes_old_holder),
        TC_SERVER_TEST(test_takeover_new_holder_reaches_subscribers),
        TC_SERVER_TEST_ARGS(test_takeover_flushes_pending_output, large_output),
        TC_SERVER_TEST(test_takeover_by_registered_connection),
        TC_SERVER_TEST(test_repeated_takeovers),
        TC_SERVER_TEST(test_takeover_does_not_transfer_subscriptions),
        TC_SERVER_TEST(test_takeover_leaves_others_alone),
    };
    return cmocka_run_group_tests_name("v1 takeover", tests, NULL, NULL);
}
