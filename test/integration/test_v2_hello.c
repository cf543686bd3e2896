/*
 * test_v2_hello.c - protocol v2 session negotiation (stupidp2p(7), HELLO):
 * the 11-byte reply, version selection (1 stays v1, 3 and up get 2), 88 04
 * for version 0, reserved flags and wrong lengths (the session unchanged),
 * a second HELLO changing flags or version, and HELLO pipelined with the
 * requests after it.
 *
 * Whether a session is v1 or v2 is observed from the outside: the reserved
 * command 0x0D is ignored in v1 and answered 8D 06 in v2, and a SEND
 * without an id gets 83 00 in v1 and 83 02 in v2.
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

/* A fresh connection is v1: the v2-only command 0x0D is ignored. Proves
 * "ignored" with HEARTBEAT ordering. */
static void expect_v1_session(int fd)
{
    tc_send_cmd(fd, 0x0D, NULL, 0);
    tc_expect_nothing_pending(fd);
    tc_send_cmd(fd, P2P_CMD_SEND, "x", 1); /* unregistered: v1 says 0 */
    tc_expect_reply(fd, P2P_CMD_SEND, 0);
}

/* In a v2 session 0x0D is answered 8D 06 and SEND unregistered 83 02. */
static void expect_v2_session(int fd)
{
    tc_send_cmd(fd, 0x0D, NULL, 0);
    tc_expect_reply(fd, 0x0D, P2P_STATUS_UNSUPPORTED);
    tc_send_cmd(fd, P2P_CMD_SEND, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND, P2P_STATUS_NOT_REGISTERED);
}

static void test_hello_v2_reply_bytes(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = tc_connect(srv.port);
    expect_v1_session(fd);
    /* 08 02 00 -> 88 01 02 | 00 01 00 00 | 00 00 01 2c */
    static const uint8_t hello[] = {0x08, 0x02, 0x00};
    static const uint8_t reply[] = {0x88, 0x01, 0x02, 0x00, 0x01, 0x00,
                                    0x00, 0x00, 0x00, 0x01, 0x2c};
    tc_send_frame(fd, hello, sizeof hello);
    tc_expect_frame(fd, reply, sizeof reply);
    expect_v2_session(fd);
    tc_close(fd);
    stop_server(&srv);
}

static void test_hello_reports_configured_limits(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-frame", "1000", "--idle-timeout", "0", NULL};
    struct p2p_server srv;
    start_server(&srv, args);
    int fd = tc_connect(srv.port);
    expect_hello(fd, 2, 0, 2, 1000, 0);
    tc_close(fd);
    static const char *const args2[] = {"--max-frame", "16777216", "--idle-timeout", "7",
                                        NULL};
    stop_server(&srv);
    start_server(&srv, args2);
    fd = tc_connect(srv.port);
    expect_hello(fd, 2, 0, 2, 16777216, 7);
    tc_close(fd);
    stop_server(&srv);
}

