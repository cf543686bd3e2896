/*
 * test_v2_deliver.c - DELIVER (stupidp2p(7), EVENTS): a v2 subscriber gets
 * [09][id_len][sender id][data] byte for byte, with the right sender among
 * several, binary and 255-byte ids, empty and largest data (a frame larger
 * than max_frame), the id held at send time; once per subscriber; queued
 * before the sender's reply; never stored for later.
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

/* SEND reaches a v2 subscriber as DELIVER with the sender's id. */
static void test_deliver_carries_sender_id(void **state)
{
    int pub = tc_v2_connect(tc_port(state));
    tc_register(pub, "alice", P2P_STATUS_OK);
    int sub = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(sub, "alice", P2P_PRESENCE_ONLINE);
    tc_send_data(pub, "hi", 2, P2P_STATUS_OK);
    static const uint8_t want[] = {0x09, 0x05, 'a', 'l', 'i', 'c', 'e', 'h', 'i'};
    tc_expect_frame(sub, want, sizeof want);
    tc_expect_nothing_pending(pub); /* the sender gets no copy */
    tc_close(pub);
    tc_close(sub);
}

/* Each sender is named correctly; a subscriber of several devices can tell
 * them apart; messages of one sender keep their order. */
static void test_deliver_several_senders(void **state)
{
    int p1 = tc_v2_connect(tc_port(state));
    tc_register(p1, "p1", P2P_STATUS_OK);
    int p2 = tc_connect(tc_port(state)); /* a v1 publisher is named too */
    tc_register(p2, "p2", P2P_STATUS_OK);
    int sub = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(sub, "p1", P2P_PRESENCE_ONLINE);
    tc_v2_subscribe(sub, "p2", P2P_PRESENCE_ONLINE);
    char msg[32];
    for (int i = 0; i < 20; i++) {
        int n = snprintf(msg, sizeof msg, "m%d", i);
        tc_send_data(i % 3 == 0 ? p2 : p1, msg, (size_t)n, P2P_STATUS_OK);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(msg, sizeof msg, "m%d", i);
        tc_expect_deliver_str(sub, i % 3 == 0 ? "p2" : "p1", msg);
    }
    tc_expect_nothing_pending(sub);
    tc_close(p1);
    tc_close(p2);
    tc_close(sub);
}

/* Ids with NUL and high bytes and the longest id (255 bytes) come back byte
 * for byte, with an empty message and a binary one. */
static void test_deliver_binary_ids_and_data(void **state)
{
    static const uint8_t odd_id[] = {0x00, 0xFF, 0x80, '\n', 0x00};
    uint8_t long_id[255];
    for (size_t i = 0; i < sizeof long_id; i++)
        long_id[i] = (uint8_t)(255 - i);
    uint8_t data[256];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)i;

    int p1 = tc_v2_connect(tc_port(state));
    tc_register_bytes(p1, odd_id, sizeof odd_id, P2P_STATUS_OK);
    int p2 = tc_v2_connect(tc_port(state));
    tc_register_bytes(p2, long_id, sizeof long_id, P2P_STATUS_OK);
    int sub = tc_v2_connect(tc_port(state));
    tc_subscribe_bytes(sub, odd_id, sizeof odd_id, P2P_STATUS_OK);
    tc_expect_presence_bytes(sub, P2P_PRESENCE_ONLINE, odd_id, sizeof odd_id);
    tc_subscribe_bytes(sub, long_id, sizeof long_id, P2P_STATUS_OK);
    tc_expect_presence_bytes(sub, P2P_PRESENCE_ONLINE, long_id, sizeof long_id);

    tc_send_data(p1, data, sizeof data, P2P_STATUS_OK);
    tc_expect_deliver(sub, odd_id, sizeof odd_id, data, sizeof data);
    tc_send_data(p2, NULL, 0, P2P_STATUS_OK);
    tc_expect_deliver(sub, long_id, sizeof long_id, NULL, 0);
    tc_send_data(p2, data, 1, P2P_STATUS_OK);
    tc_expect_deliver(sub, long_id, sizeof long_id, data, 1);
    tc_close(p1);
    tc_close(p2);
    tc_close(sub);
}

/* The largest SEND (payload = max_frame) from the longest id: the DELIVER
 * is max_frame + 256 bytes, larger than a client may send. */
static void test_deliver_largest_frame(void **state)
{
    uint8_t long_id[255];
    memset(long_id, 'L', sizeof long_id);
    size_t len = TC_DEFAULT_MAX_FRAME - 1;
    uint8_t *data = tc_xmalloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    int pub = tc_v2_connect(tc_port(state));
    tc_register_bytes(pub, long_id, sizeof long_id, P2P_STATUS_OK);
    int sub = tc_v2_connect(tc_port(state));
    tc_subscribe_bytes(sub, long_id, sizeof long_id, P2P_STATUS_OK);
    tc_expect_presence_bytes(sub, P2P_PRESENCE_ONLINE, long_id, sizeof long_id);
    tc_send_data(pub, data, len, P2P_STATUS_OK);
    tc_expect_deliver(sub, long_id, sizeof long_id, data, len);
    free(data);
    tc_close(pub);
    tc_close(sub);
}

/* The sender id is the id held when the SEND was handled: after the
 * publisher moves to another id, DELIVERs name the new one (to the
 * subscribers of the new one). */
