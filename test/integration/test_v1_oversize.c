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

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)

static uint16_t port_of(void **state)
{
    return ((struct p2p_server *)*state)->port;
}

static void header(uint8_t h[4], uint32_t len)
{
    h[0] = (uint8_t)(len >> 24);
    h[1] = (uint8_t)(len >> 16);
    h[2] = (uint8_t)(len >> 8);
    h[3] = (uint8_t)len;
}

/* Sends a header announcing len bytes and expects the close, with nothing
 * sent to us first. */
static void expect_header_closes(uint16_t port, uint32_t len)
{
    int a = tc_connect(port);
    uint8_t h[4];
    header(h, len);
    tc_send_raw(a, h, sizeof h);
    tc_expect_closed(a, TC_WAIT_MS, 0);
    tc_close(a);
}

static void test_default_limit_plus_one_closes(void **state)
{
    expect_header_closes(port_of(state), P2P_DEFAULT_MAX_FRAME + 1);
}

static void test_huge_lengths_close(void **state)
{
    expect_header_closes(port_of(state), 0x00100000);
    expect_header_closes(port_of(state), 0x7fffffff);
    expect_header_closes(port_of(state), 0x80000000);
    expect_header_closes(port_of(state), 0xffffffff);
}

/* Payload bytes following the header do not matter: the close comes anyway
 * and none of them is taken as a frame. */
static void test_oversize_with_payload_closes(void **state)
{
    int a = tc_connect(port_of(state));
    uint8_t buf[4 + 64];
    header(buf, P2P_DEFAULT_MAX_FRAME + 1);
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
    int a = tc_connect(port_of(state));
    uint8_t buf[5 + 5 + 4];
    memcpy(buf, "\0\0\0\1\7", 5);
    memcpy(buf + 5, "\0\0\0\1\7", 5);
    header(buf + 10, P2P_DEFAULT_MAX_FRAME + 1);
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
    int bad = tc_connect(port_of(state));
    int p = tc_connect(port_of(state));
    int s = tc_connect(port_of(state));
    tc_register(bad, "bad", 1);
    tc_register(p, "pub", 1);
    tc_subscribe(bad, "pub", 1);
    tc_subscribe(s, "pub", 1);
    tc_subscribe(s, "bad", 1);
    uint8_t h[4];
    header(h, P2P_DEFAULT_MAX_FRAME + 1);
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
    int again = tc_connect(port_of(state));
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
    int a = tc_connect(port_of(state));
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
static int setup_max_frame_1024(void **state)
{
    static const char *const args[] = {"--max-frame", "1024", NULL};
    return tc_setup_server_args(state, args);
}

static void test_max_frame_option(void **state)
{
    uint8_t payload[1025];
    memset(payload, 'm', sizeof payload);
    int p = tc_connect(port_of(state));
    int s = tc_connect(port_of(state));
    tc_register(p, "pub", 1);
    tc_subscribe(s, "pub", 1);
    payload[0] = P2P_CMD_SEND;
    tc_send_frame(p, payload, 1024);
    tc_expect_reply(p, P2P_CMD_SEND, 1);
    tc_expect_frame(s, payload, 1024);
    /* One byte more closes p, and only p. */
    tc_send_frame(p, payload, 1025);
    tc_expect_closed(p, TC_WAIT_MS, 0);
    tc_expect_nothing_pending(s);
    tc_check_alive(s, "pub", 0);
    expect_header_closes(port_of(state), 1025);
    expect_header_closes(port_of(state), P2P_DEFAULT_MAX_FRAME);
    tc_close(p);
    tc_close(s);
}

/* The smallest --max-frame, 256, still carries a 255-byte id. */
static int setup_max_frame_256(void **state)
{
    static const char *const args[] = {"--max-frame", "256", NULL};
    return tc_setup_server_args(state, args);
}

static void test_max_frame_minimum(void **state)
{
    uint8_t id[255];
    memset(id, 'i', sizeof id);
    int a = tc_connect(port_of(state));
    int q = tc_connect(port_of(state));
    tc_register_bytes(a, id, sizeof id, 1);
    tc_send_cmd(q, P2P_CMD_CHECK_ALIVE, id, sizeof id);
    tc_expect_reply(q, P2P_CMD_CHECK_ALIVE, 1);
    expect_header_closes(port_of(state), 257);
    tc_close(a);
    tc_close(q);
}

/* A larger --max-frame admits frames above the default. */
static int setup_max_frame_large(void **state)
{
    static const char *const args[] = {"--max-frame", "200000", NULL};
    return tc_setup_server_args(state, args);
}

static void test_max_frame_above_default(void **state)
{
    size_t len = 200000;
    uint8_t *payload = malloc(len);
    assert_non_null(payload);
    for (size_t i = 0; i < len; i++)
        payload[i] = (uint8_t)(i * 7);
    payload[0] = P2P_CMD_SEND;
    int p = tc_connect(port_of(state));
    int s = tc_connect(port_of(state));
    tc_register(p, "pub", 1);
    tc_subscribe(s, "pub", 1);
    tc_send_frame(p, payload, len);
    tc_expect_reply(p, P2P_CMD_SEND, 1);
    tc_expect_frame(s, payload, len);
    free(payload);
    expect_header_closes(port_of(state), 200001);
    tc_close(p);
    tc_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_default_limit_plus_one_closes),
        T(test_huge_lengths_close),
        T(test_oversize_with_payload_closes),
        T(test_frames_before_oversize_are_answered),
        T(test_oversize_closes_only_that_connection),
        T(test_exact_maximum_accepted),
        cmocka_unit_test_setup_teardown(test_max_frame_option, setup_max_frame_1024,
                                        tc_teardown_server),
        cmocka_unit_test_setup_teardown(test_max_frame_minimum, setup_max_frame_256,
                                        tc_teardown_server),
        cmocka_unit_test_setup_teardown(test_max_frame_above_default, setup_max_frame_large,
                                        tc_teardown_server),
    };
    return cmocka_run_group_tests_name("v1 oversize frames", tests, NULL, NULL);
}
