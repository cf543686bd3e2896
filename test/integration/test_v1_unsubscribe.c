/*
 * test_v1_unsubscribe.c - v1 UNSUBSCRIBE (0x05): always 85 01, idempotent;
 * it stops delivery from that id only.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "harness.h"
#include "protocol.h"

static void test_unsubscribe_stops_delivery(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    tc_send_data(p, "before", 6, 1);
    tc_expect_data(s, "before", 6);
    static const uint8_t req[] = {0, 0, 0, 4, 0x05, 'p', 'u', 'b'};
    static const uint8_t rep[] = {0, 0, 0, 2, 0x85, 0x01};
    tc_send_raw(s, req, sizeof req);
    tc_expect_raw(s, rep, sizeof rep);
    tc_send_data(p, "after", 5, 1);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

static void test_unsubscribe_is_idempotent(void **state)
{
    int p = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    /* Never subscribed, offline id, empty id: all 85 01. */
    tc_unsubscribe(s, "pub");
    tc_unsubscribe(s, "nobody");
    tc_send_cmd(s, P2P_CMD_UNSUBSCRIBE, NULL, 0);
    tc_expect_reply(s, P2P_CMD_UNSUBSCRIBE, 1);
    tc_subscribe(s, "pub", 1);
    tc_unsubscribe(s, "pub");
    tc_unsubscribe(s, "pub");
    tc_send_data(p, "x", 1, 1);
    tc_expect_nothing_pending(s);
    assert_true(tc_is_open(s));
    tc_close(p);
    tc_close(s);
}

static void test_unsubscribe_one_of_two(void **state)
{
    int p1 = tc_connect(tc_port(state));
    int p2 = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    tc_register(p1, "one", 1);
    tc_register(p2, "two", 1);
    tc_subscribe(s, "one", 1);
    tc_subscribe(s, "two", 1);
    tc_unsubscribe(s, "one");
    tc_send_data(p1, "1", 1, 1);
    tc_send_data(p2, "2", 1, 1);
    tc_expect_data(s, "2", 1);
    tc_expect_nothing_pending(s);
    tc_close(p1);
    tc_close(p2);
    tc_close(s);
}

/* Only the caller's subscription goes: other subscribers keep theirs. */
static void test_unsubscribe_leaves_other_subscribers(void **state)
{
    int p = tc_connect(tc_port(state));
    int s1 = tc_connect(tc_port(state));
    int s2 = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    tc_subscribe(s1, "pub", 1);
    tc_subscribe(s2, "pub", 1);
    tc_unsubscribe(s1, "pub");
    tc_send_data(p, "x", 1, 1);
    tc_expect_data(s2, "x", 1);
    tc_expect_nothing_pending(s1);
    tc_expect_nothing_pending(s2);
    tc_close(p);
    tc_close(s1);
    tc_close(s2);
}

static void test_resubscribe_after_unsubscribe(void **state)
{
    int p = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    for (int round = 0; round < 3; round++) {
        tc_subscribe(s, "pub", 1);
        tc_send_data(p, "on", 2, 1);
        tc_expect_data(s, "on", 2);
        tc_unsubscribe(s, "pub");
        tc_send_data(p, "off", 3, 1);
        tc_expect_nothing_pending(s);
    }
    tc_close(p);
    tc_close(s);
}

/* Unsubscribing while the device is offline still cancels the subscription:
 * the device coming back delivers nothing. */
static void test_unsubscribe_while_publisher_offline(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    tc_unregister(p);
    tc_unsubscribe(s, "pub");
    tc_register(p, "pub", 1);
    tc_send_data(p, "x", 1, 1);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

/* Ids are compared exactly: unsubscribing a prefix or a case variant does
 * nothing to the real subscription. */
static void test_unsubscribe_exact_id_only(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "Pub", &p, &s);
    tc_unsubscribe(s, "pub");
    tc_unsubscribe(s, "Pu");
    tc_unsubscribe(s, "Pub ");
    tc_send_data(p, "x", 1, 1);
    tc_expect_data(s, "x", 1);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_unsubscribe_stops_delivery),
        TC_SERVER_TEST(test_unsubscribe_is_idempotent),
        TC_SERVER_TEST(test_unsubscribe_one_of_two),
        TC_SERVER_TEST(test_unsubscribe_leaves_other_subscribers),
        TC_SERVER_TEST(test_resubscribe_after_unsubscribe),
        TC_SERVER_TEST(test_unsubscribe_while_publisher_offline),
        TC_SERVER_TEST(test_unsubscribe_exact_id_only),
    };
    return cmocka_run_group_tests_name("v1 UNSUBSCRIBE", tests, NULL, NULL);
}
