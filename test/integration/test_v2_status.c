/*
 * test_v2_status.c - reasons in v2 failure replies (stupidp2p(7), STATUS
 * CODES): 2 not registered, 3 offline, 4 bad argument, 6 unsupported
 * (AUTH), the order 4 before 2 before 3, answers that are not failures
 * keeping their v1 values, and v1 sessions seeing 0 for every failure.
 * Status 7 (limit) is in test_v2_limit_subs.c, unknown commands in
 * test_v2_unknown_commands.c.
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

static void fill_id(uint8_t *id, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        id[i] = (uint8_t)(seed + i);
}

/* 2: the request needs an id and the caller holds none. */
static void test_status_2_not_registered(void **state)
{
    int dst = tc_v2_connect(tc_port(state));
    tc_register(dst, "dst", P2P_STATUS_OK);
    int fd = tc_v2_connect(tc_port(state));
    tc_send_cmd(fd, P2P_CMD_SEND, "data", 4);
    tc_expect_reply(fd, P2P_CMD_SEND, P2P_STATUS_NOT_REGISTERED);
    tc_send_to(fd, "dst", 3, "data", 4);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_NOT_REGISTERED);
    tc_expect_nothing_pending(dst); /* nothing delivered */
    /* After UNREGISTER the caller holds no id again. */
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_unregister(fd);
    tc_send_cmd(fd, P2P_CMD_SEND, "data", 4);
    tc_expect_reply(fd, P2P_CMD_SEND, P2P_STATUS_NOT_REGISTERED);
    tc_close(fd);
    tc_close(dst);
}

