/*
 * test_v1_oversize.c - a frame header announcing more than the maximum
 * payload (65536 by default, --max-frame) closes that connection only, as
 * soon as the header is read; frames of exactly the maximum are fine.
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

/* Sends a header announcing len bytes and expects the close, with nothing
 * sent to us first. */
static void expect_header_closes(uint16_t port, uint32_t len)
{
    int a = tc_connect(port);
    uint8_t h[4];
    tc_put_u32(h, len);
    tc_send_raw(a, h, sizeof h);
    tc_expect_closed(a, TC_WAIT_MS, 0);
    tc_close(a);
}

static void test_default_limit_plus_one_closes(void **state)
{
    expect_header_closes(tc_port(state), P2P_DEFAULT_MAX_FRAME + 1);
}

static void test_huge_lengths_close(void **state)
{
    expect_header_closes(tc_port(state), 0x00100000);
    expect_header_closes(tc_port(state), 0x7fffffff);
    expect_header_closes(tc_port(state), 0x80000000);
    expect_header_closes(tc_port(state), 0xffffffff);
}

/* Payload bytes following the header do not matter: the close comes anyway
 * and none of them is taken as a frame. */
static void test_oversize_with_payload_closes(void **state)
{
    int a = tc_connect(tc_port(state));
    uint8_t buf[4 + 64];
    tc_put_u32(buf, P2P_DEFAULT_MAX_FRAME + 1);
    for (size_t i = 0; i < 64; i += 5)
        memcpy(buf + 4 + i, "\0\0\0\1\7", i + 5 <= 64 ? 5 : 64 - i);
    /* The server may close before reading it all: a reset is fine. */
    (void)tc_try_send_raw(a, buf, sizeof buf);
    tc_expect_closed(a, TC_WAIT_MS, 0);
    tc_close(a);
}

/* Frames before the oversize header in the same write are answered first. */
static void test_frames_before_oversize_are_answered(void **state)
{
    int a = tc_connect(tc_port(state));
    uint8_t buf[5 + 5 + 4];
    memcpy(buf, "\0\0\0\1\7", 5);
    memcpy(buf + 5, "\0\0\0\1\7", 5);
    tc_put_u32(buf + 10, P2P_DEFAULT_MAX_FRAME + 1);
    tc_send_raw(a, buf, sizeof buf);
    tc_expect_reply(a, P2P_CMD_HEARTBEAT, 1);
    tc_expect_reply(a, P2P_CMD_HEARTBEAT, 1);
    tc_expect_closed(a, TC_WAIT_MS, 0);
    tc_close(a);
}

/* The closed connection's id is released at once and its subscriptions
 * go; every other connection, publisher or subscriber, carries on. */
static void test_oversize_closes_only_that_connection(void **state)
{
    int bad = tc_connect(tc_port(state));
    int p = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    tc_register(bad, "bad", 1);
    tc_register(p, "pub", 1);
    tc_subscribe(bad, "pub", 1);
    tc_subscribe(s, "pub", 1);
    tc_subscribe(s, "bad", 1);
    uint8_t h[4];
    tc_put_u32(h, P2P_DEFAULT_MAX_FRAME + 1);
    tc_send_raw(bad, h, sizeof h);
    tc_expect_closed(bad, TC_WAIT_MS, 0);
    tc_check_alive(p, "bad", 0);
    tc_check_alive(s, "pub", 1);
    tc_send_data(p, "still here", 10, 1);
    tc_expect_data(s, "still here", 10);
    tc_expect_nothing_pending(s);
    tc_expect_nothing_pending(p);
    /* The id is free again, and s's subscription to it (which names the
     * id) reaches the new holder. */
    int again = tc_connect(tc_port(state));
    tc_register(again, "bad", 1);
    tc_send_data(again, "new", 3, 1);
    tc_expect_data(s, "new", 3);
    tc_close(bad);
    tc_close(p);
    tc_close(s);
    tc_close(again);
}

