/*
 * test_v2_status.c - reasons in v2 failure replies (stupidp2p(7), STATUS
 * CODES): 2 not registered, 3 offline, 4 bad argument, 6 unsupported
 * (AUTH), the order 4 before 2 before 3, answers that are not failures
 * keeping their v1 values, and v1 sessions seeing 0 for every failure.
 * Status 7 (limit) is in test_v2_limit_subs.c, unknown commands in
 * test_v2_unknown_commands.c.
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

static void fill_id(uint8_t *id, size_t len, uint8_t seed)
{
    for (size_t i = 0; i < len; i++)
        id[i] = (uint8_t)(seed + i);
}

/* 2: the request needs an id and the caller holds none. */
static void test_status_2_not_registered(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int dst = v2_connect(srv.port);
    tc_register(dst, "dst", P2P_STATUS_OK);
    int fd = v2_connect(srv.port);
    tc_send_cmd(fd, P2P_CMD_SEND, "data", 4);
    tc_expect_reply(fd, P2P_CMD_SEND, P2P_STATUS_NOT_REGISTERED);
    send_to(fd, "dst", 3, "data", 4);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_NOT_REGISTERED);
    tc_expect_nothing_pending(dst); /* nothing delivered */
    /* After UNREGISTER the caller holds no id again. */
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_unregister(fd);
    tc_send_cmd(fd, P2P_CMD_SEND, "data", 4);
    tc_expect_reply(fd, P2P_CMD_SEND, P2P_STATUS_NOT_REGISTERED);
    tc_close(fd);
    tc_close(dst);
    stop_server(&srv);
}

