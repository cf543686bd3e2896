/*
 * test_v1_fanout.c - one publisher, many subscribers: every subscriber gets
 * every frame [0x03] + data, in the publisher's order; the publisher gets
 * only its 83 01 replies; connections that did not subscribe get nothing.
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

enum { SUBS = 8 };

static void test_fanout_to_all_subscribers(void **state)
{
    int p = tc_connect(tc_port(state));
    int subs[SUBS];
    tc_register(p, "pub", 1);
    for (int i = 0; i < SUBS; i++) {
        subs[i] = tc_connect(tc_port(state));
        tc_subscribe(subs[i], "pub", 1);
    }
    static const uint8_t data[] = {'h', 'i', 0x00, 0xff, 0x80, '\n'};
    tc_send_data(p, data, sizeof data, 1);
    /* On the wire: 00 00 00 07 03 68 69 00 ff 80 0a. */
    static const uint8_t wire[] = {0, 0, 0, 7, 0x03, 'h', 'i', 0x00, 0xff, 0x80, '\n'};
    for (int i = 0; i < SUBS; i++) {
        tc_expect_raw(subs[i], wire, sizeof wire);
        tc_expect_nothing_pending(subs[i]);
    }
    /* The publisher got its reply and no copy. */
    tc_expect_nothing_pending(p);
    for (int i = 0; i < SUBS; i++)
        tc_close(subs[i]);
    tc_close(p);
}

static void test_fanout_order_per_subscriber(void **state)
{
    enum { MSGS = 200 };
    int p = tc_connect(tc_port(state));
    int subs[SUBS];
    char msg[32];
    tc_register(p, "pub", 1);
    for (int i = 0; i < SUBS; i++) {
        subs[i] = tc_connect(tc_port(state));
        tc_subscribe(subs[i], "pub", 1);
    }
    for (int m = 0; m < MSGS; m++) {
        int n = snprintf(msg, sizeof msg, "message %d", m);
        tc_send_cmd(p, P2P_CMD_SEND, msg, (size_t)n);
    }
    for (int m = 0; m < MSGS; m++)
        tc_expect_reply(p, P2P_CMD_SEND, 1);
    tc_expect_nothing_pending(p);
    for (int i = 0; i < SUBS; i++) {
        for (int m = 0; m < MSGS; m++) {
            int n = snprintf(msg, sizeof msg, "message %d", m);
            tc_expect_data(subs[i], msg, (size_t)n);
        }
        tc_expect_nothing_pending(subs[i]);
    }
    for (int i = 0; i < SUBS; i++)
        tc_close(subs[i]);
    tc_close(p);
}

/* Subscribers of another device, unsubscribed and never-subscribed
 * connections receive nothing. */
static void test_fanout_only_to_subscribers(void **state)
{
    int p = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    int sub_p = tc_connect(tc_port(state));
    int sub_q = tc_connect(tc_port(state));
    int idle = tc_connect(tc_port(state));
    int left = tc_connect(tc_port(state));
    tc_register(p, "p", 1);
    tc_register(q, "q", 1);
    tc_register(idle, "idle", 1);
    tc_subscribe(sub_p, "p", 1);
    tc_subscribe(sub_q, "q", 1);
    tc_subscribe(left, "p", 1);
    tc_unsubscribe(left, "p");
    tc_send_data(p, "P", 1, 1);
    tc_expect_data(sub_p, "P", 1);
    tc_expect_nothing_pending(sub_q);
    tc_expect_nothing_pending(idle);
    tc_expect_nothing_pending(left);
    tc_expect_nothing_pending(q);
    tc_send_data(q, "Q", 1, 1);
    tc_expect_data(sub_q, "Q", 1);
    tc_expect_nothing_pending(sub_p);
    tc_close(p);
    tc_close(q);
    tc_close(sub_p);
    tc_close(sub_q);
    tc_close(idle);
    tc_close(left);
}

/* Subscribers that are publishers too, all subscribed to each other: each
 * gets exactly the others' data. */
static void test_fanout_full_mesh(void **state)
{
    enum { N = 5 };
    int fds[N];
    char id[8], msg[16];
    tc_connect_registered(tc_port(state), fds, N, "n");
    for (int i = 0; i < N; i++)
        for (int j = 0; j < N; j++) {
            snprintf(id, sizeof id, "n%d", j);
            tc_subscribe(fds[i], id, i == j ? 0 : 1);
        }
    for (int i = 0; i < N; i++) {
        int n = snprintf(msg, sizeof msg, "from %d", i);
        tc_send_data(fds[i], msg, (size_t)n, 1);
        for (int j = 0; j < N; j++) {
            if (j == i)
                continue;
            tc_expect_data(fds[j], msg, (size_t)n);
        }
    }
    for (int i = 0; i < N; i++)
        tc_expect_nothing_pending(fds[i]);
    for (int i = 0; i < N; i++)
        tc_close(fds[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_fanout_to_all_subscribers),
        TC_SERVER_TEST(test_fanout_order_per_subscriber),
        TC_SERVER_TEST(test_fanout_only_to_subscribers),
        TC_SERVER_TEST(test_fanout_full_mesh),
    };
    return cmocka_run_group_tests_name("v1 fan-out", tests, NULL, NULL);
}
