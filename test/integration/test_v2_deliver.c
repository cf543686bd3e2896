/*
 * test_v2_deliver.c - DELIVER (stupidp2p(7), EVENTS): a v2 subscriber gets
 * [09][id_len][sender id][data] byte for byte, with the right sender among
 * several, binary and 255-byte ids, empty and largest data (a frame larger
 * than max_frame), the id held at send time; once per subscriber; queued
 * before the sender's reply; never stored for later.
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

/* SEND reaches a v2 subscriber as DELIVER with the sender's id. */
static void test_deliver_carries_sender_id(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int pub = v2_connect(srv.port);
    tc_register(pub, "alice", P2P_STATUS_OK);
    int sub = v2_connect(srv.port);
    tc_subscribe(sub, "alice", P2P_STATUS_OK);
    expect_presence(sub, P2P_PRESENCE_ONLINE, "alice");
    tc_send_data(pub, "hi", 2, P2P_STATUS_OK);
    static const uint8_t want[] = {0x09, 0x05, 'a', 'l', 'i', 'c', 'e', 'h', 'i'};
    tc_expect_frame(sub, want, sizeof want);
    tc_expect_nothing_pending(pub); /* the sender gets no copy */
    tc_close(pub);
    tc_close(sub);
    stop_server(&srv);
}

/* Each sender is named correctly; a subscriber of several devices can tell
 * them apart; messages of one sender keep their order. */
static void test_deliver_several_senders(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int p1 = v2_connect(srv.port);
    tc_register(p1, "p1", P2P_STATUS_OK);
    int p2 = tc_connect(srv.port); /* a v1 publisher is named too */
    tc_register(p2, "p2", P2P_STATUS_OK);
    int sub = v2_connect(srv.port);
    tc_subscribe(sub, "p1", P2P_STATUS_OK);
    expect_presence(sub, P2P_PRESENCE_ONLINE, "p1");
    tc_subscribe(sub, "p2", P2P_STATUS_OK);
    expect_presence(sub, P2P_PRESENCE_ONLINE, "p2");
    char msg[32];
    for (int i = 0; i < 20; i++) {
        int n = snprintf(msg, sizeof msg, "m%d", i);
        tc_send_data(i % 3 == 0 ? p2 : p1, msg, (size_t)n, P2P_STATUS_OK);
    }
    for (int i = 0; i < 20; i++) {
        snprintf(msg, sizeof msg, "m%d", i);
        expect_deliver_str(sub, i % 3 == 0 ? "p2" : "p1", msg);
    }
    tc_expect_nothing_pending(sub);
    tc_close(p1);
    tc_close(p2);
    tc_close(sub);
    stop_server(&srv);
}

/* Ids with NUL and high bytes and the longest id (255 bytes) come back byte
 * for byte, with an empty message and a binary one. */
static void test_deliver_binary_ids_and_data(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    static const uint8_t odd_id[] = {0x00, 0xFF, 0x80, '\n', 0x00};
    uint8_t long_id[255];
    for (size_t i = 0; i < sizeof long_id; i++)
        long_id[i] = (uint8_t)(255 - i);
    uint8_t data[256];
    for (size_t i = 0; i < sizeof data; i++)
        data[i] = (uint8_t)i;

    int p1 = v2_connect(srv.port);
    tc_register_bytes(p1, odd_id, sizeof odd_id, P2P_STATUS_OK);
    int p2 = v2_connect(srv.port);
    tc_register_bytes(p2, long_id, sizeof long_id, P2P_STATUS_OK);
    int sub = v2_connect(srv.port);
    tc_subscribe_bytes(sub, odd_id, sizeof odd_id, P2P_STATUS_OK);
    expect_presence_bytes(sub, P2P_PRESENCE_ONLINE, odd_id, sizeof odd_id);
    tc_subscribe_bytes(sub, long_id, sizeof long_id, P2P_STATUS_OK);
    expect_presence_bytes(sub, P2P_PRESENCE_ONLINE, long_id, sizeof long_id);

    tc_send_data(p1, data, sizeof data, P2P_STATUS_OK);
    expect_deliver(sub, odd_id, sizeof odd_id, data, sizeof data);
    tc_send_data(p2, NULL, 0, P2P_STATUS_OK);
    expect_deliver(sub, long_id, sizeof long_id, NULL, 0);
    tc_send_data(p2, data, 1, P2P_STATUS_OK);
    expect_deliver(sub, long_id, sizeof long_id, data, 1);
    tc_close(p1);
    tc_close(p2);
    tc_close(sub);
    stop_server(&srv);
}

