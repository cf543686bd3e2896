/*
 * test_v1_unregister.c - v1 UNREGISTER (0x04): 84 01 always; releases the id
 * (without closing the connection) and cancels the connection's own
 * subscriptions.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "harness.h"
#include "protocol.h"

static void test_unregister_releases_id(void **state)
{
    int a = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    tc_register(a, "dev", 1);
    static const uint8_t req[] = {0, 0, 0, 1, 0x04};
    static const uint8_t rep[] = {0, 0, 0, 2, 0x84, 0x01};
    tc_send_raw(a, req, sizeof req);
    tc_expect_raw(a, rep, sizeof rep);
    tc_check_alive(q, "dev", 0);
    tc_subscribe(q, "dev", 0);
    tc_send_data(a, "x", 1, 0);
    /* The connection itself stays open. */
    assert_true(tc_is_open(a));
    tc_close(a);
    tc_close(q);
}

/* Another connection can take the released id; no takeover happens, the
 * old connection stays open. */
static void test_released_id_is_free(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    tc_register(a, "dev", 1);
    tc_unregister(a);
    tc_register(b, "dev", 1);
    assert_true(tc_is_open(a));
    tc_check_alive(a, "dev", 1);
    tc_close(a);
    tc_close(b);
}

static void test_unregister_when_not_registered(void **state)
{
    int a = tc_connect(tc_port(state));
    tc_unregister(a);
    tc_unregister(a);
    assert_true(tc_is_open(a));
    tc_close(a);
}

static void test_unregister_cancels_own_subscriptions(void **state)
{
    int p = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    tc_register(s, "sub", 1);
    tc_subscribe(s, "pub", 1);
    tc_unregister(s);
    tc_send_data(p, "x", 1, 1);
    tc_expect_nothing_pending(s);
    /* Registering again does not bring them back. */
    tc_register(s, "sub", 1);
    tc_send_data(p, "y", 1, 1);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

/* Also for a connection that never registered. */
static void test_unregister_cancels_subscriptions_without_id(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    tc_unregister(s);
    tc_send_data(p, "x", 1, 1);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

/* The subscribers of the unregistered id keep their subscriptions (they
 * name the id): the device registering again reaches them. */
static void test_unregister_keeps_subscribers(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    tc_unregister(p);
    tc_register(p, "pub", 1);
    tc_send_data(p, "back", 4, 1);
    tc_expect_data(s, "back", 4);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_unregister_releases_id),
        TC_SERVER_TEST(test_released_id_is_free),
        TC_SERVER_TEST(test_unregister_when_not_registered),
        TC_SERVER_TEST(test_unregister_cancels_own_subscriptions),
        TC_SERVER_TEST(test_unregister_cancels_subscriptions_without_id),
        TC_SERVER_TEST(test_unregister_keeps_subscribers),
    };
    return cmocka_run_group_tests_name("v1 UNREGISTER", tests, NULL, NULL);
}
