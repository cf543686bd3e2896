/*
 * test_v2_mixed_fanout.c - v1 and v2 sessions on one server (stupidp2p(7),
 * SESSIONS, DELIVER): a v1 and a v2 publisher, and a plain v1, a HELLO-1,
 * a v2 and a v2 QUIET subscriber of both. Each subscriber receives every
 * message once, in order, in its own format ([03] + data for v1, DELIVER
 * for v2); only v2 subscribers get PRESENCE; subscriptions survive the
 * publisher reconnecting.
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

enum kind { V1_PLAIN, V1_HELLO, V2, V2_QUIET };
#define NSUBS 4

/* One subscriber of each kind, subscribed to both publishers (which are
 * online, so that v1's SUBSCRIBE succeeds too). */
static void connect_subscribers(uint16_t port, int subs[NSUBS])
{
    for (int k = 0; k < NSUBS; k++) {
        if (k == V1_PLAIN) {
            subs[k] = tc_connect(port);
        } else if (k == V1_HELLO) {
            subs[k] = tc_connect(port);
            expect_hello(subs[k], 1, 0, 1, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
        } else {
            subs[k] = v2_connect_cfg(port, k == V2_QUIET ? P2P_HELLO_FLAG_QUIET : 0,
                                     DEFAULT_MAX_FRAME, DEFAULT_IDLE);
        }
        tc_subscribe(subs[k], "new", P2P_STATUS_OK);
        if (k >= V2)
            expect_presence(subs[k], P2P_PRESENCE_ONLINE, "new");
        tc_subscribe(subs[k], "old", P2P_STATUS_OK);
        if (k >= V2)
            expect_presence(subs[k], P2P_PRESENCE_ONLINE, "old");
    }
}

/* Each kind of subscriber gets its own format for the same message. */
static void expect_message(int subs[NSUBS], const char *from, const void *data, size_t len)
{
    for (int k = 0; k < NSUBS; k++) {
        if (k < V2)
            tc_expect_data(subs[k], data, len);
        else
            expect_deliver(subs[k], from, strlen(from), data, len);
    }
}

/* A v2 and a v1 publisher, four kinds of subscribers, interleaved
 * messages: every subscriber sees every message once, in the server's
 * order, in its own format. */
static void test_mixed_fanout_formats_and_order(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int pub2 = v2_connect(srv.port);
    tc_register(pub2, "new", P2P_STATUS_OK);
    int pub1 = tc_connect(srv.port);
    tc_register(pub1, "old", P2P_STATUS_OK);
    int subs[NSUBS];
    connect_subscribers(srv.port, subs);

    char msg[32];
    for (int i = 0; i < 30; i++) {
        int n = snprintf(msg, sizeof msg, "message %d", i);
        tc_send_data(i % 2 ? pub1 : pub2, msg, (size_t)n, P2P_STATUS_OK);
    }
    for (int i = 0; i < 30; i++) {
        int n = snprintf(msg, sizeof msg, "message %d", i);
        expect_message(subs, i % 2 ? "old" : "new", msg, (size_t)n);
    }
    for (int k = 0; k < NSUBS; k++)
        tc_expect_nothing_pending(subs[k]);
    tc_expect_nothing_pending(pub1);
    tc_expect_nothing_pending(pub2);
    for (int k = 0; k < NSUBS; k++)
        tc_close(subs[k]);
    tc_close(pub1);
    tc_close(pub2);
    stop_server(&srv);
}

/* Large and binary payloads reach every kind byte for byte. */
static void test_mixed_fanout_large_payload(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int pub2 = v2_connect(srv.port);
    tc_register(pub2, "new", P2P_STATUS_OK);
    int pub1 = tc_connect(srv.port);
    tc_register(pub1, "old", P2P_STATUS_OK);
    int subs[NSUBS];
    connect_subscribers(srv.port, subs);
    size_t len = 60 * 1024;
    uint8_t *data = xmalloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)((i * 131) ^ (i >> 8));
    tc_send_data(pub2, data, len, P2P_STATUS_OK);
    expect_message(subs, "new", data, len);
    tc_send_data(pub1, data, len, P2P_STATUS_OK);
    expect_message(subs, "old", data, len);
    tc_send_data(pub2, NULL, 0, P2P_STATUS_OK);
    expect_message(subs, "new", NULL, 0);
    free(data);
    for (int k = 0; k < NSUBS; k++)
        tc_close(subs[k]);
    tc_close(pub1);
    tc_close(pub2);
    stop_server(&srv);
}

/* When a publisher leaves, only the v2 subscribers are told; when it comes
 * back, every subscriber still receives from it (subscriptions name ids). */
static void test_mixed_fanout_publisher_reconnects(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int pub2 = v2_connect(srv.port);
    tc_register(pub2, "new", P2P_STATUS_OK);
    int pub1 = tc_connect(srv.port);
    tc_register(pub1, "old", P2P_STATUS_OK);
    int subs[NSUBS];
    connect_subscribers(srv.port, subs);
    tc_close(pub1);
    for (int k = V2; k < NSUBS; k++)
        expect_presence(subs[k], P2P_PRESENCE_OFFLINE, "old");
    for (int k = 0; k < NSUBS; k++)
        tc_expect_nothing_pending(subs[k]);
    pub1 = v2_connect(srv.port); /* comes back speaking v2 */
    tc_register(pub1, "old", P2P_STATUS_OK);
    for (int k = V2; k < NSUBS; k++)
        expect_presence(subs[k], P2P_PRESENCE_ONLINE, "old");
    tc_send_data(pub1, "again", 5, P2P_STATUS_OK);
    expect_message(subs, "old", "again", 5);
    /* A SEND_TO reaches only its target, in the target's format. */
    send_to(pub2, "old", 3, "direct", 6);
    expect_deliver_str(pub1, "new", "direct");
    tc_expect_reply(pub2, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    for (int k = 0; k < NSUBS; k++)
        tc_expect_nothing_pending(subs[k]);
    for (int k = 0; k < NSUBS; k++)
        tc_close(subs[k]);
    tc_close(pub1);
    tc_close(pub2);
    stop_server(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_mixed_fanout_formats_and_order),
        cmocka_unit_test(test_mixed_fanout_large_payload),
        cmocka_unit_test(test_mixed_fanout_publisher_reconnects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
