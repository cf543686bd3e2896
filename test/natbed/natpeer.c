/*
 * natpeer.c - one device of the NAT test bed (test/natbed/), on
 * libstupidp2p: it registers, follows one peer, and does one job, writing
 * what happened as lines on standard output for the scripts to read:
 *
 *   T_MS path direct|relay     the path of our send_to's to the peer changed
 *   T_MS direct after MS       (send, rtt, bulk) the path was made that fast
 *   T_MS no direct path        ... or was not, within --wait-direct
 *   T_MS got N                 every 100th message received (receive)
 *   T_MS complete N            all N messages came, once each, in order
 *   T_MS ERROR ...             a message missing, twice or out of order
 *   T_MS rtt MEDIAN_US P90_US  (rtt) round trips of --count echoes
 *   T_MS bulk BYTES MS         (bulk) BYTES sent and acknowledged in MS
 *   T_MS sent N
 * T_MS is CLOCK_REALTIME in milliseconds, comparable with `date +%s%3N`.
 *
 * Jobs (--job):
 *   receive   take numbered messages "seq K" from the peer until --count
 *             have come (checking each), echo "echo ..." messages back,
 *             and answer "bulk-end" with "bulk-done"; runs until killed or
 *             --seconds pass
 *   send      wait (bounded) for a direct path, then send --count numbered
 *             messages, one every --interval-ms
 *   rtt       --count echoes, one at a time
 *   bulk      --bytes of data in --size messages, then "bulk-end"
 *
 * Options: --server IP --port P --me ID --peer ID [--direct off|accept|auto]
 * [--connect] [--keepalive MS] [--wait-direct MS] [--count N]
 * [--interval-ms MS] [--size B] [--bytes B] [--seconds S]
 */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "stupidp2p.h"

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int direct;       /* the path is direct now */
    long expect_seq;  /* receive: the next "seq K" */
    long count;
    int bad;
    int echo_seen;    /* rtt: the echo of the current ping came */
    long echo_want;
    int bulk_done;
} g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0, 0, 0};

static int32_t handle;
static const char *peer;

static long long now_real_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static long long now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (long long)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    flockfile(stdout);
    printf("%lld ", now_real_ms());
    vprintf(fmt, ap);
    putchar('\n');
    fflush(stdout);
    funlockfile(stdout);
    va_end(ap);
}

static void on_log(int32_t h, stupid_p2p_log_level_t level, const char *msg, void *u)
{
    (void)h, (void)level, (void)u;
    fprintf(stderr, "%lld lib: %s\n", now_real_ms(), msg);
}

static void on_path(int32_t h, const uint8_t *id, size_t len, stupid_p2p_path_t path, void *u)
{
    (void)h, (void)id, (void)len, (void)u;
    pthread_mutex_lock(&g.mu);
    g.direct = path == STUPID_P2P_PATH_DIRECT;
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.mu);
    say("path %s", path == STUPID_P2P_PATH_DIRECT ? "direct" : "relay");
}

/* Runs on the library's thread: it may not send (a blocking call); the
 * echo goes from the main thread's queue instead. */
static char echo_buf[64];
static int echo_pending;
static int is_receiver;

static void on_message(int32_t h, const uint8_t *sender, size_t slen, const uint8_t *data, size_t len, void *u)
{
    (void)h, (void)sender, (void)slen, (void)u;
    char text[64];
    size_t n = len < sizeof text - 1 ? len : sizeof text - 1;
    memcpy(text, data, n);
    text[n] = 0;
    pthread_mutex_lock(&g.mu);
    if (strncmp(text, "seq ", 4) == 0) {
        long k = atol(text + 4);
        if (k != g.expect_seq && !g.bad) {
            g.bad = 1;
            say("ERROR expected seq %ld, got %ld", g.expect_seq, k);
        }
        g.expect_seq = k + 1;
        if (g.expect_seq % 100 == 0)
            say("got %ld", g.expect_seq);
        if (g.expect_seq == g.count && !g.bad)
            say("complete %ld", g.count);
    } else if (is_receiver && (strncmp(text, "ping ", 5) == 0 || strcmp(text, "bulk-end") == 0)) {
        /* echoed from the main thread */
        snprintf(echo_buf, sizeof echo_buf, "%s", strcmp(text, "bulk-end") == 0 ? "bulk-done" : text);
        echo_pending = 1;
    } else if (!is_receiver && strncmp(text, "ping ", 5) == 0 && atol(text + 5) == g.echo_want) {
        g.echo_seen = 1;
    } else if (!is_receiver && strcmp(text, "bulk-done") == 0) {
        g.bulk_done = 1;
    }
    pthread_cond_broadcast(&g.cond);
    pthread_mutex_unlock(&g.mu);
}

