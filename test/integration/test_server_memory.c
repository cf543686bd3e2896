/*
 * test_server_memory.c - the server's memory is bounded as a whole (issue
 * 10, finding 1; p2pServer(8), --max-memory, --max-devices, MEMORY):
 *
 *  - 300 subscribers that never read, and a publisher sending 160 frames of
 *    64 KiB: every delivery is copied into every subscriber's buffer, which
 *    took the server to 1.2 GiB before. With --max-memory 64 MiB the peak
 *    resident size (VmHWM) stays within the budget plus kOverheadMiB for
 *    the program, its connections and the allocator; the subscribers with
 *    the largest buffers are cut (BYE 3) after whole deliveries, and a
 *    subscriber that reads receives everything.
 *  - A SUBSCRIBE that would need memory past the budget is refused with
 *    status 7 and the connection stays open; --max-devices likewise.
 *  - The start-up line shows the budget: the given one, or a quarter of
 *    physical memory, at most 1 GiB.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "codec.h"
#include "harness.h"
#include "protocol.h"
#include "stress.h"
#include "v2.h"

#define SLOW_SUBSCRIBERS 300
#define MESSAGES 160
#define DATA_LEN 65535 /* SEND payload 0x03 + data: the largest frame */
#define BUDGET_MIB 64
#define OVERHEAD_MIB 16

static const char *const budget_64m[] = {"--max-memory", "67108864", NULL};

/* The data of message seq: seq in the first two bytes, then a pattern. */
static void fill_message(uint8_t *data, int seq)
{
    tc_fill_indexed(data, DATA_LEN, seq);
}

/* A subscriber that did not read, read back after a HEARTBEAT: it must have
 * been sent whole DELIVERs of messages 0, 1, 2, ... and then either the
 * heartbeat's 87 01 (it was never evicted) or BYE 3 and the end of the
 * connection (evicted). All of them are read at once, with poll(): a
 * closing connection's output waits for its reader at most 5 s (the
 * linger), and reading 300 of them one after the other may take longer. */
struct slow_reader {
    int fd;
    uint8_t *buf; /* one frame at most */
    size_t have;
    int seq;      /* next message expected */
    int state;    /* 0 reading, 1 BYE seen (EOF next), 2 done */
    int evicted;
};

/* Checks the whole frames in r->buf; returns the bytes they took. */
static size_t slow_frames(struct slow_reader *r, uint8_t *want)
{
    size_t used = 0;
    while (r->state == 0 && r->have - used >= 4) {
        uint32_t len = p2p_frame_header_decode(r->buf + used);
        if (len > 5 + DATA_LEN)
            tc_fail("slow subscriber %d: frame of %u bytes", r->fd, len);
        if (r->have - used < 4 + (size_t)len)
            break;
        const uint8_t *p = r->buf + used + 4;
        used += 4 + len;
        if (len == 2 && p[0] == 0x87 && p[1] == 0x01) {
            r->state = 2;
        } else if (p[0] == P2P_EVT_BYE) {
            if (len < 3 || p[1] != P2P_BYE_SLOW_CONSUMER)
                tc_fail("slow subscriber: BYE %u, not 3", len >= 2 ? p[1] : 0);
            r->state = 1;
            r->evicted = 1;
        } else {
            fill_message(want, r->seq);
            if (r->seq >= MESSAGES || len != 5 + DATA_LEN || memcmp(p, "\x09\x03pub", 5) != 0 ||
                memcmp(p + 5, want, DATA_LEN) != 0) {
                tc_hexdump("received", p, len, 0, 32);
                tc_fail("slow subscriber: frame %d is not the whole DELIVER of message %d", r->seq,
                        r->seq);
            }
            r->seq++;
        }
    }
    return used;
}

