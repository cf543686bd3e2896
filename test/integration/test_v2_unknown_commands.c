/*
 * test_v2_unknown_commands.c - command bytes a v2 server does not take from
 * clients (stupidp2p(7), REQUESTS AND REPLIES): the event codes 0x09, 0x0B,
 * 0x0E, 0x18..0x1B and the reserved 0x0D, 0x15..0x17, 0x1C..0x7F get
 * [cmd|0x80, 06] in a v2
 * session and are ignored in a v1 session, as are empty frames in both.
 * Command bytes >= 0x80 in v2 are protocol errors: test_v2_bye.c.
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

/* Server-to-client codes, reserved codes and the top of the range, each
 * with and without data. */
static const uint8_t unknown[] = {0x09, 0x0B, 0x0D, 0x0E, 0x0F, 0x15, 0x18, 0x1B, 0x1C, 0x40, 0x7E, 0x7F};

static void test_unknown_v2_answered_6(void **state)
{
    int fd = tc_v2_connect(tc_port(state));
    for (size_t i = 0; i < TC_ARRAY_LEN(unknown); i++) {
        tc_send_cmd(fd, unknown[i], NULL, 0);
        tc_expect_reply(fd, unknown[i], P2P_STATUS_UNSUPPORTED);
        tc_send_cmd(fd, unknown[i], "\x01\x03" "abc", 5);
        tc_expect_reply(fd, unknown[i], P2P_STATUS_UNSUPPORTED);
    }
    /* The connection is still fine. */
    tc_register(fd, "still-here", P2P_STATUS_OK);
    tc_close(fd);
}

/* Exact bytes for the codes the brief names. */
static void test_unknown_v2_exact_bytes(void **state)
{
    int fd = tc_v2_connect(tc_port(state));
    static const uint8_t pairs[][3] = {
        {0x09, 0x89, 0x06}, {0x0B, 0x8B, 0x06}, {0x0D, 0x8D, 0x06},
        {0x0E, 0x8E, 0x06}, {0x7F, 0xFF, 0x06},
    };
    for (size_t i = 0; i < TC_ARRAY_LEN(pairs); i++) {
        tc_send_frame(fd, pairs[i], 1);
        tc_expect_frame(fd, pairs[i] + 1, 2);
    }
    tc_close(fd);
}

/* Many unknown commands in one write: one reply each, in order. */
static void test_unknown_v2_pipelined(void **state)
{
    int fd = tc_v2_connect(tc_port(state));
    uint8_t burst[TC_ARRAY_LEN(unknown) * 5 + 5];
    size_t n = 0;
    for (size_t i = 0; i < TC_ARRAY_LEN(unknown); i++) {
        burst[n++] = 0, burst[n++] = 0, burst[n++] = 0, burst[n++] = 1;
        burst[n++] = unknown[i];
    }
    burst[n++] = 0, burst[n++] = 0, burst[n++] = 0, burst[n++] = 1;
    burst[n++] = P2P_CMD_HEARTBEAT;
    tc_send_raw(fd, burst, n);
    for (size_t i = 0; i < TC_ARRAY_LEN(unknown); i++)
        tc_expect_reply(fd, unknown[i], P2P_STATUS_UNSUPPORTED);
    tc_expect_reply(fd, P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
    tc_close(fd);
}

/* v1 ignores all of them silently, and empty frames too, in both. */
static void test_unknown_v1_ignored(void **state)
{
    int fd = tc_connect(tc_port(state));
    for (size_t i = 0; i < TC_ARRAY_LEN(unknown); i++) {
        tc_send_cmd(fd, unknown[i], NULL, 0);
        tc_send_cmd(fd, unknown[i], "\x01\x03" "abc", 5);
    }
    static const uint8_t high[] = {0x80, 0x81, 0x88, 0xFF};
    for (size_t i = 0; i < TC_ARRAY_LEN(high); i++)
        tc_send_cmd(fd, high[i], "zz", 2);
    tc_send_frame(fd, NULL, 0);
    tc_expect_nothing_pending(fd);
    tc_close(fd);
    int v2 = tc_v2_connect(tc_port(state));
    tc_send_frame(v2, NULL, 0);
    tc_expect_nothing_pending(v2);
    tc_close(v2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_unknown_v2_answered_6),
        TC_SERVER_TEST(test_unknown_v2_exact_bytes),
        TC_SERVER_TEST(test_unknown_v2_pipelined),
        TC_SERVER_TEST(test_unknown_v1_ignored),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
