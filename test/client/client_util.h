/*
 * client_util.h - helpers shared by the client library tests (a header of
 * static functions: every .c file in test/client is its own CMocka binary).
 *
 *  - ct_open: a handle on the harness's server, with short timeouts.
 *  - struct ct_rec: records what the callbacks saw (messages, presence,
 *    states) under a mutex, and lets a test wait, bounded, on a condition.
 *  - ct_barrier: a round trip on the receiving handle. The server handles
 *    one connection's frames in order and queues a delivery to B before it
 *    answers the sender; so once A's send has returned, a HEARTBEAT from B
 *    is answered only after every delivery queued for B, and B's thread
 *    has dispatched them all by the time heart_beat returns.
 *  - struct ct_fake: a fake server on 127.0.0.1 (a thread in the test) that
 *    answers like this project's server, like the original (ignoring
 *    HELLO), goes silent after some frames, or closes at once.
 *
 * Include <cmocka.h>'s prerequisites and <cmocka.h> first.
 */
#ifndef CLIENT_UTIL_H
#define CLIENT_UTIL_H

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "harness.h"
#include "protocol.h"
#include "stupidp2p.h"

#define CT_WAIT_MS 10000

static inline uint16_t ct_port(void **state)
{
    return ((struct p2p_server *)*state)->port;
}

static inline struct timespec ct_deadline(int ms)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += ms / 1000;
    ts.tv_nsec += (long)(ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    return ts;
}

static inline int64_t ct_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- callback recorder ------------------------------------------------------- */

#define CT_MAX_MSGS 4096

struct ct_rec {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int n_msgs;
    size_t len[CT_MAX_MSGS];
    char first[CT_MAX_MSGS][32];     /* first bytes of each message  */
    char sender[CT_MAX_MSGS][32];
    size_t sender_len[CT_MAX_MSGS];
    uint64_t sum[CT_MAX_MSGS];       /* a checksum of the whole data */
    int n_presence;
    char presence_id[64][32];
    int presence_online[64];
    int n_states;
    stupid_p2p_state_t states[256];
    stupid_p2p_cause_t causes[256];
    int n_connected, n_disconnected;
    int bad_nul;
};

static inline void ct_rec_init(struct ct_rec *r)
{
    memset(r, 0, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cond, NULL);
}

static inline void ct_rec_destroy(struct ct_rec *r)
{
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cond);
}

static inline uint64_t ct_checksum(const uint8_t *d, size_t n)
{
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < n; i++)
        h = (h ^ d[i]) * 1099511628211ull;
    return h;
}

