/*
 * test_v2_quiet.c - the HELLO flag QUIET (stupidp2p(7), HELLO): successful
 * SEND and SEND_TO are not acknowledged, failures still are, other requests
 * are answered as usual, the flag does nothing in a v1 session, and a
 * second HELLO turns it off. "No reply" is proved by HEARTBEAT ordering.
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

/* QUIET: a successful SEND gets no reply, but the data is delivered. */
static void test_quiet_send_success_unacknowledged(void **state)
{
    int sub = tc_v2_connect(tc_port(state));
    int pub = tc_v2_connect_flags(tc_port(state), P2P_HELLO_FLAG_QUIET);
    tc_register(pub, "pub", P2P_STATUS_OK);
    tc_v2_subscribe(sub, "pub", P2P_PRESENCE_ONLINE);
    tc_send_cmd(pub, P2P_CMD_SEND, "one", 3);
    tc_send_cmd(pub, P2P_CMD_SEND, "two", 3);
    tc_expect_nothing_pending(pub); /* no 83 01 before the 87 01 */
    tc_expect_deliver_str(sub, "pub", "one");
    tc_expect_deliver_str(sub, "pub", "two");
    tc_expect_nothing_pending(sub);
    /* Requests other than SEND / SEND_TO are still answered. */
    tc_check_alive(pub, "pub", P2P_STATUS_OK);
    tc_close(sub);
    tc_close(pub);
}

/* QUIET: a successful SEND_TO gets no reply either. */
static void test_quiet_send_to_success_unacknowledged(void **state)
{
    int dst = tc_v2_connect(tc_port(state));
    tc_register(dst, "dst", P2P_STATUS_OK);
    int src = tc_v2_connect_flags(tc_port(state), P2P_HELLO_FLAG_QUIET);
    tc_register(src, "src", P2P_STATUS_OK);
    tc_send_to(src, "dst", 3, "hey", 3);
    tc_expect_nothing_pending(src);
    tc_expect_deliver_str(dst, "src", "hey");
    tc_close(src);
    tc_close(dst);
}

/* QUIET: failures are still answered, with their reasons. */
static void test_quiet_failures_still_answered(void **state)
{
    int fd = tc_v2_connect_flags(tc_port(state), P2P_HELLO_FLAG_QUIET);
    tc_send_cmd(fd, P2P_CMD_SEND, "x", 1); /* no id */
    tc_expect_reply(fd, P2P_CMD_SEND, P2P_STATUS_NOT_REGISTERED);
    tc_send_to(fd, "t", 1, "x", 1); /* no id */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_NOT_REGISTERED);
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_send_to(fd, "gone", 4, "x", 1); /* offline */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    tc_send_to(fd, "me", 2, "x", 1); /* own id */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    tc_close(fd);
}

/* QUIET has no effect in a v1 session (HELLO version 1 with the flag). */
static void test_quiet_ignored_in_v1_session(void **state)
{
    int fd = tc_connect(tc_port(state));
    tc_expect_hello(fd, 1, P2P_HELLO_FLAG_QUIET, 1, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    tc_register(fd, "v1", P2P_STATUS_OK);
    tc_send_data(fd, "x", 1, P2P_STATUS_OK);
    int dst = tc_connect(tc_port(state));
    tc_register(dst, "dst", P2P_STATUS_OK);
    tc_subscribe(dst, "v1", P2P_STATUS_OK); /* a v1 target hears only its publishers */
    tc_send_to(fd, "dst", 3, "y", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_expect_data(dst, "y", 1);
    tc_close(dst);
    tc_close(fd);
}

/* Turning QUIET off with a second HELLO brings the replies back. */
static void test_quiet_turned_off(void **state)
{
    int fd = tc_v2_connect_flags(tc_port(state), P2P_HELLO_FLAG_QUIET);
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_send_cmd(fd, P2P_CMD_SEND, "q", 1);
    tc_expect_nothing_pending(fd);
    tc_expect_hello(fd, 2, 0, 2, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    tc_send_data(fd, "loud", 4, P2P_STATUS_OK);
    tc_close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_quiet_send_success_unacknowledged),
        TC_SERVER_TEST(test_quiet_send_to_success_unacknowledged),
        TC_SERVER_TEST(test_quiet_failures_still_answered),
        TC_SERVER_TEST(test_quiet_ignored_in_v1_session),
        TC_SERVER_TEST(test_quiet_turned_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
