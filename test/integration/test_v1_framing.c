/*
 * test_v1_framing.c - the length-prefixed framing of v1, as the server reads
 * it: many frames in one segment, one frame a byte at a time, a stream split
 * at every offset, empty frames (L = 0) and unknown command bytes ignored
 * without a reply while the connection stays open.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "harness.h"
#include "protocol.h"

/* A stream of commands covering every v1 command, and its replies. Run on a
 * connection while "pub" is registered elsewhere, it leaves the connection
 * as it found it (no id, no subscription), so it can be repeated. */
static const uint8_t stream[] = {
    0, 0, 0, 4, 0x01, 'd', 'e', 'v',       /* REGISTER dev     -> 81 01 */
    0, 0, 0, 1, 0x07,                      /* HEARTBEAT        -> 87 01 */
    0, 0, 0, 4, 0x02, 'p', 'u', 'b',       /* SUBSCRIBE pub    -> 82 01 */
    0, 0, 0, 5, 0x02, 'n', 'o', 'n', 'e',  /* SUBSCRIBE none   -> 82 00 */
    0, 0, 0, 4, 0x06, 'd', 'e', 'v',       /* CHECK_ALIVE dev  -> 86 01 */
    0, 0, 0, 3, 0x03, 'h', 'i',            /* SEND hi          -> 83 01 */
    0, 0, 0, 4, 0x05, 'p', 'u', 'b',       /* UNSUBSCRIBE pub  -> 85 01 */
    0, 0, 0, 1, 0x04,                      /* UNREGISTER       -> 84 01 */
    0, 0, 0, 3, 0x03, 'h', 'o',            /* SEND ho (no id)  -> 83 00 */
};
static const uint8_t replies[][2] = {
    {0x81, 1}, {0x87, 1}, {0x82, 1}, {0x82, 0}, {0x86, 1},
    {0x83, 1}, {0x85, 1}, {0x84, 1}, {0x83, 0},
};
#define NREPLIES (sizeof replies / sizeof replies[0])
/* Offsets just past each frame of the stream. */
static const size_t frame_ends[NREPLIES] = {8, 13, 21, 30, 38, 45, 53, 58, 65};

static void expect_replies(int fd, size_t from, size_t to)
{
    for (size_t i = from; i < to; i++)
        tc_expect_frame(fd, replies[i], 2);
}

static void test_stream_layout(void **state)
{
    (void)state;
    assert_int_equal(sizeof stream, frame_ends[NREPLIES - 1]);
}

static void test_many_frames_in_one_segment(void **state)
{
    int p = tc_connect(tc_port(state));
    int a = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    tc_send_raw(a, stream, sizeof stream);
    expect_replies(a, 0, NREPLIES);
    tc_expect_nothing_pending(a);
    /* Three copies in one write. */
    uint8_t triple[3 * sizeof stream];
    for (int i = 0; i < 3; i++)
        memcpy(triple + i * sizeof stream, stream, sizeof stream);
    tc_send_raw(a, triple, sizeof triple);
    for (int i = 0; i < 3; i++)
        expect_replies(a, 0, NREPLIES);
    tc_expect_nothing_pending(a);
    tc_close(p);
    tc_close(a);
}

/* One byte per write (TCP_NODELAY: one segment each, as far as the kernel
 * lets us); the replies to complete frames arrive as we go. */
static void test_byte_at_a_time(void **state)
{
    int p = tc_connect(tc_port(state));
    int a = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    size_t next = 0;
    for (size_t i = 0; i < sizeof stream; i++) {
        tc_send_raw(a, stream + i, 1);
        if (i + 1 == frame_ends[next]) {
            tc_expect_frame(a, replies[next], 2);
            next++;
        }
    }
    assert_int_equal(next, NREPLIES);
    tc_expect_nothing_pending(a);
    tc_close(p);
    tc_close(a);
}

/* The stream in two writes, split at every offset. The replies to the frames
 * complete in the first part are awaited before the second part is sent, so
 * the server has read the first part on its own. */
static void test_split_at_every_offset(void **state)
{
    int p = tc_connect(tc_port(state));
    int a = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    for (size_t cut = 0; cut <= sizeof stream; cut++) {
        size_t done = 0;
        while (done < NREPLIES && frame_ends[done] <= cut)
            done++;
        if (cut > 0)
            tc_send_raw(a, stream, cut);
        expect_replies(a, 0, done);
        if (cut < sizeof stream)
            tc_send_raw(a, stream + cut, sizeof stream - cut);
        expect_replies(a, done, NREPLIES);
    }
    tc_expect_nothing_pending(a);
    tc_close(p);
    tc_close(a);
}

