/*
 * test_v2_hello.c - protocol v2 session negotiation (stupidp2p(7), HELLO):
 * the 11-byte reply, version selection (1 stays v1, 3 and up get 2), 88 04
 * for version 0, reserved flags and wrong lengths (the session unchanged),
 * a second HELLO changing flags or version, and HELLO pipelined with the
 * requests after it.
 *
 * Whether a session is v1 or v2 is observed from the outside: the reserved
 * command 0x0D is ignored in v1 and answered 8D 06 in v2, and a SEND
 * without an id gets 83 00 in v1 and 83 02 in v2.
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

/* A fresh connection is v1: the v2-only command 0x0D is ignored. Proves
 * "ignored" with HEARTBEAT ordering. */
static void expect_v1_session(int fd)
{
    tc_send_cmd(fd, 0x0D, NULL, 0);
    tc_expect_nothing_pending(fd);
    tc_send_cmd(fd, P2P_CMD_SEND, "x", 1); /* unregistered: v1 says 0 */
    tc_expect_reply(fd, P2P_CMD_SEND, 0);
}

/* In a v2 session 0x0D is answered 8D 06 and SEND unregistered 83 02. */
static void expect_v2_session(int fd)
{
    tc_send_cmd(fd, 0x0D, NULL, 0);
    tc_expect_reply(fd, 0x0D, P2P_STATUS_UNSUPPORTED);
    tc_send_cmd(fd, P2P_CMD_SEND, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND, P2P_STATUS_NOT_REGISTERED);
}

static void test_hello_v2_reply_bytes(void **state)
{
    int fd = tc_connect(tc_port(state));
    expect_v1_session(fd);
    /* 08 02 00 -> 88 01 02 | 00 01 00 00 | 00 00 01 2c */
    static const uint8_t hello[] = {0x08, 0x02, 0x00};
    static const uint8_t reply[] = {0x88, 0x01, 0x02, 0x00, 0x01, 0x00,
                                    0x00, 0x00, 0x00, 0x01, 0x2c};
    tc_send_frame(fd, hello, sizeof hello);
    tc_expect_frame(fd, reply, sizeof reply);
    expect_v2_session(fd);
    tc_close(fd);
}

static void test_hello_reports_configured_limits(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-frame", "1000", "--idle-timeout", "0", NULL};
    struct p2p_server srv;
    tc_start_server(&srv, args);
    int fd = tc_connect(srv.port);
    tc_expect_hello(fd, 2, 0, 2, 1000, 0);
    tc_close(fd);
    static const char *const args2[] = {"--max-frame", "16777216", "--idle-timeout", "7",
                                        NULL};
    tc_stop_server(&srv);
    tc_start_server(&srv, args2);
    fd = tc_connect(srv.port);
    tc_expect_hello(fd, 2, 0, 2, 16777216, 7);
    tc_close(fd);
    tc_stop_server(&srv);
}

