/*
 * test_cluster_send_to.c - SEND_TO across relays (issue 13): the target
 * held on another relay gets DELIVER with the sender's id, every message
 * once and in order; the status is decided at once from the sender's
 * relay's view (3 for a target offline everywhere); a v1 target takes
 * SEND_TO only from a device it subscribes to, checked on its own relay
 * (the sender is answered 1 and the message is dropped there and counted:
 * doc/cluster.md); QUIET holds across relays.
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

static void send_to_expect(int fd, const char *target, const void *data, size_t len, uint8_t status)
{
    tc_send_to(fd, target, strlen(target), data, len);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, status);
}

static void test_v2_target_on_another_relay(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int target = tc_v2_connect(cl_port(c, 1));
    tc_register(target, "target", P2P_STATUS_OK);
    int sender = tc_v2_connect(cl_port(c, 0));
    tc_register(sender, "sender", P2P_STATUS_OK);
    tc_wait_alive(sender, "target", 6, P2P_STATUS_OK, CL_WAIT_MS);
    for (unsigned i = 0; i < 300; i++) {
        char p[64];
        size_t n = cl_seq_payload(p, sizeof p, "to", i);
        send_to_expect(sender, "target", p, n, P2P_STATUS_OK);
    }
    for (unsigned i = 0; i < 300; i++) {
        char p[64];
        size_t n = cl_seq_payload(p, sizeof p, "to", i);
        tc_expect_deliver(target, "sender", 6, p, n);
    }
    tc_expect_nothing_pending(target);
    /* And back, from relay 1 to relay 0. */
    tc_wait_alive(target, "sender", 6, P2P_STATUS_OK, CL_WAIT_MS);
    send_to_expect(target, "sender", "back", 4, P2P_STATUS_OK);
    tc_expect_deliver_str(sender, "target", "back");
    tc_close(sender);
    tc_close(target);
}

static void test_offline_everywhere_is_3(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int sender = tc_v2_connect(cl_port(c, 2));
    tc_register(sender, "s3", P2P_STATUS_OK);
    send_to_expect(sender, "nobody", "x", 1, P2P_STATUS_OFFLINE);
    int target = tc_v2_connect(cl_port(c, 0));
    tc_register(target, "gone", P2P_STATUS_OK);
    tc_wait_alive(sender, "gone", 4, P2P_STATUS_OK, CL_WAIT_MS);
    send_to_expect(sender, "gone", "1", 1, P2P_STATUS_OK);
    tc_expect_deliver_str(target, "s3", "1");
    tc_close_and_wait(target);
    tc_wait_alive(sender, "gone", 4, P2P_STATUS_FAILURE, CL_WAIT_MS);
    send_to_expect(sender, "gone", "2", 1, P2P_STATUS_OFFLINE);
    tc_close(sender);
}

/* A v1 target on relay 1 that does not subscribe to the sender on relay 0
 * gets nothing; once it subscribes, it gets [03] + data. The refused
 * message would have arrived first (one publisher's order), so the next
 * frame being the allowed one shows it was dropped. */
static void test_v1_target_rule_checked_where_the_target_is(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int target = tc_connect(cl_port(c, 1));
    tc_register(target, "v1t", P2P_STATUS_OK);
    int sender = tc_v2_connect(cl_port(c, 0));
    tc_register(sender, "v1s", P2P_STATUS_OK);
    tc_wait_alive(sender, "v1t", 3, P2P_STATUS_OK, CL_WAIT_MS);
    send_to_expect(sender, "v1t", "refused", 7, P2P_STATUS_OK);
    cl_wait_metric(c, 1, "stupidp2p_cluster_dropped_total{reason=\"refused\"}", 1, CL_WAIT_MS);
    tc_wait_alive(target, "v1s", 3, P2P_STATUS_OK, CL_WAIT_MS);
    tc_subscribe(target, "v1s", P2P_STATUS_OK);
    send_to_expect(sender, "v1t", "allowed", 7, P2P_STATUS_OK);
    tc_expect_data(target, "allowed", 7);
    tc_expect_nothing_pending(target);
    tc_close(sender);
    tc_close(target);
}

/* QUIET: a successful SEND_TO across relays is not acknowledged; a failed
 * one is. */
static void test_quiet_across_relays(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int target = tc_v2_connect(cl_port(c, 2));
    tc_register(target, "qt", P2P_STATUS_OK);
    int sender = tc_v2_connect_flags(cl_port(c, 0), P2P_HELLO_FLAG_QUIET);
    tc_register(sender, "qs", P2P_STATUS_OK);
    tc_wait_alive(sender, "qt", 2, P2P_STATUS_OK, CL_WAIT_MS);
    tc_send_to(sender, "qt", 2, "one", 3);
    tc_send_to(sender, "qt", 2, "two", 3);
    tc_send_to(sender, "nobody", 6, "x", 1);
    tc_expect_reply(sender, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    tc_expect_deliver_str(target, "qs", "one");
    tc_expect_deliver_str(target, "qs", "two");
    tc_close(sender);
    tc_close(target);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CL_TEST(test_v2_target_on_another_relay),
        CL_TEST(test_offline_everywhere_is_3),
        CL_TEST(test_v1_target_rule_checked_where_the_target_is),
        CL_TEST(test_quiet_across_relays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
