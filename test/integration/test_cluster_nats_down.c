/*
 * test_cluster_nats_down.c - every NATS server unreachable (issue 13): the
 * relays keep relaying among their own clients; after the grace period
 * (2 s) the devices of the other relays are offline to them (PRESENCE
 * offline to v2 subscribers, CHECK_ALIVE 0, SUBSCRIBE 0 in v1, SEND_TO 3);
 * the episode is logged once; when NATS is back each relay rejoins by
 * itself and its clients see the other relays' devices online again, with
 * data flowing. Times are measured and printed.
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

static void test_all_nats_down_and_back(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    /* remote: on relay 1. On relay 0: a v2 watcher of it, and a local pair. */
    int remote = tc_v2_connect(cl_port(c, 1));
    tc_register(remote, "remote", P2P_STATUS_OK);
    int watcher = tc_v2_connect(cl_port(c, 0));
    tc_register(watcher, "watcher", P2P_STATUS_OK);
    tc_wait_alive(watcher, "remote", 6, P2P_STATUS_OK, CL_WAIT_MS);
    tc_v2_subscribe(watcher, "remote", P2P_PRESENCE_ONLINE);
    int local_pub = tc_connect(cl_port(c, 0));
    tc_register(local_pub, "local", P2P_STATUS_OK);
    int local_sub = tc_connect(cl_port(c, 0));
    tc_subscribe(local_sub, "local", P2P_STATUS_OK);

    int64_t down = cl_now_ms();
    for (int i = 0; i < c->nats.count; i++)
        nats_node_kill(&c->nats, i);
    tc_expect_presence(watcher, P2P_PRESENCE_OFFLINE, "remote");
    long offline_after = (long)(cl_now_ms() - down);
    tc_check_alive(watcher, "remote", P2P_STATUS_FAILURE);
    tc_send_to(watcher, "remote", 6, "x", 1);
    tc_expect_reply(watcher, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    int v1 = tc_connect(cl_port(c, 0));
    tc_subscribe(v1, "remote", P2P_STATUS_FAILURE);
    tc_close(v1);
    /* Relaying among the relay's own clients goes on. */
    for (unsigned i = 0; i < 50; i++) {
        char p[32];
        size_t n = cl_seq_payload(p, sizeof p, "local", i);
        tc_send_data(local_pub, p, n, P2P_STATUS_OK);
        tc_expect_data(local_sub, p, n);
    }
    if (cl_log_count(c, 0, "cluster: no NATS server for") != 1)
        tc_fail("relay 0 did not log the episode exactly once");
    if (cl_metric(c, 0, "stupidp2p_cluster_link_up") != 0)
        tc_fail("relay 0 says its link is up");

    int64_t back = cl_now_ms();
    for (int i = 0; i < c->nats.count; i++)
        if (nats_node_restart(&c->nats, i) != 0)
            tc_fail("NATS server %d did not start again", i);
    tc_expect_presence(watcher, P2P_PRESENCE_ONLINE, "remote");
    long online_after = (long)(cl_now_ms() - back);
    cl_wait_formed(c);
    tc_send_to(watcher, "remote", 6, "again", 5);
    tc_expect_reply(watcher, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_expect_deliver_str(remote, "watcher", "again");
    cl_sync_data(remote, &watcher, 1);
    printf("all NATS servers down: remote devices offline %ld ms after the kill (grace 2000 ms); "
           "NATS back: online again %ld ms after the servers were started\n",
           offline_after, online_after);
    if (cl_log_count(c, 0, "cluster: no NATS server for") != 1)
        tc_fail("relay 0 logged the episode more than once");
    if (cl_log_count(c, 0, "cluster: NATS is back") != 1)
        tc_fail("relay 0 did not log its return");
    tc_close(remote);
    tc_close(watcher);
    tc_close(local_pub);
    tc_close(local_sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CL_TEST(test_all_nats_down_and_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
