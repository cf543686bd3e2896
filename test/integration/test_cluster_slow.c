/*
 * test_cluster_slow.c - slow consumers between a relay and NATS, both ways
 * (issue 13):
 *  - NATS not taking the relay's output (its server stopped with SIGSTOP
 *    while a client floods): the relay's buffer for NATS stays bounded
 *    (32 MiB and the protocol headroom), publishes beyond it are dropped and
 *    counted, one log line starts the episode and one ends it, and the
 *    relay's own clients are served all along;
 *  - the relay not taking NATS's output (the relay stopped while another
 *    relay floods its subscriber): the NATS server drops it as a slow
 *    consumer (max_pending, write_deadline); the relay counts the lost
 *    connection, logs it once, reconnects, and its clients stay connected
 *    and are served again; what its subscriber got has no duplicate and no
 *    reordering.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cluster.h"
#include "harness.h"
#include "protocol.h"
#include "v2.h"

#define BIG 60000

/* Each case starts its cluster with its own NATS settings. */
static int setup(void **state)
{
    static struct relay_cluster c;
    *state = &c;
    return 0;
}


static void signal_pid(pid_t pid, int sig)
{
    if (kill(pid, sig) == -1)
        tc_fail("kill(%ld, %d): %s", (long)pid, sig, strerror(errno));
}

/* A v1 delivery of BIG bytes whose first bytes are "N:" (N the sequence). */
static long big_seq(const uint8_t *frame, ssize_t n)
{
    if (n != 1 + BIG || frame[0] != P2P_CMD_SEND)
        tc_fail("expected a delivery of %d bytes", BIG);
    return strtol((const char *)frame + 1, NULL, 10);
}

static void send_big(int pub, uint8_t *data, long seq)
{
    snprintf((char *)data, 24, "%ld:", seq);
    tc_send_data(pub, data, BIG, P2P_STATUS_OK);
}

static void test_nats_does_not_take_our_output(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    cl_start(c, NULL, NULL);
    int pub = tc_connect(cl_port(c, 0));
    tc_register(pub, "flood", P2P_STATUS_OK);
    int local = tc_connect(cl_port(c, 0));
    tc_subscribe(local, "flood", P2P_STATUS_OK);
    int remote = tc_v2_connect(cl_port(c, 1));
    tc_wait_alive(remote, "flood", 5, P2P_STATUS_OK, CL_WAIT_MS);
    uint8_t *data = tc_xmalloc(BIG);
    memset(data, 'x', BIG);

    signal_pid(c->nats.nodes[0].pid, SIGSTOP);
    double pending_max = 0;
    long seq = 0;
    while (cl_metric(c, 0, "stupidp2p_cluster_dropped_total{reason=\"nats_slow\"}") < 1) {
        if (seq > 2000)
            tc_fail("2000 publishes of %d bytes and no drop", BIG);
        for (int k = 0; k < 20; k++, seq++) {
            send_big(pub, data, seq);
            uint8_t frame[BIG + 16];
            if (big_seq(frame, tc_recv_frame(local, frame, sizeof frame, TC_WAIT_MS)) != seq)
                tc_fail("the local subscriber missed a message");
        }
        double pending = cl_metric(c, 0, "stupidp2p_cluster_output_pending_bytes");
        if (pending > pending_max)
            pending_max = pending;
    }
    double dropped = cl_metric(c, 0, "stupidp2p_cluster_dropped_total{reason=\"nats_slow\"}");
    signal_pid(c->nats.nodes[0].pid, SIGCONT);
    printf("NATS stopped: %ld publishes of %d bytes, %g dropped, at most %g bytes waiting for "
           "NATS\n",
           seq, BIG, dropped, pending_max);
    if (pending_max > (32 << 20) + (64 << 10)) /* Cluster::kLinkOutputBytes and the headroom */
        tc_fail("the relay held %g bytes for NATS", pending_max);
    if (cl_log_count(c, 0, "is not taking our output") != 1)
        tc_fail("the episode's start was not logged once");
    /* The episode ends a quiet second after the last drop. */
    int64_t deadline = cl_now_ms() + CL_WAIT_MS;
    while (cl_log_count(c, 0, "takes our output again") != 1) {
        if (cl_now_ms() > deadline)
            tc_fail("the episode's end was not logged");
        tc_expect_nothing_pending(pub);
    }
    if (!tc_is_open(pub) || !tc_is_open(local))
        tc_fail("a client lost its connection");
    cl_wait_formed(c);
    tc_v2_subscribe(remote, "flood", P2P_PRESENCE_ONLINE);
    cl_sync_data(pub, &remote, 1);
    free(data);
    tc_close(pub);
    tc_close(local);
    tc_close(remote);
}

static void test_relay_does_not_take_nats_output(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    cl_start(c, NULL, "max_pending: 2MB\nwrite_deadline: \"300ms\"\n");
    int pub = tc_connect(cl_port(c, 0));
    tc_register(pub, "flood2", P2P_STATUS_OK);
    int sub = tc_connect(cl_port(c, 1));
    tc_wait_alive(sub, "flood2", 6, P2P_STATUS_OK, CL_WAIT_MS);
    tc_subscribe(sub, "flood2", P2P_STATUS_OK);
    int bystander = tc_connect(cl_port(c, 1));
    tc_register(bystander, "bystander2", P2P_STATUS_OK);
    cl_sync_data(pub, &sub, 1);
    uint8_t *data = tc_xmalloc(BIG);
    memset(data, 'y', BIG);

    /* Relay 1 stops reading for 1 s while relay 0 publishes 30 MB to it. */
    signal_pid(c->relays[1].pid, SIGSTOP);
    int64_t stopped = cl_now_ms();
    long seq = 0;
    for (; seq < 500; seq++)
        send_big(pub, data, seq);
    while (cl_now_ms() - stopped < 1000)
        tc_expect_nothing_pending(pub);
    signal_pid(c->relays[1].pid, SIGCONT);
    cl_wait_metric(c, 1, "stupidp2p_cluster_nats_disconnects_total", 1, CL_WAIT_MS);
    cl_wait_metric(c, 1, "stupidp2p_cluster_nats_connects_total", 2, CL_WAIT_MS);
    /* What arrived came once and in order. */
    long last = -1, got = 0;
    for (;;) {
        uint8_t frame[BIG + 16];
        ssize_t n = tc_recv_frame(sub, frame, sizeof frame, 200);
        if (n < 0)
            break;
        long s = big_seq(frame, n);
        if (s <= last)
            tc_fail("message %ld after %ld", s, last);
        last = s;
        got++;
    }
    printf("relay stopped for 1 s: NATS dropped it; %ld of %ld messages reached its subscriber, "
           "none twice or out of order\n",
           got, seq);
    if (cl_log_count(c, 1, "nats: lost") != 1)
        tc_fail("the lost connection was not logged once");
    if (!tc_is_open(sub) || !tc_is_open(bystander))
        tc_fail("a client of the slow relay lost its connection");
    cl_wait_formed(c);
    cl_sync_data(pub, &sub, 1);
    free(data);
    tc_close(pub);
    tc_close(sub);
    tc_close(bystander);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_nats_does_not_take_our_output, setup, cl_teardown),
        cmocka_unit_test_setup_teardown(test_relay_does_not_take_nats_output, setup, cl_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
