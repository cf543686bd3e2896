/*
 * test_cluster_relay_kill.c - a relay of the cluster dies (issue 13):
 *  - killed with SIGKILL: within 3 s every other relay treats its devices
 *    as offline (PRESENCE offline to v2 subscribers, CHECK_ALIVE 0); the
 *    time from kill(2) to the PRESENCE is measured and printed;
 *  - its devices can register again on another relay at once, before the
 *    others have noticed the death (a takeover of the dead relay's claim);
 *  - stopped with SIGTERM, it tells the others, whose subscribers see its
 *    devices go at once;
 *  - restarted under the same name, it rejoins and its new devices are
 *    seen everywhere.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "cluster.h"
#include "harness.h"
#include "protocol.h"
#include "v2.h"

/* Devices on relay 0; subscribers on relays 1 and 2. */
static void test_sigkill_turns_devices_offline(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int devs[2];
    devs[0] = tc_connect(cl_port(c, 0));
    tc_register(devs[0], "k0", P2P_STATUS_OK);
    devs[1] = tc_v2_connect(cl_port(c, 0));
    tc_register(devs[1], "k1", P2P_STATUS_OK);
    int subs[2];
    for (int i = 0; i < 2; i++) {
        subs[i] = tc_v2_connect(cl_port(c, 1 + i));
        tc_wait_alive(subs[i], "k1", 2, P2P_STATUS_OK, CL_WAIT_MS);
        tc_v2_subscribe(subs[i], "k0", P2P_PRESENCE_ONLINE);
        tc_v2_subscribe(subs[i], "k1", P2P_PRESENCE_ONLINE);
    }
    int64_t killed = cl_now_ms();
    cl_kill_relay(c, 0);
    long took[2];
    for (int i = 0; i < 2; i++) {
        /* Both ids in one go, in either order. */
        int seen = 0;
        while (seen != 3) {
            uint8_t buf[64];
            ssize_t n = tc_recv_frame(subs[i], buf, sizeof buf, CL_WAIT_MS);
            if (n != 5 || buf[0] != P2P_EVT_PRESENCE || buf[1] != P2P_PRESENCE_OFFLINE ||
                buf[2] != 2 || buf[3] != 'k' || (buf[4] != '0' && buf[4] != '1'))
                tc_fail("relay %d: expected PRESENCE offline of k0 and k1", 1 + i);
            seen |= 1 << (buf[4] - '0');
        }
        took[i] = (long)(cl_now_ms() - killed);
        tc_check_alive(subs[i], "k0", P2P_STATUS_FAILURE);
        tc_check_alive(subs[i], "k1", P2P_STATUS_FAILURE);
    }
    printf("relay SIGKILL: its devices offline on the other relays %ld and %ld ms after kill(2) "
           "(bound: 3000 ms)\n",
           took[0], took[1]);
    if (took[0] > 3000 || took[1] > 3000)
        tc_fail("a dead relay's devices were online for more than 3 s");
    cl_wait_metric(c, 1, "stupidp2p_cluster_nodes_lost_total", 1, CL_WAIT_MS);
    for (int i = 0; i < 2; i++) {
        tc_close(devs[i]);
        tc_close(subs[i]);
    }
}

/* A device of the dead relay registers on relay 1 before anyone noticed:
 * it is answered 1 at once, subscribers see a takeover, and later nothing
 * (the dead relay's other devices go, this one stays). */
static void test_register_elsewhere_at_once(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int dev = tc_v2_connect(cl_port(c, 0));
    tc_register(dev, "phoenix", P2P_STATUS_OK);
    int other = tc_v2_connect(cl_port(c, 0));
    tc_register(other, "ash", P2P_STATUS_OK);
    int sub = tc_v2_connect(cl_port(c, 2));
    tc_wait_alive(sub, "ash", 3, P2P_STATUS_OK, CL_WAIT_MS);
    tc_v2_subscribe(sub, "phoenix", P2P_PRESENCE_ONLINE);
    tc_v2_subscribe(sub, "ash", P2P_PRESENCE_ONLINE);
    cl_kill_relay(c, 0);
    tc_close(dev);
    tc_close(other);
    int again = tc_v2_connect(cl_port(c, 1));
    int64_t start = cl_now_ms();
    tc_register(again, "phoenix", P2P_STATUS_OK);
    long answered = (long)(cl_now_ms() - start);
    tc_expect_presence(sub, P2P_PRESENCE_OFFLINE, "phoenix");
    tc_expect_presence(sub, P2P_PRESENCE_ONLINE, "phoenix");
    tc_expect_presence(sub, P2P_PRESENCE_OFFLINE, "ash");
    tc_check_alive(sub, "phoenix", P2P_STATUS_OK);
    printf("REGISTER of a dead relay's id on another relay answered in %ld ms\n", answered);
    cl_sync_data(again, &sub, 1);
    tc_expect_nothing_pending(sub);
    tc_close(again);
    tc_close(sub);
}

/* SIGTERM: the relay says it is leaving; its devices go offline on the
 * others without waiting for its heartbeats to stop. Restarted, it
 * rejoins. */
static void test_sigterm_and_restart(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int dev = tc_connect(cl_port(c, 1));
    tc_register(dev, "leaver", P2P_STATUS_OK);
    int sub = tc_v2_connect(cl_port(c, 0));
    tc_wait_alive(sub, "leaver", 6, P2P_STATUS_OK, CL_WAIT_MS);
    tc_v2_subscribe(sub, "leaver", P2P_PRESENCE_ONLINE);
    /* The device's connection stays open: the relay lingers on it while
     * it shuts down, and the others must not wait for that. */
    int64_t start = cl_now_ms();
    if (kill(c->relays[1].pid, SIGTERM) == -1)
        tc_fail("kill: %s", strerror(errno));
    tc_expect_presence(sub, P2P_PRESENCE_OFFLINE, "leaver");
    long took = (long)(cl_now_ms() - start);
    printf("relay SIGTERM: its devices offline elsewhere %ld ms after the signal\n", took);
    if (took >= 2000)
        tc_fail("the others waited for the heartbeats to stop");
    if (p2p_server_stop(&c->relays[1]) != 0) /* a second signal: it closes what is left */
        tc_fail("relay 1 did not exit 0");
    if (cl_log_count(c, 0, "cluster: relay r1 left") != 1)
        tc_fail("relay 0 did not log that relay 1 left");
    tc_close(dev);
    cl_restart_relay(c, 1);
    cl_wait_formed(c);
    dev = tc_connect(cl_port(c, 1));
    tc_register(dev, "leaver", P2P_STATUS_OK);
    tc_expect_presence(sub, P2P_PRESENCE_ONLINE, "leaver");
    cl_sync_data(dev, &sub, 1);
    tc_close(dev);
    tc_close(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CL_TEST(test_sigkill_turns_devices_offline),
        CL_TEST(test_register_elsewhere_at_once),
        CL_TEST(test_sigterm_and_restart),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
