/*
 * test_v1_idle_timeout.c - --idle-timeout: a connection that has sent no
 * complete frame for the timeout is closed (checked by a 1 s tick, so
 * between T and T+1 s); any frame refreshes it, partial frames do not;
 * --idle-timeout 0 never closes.
 *
 * Time is the subject here, so some waits are unavoidable: clients pace
 * their frames, and the close is awaited with a bound. Only lower bounds
 * that follow from the spec are asserted (never before T); upper bounds are
 * generous (speed is not asserted).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "harness.h"
#include "protocol.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    assert_int_equal(clock_gettime(CLOCK_MONOTONIC, &ts), 0);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits up to ms for fd to become readable; 1 readable (data or EOF),
 * 0 not. Paces the clients; never used to wait for the server's work. */
static int readable_within(int fd, int ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int64_t deadline = now_ms() + ms;
    for (;;) {
        int left = (int)(deadline - now_ms());
        if (left < 0)
            left = 0;
        int r = poll(&p, 1, left);
        if (r == -1 && errno == EINTR)
            continue;
        assert_true(r >= 0);
        return r;
    }
}

static const char *const timeout_1[] = {"--idle-timeout", "1", NULL};
static const char *const timeout_2[] = {"--idle-timeout", "2", NULL};
static const char *const timeout_0[] = {"--idle-timeout", "0", NULL};

/* A silent connection (it never sent anything) is closed, not before 1 s. */
static void test_silent_connection_closed(void **state)
{
    int64_t start = now_ms();
    int a = tc_connect(tc_port(state));
    tc_expect_closed(a, 5000, 0);
    int64_t elapsed = now_ms() - start;
    /* 50 ms of slack for clock granularity, never more. */
    if (elapsed < 950)
        fail_msg("closed after %lld ms, before the 1 s idle timeout", (long long)elapsed);
    tc_close(a);
}

/* A registered idle device is closed and its id released; its subscribers
 * keep their subscription and see it come back. */
static void test_idle_device_released(void **state)
{
    int a = tc_connect(tc_port(state));
    tc_register(a, "sleepy", 1);
    int64_t last = now_ms();
    tc_expect_closed(a, 5000, 0);
    int64_t elapsed = now_ms() - last;
    if (elapsed < 950)
        fail_msg("closed %lld ms after its last frame", (long long)elapsed);
    /* A fresh connection asks at once: the id is offline. */
    int q = tc_connect(tc_port(state));
    tc_check_alive(q, "sleepy", 0);
    tc_close(q);
    tc_close(a);
}

/* Frames of every kind keep a connection open well past the timeout. Each
 * of four connections sends one kind only: heartbeats, another command
 * (CHECK_ALIVE), unknown commands, empty frames. A fifth connection stays
 * silent meanwhile and is closed. */
static void test_frames_refresh(void **state)
{
    enum { KINDS = 4 };
    static const uint8_t kinds[KINDS][8] = {
        {0, 0, 0, 1, 0x07},                   /* HEARTBEAT (reply 87 01)   */
        {0, 0, 0, 3, 0x06, 'i', 'd'},         /* CHECK_ALIVE (reply 86 00) */
        {0, 0, 0, 2, 0x42, 'x'},              /* unknown command (none)    */
        {0, 0, 0, 0},                         /* empty frame (none)        */
    };
    static const size_t kind_len[KINDS] = {5, 7, 6, 4};
    int fds[KINDS];
    for (int k = 0; k < KINDS; k++)
        fds[k] = tc_connect(tc_port(state));
    int silent = tc_connect(tc_port(state));
    int64_t start = now_ms();
    int silent_closed = 0;
    /* Timeout 2 s; a frame on each connection every 250 ms for 4.5 s. */
    while (now_ms() - start < 4500) {
        for (int k = 0; k < KINDS; k++) {
            tc_send_raw(fds[k], kinds[k], kind_len[k]);
            if (k == 0)
                tc_expect_reply(fds[k], P2P_CMD_HEARTBEAT, 1);
            if (k == 1)
                tc_expect_reply(fds[k], P2P_CMD_CHECK_ALIVE, 0);
        }
        if (!silent_closed && readable_within(silent, 250)) {
            tc_expect_closed(silent, TC_WAIT_MS, 0);
            silent_closed = 1;
        } else if (silent_closed) {
            (void)readable_within(fds[0], 250);
        }
        /* Nothing unsolicited may arrive, and no close. */
        for (int k = 0; k < KINDS; k++) {
            if (readable_within(fds[k], 0)) {
                uint8_t buf[16];
                ssize_t n = tc_recv_frame(fds[k], buf, sizeof buf, 100);
                fail_msg("connection %d (frame kind %d) got %s (%zd) after %lld ms", k, k,
                         n < 0 ? "closed" : "an unexpected frame", n,
                         (long long)(now_ms() - start));
            }
        }
    }
    assert_true(silent_closed);
    for (int k = 0; k < KINDS; k++)
        assert_true(tc_is_open(fds[k]));
    /* Then silence: they are closed too. */
    for (int k = 0; k < KINDS; k++) {
        tc_expect_closed(fds[k], 5000, 0);
        tc_close(fds[k]);
    }
    tc_close(silent);
}

/* Bytes that never complete a frame do not refresh: a connection trickling
 * a header and payload byte by byte is closed all the same. */
static void test_partial_frame_does_not_refresh(void **state)
{
    int a = tc_connect(tc_port(state));
    /* Header of a 1000-byte frame, then its payload, a byte every 200 ms. */
    static const uint8_t head[] = {0, 0, 0x03, 0xe8};
    int64_t start = now_ms();
    size_t sent = 0;
    for (;;) {
        uint8_t byte = sent < 4 ? head[sent] : 'p';
        if (tc_try_send_raw(a, &byte, 1) == -1)
            break; /* reset: it has been closed */
        sent++;
        if (readable_within(a, 200))
            break;
        if (now_ms() - start > 6000)
            fail_msg("still open after %lld ms of partial frame bytes",
                     (long long)(now_ms() - start));
    }
    tc_expect_closed(a, TC_WAIT_MS, 0);
    assert_true(sent < 1004);
    tc_close(a);
}

/* --idle-timeout 0: never. A connection silent for 2.5 s (more than two
 * ticks) is still open. */
static void test_zero_means_never(void **state)
{
    int a = tc_connect(tc_port(state));
    tc_register(a, "forever", 1);
    assert_int_equal(readable_within(a, 2500), 0);
    assert_true(tc_is_open(a));
    int q = tc_connect(tc_port(state));
    tc_check_alive(q, "forever", 1);
    tc_close(a);
    tc_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST_ARGS(test_silent_connection_closed, timeout_1),
        TC_SERVER_TEST_ARGS(test_idle_device_released, timeout_1),
        TC_SERVER_TEST_ARGS(test_frames_refresh, timeout_2),
        TC_SERVER_TEST_ARGS(test_partial_frame_does_not_refresh, timeout_1),
        TC_SERVER_TEST_ARGS(test_zero_means_never, timeout_0),
    };
    return cmocka_run_group_tests_name("v1 idle timeout", tests, NULL, NULL);
}