/* Reads every slow subscriber to its end; returns how many were evicted. */
static int read_back_slow(const int *fds, int n, uint8_t *want)
{
    static const uint8_t heartbeat[] = {0, 0, 0, 1, P2P_CMD_HEARTBEAT};
    struct slow_reader *r = tc_xmalloc((size_t)n * sizeof *r);
    struct pollfd *p = tc_xmalloc((size_t)n * sizeof *p);
    for (int i = 0; i < n; i++) {
        r[i] = (struct slow_reader){.fd = fds[i], .buf = tc_xmalloc(4 + 5 + DATA_LEN)};
        tc_try_send_raw(fds[i], heartbeat, sizeof heartbeat); /* may be closed already */
    }
    int64_t deadline = tc_now_ms() + 4 * TC_WAIT_MS;
    int left = n, evicted = 0;
    while (left > 0) {
        int np = 0;
        for (int i = 0; i < n; i++)
            if (r[i].state != 2)
                p[np++] = (struct pollfd){.fd = r[i].fd, .events = POLLIN, .revents = 0};
        int wait = (int)(deadline - tc_now_ms());
        if (wait <= 0 || poll(p, (nfds_t)np, wait) <= 0)
            tc_fail("%d slow subscribers not read to their end in time", left);
        for (int k = 0; k < np; k++) {
            if (p[k].revents == 0)
                continue;
            struct slow_reader *s = NULL;
            for (int i = 0; i < n && s == NULL; i++)
                if (r[i].fd == p[k].fd)
                    s = &r[i];
            ssize_t got = recv(s->fd, s->buf + s->have, 4 + 5 + DATA_LEN - s->have, MSG_DONTWAIT);
            if (got > 0) {
                s->have += (size_t)got;
                size_t used = slow_frames(s, want);
                memmove(s->buf, s->buf + used, s->have - used);
                s->have -= used;
            } else if (got == 0 || (errno != EAGAIN && errno != EINTR)) {
                if (s->state != 1)
                    tc_fail("slow subscriber: connection ended after %d deliveries without BYE "
                            "or reply", s->seq);
                if (s->have != 0)
                    tc_fail("slow subscriber: %zu bytes after its BYE", s->have);
                s->state = 2;
            }
            if (s->state == 2) {
                left--;
                evicted += s->evicted;
            }
        }
    }
    for (int i = 0; i < n; i++)
        free(r[i].buf);
    free(r);
    free(p);
    return evicted;
}

