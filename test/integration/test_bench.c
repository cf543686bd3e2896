/*
 * test_bench.c - p2pBench, the load generator (test/bench/), kept from
 * rotting: each workload runs once, tiny (a few hundred messages), against
 * the real server, and must exit 0 and print its one result line; the
 * verification must fail a run against a relay that loses, duplicates,
 * reorders or corrupts a message, closes a subscriber, stalls or falls
 * silent (a fake relay in this process, one fault each), and pass one that
 * writes every frame a byte at a time. No speed is asserted: speed is for
 * scripts/bench.sh.
 *
 * The generator is $P2P_BENCH (make test sets it), or ./p2pBench.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "harness.h"
#include "protocol.h"

#define RUN_MS 20000 /* bound on one p2pBench run (each takes well under 1 s) */

static const char *bench_path(void)
{
    const char *p = getenv("P2P_BENCH");
    return (p != NULL && p[0] != '\0') ? p : "./p2pBench";
}

/* The value of key in a key=value line, copied into out; 0 if absent. */
static int field(const char *line, const char *key, char *out, size_t cap)
{
    size_t klen = strlen(key);
    for (const char *p = line; (p = strstr(p, key)) != NULL; p += klen) {
        if ((p == line || p[-1] == ' ') && p[klen] == '=') {
            const char *v = p + klen + 1;
            size_t n = strcspn(v, " \n");
            if (n >= cap)
                n = cap - 1;
            memcpy(out, v, n);
            out[n] = '\0';
            return 1;
        }
    }
    return 0;
}

static uint64_t field_u64(const char *line, const char *key)
{
    char v[32];
    if (!field(line, key, v, sizeof v))
        tc_fail("no %s= in: %s", key, line);
    return strtoull(v, NULL, 10);
}

/* Runs p2pBench with args (NULL-terminated, after the program name);
 * returns its exit status, its output in out. */
static int run_bench(const char *const *args, char *out, size_t cap)
{
    const char *argv[40];
    size_t n = 0;
    argv[n++] = bench_path();
    for (size_t i = 0; args[i] != NULL && n < 39; ++i)
        argv[n++] = args[i];
    argv[n] = NULL;
    return tc_run_capture(argv, out, cap, RUN_MS);
}

/* Runs p2pBench with args plus the fixture server's --port and
 * --server-pid, and expects exit 0 and exactly one line on stdout and
 * stderr together: the result, with status=ok, the workload asked for and
 * no errors. Returns that line (valid until the next call). */
static const char *expect_clean_run(void **state, const char *const *args)
{
    static char out[16384];
    char port[8], pid[16];
    snprintf(port, sizeof port, "%u", tc_port(state));
    snprintf(pid, sizeof pid, "%d", (int)((struct p2p_server *)*state)->pid);
    const char *argv[32];
    size_t n = 0;
    for (; args[n] != NULL && n < 27; ++n)
        argv[n] = args[n];
    const char *extra[] = {"--port", port, "--server-pid", pid, NULL};
    for (size_t i = 0; extra[i] != NULL; ++i)
        argv[n++] = extra[i];
    argv[n] = NULL;
    int rc = run_bench(argv, out, sizeof out);
    if (rc != 0)
        tc_fail("p2pBench %s exited %d: %s", args[0], rc, out);
    size_t len = strlen(out);
    if (len == 0 || out[len - 1] != '\n' || strchr(out, '\n') != out + len - 1)
        tc_fail("want one line, got: %s", out);
    if (strncmp(out, "server=", 7) != 0)
        tc_fail("not a result line: %s", out);
    char v[64];
    assert_true(field(out, "status", v, sizeof v));
    assert_string_equal(v, "ok");
    assert_true(field(out, "workload", v, sizeof v));
    assert_string_equal(v, args[0]);
    assert_int_equal(field_u64(out, "errors"), 0);
    return out;
}

/* ---- each workload once, against the real server ------------------------- */

static void test_fanout_v1(void **state)
{
    const char *args[] = {"fanout", "--subs", "3", "--msgs", "300", "--window", "16",
                          "--inflight", "8", NULL};
    expect_clean_run(state, args);
}

static void test_fanout_v2_quiet(void **state)
{
    const char *args[] = {"fanout", "--proto", "v2", "--subs", "2", "--msgs", "300",
                          "--size", "1024", NULL};
    expect_clean_run(state, args);
}

