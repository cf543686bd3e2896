/*
 * test_v2_slow_consumer.c - BYE 3 (stupidp2p(7), BYE REASONS; p2pServer(8),
 * --max-output): a subscriber that stops reading is disconnected once its
 * pending output would pass the cap, after receiving whole and in order
 * what was queued before; BYE 3 in v2, no word in v1; its id goes offline;
 * the publisher and a reading subscriber are not affected.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>

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

#define MSG_SIZE 16384
#define MAX_MESSAGES 4000 /* 64 MiB: far beyond any socket buffers */

/* tc_connect with a small receive buffer set before connect(), so that the
 * kernel holds little for a client that does not read. */
static int connect_small_rcvbuf(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        tc_fail("socket failed");
    int small = 4096, one = 1;
    if (setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &small, sizeof small) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        tc_fail("setsockopt failed");
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        tc_fail("connect to 127.0.0.1:%u failed", (unsigned)port);
    return fd;
}

static int readable_now(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    return poll(&p, 1, 0) == 1;
}

static void fill_message(uint8_t *msg, uint32_t seq)
{
    put_u32(msg, seq);
    for (size_t i = 4; i < MSG_SIZE; i++)
        msg[i] = (uint8_t)(seq + i);
}

/* A subscriber that stops reading is cut off with BYE 3 once its pending
 * output would pass --max-output; it first receives, in order and whole,
 * what was queued before the cut. The publisher and a subscriber that
 * reads go on unaffected. */
