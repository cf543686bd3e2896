/*
 * test_v2_bye.c - BYE (stupidp2p(7), EVENTS and BYE REASONS): [0E][reason]
 * [1..127 bytes of UTF-8] as the last frame before the server closes a v2
 * connection, for each reason the server produces today except 3 (slow
 * consumer: test_v2_slow_consumer.c): 1 taken over (after what was already
 * queued), 2 idle timeout, 4 shutdown (SIGTERM and SIGINT, exit 0),
 * 5 protocol error (frame too long, command byte >= 0x80). v1 sessions are
 * closed without a word, and a client closing its end gets no BYE.
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

/* ---- v2 helpers -------------------------------------------------------
 * Every test_v2_*.c file carries the same small set (static inline, so a
 * file that does not use one pays nothing): there is no shared test code
 * outside test/support. */

#define DEFAULT_MAX_FRAME 65536u
#define DEFAULT_IDLE 300u
#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static inline void put_u32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Starts a server with extra_args (NULL-terminated, or NULL). */
static inline void start_server(struct p2p_server *srv, const char *const *extra_args)
{
    if (p2p_server_start(srv, extra_args) != 0)
        tc_fail("could not start %s", p2p_server_path());
}

/* SIGTERM; the server must exit 0. */
static inline void stop_server(struct p2p_server *srv)
{
    int status = p2p_server_stop(srv);
    if (status != 0)
        tc_fail("server exited with %d after SIGTERM, expected 0", status);
}

/* Sends HELLO [version][flags] and expects the 11-byte success reply
 * 88 01 granted max_frame idle_timeout. */
static inline void expect_hello(int fd, uint8_t version, uint8_t flags, uint8_t granted,
                                uint32_t max_frame, uint32_t idle)
{
    uint8_t req[2] = {version, flags};
    tc_send_cmd(fd, P2P_CMD_HELLO, req, sizeof req);
    uint8_t want[11] = {0x88, 0x01, granted};
    put_u32(want + 3, max_frame);
    put_u32(want + 7, idle);
    tc_expect_frame(fd, want, sizeof want);
}

/* A connection turned into a v2 session (flags as given) on a server with
 * the given max_frame and idle timeout. */
static inline int v2_connect_cfg(uint16_t port, uint8_t flags, uint32_t max_frame, uint32_t idle)
{
    int fd = tc_connect(port);
    expect_hello(fd, 2, flags, 2, max_frame, idle);
    return fd;
}

/* A v2 session on a server with default settings. */
static inline int v2_connect(uint16_t port)
{
    return v2_connect_cfg(port, 0, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
}

static inline uint8_t *xmalloc(size_t n)
{
    uint8_t *p = malloc(n > 0 ? n : 1);
    if (p == NULL)
        tc_fail("out of memory");
    return p;
}

/* Sends SEND_TO [id_len][id][data]. */
static inline void send_to(int fd, const void *id, size_t id_len, const void *data, size_t len)
{
    uint8_t *buf = xmalloc(2 + id_len + len);
    buf[0] = P2P_CMD_SEND_TO;
    buf[1] = (uint8_t)id_len;
    memcpy(buf + 2, id, id_len);
    if (len > 0)
        memcpy(buf + 2 + id_len, data, len);
    tc_send_frame(fd, buf, 2 + id_len + len);
    free(buf);
}

/* Expects DELIVER [0x09][id_len][sender id][data]. */
static inline void expect_deliver(int fd, const void *id, size_t id_len, const void *data,
                                  size_t len)
{
    uint8_t *want = xmalloc(2 + id_len + len);
    want[0] = P2P_EVT_DELIVER;
    want[1] = (uint8_t)id_len;
    memcpy(want + 2, id, id_len);
    if (len > 0)
        memcpy(want + 2 + id_len, data, len);
    tc_expect_frame(fd, want, 2 + id_len + len);
    free(want);
}

static inline void expect_deliver_str(int fd, const char *id, const char *data)
{
    expect_deliver(fd, id, strlen(id), data, strlen(data));
}

/* Expects PRESENCE [0x0B][state][id_len][id]. */
static inline void expect_presence_bytes(int fd, uint8_t state, const void *id, size_t id_len)
{
    uint8_t want[3 + 255];
    want[0] = P2P_EVT_PRESENCE;
    want[1] = state;
    want[2] = (uint8_t)id_len;
    memcpy(want + 3, id, id_len);
    tc_expect_frame(fd, want, 3 + id_len);
}

static inline void expect_presence(int fd, uint8_t state, const char *id)
{
    expect_presence_bytes(fd, state, id, strlen(id));
}

/* 1 if text[0..len) is well-formed UTF-8 (no overlongs, no surrogates). */
static inline int utf8_valid(const uint8_t *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        uint8_t c = s[i];
        size_t n;
        uint32_t cp;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xE0) == 0xC0) {
            n = 1;
            cp = c & 0x1Fu;
        } else if ((c & 0xF0) == 0xE0) {
            n = 2;
            cp = c & 0x0Fu;
        } else if ((c & 0xF8) == 0xF0) {
            n = 3;
            cp = c & 0x07u;
        } else {
            return 0;
        }
        if (i + n >= len)
            return 0;
        for (size_t k = 1; k <= n; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            cp = (cp << 6) | (s[i + k] & 0x3Fu);
        }
        if ((n == 1 && cp < 0x80) || (n == 2 && cp < 0x800) || (n == 3 && cp < 0x10000) ||
            cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF))
            return 0;
        i += n + 1;
    }
    return 1;
}

