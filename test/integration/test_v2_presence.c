/*
 * test_v2_presence.c - PRESENCE (stupidp2p(7), EVENTS): [0B][state][id_len]
 * [id] to v2 subscribers when an id comes online (register) and goes
 * offline (unregister, disconnect, idle timeout, registering a second id),
 * right after every v2 SUBSCRIBE (also to an offline id), never for a
 * takeover or a repeated REGISTER, never to v1 subscribers, and after the
 * last delivery from the connection that held the id.
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

/* A v2 subscriber of "dev", already told it is offline. */
static int watcher(uint16_t port, const char *id)
{
    int w = v2_connect(port);
    tc_subscribe(w, id, P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_OFFLINE, id);
    return w;
}

/* SUBSCRIBE to an offline id: 82 01, PRESENCE offline at once, then online
 * when it registers. SUBSCRIBE to an online id: PRESENCE online. */
static void test_presence_subscribe_reports_state(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int w = v2_connect(srv.port);
    tc_subscribe(w, "dev", P2P_STATUS_OK);
    static const uint8_t offline[] = {0x0b, 0x00, 0x03, 'd', 'e', 'v'};
    tc_expect_frame(w, offline, sizeof offline);
    tc_expect_nothing_pending(w);
    int dev = tc_connect(srv.port); /* the device may be v1 */
    tc_register(dev, "dev", P2P_STATUS_OK);
    static const uint8_t online[] = {0x0b, 0x01, 0x03, 'd', 'e', 'v'};
    tc_expect_frame(w, online, sizeof online);
    int w2 = v2_connect(srv.port);
    tc_subscribe(w2, "dev", P2P_STATUS_OK);
    tc_expect_frame(w2, online, sizeof online);
    tc_expect_nothing_pending(w2);
    tc_expect_nothing_pending(w);
    tc_close(w2);
    tc_close(w);
    tc_close(dev);
    stop_server(&srv);
}

/* Online on REGISTER, offline on UNREGISTER, and again: the subscription
 * persists while the device comes and goes. */
static void test_presence_register_unregister(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int w = watcher(srv.port, "dev");
    int dev = v2_connect(srv.port);
    for (int round = 0; round < 3; round++) {
        tc_register(dev, "dev", P2P_STATUS_OK);
        expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
        tc_unregister(dev);
        expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    }
    tc_unregister(dev); /* holds nothing: no event */
    tc_expect_nothing_pending(w);
    tc_close(dev);
    tc_close(w);
    stop_server(&srv);
}

/* Offline when the holder disconnects; online again from a new connection,
 * whose messages still reach the subscriber. */
