/*
 * test_v2_send_to.c - SEND_TO (stupidp2p(7), SEND_TO): delivered to the one
 * target, as DELIVER to a v2 session and as [03] + data to a v1 session
 * that subscribes to the sender (one that does not gets nothing, the
 * sender 8A 05: test_v1_send_to_spoof.c); offline targets get 8A 03 (8A 00
 * from a v1 session); a v1 session may use SEND_TO too; binary and 255-byte
 * ids and the largest data; order kept.
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

/* v2 sender to an online v2 target: DELIVER naming the sender, 8A 01.
 * The target needs no subscription; the sender's subscribers get nothing. */
static void test_send_to_online_v2_target(void **state)
{
    int bob = tc_v2_connect(tc_port(state));
    tc_register(bob, "bob", P2P_STATUS_OK);
    int alice = tc_v2_connect(tc_port(state));
    tc_register(alice, "alice", P2P_STATUS_OK);
    int fan = tc_v2_connect(tc_port(state)); /* subscribes to bob: must see nothing */
    tc_v2_subscribe(fan, "bob", P2P_PRESENCE_ONLINE);

    static const uint8_t req[] = {0x0a, 0x05, 'a', 'l', 'i', 'c', 'e', 'y', 'o'};
    tc_send_frame(bob, req, sizeof req);
    static const uint8_t deliver[] = {0x09, 0x03, 'b', 'o', 'b', 'y', 'o'};
    tc_expect_frame(alice, deliver, sizeof deliver);
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_expect_nothing_pending(fan);
    tc_expect_nothing_pending(bob);
    tc_expect_nothing_pending(alice);
    tc_close(fan);
    tc_close(alice);
    tc_close(bob);
}

/* Offline and unknown targets: 8A 03 and nothing delivered anywhere. */
static void test_send_to_offline_target(void **state)
{
    int bob = tc_v2_connect(tc_port(state));
    tc_register(bob, "bob", P2P_STATUS_OK);
    tc_send_to(bob, "carol", 5, "!", 1);
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    int watch = tc_v2_connect(tc_port(state)); /* tells when carol comes and goes */
    tc_v2_subscribe(watch, "carol", P2P_PRESENCE_OFFLINE);
    int carol = tc_v2_connect(tc_port(state));
    tc_register(carol, "carol", P2P_STATUS_OK);
    tc_expect_presence(watch, P2P_PRESENCE_ONLINE, "carol");
    tc_expect_nothing_pending(carol); /* not stored for later */
    tc_send_to(bob, "carol", 5, "?", 1);
    tc_expect_deliver_str(carol, "bob", "?");
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_close(carol); /* gone again */
    tc_expect_presence(watch, P2P_PRESENCE_OFFLINE, "carol");
    tc_close(watch);
    tc_send_to(bob, "carol", 5, "!", 1);
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    tc_close(bob);
}

/* A v1 target (never said HELLO, or said HELLO 1) that subscribes to the
 * sender receives [03] + data. */