static int wait_for(int *flag, long ms)
{
    struct timespec until;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&g.mu);
    while (!*flag)
        if (pthread_cond_timedwait(&g.cond, &g.mu, &until) == ETIMEDOUT)
            break;
    int got = *flag;
    pthread_mutex_unlock(&g.mu);
    return got;
}

static int send_text(const char *text, size_t len)
{
    for (int k = 0; k < 300; k++) { /* a relay reconnect takes a moment */
        int32_t rc = stupid_p2p_send_to(handle, peer, strlen(peer), text, len);
        if (rc == STUPID_P2P_NO_ERROR)
            return 0;
        usleep(10000);
    }
    return -1;
}

static int cmp_ll(const void *a, const void *b)
{
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"server", 1, NULL, 's'},   {"port", 1, NULL, 'p'},     {"me", 1, NULL, 'm'},
        {"peer", 1, NULL, 'o'},     {"direct", 1, NULL, 'd'},   {"connect", 0, NULL, 'c'},
        {"keepalive", 1, NULL, 'k'}, {"wait-direct", 1, NULL, 'w'}, {"count", 1, NULL, 'n'},
        {"interval-ms", 1, NULL, 'i'}, {"size", 1, NULL, 'z'},  {"bytes", 1, NULL, 'b'},
        {"seconds", 1, NULL, 't'},  {"job", 1, NULL, 'j'},      {NULL, 0, NULL, 0}};
    const char *server = "127.0.0.1", *me = NULL, *job = "receive", *mode = "auto";
    long port = 0, keepalive = 25000, wait_direct = 10000, count = 100, interval = 0, size = 1000;
    long bytes = 1 << 20, seconds = 60;
    int connect = 0, ch;
    while ((ch = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (ch) {
        case 's': server = optarg; break;
        case 'p': port = atol(optarg); break;
        case 'm': me = optarg; break;
        case 'o': peer = optarg; break;
        case 'd': mode = optarg; break;
        case 'c': connect = 1; break;
        case 'k': keepalive = atol(optarg); break;
        case 'w': wait_direct = atol(optarg); break;
        case 'n': count = atol(optarg); break;
        case 'i': interval = atol(optarg); break;
        case 'z': size = atol(optarg); break;
        case 'b': bytes = atol(optarg); break;
        case 't': seconds = atol(optarg); break;
        case 'j': job = optarg; break;
        default: fprintf(stderr, "natpeer: bad option\n"); return 2;
        }
    }
    if (me == NULL || peer == NULL || port <= 0 || size < 16 || size > 60000) {
        fprintf(stderr, "natpeer: --me, --peer and --port are needed\n");
        return 2;
    }
    g.count = count;
    is_receiver = strcmp(job, "receive") == 0;
    stupid_p2p_options_t o;
    stupid_p2p_options_init(&o);
    o.direct = strcmp(mode, "off") == 0 ? STUPID_P2P_DIRECT_OFF
               : strcmp(mode, "accept") == 0 ? STUPID_P2P_DIRECT_ACCEPT : STUPID_P2P_DIRECT_AUTO;
    o.direct_keepalive_ms = (int32_t)keepalive;
    o.on_path = on_path;
    o.on_message = on_message;
    o.on_log = on_log;
    o.log_level = STUPID_P2P_LOG_INFO;
    o.heartbeat_interval_ms = 1000;
    o.command_timeout_ms = 5000;
    handle = stupid_p2p_init_ex(server, (int32_t)port, &o);
    if (handle < 0) {
        say("ERROR init: %s", stupid_p2p_strerror(handle));
        return 1;
    }
    int32_t rc = stupid_p2p_register(handle, me, strlen(me));
    if (rc != STUPID_P2P_NO_ERROR) {
        say("ERROR register: %s", stupid_p2p_strerror(rc));
        return 1;
    }
    say("registered %s", me);
    long long start = now_us();
    if (strcmp(job, "receive") == 0) {
        long long end = now_us() + seconds * 1000000LL;
        while (now_us() < end) {
            pthread_mutex_lock(&g.mu);
            int pending = echo_pending;
            char text[64];
            memcpy(text, echo_buf, sizeof text);
            echo_pending = 0;
            pthread_mutex_unlock(&g.mu);
            if (pending)
                (void)send_text(text, strlen(text));
            else
                usleep(200);
        }
        stupid_p2p_deinit(handle);
        return g.bad;
    }
    /* The other jobs want the peer there, and a direct path if one can be
     * made. */
    for (int k = 0; k < 100 && stupid_p2p_check_alive(handle, peer, strlen(peer)) != 1; k++)
        usleep(100000);
    start = now_us();
    if (connect) {
        rc = stupid_p2p_connect_direct(handle, peer, strlen(peer));
        if (rc != STUPID_P2P_NO_ERROR)
            say("connect_direct: %s", stupid_p2p_strerror(rc));
    } else if (o.direct == STUPID_P2P_DIRECT_AUTO) {
        (void)send_text("hello", 5); /* a send_to starts the attempt */
    }
    if (wait_for(&g.direct, wait_direct))
        say("direct after %lld", (now_us() - start) / 1000);
    else
        say("no direct path");
    if (strcmp(job, "send") == 0) {
        for (long i = 0; i < count; i++) {
            char m[32];
            int n = snprintf(m, sizeof m, "seq %ld", i);
            if (send_text(m, (size_t)n) != 0) {
                say("ERROR send %ld failed", i);
                return 1;
            }
            if (interval > 0)
                usleep((useconds_t)interval * 1000);
        }
        say("sent %ld", count);
    } else if (strcmp(job, "rtt") == 0) {
        long long *us = calloc((size_t)count, sizeof *us);
        for (long i = 0; i < count && us != NULL; i++) {
            char m[32];
            int n = snprintf(m, sizeof m, "ping %ld", i);
            pthread_mutex_lock(&g.mu);
            g.echo_seen = 0;
            g.echo_want = i;
            pthread_mutex_unlock(&g.mu);
            long long t0 = now_us();
            if (send_text(m, (size_t)n) != 0 || !wait_for(&g.echo_seen, 5000)) {
                say("ERROR no echo of ping %ld", i);
                return 1;
            }
            us[i] = now_us() - t0;
        }
        qsort(us, (size_t)count, sizeof *us, cmp_ll);
        say("rtt %lld %lld", us[count / 2], us[count * 9 / 10]);
        free(us);
    } else if (strcmp(job, "bulk") == 0) {
        char *buf = malloc((size_t)size);
        memset(buf, 'x', (size_t)size);
        long long t0 = now_us();
        for (long sent = 0; sent < bytes; sent += size) {
            if (send_text(buf, (size_t)size) != 0) {
                say("ERROR bulk send failed");
                return 1;
            }
        }
        (void)send_text("bulk-end", 8);
        if (!wait_for(&g.bulk_done, 60000)) {
            say("ERROR bulk not acknowledged");
            return 1;
        }
        say("bulk %ld %lld", bytes, (now_us() - t0) / 1000);
        free(buf);
    }
    stupid_p2p_deinit(handle);
    return 0;
}