static void test_deliver_names_current_id(void **state)
{
    int pub = tc_v2_connect(tc_port(state));
    tc_register(pub, "old", P2P_STATUS_OK);
    int sub = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(sub, "old", P2P_PRESENCE_ONLINE);
    tc_v2_subscribe(sub, "new", P2P_PRESENCE_OFFLINE);
    tc_send_data(pub, "1", 1, P2P_STATUS_OK);
    tc_expect_deliver_str(sub, "old", "1");
    tc_register(pub, "new", P2P_STATUS_OK);
    tc_expect_presence(sub, P2P_PRESENCE_OFFLINE, "old");
    tc_expect_presence(sub, P2P_PRESENCE_ONLINE, "new");
    tc_send_data(pub, "2", 1, P2P_STATUS_OK);
    tc_expect_deliver_str(sub, "new", "2");
    tc_expect_nothing_pending(sub);
    tc_close(pub);
    tc_close(sub);
}

/* Subscribing twice delivers once; unsubscribing stops delivery. */
static void test_deliver_once_and_unsubscribe(void **state)
{
    int pub = tc_v2_connect(tc_port(state));
    tc_register(pub, "pub", P2P_STATUS_OK);
    int sub = tc_v2_connect(tc_port(state));
    for (int i = 0; i < 2; i++) {
        tc_v2_subscribe(sub, "pub", P2P_PRESENCE_ONLINE);
    }
    tc_send_data(pub, "x", 1, P2P_STATUS_OK);
    tc_expect_deliver_str(sub, "pub", "x");
    tc_expect_nothing_pending(sub);
    tc_unsubscribe(sub, "pub");
    tc_send_data(pub, "y", 1, P2P_STATUS_OK);
    tc_expect_nothing_pending(sub);
    tc_close(pub);
    tc_close(sub);
}

/* The deliveries are queued before the sender's 83 01: once the sender has
 * its reply, a subscriber's HEARTBEAT is answered after the DELIVER. The
 * subscriber's heartbeat is pipelined behind many SENDs to make a race
 * likely if the server got this wrong. */
static void test_deliver_before_sender_reply(void **state)
{
    int pub = tc_v2_connect(tc_port(state));
    tc_register(pub, "pub", P2P_STATUS_OK);
    int subs[3];
    for (size_t s = 0; s < TC_ARRAY_LEN(subs); s++) {
        subs[s] = tc_v2_connect(tc_port(state));
        tc_v2_subscribe(subs[s], "pub", P2P_PRESENCE_ONLINE);
    }
    char msg[16];
    for (int round = 0; round < 50; round++) {
        int n = snprintf(msg, sizeof msg, "r%d", round);
        tc_send_data(pub, msg, (size_t)n, P2P_STATUS_OK);
        for (size_t s = 0; s < TC_ARRAY_LEN(subs); s++) {
            tc_send_cmd(subs[s], P2P_CMD_HEARTBEAT, NULL, 0);
            tc_expect_deliver_str(subs[s], "pub", msg);
            tc_expect_reply(subs[s], P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
        }
    }
    for (size_t s = 0; s < TC_ARRAY_LEN(subs); s++)
        tc_close(subs[s]);
    tc_close(pub);
}

/* No store-and-forward: a device that subscribes after a message was sent,
 * or registers after a SEND_TO failed, never receives it. */
static void test_deliver_no_store_and_forward(void **state)
{
    int pub = tc_v2_connect(tc_port(state));
    tc_register(pub, "pub", P2P_STATUS_OK);
    tc_send_data(pub, "early", 5, P2P_STATUS_OK);
    tc_send_to(pub, "late", 4, "early", 5);
    tc_expect_reply(pub, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    int late = tc_v2_connect(tc_port(state));
    tc_register(late, "late", P2P_STATUS_OK);
    tc_v2_subscribe(late, "pub", P2P_PRESENCE_ONLINE);
    tc_expect_nothing_pending(late);
    tc_send_data(pub, "now", 3, P2P_STATUS_OK);
    tc_expect_deliver_str(late, "pub", "now");
    tc_close(late);
    tc_close(pub);
}

/* REGISTER (of a first or a second id) does not touch the connection's own
 * subscriptions; UNREGISTER cancels them. */
static void test_deliver_own_subscriptions_survive_register(void **state)
{
    int pub = tc_v2_connect(tc_port(state));
    tc_register(pub, "pub", P2P_STATUS_OK);
    int dev = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(dev, "pub", P2P_PRESENCE_ONLINE);
    tc_register(dev, "first", P2P_STATUS_OK);
    tc_register(dev, "second", P2P_STATUS_OK);
    tc_send_data(pub, "still", 5, P2P_STATUS_OK);
    tc_expect_deliver_str(dev, "pub", "still");
    tc_unregister(dev);
    tc_send_data(pub, "gone", 4, P2P_STATUS_OK);
    tc_expect_nothing_pending(dev);
    tc_close(dev);
    tc_close(pub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_deliver_carries_sender_id),
        TC_SERVER_TEST(test_deliver_several_senders),
        TC_SERVER_TEST(test_deliver_binary_ids_and_data),
        TC_SERVER_TEST(test_deliver_largest_frame),
        TC_SERVER_TEST(test_deliver_names_current_id),
        TC_SERVER_TEST(test_deliver_once_and_unsubscribe),
        TC_SERVER_TEST(test_deliver_before_sender_reply),
        TC_SERVER_TEST(test_deliver_no_store_and_forward),
        TC_SERVER_TEST(test_deliver_own_subscriptions_survive_register),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
