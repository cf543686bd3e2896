/*
 * test_v1_send.c - v1 SEND (0x03): 83 01 to a registered sender (with or
 * without subscribers), 83 00 without an id; subscribers get [0x03] + data
 * byte for byte, empty data included; the sender gets no copy.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "harness.h"
#include "protocol.h"

static void test_send_without_id_fails(void **state)
{
    int a = tc_connect(tc_port(state));
    static const uint8_t req[] = {0, 0, 0, 3, 0x03, 'h', 'i'};
    static const uint8_t rep[] = {0, 0, 0, 2, 0x83, 0x00};
    tc_send_raw(a, req, sizeof req);
    tc_expect_raw(a, rep, sizeof rep);
    assert_true(tc_is_open(a));
    tc_close(a);
}

static void test_send_without_subscribers_succeeds(void **state)
{
    int a = tc_connect(tc_port(state));
    tc_register(a, "lonely", 1);
    static const uint8_t req[] = {0, 0, 0, 3, 0x03, 'h', 'i'};
    static const uint8_t rep[] = {0, 0, 0, 2, 0x83, 0x01};
    tc_send_raw(a, req, sizeof req);
    tc_expect_raw(a, rep, sizeof rep);
    tc_expect_nothing_pending(a);
    tc_close(a);
}

static void test_send_delivers_exact_bytes(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    uint8_t data[256];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)(255 - i);
    tc_send_data(p, data, sizeof data, 1);
    uint8_t wire[4 + 1 + sizeof data];
    wire[0] = 0;
    wire[1] = 0;
    wire[2] = 0x01;
    wire[3] = 0x01; /* 257 */
    wire[4] = 0x03;
    memcpy(wire + 5, data, sizeof data);
    tc_expect_raw(s, wire, sizeof wire);
    tc_expect_nothing_pending(s);
    tc_expect_nothing_pending(p);
    tc_close(p);
    tc_close(s);
}

/* SEND with no data: subscribers get the one-byte payload 03. */
static void test_send_empty_data(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    static const uint8_t req[] = {0, 0, 0, 1, 0x03};
    static const uint8_t rep[] = {0, 0, 0, 2, 0x83, 0x01};
    tc_send_raw(p, req, sizeof req);
    tc_expect_raw(p, rep, sizeof rep);
    static const uint8_t wire[] = {0, 0, 0, 1, 0x03};
    tc_expect_raw(s, wire, sizeof wire);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

/* Data that looks like frames or commands is data. */
static void test_send_data_that_looks_like_protocol(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    static const uint8_t data[] = {0, 0, 0, 2, 0x87, 0x01, 0, 0, 0, 0, 0x01, 'x'};
    tc_send_data(p, data, sizeof data, 1);
    tc_expect_data(s, data, sizeof data);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

static void test_send_after_unregister_fails(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    tc_unregister(p);
    tc_send_data(p, "late", 4, 0);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

/* Replies come in request order even when SENDs and other commands are
 * pipelined in one write. */
static void test_send_pipelined_replies_in_order(void **state)
{
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    static const uint8_t stream[] = {
        0, 0, 0, 2, 0x03, '1',                /* SEND "1"         */
        0, 0, 0, 1, 0x07,                     /* HEARTBEAT        */
        0, 0, 0, 2, 0x03, '2',                /* SEND "2"         */
        0, 0, 0, 4, 0x06, 'p', 'u', 'b',      /* CHECK_ALIVE pub  */
        0, 0, 0, 1, 0x04,                     /* UNREGISTER       */
        0, 0, 0, 2, 0x03, '3',                /* SEND "3": no id  */
    };
    tc_send_raw(p, stream, sizeof stream);
    tc_expect_reply(p, P2P_CMD_SEND, 1);
    tc_expect_reply(p, P2P_CMD_HEARTBEAT, 1);
    tc_expect_reply(p, P2P_CMD_SEND, 1);
    tc_expect_reply(p, P2P_CMD_CHECK_ALIVE, 1);
    tc_expect_reply(p, P2P_CMD_UNREGISTER, 1);
    tc_expect_reply(p, P2P_CMD_SEND, 0);
    tc_expect_nothing_pending(p);
    tc_expect_data(s, "1", 1);
    tc_expect_data(s, "2", 1);
    tc_expect_nothing_pending(s);
    tc_close(p);
    tc_close(s);
}

/* The sender never gets a copy, even when it is subscribed to the id it now
 * holds: it subscribed while another connection held the id, then took the
 * id over (or registered it after the holder left). */
static void test_no_copy_to_sender_subscribed_to_own_id(void **state)
{
    int a = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    int other = tc_connect(tc_port(state));
    tc_register(a, "dev", 1);
    tc_subscribe(s, "dev", 1);
    tc_subscribe(other, "dev", 1);
    /* Takeover: s now holds "dev" and is still subscribed to it. */
    tc_register(s, "dev", 1);
    tc_expect_closed(a, TC_WAIT_MS, 0);
    tc_send_data(s, "mine", 4, 1);
    tc_expect_data(other, "mine", 4);
    tc_expect_nothing_pending(s);
    /* The same after unregister and register again. */
    tc_unregister(s); /* cancels s's subscriptions too */
    int b = tc_connect(tc_port(state));
    tc_register(b, "dev2", 1);
    tc_subscribe(s, "dev2", 1);
    tc_close_and_wait(b);
    tc_register(s, "dev2", 1);
    tc_send_data(s, "again", 5, 1);
    tc_expect_nothing_pending(s);
    tc_close(a);
    tc_close(s);
    tc_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_send_without_id_fails),
        TC_SERVER_TEST(test_send_without_subscribers_succeeds),
        TC_SERVER_TEST(test_send_delivers_exact_bytes),
        TC_SERVER_TEST(test_send_empty_data),
        TC_SERVER_TEST(test_send_data_that_looks_like_protocol),
        TC_SERVER_TEST(test_send_after_unregister_fails),
        TC_SERVER_TEST(test_send_pipelined_replies_in_order),
        TC_SERVER_TEST(test_no_copy_to_sender_subscribed_to_own_id),
    };
    return cmocka_run_group_tests_name("v1 SEND", tests, NULL, NULL);
}