static void ct_on_message(int32_t h, const uint8_t *sender, size_t slen, const uint8_t *data, size_t len, void *u)
{
    (void)h;
    struct ct_rec *r = u;
    pthread_mutex_lock(&r->mu);
    /* The library promises NULs after both (checked by the test thread:
     * CMocka assertions cannot run on the library's thread). */
    if (data[len] != 0 || (sender && sender[slen] != 0))
        r->bad_nul++;
    if (r->n_msgs < CT_MAX_MSGS) {
        int i = r->n_msgs++;
        r->len[i] = len;
        snprintf(r->first[i], sizeof r->first[i], "%.*s", (int)(len < 31 ? len : 31), (const char *)data);
        snprintf(r->sender[i], sizeof r->sender[i], "%.*s", (int)(slen < 31 ? slen : 31),
                 sender ? (const char *)sender : "");
        r->sender_len[i] = slen;
        r->sum[i] = ct_checksum(data, len);
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static void ct_on_presence(int32_t h, const uint8_t *id, size_t id_len, int online, void *u)
{
    (void)h;
    struct ct_rec *r = u;
    pthread_mutex_lock(&r->mu);
    if (r->n_presence < 64) {
        snprintf(r->presence_id[r->n_presence], 32, "%.*s", (int)(id_len < 31 ? id_len : 31), (const char *)id);
        r->presence_online[r->n_presence] = online;
        r->n_presence++;
    }
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static void ct_on_state(int32_t h, stupid_p2p_state_t st, stupid_p2p_cause_t cause, void *u)
{
    (void)h;
    struct ct_rec *r = u;
    pthread_mutex_lock(&r->mu);
    if (r->n_states < 256) {
        r->states[r->n_states] = st;
        r->causes[r->n_states] = cause;
        r->n_states++;
    }
    if (st == STUPID_P2P_STATE_CONNECTED)
        r->n_connected++;
    if (st == STUPID_P2P_STATE_DISCONNECTED)
        r->n_disconnected++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static void ct_on_log(int32_t h, stupid_p2p_log_level_t level, const char *msg, void *u)
{
    (void)u;
    fprintf(stderr, "  [lib h%d L%d] %s\n", (int)h, (int)level, msg);
}

/* Waits (bounded) until the predicate on *r holds; returns 1 or 0. */
#define CT_WAIT_FOR(r, ms, pred)                                                   \
    ({                                                                             \
        struct timespec ct_until_ = ct_deadline(ms);                               \
        int ct_ok_;                                                                \
        pthread_mutex_lock(&(r)->mu);                                              \
        while (!(ct_ok_ = (pred)))                                                 \
            if (pthread_cond_timedwait(&(r)->cond, &(r)->mu, &ct_until_) == ETIMEDOUT) { \
                ct_ok_ = (pred);                                                   \
                break;                                                             \
            }                                                                      \
        pthread_mutex_unlock(&(r)->mu);                                            \
        ct_ok_;                                                                    \
    })

/* Reads an expression over *r under its lock. */
#define CT_GET(r, expr)                                                            \
    ({                                                                             \
        pthread_mutex_lock(&(r)->mu);                                              \
        __typeof__(expr) ct_v_ = (expr);                                           \
        pthread_mutex_unlock(&(r)->mu);                                            \
        ct_v_;                                                                     \
    })

/* ---- handles ------------------------------------------------------------------- */

/* Options for tests: short timeouts and backoff, callbacks into rec (when
 * not NULL; messages then bypass the queue unless keep_queue). */
static inline void ct_options(stupid_p2p_options_t *o, struct ct_rec *rec, int use_msg_cb)
{
    stupid_p2p_options_init(o);
    o->command_timeout_ms = 3000;
    o->connect_timeout_ms = 2000;
    o->heartbeat_interval_ms = 500;
    o->backoff_initial_ms = 50;
    o->backoff_max_ms = 400;
    o->on_log = ct_on_log;
    o->log_level = STUPID_P2P_LOG_WARNING;
    if (rec) {
        o->user_data = rec;
        o->on_state = ct_on_state;
        o->on_presence = ct_on_presence;
        if (use_msg_cb)
            o->on_message = ct_on_message;
    }
}

static inline int32_t ct_open_opts(uint16_t port, const stupid_p2p_options_t *o)
{
    int32_t h = stupid_p2p_init_ex("127.0.0.1", port, o);
    if (h <= 0)
        fail_msg("stupid_p2p_init_ex(127.0.0.1, %u): %d %s", port, h, stupid_p2p_strerror(h));
    return h;
}

static inline int32_t ct_open(uint16_t port, struct ct_rec *rec, int use_msg_cb)
{
    stupid_p2p_options_t o;
    ct_options(&o, rec, use_msg_cb);
    return ct_open_opts(port, &o);
}

#define ct_ok(expr)                                                                 \
    do {                                                                            \
        int32_t ct_rc_ = (expr);                                                    \
        if (ct_rc_ != STUPID_P2P_NO_ERROR)                                          \
            fail_msg("%s = %d (%s)", #expr, ct_rc_, stupid_p2p_strerror(ct_rc_));  \
    } while (0)

static inline void ct_barrier(int32_t receiver)
{
    ct_ok(stupid_p2p_heart_beat(receiver));
}

/* Waits (bounded) until the handle reports `state`, through the recorder's
 * condition variable when it has one. */
static inline void ct_wait_state(int32_t h, struct ct_rec *r, int32_t state, int ms)
{
    if (!CT_WAIT_FOR(r, ms, stupid_p2p_get_state(h) == state))
        fail_msg("handle %d: state %d, not %d, after %d ms", h, stupid_p2p_get_state(h), state, ms);
}

/* ---- fake server ------------------------------------------------------------------ */

enum ct_fake_mode {
    CT_FAKE_V2 = 0,        /* answers everything, HELLO with a v2 reply       */
    CT_FAKE_ORIGINAL = 1,  /* ignores HELLO and unknown commands (v1 only)    */
    CT_FAKE_MUTE = 2,      /* accepts, reads, never answers                   */
    CT_FAKE_CLOSE = 3      /* accepts and closes at once                      */
};

#define CT_FAKE_CONNS 8

struct ct_fake {
    int lfd, efd;
    uint16_t port;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    enum ct_fake_mode mode;
    int silent_after;      /* per connection: frames answered before going mute (<0: never) */
    int accepts;           /* connections accepted so far */
    int frames;            /* frames received, all connections */
    int closed;            /* connections the client closed */
    int fds[CT_FAKE_CONNS];
    int answered[CT_FAKE_CONNS];
    uint8_t buf[CT_FAKE_CONNS][4096];
    size_t used[CT_FAKE_CONNS];
};

static void ct_fake_write(int fd, const uint8_t *payload, size_t n)
{
    uint8_t frame[64];
    p2p_frame_header_encode(frame, (uint32_t)n);
    memcpy(frame + 4, payload, n);
    (void)send(fd, frame, n + 4, MSG_NOSIGNAL);
}

static void ct_fake_answer(struct ct_fake *f, int i, const uint8_t *p, uint32_t n)
{
    int fd = f->fds[i];
    if (n == 0 || f->mode == CT_FAKE_MUTE)
        return;
    if (f->silent_after >= 0 && f->answered[i] >= f->silent_after)
        return;
    uint8_t cmd = p[0];
    if (cmd == P2P_CMD_HELLO) {
        if (f->mode == CT_FAKE_ORIGINAL)
            return;
        const uint8_t r[11] = {0x88, 1, 2, 0, 1, 0, 0, 0, 0, 1, 44};
        ct_fake_write(fd, r, sizeof r);
    } else if (cmd >= 1 && cmd <= 7) {
        uint8_t r[2] = {(uint8_t)(cmd | 0x80), 1};
        ct_fake_write(fd, r, 2);
    } else {
        return; /* original-style silence */
    }
    f->answered[i]++;
}

static void *ct_fake_main(void *arg)
{
    struct ct_fake *f = arg;
    for (;;) {
        struct pollfd pfd[2 + CT_FAKE_CONNS];
        int map[2 + CT_FAKE_CONNS];
        nfds_t n = 0;
        pfd[n].fd = f->efd;
        pfd[n].events = POLLIN;
        map[n++] = -2;
        pfd[n].fd = f->lfd;
        pfd[n].events = POLLIN;
        map[n++] = -1;
        for (int i = 0; i < CT_FAKE_CONNS; i++)
            if (f->fds[i] >= 0) {
                pfd[n].fd = f->fds[i];
                pfd[n].events = POLLIN;
                map[n++] = i;
            }
        if (poll(pfd, n, -1) == -1) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (pfd[0].revents)
            return NULL;
        if (pfd[1].revents) {
            int c = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                pthread_mutex_lock(&f->mu);
                f->accepts++;
                pthread_cond_broadcast(&f->cond);
                pthread_mutex_unlock(&f->mu);
                int slot = -1;
                for (int i = 0; i < CT_FAKE_CONNS && slot < 0; i++)
                    if (f->fds[i] < 0)
                        slot = i;
                if (f->mode == CT_FAKE_CLOSE || slot < 0) {
                    close(c);
                } else {
                    f->fds[slot] = c;
                    f->answered[slot] = 0;
                    f->used[slot] = 0;
                }
            }
        }
        for (nfds_t k = 2; k < n; k++) {
            if (!pfd[k].revents)
                continue;
            int i = map[k];
            ssize_t r = read(f->fds[i], f->buf[i] + f->used[i], sizeof f->buf[i] - f->used[i]);
            if (r <= 0) {
                close(f->fds[i]);
                f->fds[i] = -1;
                pthread_mutex_lock(&f->mu);
                f->closed++;
                pthread_cond_broadcast(&f->cond);
                pthread_mutex_unlock(&f->mu);
                continue;
            }
            f->used[i] += (size_t)r;
            struct p2p_frame fr;
            while (p2p_frame_parse(f->buf[i], f->used[i], sizeof f->buf[i] - 4, &fr) == P2P_FRAME_COMPLETE) {
                ct_fake_answer(f, i, fr.payload, fr.length);
                pthread_mutex_lock(&f->mu);
                f->frames++;
                pthread_cond_broadcast(&f->cond);
                pthread_mutex_unlock(&f->mu);
                memmove(f->buf[i], f->buf[i] + fr.consumed, f->used[i] - fr.consumed);
                f->used[i] -= fr.consumed;
            }
        }
    }
}

static inline void ct_fake_start(struct ct_fake *f, enum ct_fake_mode mode, int silent_after)
{
    memset(f, 0, sizeof *f);
    for (int i = 0; i < CT_FAKE_CONNS; i++)
        f->fds[i] = -1;
    f->mode = mode;
    f->silent_after = silent_after;
    pthread_mutex_init(&f->mu, NULL);
    pthread_cond_init(&f->cond, NULL);
    f->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(f->lfd >= 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = 0; /* ephemeral */
    assert_int_equal(bind(f->lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(f->lfd, 16), 0);
    socklen_t al = sizeof a;
    assert_int_equal(getsockname(f->lfd, (struct sockaddr *)&a, &al), 0);
    f->port = ntohs(a.sin_port);
    f->efd = eventfd(0, EFD_CLOEXEC);
    assert_true(f->efd >= 0);
    assert_int_equal(pthread_create(&f->thread, NULL, ct_fake_main, f), 0);
}

static inline void ct_fake_stop(struct ct_fake *f)
{
    uint64_t one = 1;
    assert_int_equal(write(f->efd, &one, sizeof one), (ssize_t)sizeof one);
    pthread_join(f->thread, NULL);
    for (int i = 0; i < CT_FAKE_CONNS; i++)
        if (f->fds[i] >= 0)
            close(f->fds[i]);
    close(f->lfd);
    close(f->efd);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->cond);
}

#endif /* CLIENT_UTIL_H */
