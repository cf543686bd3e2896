/*
 * test_v1_subscribe.c - v1 SUBSCRIBE (0x02): 82 01 for an online id, 82 00
 * for an offline, empty or own id; no registration needed; subscribing twice
 * delivers once; a subscriber of several devices.
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

static void test_subscribe_online_on_the_wire(void **state)
{
    int p = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    static const uint8_t req[] = {0, 0, 0, 4, 0x02, 'p', 'u', 'b'};
    static const uint8_t rep[] = {0, 0, 0, 2, 0x82, 0x01};
    tc_send_raw(s, req, sizeof req);
    tc_expect_raw(s, rep, sizeof rep);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

static void test_subscribe_offline_fails(void **state)
{
    int s = tc_connect(tc_port(state));
    static const uint8_t req[] = {0, 0, 0, 5, 0x02, 'n', 'o', 'n', 'e'};
    static const uint8_t rep[] = {0, 0, 0, 2, 0x82, 0x00};
    tc_send_raw(s, req, sizeof req);
    tc_expect_raw(s, rep, sizeof rep);
    /* A failed subscription does not exist: the device coming online later
     * delivers nothing. */
    int p = tc_connect(tc_port(state));
    tc_register(p, "none", 1);
    tc_send_data(p, "x", 1, 1);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

static void test_subscribe_own_id_fails(void **state)
{
    int a = tc_connect(tc_port(state));
    tc_register(a, "me", 1);
    tc_subscribe(a, "me", 0);
    /* The sender never gets a copy of its own data. */
    tc_send_data(a, "echo?", 5, 1);
    tc_expect_nothing_pending(a);
    tc_close(a);
}

static void test_subscribe_empty_id_fails(void **state)
{
    int s = tc_connect(tc_port(state));
    tc_send_cmd(s, P2P_CMD_SUBSCRIBE, NULL, 0);
    tc_expect_reply(s, P2P_CMD_SUBSCRIBE, 0);
    assert_true(tc_is_open(s));
    tc_close(s);
}

/* An id that was online and went away (unregister, close) is offline. */
static void test_subscribe_after_publisher_left(void **state)
{
    int p = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    tc_register(p, "gone", 1);
    tc_unregister(p);
    tc_subscribe(s, "gone", 0);
    tc_register(p, "gone2", 1);
    tc_close_and_wait(p);
    tc_subscribe(s, "gone2", 0);
    tc_close(s);
}

static void test_subscribe_without_registering(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    tc_send_data(p, "data", 4, 1);
    tc_expect_data(s, "data", 4);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

static void test_subscribe_twice_delivers_once(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    tc_subscribe(s, "pub", 1);
    tc_subscribe(s, "pub", 1);
    tc_send_data(p, "once", 4, 1);
    tc_expect_data(s, "once", 4);
    tc_expect_nothing_pending(s);
    /* One UNSUBSCRIBE undoes it all: there was only one subscription. */
    tc_unsubscribe(s, "pub");
    tc_send_data(p, "none", 4, 1);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

/* A subscriber of several devices gets each one's data, in order per
 * sender, and nothing from devices it did not subscribe to. */
static void test_subscriber_of_several_devices(void **state)
{
    enum { PUBS = 4, MSGS = 20 };
    int pubs[PUBS];
    char id[16], msg[32];
    int s = tc_connect(tc_port(state));
    int other = tc_connect(tc_port(state));
    tc_register(other, "other", 1);
    for (int i = 0; i < PUBS; i++) {
        pubs[i] = tc_connect(tc_port(state));
        snprintf(id, sizeof id, "pub%d", i);
        tc_register(pubs[i], id, 1);
        tc_subscribe(s, id, 1);
    }
    /* One publisher at a time, so the order at s is known exactly. */
    for (int i = 0; i < PUBS; i++) {
        for (int m = 0; m < MSGS; m++) {
            int n = snprintf(msg, sizeof msg, "pub%d msg%d", i, m);
            tc_send_data(pubs[i], msg, (size_t)n, 1);
        }
        tc_send_data(other, "not for s", 9, 1);
        for (int m = 0; m < MSGS; m++) {
            int n = snprintf(msg, sizeof msg, "pub%d msg%d", i, m);
            tc_expect_data(s, msg, (size_t)n);
        }
    }
    tc_expect_nothing_pending(s);
    /* Interleaved: per-sender order still holds. */
    for (int m = 0; m < MSGS; m++) {
        for (int i = 0; i < PUBS; i++) {
            int n = snprintf(msg, sizeof msg, "%d:%d", i, m);
            tc_send_data(pubs[i], msg, (size_t)n, 1);
        }
    }
    int next[PUBS] = {0};
    for (int k = 0; k < PUBS * MSGS; k++) {
        uint8_t buf[64];
        ssize_t n = tc_recv_frame(s, buf, sizeof buf - 1, TC_WAIT_MS);
        assert_true(n > 1);
        assert_int_equal(buf[0], P2P_CMD_SEND);
        int i = -1, m = -1;
        buf[n] = '\0';
        assert_int_equal(sscanf((char *)buf + 1, "%d:%d", &i, &m), 2);
        assert_true(i >= 0 && i < PUBS);
        assert_int_equal(m, next[i]);
        next[i]++;
    }
    tc_expect_nothing_pending(s);
    for (int i = 0; i < PUBS; i++)
        tc_close(pubs[i]);
    tc_close(s);
    tc_close(other);
}

/* A registered device may subscribe to others, and be subscribed to. */
static void test_mutual_subscription(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    tc_register(a, "a", 1);
    tc_register(b, "b", 1);
    tc_subscribe(a, "b", 1);
    tc_subscribe(b, "a", 1);
    tc_send_data(a, "to b", 4, 1);
    tc_expect_data(b, "to b", 4);
    tc_send_data(b, "to a", 4, 1);
    tc_expect_data(a, "to a", 4);
    tc_expect_nothing_pending(a);
    tc_expect_nothing_pending(b);
    tc_close(a);
    tc_close(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_subscribe_online_on_the_wire),
        TC_SERVER_TEST(test_subscribe_offline_fails),
        TC_SERVER_TEST(test_subscribe_own_id_fails),
        TC_SERVER_TEST(test_subscribe_empty_id_fails),
        TC_SERVER_TEST(test_subscribe_after_publisher_left),
        TC_SERVER_TEST(test_subscribe_without_registering),
        TC_SERVER_TEST(test_subscribe_twice_delivers_once),
        TC_SERVER_TEST(test_subscriber_of_several_devices),
        TC_SERVER_TEST(test_mutual_subscription),
    };
    return cmocka_run_group_tests_name("v1 SUBSCRIBE", tests, NULL, NULL);
}
