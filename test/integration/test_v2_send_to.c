/*
 * test_v2_send_to.c - SEND_TO (stupidp2p(7), SEND_TO): delivered to the one
 * target, as DELIVER to a v2 session and as [03] + data to a v1 session;
 * offline targets get 8A 03 (8A 00 from a v1 session); a v1 session may use
 * SEND_TO too; binary and 255-byte ids and the largest data; order kept.
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

/* v2 sender to an online v2 target: DELIVER naming the sender, 8A 01.
 * The target needs no subscription; the sender's subscribers get nothing. */
static void test_send_to_online_v2_target(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int bob = v2_connect(srv.port);
    tc_register(bob, "bob", P2P_STATUS_OK);
    int alice = v2_connect(srv.port);
    tc_register(alice, "alice", P2P_STATUS_OK);
    int fan = v2_connect(srv.port); /* subscribes to bob: must see nothing */
    tc_subscribe(fan, "bob", P2P_STATUS_OK);
    expect_presence(fan, P2P_PRESENCE_ONLINE, "bob");

    static const uint8_t req[] = {0x0a, 0x05, 'a', 'l', 'i', 'c', 'e', 'y', 'o'};
    tc_send_frame(bob, req, sizeof req);
    static const uint8_t deliver[] = {0x09, 0x03, 'b', 'o', 'b', 'y', 'o'};
    tc_expect_frame(alice, deliver, sizeof deliver);
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_expect_nothing_pending(fan);
    tc_expect_nothing_pending(bob);
    tc_expect_nothing_pending(alice);
    tc_close(fan);
    tc_close(alice);
    tc_close(bob);
    stop_server(&srv);
}

/* Offline and unknown targets: 8A 03 and nothing delivered anywhere. */
static void test_send_to_offline_target(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int bob = v2_connect(srv.port);
    tc_register(bob, "bob", P2P_STATUS_OK);
    send_to(bob, "carol", 5, "!", 1);
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    int watch = v2_connect(srv.port); /* tells when carol comes and goes */
    tc_subscribe(watch, "carol", P2P_STATUS_OK);
    expect_presence(watch, P2P_PRESENCE_OFFLINE, "carol");
    int carol = v2_connect(srv.port);
    tc_register(carol, "carol", P2P_STATUS_OK);
    expect_presence(watch, P2P_PRESENCE_ONLINE, "carol");
    tc_expect_nothing_pending(carol); /* not stored for later */
    send_to(bob, "carol", 5, "?", 1);
    expect_deliver_str(carol, "bob", "?");
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_close(carol); /* gone again */
    expect_presence(watch, P2P_PRESENCE_OFFLINE, "carol");
    tc_close(watch);
    send_to(bob, "carol", 5, "!", 1);
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    tc_close(bob);
    stop_server(&srv);
}

