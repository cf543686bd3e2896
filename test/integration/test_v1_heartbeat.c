/*
 * test_v1_heartbeat.c - v1 HEARTBEAT (0x07): 87 01, in any state, in order
 * when pipelined; it changes nothing else.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "harness.h"
#include "protocol.h"

static void test_heartbeat_on_the_wire(void **state)
{
    int a = tc_connect(tc_port(state));
    static const uint8_t req[] = {0, 0, 0, 1, 0x07};
    static const uint8_t rep[] = {0, 0, 0, 2, 0x87, 0x01};
    tc_send_raw(a, req, sizeof req);
    tc_expect_raw(a, rep, sizeof rep);
    tc_register(a, "dev", 1);
    tc_send_raw(a, req, sizeof req);
    tc_expect_raw(a, rep, sizeof rep);
    tc_close(a);
}

/* The original ignores anything after the command byte. */
static void test_heartbeat_with_trailing_bytes(void **state)
{
    int a = tc_connect(tc_port(state));
    tc_send_cmd(a, P2P_CMD_HEARTBEAT, "junk\0\xff", 6);
    tc_expect_reply(a, P2P_CMD_HEARTBEAT, 1);
    tc_close(a);
}

static void test_heartbeats_pipelined(void **state)
{
    enum { N = 1000 };
    int a = tc_connect(tc_port(state));
    uint8_t *buf = malloc(N * 5);
    assert_non_null(buf);
    for (int i = 0; i < N; i++)
        memcpy(buf + i * 5, "\0\0\0\1\7", 5);
    tc_send_raw(a, buf, N * 5);
    free(buf);
    for (int i = 0; i < N; i++)
        tc_expect_reply(a, P2P_CMD_HEARTBEAT, 1);
    tc_expect_nothing_pending(a);
    tc_close(a);
}

/* A heartbeat neither registers, nor unregisters, nor touches
 * subscriptions. */
static void test_heartbeat_changes_nothing(void **state)
{
    int p = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    tc_expect_nothing_pending(p);
    tc_send_data(p, "x", 1, 0);
    tc_register(p, "pub", 1);
    tc_subscribe(s, "pub", 1);
    tc_expect_nothing_pending(p);
    tc_expect_nothing_pending(s);
    tc_check_alive(s, "pub", 1);
    tc_send_data(p, "y", 1, 1);
    tc_expect_data(s, "y", 1);
    tc_close(p);
    tc_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_heartbeat_on_the_wire),
        TC_SERVER_TEST(test_heartbeat_with_trailing_bytes),
        TC_SERVER_TEST(test_heartbeats_pipelined),
        TC_SERVER_TEST(test_heartbeat_changes_nothing),
    };
    return cmocka_run_group_tests_name("v1 HEARTBEAT", tests, NULL, NULL);
}