static void test_slow_consumer_bye_3(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-output", "131072", NULL};
    struct p2p_server srv;
    start_server(&srv, args);

    int pub = v2_connect(srv.port);
    tc_register(pub, "pub", P2P_STATUS_OK);
    int slow = connect_small_rcvbuf(srv.port);
    expect_hello(slow, 2, 0, 2, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_register(slow, "slow", P2P_STATUS_OK);
    tc_subscribe(slow, "pub", P2P_STATUS_OK);
    expect_presence(slow, P2P_PRESENCE_ONLINE, "pub");
    int fast = v2_connect(srv.port);
    tc_subscribe(fast, "pub", P2P_STATUS_OK);
    expect_presence(fast, P2P_PRESENCE_ONLINE, "pub");
    int watch = v2_connect(srv.port); /* learns when slow is cut off */
    tc_subscribe(watch, "slow", P2P_STATUS_OK);
    expect_presence(watch, P2P_PRESENCE_ONLINE, "slow");

    uint8_t *msg = xmalloc(MSG_SIZE);
    uint32_t sent = 0;
    int cut = 0;
    while (sent < MAX_MESSAGES && !cut) {
        fill_message(msg, sent);
        tc_send_data(pub, msg, MSG_SIZE, P2P_STATUS_OK);
        expect_deliver(fast, "pub", 3, msg, MSG_SIZE);
        sent++;
        if (readable_now(watch)) {
            expect_presence(watch, P2P_PRESENCE_OFFLINE, "slow");
            cut = 1;
        }
    }
    if (!cut)
        tc_fail("slow subscriber not cut off after %u messages of %u bytes", sent, MSG_SIZE);

    /* The others go on. */
    fill_message(msg, sent);
    tc_send_data(pub, msg, MSG_SIZE, P2P_STATUS_OK);
    expect_deliver(fast, "pub", 3, msg, MSG_SIZE);
    tc_check_alive(fast, "slow", 0);

    /* slow: whole DELIVERs in order from 0, then BYE 3, then EOF. */
    uint8_t *buf = xmalloc(MSG_SIZE + 64);
    uint32_t next = 0;
    for (;;) {
        ssize_t n = tc_recv_frame(slow, buf, MSG_SIZE + 64, TC_WAIT_MS);
        if (n < 0)
            tc_fail("slow: connection ended after %u deliveries without a BYE", next);
        if (buf[0] == P2P_EVT_BYE) {
            if (n < 3 || buf[1] != P2P_BYE_SLOW_CONSUMER || (size_t)n - 2 > P2P_BYE_TEXT_MAX ||
                !utf8_valid(buf + 2, (size_t)n - 2)) {
                tc_hexdump("received", buf, (size_t)n, 0, 160);
                tc_fail("slow: expected BYE 3 with 1..127 bytes of UTF-8 text");
            }
            break;
        }
        fill_message(msg, next);
        if ((size_t)n != 5 + MSG_SIZE || memcmp(buf, "\x09\x03pub", 5) != 0 ||
            memcmp(buf + 5, msg, MSG_SIZE) != 0) {
            tc_hexdump("received", buf, (size_t)n, 0, 32);
            tc_fail("slow: frame %u is not the DELIVER of message %u", next, next);
        }
        if (++next > sent)
            tc_fail("slow: more deliveries than messages sent");
    }
    tc_expect_closed(slow, TC_WAIT_MS, 0);
    if (next >= sent)
        tc_fail("slow: all %u messages arrived: it was not cut off", sent);
    free(buf);
    free(msg);
    tc_close(slow);
    tc_close(fast);
    tc_close(watch);
    tc_close(pub);
    stop_server(&srv);
}

/* A v1 subscriber that stops reading is cut off too, without a word. */
static void test_slow_consumer_v1_closed(void **state)
{
    (void)state;
    static const char *const args[] = {"--max-output", "131072", NULL};
    struct p2p_server srv;
    start_server(&srv, args);
    int pub = v2_connect_cfg(srv.port, P2P_HELLO_FLAG_QUIET, DEFAULT_MAX_FRAME, DEFAULT_IDLE);
    tc_register(pub, "pub", P2P_STATUS_OK);
    int slow = connect_small_rcvbuf(srv.port);
    tc_register(slow, "slow", P2P_STATUS_OK);
    tc_subscribe(slow, "pub", P2P_STATUS_OK);
    int watch = v2_connect(srv.port);
    tc_subscribe(watch, "slow", P2P_STATUS_OK);
    expect_presence(watch, P2P_PRESENCE_ONLINE, "slow");

    uint8_t *msg = xmalloc(MSG_SIZE);
    uint32_t sent = 0;
    int cut = 0;
    while (sent < MAX_MESSAGES && !cut) {
        fill_message(msg, sent);
        tc_send_cmd(pub, P2P_CMD_SEND, msg, MSG_SIZE); /* QUIET: no reply */
        sent++;
        if (sent % 16 == 0)
            tc_expect_nothing_pending(pub); /* keep pace with the server */
        if (readable_now(watch)) {
            expect_presence(watch, P2P_PRESENCE_OFFLINE, "slow");
            cut = 1;
        }
    }
    if (!cut)
        tc_fail("v1 slow subscriber not cut off after %u messages", sent);
    uint8_t *buf = xmalloc(MSG_SIZE + 64);
    uint32_t next = 0;
    for (;;) {
        ssize_t n = tc_recv_frame(slow, buf, MSG_SIZE + 64, TC_WAIT_MS);
        if (n < 0)
            break; /* EOF: closed without a word */
        fill_message(msg, next);
        if ((size_t)n != 1 + MSG_SIZE || buf[0] != 0x03 || memcmp(buf + 1, msg, MSG_SIZE) != 0) {
            tc_hexdump("received", buf, (size_t)n, 0, 32);
            tc_fail("v1 slow: frame %u is not [03] + message %u", next, next);
        }
        if (++next > sent)
            tc_fail("v1 slow: more deliveries than messages sent");
    }
    if (next >= sent)
        tc_fail("v1 slow: all %u messages arrived: it was not cut off", sent);
    free(buf);
    free(msg);
    tc_close(slow);
    tc_close(watch);
    tc_close(pub);
    stop_server(&srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_consumer_bye_3),
        cmocka_unit_test(test_slow_consumer_v1_closed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