static void test_send_to_v1_target(void **state)
{
    int bob = tc_v2_connect(tc_port(state));
    tc_register(bob, "bob", P2P_STATUS_OK);
    int old = tc_connect(tc_port(state));
    tc_register(old, "old", P2P_STATUS_OK);
    tc_subscribe(old, "bob", P2P_STATUS_OK);
    int down = tc_connect(tc_port(state));
    tc_expect_hello(down, 1, 0, 1, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    tc_register(down, "down", P2P_STATUS_OK);
    tc_subscribe(down, "bob", P2P_STATUS_OK);
    tc_send_to(bob, "old", 3, "plain", 5);
    tc_expect_data(old, "plain", 5);
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_send_to(bob, "down", 4, "\x00\xff", 2);
    tc_expect_data(down, "\x00\xff", 2);
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_send_to(bob, "old", 3, NULL, 0);
    tc_expect_data(old, NULL, 0);
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_close(old);
    tc_close(down);
    tc_close(bob);
}

/* From a v1 session: success is 8A 01 (the target gets its own format);
 * every failure is 8A 00. */
static void test_send_to_from_v1_session(void **state)
{
    int v2 = tc_v2_connect(tc_port(state));
    tc_register(v2, "new", P2P_STATUS_OK);
    int v1t = tc_connect(tc_port(state));
    tc_register(v1t, "v1t", P2P_STATUS_OK);
    int v1 = tc_connect(tc_port(state));
    tc_send_to(v1, "new", 3, "x", 1); /* holds no id */
    tc_expect_reply(v1, P2P_CMD_SEND_TO, 0);
    tc_register(v1, "v1", P2P_STATUS_OK);
    tc_subscribe(v1t, "v1", P2P_STATUS_OK);
    tc_send_to(v1, "new", 3, "to v2", 5);
    tc_expect_deliver_str(v2, "v1", "to v2");
    tc_expect_reply(v1, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_send_to(v1, "v1t", 3, "to v1", 5);
    tc_expect_data(v1t, "to v1", 5);
    tc_expect_reply(v1, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_send_to(v1, "nobody", 6, "x", 1); /* offline */
    tc_expect_reply(v1, P2P_CMD_SEND_TO, 0);
    tc_send_to(v1, "v1", 2, "x", 1); /* own id */
    tc_expect_reply(v1, P2P_CMD_SEND_TO, 0);
    tc_expect_nothing_pending(v1);
    tc_expect_nothing_pending(v2);
    tc_expect_nothing_pending(v1t);
    tc_close(v1);
    tc_close(v1t);
    tc_close(v2);
}

/* Binary ids, a 255-byte target id and the largest data that fits. */
static void test_send_to_binary_and_large(void **state)
{
    uint8_t target[255];
    for (size_t i = 0; i < sizeof target; i++)
        target[i] = (uint8_t)(i ^ 0xA5);
    static const uint8_t sender[] = {0x00, 0x01, 0x00};
    int dst = tc_v2_connect(tc_port(state));
    tc_register_bytes(dst, target, sizeof target, P2P_STATUS_OK);
    int src = tc_v2_connect(tc_port(state));
    tc_register_bytes(src, sender, sizeof sender, P2P_STATUS_OK);
    size_t len = TC_DEFAULT_MAX_FRAME - 2 - sizeof target; /* payload = max_frame */
    uint8_t *data = tc_xmalloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i % 251);
    tc_send_to(src, target, sizeof target, data, len);
    tc_expect_deliver(dst, sender, sizeof sender, data, len);
    tc_expect_reply(src, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    free(data);
    tc_close(dst);
    tc_close(src);
}

/* Messages from one sender to one target keep their order, also when
 * interleaved with SENDs to subscribers. */
static void test_send_to_order(void **state)
{
    int dst = tc_v2_connect(tc_port(state));
    tc_register(dst, "dst", P2P_STATUS_OK);
    tc_v2_subscribe(dst, "src", P2P_PRESENCE_OFFLINE);
    int src = tc_v2_connect_flags(tc_port(state), P2P_HELLO_FLAG_QUIET);
    tc_register(src, "src", P2P_STATUS_OK);
    tc_expect_presence(dst, P2P_PRESENCE_ONLINE, "src");
    char msg[16];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(msg, sizeof msg, "%d", i);
        if (i % 2)
            tc_send_to(src, "dst", 3, msg, (size_t)n);
        else
            tc_send_cmd(src, P2P_CMD_SEND, msg, (size_t)n);
    }
    tc_expect_nothing_pending(src); /* QUIET: all 100 went unacknowledged */
    for (int i = 0; i < 100; i++) {
        snprintf(msg, sizeof msg, "%d", i);
        tc_expect_deliver_str(dst, "src", msg);
    }
    tc_expect_nothing_pending(dst);
    tc_close(dst);
    tc_close(src);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_send_to_online_v2_target),
        TC_SERVER_TEST(test_send_to_offline_target),
        TC_SERVER_TEST(test_send_to_v1_target),
        TC_SERVER_TEST(test_send_to_from_v1_session),
        TC_SERVER_TEST(test_send_to_binary_and_large),
        TC_SERVER_TEST(test_send_to_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