static void test_hello_higher_versions_get_2(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = tc_connect(srv.port);
    expect_hello(fd, 3, 0, 2, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    expect_v2_session(fd);
    tc_close(fd);
    fd = tc_connect(srv.port);
    expect_hello(fd, 255, 0, 2, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    expect_v2_session(fd);
    tc_close(fd);
    stop_server(&srv);
}

static void test_hello_version_1_stays_v1(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = tc_connect(srv.port);
    expect_hello(fd, 1, 0, 1, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    expect_v1_session(fd);
    /* v1 semantics: SUBSCRIBE to an offline id fails with 0, no PRESENCE. */
    tc_subscribe(fd, "nobody", 0);
    tc_expect_nothing_pending(fd);
    tc_close(fd);
    stop_server(&srv);
}

static void test_hello_version_1_downgrades_v2(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = v2_connect(srv.port);
    expect_v2_session(fd);
    expect_hello(fd, 1, 0, 1, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    expect_v1_session(fd);
    expect_hello(fd, 2, 0, 2, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    expect_v2_session(fd);
    tc_close(fd);
    stop_server(&srv);
}

/* Version 0, reserved flag bits and wrong lengths get 88 04 and leave the
 * session as it was, v1 or v2. */
static void test_hello_bad_requests_get_88_04(void **state)
{
    (void)state;
    static const uint8_t bad[][4] = {
        {0x08, 0x00, 0x00}, /* version 0            */
        {0x08, 0x00, 0x01}, /* version 0 with QUIET */
        {0x08, 0x02, 0x02}, /* reserved flag bit 1  */
        {0x08, 0x02, 0x80}, /* reserved flag bit 7  */
        {0x08, 0x02, 0xFF}, /* every flag bit       */
        {0x08, 0x02, 0x00, 0x00}, /* 4 bytes: too long */
        {0x08, 0x02},       /* 2 bytes: too short   */
        {0x08},             /* command byte only    */
    };
    static const size_t len[] = {3, 3, 3, 3, 3, 4, 2, 1};
    struct p2p_server srv;
    start_server(&srv, NULL);
    int v1 = tc_connect(srv.port);
    int v2 = v2_connect(srv.port);
    for (size_t i = 0; i < ARRAY_LEN(len); i++) {
        tc_send_frame(v1, bad[i], len[i]);
        tc_expect_reply(v1, P2P_CMD_HELLO, P2P_STATUS_BAD_ARGUMENT);
        expect_v1_session(v1);
        tc_send_frame(v2, bad[i], len[i]);
        tc_expect_reply(v2, P2P_CMD_HELLO, P2P_STATUS_BAD_ARGUMENT);
        expect_v2_session(v2);
    }
    tc_close(v1);
    tc_close(v2);
    stop_server(&srv);
}

/* A failed HELLO does not change the flags either: QUIET stays on. */
static void test_hello_failure_keeps_flags(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = v2_connect_cfg(srv.port, P2P_HELLO_FLAG_QUIET, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_register(fd, "q", P2P_STATUS_OK);
    static const uint8_t bad[] = {0x08, 0x02, 0x03};
    tc_send_frame(fd, bad, sizeof bad);
    tc_expect_reply(fd, P2P_CMD_HELLO, P2P_STATUS_BAD_ARGUMENT);
    tc_send_cmd(fd, P2P_CMD_SEND, "hi", 2); /* still QUIET: no reply */
    tc_expect_nothing_pending(fd);
    tc_close(fd);
    stop_server(&srv);
}

/* A second HELLO may change the flags: QUIET on, then off, then on. */
static void test_hello_second_changes_flags(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = v2_connect(srv.port);
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_send_data(fd, "a", 1, P2P_STATUS_OK);
    expect_hello(fd, 2, P2P_HELLO_FLAG_QUIET, 2, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_send_cmd(fd, P2P_CMD_SEND, "b", 1);
    tc_expect_nothing_pending(fd);
    expect_hello(fd, 2, 0, 2, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_send_data(fd, "c", 1, P2P_STATUS_OK);
    expect_hello(fd, 2, P2P_HELLO_FLAG_QUIET, 2, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_send_cmd(fd, P2P_CMD_SEND, "d", 1);
    tc_expect_nothing_pending(fd);
    tc_close(fd);
    stop_server(&srv);
}

/* HELLO and the requests after it sent in one write: the HELLO reply comes
 * first and the next request is already handled as v2. This is also how a
 * client tells this server from the original: HELLO then HEARTBEAT, and the
 * HELLO reply arrives before 87 01. */
static void test_hello_pipelined_with_next_requests(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = tc_connect(srv.port);
    static const uint8_t burst[] = {
        0, 0, 0, 3, 0x08, 0x02, 0x00, /* HELLO 2        */
        0, 0, 0, 1, 0x07,             /* HEARTBEAT      */
        0, 0, 0, 1, 0x0D,             /* reserved: 8D 06 */
    };
    tc_send_raw(fd, burst, sizeof burst);
    static const uint8_t reply[] = {0x88, 0x01, 0x02, 0x00, 0x01, 0x00,
                                    0x00, 0x00, 0x00, 0x01, 0x2c};
    tc_expect_frame(fd, reply, sizeof reply);
    tc_expect_reply(fd, P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
    tc_expect_reply(fd, 0x0D, P2P_STATUS_UNSUPPORTED);
    tc_close(fd);
    stop_server(&srv);
}

/* HELLO split byte by byte still gets exactly one reply. */
static void test_hello_byte_by_byte(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = tc_connect(srv.port);
    static const uint8_t frame[] = {0, 0, 0, 3, 0x08, 0x02, 0x01};
    for (size_t i = 0; i < sizeof frame; i++)
        tc_send_raw(fd, frame + i, 1);
    static const uint8_t reply[] = {0x88, 0x01, 0x02, 0x00, 0x01, 0x00,
                                    0x00, 0x00, 0x00, 0x01, 0x2c};
    tc_expect_frame(fd, reply, sizeof reply);
    tc_expect_nothing_pending(fd);
    tc_close(fd);
    stop_server(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hello_v2_reply_bytes),
        cmocka_unit_test(test_hello_reports_configured_limits),
        cmocka_unit_test(test_hello_higher_versions_get_2),
        cmocka_unit_test(test_hello_version_1_stays_v1),
        cmocka_unit_test(test_hello_version_1_downgrades_v2),
        cmocka_unit_test(test_hello_bad_requests_get_88_04),
        cmocka_unit_test(test_hello_failure_keeps_flags),
        cmocka_unit_test(test_hello_second_changes_flags),
        cmocka_unit_test(test_hello_pipelined_with_next_requests),
        cmocka_unit_test(test_hello_byte_by_byte),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