static void test_presence_disconnect(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int w = watcher(srv.port, "dev");
    int dev = v2_connect(srv.port);
    tc_register(dev, "dev", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    tc_close(dev);
    expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    dev = tc_connect(srv.port);
    tc_register(dev, "dev", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    tc_send_data(dev, "back", 4, P2P_STATUS_OK);
    expect_deliver_str(w, "dev", "back");
    tc_close(dev);
    expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_close(w);
    stop_server(&srv);
}

/* Offline when the holder is closed for idleness (--idle-timeout 1); the
 * watcher, kept busy with heartbeats, stays. */
static void test_presence_idle_timeout(void **state)
{
    (void)state;
    static const char *const args[] = {"--idle-timeout", "1", NULL};
    struct p2p_server srv;
    start_server(&srv, args);
    int w = v2_connect_cfg(srv.port, 0, DEFAULT_MAX_FRAME, 1);
    tc_subscribe(w, "dev", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    int dev = tc_connect(srv.port);
    tc_register(dev, "dev", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    /* The watcher sends a HEARTBEAT every 300 ms or so to stay alive, and
     * otherwise waits for the PRESENCE, which must come within 1..2 s of
     * dev's last frame (bounded: 40 rounds). */
    static const uint8_t off[] = {0x0b, 0x00, 0x03, 'd', 'e', 'v'};
    uint8_t buf[64];
    int got = 0;
    for (int round = 0; round < 40 && !got; round++) {
        tc_send_cmd(w, P2P_CMD_HEARTBEAT, NULL, 0);
        ssize_t n = tc_recv_frame(w, buf, sizeof buf, TC_WAIT_MS);
        if (n == 2 && buf[0] == 0x87 && buf[1] == 0x01)
            n = tc_recv_frame(w, buf, sizeof buf, 300); /* -1: nothing yet */
        else
            tc_expect_reply(w, P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
        if (n < 0)
            continue;
        if ((size_t)n != sizeof off || memcmp(buf, off, sizeof off) != 0) {
            tc_hexdump("received", buf, (size_t)n, 0, 64);
            tc_fail("watcher: expected PRESENCE offline \"dev\"");
        }
        got = 1;
    }
    if (!got)
        tc_fail("no PRESENCE offline within 40 rounds");
    tc_expect_closed(dev, TC_WAIT_MS, 0); /* v1: closed without a word */
    tc_close(dev);
    tc_close(w);
    stop_server(&srv);
}

/* Registering a second id releases the first: offline for the old id, then
 * online for the new one. */
static void test_presence_second_id(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int w = v2_connect(srv.port);
    tc_subscribe(w, "one", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_OFFLINE, "one");
    tc_subscribe(w, "two", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_OFFLINE, "two");
    int dev = v2_connect(srv.port);
    tc_register(dev, "one", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_ONLINE, "one");
    tc_register(dev, "two", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_OFFLINE, "one");
    expect_presence(w, P2P_PRESENCE_ONLINE, "two");
    tc_check_alive(w, "one", 0);
    tc_close(dev);
    expect_presence(w, P2P_PRESENCE_OFFLINE, "two");
    tc_close(w);
    stop_server(&srv);
}

/* Registering the id the connection already holds changes nothing. */
static void test_presence_same_id_again(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int w = watcher(srv.port, "dev");
    int dev = v2_connect(srv.port);
    tc_register(dev, "dev", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    tc_register(dev, "dev", P2P_STATUS_OK);
    tc_expect_nothing_pending(dev);
    tc_expect_nothing_pending(w);
    tc_close(dev);
    tc_close(w);
    stop_server(&srv);
}

/* A takeover keeps the id online: no PRESENCE at all. Subscribers then
 * receive from the new holder. */
static void test_presence_takeover_silent(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int w = watcher(srv.port, "dev");
    int first = v2_connect(srv.port);
    tc_register(first, "dev", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    int second = tc_connect(srv.port);
    tc_register(second, "dev", P2P_STATUS_OK);
    expect_bye(first, P2P_BYE_TAKEN_OVER);
    tc_expect_nothing_pending(w);
    tc_send_data(second, "new", 3, P2P_STATUS_OK);
    expect_deliver_str(w, "dev", "new");
    tc_close(first);
    tc_close(second);
    expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_close(w);
    stop_server(&srv);
}

/* v1 subscribers never get PRESENCE; unsubscribed and unregistered v2
 * connections stop getting it. */
static void test_presence_only_to_v2_subscribers(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int dev = tc_connect(srv.port);
    tc_register(dev, "dev", P2P_STATUS_OK);
    int v1 = tc_connect(srv.port);
    tc_subscribe(v1, "dev", P2P_STATUS_OK);
    tc_expect_nothing_pending(v1); /* no PRESENCE after 82 01 */
    int unsub = v2_connect(srv.port);
    tc_subscribe(unsub, "dev", P2P_STATUS_OK);
    expect_presence(unsub, P2P_PRESENCE_ONLINE, "dev");
    tc_unsubscribe(unsub, "dev");
    int unreg = v2_connect(srv.port);
    tc_subscribe(unreg, "dev", P2P_STATUS_OK);
    expect_presence(unreg, P2P_PRESENCE_ONLINE, "dev");
    tc_unregister(unreg);
    int w = v2_connect(srv.port);
    tc_subscribe(w, "dev", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    tc_unregister(dev);
    expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_register(dev, "dev", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    tc_expect_nothing_pending(v1);
    tc_expect_nothing_pending(unsub);
    tc_expect_nothing_pending(unreg);
    tc_close(dev);
    expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_expect_nothing_pending(v1);
    tc_close(v1);
    tc_close(unsub);
    tc_close(unreg);
    tc_close(w);
    stop_server(&srv);
}

/* PRESENCE offline follows every delivery from the connection that held
 * the id; a subscriber of two devices gets each device's events. */
static void test_presence_after_last_delivery(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int w = watcher(srv.port, "dev");
    int dev = v2_connect_cfg(srv.port, P2P_HELLO_FLAG_QUIET, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_register(dev, "dev", P2P_STATUS_OK);
    expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    /* SENDs and the close in one burst; QUIET so no reply is pending. */
    static const uint8_t burst[] = {
        0, 0, 0, 2, 0x03, 'a', 0, 0, 0, 2, 0x03, 'b', 0, 0, 0, 2, 0x03, 'c',
    };
    tc_send_raw(dev, burst, sizeof burst);
    tc_close(dev);
    expect_deliver_str(w, "dev", "a");
    expect_deliver_str(w, "dev", "b");
    expect_deliver_str(w, "dev", "c");
    expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_close(w);
    stop_server(&srv);
}

/* A connection subscribed to an id that it then registers is never told
 * about its own id: no PRESENCE online when it registers it, none offline
 * when it releases it (by a second REGISTER or by UNREGISTER). Other
 * subscribers are told both. (Regression: the offline event used to reach
 * the releasing connection itself.) */
static void test_presence_not_sent_about_own_id(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int self = watcher(srv.port, "X");
    int other = watcher(srv.port, "X");
    tc_register(self, "X", P2P_STATUS_OK);
    tc_expect_nothing_pending(self);
    expect_presence(other, P2P_PRESENCE_ONLINE, "X");
    tc_register(self, "Y", P2P_STATUS_OK); /* releases X */
    tc_expect_nothing_pending(self);
    expect_presence(other, P2P_PRESENCE_OFFLINE, "X");
    tc_register(self, "X", P2P_STATUS_OK);
    expect_presence(other, P2P_PRESENCE_ONLINE, "X");
    tc_unregister(self);
    tc_expect_nothing_pending(self);
    expect_presence(other, P2P_PRESENCE_OFFLINE, "X");
    tc_expect_nothing_pending(other);
    tc_close(self);
    tc_close(other);
    stop_server(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_presence_subscribe_reports_state),
        cmocka_unit_test(test_presence_register_unregister),
        cmocka_unit_test(test_presence_disconnect),
        cmocka_unit_test(test_presence_idle_timeout),
        cmocka_unit_test(test_presence_second_id),
        cmocka_unit_test(test_presence_same_id_again),
        cmocka_unit_test(test_presence_takeover_silent),
        cmocka_unit_test(test_presence_only_to_v2_subscribers),
        cmocka_unit_test(test_presence_after_last_delivery),
        cmocka_unit_test(test_presence_not_sent_about_own_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