static void test_pairs_v2_acked(void **state)
{
    const char *args[] = {"pairs", "--proto", "v2", "--no-quiet", "--pairs", "3", "--msgs", "100",
                          NULL};
    expect_clean_run(state, args);
}

static void test_pairs_send_to(void **state)
{
    const char *args[] = {"pairs", "--proto", "v2", "--send-to", "--pairs", "2", "--msgs", "100",
                          NULL};
    expect_clean_run(state, args);
}

static void test_pingpong(void **state)
{
    const char *args[] = {"pingpong", "--rounds", "200", "--warmup", "20", NULL};
    const char *out = expect_clean_run(state, args);
    assert_int_equal(field_u64(out, "samples"), 200);
    assert_int_equal(field_u64(out, "deliveries"), 2 * 220);
}

static void test_idle(void **state)
{
    const char *args[] = {"idle", "--proto", "v2", "--conns", "40", "--burst", "7", "--hold", "0",
                          NULL};
    const char *out = expect_clean_run(state, args);
    assert_int_equal(field_u64(out, "alive"), 40);
    assert_int_equal(field_u64(out, "subs_ok"), 40);
    char v[32];
    assert_true(field(out, "rss_per_conn_bytes", v, sizeof v)); /* --server-pid read */
}

static void test_connrate(void **state)
{
    const char *args[] = {"connrate", "--conns", "50", NULL};
    expect_clean_run(state, args);
}

/* ---- what it refuses -------------------------------------------------------- */

static void test_refuses_other_hosts(void **state)
{
    (void)state;
    static char out[4096];
    const char *hosts[] = {"10.0.0.1", "192.168.1.1", "example.com", "0.0.0.0"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; ++i) {
        const char *args[] = {"fanout", "--port", "4040", "--host", hosts[i], NULL};
        assert_int_equal(run_bench(args, out, sizeof out), 2);
        assert_non_null(strstr(out, "refusing host"));
    }
}

static void test_refuses_too_many_sockets(void **state)
{
    (void)state;
    static char out[4096];
    const char *args[] = {"idle", "--port", "4040", "--conns", "19001", NULL};
    assert_int_equal(run_bench(args, out, sizeof out), 2);
}

/* ---- a lying relay: the verification must fail the run ---------------------- */

enum fault {
    F_NONE,      /* an honest relay                                       */
    F_DROP,      /* one delivery never sent                               */
    F_DUPLICATE, /* one delivery sent twice                               */
    F_SWAP,      /* two deliveries in the wrong order                     */
    F_CORRUPT,   /* one delivery's sequence changed                       */
    F_STALL,     /* deliveries stop, acks go on                           */
    F_SILENT,    /* everything stops: no acks, no deliveries              */
    F_CLOSE,     /* the subscriber's connection closed mid-run            */
    F_TRICKLE    /* every frame written one byte at a time (honest)       */
};

#define FAULT_AT 5u /* the SEND the fault hits (0-based) */

struct fake_relay {
    int listen_fd;
    uint16_t port;
    enum fault fault;
    pthread_t thread;
};

struct peer {
    int fd;
    uint8_t in[1 << 16];
    size_t len;
};

/* Writes one frame; trickle: one byte per send (the peers use
 * TCP_NODELAY, so most bytes travel alone). */
static void send_frame(int fd, const uint8_t *payload, size_t len, int trickle)
{
    uint8_t frame[P2P_FRAME_HEADER_SIZE + 256];
    if (fd == -1 || len > sizeof frame - P2P_FRAME_HEADER_SIZE)
        return;
    p2p_frame_header_encode(frame, (uint32_t)len);
    memcpy(frame + P2P_FRAME_HEADER_SIZE, payload, len);
    size_t total = P2P_FRAME_HEADER_SIZE + len;
    if (!trickle) {
        (void)tc_try_send_raw(fd, frame, total);
        return;
    }
    for (size_t i = 0; i < total; ++i)
        if (tc_try_send_raw(fd, frame + i, 1) != 0)
            return;
}

/* A stupidP2P relay for one v1 publisher and one subscriber (fanout 1 -> 1)
 * that acknowledges everything and forwards each SEND to the subscriber,
 * except for its one fault. Ends when both peers have gone or after 15 s. */
