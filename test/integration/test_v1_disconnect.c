/*
 * test_v1_disconnect.c - a client closing its connection: its id is released
 * at once (as soon as the server has seen the close), its own subscriptions
 * are cancelled, and nothing is ever sent to a later connection in its place.
 *
 * tc_close_and_wait() half-closes and waits for the server to close its side,
 * so the server has processed the close when it returns. An abortive close
 * (RST) offers no such event; there the test waits for CHECK_ALIVE to turn.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "protocol.h"

/* close() with SO_LINGER 0: the peer sees a reset. */
static void close_with_reset(int fd)
{
    struct linger lg = {.l_onoff = 1, .l_linger = 0};
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg), 0);
    assert_int_equal(close(fd), 0);
}

static void test_close_releases_id(void **state)
{
    int a = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    tc_register(a, "dev", 1);
    tc_close_and_wait(a);
    tc_check_alive(q, "dev", 0);
    tc_subscribe(q, "dev", 0);
    /* The id is free: a new connection registers it without any takeover. */
    int b = tc_connect(tc_port(state));
    tc_register(b, "dev", 1);
    tc_check_alive(q, "dev", 1);
    tc_close(b);
    tc_close(q);
}

static void test_reset_releases_id(void **state)
{
    int a = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    tc_register(a, "dev", 1);
    close_with_reset(a);
    tc_wait_alive(q, "dev", 3, 0, TC_WAIT_MS);
    assert_true(tc_is_open(q));
    tc_close(q);
}

/* The closed connection's subscriptions are cancelled: a new connection,
 * which may well reuse its slot or fd number in the server, receives
 * nothing. */
static void test_close_cancels_subscriptions(void **state)
{
    int p = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    int keep = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    tc_subscribe(s, "pub", 1);
    tc_subscribe(keep, "pub", 1);
    tc_close_and_wait(s);
    int fresh[4];
    for (int i = 0; i < 4; i++)
        fresh[i] = tc_connect(tc_port(state));
    tc_send_data(p, "after", 5, 1);
    tc_expect_data(keep, "after", 5);
    for (int i = 0; i < 4; i++) {
        tc_expect_nothing_pending(fresh[i]);
        tc_close(fresh[i]);
    }
    tc_expect_nothing_pending(keep);
    tc_close(p);
    tc_close(keep);
}

/* A subscriber vanishing with a reset while data flows to it does not
 * disturb the publisher or the other subscribers. */
static void test_subscriber_reset_during_traffic(void **state)
{
    enum { N = 50 };
    static uint8_t data[4096];
    memset(data, 'd', sizeof data);
    int p = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    int keep = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    tc_subscribe(s, "pub", 1);
    tc_subscribe(keep, "pub", 1);
    for (int i = 0; i < N; i++) {
        tc_send_cmd(p, P2P_CMD_SEND, data, sizeof data);
        if (i == N / 2)
            close_with_reset(s);
    }
    for (int i = 0; i < N; i++)
        tc_expect_reply(p, P2P_CMD_SEND, 1);
    for (int i = 0; i < N; i++)
        tc_expect_data(keep, data, sizeof data);
    tc_expect_nothing_pending(keep);
    tc_expect_nothing_pending(p);
    tc_close(p);
    tc_close(keep);
}

/* A publisher closing: its subscribers get nothing more and stay open; an
 * unregistered connection closing releases nothing. */
static void test_publisher_close_leaves_subscribers_open(void **state)
{
    int p = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    int anon = tc_connect(tc_port(state));
    tc_register(p, "pub", 1);
    tc_subscribe(s, "pub", 1);
    tc_close_and_wait(anon);
    tc_check_alive(s, "pub", 1);
    tc_close_and_wait(p);
    tc_check_alive(s, "pub", 0);
    tc_expect_nothing_pending(s);
    tc_close(s);
}

/* A client that closes with requests still in flight: the server must not
 * trip over the replies it cannot deliver. */
static void test_close_with_pending_requests(void **state)
{
    int q = tc_connect(tc_port(state));
    for (int round = 0; round < 20; round++) {
        int a = tc_connect(tc_port(state));
        char id[16];
        int n = snprintf(id, sizeof id, "burst%d", round);
        tc_send_cmd(a, P2P_CMD_REGISTER, id, (size_t)n);
        for (int i = 0; i < 20; i++)
            tc_send_cmd(a, P2P_CMD_HEARTBEAT, NULL, 0);
        if (round % 2)
            close_with_reset(a);
        else
            tc_close(a);
    }
    /* Every one of them ends up offline; the server is fine. */
    for (int round = 0; round < 20; round++) {
        char id[16];
        int n = snprintf(id, sizeof id, "burst%d", round);
        tc_wait_alive(q, id, (size_t)n, 0, TC_WAIT_MS);
    }
    assert_true(tc_is_open(q));
    tc_close(q);
}

/* A connection that does nothing but connect and close. */
static void test_connect_and_close(void **state)
{
    for (int i = 0; i < 50; i++) {
        int a = tc_connect(tc_port(state));
        if (i % 2)
            close_with_reset(a);
        else
            tc_close(a);
    }
    int q = tc_connect(tc_port(state));
    assert_true(tc_is_open(q));
    tc_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_close_releases_id),
        TC_SERVER_TEST(test_reset_releases_id),
        TC_SERVER_TEST(test_close_cancels_subscriptions),
        TC_SERVER_TEST(test_subscriber_reset_during_traffic),
        TC_SERVER_TEST(test_publisher_close_leaves_subscribers_open),
        TC_SERVER_TEST(test_close_with_pending_requests),
        TC_SERVER_TEST(test_connect_and_close),
    };
    return cmocka_run_group_tests_name("v1 disconnect", tests, NULL, NULL);
}
