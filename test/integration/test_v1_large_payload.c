/*
 * test_v1_large_payload.c - large SENDs relayed byte for byte: 60 KiB
 * payloads to several subscribers, the 65535-byte maximum (a 65536-byte
 * payload with the command byte), a burst of large frames in order, and a
 * large frame written in pieces.
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

/* Deterministic bytes covering all 256 values, different per seed. */
static void fill(uint8_t *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 12345u;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (uint8_t)x;
    }
}

static void test_60k_to_several_subscribers(void **state)
{
    enum { SUBS = 3, LEN = 60 * 1024 };
    uint8_t *data = malloc(LEN);
    assert_non_null(data);
    fill(data, LEN, 1);
    int p = tc_connect(tc_port(state));
    int subs[SUBS];
    tc_register(p, "pub", 1);
    for (int i = 0; i < SUBS; i++) {
        subs[i] = tc_connect(tc_port(state));
        tc_subscribe(subs[i], "pub", 1);
    }
    tc_send_data(p, data, LEN, 1);
    for (int i = 0; i < SUBS; i++) {
        tc_expect_data(subs[i], data, LEN);
        tc_expect_nothing_pending(subs[i]);
    }
    tc_expect_nothing_pending(p);
    free(data);
    for (int i = 0; i < SUBS; i++)
        tc_close(subs[i]);
    tc_close(p);
}

/* 65535 data bytes: the payload is 65536 bytes, the default maximum, and
 * the delivered frame is 00 01 00 00 03 + data. */
static void test_maximum_data(void **state)
{
    size_t len = P2P_DEFAULT_MAX_FRAME - 1;
    uint8_t *data = malloc(len);
    uint8_t *wire = malloc(4 + 1 + len);
    assert_non_null(data);
    assert_non_null(wire);
    fill(data, len, 2);
    wire[0] = 0x00;
    wire[1] = 0x01;
    wire[2] = 0x00;
    wire[3] = 0x00;
    wire[4] = 0x03;
    memcpy(wire + 5, data, len);
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    tc_send_data(p, data, len, 1);
    tc_expect_raw(s, wire, 5 + len);
    tc_expect_nothing_pending(s);
    free(data);
    free(wire);
    tc_close(p);
    tc_close(s);
}

/* A burst of 32 large frames sent without waiting for replies: all relayed
 * in order, each byte-exact (about 2 MB, under the 4 MiB output cap). */
static void test_burst_in_order(void **state)
{
    enum { N = 32, LEN = 60 * 1024 };
    uint8_t *data = malloc(LEN);
    assert_non_null(data);
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    for (uint32_t i = 0; i < N; i++) {
        fill(data, LEN, 100 + i);
        tc_send_cmd(p, P2P_CMD_SEND, data, LEN);
    }
    for (uint32_t i = 0; i < N; i++) {
        fill(data, LEN, 100 + i);
        tc_expect_data(s, data, LEN);
    }
    for (uint32_t i = 0; i < N; i++)
        tc_expect_reply(p, P2P_CMD_SEND, 1);
    tc_expect_nothing_pending(p);
    tc_expect_nothing_pending(s);
    free(data);
    tc_close(p);
    tc_close(s);
}

/* One large frame written in uneven pieces, small frames around it. */
static void test_large_frame_in_pieces(void **state)
{
    enum { LEN = 50000 };
    uint8_t *frame = malloc(4 + 1 + LEN);
    assert_non_null(frame);
    frame[0] = 0;
    frame[1] = 0;
    frame[2] = (uint8_t)((LEN + 1) >> 8);
    frame[3] = (uint8_t)(LEN + 1);
    frame[4] = P2P_CMD_SEND;
    fill(frame + 5, LEN, 3);
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    size_t total = 5 + LEN, off = 0, piece = 1;
    while (off < total) {
        size_t n = piece < total - off ? piece : total - off;
        tc_send_raw(p, frame + off, n);
        off += n;
        piece = piece * 3 + 1;
    }
    tc_expect_reply(p, P2P_CMD_SEND, 1);
    tc_expect_data(s, frame + 5, LEN);
    tc_send_data(p, "small", 5, 1);
    tc_expect_data(s, "small", 5);
    tc_expect_nothing_pending(s);
    free(frame);
    tc_close(p);
    tc_close(s);
}

/* Two publishers sending large frames at once to one subscriber: frames are
 * never interleaved, each arrives whole. */
static void test_two_publishers_not_interleaved(void **state)
{
    enum { N = 8, LEN = 60 * 1024 };
    uint8_t *a_data = malloc(LEN);
    uint8_t *b_data = malloc(LEN);
    uint8_t *buf = malloc(LEN + 1);
    assert_non_null(a_data);
    assert_non_null(b_data);
    assert_non_null(buf);
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    tc_register(a, "a", 1);
    tc_register(b, "b", 1);
    tc_subscribe(s, "a", 1);
    tc_subscribe(s, "b", 1);
    memset(a_data, 'A', LEN);
    memset(b_data, 'B', LEN);
    for (int i = 0; i < N; i++) {
        tc_send_cmd(a, P2P_CMD_SEND, a_data, LEN);
        tc_send_cmd(b, P2P_CMD_SEND, b_data, LEN);
    }
    int got_a = 0, got_b = 0;
    for (int i = 0; i < 2 * N; i++) {
        ssize_t n = tc_recv_frame(s, buf, LEN + 1, TC_WAIT_MS);
        assert_int_equal(n, LEN + 1);
        assert_int_equal(buf[0], P2P_CMD_SEND);
        if (memcmp(buf + 1, a_data, LEN) == 0)
            got_a++;
        else if (memcmp(buf + 1, b_data, LEN) == 0)
            got_b++;
        else
            fail_msg("frame %d is neither all 'A' nor all 'B'", i);
    }
    assert_int_equal(got_a, N);
    assert_int_equal(got_b, N);
    for (int i = 0; i < N; i++) {
        tc_expect_reply(a, P2P_CMD_SEND, 1);
        tc_expect_reply(b, P2P_CMD_SEND, 1);
    }
    tc_expect_nothing_pending(s);
    free(a_data);
    free(b_data);
    free(buf);
    tc_close(a);
    tc_close(b);
    tc_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_60k_to_several_subscribers),
        TC_SERVER_TEST(test_maximum_data),
        TC_SERVER_TEST(test_burst_in_order),
        TC_SERVER_TEST(test_large_frame_in_pieces),
        TC_SERVER_TEST(test_two_publishers_not_interleaved),
    };
    return cmocka_run_group_tests_name("v1 large payloads", tests, NULL, NULL);
}