static void test_hello_higher_versions_get_2(void **state)
{
    int fd = tc_connect(tc_port(state));
    tc_expect_hello(fd, 3, 0, 2, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    expect_v2_session(fd);
    tc_close(fd);
    fd = tc_connect(tc_port(state));
    tc_expect_hello(fd, 255, 0, 2, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    expect_v2_session(fd);
    tc_close(fd);
}

static void test_hello_version_1_stays_v1(void **state)
{
    int fd = tc_connect(tc_port(state));
    tc_expect_hello(fd, 1, 0, 1, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    expect_v1_session(fd);
    /* v1 semantics: SUBSCRIBE to an offline id fails with 0, no PRESENCE. */
    tc_subscribe(fd, "nobody", 0);
    tc_expect_nothing_pending(fd);
    tc_close(fd);
}

static void test_hello_version_1_downgrades_v2(void **state)
{
    int fd = tc_v2_connect(tc_port(state));
    expect_v2_session(fd);
    tc_expect_hello(fd, 1, 0, 1, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    expect_v1_session(fd);
    tc_expect_hello(fd, 2, 0, 2, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    expect_v2_session(fd);
    tc_close(fd);
}

/* Version 0, reserved flag bits and wrong lengths get 88 04 and leave the
 * session as it was, v1 or v2. */
static void test_hello_bad_requests_get_88_04(void **state)
{
    static const uint8_t bad[][4] = {
        {0x08, 0x00, 0x00}, /* version 0            */
        {0x08, 0x00, 0x01}, /* version 0 with QUIET */
        {0x08, 0x02, 0x04}, /* reserved flag bit 2  */
        {0x08, 0x02, 0x80}, /* reserved flag bit 7  */
        {0x08, 0x02, 0xFF}, /* every flag bit       */
        {0x08, 0x02, 0x00, 0x00}, /* 4 bytes: too long */
        {0x08, 0x02},       /* 2 bytes: too short   */
        {0x08},             /* command byte only    */
    };
    static const size_t len[] = {3, 3, 3, 3, 3, 4, 2, 1};
    int v1 = tc_connect(tc_port(state));
    int v2 = tc_v2_connect(tc_port(state));
    for (size_t i = 0; i < TC_ARRAY_LEN(len); i++) {
        tc_send_frame(v1, bad[i], len[i]);
        tc_expect_reply(v1, P2P_CMD_HELLO, P2P_STATUS_BAD_ARGUMENT);
        expect_v1_session(v1);
        tc_send_frame(v2, bad[i], len[i]);
        tc_expect_reply(v2, P2P_CMD_HELLO, P2P_STATUS_BAD_ARGUMENT);
        expect_v2_session(v2);
    }
    tc_close(v1);
    tc_close(v2);
}

/* A failed HELLO does not change the flags either: QUIET stays on. */
static void test_hello_failure_keeps_flags(void **state)
{
    int fd = tc_v2_connect_flags(tc_port(state), P2P_HELLO_FLAG_QUIET);
    tc_register(fd, "q", P2P_STATUS_OK);
    static const uint8_t bad[] = {0x08, 0x02, 0x07};
    tc_send_frame(fd, bad, sizeof bad);
    tc_expect_reply(fd, P2P_CMD_HELLO, P2P_STATUS_BAD_ARGUMENT);
    tc_send_cmd(fd, P2P_CMD_SEND, "hi", 2); /* still QUIET: no reply */
    tc_expect_nothing_pending(fd);
    tc_close(fd);
}

/* A second HELLO may change the flags: QUIET on, then off, then on. */
static void test_hello_second_changes_flags(void **state)
{
    int fd = tc_v2_connect(tc_port(state));
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_send_data(fd, "a", 1, P2P_STATUS_OK);
    tc_expect_hello(fd, 2, P2P_HELLO_FLAG_QUIET, 2, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    tc_send_cmd(fd, P2P_CMD_SEND, "b", 1);
    tc_expect_nothing_pending(fd);
    tc_expect_hello(fd, 2, 0, 2, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    tc_send_data(fd, "c", 1, P2P_STATUS_OK);
    tc_expect_hello(fd, 2, P2P_HELLO_FLAG_QUIET, 2, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    tc_send_cmd(fd, P2P_CMD_SEND, "d", 1);
    tc_expect_nothing_pending(fd);
    tc_close(fd);
}

/* HELLO and the requests after it sent in one write: the HELLO reply comes
 * first and the next request is already handled as v2. This is also how a
 * client tells this server from the original: HELLO then HEARTBEAT, and the
 * HELLO reply arrives before 87 01. */
static void test_hello_pipelined_with_next_requests(void **state)
{
    int fd = tc_connect(tc_port(state));
    static const uint8_t burst[] = {
        0, 0, 0, 3, 0x08, 0x02, 0x00, /* HELLO 2        */
        0, 0, 0, 1, 0x07,             /* HEARTBEAT      */
        0, 0, 0, 1, 0x0D,             /* reserved: 8D 06 */
    };
    tc_send_raw(fd, burst, sizeof burst);
    static const uint8_t reply[] = {0x88, 0x01, 0x02, 0x00, 0x01, 0x00,
                                    0x00, 0x00, 0x00, 0x01, 0x2c};
    tc_expect_frame(fd, reply, sizeof reply);
    tc_expect_reply(fd, P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
    tc_expect_reply(fd, 0x0D, P2P_STATUS_UNSUPPORTED);
    tc_close(fd);
}

/* HELLO split byte by byte still gets exactly one reply. */
static void test_hello_byte_by_byte(void **state)
{
    int fd = tc_connect(tc_port(state));
    static const uint8_t frame[] = {0, 0, 0, 3, 0x08, 0x02, 0x01};
    for (size_t i = 0; i < sizeof frame; i++)
        tc_send_raw(fd, frame + i, 1);
    static const uint8_t reply[] = {0x88, 0x01, 0x02, 0x00, 0x01, 0x00,
                                    0x00, 0x00, 0x00, 0x01, 0x2c};
    tc_expect_frame(fd, reply, sizeof reply);
    tc_expect_nothing_pending(fd);
    tc_close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_hello_v2_reply_bytes),
        cmocka_unit_test(test_hello_reports_configured_limits),
        TC_SERVER_TEST(test_hello_higher_versions_get_2),
        TC_SERVER_TEST(test_hello_version_1_stays_v1),
        TC_SERVER_TEST(test_hello_version_1_downgrades_v2),
        TC_SERVER_TEST(test_hello_bad_requests_get_88_04),
        TC_SERVER_TEST(test_hello_failure_keeps_flags),
        TC_SERVER_TEST(test_hello_second_changes_flags),
        TC_SERVER_TEST(test_hello_pipelined_with_next_requests),
        TC_SERVER_TEST(test_hello_byte_by_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