static void *fake_relay_main(void *arg)
{
    struct fake_relay *r = arg;
    static struct peer peers[2];
    int subscriber = -1;
    uint64_t sends = 0;
    uint8_t held[256];
    size_t held_len = 0;
    for (int i = 0; i < 2; ++i) {
        peers[i].len = 0;
        peers[i].fd = accept(r->listen_fd, NULL, NULL);
        if (peers[i].fd == -1)
            return NULL;
    }
    time_t end = time(NULL) + 15;
    int open = 2;
    int trickle = r->fault == F_TRICKLE;
    int silent = 0;
    while (open > 0 && time(NULL) < end) {
        struct pollfd p[2] = {{.fd = peers[0].fd, .events = POLLIN},
                              {.fd = peers[1].fd, .events = POLLIN}};
        if (poll(p, 2, 200) <= 0)
            continue;
        for (int i = 0; i < 2; ++i) {
            struct peer *pe = &peers[i];
            if (pe->fd == -1 || !(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            ssize_t n = recv(pe->fd, pe->in + pe->len, sizeof pe->in - pe->len, 0);
            if (n <= 0) {
                close(pe->fd);
                pe->fd = -1;
                --open;
                continue;
            }
            pe->len += (size_t)n;
            if (silent) {
                pe->len = 0; /* read (to see the close) but never answered */
                continue;
            }
            size_t at = 0;
            struct p2p_frame f;
            while (!silent &&
                   p2p_frame_parse(pe->in + at, pe->len - at, 1024, &f) == P2P_FRAME_COMPLETE) {
                at += f.consumed;
                struct p2p_request q;
                if (f.length == 0 || p2p_request_parse(f.payload, f.length, &q) != P2P_PARSE_OK)
                    continue;
                if (r->fault == F_SILENT && q.cmd == P2P_CMD_SEND && sends == FAULT_AT) {
                    silent = 1; /* from here on nothing is answered or forwarded */
                    break;
                }
                uint8_t reply[P2P_REPLY_SIZE];
                send_frame(pe->fd, reply, p2p_encode_reply(reply, q.cmd, P2P_STATUS_OK), trickle);
                if (q.cmd == P2P_CMD_SUBSCRIBE)
                    subscriber = i;
                if (q.cmd != P2P_CMD_SEND || subscriber < 0 || q.data_len + 1 > sizeof held)
                    continue;
                /* The delivery is [03] + data: the SEND's own payload. */
                uint8_t d[256];
                memcpy(d, f.payload, f.length);
                int to = peers[subscriber].fd;
                uint64_t k = sends++;
                if (r->fault == F_DROP && k == FAULT_AT)
                    continue;
                if (r->fault == F_STALL && k >= FAULT_AT)
                    continue;
                if (r->fault == F_CLOSE && k == FAULT_AT && to != -1) {
                    close(to);
                    peers[subscriber].fd = -1;
                    --open;
                    continue;
                }
                if (r->fault == F_CORRUPT && k == FAULT_AT)
                    d[1 + 4] ^= 0x01; /* the sequence's low byte */
                if (r->fault == F_SWAP && k == FAULT_AT) {
                    memcpy(held, d, f.length);
                    held_len = f.length;
                    continue;
                }
                send_frame(to, d, f.length, trickle);
                if (r->fault == F_DUPLICATE && k == FAULT_AT)
                    send_frame(to, d, f.length, trickle);
                if (held_len != 0) {
                    send_frame(to, held, held_len, trickle);
                    held_len = 0;
                }
            }
            memmove(pe->in, pe->in + at, pe->len - at);
            pe->len -= at;
        }
    }
    for (int i = 0; i < 2; ++i)
        if (peers[i].fd != -1)
            close(peers[i].fd);
    return NULL;
}

static void fake_relay_start(struct fake_relay *r, enum fault fault)
{
    r->fault = fault;
    r->listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(r->listen_fd != -1);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t alen = sizeof a;
    assert_int_equal(bind(r->listen_fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(r->listen_fd, 8), 0);
    assert_int_equal(getsockname(r->listen_fd, (struct sockaddr *)&a, &alen), 0);
    r->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&r->thread, NULL, fake_relay_main, r), 0);
}

static void fake_relay_stop(struct fake_relay *r)
{
    /* Wakes an accept still waiting (a run that never connected). */
    shutdown(r->listen_fd, SHUT_RDWR);
    assert_int_equal(pthread_join(r->thread, NULL), 0);
    close(r->listen_fd);
}

/* Runs fanout 1 -> 1 over 40 messages against a fake relay with `fault`;
 * returns the exit status, the result line in out. */
static int run_against(enum fault fault, char *out, size_t cap)
{
    struct fake_relay r;
    fake_relay_start(&r, fault);
    char port[8];
    snprintf(port, sizeof port, "%u", r.port);
    const char *args[] = {"fanout", "--port", port, "--msgs", "40", "--idle", "0.3", "--timeout",
                          "10", NULL};
    int rc = run_bench(args, out, cap);
    fake_relay_stop(&r);
    return rc;
}

/* The control: the honest fake relay passes, so the failures below are the
 * faults' doing. */
static void test_honest_fake_relay_passes(void **state)
{
    (void)state;
    static char out[16384];
    int rc = run_against(F_NONE, out, sizeof out);
    if (rc != 0)
        tc_fail("exit %d: %s", rc, out);
}

/* Exit 1, a status other than ok, and key above 0. Returns the line
 * (valid until the next call). */
static const char *expect_caught(enum fault fault, const char *key)
{
    static char out[16384];
    int rc = run_against(fault, out, sizeof out);
    if (rc != 1)
        tc_fail("want exit 1, got %d: %s", rc, out);
    char v[64];
    assert_true(field(out, "status", v, sizeof v));
    assert_string_not_equal(v, "ok");
    if (field_u64(out, key) == 0)
        tc_fail("want %s > 0: %s", key, out);
    return out;
}

static void test_loss_fails(void **state)
{
    (void)state;
    expect_caught(F_DROP, "lost");
}

static void test_duplicate_fails(void **state)
{
    (void)state;
    expect_caught(F_DUPLICATE, "reordered");
}

static void test_reorder_fails(void **state)
{
    (void)state;
    expect_caught(F_SWAP, "reordered");
}

static void test_corrupt_sequence_fails(void **state)
{
    (void)state;
    expect_caught(F_CORRUPT, "errors");
}

/* Frames split into single bytes are reassembled: the run passes. */
static void test_trickling_relay_passes(void **state)
{
    (void)state;
    static char out[16384];
    int rc = run_against(F_TRICKLE, out, sizeof out);
    if (rc != 0)
        tc_fail("exit %d: %s", rc, out);
    assert_int_equal(field_u64(out, "deliveries"), 40);
}

/* The subscriber's connection closed mid-run: a disconnect and a failure. */
static void test_closed_subscriber_fails(void **state)
{
    (void)state;
    const char *out = expect_caught(F_CLOSE, "disconnects");
    assert_true(field_u64(out, "lost") > 0);
}

/* The relay falls silent (no acks, no deliveries): the run ends on --idle. */
static void test_silent_relay_ends_on_idle(void **state)
{
    (void)state;
    const char *out = expect_caught(F_SILENT, "lost");
    char v[64];
    assert_true(field(out, "status", v, sizeof v));
    assert_string_equal(v, "stalled");
}

/* Deliveries stop while acks go on: the run ends on --idle, not hangs. */
static void test_stall_ends_on_idle(void **state)
{
    (void)state;
    const char *out = expect_caught(F_STALL, "lost");
    char v[64];
    assert_true(field(out, "status", v, sizeof v));
    assert_string_equal(v, "stalled");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_fanout_v1),
        TC_SERVER_TEST(test_fanout_v2_quiet),
        TC_SERVER_TEST(test_pairs_v2_acked),
        TC_SERVER_TEST(test_pairs_send_to),
        TC_SERVER_TEST(test_pingpong),
        TC_SERVER_TEST(test_idle),
        TC_SERVER_TEST(test_connrate),
        cmocka_unit_test(test_refuses_other_hosts),
        cmocka_unit_test(test_refuses_too_many_sockets),
        cmocka_unit_test(test_honest_fake_relay_passes),
        cmocka_unit_test(test_loss_fails),
        cmocka_unit_test(test_duplicate_fails),
        cmocka_unit_test(test_reorder_fails),
        cmocka_unit_test(test_corrupt_sequence_fails),
        cmocka_unit_test(test_stall_ends_on_idle),
        cmocka_unit_test(test_trickling_relay_passes),
        cmocka_unit_test(test_closed_subscriber_fails),
        cmocka_unit_test(test_silent_relay_ends_on_idle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
