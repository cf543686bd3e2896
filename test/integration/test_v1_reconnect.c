/*
 * test_v1_reconnect.c - subscriptions name the device id, not the
 * publisher's connection: they survive the publisher disconnecting and
 * registering again from a new connection, unregistering and registering
 * again, and being taken over. (The original silently lost them.)
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

static void test_survives_publisher_reconnect(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    tc_send_data(p, "first", 5, 1);
    tc_expect_data(s, "first", 5);
    tc_close_and_wait(p);
    /* Offline meanwhile: nothing arrives, s is untouched. */
    tc_expect_nothing_pending(s);
    int p2 = tc_connect(tc_port(state));
    tc_register(p2, "pub", 1);
    tc_send_data(p2, "second", 6, 1);
    tc_expect_data(s, "second", 6);
    tc_expect_nothing_pending(s);
    tc_close(p2);
    tc_close(s);
}

static void test_survives_many_reconnects(void **state)
{
    int s1 = tc_connect(tc_port(state));
    int s2 = tc_connect(tc_port(state));
    int p = tc_connect(tc_port(state));
    char msg[16];
    tc_register(p, "pub", 1);
    tc_subscribe(s1, "pub", 1);
    tc_subscribe(s2, "pub", 1);
    for (int round = 0; round < 5; round++) {
        int n = snprintf(msg, sizeof msg, "round %d", round);
        tc_send_data(p, msg, (size_t)n, 1);
        tc_expect_data(s1, msg, (size_t)n);
        tc_expect_data(s2, msg, (size_t)n);
        tc_close_and_wait(p);
        p = tc_connect(tc_port(state));
        tc_register(p, "pub", 1);
    }
    tc_expect_nothing_pending(s1);
    tc_expect_nothing_pending(s2);
    tc_close(p);
    tc_close(s1);
    tc_close(s2);
}

static void test_survives_unregister_register(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    tc_unregister(p);
    tc_register(p, "pub", 1);
    tc_send_data(p, "again", 5, 1);
    tc_expect_data(s, "again", 5);
    /* The same from another connection while p is unregistered. */
    tc_unregister(p);
    int p2 = tc_connect(tc_port(state));
    tc_register(p2, "pub", 1);
    tc_send_data(p2, "other", 5, 1);
    tc_expect_data(s, "other", 5);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(p2);
    tc_close(s);
}

/* After a takeover each subscriber receives each frame exactly once. */
static void test_survives_takeover_once(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    int p2 = tc_connect(tc_port(state));
    tc_register(p2, "pub", 1);
    tc_expect_closed(p, TC_WAIT_MS, 0);
    tc_send_data(p2, "taken", 5, 1);
    tc_expect_data(s, "taken", 5);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(p2);
    tc_close(s);
}

/* The publisher moving to another id takes nothing along: subscribers of
 * the old id get nothing from it. */
static void test_publisher_changing_id(void **state)
{
    int p = tc_connect(tc_port(state));
    int s_old = tc_connect(tc_port(state));
    int s_new = tc_connect(tc_port(state));
    int holder = tc_connect(tc_port(state));
    tc_register(holder, "new", 1);
    tc_register(p, "old", 1);
    tc_subscribe(s_old, "old", 1);
    tc_subscribe(s_new, "new", 1);
    tc_unregister(holder);
    tc_register(p, "new", 1);
    tc_send_data(p, "moved", 5, 1);
    tc_expect_data(s_new, "moved", 5);
    tc_expect_nothing_pending(s_old);
    /* And the old id, registered anew elsewhere, reaches its subscriber. */
    int q = tc_connect(tc_port(state));
    tc_register(q, "old", 1);
    tc_send_data(q, "old again", 9, 1);
    tc_expect_data(s_old, "old again", 9);
    tc_expect_nothing_pending(s_new);
    tc_close(p);
    tc_close(s_old);
    tc_close(s_new);
    tc_close(holder);
    tc_close(q);
}

/* Subscribing again while the publisher is back (82 01) does not make a
 * second subscription. */
static void test_resubscribe_after_reconnect_delivers_once(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    tc_close_and_wait(p);
    p = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    tc_subscribe(s, "pub", 1);
    tc_send_data(p, "once", 4, 1);
    tc_expect_data(s, "once", 4);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_survives_publisher_reconnect),
        TC_SERVER_TEST(test_survives_many_reconnects),
        TC_SERVER_TEST(test_survives_unregister_register),
        TC_SERVER_TEST(test_survives_takeover_once),
        TC_SERVER_TEST(test_publisher_changing_id),
        TC_SERVER_TEST(test_resubscribe_after_reconnect_delivers_once),
    };
    return cmocka_run_group_tests_name("v1 reconnect", tests, NULL, NULL);
}
