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
 *    answers like this project's server (with a HELLO grant the test may
 *    make a lie), like the original (ignoring HELLO), goes silent after
 *    some frames (and may then trickle bytes that never make a frame),
 *    closes at once, or does what a per-request hook says. Every frame it
 *    writes is built with the codec.
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
    int n_direct, n_relay;           /* path changes (test_client_direct) */
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
    CT_FAKE_V2 = 0,        /* answers everything, HELLO with a v2 grant       */
    CT_FAKE_ORIGINAL = 1,  /* ignores HELLO and unknown commands (v1 only)    */
    CT_FAKE_MUTE = 2,      /* accepts, reads, never answers                   */
    CT_FAKE_CLOSE = 3      /* accepts and closes at once                      */
};

#define CT_FAKE_CONNS 8

struct ct_fake;

/* Called on the fake's thread for every request, before the fake answers
 * it; conn is the connection's slot, f->serial[conn] its number (1 for
 * the first accepted). Returns 1 when it has dealt with the request itself
 * (the fake then neither answers nor counts it as answered). */
typedef int (*ct_fake_hook)(struct ct_fake *f, int conn, const struct p2p_request *req);

struct ct_fake {
    int lfd, efd;
    uint16_t port;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cond;
    enum ct_fake_mode mode;
    int silent_after;      /* per connection: frames answered before going mute (<0: never) */
    /* The HELLO grant (ct_fake_defaults: this project's, version 2,
     * 65536, 300 s, all 11 bytes; a test may change it before start). */
    uint8_t grant_version;
    uint32_t grant_max_frame;
    uint32_t grant_idle;
    size_t grant_len;      /* bytes of the 11-byte grant actually sent    */
    ct_fake_hook hook;
    void *arg;             /* for the hook                                */
    int trickle_ms;        /* > 0: a connection gone mute is sent one byte
                              of a frame that never ends, this often      */
    /* Under mu: */
    int accepts;           /* connections accepted so far */
    int frames;            /* frames received, all connections */
    int closed;            /* connections the client closed */
    uint64_t trickled;     /* bytes trickled, all connections */
    /* The fake's thread only: */
    int fds[CT_FAKE_CONNS];
    int serial[CT_FAKE_CONNS];
    int answered[CT_FAKE_CONNS];
    uint32_t trickle_pos[CT_FAKE_CONNS];
    uint8_t buf[CT_FAKE_CONNS][8192];
    size_t used[CT_FAKE_CONNS];
};

/* Writes bytes to a fake connection as far as the socket takes them
 * without blocking; returns the number written. */
