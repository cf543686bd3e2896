/*
 * test_server_log.c - the log can neither stall nor flood the server (issue
 * 10, finding 4; p2pServer(8), LOGGING):
 *
 *  - A standard error that nobody reads (a pipe whose reader went to sleep)
 *    blocked the whole loop in write(2): no client was answered any more.
 *    Now lines wait in a bounded buffer, or are dropped and counted, and
 *    heartbeats are answered; what does reach the pipe is whole lines.
 *  - 100,000 REGISTERs wrote 100,005 lines. Each kind of line is now
 *    limited to 100 a second, the rest counted in a "suppressed" line: the
 *    lines written plus the lines counted as suppressed are exactly the
 *    events.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "codec.h"
#include "harness.h"
#include "protocol.h"
#include "stress.h"

#define CYCLES 300
#define REGISTERS 5000

/* Reads the pipe until EOF (the server has exited), at most cap-1 bytes
 * kept; bounded in time. Returns the bytes kept. */
static size_t read_to_eof(int fd, char *out, size_t cap)
{
    size_t have = 0;
    int64_t deadline = tc_now_ms() + 2 * TC_WAIT_MS;
    for (;;) {
        char chunk[4096];
        ssize_t n = read(fd, chunk, sizeof chunk);
        if (n > 0) {
            size_t take = (size_t)n < cap - 1 - have ? (size_t)n : cap - 1 - have;
            memcpy(out + have, chunk, take);
            have += take;
            continue;
        }
        if (n == 0)
            break;
        if (errno != EAGAIN && errno != EINTR)
            tc_fail("read(server stderr): %s", strerror(errno));
        int left = (int)(deadline - tc_now_ms());
        if (left <= 0)
            tc_fail("the server's stderr did not end within %d ms", 2 * TC_WAIT_MS);
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        poll(&p, 1, left);
    }
    out[have] = '\0';
    return have;
}

static void test_stderr_never_read(void **state)
{
    (void)state;
    struct tc_piped_server s;
    tc_piped_server_start(&s, NULL, 4096);
    /* From here on nobody reads the server's stderr (a 4 KiB pipe). */
    int keeper = tc_connect(s.port);
    tc_register(keeper, "keeper", P2P_STATUS_OK);
    for (int i = 0; i < CYCLES; i++) {
        int fd = tc_connect(s.port); /* "connected" and "closed" lines */
        tc_close(fd);
    }
    /* The server still answers. */
    tc_expect_nothing_pending(keeper);
    tc_check_alive(keeper, "keeper", P2P_STATUS_OK);
    tc_close(keeper);

    /* What was written is whole lines, and the last says it shut down. */
    if (kill(s.pid, SIGTERM) == -1)
        tc_fail("kill: %s", strerror(errno));
    static char text[1 << 20];
    size_t n = read_to_eof(s.log_fd, text, sizeof text);
    assert_int_equal(tc_piped_server_stop(&s), 0);
    if (n == 0 || text[n - 1] != '\n')
        tc_fail("the log does not end with a whole line");
    int lines = 0;
    for (char *line = text; *line != '\0'; line = strchr(line, '\n') + 1) {
        /* 2026-11-27T11:54:10.231Z info  ... */
        if (strlen(line) < 25 || line[4] != '-' || line[10] != 'T' || line[23] != 'Z')
            tc_fail("not a whole log line: %.60s", line);
        lines++;
    }
    if (strstr(text, "shut down\n") == NULL)
        tc_fail("no shutdown line among %d lines", lines);
    fprintf(stderr, "%d whole lines read after the server's stderr was left unread\n", lines);
}

/* The sum over lines of the counts in "log: N more lines like "...registered..." suppressed". */
static long suppressed_registered(const char *path, long *written)
{
    FILE *fp = fopen(path, "r");
    if (fp == NULL)
        tc_fail("cannot read the server log %s", path);
    char line[2048];
    long suppressed = 0;
    *written = 0;
    while (fgets(line, sizeof line, fp) != NULL) {
        const char *summary = strstr(line, "log: ");
        if (summary != NULL && strstr(line, "registered") != NULL &&
            strstr(line, "suppressed") != NULL)
            suppressed += strtol(summary + 5, NULL, 10);
        else if (strstr(line, "\" registered \"") == NULL && strstr(line, "] registered \"") != NULL)
            (*written)++;
    }
    fclose(fp);
    return suppressed;
}

static void test_flood_of_lines_rate_limited(void **state)
{
    int fd = tc_connect(tc_port(state));
    /* REGISTERs of distinct ids, sent at once: one "registered" line each. */
    uint8_t *all = tc_xmalloc(REGISTERS * 16);
    size_t len = 0;
    for (int i = 0; i < REGISTERS; i++) {
        char id[12];
        int n = snprintf(id, sizeof id, "id%d", i);
        p2p_frame_header_encode(all + len, (uint32_t)(1 + n));
        all[len + 4] = P2P_CMD_REGISTER;
        memcpy(all + len + 5, id, (size_t)n);
        len += 5 + (size_t)n;
    }
    tc_send_raw(fd, all, len);
    for (int i = 0; i < REGISTERS; i++)
        tc_expect_reply(fd, P2P_CMD_REGISTER, P2P_STATUS_OK);
    /* Every event is accounted for once its window's summary is out. */
    const char *path = ((struct p2p_server *)*state)->log_path;
    long written = 0, suppressed = 0;
    int64_t deadline = tc_now_ms() + TC_WAIT_MS;
    while ((suppressed = suppressed_registered(path, &written)) + written < REGISTERS) {
        if (tc_now_ms() > deadline)
            tc_fail("%ld lines written and %ld counted as suppressed, of %d REGISTERs", written,
                    suppressed, REGISTERS);
        tc_expect_nothing_pending(fd); /* a round trip, while the tick comes */
    }
    fprintf(stderr, "%d REGISTERs: %ld lines written, %ld counted as suppressed\n", REGISTERS,
            written, suppressed);
    assert_int_equal(written + suppressed, REGISTERS);
    if (written > REGISTERS / 10)
        tc_fail("%ld of %d lines written: not limited", written, REGISTERS);
    free(all);
    tc_close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stderr_never_read),
        TC_SERVER_TEST(test_flood_of_lines_rate_limited),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