/* The largest SEND (payload = max_frame) from the longest id: the DELIVER
 * is max_frame + 256 bytes, larger than a client may send. */
static void test_deliver_largest_frame(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    uint8_t long_id[255];
    memset(long_id, 'L', sizeof long_id);
    size_t len = DEFAULT_MAX_FRAME - 1;
    uint8_t *data = xmalloc(len);
    for (size_t i = 0; i < len; i++)
        data[i] = (uint8_t)(i * 7 + 3);
    int pub = v2_connect(srv.port);
    tc_register_bytes(pub, long_id, sizeof long_id, P2P_STATUS_OK);
    int sub = v2_connect(srv.port);
    tc_subscribe_bytes(sub, long_id, sizeof long_id, P2P_STATUS_OK);
    expect_presence_bytes(sub, P2P_PRESENCE_ONLINE, long_id, sizeof long_id);
    tc_send_data(pub, data, len, P2P_STATUS_OK);
    expect_deliver(sub, long_id, sizeof long_id, data, len);
    free(data);
    tc_close(pub);
    tc_close(sub);
    stop_server(&srv);
}

/* The sender id is the id held when the SEND was handled: after the
 * publisher moves to another id, DELIVERs name the new one (to the
 * subscribers of the new one). */
static void test_deliver_names_current_id(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int pub = v2_connect(srv.port);
    tc_register(pub, "old", P2P_STATUS_OK);
    int sub = v2_connect(srv.port);
    tc_subscribe(sub, "old", P2P_STATUS_OK);
    expect_presence(sub, P2P_PRESENCE_ONLINE, "old");
    tc_subscribe(sub, "new", P2P_STATUS_OK);
    expect_presence(sub, P2P_PRESENCE_OFFLINE, "new");
    tc_send_data(pub, "1", 1, P2P_STATUS_OK);
    expect_deliver_str(sub, "old", "1");
    tc_register(pub, "new", P2P_STATUS_OK);
    expect_presence(sub, P2P_PRESENCE_OFFLINE, "old");
    expect_presence(sub, P2P_PRESENCE_ONLINE, "new");
    tc_send_data(pub, "2", 1, P2P_STATUS_OK);
    expect_deliver_str(sub, "new", "2");
    tc_expect_nothing_pending(sub);
    tc_close(pub);
    tc_close(sub);
    stop_server(&srv);
}

/* Subscribing twice delivers once; unsubscribing stops delivery. */
static void test_deliver_once_and_unsubscribe(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int pub = v2_connect(srv.port);
    tc_register(pub, "pub", P2P_STATUS_OK);
    int sub = v2_connect(srv.port);
    for (int i = 0; i < 2; i++) {
        tc_subscribe(sub, "pub", P2P_STATUS_OK);
        expect_presence(sub, P2P_PRESENCE_ONLINE, "pub");
    }
    tc_send_data(pub, "x", 1, P2P_STATUS_OK);
    expect_deliver_str(sub, "pub", "x");
    tc_expect_nothing_pending(sub);
    tc_unsubscribe(sub, "pub");
    tc_send_data(pub, "y", 1, P2P_STATUS_OK);
    tc_expect_nothing_pending(sub);
    tc_close(pub);
    tc_close(sub);
    stop_server(&srv);
}