/* A frame of exactly the maximum payload is accepted: a HEARTBEAT padded to
 * 65536 bytes (trailing bytes are ignored) and a SEND of 65535 bytes. */
static void test_exact_maximum_accepted(void **state)
{
    size_t max = P2P_DEFAULT_MAX_FRAME;
    uint8_t *payload = calloc(1, max);
    assert_non_null(payload);
    int a = tc_connect(tc_port(state));
    payload[0] = P2P_CMD_HEARTBEAT;
    tc_send_frame(a, payload, max);
    tc_expect_reply(a, P2P_CMD_HEARTBEAT, 1);
    tc_register(a, "big", 1);
    payload[0] = P2P_CMD_SEND;
    tc_send_frame(a, payload, max);
    tc_expect_reply(a, P2P_CMD_SEND, 1);
    assert_true(tc_is_open(a));
    free(payload);
    tc_close(a);
}

/* --max-frame 1024: 1024 is fine, 1025 closes. Subscribers of a 1024-byte
 * SEND get a 1024-byte frame. */
static const char *const max_frame_1024[] = {"--max-frame", "1024", NULL};

static void test_max_frame_option(void **state)
{
    uint8_t payload[1025];
    memset(payload, 'm', sizeof payload);
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    payload[0] = P2P_CMD_SEND;
    tc_send_frame(p, payload, 1024);
    tc_expect_reply(p, P2P_CMD_SEND, 1);
    tc_expect_frame(s, payload, 1024);
    /* One byte more closes p, and only p. */
    tc_send_frame(p, payload, 1025);
    tc_expect_closed(p, TC_WAIT_MS, 0);
    tc_expect_nothing_pending(s);
    tc_check_alive(s, "pub", 0);
    expect_header_closes(tc_port(state), 1025);
    expect_header_closes(tc_port(state), P2P_DEFAULT_MAX_FRAME);
    tc_close(p);
    tc_close(s);
}

/* The smallest --max-frame, 256, still carries a 255-byte id. */
static const char *const max_frame_256[] = {"--max-frame", "256", NULL};

static void test_max_frame_minimum(void **state)
{
    uint8_t id[255];
    memset(id, 'i', sizeof id);
    int a = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    tc_register_bytes(a, id, sizeof id, 1);
    tc_send_cmd(q, P2P_CMD_CHECK_ALIVE, id, sizeof id);
    tc_expect_reply(q, P2P_CMD_CHECK_ALIVE, 1);
    expect_header_closes(tc_port(state), 257);
    tc_close(a);
    tc_close(q);
}

/* A larger --max-frame admits frames above the default. */
static const char *const max_frame_large[] = {"--max-frame", "200000", NULL};

static void test_max_frame_above_default(void **state)
{
    size_t len = 200000;
    uint8_t *payload = malloc(len);
    assert_non_null(payload);
    for (size_t i = 0; i < len; i++)
        payload[i] = (uint8_t)(i * 7);
    payload[0] = P2P_CMD_SEND;
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    tc_send_frame(p, payload, len);
    tc_expect_reply(p, P2P_CMD_SEND, 1);
    tc_expect_frame(s, payload, len);
    free(payload);
    expect_header_closes(tc_port(state), 200001);
    tc_close(p);
    tc_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_default_limit_plus_one_closes),
        TC_SERVER_TEST(test_huge_lengths_close),
        TC_SERVER_TEST(test_oversize_with_payload_closes),
        TC_SERVER_TEST(test_frames_before_oversize_are_answered),
        TC_SERVER_TEST(test_oversize_closes_only_that_connection),
        TC_SERVER_TEST(test_exact_maximum_accepted),
        TC_SERVER_TEST_ARGS(test_max_frame_option, max_frame_1024),
        TC_SERVER_TEST_ARGS(test_max_frame_minimum, max_frame_256),
        TC_SERVER_TEST_ARGS(test_max_frame_above_default, max_frame_large),
    };
    return cmocka_run_group_tests_name("v1 oversize frames", tests, NULL, NULL);
}