/* 3: SEND_TO an id that is offline, never seen, or gone. */
static void test_status_3_offline(void **state)
{
    int fd = tc_v2_connect(tc_port(state));
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_send_to(fd, "never", 5, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    int other = tc_connect(tc_port(state));
    tc_register(other, "gone", P2P_STATUS_OK);
    tc_unregister(other);
    tc_send_to(fd, "gone", 4, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    tc_expect_nothing_pending(other);
    /* Ids are compared exactly: "GONE" and "gone\0" are other ids. */
    tc_register(other, "gone", P2P_STATUS_OK);
    tc_send_to(fd, "GONE", 4, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    tc_send_to(fd, "gone\0", 5, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    tc_expect_nothing_pending(other);
    tc_close(other);
    tc_close(fd);
}

/* 4: empty and over-long ids, own id, length fields running past the
 * frame. */
static void test_status_4_bad_argument(void **state)
{
    int fd = tc_v2_connect(tc_port(state));
    uint8_t long_id[256];
    fill_id(long_id, sizeof long_id, 0x41);

    tc_register_bytes(fd, "", 0, P2P_STATUS_BAD_ARGUMENT);
    tc_register_bytes(fd, long_id, 256, P2P_STATUS_BAD_ARGUMENT);
    tc_register_bytes(fd, long_id, 255, P2P_STATUS_OK); /* 255 is fine */
    tc_register(fd, "me", P2P_STATUS_OK);

    tc_subscribe_bytes(fd, "", 0, P2P_STATUS_BAD_ARGUMENT);
    tc_subscribe_bytes(fd, long_id, 256, P2P_STATUS_BAD_ARGUMENT);
    tc_subscribe(fd, "me", P2P_STATUS_BAD_ARGUMENT); /* own id */
    tc_expect_nothing_pending(fd);                   /* no PRESENCE */

    int dst = tc_v2_connect(tc_port(state));
    tc_register(dst, "dst", P2P_STATUS_OK);
    tc_send_to(fd, "me", 2, "x", 1); /* own id */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    tc_send_to(fd, "", 0, "x", 1); /* id_len 0 */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    static const uint8_t no_len[] = {0x0A};
    tc_send_frame(fd, no_len, sizeof no_len); /* ends before id_len */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    static const uint8_t past[] = {0x0A, 4, 'd', 's', 't'}; /* id runs past */
    tc_send_frame(fd, past, sizeof past);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    static const uint8_t past255[] = {0x0A, 255, 'd', 's', 't'};
    tc_send_frame(fd, past255, sizeof past255);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    tc_expect_nothing_pending(dst); /* none of these delivered anything */
    /* The id exactly filling the frame is fine: empty data. */
    static const uint8_t exact[] = {0x0A, 3, 'd', 's', 't'};
    tc_send_frame(fd, exact, sizeof exact);
    tc_expect_deliver(dst, "me", 2, NULL, 0);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_close(dst);
    tc_close(fd);
}

/* A failed REGISTER keeps the id the connection had. */
static void test_status_4_register_keeps_old_id(void **state)
{
    int fd = tc_v2_connect(tc_port(state));
    int watch = tc_v2_connect(tc_port(state));
    tc_register(fd, "keep", P2P_STATUS_OK);
    tc_v2_subscribe(watch, "keep", P2P_PRESENCE_ONLINE);
    tc_register_bytes(fd, "", 0, P2P_STATUS_BAD_ARGUMENT);
    tc_check_alive(watch, "keep", P2P_STATUS_OK); /* no PRESENCE before it */
    tc_send_data(fd, "still", 5, P2P_STATUS_OK);
    tc_expect_deliver_str(watch, "keep", "still");
    tc_close(watch);
    tc_close(fd);
}

/* 4 before 2 before 3. */
static void test_status_order(void **state)
{
    int fd = tc_v2_connect(tc_port(state)); /* holds no id */
    /* bad argument and not registered: 4 */
    tc_send_to(fd, "", 0, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    static const uint8_t past[] = {0x0A, 9, 'a'};
    tc_send_frame(fd, past, sizeof past);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    /* not registered and offline: 2 */
    tc_send_to(fd, "offline", 7, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_NOT_REGISTERED);
    /* registered, own id (also "offline" for nobody else holds it): 4 */
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_send_to(fd, "me", 2, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    tc_close(fd);
}

/* 6: AUTH is not implemented yet (8C 06); in v1, 8C 00. */
static void test_status_6_auth_unsupported(void **state)
{
    int v2 = tc_v2_connect(tc_port(state));
    tc_send_cmd(v2, P2P_CMD_AUTH, "token", 5);
    tc_expect_reply(v2, P2P_CMD_AUTH, P2P_STATUS_UNSUPPORTED);
    tc_send_cmd(v2, P2P_CMD_AUTH, NULL, 0);
    tc_expect_reply(v2, P2P_CMD_AUTH, P2P_STATUS_UNSUPPORTED);
    int v1 = tc_connect(tc_port(state));
    tc_send_cmd(v1, P2P_CMD_AUTH, "token", 5);
    tc_expect_reply(v1, P2P_CMD_AUTH, 0);
    tc_close(v1);
    tc_close(v2);
}

/* Answers that are not failures keep their v1 values in v2. */
static void test_status_non_failures_keep_v1_values(void **state)
{
    int fd = tc_v2_connect(tc_port(state));
    tc_check_alive(fd, "nobody", 0);       /* 86 00, not 86 03 */
    tc_unregister(fd);                     /* 84 01 without an id */
    tc_unsubscribe(fd, "never-subscribed"); /* 85 01 */
    tc_send_cmd(fd, P2P_CMD_UNSUBSCRIBE, NULL, 0);
    tc_expect_reply(fd, P2P_CMD_UNSUBSCRIBE, P2P_STATUS_OK);
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_check_alive(fd, "me", P2P_STATUS_OK);
    tc_send_data(fd, "nobody listens", 14, P2P_STATUS_OK); /* dropped, 83 01 */
    tc_send_cmd(fd, P2P_CMD_HEARTBEAT, "extra", 5); /* data ignored */
    tc_expect_reply(fd, P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
    tc_close(fd);
}

/* CHECK_ALIVE of an empty or over-long id in v2: 86 04 (v1: 86 00). */
static void test_status_4_check_alive_bad_id(void **state)
{
    uint8_t long_id[256];
    fill_id(long_id, sizeof long_id, 0x61);
    int v2 = tc_v2_connect(tc_port(state));
    tc_send_cmd(v2, P2P_CMD_CHECK_ALIVE, NULL, 0);
    tc_expect_reply(v2, P2P_CMD_CHECK_ALIVE, P2P_STATUS_BAD_ARGUMENT);
    tc_send_cmd(v2, P2P_CMD_CHECK_ALIVE, long_id, sizeof long_id);
    tc_expect_reply(v2, P2P_CMD_CHECK_ALIVE, P2P_STATUS_BAD_ARGUMENT);
    int v1 = tc_connect(tc_port(state));
    tc_send_cmd(v1, P2P_CMD_CHECK_ALIVE, NULL, 0);
    tc_expect_reply(v1, P2P_CMD_CHECK_ALIVE, 0);
    tc_close(v1);
    tc_close(v2);
}

/* v1 sessions see status 0 for every failure, also of v2 commands. */
static void test_status_v1_failures_are_0(void **state)
{
    int fd = tc_connect(tc_port(state));
    tc_register_bytes(fd, "", 0, 0);
    tc_send_cmd(fd, P2P_CMD_SEND, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND, 0);
    tc_send_to(fd, "t", 1, "x", 1); /* not registered */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, 0);
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_subscribe(fd, "me", 0);
    tc_subscribe(fd, "offline", 0);
    tc_send_to(fd, "offline", 7, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, 0);
    tc_send_to(fd, "me", 2, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, 0);
    tc_send_to(fd, "", 0, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, 0);
    static const uint8_t past[] = {0x0A, 9, 'a'};
    tc_send_frame(fd, past, sizeof past);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, 0);
    tc_close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_status_2_not_registered),
        TC_SERVER_TEST(test_status_3_offline),
        TC_SERVER_TEST(test_status_4_bad_argument),
        TC_SERVER_TEST(test_status_4_register_keeps_old_id),
        TC_SERVER_TEST(test_status_order),
        TC_SERVER_TEST(test_status_6_auth_unsupported),
        TC_SERVER_TEST(test_status_non_failures_keep_v1_values),
        TC_SERVER_TEST(test_status_4_check_alive_bad_id),
        TC_SERVER_TEST(test_status_v1_failures_are_0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
