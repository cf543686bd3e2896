/*
 * test_v2_mixed_fanout.c - v1 and v2 sessions on one server (stupidp2p(7),
 * SESSIONS, DELIVER): a v1 and a v2 publisher, and a plain v1, a HELLO-1,
 * a v2 and a v2 QUIET subscriber of both. Each subscriber receives every
 * message once, in order, in its own format ([03] + data for v1, DELIVER
 * for v2); only v2 subscribers get PRESENCE; subscriptions survive the
 * publisher reconnecting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "protocol.h"
#include "v2.h"

enum kind { V1_PLAIN, V1_HELLO, V2, V2_QUIET };
#define NSUBS 4

/* One subscriber of each kind, subscribed to both publishers (which are
 * online, so that v1's SUBSCRIBE succeeds too). */
static void connect_subscribers(uint16_t port, int subs[NSUBS])
{
    for (int k = 0; k < NSUBS; k++) {
        if (k == V1_PLAIN) {
            subs[k] = tc_connect(port);
        } else if (k == V1_HELLO) {
            subs[k] = tc_connect(port);
            tc_expect_hello(subs[k], 1, 0, 1, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
        } else {
            subs[k] = tc_v2_connect_flags(port, k == V2_QUIET ? P2P_HELLO_FLAG_QUIET : 0);
        }
        tc_subscribe(subs[k], "new", P2P_STATUS_OK);
        if (k >= V2)
            tc_expect_presence(subs[k], P2P_PRESENCE_ONLINE, "new");
        tc_subscribe(subs[k], "old", P2P_STATUS_OK);
        if (k >= V2)
            tc_expect_presence(subs[k], P2P_PRESENCE_ONLINE, "old");
    }
}

/* The v2 publisher "new" (*pub2) and the v1 publisher "old" (*pub1), then
 * the subscribers. */
static void connect_all(uint16_t port, int *pub1, int *pub2, int subs[NSUBS])
{
    *pub2 = tc_v2_connect(port);
    tc_register(*pub2, "new", P2P_STATUS_OK);
    *pub1 = tc_connect(port);
    tc_register(*pub1, "old", P2P_STATUS_OK);
    connect_subscribers(port, subs);
}

static void close_all(int pub1, int pub2, int subs[NSUBS])
{
    for (int k = 0; k < NSUBS; k++)
        tc_close(subs[k]);
    tc_close(pub1);
    tc_close(pub2);
}

/* Each kind of subscriber gets its own format for the same message. */
static void expect_message(int subs[NSUBS], const char *from, const void *data, size_t len)
{
    for (int k = 0; k < NSUBS; k++) {
        if (k < V2)
            tc_expect_data(subs[k], data, len);
        else
            tc_expect_deliver(subs[k], from, strlen(from), data, len);
    }
}

/* A v2 and a v1 publisher, four kinds of subscribers, interleaved
 * messages: every subscriber sees every message once, in the server's
 * order, in its own format. */
static void test_mixed_fanout_formats_and_order(void **state)
{
    int pub1, pub2, subs[NSUBS];
    connect_all(tc_port(state), &pub1, &pub2, subs);

    char msg[32];
    for (int i = 0; i < 30; i++) {
        int n = snprintf(msg, sizeof msg, "message %d", i);
        tc_send_data(i % 2 ? pub1 : pub2, msg, (size_t)n, P2P_STATUS_OK);
    }
    for (int i = 0; i < 30; i++) {
        int n = snprintf(msg, sizeof msg, "message %d", i);
        expect_message(subs, i % 2 ? "old" : "new", msg, (size_t)n);
    }
    for (int k = 0; k < NSUBS; k++)
        tc_expect_nothing_pending(subs[k]);
    tc_expect_nothing_pending(pub1);
    tc_expect_nothing_pending(pub2);
    close_all(pub1, pub2, subs);
}

/* Large and binary payloads reach every kind byte for byte. */
static void test_mixed_fanout_large_payload(void **state)
{
    int pub1, pub2, subs[NSUBS];
    connect_all(tc_port(state), &pub1, &pub2, subs);
    size_t len = 60 * 1024;
    uint8_t *data = tc_xmalloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)((i * 131) ^ (i >> 8));
    tc_send_data(pub2, data, len, P2P_STATUS_OK);
    expect_message(subs, "new", data, len);
    tc_send_data(pub1, data, len, P2P_STATUS_OK);
    expect_message(subs, "old", data, len);
    tc_send_data(pub2, NULL, 0, P2P_STATUS_OK);
    expect_message(subs, "new", NULL, 0);
    free(data);
    close_all(pub1, pub2, subs);
}

/* When a publisher leaves, only the v2 subscribers are told; when it comes
 * back, every subscriber still receives from it (subscriptions name ids). */
static void test_mixed_fanout_publisher_reconnects(void **state)
{
    int pub1, pub2, subs[NSUBS];
    connect_all(tc_port(state), &pub1, &pub2, subs);
    tc_close(pub1);
    for (int k = V2; k < NSUBS; k++)
        tc_expect_presence(subs[k], P2P_PRESENCE_OFFLINE, "old");
    for (int k = 0; k < NSUBS; k++)
        tc_expect_nothing_pending(subs[k]);
    pub1 = tc_v2_connect(tc_port(state)); /* comes back speaking v2 */
    tc_register(pub1, "old", P2P_STATUS_OK);
    for (int k = V2; k < NSUBS; k++)
        tc_expect_presence(subs[k], P2P_PRESENCE_ONLINE, "old");
    tc_send_data(pub1, "again", 5, P2P_STATUS_OK);
    expect_message(subs, "old", "again", 5);
    /* A SEND_TO reaches only its target, in the target's format. */
    tc_send_to(pub2, "old", 3, "direct", 6);
    tc_expect_deliver_str(pub1, "new", "direct");
    tc_expect_reply(pub2, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    for (int k = 0; k < NSUBS; k++)
        tc_expect_nothing_pending(subs[k]);
    close_all(pub1, pub2, subs);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_mixed_fanout_formats_and_order),
        TC_SERVER_TEST(test_mixed_fanout_large_payload),
        TC_SERVER_TEST(test_mixed_fanout_publisher_reconnects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
