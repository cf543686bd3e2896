/*
 * v2.c - see v2.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "v2.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "codec.h"
#include "protocol.h"

void tc_expect_hello(int fd, uint8_t version, uint8_t flags, uint8_t granted,
                     uint32_t max_frame, uint32_t idle)
{
    uint8_t req[P2P_HELLO_SIZE];
    tc_send_frame(fd, req, p2p_encode_hello(req, version, flags));
    uint8_t want[P2P_HELLO_REPLY_SIZE];
    tc_expect_frame(fd, want, p2p_encode_hello_reply(want, granted, max_frame, idle));
}

int tc_v2_connect_cfg(uint16_t port, uint8_t flags, uint32_t max_frame, uint32_t idle)
{
    int fd = tc_connect(port);
    tc_expect_hello(fd, 2, flags, 2, max_frame, idle);
    return fd;
}

int tc_v2_connect_flags(uint16_t port, uint8_t flags)
{
    return tc_v2_connect_cfg(port, flags, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
}

int tc_v2_connect(uint16_t port)
{
    return tc_v2_connect_flags(port, 0);
}

void tc_send_to(int fd, const void *id, size_t id_len, const void *data, size_t len)
{
    uint8_t head[P2P_ID_HEAD_MAX];
    size_t n = p2p_encode_send_to_head(head, id, id_len);
    uint8_t *buf = tc_payload(head, n, data, len);
    tc_send_frame(fd, buf, n + len);
    free(buf);
}

void tc_expect_deliver(int fd, const void *id, size_t id_len, const void *data, size_t len)
{
    uint8_t head[P2P_ID_HEAD_MAX];
    size_t n = p2p_encode_deliver_head(head, id, id_len);
    uint8_t *want = tc_payload(head, n, data, len);
    tc_expect_frame(fd, want, n + len);
    free(want);
}

void tc_expect_deliver_str(int fd, const char *id, const char *data)
{
    tc_expect_deliver(fd, id, strlen(id), data, strlen(data));
}

void tc_expect_presence_bytes(int fd, uint8_t state, const void *id, size_t id_len)
{
    uint8_t want[P2P_PRESENCE_MAX];
    tc_expect_frame(fd, want, p2p_encode_presence(want, state, id, id_len));
}

void tc_expect_presence(int fd, uint8_t state, const char *id)
{
    tc_expect_presence_bytes(fd, state, id, strlen(id));
}

void tc_v2_subscribe(int fd, const char *id, uint8_t presence)
{
    tc_subscribe(fd, id, P2P_STATUS_OK);
    tc_expect_presence(fd, presence, id);
}

int tc_utf8_valid(const uint8_t *s, size_t len)
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

void tc_expect_bye_within(int fd, uint8_t reason, int timeout_ms)
{
    uint8_t buf[1024];
    ssize_t n = tc_recv_frame(fd, buf, sizeof buf, timeout_ms);
    if (n < 0)
        tc_fail("fd %d: expected BYE %u, got no frame within %d ms", fd, reason, timeout_ms);
    struct p2p_message m;
    if (n == 0 || p2p_message_parse(buf, (size_t)n, &m) != P2P_PARSE_OK || m.kind != P2P_MSG_BYE ||
        m.reason != reason) {
        tc_hexdump("received", buf, (size_t)n, 0, 64);
        tc_fail("fd %d: expected BYE with reason %u", fd, reason);
    }
    /* The parser cuts the text at 127 bytes: check the length the server
     * sent, not the parsed one. */
    size_t text = (size_t)n - (size_t)(m.data - buf);
    if (text < 1 || text > P2P_BYE_TEXT_MAX || !tc_utf8_valid(m.data, text)) {
        tc_hexdump("received", buf, (size_t)n, 0, 160);
        tc_fail("fd %d: BYE text must be 1..127 bytes of UTF-8, got %zu bytes", fd, text);
    }
    tc_expect_closed(fd, TC_WAIT_MS, 0);
}

void tc_expect_bye(int fd, uint8_t reason)
{
    tc_expect_bye_within(fd, reason, TC_WAIT_MS);
}

uint16_t tc_local_port(int fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

void tc_expect_direct_event(int fd, uint8_t cmd, uint8_t *buf, size_t cap, struct p2p_direct *d)
{
    ssize_t n = tc_recv_frame(fd, buf, cap, TC_WAIT_MS);
    if (n <= 0)
        tc_fail("no DIRECT event 0x%02x", cmd);
    assert_int_equal(buf[0], cmd);
    assert_int_equal(p2p_direct_parse(buf, (size_t)n, d), P2P_PARSE_OK);
}

void tc_expect_reflexive(const struct p2p_candidate *c, uint16_t port)
{
    static const uint8_t loopback[4] = {127, 0, 0, 1};
    assert_int_equal(c->kind, P2P_CANDIDATE_REFLEXIVE);
    assert_int_equal(c->addr_len, 4);
    assert_memory_equal(c->addr, loopback, 4);
    assert_int_equal(c->port, port);
}

void tc_send_offer(int fd, const char *target, const uint8_t nonce[32], const struct p2p_candidate *c,
                   size_t n)
{
    uint8_t out[P2P_DIRECT_MAX];
    size_t len = p2p_encode_direct_offer(out, (const uint8_t *)target, strlen(target), nonce, 4001, c, n);
    tc_send_frame(fd, out, len);
}