static inline size_t ct_fake_raw(struct ct_fake *f, int conn, const void *p, size_t n)
{
    size_t done = 0;
    while (done < n) {
        ssize_t r = send(f->fds[conn], (const uint8_t *)p + done, n - done, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    return done;
}

/* Writes one frame (header + payload) to a fake connection. */
static inline void ct_fake_frame(struct ct_fake *f, int conn, const uint8_t *payload, size_t n)
{
    uint8_t *frame = malloc(P2P_FRAME_HEADER_SIZE + n);
    assert_non_null(frame);
    p2p_frame_header_encode(frame, (uint32_t)n);
    memcpy(frame + P2P_FRAME_HEADER_SIZE, payload, n);
    (void)ct_fake_raw(f, conn, frame, P2P_FRAME_HEADER_SIZE + n);
    free(frame);
}

/* Answers a request as the fake's mode says, with the codec. */
static inline void ct_fake_reply(struct ct_fake *f, int conn, uint8_t cmd)
{
    uint8_t r[P2P_HELLO_REPLY_SIZE];
    if (cmd == P2P_CMD_HELLO) {
        size_t n = p2p_encode_hello_reply(r, f->grant_version, f->grant_max_frame, f->grant_idle);
        ct_fake_frame(f, conn, r, f->grant_len < n ? f->grant_len : n);
    } else {
        ct_fake_frame(f, conn, r, p2p_encode_reply(r, cmd, P2P_STATUS_OK));
    }
}

/* Closes a fake connection with a reset (SO_LINGER 0). */
static inline void ct_fake_reset(struct ct_fake *f, int conn)
{
    struct linger lg = {1, 0};
    (void)setsockopt(f->fds[conn], SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(f->fds[conn]);
    f->fds[conn] = -1;
}

/* Closes a fake connection cleanly (the client reads EOF). */
static inline void ct_fake_hangup(struct ct_fake *f, int conn)
{
    close(f->fds[conn]);
    f->fds[conn] = -1;
}

static inline int ct_fake_is_mute(const struct ct_fake *f, int conn)
{
    return f->mode == CT_FAKE_MUTE || (f->silent_after >= 0 && f->answered[conn] >= f->silent_after);
}

static void ct_fake_answer(struct ct_fake *f, int i, const uint8_t *p, uint32_t n)
{
    if (n == 0)
        return;
    struct p2p_request req;
    (void)p2p_request_parse(p, n, &req); /* a bad argument is answered OK here */
    if (f->hook != NULL && f->hook(f, i, &req))
        return;
    if (f->fds[i] < 0 || ct_fake_is_mute(f, i))
        return;
    if (req.cmd == P2P_CMD_HELLO && f->mode == CT_FAKE_ORIGINAL)
        return;
    if (req.cmd < P2P_CMD_REGISTER || req.cmd > P2P_CMD_HELLO)
        return; /* original-style silence */
    ct_fake_reply(f, i, req.cmd);
    f->answered[i]++;
}

/* One byte of a frame that never completes (a 60000-byte header, then
 * 'x' bytes) to every connection gone mute. */
static void ct_fake_trickle(struct ct_fake *f)
{
    for (int i = 0; i < CT_FAKE_CONNS; i++) {
        if (f->fds[i] < 0 || !ct_fake_is_mute(f, i))
            continue;
        uint8_t hdr[P2P_FRAME_HEADER_SIZE];
        p2p_frame_header_encode(hdr, 60000);
        uint8_t b = f->trickle_pos[i] < sizeof hdr ? hdr[f->trickle_pos[i]] : 'x';
        if (f->trickle_pos[i] < 60000 && ct_fake_raw(f, i, &b, 1) == 1) {
            f->trickle_pos[i]++;
            pthread_mutex_lock(&f->mu);
            f->trickled++;
            pthread_cond_broadcast(&f->cond);
            pthread_mutex_unlock(&f->mu);
        }
    }
}

static void *ct_fake_main(void *arg)
{
    struct ct_fake *f = arg;
    int64_t next_trickle = ct_now_ms() + f->trickle_ms;
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
        int timeout = -1;
        if (f->trickle_ms > 0) {
            int64_t left = next_trickle - ct_now_ms();
            timeout = left > 0 ? (int)left : 0;
        }
        int pr = poll(pfd, n, timeout);
        if (pr == -1) {
            if (errno == EINTR)
                continue;
            return NULL;
        }
        if (f->trickle_ms > 0 && ct_now_ms() >= next_trickle) {
            ct_fake_trickle(f);
            next_trickle = ct_now_ms() + f->trickle_ms;
        }
        if (pr == 0)
            continue;
        if (pfd[0].revents)
            return NULL;
        if (pfd[1].revents) {
            int c = accept4(f->lfd, NULL, NULL, SOCK_CLOEXEC);
            if (c >= 0) {
                pthread_mutex_lock(&f->mu);
                int serial = ++f->accepts;
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
                    f->serial[slot] = serial;
                    f->answered[slot] = 0;
                    f->trickle_pos[slot] = 0;
                    f->used[slot] = 0;
                }
            }
        }
        for (nfds_t k = 2; k < n; k++) {
            int i = map[k];
            if (!pfd[k].revents || f->fds[i] != pfd[k].fd)
                continue;
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
            while (f->fds[i] >= 0 &&
                   p2p_frame_parse(f->buf[i], f->used[i], sizeof f->buf[i] - 4, &fr) == P2P_FRAME_COMPLETE) {
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

/* Clears *f and sets the configuration fields to this project's server:
 * change grant_*, hook, arg or trickle_ms after it, then ct_fake_start_cfg. */
static inline void ct_fake_defaults(struct ct_fake *f)
{
    memset(f, 0, sizeof *f);
    f->grant_version = P2P_VERSION_2;
    f->grant_max_frame = P2P_DEFAULT_MAX_FRAME;
    f->grant_idle = 300;
    f->grant_len = P2P_HELLO_REPLY_SIZE;
}

/* Starts a fake server configured by ct_fake_defaults and the caller. */
static inline void ct_fake_start_cfg(struct ct_fake *f, enum ct_fake_mode mode, int silent_after)
{
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

/* A fake server with this project's HELLO grant and no hook. */
static inline void ct_fake_start(struct ct_fake *f, enum ct_fake_mode mode, int silent_after)
{
    ct_fake_defaults(f);
    ct_fake_start_cfg(f, mode, silent_after);
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