/* A frame whose header is split from its payload, and a payload split in
 * the middle. */
static void test_header_and_payload_split(void **state)
{
    int a = tc_connect(tc_port(state));
    static const uint8_t reg[] = {0, 0, 0, 6, 0x01, 's', 'p', 'l', 'i', 't'};
    tc_send_raw(a, reg, 2);
    tc_send_raw(a, reg + 2, 2);
    tc_send_raw(a, reg + 4, 3);
    tc_send_raw(a, reg + 7, 3);
    tc_expect_reply(a, P2P_CMD_REGISTER, 1);
    tc_check_alive(a, "split", 1);
    tc_close(a);
}

/* L = 0: no reply, the connection stays open and in sync. */
static void test_empty_frame_ignored(void **state)
{
    int a = tc_connect(tc_port(state));
    static const uint8_t empty[] = {0, 0, 0, 0};
    static const uint8_t hb_reply[] = {0, 0, 0, 2, 0x87, 0x01};
    tc_send_raw(a, empty, sizeof empty);
    /* The next bytes on the wire are the heartbeat's reply. */
    tc_send_raw(a, "\0\0\0\1\7", 5);
    tc_expect_raw(a, hb_reply, sizeof hb_reply);
    /* Many empty frames between commands, in one write. */
    static const uint8_t mixed[] = {
        0, 0, 0, 0, 0, 0, 0, 0,
        0, 0, 0, 4, 0x01, 'e', 'm', 'p',
        0, 0, 0, 0,
        0, 0, 0, 4, 0x06, 'e', 'm', 'p',
        0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    };
    tc_send_raw(a, mixed, sizeof mixed);
    tc_expect_reply(a, P2P_CMD_REGISTER, 1);
    tc_expect_reply(a, P2P_CMD_CHECK_ALIVE, 1);
    tc_expect_nothing_pending(a);
    tc_close(a);
}

/* Unknown command bytes are ignored without a reply in a v1 session. (0x08
 * HELLO, 0x0A SEND_TO and 0x0C AUTH are answered in any session: see the v2
 * tests.) Bytes >= 0x80 are ignored too in v1. */
static void test_unknown_commands_ignored(void **state)
{
    static const uint8_t unknown[] = {0x00, 0x09, 0x0b, 0x0d, 0x0e, 0x0f, 0x10, 0x42,
                                      0x7f, 0x80, 0x81, 0x87, 0xc0, 0xfe, 0xff};
    int a = tc_connect(tc_port(state));
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    for (size_t i = 0; i < sizeof unknown; i++) {
        tc_send_cmd(a, unknown[i], NULL, 0);
        tc_send_cmd(a, unknown[i], "pub", 3);
        /* From a publisher: nothing relayed either. */
        tc_send_cmd(p, unknown[i], "data", 4);
    }
    tc_expect_nothing_pending(a);
    tc_expect_nothing_pending(p);
    tc_expect_nothing_pending(s);
    /* Nothing changed: a has no id, p still publishes to s. */
    tc_send_data(a, "x", 1, 0);
    tc_send_data(p, "y", 1, 1);
    tc_expect_data(s, "y", 1);
    tc_close(a);
    tc_close(p);
    tc_close(s);
}

/* Replies go out as whole frames even when the client reads slowly. */
static void test_reply_frames_on_the_wire(void **state)
{
    int a = tc_connect(tc_port(state));
    tc_send_raw(a, stream, sizeof stream);
    uint8_t want[NREPLIES * 6];
    for (size_t i = 0; i < NREPLIES; i++) {
        uint8_t *w = want + i * 6;
        w[0] = 0;
        w[1] = 0;
        w[2] = 0;
        w[3] = 2;
        w[4] = replies[i][0];
        w[5] = replies[i][1];
    }
    /* Without "pub" registered, SUBSCRIBE pub fails. */
    want[2 * 6 + 5] = 0;
    tc_expect_raw(a, want, sizeof want);
    tc_expect_nothing_pending(a);
    tc_close(a);
}

/* ---- random chunking ----------------------------------------------------- */

static uint32_t rng_state;

static uint32_t rnd(uint32_t bound)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 17;
    rng_state ^= rng_state << 5;
    return rng_state % bound;
}

/* Reads what is available on fd (at most max bytes, without waiting) and
 * checks it against want[*pos..]. */
