/*
 * test_cluster_send.c - SEND across relays (issue 13): three relays over a
 * three-server NATS cluster (support/cluster.h) behave as one server. A
 * device registered on one relay reaches its subscribers on every relay,
 * once each, in the order it sent (every payload numbered and checked), in
 * v1 ([03] + data) and in v2 (DELIVER with the sender's id); SUBSCRIBE's
 * answer and a v1 subscription need the id online anywhere; subscriptions
 * survive the publisher moving to another relay.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "harness.h"
#include "protocol.h"
#include "v2.h"

#define MESSAGES 200

/* Sends MESSAGES numbered payloads from pub (v1 or v2, acknowledged). */
static void send_numbered(int pub, const char *name, unsigned first, unsigned count)
{
    for (unsigned i = first; i < first + count; i++) {
        char p[64];
        size_t n = cl_seq_payload(p, sizeof p, name, i);
        tc_send_data(pub, p, n, P2P_STATUS_OK);
    }
}

/* Expects the numbered payloads, in order, each once, and nothing else
 * pending: as v1 deliveries, or v2 DELIVERs from `from`. */
static void expect_numbered(int sub, int v2, const char *from, const char *name, unsigned first,
                            unsigned count)
{
    for (unsigned i = first; i < first + count; i++) {
        char p[64];
        size_t n = cl_seq_payload(p, sizeof p, name, i);
        if (v2)
            tc_expect_deliver(sub, from, strlen(from), p, n);
        else
            tc_expect_data(sub, p, n);
    }
    tc_expect_nothing_pending(sub);
}

/* v1 publisher on relay 0; v1 subscribers on relays 0, 1 and 2. */
static void test_v1_fanout_across_relays(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int pub = tc_connect(cl_port(c, 0));
    tc_register(pub, "pub1", P2P_STATUS_OK);
    int subs[3];
    for (int i = 0; i < 3; i++) {
        subs[i] = tc_connect(cl_port(c, i));
        /* v1 needs the id online: on relays 1 and 2 that is the view. */
        tc_wait_alive(subs[i], "pub1", 4, P2P_STATUS_OK, CL_WAIT_MS);
        tc_subscribe(subs[i], "pub1", P2P_STATUS_OK);
    }
    cl_sync_data(pub, subs, 3);
    send_numbered(pub, "pub1", 0, MESSAGES);
    for (int i = 0; i < 3; i++)
        expect_numbered(subs[i], 0, NULL, "pub1", 0, MESSAGES);
    for (int i = 0; i < 3; i++)
        tc_close(subs[i]);
    tc_close(pub);
}

/* v2: DELIVER carries the sender's id; a subscriber on the publisher's
 * relay and on the others alike; the subscriber's own relay did not know
 * the id before it subscribed. */
static void test_v2_deliver_across_relays(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int pub = tc_v2_connect(cl_port(c, 1));
    tc_register(pub, "pub2", P2P_STATUS_OK);
    int subs[3];
    for (int i = 0; i < 3; i++) {
        subs[i] = tc_v2_connect(cl_port(c, i));
        tc_wait_alive(subs[i], "pub2", 4, P2P_STATUS_OK, CL_WAIT_MS);
        tc_v2_subscribe(subs[i], "pub2", P2P_PRESENCE_ONLINE);
    }
    cl_sync_data(pub, subs, 3);
    send_numbered(pub, "pub2", 0, MESSAGES);
    for (int i = 0; i < 3; i++)
        expect_numbered(subs[i], 1, "pub2", "pub2", 0, MESSAGES);
    for (int i = 0; i < 3; i++)
        tc_close(subs[i]);
    tc_close(pub);
}

/* A v1 SUBSCRIBE to an id offline everywhere fails; online on another
 * relay it succeeds; a v2 SUBSCRIBE to it is answered with its state
 * there. */
static void test_subscribe_needs_online_anywhere(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int v1 = tc_connect(cl_port(c, 2));
    int v2 = tc_v2_connect(cl_port(c, 2));
    tc_subscribe(v1, "later", P2P_STATUS_FAILURE);
    tc_v2_subscribe(v2, "later", P2P_PRESENCE_OFFLINE);
    int dev = tc_connect(cl_port(c, 0));
    tc_register(dev, "later", P2P_STATUS_OK);
    tc_expect_presence(v2, P2P_PRESENCE_ONLINE, "later");
    tc_wait_alive(v1, "later", 5, P2P_STATUS_OK, CL_WAIT_MS);
    tc_subscribe(v1, "later", P2P_STATUS_OK);
    int v2b = tc_v2_connect(cl_port(c, 1));
    tc_wait_alive(v2b, "later", 5, P2P_STATUS_OK, CL_WAIT_MS);
    tc_v2_subscribe(v2b, "later", P2P_PRESENCE_ONLINE);
    tc_close(v1);
    tc_close(v2);
    tc_close(v2b);
    tc_close(dev);
}

/* The publisher leaves relay 0 and registers on relay 2, then on relay 1
 * (where a subscriber is): its subscribers everywhere keep receiving, every
 * message once and in order. Each move waits for what was sent before it
 * to arrive (a message in flight while ownership moves may be lost:
 * doc/cluster.md). */
static void test_subscriptions_survive_publisher_moving(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int subs[3];
    for (int i = 0; i < 3; i++) {
        subs[i] = tc_v2_connect(cl_port(c, i));
        tc_v2_subscribe(subs[i], "mover", P2P_PRESENCE_OFFLINE);
    }
    unsigned seq = 0;
    const int path[] = {0, 2, 1};
    for (int step = 0; step < 3; step++) {
        int pub = tc_connect(cl_port(c, path[step]));
        tc_register(pub, "mover", P2P_STATUS_OK);
        for (int i = 0; i < 3; i++)
            tc_expect_presence(subs[i], P2P_PRESENCE_ONLINE, "mover");
        if (step == 0)
            cl_sync_data(pub, subs, 3);
        send_numbered(pub, "mover", seq, 50);
        for (int i = 0; i < 3; i++)
            expect_numbered(subs[i], 1, "mover", "mover", seq, 50);
        seq += 50;
        tc_close_and_wait(pub);
        for (int i = 0; i < 3; i++)
            tc_expect_presence(subs[i], P2P_PRESENCE_OFFLINE, "mover");
    }
    for (int i = 0; i < 3; i++)
        tc_close(subs[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CL_TEST(test_v1_fanout_across_relays),
        CL_TEST(test_v2_deliver_across_relays),
        CL_TEST(test_subscribe_needs_online_anywhere),
        CL_TEST(test_subscriptions_survive_publisher_moving),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
