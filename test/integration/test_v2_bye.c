/*
 * test_v2_bye.c - BYE (stupidp2p(7), EVENTS and BYE REASONS): [0E][reason]
 * [1..127 bytes of UTF-8] as the last frame before the server closes a v2
 * connection, for each reason the server produces today except 3 (slow
 * consumer: test_v2_slow_consumer.c): 1 taken over (after what was already
 * queued), 2 idle timeout, 4 shutdown (SIGTERM and SIGINT, exit 0),
 * 5 protocol error (frame too long, command byte >= 0x80). v1 sessions are
 * closed without a word, and a client closing its end gets no BYE.
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
#include "v2.h"

/* 1: taken over. The old v2 holder gets BYE 1 and is closed; a v1 holder
 * is closed without a word. */
static void test_bye_1_taken_over(void **state)
{
    int old2 = tc_v2_connect(tc_port(state));
    tc_register(old2, "dev", P2P_STATUS_OK);
    int new2 = tc_v2_connect(tc_port(state));
    tc_register(new2, "dev", P2P_STATUS_OK);
    tc_expect_bye(old2, P2P_BYE_TAKEN_OVER);
    tc_check_alive(new2, "dev", P2P_STATUS_OK);

    int old1 = tc_connect(tc_port(state));
    tc_register(old1, "dev1", P2P_STATUS_OK);
    int new1 = tc_v2_connect(tc_port(state));
    tc_register(new1, "dev1", P2P_STATUS_OK);
    tc_expect_closed(old1, TC_WAIT_MS, 0);
    tc_close(old2);
    tc_close(new2);
    tc_close(old1);
    tc_close(new1);
}

/* What was queued for the old holder before the takeover still reaches it,
 * before the BYE. */
static void test_bye_1_after_pending_output(void **state)
{
    int pub = tc_v2_connect(tc_port(state));
    tc_register(pub, "pub", P2P_STATUS_OK);
    int old = tc_v2_connect(tc_port(state));
    tc_register(old, "dev", P2P_STATUS_OK);
    tc_v2_subscribe(old, "pub", P2P_PRESENCE_ONLINE);
    tc_send_data(pub, "queued", 6, P2P_STATUS_OK);
    int taker = tc_v2_connect(tc_port(state));
    tc_register(taker, "dev", P2P_STATUS_OK);
    tc_expect_deliver_str(old, "pub", "queued");
    tc_expect_bye(old, P2P_BYE_TAKEN_OVER);
    /* The closed connection's subscriptions are gone. */
    tc_send_data(pub, "later", 5, P2P_STATUS_OK);
    tc_close(old);
    tc_close(taker);
    tc_close(pub);
}

static const char *const idle_timeout_1[] = {"--idle-timeout", "1", NULL};

/* 2: idle timeout (--idle-timeout 1). A v2 session gets BYE 2 within 1..2 s
 * (bounded wait: 4 s); a v1 session is closed without a word; a client
 * that keeps sending heartbeats stays. */
static void test_bye_2_idle_timeout(void **state)
{
    int v2 = tc_v2_connect_cfg(tc_port(state), 0, TC_DEFAULT_MAX_FRAME, 1);
    int v1 = tc_connect(tc_port(state));
    tc_expect_nothing_pending(v1);
    tc_expect_bye_within(v2, P2P_BYE_IDLE_TIMEOUT, 4000);
    tc_expect_closed(v1, 4000, 0);
    tc_close(v2);
    tc_close(v1);
}

/* 4: shutdown. SIGTERM: every v2 session gets BYE 4, v1 sessions are closed
 * without a word, the server exits 0. */
static void test_bye_4_shutdown(void **state)
{
    (void)state;
    struct p2p_server srv;
    tc_start_server(&srv, NULL);
    int a = tc_v2_connect(srv.port);
    tc_register(a, "a", P2P_STATUS_OK);
    int b = tc_v2_connect_flags(srv.port, P2P_HELLO_FLAG_QUIET);
    int v1 = tc_connect(srv.port);
    tc_register(v1, "v1", P2P_STATUS_OK);
    int status = p2p_server_stop(&srv);
    assert_int_equal(status, 0);
    tc_expect_bye(a, P2P_BYE_SHUTDOWN);
    tc_expect_bye(b, P2P_BYE_SHUTDOWN);
    tc_expect_closed(v1, TC_WAIT_MS, 0);
    tc_close(a);
    tc_close(b);
    tc_close(v1);
}