/* Expects BYE [0x0E][reason][1..127 bytes of UTF-8] within timeout_ms, and
 * then the server closing the connection with nothing after it. */
static inline void expect_bye_within(int fd, uint8_t reason, int timeout_ms)
{
    uint8_t buf[1024];
    ssize_t n = tc_recv_frame(fd, buf, sizeof buf, timeout_ms);
    if (n < 0)
        tc_fail("fd %d: expected BYE %u, got no frame within %d ms", fd, reason, timeout_ms);
    if (n < 2 || buf[0] != P2P_EVT_BYE || buf[1] != reason) {
        tc_hexdump("received", buf, (size_t)n, 0, 64);
        tc_fail("fd %d: expected BYE with reason %u", fd, reason);
    }
    size_t text = (size_t)n - 2;
    if (text < 1 || text > P2P_BYE_TEXT_MAX || !utf8_valid(buf + 2, text)) {
        tc_hexdump("received", buf, (size_t)n, 0, 160);
        tc_fail("fd %d: BYE text must be 1..127 bytes of UTF-8, got %zu bytes", fd, text);
    }
    tc_expect_closed(fd, TC_WAIT_MS, 0);
}

static inline void expect_bye(int fd, uint8_t reason)
{
    expect_bye_within(fd, reason, TC_WAIT_MS);
}
/* ---- end of v2 helpers ------------------------------------------------- */

/* 1: taken over. The old v2 holder gets BYE 1 and is closed; a v1 holder
 * is closed without a word. */
static void test_bye_1_taken_over(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int old2 = v2_connect(srv.port);
    tc_register(old2, "dev", P2P_STATUS_OK);
    int new2 = v2_connect(srv.port);
    tc_register(new2, "dev", P2P_STATUS_OK);
    expect_bye(old2, P2P_BYE_TAKEN_OVER);
    tc_check_alive(new2, "dev", P2P_STATUS_OK);

    int old1 = tc_connect(srv.port);
    tc_register(old1, "dev1", P2P_STATUS_OK);
    int new1 = v2_connect(srv.port);
    tc_register(new1, "dev1", P2P_STATUS_OK);
    tc_expect_closed(old1, TC_WAIT_MS, 0);
    tc_close(old2);
    tc_close(new2);
    tc_close(old1);
    tc_close(new1);
    stop_server(&srv);
}

/* What was queued for the old holder before the takeover still reaches it,
 * before the BYE. */
static void test_bye_1_after_pending_output(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int pub = v2_connect(srv.port);
    tc_register(pub, "pub", P2P_STATUS_OK);
    int old = v2_connect(srv.port);
    tc_register(old, "dev", P2P_STATUS_OK);
    tc_subscribe(old, "pub", P2P_STATUS_OK);
    expect_presence(old, P2P_PRESENCE_ONLINE, "pub");
    tc_send_data(pub, "queued", 6, P2P_STATUS_OK);
    int taker = v2_connect(srv.port);
    tc_register(taker, "dev", P2P_STATUS_OK);
    expect_deliver_str(old, "pub", "queued");
    expect_bye(old, P2P_BYE_TAKEN_OVER);
    /* The closed connection's subscriptions are gone. */
    tc_send_data(pub, "later", 5, P2P_STATUS_OK);
    tc_close(old);
    tc_close(taker);
    tc_close(pub);
    stop_server(&srv);
}

/* 2: idle timeout (--idle-timeout 1). A v2 session gets BYE 2 within 1..2 s
 * (bounded wait: 4 s); a v1 session is closed without a word; a client
 * that keeps sending heartbeats stays. */
static void test_bye_2_idle_timeout(void **state)
{
    (void)state;
    static const char *const args[] = {"--idle-timeout", "1", NULL};
    struct p2p_server srv;
    start_server(&srv, args);
    int v2 = v2_connect_cfg(srv.port, 0, DEFAULT_MAX_FRAME, 1);
    int v1 = tc_connect(srv.port);
    tc_expect_nothing_pending(v1);
    expect_bye_within(v2, P2P_BYE_IDLE_TIMEOUT, 4000);
    tc_expect_closed(v1, 4000, 0);
    tc_close(v2);
    tc_close(v1);
    stop_server(&srv);
}

/* 4: shutdown. SIGTERM: every v2 session gets BYE 4, v1 sessions are closed
 * without a word, the server exits 0. */