static void drain_some(int fd, const uint8_t *want, size_t want_len, size_t *pos, size_t max)
{
    static uint8_t buf[65536];
    if (max > sizeof buf)
        max = sizeof buf;
    ssize_t n = recv(fd, buf, max, MSG_DONTWAIT);
    if (n == -1) {
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return;
        fail_msg("recv: %s", strerror(errno));
    }
    if (n == 0)
        fail_msg("subscriber closed after %zu bytes", *pos);
    if (*pos + (size_t)n > want_len)
        fail_msg("subscriber got %zu bytes, more than the %zu expected", *pos + (size_t)n,
                 want_len);
    if (memcmp(buf, want + *pos, (size_t)n) != 0) {
        size_t d = 0;
        while (buf[d] == want[*pos + d])
            d++;
        tc_hexdump("expected", want + *pos, (size_t)n, d > 16 ? d - 16 : 0, 64);
        tc_hexdump("received", buf, (size_t)n, d > 16 ? d - 16 : 0, 64);
        fail_msg("subscriber stream differs at byte %zu", *pos + d);
    }
    *pos += (size_t)n;
}

/* A long stream of frames of random sizes (SEND, HEARTBEAT, empty frames)
 * written in random chunks that ignore frame boundaries, while the
 * subscriber reads its stream in random amounts: the server's input and
 * output buffers wrap around and grow many times. Everything must arrive
 * byte for byte: the replies on the publisher, [03]+data on the
 * subscriber. */
static void test_random_chunking(void **state)
{
    enum { FRAMES = 600, MAXDATA = 9000 };
    rng_state = 0x2545f491u;
    size_t in_cap = (size_t)FRAMES * (MAXDATA + 16);
    uint8_t *in = malloc(in_cap);        /* what the publisher writes    */
    uint8_t *out = malloc(in_cap);       /* what the subscriber must get */
    uint8_t *replies_want = malloc(FRAMES * 6);
    assert_non_null(in);
    assert_non_null(out);
    assert_non_null(replies_want);
    size_t in_len = 0, out_len = 0, rep_len = 0;
    for (int f = 0; f < FRAMES; f++) {
        uint32_t kind = rnd(10);
        if (kind == 0) { /* empty frame: ignored */
            memset(in + in_len, 0, 4);
            in_len += 4;
        } else if (kind == 1) { /* heartbeat */
            memcpy(in + in_len, "\0\0\0\1\7", 5);
            in_len += 5;
            memcpy(replies_want + rep_len, "\0\0\0\2\x87\1", 6);
            rep_len += 6;
        } else { /* SEND of 0..MAXDATA bytes */
            uint32_t len = kind == 2 ? rnd(8) : rnd(MAXDATA);
            uint32_t l = len + 1;
            uint8_t h[4] = {(uint8_t)(l >> 24), (uint8_t)(l >> 16), (uint8_t)(l >> 8),
                            (uint8_t)l};
            memcpy(in + in_len, h, 4);
            memcpy(out + out_len, h, 4);
            in[in_len + 4] = 0x03;
            out[out_len + 4] = 0x03;
            for (uint32_t i = 0; i < len; i++)
                in[in_len + 5 + i] = out[out_len + 5 + i] = (uint8_t)rnd(256);
            in_len += 5 + len;
            out_len += 5 + len;
            memcpy(replies_want + rep_len, "\0\0\0\2\x83\1", 6);
            rep_len += 6;
        }
    }
    int p, s;
    tc_connect_pub_sub(tc_port(state), "pub", &p, &s);
    size_t sent = 0, got = 0;
    while (sent < in_len) {
        size_t chunk = 1 + rnd(rnd(4) == 0 ? 20 : 12000);
        if (chunk > in_len - sent)
            chunk = in_len - sent;
        tc_send_raw(p, in + sent, chunk);
        sent += chunk;
        drain_some(s, out, out_len, &got, 1 + rnd(16000));
    }
    /* The rest, waiting for it (bounded by tc_expect_raw). */
    if (got < out_len)
        tc_expect_raw(s, out + got, out_len - got);
    tc_expect_raw(p, replies_want, rep_len);
    tc_expect_nothing_pending(p);
    tc_expect_nothing_pending(s);
    free(in);
    free(out);
    free(replies_want);
    tc_close(p);
    tc_close(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stream_layout),
        TC_SERVER_TEST(test_many_frames_in_one_segment),
        TC_SERVER_TEST(test_byte_at_a_time),
        TC_SERVER_TEST(test_split_at_every_offset),
        TC_SERVER_TEST(test_header_and_payload_split),
        TC_SERVER_TEST(test_empty_frame_ignored),
        TC_SERVER_TEST(test_unknown_commands_ignored),
        TC_SERVER_TEST(test_reply_frames_on_the_wire),
        TC_SERVER_TEST(test_random_chunking),
    };
    return cmocka_run_group_tests_name("v1 framing", tests, NULL, NULL);
}
