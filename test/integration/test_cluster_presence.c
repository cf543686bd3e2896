/*
 * test_cluster_presence.c - CHECK_ALIVE and PRESENCE across relays (issue
 * 13): a device registered on one relay is online to every relay's
 * clients, and offline everywhere once it leaves; a v2 subscriber on any
 * relay is told each change once, as on one server, including the id
 * moving from relay to relay.
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

static void test_check_alive_across_relays(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int askers[3];
    for (int i = 0; i < 3; i++) {
        askers[i] = tc_connect(cl_port(c, i));
        tc_check_alive(askers[i], "alive", P2P_STATUS_FAILURE);
    }
    int dev = tc_connect(cl_port(c, 1));
    tc_register(dev, "alive", P2P_STATUS_OK);
    for (int i = 0; i < 3; i++)
        tc_wait_alive(askers[i], "alive", 5, P2P_STATUS_OK, CL_WAIT_MS);
    tc_unregister(dev);
    for (int i = 0; i < 3; i++)
        tc_wait_alive(askers[i], "alive", 5, P2P_STATUS_FAILURE, CL_WAIT_MS);
    /* Registered again, then its connection closed. */
    tc_register(dev, "alive", P2P_STATUS_OK);
    for (int i = 0; i < 3; i++)
        tc_wait_alive(askers[i], "alive", 5, P2P_STATUS_OK, CL_WAIT_MS);
    tc_close_and_wait(dev);
    for (int i = 0; i < 3; i++) {
        tc_wait_alive(askers[i], "alive", 5, P2P_STATUS_FAILURE, CL_WAIT_MS);
        tc_close(askers[i]);
    }
}

/* A v2 subscriber on relay 2 follows an id that comes and goes on relays
 * 1 and 0: each change once, nothing else. */
static void test_presence_follows_the_id_around(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int watchers[3];
    for (int i = 0; i < 3; i++) {
        watchers[i] = tc_v2_connect(cl_port(c, i));
        tc_v2_subscribe(watchers[i], "roamer", P2P_PRESENCE_OFFLINE);
    }
    const int path[] = {1, 0, 2, 1};
    for (size_t step = 0; step < TC_ARRAY_LEN(path); step++) {
        int dev = tc_v2_connect(cl_port(c, path[step]));
        tc_register(dev, "roamer", P2P_STATUS_OK);
        for (int i = 0; i < 3; i++)
            tc_expect_presence(watchers[i], P2P_PRESENCE_ONLINE, "roamer");
        tc_close_and_wait(dev);
        for (int i = 0; i < 3; i++)
            tc_expect_presence(watchers[i], P2P_PRESENCE_OFFLINE, "roamer");
    }
    for (int i = 0; i < 3; i++) {
        tc_expect_nothing_pending(watchers[i]);
        tc_close(watchers[i]);
    }
}

/* UNSUBSCRIBE ends the events; the relay's metrics show what it follows. */
static void test_unsubscribe_ends_interest(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int w = tc_v2_connect(cl_port(c, 0));
    tc_v2_subscribe(w, "quiet", P2P_PRESENCE_OFFLINE);
    cl_wait_metric(c, 0, "stupidp2p_cluster_followed_ids", 1, CL_WAIT_MS);
    tc_unsubscribe(w, "quiet");
    if (cl_metric(c, 0, "stupidp2p_cluster_followed_ids") != 0)
        tc_fail("relay 0 still follows an id nobody subscribes to");
    int dev = tc_connect(cl_port(c, 1));
    tc_register(dev, "quiet", P2P_STATUS_OK);
    tc_wait_alive(w, "quiet", 5, P2P_STATUS_OK, CL_WAIT_MS);
    tc_expect_nothing_pending(w);
    tc_close(dev);
    tc_close(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CL_TEST(test_check_alive_across_relays),
        CL_TEST(test_presence_follows_the_id_around),
        CL_TEST(test_unsubscribe_ends_interest),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
