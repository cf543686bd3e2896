/*
 * test_server_busy_poll.c - --busy-poll USEC: the server polls for up to
 * USEC microseconds after a batch before it sleeps. It serves as before
 * (a round trip of every kind of frame), and the spin ends: over a second
 * of silence after traffic, a server spinning 50 ms after each batch of
 * I/O spins once, not after every tick of its timer (4 a second) nor
 * forever: at most three spins' worth of CPU (the bound asserts that the
 * spin stops, not how fast anything is). Without the option, an idle
 * server uses no CPU at all.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>

#include "harness.h"
#include "protocol.h"
#include "stress.h"
#include "v2.h"

#define QUIET_MS 1000

/* The server's CPU time (ms) over QUIET_MS in which nothing arrives on fd. */
static long cpu_over_silence(const struct p2p_server *s, int fd)
{
    long cpu0 = tc_proc_cpu_ms(s->pid);
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    assert_int_equal(poll(&p, 1, QUIET_MS), 0);
    return tc_proc_cpu_ms(s->pid) - cpu0;
}

static void exchange(uint16_t port)
{
    int pub, sub;
    tc_connect_pub_sub(port, "pinger", &pub, &sub);
    for (int i = 0; i < 100; i++) {
        tc_send_data(pub, "ping", 4, 1);
        tc_expect_data(sub, "ping", 4);
    }
    int v2 = tc_v2_connect(port);
    tc_v2_subscribe(v2, "pinger", P2P_PRESENCE_ONLINE);
    tc_send_data(pub, "v2", 2, 1);
    tc_expect_deliver_str(v2, "pinger", "v2");
    tc_close(v2);
    tc_close(pub);
    tc_close(sub);
}

static void test_busy_poll_serves_and_stops_spinning(void **state)
{
    struct p2p_server *s = *state;
    exchange(s->port);
    int idle = tc_connect(s->port);
    assert_true(tc_is_open(idle)); /* a batch: the spin after it is 50 ms */
    long cpu = cpu_over_silence(s, idle);
    fprintf(stderr, "busy-poll 50 ms: server CPU %ld ms during %d ms of silence\n", cpu, QUIET_MS);
    if (cpu > 150)
        tc_fail("the server used %ld ms of CPU in %d ms of silence: it kept spinning", cpu,
                QUIET_MS);
    tc_close(idle);
}

static void test_idle_without_busy_poll(void **state)
{
    struct p2p_server *s = *state;
    exchange(s->port);
    int idle = tc_connect(s->port);
    assert_true(tc_is_open(idle));
    long cpu = cpu_over_silence(s, idle);
    fprintf(stderr, "no busy-poll: server CPU %ld ms during %d ms of silence\n", cpu, QUIET_MS);
    if (cpu > QUIET_MS / 10)
        tc_fail("an idle server used %ld ms of CPU in %d ms", cpu, QUIET_MS);
    tc_close(idle);
}

static const char *const kBusy[] = {"--busy-poll", "50000", NULL};

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST_ARGS(test_busy_poll_serves_and_stops_spinning, kBusy),
        TC_SERVER_TEST(test_idle_without_busy_poll),
    };
    return cmocka_run_group_tests_name("p2pServer --busy-poll", tests, NULL, NULL);
}