static void test_bye_4_shutdown(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int a = v2_connect(srv.port);
    tc_register(a, "a", P2P_STATUS_OK);
    int b = v2_connect_cfg(srv.port, P2P_HELLO_FLAG_QUIET, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    int v1 = tc_connect(srv.port);
    tc_register(v1, "v1", P2P_STATUS_OK);
    int status = p2p_server_stop(&srv);
    assert_int_equal(status, 0);
    expect_bye(a, P2P_BYE_SHUTDOWN);
    expect_bye(b, P2P_BYE_SHUTDOWN);
    tc_expect_closed(v1, TC_WAIT_MS, 0);
    tc_close(a);
    tc_close(b);
    tc_close(v1);
}

/* SIGINT works the same. */
static void test_bye_4_shutdown_sigint(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int a = v2_connect(srv.port);
    if (kill(srv.pid, SIGINT) != 0)
        tc_fail("kill(SIGINT) failed");
    expect_bye(a, P2P_BYE_SHUTDOWN);
    tc_close(a);
    stop_server(&srv); /* already exiting: still exit status 0 */
}

/* 5: a frame longer than max_frame. v2: BYE 5 and close, only that
 * connection; v1: closed without a word. A frame of exactly max_frame is
 * fine. */
static void test_bye_5_frame_too_long(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-frame", "1024", NULL};
    struct p2p_server srv;
    start_server(&srv, args);
    int other = v2_connect_cfg(srv.port, 0, 1024, DEFAULT_IDLE);
    int v2 = v2_connect_cfg(srv.port, 0, 1024, DEFAULT_IDLE);
    tc_register(v2, "big", P2P_STATUS_OK);
    uint8_t data[1023];
    memset(data, 'x', sizeof data);
    tc_send_data(v2, data, sizeof data, P2P_STATUS_OK); /* payload 1024 */
    static const uint8_t header[] = {0x00, 0x00, 0x04, 0x01}; /* 1025 */
    tc_send_raw(v2, header, sizeof header);
    expect_bye(v2, P2P_BYE_PROTOCOL_ERROR);
    int v1 = tc_connect(srv.port);
    tc_send_raw(v1, header, sizeof header);
    tc_expect_closed(v1, TC_WAIT_MS, 0);
    static const uint8_t huge[] = {0xFF, 0xFF, 0xFF, 0xFF};
    int v2b = v2_connect_cfg(srv.port, 0, 1024, DEFAULT_IDLE);
    tc_send_raw(v2b, huge, sizeof huge);
    expect_bye(v2b, P2P_BYE_PROTOCOL_ERROR);
    /* The others are untouched; the id of the closed one is released. */
    if (!tc_is_open(other))
        tc_fail("an unrelated connection was closed");
    tc_check_alive(other, "big", 0);
    tc_close(other);
    tc_close(v2);
    tc_close(v2b);
    tc_close(v1);
    stop_server(&srv);
}

/* 5: a command byte of 0x80 or above in a v2 session. Nothing after it in
 * the same write is answered. */
static void test_bye_5_high_command_byte(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    static const uint8_t high[] = {0x80, 0x81, 0x87, 0x88, 0xC0, 0xFF};
    for (size_t i = 0; i < ARRAY_LEN(high); i++) {
        int fd = v2_connect(srv.port);
        uint8_t burst[] = {0, 0, 0, 2, high[i], 0x01, 0, 0, 0, 1, 0x07};
        tc_send_raw(fd, burst, sizeof burst);
        expect_bye(fd, P2P_BYE_PROTOCOL_ERROR);
        tc_close(fd);
        /* The same byte in a v1 session is ignored. */
        fd = tc_connect(srv.port);
        tc_send_raw(fd, burst, sizeof burst);
        tc_expect_reply(fd, P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
        tc_close(fd);
    }
    stop_server(&srv);
}

/* The client closing its end gets no BYE (nothing to read but EOF), and a
 * v2 subscriber is told the id went offline. */
static void test_bye_not_sent_on_client_close(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int w = v2_connect(srv.port);
    tc_subscribe(w, "dev", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    int dev = v2_connect(srv.port);
    tc_register(dev, "dev", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    if (shutdown(dev, SHUT_WR) != 0)
        tc_fail("shutdown(SHUT_WR) failed");
    tc_expect_closed(dev, TC_WAIT_MS, 0);
    expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_close(dev);
    tc_close(w);
    stop_server(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bye_1_taken_over),
        cmocka_unit_test(test_bye_1_after_pending_output),
        cmocka_unit_test(test_bye_2_idle_timeout),
        cmocka_unit_test(test_bye_4_shutdown),
        cmocka_unit_test(test_bye_4_shutdown_sigint),
        cmocka_unit_test(test_bye_5_frame_too_long),
        cmocka_unit_test(test_bye_5_high_command_byte),
        cmocka_unit_test(test_bye_not_sent_on_client_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
