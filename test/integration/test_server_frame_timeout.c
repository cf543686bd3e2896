/*
 * test_server_frame_timeout.c - a frame that has begun must be complete
 * within --frame-timeout (issue 10, finding 1; p2pServer(8),
 * --frame-timeout): 1,000 connections that each sent half of a 64 KiB frame
 * held the server's buffers for the whole idle timeout (300 s by default).
 * A connection whose frame is not finished in time is closed, with BYE 2 in
 * v2 (its id going offline for its subscribers), without a word in v1; a
 * connection that is merely idle, between frames, is not.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "harness.h"
#include "protocol.h"
#include "stress.h"
#include "v2.h"

#define HALF_FRAMES 200

static const char *const timeout_1[] = {"--frame-timeout", "1", NULL};

static void test_v2_half_frame_closed(void **state)
{
    uint16_t port = tc_port(state);
    int idle = tc_v2_connect(port); /* between frames: not concerned */
    int watch = tc_v2_connect(port);
    tc_v2_subscribe(watch, "half", P2P_PRESENCE_OFFLINE);
    int c = tc_v2_connect(port);
    tc_register(c, "half", P2P_STATUS_OK);
    tc_expect_presence(watch, P2P_PRESENCE_ONLINE, "half");
    uint8_t part[4 + 10];
    p2p_frame_header_encode(part, 1000);
    part[4] = P2P_CMD_SEND;
    memset(part + 5, 'x', 9);
    tc_send_raw(c, part, sizeof part);
    tc_expect_bye(c, P2P_BYE_IDLE_TIMEOUT);
    tc_expect_presence(watch, P2P_PRESENCE_OFFLINE, "half");
    tc_expect_nothing_pending(idle);
    tc_close(c);
    tc_close(watch);
    tc_close(idle);
}

static void test_v1_half_header_closed(void **state)
{
    int c = tc_connect(tc_port(state));
    tc_register(c, "v1", P2P_STATUS_OK);
    static const uint8_t two[] = {0, 0};
    tc_send_raw(c, two, sizeof two);
    tc_expect_closed(c, TC_WAIT_MS, 0);
    tc_close(c);
}

/* Many half-sent 64 KiB frames: every one of those connections is closed
 * and the buffers they held are given back. */
static void test_half_frames_released(void **state)
{
    uint16_t port = tc_port(state);
    pid_t pid = ((struct p2p_server *)*state)->pid;
    int *fds = tc_xmalloc(HALF_FRAMES * sizeof(int));
    uint8_t *half = tc_xmalloc(4 + 32768);
    p2p_frame_header_encode(half, 65536);
    half[4] = P2P_CMD_SEND;
    memset(half + 5, 'y', 32767);
    for (int i = 0; i < HALF_FRAMES; i++) {
        fds[i] = tc_connect(port);
        tc_send_raw(fds[i], half, 4 + 32768);
    }
    int other = tc_connect(port);
    tc_expect_nothing_pending(other); /* the server has read what it could */
    long held = tc_proc_rss_kib(pid);
    for (int i = 0; i < HALF_FRAMES; i++)
        tc_expect_closed(fds[i], TC_WAIT_MS, 0);
    tc_expect_nothing_pending(other);
    fprintf(stderr, "%d half-sent 64 KiB frames: server RSS %.1f MiB while they were held\n",
            HALF_FRAMES, held / 1024.0);
    for (int i = 0; i < HALF_FRAMES; i++)
        tc_close(fds[i]);
    tc_close(other);
    free(half);
    free(fds);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST_ARGS(test_v2_half_frame_closed, timeout_1),
        TC_SERVER_TEST_ARGS(test_v1_half_header_closed, timeout_1),
        TC_SERVER_TEST_ARGS(test_half_frames_released, timeout_1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