static void test_budget_holds_with_slow_subscribers(void **state)
{
    uint16_t port = tc_port(state);
    pid_t pid = ((struct p2p_server *)*state)->pid;
    long start_kib = tc_proc_rss_kib(pid);
    int pub = tc_v2_connect(port);
    tc_register(pub, "pub", P2P_STATUS_OK);
    int reader = tc_v2_connect(port);
    tc_v2_subscribe(reader, "pub", P2P_PRESENCE_ONLINE);
    int *slow = tc_xmalloc(SLOW_SUBSCRIBERS * sizeof(int));
    for (int i = 0; i < SLOW_SUBSCRIBERS; i++) {
        slow[i] = tc_connect_buffers(port, 65536, 0);
        tc_expect_hello(slow[i], 2, 0, 2, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
        tc_v2_subscribe(slow[i], "pub", P2P_PRESENCE_ONLINE);
    }

    uint8_t *data = tc_xmalloc(DATA_LEN);
    for (int seq = 0; seq < MESSAGES; seq++) {
        fill_message(data, seq);
        tc_send_data(pub, data, DATA_LEN, P2P_STATUS_OK);
        tc_expect_deliver(reader, "pub", 3, data, DATA_LEN);
    }
    long peak_kib = tc_proc_peak_rss_kib(pid);
    fprintf(stderr,
            "%d slow subscribers, %d messages of %d bytes, --max-memory %d MiB: peak RSS %.1f MiB "
            "(%.1f MiB at start)\n",
            SLOW_SUBSCRIBERS, MESSAGES, DATA_LEN + 1, BUDGET_MIB, peak_kib / 1024.0,
            start_kib / 1024.0);
    /* A sanitizer's quarantine of freed blocks and its shadow memory are
     * resident too: the bound is for the real allocator. */
    const char *sanitizer = getenv("SANITIZE");
    if (sanitizer != NULL && sanitizer[0] != '\0')
        fprintf(stderr, "(peak RSS not checked under SANITIZE=%s)\n", sanitizer);
    else if (peak_kib > (BUDGET_MIB + OVERHEAD_MIB) * 1024L)
        tc_fail("peak RSS %ld KiB beyond the budget of %d MiB plus %d MiB", peak_kib, BUDGET_MIB,
                OVERHEAD_MIB);

    /* What each slow subscriber got: whole deliveries in order, then its
     * eviction or, if it was never among the largest, everything. */
    int evicted = read_back_slow(slow, SLOW_SUBSCRIBERS, data);
    fprintf(stderr, "%d of %d slow subscribers evicted\n", evicted, SLOW_SUBSCRIBERS);
    if (evicted == 0)
        tc_fail("no subscriber was evicted: the budget was never reached");
    tc_expect_nothing_pending(reader);
    tc_expect_nothing_pending(pub);

    free(data);
    for (int i = 0; i < SLOW_SUBSCRIBERS; i++)
        tc_close(slow[i]);
    free(slow);
    tc_close(reader);
    tc_close(pub);
}

static const char *const budget_1m[] = {"--max-memory", "1048576", "--max-subs", "1000000", NULL};

/* Subscriptions to ids nobody holds take device entries: past the budget
 * SUBSCRIBE is refused with 82 07, the connection stays open, and freed
 * entries make room again. */
static void test_subscribe_refused_at_the_budget(void **state)
{
    int fd = tc_v2_connect(tc_port(state));
    enum { batch = 100, max_batches = 1000 };
    int granted = 0, refused = 0;
    char id[32];
    for (int b = 0; b < max_batches && refused == 0; b++) {
        for (int i = 0; i < batch; i++) {
            int n = snprintf(id, sizeof id, "offline-%d", b * batch + i);
            tc_send_cmd(fd, P2P_CMD_SUBSCRIBE, id, (size_t)n);
        }
        for (int i = 0; i < batch; i++) {
            uint8_t reply[300];
            ssize_t n = tc_recv_frame(fd, reply, sizeof reply, TC_WAIT_MS);
            if (n != 2 || reply[0] != 0x82)
                tc_fail("expected a SUBSCRIBE reply, got %zd bytes", n);
            if (reply[1] == P2P_STATUS_OK) {
                granted++;
                n = tc_recv_frame(fd, reply, sizeof reply, TC_WAIT_MS); /* its PRESENCE */
                if (n < 3 || reply[0] != P2P_EVT_PRESENCE)
                    tc_fail("SUBSCRIBE 82 01 not followed by PRESENCE");
            } else if (reply[1] == P2P_STATUS_LIMIT) {
                refused++;
            } else {
                tc_fail("SUBSCRIBE answered 82 %02x", reply[1]);
            }
        }
    }
    fprintf(stderr, "--max-memory 1 MiB: %d subscriptions granted, then 82 07\n", granted);
    if (refused == 0)
        tc_fail("%d subscriptions and none refused", granted);
    tc_expect_nothing_pending(fd);
    /* Give some back: new ones fit again. */
    for (int i = 0; i < 200; i++) {
        int n = snprintf(id, sizeof id, "offline-%d", i);
        tc_send_cmd(fd, P2P_CMD_UNSUBSCRIBE, id, (size_t)n);
        tc_expect_reply(fd, P2P_CMD_UNSUBSCRIBE, P2P_STATUS_OK);
    }
    tc_v2_subscribe(fd, "after", P2P_PRESENCE_OFFLINE);
    tc_close(fd);
}

static const char *const devices_3[] = {"--max-devices", "3", NULL};

/* --max-devices counts held ids and ids only subscribed to; beyond it a new
 * id gets status 7 (0 in v1), known ids still work. */
static void test_max_devices(void **state)
{
    int a = tc_v2_connect(tc_port(state));
    int b = tc_v2_connect(tc_port(state));
    int c = tc_connect(tc_port(state));
    tc_register(a, "a", P2P_STATUS_OK);
    tc_v2_subscribe(a, "b", P2P_PRESENCE_OFFLINE);
    tc_v2_subscribe(b, "c", P2P_PRESENCE_OFFLINE);
    tc_subscribe(b, "d", P2P_STATUS_LIMIT);
    tc_register(b, "e", P2P_STATUS_LIMIT);
    tc_register(c, "f", P2P_STATUS_FAILURE);
    tc_v2_subscribe(b, "a", P2P_PRESENCE_ONLINE);
    tc_register(c, "b", P2P_STATUS_OK); /* known: taken */
    tc_close_and_wait(a); /* "a" goes offline; b follows it, so it stays */
    tc_expect_presence(b, P2P_PRESENCE_OFFLINE, "a");
    tc_unsubscribe(b, "c"); /* frees "c" */
    tc_register(b, "e", P2P_STATUS_OK);
    tc_close(b);
    tc_close(c);
}

/* The start-up line names the memory budget. */
static void expect_log_line(void **state, const char *want)
{
    char path[sizeof((struct p2p_server *)0)->log_path];
    snprintf(path, sizeof path, "%s", ((struct p2p_server *)*state)->log_path);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        tc_fail("cannot read the server log %s", path);
    char line[1024];
    int found = 0;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, "listening on") != NULL && strstr(line, want) != NULL;
    fclose(f);
    if (!found)
        tc_fail("no start-up line with \"%s\"", want);
}

static const char *const budget_5m[] = {"--max-memory", "5000000", NULL};

static void test_startup_line_given(void **state)
{
    expect_log_line(state, "max memory 5000000,");
}

static void test_startup_line_default(void **state)
{
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    unsigned long long quarter = (unsigned long long)pages * (unsigned long long)page / 4;
    unsigned long long want = quarter > (1ull << 30) ? 1ull << 30 : quarter;
    char text[64];
    snprintf(text, sizeof text, "max memory %llu,", want);
    expect_log_line(state, text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST_ARGS(test_budget_holds_with_slow_subscribers, budget_64m),
        TC_SERVER_TEST_ARGS(test_subscribe_refused_at_the_budget, budget_1m),
        TC_SERVER_TEST_ARGS(test_max_devices, devices_3),
        TC_SERVER_TEST_ARGS(test_startup_line_given, budget_5m),
        TC_SERVER_TEST(test_startup_line_default),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
