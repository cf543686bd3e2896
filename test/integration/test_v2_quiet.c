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

/* QUIET: a successful SEND gets no reply, but the data is delivered. */
static void test_quiet_send_success_unacknowledged(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int sub = v2_connect(srv.port);
    int pub = v2_connect_cfg(srv.port, P2P_HELLO_FLAG_QUIET, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_register(pub, "pub", P2P_STATUS_OK);
    tc_subscribe(sub, "pub", P2P_STATUS_OK);
    expect_presence(sub, P2P_PRESENCE_ONLINE, "pub");
    tc_send_cmd(pub, P2P_CMD_SEND, "one", 3);
    tc_send_cmd(pub, P2P_CMD_SEND, "two", 3);
    tc_expect_nothing_pending(pub); /* no 83 01 before the 87 01 */
    expect_deliver_str(sub, "pub", "one");
    expect_deliver_str(sub, "pub", "two");
    tc_expect_nothing_pending(sub);
    /* Requests other than SEND / SEND_TO are still answered. */
    tc_check_alive(pub, "pub", P2P_STATUS_OK);
    tc_close(sub);
    tc_close(pub);
    stop_server(&srv);
}

/* QUIET: a successful SEND_TO gets no reply either. */
static void test_quiet_send_to_success_unacknowledged(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int dst = v2_connect(srv.port);
    tc_register(dst, "dst", P2P_STATUS_OK);
    int src = v2_connect_cfg(srv.port, P2P_HELLO_FLAG_QUIET, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_register(src, "src", P2P_STATUS_OK);
    send_to(src, "dst", 3, "hey", 3);
    tc_expect_nothing_pending(src);
    expect_deliver_str(dst, "src", "hey");
    tc_close(src);
    tc_close(dst);
    stop_server(&srv);
}

/* QUIET: failures are still answered, with their reasons. */
static void test_quiet_failures_still_answered(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = v2_connect_cfg(srv.port, P2P_HELLO_FLAG_QUIET, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_send_cmd(fd, P2P_CMD_SEND, "x", 1); /* no id */
    tc_expect_reply(fd, P2P_CMD_SEND, P2P_STATUS_NOT_REGISTERED);
    send_to(fd, "t", 1, "x", 1); /* no id */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_NOT_REGISTERED);
    tc_register(fd, "me", P2P_STATUS_OK);
    send_to(fd, "gone", 4, "x", 1); /* offline */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    send_to(fd, "me", 2, "x", 1); /* own id */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    tc_close(fd);
    stop_server(&srv);
}

/* QUIET has no effect in a v1 session (HELLO version 1 with the flag). */
static void test_quiet_ignored_in_v1_session(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = tc_connect(srv.port);
    expect_hello(fd, 1, P2P_HELLO_FLAG_QUIET, 1, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_register(fd, "v1", P2P_STATUS_OK);
    tc_send_data(fd, "x", 1, P2P_STATUS_OK);
    int dst = tc_connect(srv.port);
    tc_register(dst, "dst", P2P_STATUS_OK);
    send_to(fd, "dst", 3, "y", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_expect_data(dst, "y", 1);
    tc_close(dst);
    tc_close(fd);
    stop_server(&srv);
}

/* Turning QUIET off with a second HELLO brings the replies back. */
static void test_quiet_turned_off(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = v2_connect_cfg(srv.port, P2P_HELLO_FLAG_QUIET, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_send_cmd(fd, P2P_CMD_SEND, "q", 1);
    tc_expect_nothing_pending(fd);
    expect_hello(fd, 2, 0, 2, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_send_data(fd, "loud", 4, P2P_STATUS_OK);
    tc_close(fd);
    stop_server(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quiet_send_success_unacknowledged),
        cmocka_unit_test(test_quiet_send_to_success_unacknowledged),
        cmocka_unit_test(test_quiet_failures_still_answered),
        cmocka_unit_test(test_quiet_ignored_in_v1_session),
        cmocka_unit_test(test_quiet_turned_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
