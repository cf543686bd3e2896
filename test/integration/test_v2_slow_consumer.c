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
#include "v2.h"

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
    tc_put_u32(msg, seq);
    for (size_t i = 4; i < MSG_SIZE; i++)
        msg[i] = (uint8_t)(seq + i);
}

static const char *const max_output_131072[] = {"--max-output", "131072", NULL};

/* A subscriber that stops reading is cut off with BYE 3 once its pending
 * output would pass --max-output; it first receives, in order and whole,
 * what was queued before the cut. The publisher and a subscriber that
 * reads go on unaffected. */
static void test_slow_consumer_bye_3(void **state)
{
    int pub = tc_v2_connect(tc_port(state));
    tc_register(pub, "pub", P2P_STATUS_OK);
    int slow = connect_small_rcvbuf(tc_port(state));
    tc_expect_hello(slow, 2, 0, 2, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    tc_register(slow, "slow", P2P_STATUS_OK);
    tc_v2_subscribe(slow, "pub", P2P_PRESENCE_ONLINE);
    int fast = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(fast, "pub", P2P_PRESENCE_ONLINE);
    int watch = tc_v2_connect(tc_port(state)); /* learns when slow is cut off */
    tc_v2_subscribe(watch, "slow", P2P_PRESENCE_ONLINE);

    uint8_t *msg = tc_xmalloc(MSG_SIZE);
    uint32_t sent = 0;
    int cut = 0;
    while (sent < MAX_MESSAGES && !cut) {
        fill_message(msg, sent);
        tc_send_data(pub, msg, MSG_SIZE, P2P_STATUS_OK);
        tc_expect_deliver(fast, "pub", 3, msg, MSG_SIZE);
        sent++;
        if (readable_now(watch)) {
            tc_expect_presence(watch, P2P_PRESENCE_OFFLINE, "slow");
            cut = 1;
        }
    }
    if (!cut)
        tc_fail("slow subscriber not cut off after %u messages of %u bytes", sent, MSG_SIZE);

    /* The others go on. */
    fill_message(msg, sent);
    tc_send_data(pub, msg, MSG_SIZE, P2P_STATUS_OK);
    tc_expect_deliver(fast, "pub", 3, msg, MSG_SIZE);
    tc_check_alive(fast, "slow", 0);

    /* slow: whole DELIVERs in order from 0, then BYE 3, then EOF. */
    uint8_t *buf = tc_xmalloc(MSG_SIZE + 64);
    uint32_t next = 0;
    for (;;) {
        ssize_t n = tc_recv_frame(slow, buf, MSG_SIZE + 64, TC_WAIT_MS);
        if (n < 0)
            tc_fail("slow: connection ended after %u deliveries without a BYE", next);
        if (buf[0] == P2P_EVT_BYE) {
            if (n < 3 || buf[1] != P2P_BYE_SLOW_CONSUMER || (size_t)n - 2 > P2P_BYE_TEXT_MAX ||
                !tc_utf8_valid(buf + 2, (size_t)n - 2)) {
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
}

/* A v1 subscriber that stops reading is cut off too, without a word. */
static void test_slow_consumer_v1_closed(void **state)
{
    int pub = tc_v2_connect_flags(tc_port(state), P2P_HELLO_FLAG_QUIET);
    tc_register(pub, "pub", P2P_STATUS_OK);
    int slow = connect_small_rcvbuf(tc_port(state));
    tc_register(slow, "slow", P2P_STATUS_OK);
    tc_subscribe(slow, "pub", P2P_STATUS_OK);
    int watch = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(watch, "slow", P2P_PRESENCE_ONLINE);

    uint8_t *msg = tc_xmalloc(MSG_SIZE);
    uint32_t sent = 0;
    int cut = 0;
    while (sent < MAX_MESSAGES && !cut) {
        fill_message(msg, sent);
        tc_send_cmd(pub, P2P_CMD_SEND, msg, MSG_SIZE); /* QUIET: no reply */
        sent++;
        if (sent % 16 == 0)
            tc_expect_nothing_pending(pub); /* keep pace with the server */
        if (readable_now(watch)) {
            tc_expect_presence(watch, P2P_PRESENCE_OFFLINE, "slow");
            cut = 1;
        }
    }
    if (!cut)
        tc_fail("v1 slow subscriber not cut off after %u messages", sent);
    uint8_t *buf = tc_xmalloc(MSG_SIZE + 64);
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
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST_ARGS(test_slow_consumer_bye_3, max_output_131072),
        TC_SERVER_TEST_ARGS(test_slow_consumer_v1_closed, max_output_131072),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