/* The deliveries are queued before the sender's 83 01: once the sender has
 * its reply, a subscriber's HEARTBEAT is answered after the DELIVER. The
 * subscriber's heartbeat is pipelined behind many SENDs to make a race
 * likely if the server got this wrong. */
static void test_deliver_before_sender_reply(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int pub = v2_connect(srv.port);
    tc_register(pub, "pub", P2P_STATUS_OK);
    int subs[3];
    for (size_t s = 0; s < ARRAY_LEN(subs); s++) {
        subs[s] = v2_connect(srv.port);
        tc_subscribe(subs[s], "pub", P2P_STATUS_OK);
        expect_presence(subs[s], P2P_PRESENCE_ONLINE, "pub");
    }
    char msg[16];
    for (int round = 0; round < 50; round++) {
        int n = snprintf(msg, sizeof msg, "r%d", round);
        tc_send_data(pub, msg, (size_t)n, P2P_STATUS_OK);
        for (size_t s = 0; s < ARRAY_LEN(subs); s++) {
            tc_send_cmd(subs[s], P2P_CMD_HEARTBEAT, NULL, 0);
            expect_deliver_str(subs[s], "pub", msg);
            tc_expect_reply(subs[s], P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
        }
    }
    for (size_t s = 0; s < ARRAY_LEN(subs); s++)
        tc_close(subs[s]);
    tc_close(pub);
    stop_server(&srv);
}

/* No store-and-forward: a device that subscribes after a message was sent,
 * or registers after a SEND_TO failed, never receives it. */
static void test_deliver_no_store_and_forward(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int pub = v2_connect(srv.port);
    tc_register(pub, "pub", P2P_STATUS_OK);
    tc_send_data(pub, "early", 5, P2P_STATUS_OK);
    send_to(pub, "late", 4, "early", 5);
    tc_expect_reply(pub, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE);
    int late = v2_connect(srv.port);
    tc_register(late, "late", P2P_STATUS_OK);
    tc_subscribe(late, "pub", P2P_STATUS_OK);
    expect_presence(late, P2P_PRESENCE_ONLINE, "pub");
    tc_expect_nothing_pending(late);
    tc_send_data(pub, "now", 3, P2P_STATUS_OK);
    expect_deliver_str(late, "pub", "now");
    tc_close(late);
    tc_close(pub);
    stop_server(&srv);
}

/* REGISTER (of a first or a second id) does not touch the connection's own
 * subscriptions; UNREGISTER cancels them. */
static void test_deliver_own_subscriptions_survive_register(void **state)
{
    (void)state;
    struct p2p_server srv;
    start_server(&srv, NULL);
    int pub = v2_connect(srv.port);
    tc_register(pub, "pub", P2P_STATUS_OK);
    int dev = v2_connect(srv.port);
    tc_subscribe(dev, "pub", P2P_STATUS_OK);
    expect_presence(dev, P2P_PRESENCE_ONLINE, "pub");
    tc_register(dev, "first", P2P_STATUS_OK);
    tc_register(dev, "second", P2P_STATUS_OK);
    tc_send_data(pub, "still", 5, P2P_STATUS_OK);
    expect_deliver_str(dev, "pub", "still");
    tc_unregister(dev);
    tc_send_data(pub, "gone", 4, P2P_STATUS_OK);
    tc_expect_nothing_pending(dev);
    tc_close(dev);
    tc_close(pub);
    stop_server(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_deliver_carries_sender_id),
        cmocka_unit_test(test_deliver_several_senders),
        cmocka_unit_test(test_deliver_binary_ids_and_data),
        cmocka_unit_test(test_deliver_largest_frame),
        cmocka_unit_test(test_deliver_names_current_id),
        cmocka_unit_test(test_deliver_once_and_unsubscribe),
        cmocka_unit_test(test_deliver_before_sender_reply),
        cmocka_unit_test(test_deliver_no_store_and_forward),
        cmocka_unit_test(test_deliver_own_subscriptions_survive_register),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