/* 3: SEND_TO an id that is offline, never seen, or gone. */
static void test_status_3_offline(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = v2_connect(srv.port);
    tc_register(fd, "me", P2P_STATUS_OK);
    send_to(fd, "never", 5, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    int other = tc_connect(srv.port);
    tc_register(other, "gone", P2P_STATUS_OK);
    tc_unregister(other);
    send_to(fd, "gone", 4, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    tc_expect_nothing_pending(other);
    /* Ids are compared exactly: "GONE" and "gone\0" are other ids. */
    tc_register(other, "gone", P2P_STATUS_OK);
    send_to(fd, "GONE", 4, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    send_to(fd, "gone\0", 5, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    tc_expect_nothing_pending(other);
    tc_close(other);
    tc_close(fd);
    stop_server(&srv);
}

/* 4: empty and over-long ids, own id, length fields running past the
 * frame. */
static void test_status_4_bad_argument(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = v2_connect(srv.port);
    uint8_t long_id[256];
    fill_id(long_id, sizeof long_id, 0x41);

    tc_register_bytes(fd, "", 0, P2P_STATUS_BAD_ARGUMENT);
    tc_register_bytes(fd, long_id, 256, P2P_STATUS_BAD_ARGUMENT);
    tc_register_bytes(fd, long_id, 255, P2P_STATUS_OK); /* 255 is fine */
    tc_register(fd, "me", P2P_STATUS_OK);

    tc_subscribe_bytes(fd, "", 0, P2P_STATUS_BAD_ARGUMENT);
    tc_subscribe_bytes(fd, long_id, 256, P2P_STATUS_BAD_ARGUMENT);
    tc_subscribe(fd, "me", P2P_STATUS_BAD_ARGUMENT); /* own id */
    tc_expect_nothing_pending(fd);                   /* no PRESENCE */

    int dst = v2_connect(srv.port);
    tc_register(dst, "dst", P2P_STATUS_OK);
    send_to(fd, "me", 2, "x", 1); /* own id */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    send_to(fd, "", 0, "x", 1); /* id_len 0 */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    static const uint8_t no_len[] = {0x0A};
    tc_send_frame(fd, no_len, sizeof no_len); /* ends before id_len */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    static const uint8_t past[] = {0x0A, 4, 'd', 's', 't'}; /* id runs past */
    tc_send_frame(fd, past, sizeof past);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    static const uint8_t past255[] = {0x0A, 255, 'd', 's', 't'};
    tc_send_frame(fd, past255, sizeof past255);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    tc_expect_nothing_pending(dst); /* none of these delivered anything */
    /* The id exactly filling the frame is fine: empty data. */
    static const uint8_t exact[] = {0x0A, 3, 'd', 's', 't'};
    tc_send_frame(fd, exact, sizeof exact);
    expect_deliver(dst, "me", 2, NULL, 0);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_close(dst);
    tc_close(fd);
    stop_server(&srv);
}

/* A failed REGISTER keeps the id the connection had. */
static void test_status_4_register_keeps_old_id(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = v2_connect(srv.port);
    int watch = v2_connect(srv.port);
    tc_register(fd, "keep", P2P_STATUS_OK);
    tc_subscribe(watch, "keep", P2P_STATUS_OK);
    expect_presence(watch, P2P_PRESENCE_ONLINE, "keep");
    tc_register_bytes(fd, "", 0, P2P_STATUS_BAD_ARGUMENT);
    tc_check_alive(watch, "keep", P2P_STATUS_OK); /* no PRESENCE before it */
    tc_send_data(fd, "still", 5, P2P_STATUS_OK);
    expect_deliver_str(watch, "keep", "still");
    tc_close(watch);
    tc_close(fd);
    stop_server(&srv);
}

/* 4 before 2 before 3. */
static void test_status_order(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = v2_connect(srv.port); /* holds no id */
    /* bad argument and not registered: 4 */
    send_to(fd, "", 0, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    static const uint8_t past[] = {0x0A, 9, 'a'};
    tc_send_frame(fd, past, sizeof past);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    /* not registered and offline: 2 */
    send_to(fd, "offline", 7, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_NOT_REGISTERED);
    /* registered, own id (also "offline" for nobody else holds it): 4 */
    tc_register(fd, "me", P2P_STATUS_OK);
    send_to(fd, "me", 2, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, P2P_STATUS_BAD_ARGUMENT);
    tc_close(fd);
    stop_server(&srv);
}

/* 6: AUTH is not implemented yet (8C 06); in v1, 8C 00. */
static void test_status_6_auth_unsupported(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int v2 = v2_connect(srv.port);
    tc_send_cmd(v2, P2P_CMD_AUTH, "token", 5);
    tc_expect_reply(v2, P2P_CMD_AUTH, P2P_STATUS_UNSUPPORTED);
    tc_send_cmd(v2, P2P_CMD_AUTH, NULL, 0);
    tc_expect_reply(v2, P2P_CMD_AUTH, P2P_STATUS_UNSUPPORTED);
    int v1 = tc_connect(srv.port);
    tc_send_cmd(v1, P2P_CMD_AUTH, "token", 5);
    tc_expect_reply(v1, P2P_CMD_AUTH, 0);
    tc_close(v1);
    tc_close(v2);
    stop_server(&srv);
}

/* Answers that are not failures keep their v1 values in v2. */
static void test_status_non_failures_keep_v1_values(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = v2_connect(srv.port);
    tc_check_alive(fd, "nobody", 0);       /* 86 00, not 86 03 */
    tc_unregister(fd);                     /* 84 01 without an id */
    tc_unsubscribe(fd, "never-subscribed"); /* 85 01 */
    tc_send_cmd(fd, P2P_CMD_UNSUBSCRIBE, NULL, 0);
    tc_expect_reply(fd, P2P_CMD_UNSUBSCRIBE, P2P_STATUS_OK);
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_check_alive(fd, "me", P2P_STATUS_OK);
    tc_send_data(fd, "nobody listens", 14, P2P_STATUS_OK); /* dropped, 83 01 */
    tc_send_cmd(fd, P2P_CMD_HEARTBEAT, "extra", 5); /* data ignored */
    tc_expect_reply(fd, P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
    tc_close(fd);
    stop_server(&srv);
}

/* CHECK_ALIVE of an empty or over-long id in v2: 86 04 (v1: 86 00). */
static void test_status_4_check_alive_bad_id(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    uint8_t long_id[256];
    fill_id(long_id, sizeof long_id, 0x61);
    int v2 = v2_connect(srv.port);
    tc_send_cmd(v2, P2P_CMD_CHECK_ALIVE, NULL, 0);
    tc_expect_reply(v2, P2P_CMD_CHECK_ALIVE, P2P_STATUS_BAD_ARGUMENT);
    tc_send_cmd(v2, P2P_CMD_CHECK_ALIVE, long_id, sizeof long_id);
    tc_expect_reply(v2, P2P_CMD_CHECK_ALIVE, P2P_STATUS_BAD_ARGUMENT);
    int v1 = tc_connect(srv.port);
    tc_send_cmd(v1, P2P_CMD_CHECK_ALIVE, NULL, 0);
    tc_expect_reply(v1, P2P_CMD_CHECK_ALIVE, 0);
    tc_close(v1);
    tc_close(v2);
    stop_server(&srv);
}

/* v1 sessions see status 0 for every failure, also of v2 commands. */
static void test_status_v1_failures_are_0(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int fd = tc_connect(srv.port);
    tc_register_bytes(fd, "", 0, 0);
    tc_send_cmd(fd, P2P_CMD_SEND, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND, 0);
    send_to(fd, "t", 1, "x", 1); /* not registered */
    tc_expect_reply(fd, P2P_CMD_SEND_TO, 0);
    tc_register(fd, "me", P2P_STATUS_OK);
    tc_subscribe(fd, "me", 0);
    tc_subscribe(fd, "offline", 0);
    send_to(fd, "offline", 7, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, 0);
    send_to(fd, "me", 2, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, 0);
    send_to(fd, "", 0, "x", 1);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, 0);
    static const uint8_t past[] = {0x0A, 9, 'a'};
    tc_send_frame(fd, past, sizeof past);
    tc_expect_reply(fd, P2P_CMD_SEND_TO, 0);
    tc_close(fd);
    stop_server(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_status_2_not_registered),
        cmocka_unit_test(test_status_3_offline),
        cmocka_unit_test(test_status_4_bad_argument),
        cmocka_unit_test(test_status_4_register_keeps_old_id),
        cmocka_unit_test(test_status_order),
        cmocka_unit_test(test_status_6_auth_unsupported),
        cmocka_unit_test(test_status_non_failures_keep_v1_values),
        cmocka_unit_test(test_status_4_check_alive_bad_id),
        cmocka_unit_test(test_status_v1_failures_are_0),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