/* A v1 target (never said HELLO, or said HELLO 1) receives [03] + data. */
static void test_send_to_v1_target(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int old = tc_connect(srv.port);
    tc_register(old, "old", P2P_STATUS_OK);
    int down = tc_connect(srv.port);
    expect_hello(down, 1, 0, 1, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_register(down, "down", P2P_STATUS_OK);
    int bob = v2_connect(srv.port);
    tc_register(bob, "bob", P2P_STATUS_OK);
    send_to(bob, "old", 3, "plain", 5);
    tc_expect_data(old, "plain", 5);
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    send_to(bob, "down", 4, "\x00\xff", 2);
    tc_expect_data(down, "\x00\xff", 2);
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    send_to(bob, "old", 3, NULL, 0);
    tc_expect_data(old, NULL, 0);
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_close(old);
    tc_close(down);
    tc_close(bob);
    stop_server(&srv);
}

/* From a v1 session: success is 8A 01 (the target gets its own format);
 * every failure is 8A 00. */
static void test_send_to_from_v1_session(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int v2 = v2_connect(srv.port);
    tc_register(v2, "new", P2P_STATUS_OK);
    int v1t = tc_connect(srv.port);
    tc_register(v1t, "v1t", P2P_STATUS_OK);
    int v1 = tc_connect(srv.port);
    send_to(v1, "new", 3, "x", 1); /* holds no id */
    tc_expect_reply(v1, P2P_CMD_SEND_TO, 0);
    tc_register(v1, "v1", P2P_STATUS_OK);
    send_to(v1, "new", 3, "to v2", 5);
    expect_deliver_str(v2, "v1", "to v2");
    tc_expect_reply(v1, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    send_to(v1, "v1t", 3, "to v1", 5);
    tc_expect_data(v1t, "to v1", 5);
    tc_expect_reply(v1, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    send_to(v1, "nobody", 6, "x", 1); /* offline */
    tc_expect_reply(v1, P2P_CMD_SEND_TO, 0);
    send_to(v1, "v1", 2, "x", 1); /* own id */
    tc_expect_reply(v1, P2P_CMD_SEND_TO, 0);
    tc_expect_nothing_pending(v1);
    tc_expect_nothing_pending(v2);
    tc_expect_nothing_pending(v1t);
    tc_close(v1);
    tc_close(v1t);
    tc_close(v2);
    stop_server(&srv);
}

/* Binary ids, a 255-byte target id and the largest data that fits. */
static void test_send_to_binary_and_large(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    uint8_t target[255];
    for (size_t i = 0; i < sizeof target; i++)
        target[i] = (uint8_t)(i ^ 0xA5);
    static const uint8_t sender[] = {0x00, 0x01, 0x00};
    int dst = v2_connect(srv.port);
    tc_register_bytes(dst, target, sizeof target, P2P_STATUS_OK);
    int src = v2_connect(srv.port);
    tc_register_bytes(src, sender, sizeof sender, P2P_STATUS_OK);
    size_t len = DEFAULT_MAX_FRAME - 2 - sizeof target; /* payload = max_frame */
    uint8_t *data = xmalloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i % 251);
    send_to(src, target, sizeof target, data, len);
    expect_deliver(dst, sender, sizeof sender, data, len);
    tc_expect_reply(src, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    free(data);
    tc_close(dst);
    tc_close(src);
    stop_server(&srv);
}

/* Messages from one sender to one target keep their order, also when
 * interleaved with SENDs to subscribers. */
static void test_send_to_order(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int dst = v2_connect(srv.port);
    tc_register(dst, "dst", P2P_STATUS_OK);
    tc_subscribe(dst, "src", P2P_STATUS_OK);
    expect_presence(dst, P2P_PRESENCE_OFFLINE, "src");
    int src = v2_connect_cfg(srv.port, P2P_HELLO_FLAG_QUIET, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_register(src, "src", P2P_STATUS_OK);
    expect_presence(dst, P2P_PRESENCE_ONLINE, "src");
    char msg[16];
    for (int i = 0; i < 100; i++) {
        int n = snprintf(msg, sizeof msg, "%d", i);
        if (i % 2)
            send_to(src, "dst", 3, msg, (size_t)n);
        else
            tc_send_cmd(src, P2P_CMD_SEND, msg, (size_t)n);
    }
    tc_expect_nothing_pending(src); /* QUIET: all 100 went unacknowledged */
    for (int i = 0; i < 100; i++) {
        snprintf(msg, sizeof msg, "%d", i);
        expect_deliver_str(dst, "src", msg);
    }
    tc_expect_nothing_pending(dst);
    tc_close(dst);
    tc_close(src);
    stop_server(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_send_to_online_v2_target),
        cmocka_unit_test(test_send_to_offline_target),
        cmocka_unit_test(test_send_to_v1_target),
        cmocka_unit_test(test_send_to_from_v1_session),
        cmocka_unit_test(test_send_to_binary_and_large),
        cmocka_unit_test(test_send_to_order),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