/* SIGINT works the same. */
static void test_bye_4_shutdown_sigint(void **state)
{
    (void)state;
    struct p2p_server srv;
    tc_start_server(&srv, NULL);
    int a = tc_v2_connect(srv.port);
    if (kill(srv.pid, SIGINT) != 0)
        tc_fail("kill(SIGINT) failed");
    tc_expect_bye(a, P2P_BYE_SHUTDOWN);
    tc_close(a);
    tc_stop_server(&srv); /* already exiting: still exit status 0 */
}

static const char *const max_frame_1024[] = {"--max-frame", "1024", NULL};

/* 5: a frame longer than max_frame. v2: BYE 5 and close, only that
 * connection; v1: closed without a word. A frame of exactly max_frame is
 * fine. */
static void test_bye_5_frame_too_long(void **state)
{
    int other = tc_v2_connect_cfg(tc_port(state), 0, 1024, TC_DEFAULT_IDLE);
    int v2 = tc_v2_connect_cfg(tc_port(state), 0, 1024, TC_DEFAULT_IDLE);
    tc_register(v2, "big", P2P_STATUS_OK);
    uint8_t data[1023];
    memset(data, 'x', sizeof data);
    tc_send_data(v2, data, sizeof data, P2P_STATUS_OK); /* payload 1024 */
    static const uint8_t header[] = {0x00, 0x00, 0x04, 0x01}; /* 1025 */
    tc_send_raw(v2, header, sizeof header);
    tc_expect_bye(v2, P2P_BYE_PROTOCOL_ERROR);
    int v1 = tc_connect(tc_port(state));
    tc_send_raw(v1, header, sizeof header);
    tc_expect_closed(v1, TC_WAIT_MS, 0);
    static const uint8_t huge[] = {0xFF, 0xFF, 0xFF, 0xFF};
    int v2b = tc_v2_connect_cfg(tc_port(state), 0, 1024, TC_DEFAULT_IDLE);
    tc_send_raw(v2b, huge, sizeof huge);
    tc_expect_bye(v2b, P2P_BYE_PROTOCOL_ERROR);
    /* The others are untouched; the id of the closed one is released. */
    if (!tc_is_open(other))
        tc_fail("an unrelated connection was closed");
    tc_check_alive(other, "big", 0);
    tc_close(other);
    tc_close(v2);
    tc_close(v2b);
    tc_close(v1);
}

/* 5: a command byte of 0x80 or above in a v2 session. Nothing after it in
 * the same write is answered. */
static void test_bye_5_high_command_byte(void **state)
{
    static const uint8_t high[] = {0x80, 0x81, 0x87, 0x88, 0xC0, 0xFF};
    for (size_t i = 0; i < TC_ARRAY_LEN(high); i++) {
        int fd = tc_v2_connect(tc_port(state));
        uint8_t burst[] = {0, 0, 0, 2, high[i], 0x01, 0, 0, 0, 1, 0x07};
        tc_send_raw(fd, burst, sizeof burst);
        tc_expect_bye(fd, P2P_BYE_PROTOCOL_ERROR);
        tc_close(fd);
        /* The same byte in a v1 session is ignored. */
        fd = tc_connect(tc_port(state));
        tc_send_raw(fd, burst, sizeof burst);
        tc_expect_reply(fd, P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
        tc_close(fd);
    }
}

/* The client closing its end gets no BYE (nothing to read but EOF), and a
 * v2 subscriber is told the id went offline. */
static void test_bye_not_sent_on_client_close(void **state)
{
    int w = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(w, "dev", P2P_PRESENCE_OFFLINE);
    int dev = tc_v2_connect(tc_port(state));
    tc_register(dev, "dev", P2P_STATUS_OK);
    tc_expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    if (shutdown(dev, SHUT_WR) != 0)
        tc_fail("shutdown(SHUT_WR) failed");
    tc_expect_closed(dev, TC_WAIT_MS, 0);
    tc_expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_close(dev);
    tc_close(w);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_bye_1_taken_over),
        TC_SERVER_TEST(test_bye_1_after_pending_output),
        TC_SERVER_TEST_ARGS(test_bye_2_idle_timeout, idle_timeout_1),
        cmocka_unit_test(test_bye_4_shutdown),
        cmocka_unit_test(test_bye_4_shutdown_sigint),
        TC_SERVER_TEST_ARGS(test_bye_5_frame_too_long, max_frame_1024),
        TC_SERVER_TEST(test_bye_5_high_command_byte),
        TC_SERVER_TEST(test_bye_not_sent_on_client_close),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
