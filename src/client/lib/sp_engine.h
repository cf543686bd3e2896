/*
 * sp_engine.h - the background thread of a handle: connecting, negotiating,
 * restoring, reading and dispatching frames, heartbeats and reconnects.
 *
 * One thread per handle sleeps in poll(2) on its descriptors: the socket,
 * a timerfd armed (absolute, CLOCK_MONOTONIC) for the current phase's one
 * deadline, an eventfd that callers write to when they leave bytes unsent
 * or deinit begins, and, while a host name is being resolved, the
 * resolver's eventfd (sp_resolve.h). There is no periodic tick and no
 * sleep: the thread wakes exactly when a byte arrives, a write can
 * proceed, a deadline passes or someone asks.
 *
 * Every frame is built and parsed by the shared codec (codec.h): the
 * engine never spells a layout itself.
 *
 * Phases (enum sp_phase):
 *
 *   RESOLVE -> CONNECTING -> HANDSHAKE -> RESTORE -> CONNECTED
 *      ^                                                 |
 *      +------------ BACKOFF <----- (lost, failed) ------+
 *
 * - RESOLVE: an address is used at once; a name is resolved on a thread
 *   of its own, bounded by connect_timeout_ms (the lookup is abandoned,
 *   not waited for, at that deadline or at deinit). Then a non-blocking
 *   connect to each address in turn, each bounded by connect_timeout_ms.
 * - HANDSHAKE: HELLO (version 2) followed by HEARTBEAT. A server of this
 *   project answers HELLO first; the original server ignores HELLO, so the
 *   heartbeat's reply comes first and the FIFO drops the HELLO request:
 *   that connection speaks v1. A HELLO grant that makes no sense (short,
 *   version 0 or above the one asked, max_frame < 2) is a protocol error;
 *   a max_frame above opt.max_frame_limit is clamped to it, and frames
 *   from the server are refused above the clamped size plus the DELIVER
 *   slack, so a server cannot make the client buffer more than that.
 *   With slow_consumer DROP, a second HELLO asking for the DROP flag
 *   follows the first, in the same write: a server that does not know the
 *   flag refuses it (88 04) and the v2 session the first one made stays;
 *   an original server ignores both. drop_in_force says which it was, and
 *   a GAP on a connection without it is a protocol error.
 * - RESTORE: the remembered id is registered again and every remembered
 *   subscription renewed, pipelined; only when the last reply is in does
 *   the state become CONNECTED, so an application never sees a connected
 *   handle that has not got its id back. With a token the id is claimed
 *   with AUTH: step 1, then, as soon as the challenge is in, step 2 with
 *   the subscriptions pipelined behind it (a device's PEERS judge the id we
 *   hold). An AUTH that fails (refused, status 6, a v1 session) gives the
 *   id up for good, reported with the next CONNECTED; only a wrong server
 *   signature ends the connection instead, to try again after a backoff.
 * - CONNECTED: a heartbeat every heartbeat_interval_ms (clamped to a third
 *   of the server's idle timeout). Liveness comes from replies only: each
 *   request remembers when it was queued, and last_alive is the queueing
 *   time of the newest request the server has answered. When it is
 *   heartbeat_max_missed intervals old the connection is declared lost,
 *   however many other bytes (deliveries, a trickle of garbage) arrive.
 *   Time the thread spent inside the application's callbacks is not
 *   counted against the server (cb_ms). EOF and errors are noticed at
 *   once by the read.
 * - BACKOFF: exponential backoff with full jitter (sp_backoff_ms); the
 *   envelope resets once a connection has lived for one heartbeat
 *   interval, except that consecutive takeovers of our id are a floor
 *   (sp_takeover).
 *
 * A connection ends in one place, sp_connection_lost, which bumps epoch.
 * Whoever dispatches frames or calls something that may end the
 * connection compares epochs afterwards and stops touching the old
 * connection's bytes: a connection ends once and is reported once.
 *
 * The first attempt belongs to stupid_p2p_init, which waits for it: if it
 * fails, the thread reports the error and ends, and init frees everything.
 * See sp_buf.h for why this is a header of static functions.
 */
#ifndef SP_ENGINE_H
#define SP_ENGINE_H

#include <poll.h>

#include "sp_handle.h"
#include "sp_io.h"
#include "sp_resolve.h"

#define SP_READ_CHUNK 65536u
#define SP_READS_PER_WAKE 16

static void sp_connection_lost(struct sp_handle *h, stupid_p2p_cause_t cause);
static void sp_attempt_start(struct sp_handle *h);
static void sp_direct_relay_lost(struct sp_handle *h); /* sp_direct.h */

/* ---- causes ------------------------------------------------------------------ */

/* Every cause, with its BYE reason on the wire (0: none) and its name in
 * logs: the one table from which BYE reasons are mapped. */
static const struct sp_cause_info {
    stupid_p2p_cause_t cause;
    uint8_t bye_reason;
    const char *name;
} sp_causes[] = {
    {STUPID_P2P_CAUSE_NONE, 0, "none"},
    {STUPID_P2P_CAUSE_TAKEN_OVER, P2P_BYE_TAKEN_OVER, "id taken over by another connection"},
    {STUPID_P2P_CAUSE_IDLE_TIMEOUT, P2P_BYE_IDLE_TIMEOUT, "server idle timeout"},
    {STUPID_P2P_CAUSE_SLOW_CONSUMER, P2P_BYE_SLOW_CONSUMER, "slow consumer"},
    {STUPID_P2P_CAUSE_SERVER_SHUTDOWN, P2P_BYE_SHUTDOWN, "server shutting down"},
    {STUPID_P2P_CAUSE_PROTOCOL_ERROR, P2P_BYE_PROTOCOL_ERROR, "protocol error reported by the server"},
    {STUPID_P2P_CAUSE_NOT_AUTHORIZED, P2P_BYE_NOT_AUTHORIZED, "not authorized"},
    {STUPID_P2P_CAUSE_LIMIT, P2P_BYE_LIMIT, "server limit reached"},
    {STUPID_P2P_CAUSE_EOF, 0, "connection closed by the server"},
    {STUPID_P2P_CAUSE_IO_ERROR, 0, "socket error"},
    {STUPID_P2P_CAUSE_HEARTBEAT_LOST, 0, "heartbeats unanswered"},
    {STUPID_P2P_CAUSE_BAD_FRAME, 0, "malformed or unexpected frame from the server"},
    {STUPID_P2P_CAUSE_CONNECT_FAILED, 0, "connection attempt failed"},
    {STUPID_P2P_CAUSE_DEINIT, 0, "deinit"},
    {STUPID_P2P_CAUSE_ID_LOST, 0, "id given up after repeated takeovers"},
};

static const char *sp_cause_name(stupid_p2p_cause_t c)
{
    for (size_t i = 0; i < sizeof sp_causes / sizeof sp_causes[0]; i++)
        if (sp_causes[i].cause == c)
            return sp_causes[i].name;
    return "unknown";
}

/* A BYE reason as a cause; a reason this library does not know is a close
 * like any other. */
static stupid_p2p_cause_t sp_bye_cause(uint8_t reason)
{
    for (size_t i = 0; i < sizeof sp_causes / sizeof sp_causes[0]; i++)
        if (reason != 0 && sp_causes[i].bye_reason == reason)
            return sp_causes[i].cause;
    return STUPID_P2P_CAUSE_EOF;
}

/* An errno value from connect(2) and friends, as stupid_p2p_connect_error
 * words it (static strings only). */
static const char *sp_errno_text(int e)
{
    switch (e) {
    case ECONNREFUSED: return "connection refused";
    case ETIMEDOUT: return "connect timed out";
    case EHOSTUNREACH: return "no route to host";
    case ENETUNREACH: return "network unreachable";
    case ECONNRESET: return "connection reset";
    case EADDRNOTAVAIL: return "address not available";
    case EACCES:
    case EPERM: return "connection not permitted";
    case EMFILE:
    case ENFILE: return "out of file descriptors";
    case ENOMEM:
    case ENOBUFS: return "out of memory";
    default: {
        const char *s = strerrordesc_np(e); /* static, untranslated */
        return s != NULL ? s : "unknown error";
    }
    }
}

/* ---- output (mu held) ------------------------------------------------------ */

/* Encodes the head of a request with the codec: everything but the data
 * that follows it in the frame. head: P2P_ID_HEAD_MAX bytes. HELLO is
 * encoded by its caller (it has no id). Touches no shared state: callers
 * encode before they lock. */
static size_t sp_encode_head(uint8_t *head, uint8_t cmd, const uint8_t *id, size_t id_len)
{
    switch (cmd) {
    case P2P_CMD_SEND:
        return p2p_encode_send_head(head);
    case P2P_CMD_SEND_TO:
        return p2p_encode_send_to_head(head, id, id_len);
    default: /* REGISTER ... HEARTBEAT: [cmd][id], the id possibly empty */
        return p2p_encode_id_command(head, cmd, id, id_len);
    }
}

/* Appends one frame to b: the header, an encoded head, then data. Returns
 * 0 or -1 (too long, or out of memory: nothing appended). */
static int sp_frame_to(struct sp_buf *b, const uint8_t *head, size_t head_len, const uint8_t *data, size_t len)
{
    size_t plen = head_len + len;
    if (plen > UINT32_MAX || sp_buf_reserve(b, P2P_FRAME_HEADER_SIZE + plen) != 0)
        return -1;
    uint8_t hdr[P2P_FRAME_HEADER_SIZE];
    p2p_frame_header_encode(hdr, (uint32_t)plen);
    (void)sp_buf_append(b, hdr, sizeof hdr);
    (void)sp_buf_append(b, head, head_len);
    (void)sp_buf_append(b, data, len);
    return 0;
}

/* sp_frame_to the relay connection's output queue (mu held). */
static int sp_out_frame(struct sp_handle *h, const uint8_t *head, size_t head_len, const uint8_t *data,
                        size_t len)
{
    return sp_frame_to(&h->out, head, head_len, data, len);
}

/* Writes what the kernel takes of b to fd. Returns 0 (bytes may remain:
 * wait for POLLOUT), or an errno. */
static int sp_send_buf(int fd, struct sp_buf *b)
{
    while (fd >= 0 && sp_buf_used(b) > 0) {
        size_t n = 0;
        int err = 0;
        enum sp_io_result r = sp_io_send(fd, sp_buf_head(b), sp_buf_used(b), &n, &err);
        if (r == SP_IO_OK) {
            sp_buf_consume(b, n);
            continue;
        }
        return r == SP_IO_AGAIN ? 0 : err;
    }
    sp_buf_trim(b, 1u << 20);
    return 0;
}

/* Writes what the kernel takes of the relay output. Returns 0 (bytes may
 * remain: the thread waits for POLLOUT) or -1 on a socket error (the
 * thread's read sees it too and ends the connection). */
static int sp_flush_locked(struct sp_handle *h)
{
    int err = sp_send_buf(h->fd, &h->out);
    if (err == 0)
        return 0;
    sp_log(h, STUPID_P2P_LOG_INFO, "send: %s", strerror(err));
    return -1;
}

/* 1 if a request payload of len bytes may be sent (mu held): a server
 * closes the connection on a frame above the max_frame it granted
 * (stupidp2p(7)). Ours grants at least 256, which every command with one
 * id fits; AUTH and the DIRECT_* requests may not, and under a smaller
 * grant from another server nothing with an id may. */
static int sp_fits(const struct sp_handle *h, size_t len)
{
    return len <= h->max_frame;
}

/* Queues an encoded request with its FIFO node. Returns 0, or -1 (out of
 * memory, or the request does not fit the server's max_frame: nothing is
 * queued and the node is freed). */
static int sp_queue_request(struct sp_handle *h, struct sp_pending *p, const uint8_t *head, size_t head_len,
                            const uint8_t *data, size_t len)
{
    if (!sp_fits(h, head_len + len)) {
        sp_log(h, STUPID_P2P_LOG_ERROR, "a request %02x of %zu bytes exceeds the server's max_frame (%u): not sent",
               head[0], head_len + len, (unsigned)h->max_frame);
        sp_pending_free(p);
        return -1;
    }
    if (sp_out_frame(h, head, head_len, data, len) != 0) {
        sp_pending_free(p);
        return -1;
    }
    sp_pending_push(h, p);
    return 0;
}

/* Queues an internal request (no waiter) whose data is an id or nothing;
 * the node remembers the id. Returns 0 or -1. */
static int sp_internal_request(struct sp_handle *h, uint8_t cmd, uint8_t kind, const uint8_t *id, size_t id_len)
{
    struct sp_pending *p = sp_pending_new(h, cmd, kind, id, id_len);
    if (p == NULL)
        return -1;
    uint8_t head[P2P_ID_HEAD_MAX];
    size_t n = sp_encode_head(head, cmd, id, id_len);
    return sp_queue_request(h, p, head, n, NULL, 0);
}

/* ---- state changes ---------------------------------------------------------- */

static void sp_notify_state(struct sp_handle *h, stupid_p2p_state_t st, stupid_p2p_cause_t cause)
{
    if (h->opt.on_state && !sp_muted(h))
        h->opt.on_state(h->id, st, cause, h->opt.user_data);
}

static void sp_set_fd(struct sp_handle *h, int fd)
{
    pthread_mutex_lock(&h->mu);
    h->fd = fd;
    pthread_mutex_unlock(&h->mu);
}

/* Closes the socket under mu, so that no caller can write to the number
 * once the kernel hands it out again. */
static void sp_drop_fd(struct sp_handle *h)
{
    pthread_mutex_lock(&h->mu);
    sp_io_close(h->fd);
    h->fd = -1;
    pthread_mutex_unlock(&h->mu);
}

static void sp_set_connect_error(struct sp_handle *h, const char *why)
{
    pthread_mutex_lock(&h->mu);
    h->connect_error = why;
    pthread_mutex_unlock(&h->mu);
}

static void sp_init_failed(struct sp_handle *h, int32_t err)
{
    pthread_mutex_lock(&h->mu);
    h->init_done = 1;
    h->init_result = err;
    h->state = STUPID_P2P_STATE_DISCONNECTED;
    pthread_cond_broadcast(&h->init_cond);
    pthread_mutex_unlock(&h->mu);
    h->phase = SP_PH_FAILED_INIT;
    h->deadline = 0;
}

static int sp_init_is_done(struct sp_handle *h)
{
    pthread_mutex_lock(&h->mu);
    int d = h->init_done;
    pthread_mutex_unlock(&h->mu);
    return d;
}

static void sp_schedule_backoff(struct sp_handle *h)
{
    uint64_t now = sp_now_ms();
    if (h->connected_since != 0 && now - h->connected_since >= (uint64_t)h->opt.heartbeat_interval_ms)
        h->attempt = 0;
    h->connected_since = 0;
    /* Takeovers in a row are a floor: a connection that lived long only
     * to lose the id again does not restart the envelope. */
    unsigned attempt = h->attempt > h->takeovers ? h->attempt : h->takeovers;
    uint64_t delay = sp_backoff_ms(&h->rng, attempt, (uint64_t)h->opt.backoff_initial_ms,
                                   (uint64_t)h->opt.backoff_max_ms);
    if (h->attempt < 64)
        h->attempt++;
    h->phase = SP_PH_BACKOFF;
    h->deadline = now + delay;
    sp_log(h, STUPID_P2P_LOG_INFO, "reconnecting in %llu ms", (unsigned long long)delay);
}

/* An attempt (resolve + every address) failed before a connection was
 * made; why is a static description (stupid_p2p_connect_error). */
static void sp_attempt_failed(struct sp_handle *h, int32_t init_err, const char *why)
{
    if (h->ai_list) {
        freeaddrinfo(h->ai_list);
        h->ai_list = h->ai_next = NULL;
    }
    sp_set_connect_error(h, why);
    if (!sp_init_is_done(h)) {
        sp_init_failed(h, init_err);
        return;
    }
    pthread_mutex_lock(&h->mu);
    h->state = STUPID_P2P_STATE_DISCONNECTED;
    h->last_cause = STUPID_P2P_CAUSE_CONNECT_FAILED;
    pthread_mutex_unlock(&h->mu);
    sp_notify_state(h, STUPID_P2P_STATE_DISCONNECTED, STUPID_P2P_CAUSE_CONNECT_FAILED);
    sp_schedule_backoff(h);
}

static void sp_become_connected(struct sp_handle *h)
{
    uint64_t now = sp_now_ms();
    uint64_t hb = (uint64_t)h->opt.heartbeat_interval_ms;
    stupid_p2p_cause_t cause = h->id_lost_cause;
    h->id_lost_cause = STUPID_P2P_CAUSE_NONE;
    pthread_mutex_lock(&h->mu);
    if (h->idle_timeout_s > 0) {
        /* Stay well inside the server's idle timeout. */
        uint64_t third = (uint64_t)h->idle_timeout_s * 1000u / 3u;
        if (third < 100)
            third = 100;
        if (hb > third)
            hb = third;
    }
    h->state = STUPID_P2P_STATE_CONNECTED;
    h->connect_error = NULL;
    if (cause != STUPID_P2P_CAUSE_NONE)
        h->last_cause = cause;
    int first = !h->init_done;
    if (first) {
        h->init_done = 1;
        h->init_result = STUPID_P2P_NO_ERROR;
        pthread_cond_broadcast(&h->init_cond);
    } else {
        h->n_reconnects++;
    }
    int version = h->version;
    if (h->has_id)
        h->id_since = now;
    pthread_mutex_unlock(&h->mu);
    h->hb_interval = hb;
    h->phase = SP_PH_CONNECTED;
    h->connected_since = now;
    h->hb_outstanding = 0;
    h->deadline = now + hb;
    sp_log(h, STUPID_P2P_LOG_INFO, "connected to %s port %s (protocol v%d)", h->host, h->port, version);
    if (!first)
        sp_notify_state(h, STUPID_P2P_STATE_CONNECTED, cause);
}

/* The largest frame this client accepts before the server has said
 * otherwise: the protocol's default, or less if the application says so. */
static uint32_t sp_default_max_frame(const struct sp_handle *h)
{
    return h->opt.max_frame_limit < P2P_DEFAULT_MAX_FRAME ? h->opt.max_frame_limit : P2P_DEFAULT_MAX_FRAME;
}

/* Queues a HELLO asking for version 2 with flags (mu held). Returns 0 or
 * -1. */
static int sp_queue_hello(struct sp_handle *h, uint8_t flags)
{
    struct sp_pending *p = sp_pending_new(h, P2P_CMD_HELLO, SP_REQ_HELLO, NULL, 0);
    if (p == NULL)
        return -1;
    p->hello_flags = flags;
    uint8_t hello[P2P_HELLO_SIZE];
    size_t n = p2p_encode_hello(hello, P2P_VERSION_2, flags);
    return sp_queue_request(h, p, hello, n, NULL, 0);
}

/* The TCP connection is up: negotiate. */
static void sp_on_connected(struct sp_handle *h)
{
    if (h->ai_list) {
        freeaddrinfo(h->ai_list);
        h->ai_list = h->ai_next = NULL;
    }
    uint64_t now = sp_now_ms();
    h->phase = SP_PH_HANDSHAKE;
    h->deadline = now + (uint64_t)h->opt.command_timeout_ms;
    h->last_alive = now;
    h->max_in = sp_default_max_frame(h) + P2P_SERVER_FRAME_SLACK;
    h->conn_auth_refusals = 0;
    sp_buf_clear(&h->in);
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    h->hello_answered = 0;
    h->version = 1;
    h->max_frame = sp_default_max_frame(h);
    h->idle_timeout_s = 0;
    h->drop_in_force = 0;
    if (h->opt.protocol_version >= 2) {
        rc = sp_queue_hello(h, 0);
        if (rc == 0 && h->opt.slow_consumer == STUPID_P2P_SLOW_DROP)
            rc = sp_queue_hello(h, P2P_HELLO_FLAG_DROP);
    }
    if (rc == 0)
        rc = sp_internal_request(h, P2P_CMD_HEARTBEAT, SP_REQ_PROBE, NULL, 0);
    if (rc == 0)
        rc = sp_flush_locked(h);
    pthread_mutex_unlock(&h->mu);
    if (rc != 0)
        sp_connection_lost(h, STUPID_P2P_CAUSE_IO_ERROR);
}

/* Queues the renewal of every remembered subscription (mu held), counting
 * each queued request in *n. A subscription that does not fit the
 * server's max_frame is dropped, as a v2 refusal drops it. Returns 0 or
 * -1. */
static int sp_queue_sub_restores(struct sp_handle *h, unsigned *n)
{
    int rc = 0;
    struct sp_sub *next;
    for (struct sp_sub *s = h->subs; s && rc == 0; s = next) {
        next = s->next;
        s->confirmed = 0;
        uint8_t head[P2P_ID_HEAD_MAX];
        if (!sp_fits(h, sp_encode_head(head, P2P_CMD_SUBSCRIBE, s->id, s->len))) {
            sp_log(h, STUPID_P2P_LOG_ERROR, "a subscription does not fit the server's max_frame (%u): dropped",
                   (unsigned)h->max_frame);
            sp_sub_remove(h, s->id, s->len);
            continue;
        }
        rc = sp_internal_request(h, P2P_CMD_SUBSCRIBE, SP_REQ_RESTORE, s->id, s->len);
        *n += rc == 0;
    }
    return rc;
}

/* Gives up the remembered id because it could not be claimed again (its
 * AUTH failed, or the claim does not fit the server's max_frame; mu held;
 * the thread): the next CONNECTED reports STUPID_P2P_CAUSE_NOT_AUTHORIZED,
 * once. why: static text for the log. */
static void sp_auth_give_up(struct sp_handle *h, const char *why)
{
    char id[4 * P2P_ID_MAX + 1];
    sp_escape(id, sizeof id, h->reg_id, h->reg_len);
    sp_log(h, STUPID_P2P_LOG_WARNING, "the id \"%s\" is given up: %s", id, why);
    h->has_id = 0;
    h->takeovers = 0;
    h->id_lost_cause = STUPID_P2P_CAUSE_NOT_AUTHORIZED;
}

/* Queues AUTH step 1 for the node p (cmd AUTH, its id set; mu held), with
 * the client nonce and a copy of the handle's keys. Returns 0, or -1 (out
 * of memory: p is freed). */
static int sp_queue_auth_start(struct sp_handle *h, struct sp_pending *p,
                               const uint8_t nonce[P2P_AUTH_NONCE_SIZE])
{
    p->auth = calloc(1, sizeof *p->auth);
    if (p->auth == NULL) {
        sp_pending_free(p);
        return -1;
    }
    p->auth->keys = h->keys;
    memcpy(p->auth->client_nonce, nonce, P2P_AUTH_NONCE_SIZE);
    p->step = P2P_AUTH_STEP_START;
    uint8_t head[P2P_AUTH_START_MAX];
    size_t n = p2p_encode_auth_start(head, p->id, p->id_len, nonce);
    return sp_queue_request(h, p, head, n, NULL, 0);
}

/* Sends the remembered id and subscriptions back to the server,
 * pipelined; CONNECTED once the last reply is in. With a token the id is
 * claimed with AUTH, and the subscriptions follow step 2 (sp_on_auth_reply):
 * whether a device lets us reach it depends on the id we hold. */
static void sp_send_restore(struct sp_handle *h)
{
    int rc = 0;
    unsigned n = 0;
    uint8_t nonce[P2P_AUTH_NONCE_SIZE];
    int rand_err = sp_io_random(nonce, sizeof nonce);
    pthread_mutex_lock(&h->mu);
    if (h->has_id && h->has_token && h->version < 2)
        sp_auth_give_up(h, "the server speaks only protocol v1, which has no AUTH");
    if (h->has_id) {
        uint8_t claim[P2P_AUTH_START_MAX];
        size_t len = h->has_token ? p2p_encode_auth_start(claim, h->reg_id, h->reg_len, nonce)
                                  : sp_encode_head(claim, P2P_CMD_REGISTER, h->reg_id, h->reg_len);
        if (!sp_fits(h, len))
            sp_auth_give_up(h, "claiming it again does not fit the server's max_frame");
    }
    int has_id = h->has_id, auth = has_id && h->has_token;
    if (auth && rand_err != 0) {
        sp_log(h, STUPID_P2P_LOG_ERROR, "getrandom: %s", strerror(rand_err));
        rc = -1;
    } else if (auth) {
        struct sp_pending *p = sp_pending_new(h, P2P_CMD_AUTH, SP_REQ_RESTORE, h->reg_id, h->reg_len);
        rc = p == NULL ? -1 : sp_queue_auth_start(h, p, nonce);
        n += rc == 0;
    } else {
        if (has_id) {
            rc = sp_internal_request(h, P2P_CMD_REGISTER, SP_REQ_RESTORE, h->reg_id, h->reg_len);
            n += rc == 0;
        }
        if (rc == 0)
            rc = sp_queue_sub_restores(h, &n);
    }
    if (rc == 0)
        rc = sp_flush_locked(h);
    pthread_mutex_unlock(&h->mu);
    h->restore_outstanding = n;
    if (rc != 0)
        sp_connection_lost(h, STUPID_P2P_CAUSE_IO_ERROR);
    else if (n == 0)
        sp_become_connected(h);
    else if (auth)
        sp_log(h, STUPID_P2P_LOG_DEBUG, "authenticating the id again; the subscriptions follow");
    else
        sp_log(h, STUPID_P2P_LOG_DEBUG, "restoring %s%u subscription(s)", has_id ? "the id and " : "",
               n - (has_id ? 1u : 0u));
}

/* The handshake is over: give the server back our id and subscriptions.
 * On v1, after the server closed a connection that held our id without a
 * word, first ask whether another connection holds the id now: that is
 * how a v1 takeover shows (sp_on_id_probe). */
static void sp_begin_restore(struct sp_handle *h)
{
    h->phase = SP_PH_RESTORE;
    h->deadline = sp_now_ms() + (uint64_t)h->opt.command_timeout_ms;
    int probe = h->probe_id;
    h->probe_id = 0;
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    probe = probe && h->has_id && h->version == 1;
    if (probe) {
        rc = sp_internal_request(h, P2P_CMD_CHECK_ALIVE, SP_REQ_ID_PROBE, h->reg_id, h->reg_len);
        if (rc == 0)
            rc = sp_flush_locked(h);
    }
    pthread_mutex_unlock(&h->mu);
    if (!probe) {
        sp_send_restore(h);
        return;
    }
    h->restore_outstanding = 1;
    if (rc != 0)
        sp_connection_lost(h, STUPID_P2P_CAUSE_IO_ERROR);
}

/* Another connection took our id over (v2: BYE 1; v1: see
 * sp_begin_restore). Two holders of one id must not fight forever: the
 * library takes the id back after a backoff whose envelope grows with
 * every takeover in a row (the count is a floor for sp_schedule_backoff and
 * survives reconnects), and after takeover_retries of them it gives the id
 * up, to report STUPID_P2P_CAUSE_ID_LOST with the next CONNECTED. The
 * count settles back to zero once the id has been held for two
 * backoff_max_ms (longer than any backoff of the other holder), or when the
 * application registers an id itself. */
static void sp_takeover(struct sp_handle *h)
{
    h->takeovers++;
    if (h->takeovers <= (unsigned)h->opt.takeover_retries) {
        sp_log(h, STUPID_P2P_LOG_WARNING,
               "another connection took our id (%u time(s) in a row): taking it back after a backoff",
               h->takeovers);
        return;
    }
    sp_log(h, STUPID_P2P_LOG_WARNING, "another connection took our id %u time(s) in a row: giving it up",
           h->takeovers);
    pthread_mutex_lock(&h->mu);
    h->has_id = 0;
    pthread_mutex_unlock(&h->mu);
    h->takeovers = 0;
    h->id_lost_cause = STUPID_P2P_CAUSE_ID_LOST;
}

/* Ends the current connection (HANDSHAKE, RESTORE or CONNECTED). */
static void sp_connection_lost(struct sp_handle *h, stupid_p2p_cause_t cause)
{
    h->epoch++;
    int attempt_failed = h->phase == SP_PH_HANDSHAKE || h->phase == SP_PH_RESTORE;
    pthread_mutex_lock(&h->mu);
    /* v1 says nothing when it hands our id to another connection: it
     * closes ours. Ask at the next connection (sp_begin_restore). */
    if (h->version == 1 && cause == STUPID_P2P_CAUSE_EOF && h->has_id && h->phase != SP_PH_HANDSHAKE)
        h->probe_id = 1;
    sp_io_close(h->fd);
    h->fd = -1;
    sp_buf_clear(&h->out);
    sp_pending_fail_all(h);
    h->state = STUPID_P2P_STATE_DISCONNECTED;
    h->drop_in_force = 0;
    h->last_cause = cause;
    if (attempt_failed)
        h->connect_error = sp_cause_name(cause);
    int init_done = h->init_done;
    pthread_mutex_unlock(&h->mu);
    sp_buf_clear(&h->in);
    sp_buf_trim(&h->in, 0);
    h->restore_outstanding = 0;
    h->hb_outstanding = 0;
    if (!init_done) {
        sp_log(h, STUPID_P2P_LOG_WARNING, "first connection failed: %s", sp_cause_name(cause));
        sp_init_failed(h, STUPID_P2P_NET_ERROR);
        return;
    }
    sp_log(h, STUPID_P2P_LOG_WARNING, "disconnected: %s", sp_cause_name(cause));
    sp_direct_relay_lost(h);
    sp_notify_state(h, STUPID_P2P_STATE_DISCONNECTED, cause);
    sp_schedule_backoff(h);
}

/* ---- connecting --------------------------------------------------------------- */

/* Tries the next address; why: the failure of the previous one. */
static void sp_connect_next(struct sp_handle *h, const char *why)
{
    while (h->ai_next != NULL) {
        struct addrinfo *ai = h->ai_next;
        h->ai_next = ai->ai_next;
        int err = 0;
        int fd = sp_io_socket(ai->ai_family, &err);
        if (fd == -1) {
            sp_log(h, STUPID_P2P_LOG_WARNING, "socket: %s", strerror(err));
            why = sp_errno_text(err);
            continue;
        }
        enum sp_io_result r = sp_io_connect(fd, ai->ai_addr, ai->ai_addrlen, &err);
        if (r == SP_IO_ERROR) {
            sp_log(h, STUPID_P2P_LOG_INFO, "connect: %s", strerror(err));
            why = sp_errno_text(err);
            sp_io_close(fd);
            continue;
        }
        sp_set_fd(h, fd);
        if (r == SP_IO_OK) {
            sp_on_connected(h);
        } else {
            h->phase = SP_PH_CONNECTING;
            h->deadline = sp_now_ms() + (uint64_t)h->opt.connect_timeout_ms;
        }
        return;
    }
    sp_attempt_failed(h, STUPID_P2P_NET_ERROR, why);
}

/* The outcome of resolving h->host: rc is getaddrinfo's. */
static void sp_on_resolved(struct sp_handle *h, int rc, int sys_errno, struct addrinfo *list)
{
    if (rc != 0) {
        const char *why = rc == EAI_SYSTEM ? sp_errno_text(sys_errno)
                          : rc == EAI_NONAME ? "host name not found"
                          : gai_strerror(rc);
        sp_log(h, STUPID_P2P_LOG_WARNING, "cannot resolve %s: %s", h->host, why);
        int32_t err = (rc == EAI_NONAME || rc == EAI_SERVICE || rc == EAI_FAMILY) ? STUPID_P2P_BAD_PARAM
                                                                                  : STUPID_P2P_NET_ERROR;
        sp_attempt_failed(h, err, why);
        return;
    }
    h->ai_list = h->ai_next = list;
    sp_connect_next(h, "no address");
}

static void sp_attempt_start(struct sp_handle *h)
{
    h->phase = SP_PH_RESOLVE;
    h->deadline = 0;
    if (sp_init_is_done(h)) {
        pthread_mutex_lock(&h->mu);
        h->state = STUPID_P2P_STATE_CONNECTING;
        pthread_mutex_unlock(&h->mu);
        sp_notify_state(h, STUPID_P2P_STATE_CONNECTING, STUPID_P2P_CAUSE_NONE);
    }
    struct addrinfo *list = NULL;
    int rc = sp_resolve_numeric(h->host, h->port, &list);
    if (rc != EAI_NONAME) {
        sp_on_resolved(h, rc, errno, list);
        return;
    }
    int err = 0;
    h->resolving = sp_resolve_start(h->host, h->port, &err);
    if (h->resolving == NULL) {
        sp_log(h, STUPID_P2P_LOG_ERROR, "cannot start resolving %s: %s", h->host, strerror(err));
        sp_attempt_failed(h, STUPID_P2P_NET_ERROR, sp_errno_text(err));
        return;
    }
    h->deadline = sp_now_ms() + (uint64_t)h->opt.connect_timeout_ms;
}

/* The resolver's eventfd is readable. */
static void sp_on_resolver_done(struct sp_handle *h)
{
    int rc = 0, sys_errno = 0;
    struct addrinfo *list = NULL;
    if (!sp_resolve_take(h->resolving, &rc, &sys_errno, &list))
        return;
    h->resolving = NULL;
    sp_on_resolved(h, rc, sys_errno, list);
}

/* Gives up waiting for the resolver: its thread finishes on its own. */
static void sp_abandon_resolver(struct sp_handle *h)
{
    if (h->resolving != NULL) {
        sp_resolve_release(h->resolving);
        h->resolving = NULL;
    }
}

/* ---- incoming frames -------------------------------------------------------------- */

/* Runs a user callback's clock: time spent in the application's callbacks
 * is not counted against the server's liveness (see the file comment). */
static uint64_t sp_callback_begin(void)
{
    return sp_now_ms();
}

static void sp_callback_end(struct sp_handle *h, uint64_t began)
{
    h->cb_ms += sp_now_ms() - began;
}

/* A message for the application: to the callback, or to the bounded queue.
 * data[len] is writable (the input buffer keeps a spare byte) and is
 * NUL-terminated for the callback's duration. */
static void sp_deliver(struct sp_handle *h, const uint8_t *sender, size_t slen, uint8_t *data, size_t len)
{
    if (h->opt.on_message) {
        if (sp_muted(h))
            return;
        uint8_t id[P2P_ID_MAX + 1];
        if (slen > 0)
            memcpy(id, sender, slen);
        id[slen] = 0;
        uint8_t saved = data[len];
        data[len] = 0;
        pthread_mutex_lock(&h->mu);
        h->n_received++;
        pthread_mutex_unlock(&h->mu);
        uint64_t began = sp_callback_begin();
        h->opt.on_message(h->id, slen ? id : NULL, slen, data, len, h->opt.user_data);
        sp_callback_end(h, began);
        data[len] = saved;
        return;
    }
    struct sp_msg *m = calloc(1, sizeof *m);
    uint8_t *copy = malloc(len + 1);
    if (m == NULL || copy == NULL) {
        free(m);
        free(copy);
        pthread_mutex_lock(&h->mu);
        h->n_dropped++;
        pthread_mutex_unlock(&h->mu);
        sp_log(h, STUPID_P2P_LOG_ERROR, "out of memory: a message of %zu bytes was dropped", len);
        return;
    }
    memcpy(copy, data, len);
    copy[len] = 0;
    m->pub.data = copy;
    m->pub.length = len;
    m->pub.sender_len = slen;
    if (slen > 0) /* sender is NULL on v1: memcpy(NULL, 0) is undefined */
        memcpy(m->pub.sender, sender, slen);
    m->pub.sender[slen] = 0;

    /* One log line when an overflow episode starts and one when it ends,
     * written after the lock is released. */
    int episode_start = 0;
    uint64_t episode_end = 0;
    uint32_t q_len;
    size_t q_bytes;
    pthread_mutex_lock(&h->mu);
    q_len = h->q_len;
    q_bytes = h->q_bytes;
    if (h->q_len >= (uint32_t)h->opt.recv_queue_max ||
        h->q_bytes + len > (size_t)h->opt.recv_queue_max_bytes) {
        h->n_dropped++;
        h->q_dropped_episode++;
        episode_start = !h->q_overflowing;
        h->q_overflowing = 1;
        pthread_mutex_unlock(&h->mu);
        sp_msg_free(m);
        if (episode_start)
            sp_log(h, STUPID_P2P_LOG_WARNING,
                   "receive queue full (%u messages, %zu bytes): dropping new messages until it drains",
                   q_len, q_bytes);
        return;
    }
    if (h->q_overflowing) {
        h->q_overflowing = 0;
        episode_end = h->q_dropped_episode;
        h->q_dropped_episode = 0;
    }
    if (h->q_tail)
        h->q_tail->next = m;
    else
        h->q_head = m;
    h->q_tail = m;
    h->q_len++;
    h->q_bytes += len;
    h->n_received++;
    pthread_cond_signal(&h->q_cond);
    pthread_mutex_unlock(&h->mu);
    if (episode_end)
        sp_log(h, STUPID_P2P_LOG_WARNING, "receive queue has room again; %llu message(s) were dropped",
               (unsigned long long)episode_end);
}

static void sp_on_presence(struct sp_handle *h, const struct p2p_message *m)
{
    if (h->opt.on_presence == NULL || sp_muted(h))
        return;
    uint8_t id[P2P_ID_MAX + 1];
    memcpy(id, m->id, m->id_len);
    id[m->id_len] = 0;
    uint64_t began = sp_callback_begin();
    h->opt.on_presence(h->id, id, m->id_len, m->state == P2P_PRESENCE_ONLINE, h->opt.user_data);
    sp_callback_end(h, began);
}

static uint64_t sp_add_saturating(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

/* A GAP event: counted, logged and handed to on_gap, in stream order.
 * Only a connection with DROP in force is ever sent one (stupidp2p(7),
 * GAP): on any other it is a protocol error, and the connection ends. */
static void sp_on_gap(struct sp_handle *h, const struct p2p_message *m)
{
    pthread_mutex_lock(&h->mu);
    int in_force = h->drop_in_force;
    if (in_force) {
        h->n_gap_events = sp_add_saturating(h->n_gap_events, 1);
        h->n_missed_messages = sp_add_saturating(h->n_missed_messages, m->gap_frames);
        h->n_missed_bytes = sp_add_saturating(h->n_missed_bytes, m->gap_bytes);
    }
    pthread_mutex_unlock(&h->mu);
    char id[4 * P2P_ID_MAX + 3] = "other devices";
    if (m->id_len > 0) {
        id[0] = '"';
        sp_escape(id + 1, sizeof id - 2, m->id, m->id_len);
        strcat(id, "\"");
    }
    if (!in_force) {
        sp_log(h, STUPID_P2P_LOG_ERROR, "a GAP event (from %s) on a connection without the DROP policy", id);
        sp_connection_lost(h, STUPID_P2P_CAUSE_BAD_FRAME);
        return;
    }
    sp_log(h, STUPID_P2P_LOG_INFO, "the server dropped %lu message(s) (%llu bytes) from %s", (unsigned long)m->gap_frames,
           (unsigned long long)m->gap_bytes, id);
    if (h->opt.on_gap == NULL || sp_muted(h))
        return;
    uint8_t pub[P2P_ID_MAX + 1];
    if (m->id_len > 0)
        memcpy(pub, m->id, m->id_len);
    pub[m->id_len] = 0;
    uint64_t began = sp_callback_begin();
    h->opt.on_gap(h->id, m->id_len > 0 ? pub : NULL, m->id_len, m->gap_frames, m->gap_bytes, h->opt.user_data);
    sp_callback_end(h, began);
}
/* Direct paths come in here: they use the output, delivery and callback
 * helpers above, and the dispatch below uses them. */
#include "sp_direct.h"

/* The server now holds req's id for this connection (a REGISTER or an
 * AUTH succeeded; mu held). */
static void sp_hold_id(struct sp_handle *h, const struct sp_pending *req)
{
    h->has_id = 1;
    memcpy(h->reg_id, req->id, req->id_len);
    h->reg_len = req->id_len;
    if (req->kind == SP_REQ_USER) {
        /* The application's own choice: takeovers start over. */
        h->takeovers = 0;
        h->id_since = sp_now_ms();
    }
}

/* Updates the remembered id and subscriptions from a reply (mu held). */
static void sp_apply_reply(struct sp_handle *h, const struct sp_pending *req, uint8_t status)
{
    if (status == P2P_STATUS_NOT_AUTHORIZED && req->cmd == P2P_CMD_REGISTER && req->kind == SP_REQ_RESTORE &&
        h->has_id) {
        /* Only AUTH may claim the id now (the server's auth file protects
         * it): asking again would be refused again. */
        sp_auth_give_up(h, "the server now refuses to register it (only AUTH may claim it)");
        return;
    }
    if (status != P2P_STATUS_OK) {
        if (req->cmd == P2P_CMD_SUBSCRIBE && req->kind != SP_REQ_USER) {
            struct sp_sub *s = sp_sub_find(h, req->id, req->id_len);
            if (s == NULL)
                return;
            if (h->version >= 2) {
                /* v2 accepts offline ids: a refusal is final, and the
                 * application loses a subscription it asked for. */
                sp_log(h, STUPID_P2P_LOG_ERROR, "server refused to renew a subscription (reason %u): dropped", status);
                sp_sub_remove(h, req->id, req->id_len);
            } else {
                s->confirmed = 0; /* v1: the device is offline; retried */
            }
        }
        return;
    }
    switch (req->cmd) {
    case P2P_CMD_REGISTER:
        sp_hold_id(h, req);
        break;
    case P2P_CMD_UNREGISTER:
        /* The server also cancels this connection's subscriptions. */
        h->has_id = 0;
        sp_sub_clear(h);
        break;
    case P2P_CMD_SUBSCRIBE:
        sp_sub_add(h, req->id, req->id_len);
        break;
    case P2P_CMD_UNSUBSCRIBE:
        sp_sub_remove(h, req->id, req->id_len);
        break;
    default:
        break;
    }
}

/* Why a successful HELLO reply makes no sense, or NULL. */
static const char *sp_grant_problem(const struct p2p_message *m)
{
    if (!m->has_hello_grant)
        return "a success reply without its grant";
    if (m->version < P2P_VERSION_1 || m->version > P2P_VERSION_2)
        return "a version this client did not ask for";
    if (m->max_frame < 2)
        return "a max_frame too small for any request";
    return NULL;
}

/* Takes the server's HELLO grant (mu held): the version, a max_frame
 * clamped to what this client accepts, and the flags the HELLO asked for,
 * of which DROP has an effect in version 2 only. */
static void sp_take_grant(struct sp_handle *h, const struct p2p_message *m, uint8_t flags)
{
    uint32_t limit = h->opt.max_frame_limit;
    h->version = m->version >= P2P_VERSION_2 ? 2 : 1;
    h->drop_in_force = (flags & P2P_HELLO_FLAG_DROP) != 0 && h->version >= 2;
    h->max_frame = m->max_frame < limit ? m->max_frame : limit;
    uint32_t in = m->max_frame > P2P_DEFAULT_MAX_FRAME ? m->max_frame : P2P_DEFAULT_MAX_FRAME;
    h->max_in = (in < limit ? in : limit) + P2P_SERVER_FRAME_SLACK;
    h->idle_timeout_s = m->idle_timeout_s;
    if (m->max_frame > limit)
        sp_log(h, STUPID_P2P_LOG_INFO, "the server allows frames of %u bytes; this client accepts %u",
               (unsigned)m->max_frame, (unsigned)limit);
}

/* The reply to the v1 probe of our own id (sp_begin_restore): online
 * means another connection holds it. Then the rest of the restore. */
static void sp_on_id_probe(struct sp_handle *h, uint8_t status)
{
    if (h->phase != SP_PH_RESTORE)
        return;
    h->restore_outstanding = 0;
    if (status == P2P_STATUS_OK)
        sp_takeover(h);
    sp_send_restore(h);
}

/* sp_on_auth_reply's answer when req went back into the FIFO. */
#define SP_AUTH_STEP2_SENT (-100)

/* A reply to AUTH (mu held; req popped from the FIFO). Returns the status
 * to complete req with, or SP_AUTH_STEP2_SENT when req went back into the
 * FIFO, awaiting the reply to step 2 (*flush_failed says whether writing
 * it failed).
 *
 * Step 1 answered with a challenge: the proof goes out at once, from this
 * thread (the caller of stupid_p2p_register sleeps until step 2 is
 * answered), followed, when restoring, by the subscriptions. Step 2
 * answered: the server's signature is checked in constant time; if right,
 * the connection holds the id. A wrong signature, or a success naming the
 * other step, is SP_STATUS_PROTOCOL: the caller ends the connection.
 * Refusals of a restore give the id up (sp_auth_give_up). */
static int sp_on_auth_reply(struct sp_handle *h, struct sp_pending *req, const struct p2p_message *m,
                            int *flush_failed)
{
    int restore = req->kind == SP_REQ_RESTORE;
    if (m->status != P2P_STATUS_OK) {
        if (m->status == P2P_STATUS_NOT_AUTHORIZED)
            h->conn_auth_refusals++;
        if (restore) {
            const char *why = "its AUTH failed";
            if (m->status == P2P_STATUS_UNSUPPORTED)
                why = "the server cannot authenticate (it has no auth file)";
            else if (m->status == P2P_STATUS_NOT_AUTHORIZED)
                why = "the server refused its AUTH";
            sp_auth_give_up(h, why);
            unsigned n = 0;
            /* Step 1 failed: the subscriptions were not sent yet. */
            if (req->step == P2P_AUTH_STEP_START && sp_queue_sub_restores(h, &n) != 0)
                return SP_STATUS_LOST;
            h->restore_outstanding += n;
            *flush_failed = sp_flush_locked(h) != 0;
        }
        return m->status;
    }
    if (m->step != req->step) {
        sp_log(h, STUPID_P2P_LOG_ERROR, "the server answered AUTH step %u as if it were step %u", req->step,
               m->step);
        return SP_STATUS_PROTOCOL;
    }
    struct sp_auth *a = req->auth;
    uint8_t msg[P2P_AUTH_MESSAGE_MAX];
    if (req->step == P2P_AUTH_STEP_START) {
        if (req->kind == SP_REQ_USER && req->abandoned)
            return m->status; /* the caller gave up: no step 2 */
        memcpy(a->server_nonce, m->data, P2P_AUTH_NONCE_SIZE);
        size_t len = p2p_auth_message(msg, req->id, req->id_len, a->client_nonce, a->server_nonce);
        uint8_t proof[P2P_AUTH_PROOF_SIZE], frame[P2P_AUTH_PROOF_REQ_SIZE];
        p2p_auth_client_proof(a->keys.client_key, a->keys.stored_key, msg, len, proof);
        size_t n = p2p_encode_auth_proof(frame, proof);
        int rc = sp_out_frame(h, frame, n, NULL, 0);
        explicit_bzero(proof, sizeof proof);
        explicit_bzero(frame, sizeof frame);
        if (rc != 0)
            return SP_STATUS_LOST;
        req->step = P2P_AUTH_STEP_PROOF;
        sp_pending_push(h, req);
        unsigned subs = 0;
        if (restore && sp_queue_sub_restores(h, &subs) != 0)
            *flush_failed = 1; /* the requests queued so far go out; the connection ends */
        h->restore_outstanding += subs;
        if (sp_flush_locked(h) != 0)
            *flush_failed = 1;
        sp_log(h, STUPID_P2P_LOG_DEBUG, "AUTH: challenge received, proof sent%s",
               subs > 0 ? ", the subscriptions after it" : "");
        return SP_AUTH_STEP2_SENT;
    }
    size_t len = p2p_auth_message(msg, req->id, req->id_len, a->client_nonce, a->server_nonce);
    int valid = p2p_auth_server_signature_valid(a->keys.server_key, msg, len, m->data);
    char id[4 * P2P_ID_MAX + 1];
    sp_escape(id, sizeof id, req->id, req->id_len);
    if (!valid) {
        sp_log(h, STUPID_P2P_LOG_ERROR,
               "AUTH as \"%s\": the server's signature is wrong: it does not know the id's verifier, so it "
               "is not the server it claims to be; closing the connection",
               id);
        return SP_STATUS_PROTOCOL;
    }
    sp_log(h, STUPID_P2P_LOG_INFO, "authenticated as \"%s\"; the server's signature is right", id);
    sp_hold_id(h, req);
    return m->status;
}

/* A reply: matched to the request at the head of the FIFO. */
static void sp_on_reply(struct sp_handle *h, const struct p2p_message *m)
{
    pthread_mutex_lock(&h->mu);
    struct sp_pending *req;
    for (;;) {
        req = h->req_head;
        if (req != NULL && req->cmd == m->cmd)
            break;
        if (req != NULL && req->kind == SP_REQ_HELLO) {
            /* The original server ignores HELLO: this is its heartbeat
             * reply, and the connection speaks v1. */
            sp_pending_free(sp_pending_pop(h));
            continue;
        }
        pthread_mutex_unlock(&h->mu);
        sp_log(h, STUPID_P2P_LOG_ERROR, "reply %02x %02x matches no request (expected %02x)",
               m->cmd | P2P_REPLY_BIT, m->status, req ? req->cmd | P2P_REPLY_BIT : 0);
        sp_connection_lost(h, STUPID_P2P_CAUSE_BAD_FRAME);
        return;
    }
    (void)sp_pending_pop(h);
    /* Liveness: the server has answered everything queued up to then. */
    if (req->sent_ms > h->last_alive) {
        h->last_alive = req->sent_ms;
        h->cb_ms = 0;
    }
    uint8_t kind = req->kind;
    const char *bad_grant = NULL;
    /* drop_refused: the version of a connection without the DROP policy
     * asked for, else 0. */
    int status = m->status, flush_failed = 0, drop_refused = 0;
    if (kind == SP_REQ_HELLO) {
        h->hello_answered = 1;
        if (m->status == P2P_STATUS_OK && (bad_grant = sp_grant_problem(m)) == NULL)
            sp_take_grant(h, m, req->hello_flags);
    } else if (kind == SP_REQ_PROBE) {
        if (h->opt.slow_consumer == STUPID_P2P_SLOW_DROP && !h->drop_in_force)
            drop_refused = h->version;
    } else if (kind == SP_REQ_HEARTBEAT) {
        h->hb_outstanding = 0;
    } else if (req->cmd == P2P_CMD_AUTH) {
        status = sp_on_auth_reply(h, req, m, &flush_failed);
    } else if (kind == SP_REQ_DIRECT) {
        sp_direct_on_reply(h, req, m);
    } else if (kind != SP_REQ_PROBE && kind != SP_REQ_ID_PROBE) {
        sp_apply_reply(h, req, m->status);
    }
    int requeued = status == SP_AUTH_STEP2_SENT;
    if (!requeued && kind == SP_REQ_USER)
        sp_pending_complete(req, status);
    else if (!requeued)
        sp_pending_free(req);
    pthread_mutex_unlock(&h->mu);

    if (bad_grant != NULL) {
        sp_log(h, STUPID_P2P_LOG_ERROR, "the server's HELLO reply is nonsense: %s", bad_grant);
        sp_connection_lost(h, STUPID_P2P_CAUSE_BAD_FRAME);
    } else if (status == SP_STATUS_PROTOCOL) {
        sp_connection_lost(h, STUPID_P2P_CAUSE_BAD_FRAME);
    } else if (status == SP_STATUS_LOST || flush_failed) {
        if (status == SP_STATUS_LOST)
            sp_log(h, STUPID_P2P_LOG_ERROR, "out of memory during AUTH");
        sp_connection_lost(h, STUPID_P2P_CAUSE_IO_ERROR);
    } else if (requeued) {
        /* nothing to count yet */
    } else if (kind == SP_REQ_PROBE && h->phase == SP_PH_HANDSHAKE) {
        if (drop_refused)
            sp_log(h, STUPID_P2P_LOG_WARNING,
                   "the server does not know the DROP policy (protocol v%d): if this client falls behind, "
                   "it is disconnected",
                   drop_refused);
        sp_begin_restore(h);
    } else if (kind == SP_REQ_ID_PROBE) {
        sp_on_id_probe(h, m->status);
    } else if (kind == SP_REQ_RESTORE && h->phase == SP_PH_RESTORE) {
        if (--h->restore_outstanding == 0)
            sp_become_connected(h);
    }
}

static void sp_on_bye(struct sp_handle *h, const struct p2p_message *m)
{
    /* The text comes from the server: escaped, it cannot forge log lines
     * or drive a terminal. */
    char text[4 * P2P_BYE_TEXT_MAX + 1];
    sp_escape(text, sizeof text, m->data, m->data_len);
    sp_log(h, STUPID_P2P_LOG_WARNING, "server says goodbye (reason %u): %s", m->reason, text);
    stupid_p2p_cause_t cause = sp_bye_cause(m->reason);
    if (cause == STUPID_P2P_CAUSE_TAKEN_OVER)
        sp_takeover(h);
    if (cause == STUPID_P2P_CAUSE_NOT_AUTHORIZED && h->conn_auth_refusals < P2P_AUTH_MAX_FAILURES) {
        /* Not the server's count of our failed AUTHs: its auth file no
         * longer lets us hold our id. Claiming it again would be refused. */
        pthread_mutex_lock(&h->mu);
        if (h->has_id)
            sp_auth_give_up(h, "the server withdrew it (BYE 6)");
        pthread_mutex_unlock(&h->mu);
    }
    sp_connection_lost(h, cause);
}

/* One frame from the server, parsed by the codec. payload[n] is writable
 * (see sp_deliver). The caller compares epochs afterwards: the frame may
 * have ended the connection. */
static void sp_dispatch(struct sp_handle *h, uint8_t *payload, uint32_t n)
{
    if (n == 0)
        return;
    struct p2p_message m;
    if (p2p_message_parse(payload, n, &m) != P2P_PARSE_OK) {
        sp_log(h, STUPID_P2P_LOG_ERROR, "malformed frame %02x (%u bytes)", payload[0], n);
        sp_connection_lost(h, STUPID_P2P_CAUSE_BAD_FRAME);
        return;
    }
    if (m.kind == P2P_MSG_REPLY) {
        sp_on_reply(h, &m);
        return;
    }
    if (h->phase != SP_PH_CONNECTED && h->phase != SP_PH_RESTORE && m.kind != P2P_MSG_BYE) {
        /* Deliveries can arrive during restore (subscriptions come back
         * one by one); before that there is nothing to deliver. */
        sp_log(h, STUPID_P2P_LOG_DEBUG, "frame %02x ignored during the handshake", payload[0]);
        return;
    }
    switch (m.kind) {
    case P2P_MSG_V1_DELIVERY: /* no sender id */
    case P2P_MSG_DELIVER:
        /* A message re-sent through the relay after a direct path ended,
         * which the path delivered already, is dropped (sp_direct.h). */
        if (m.id_len > 0 && sp_direct_skip(h, m.id, m.id_len))
            break;
        /* m.data points into payload: the same bytes, writable. */
        sp_deliver(h, m.id, m.id_len, payload + (m.data - payload), m.data_len);
        break;
    case P2P_MSG_DIRECT:
        sp_direct_on_event(h, payload, n);
        break;
    case P2P_MSG_PRESENCE:
        sp_on_presence(h, &m);
        break;
    case P2P_MSG_BYE:
        sp_on_bye(h, &m);
        break;
    case P2P_MSG_GAP:
        sp_on_gap(h, &m);
        break;
    default:
        sp_log(h, STUPID_P2P_LOG_DEBUG, "unknown frame %02x ignored", payload[0]);
        break;
    }
}

/* Reads what the socket has (bounded per wake) and dispatches every whole
 * frame, until the connection ends or deinit begins. */
static void sp_on_readable(struct sp_handle *h)
{
    unsigned epoch = h->epoch;
    for (int i = 0; i < SP_READS_PER_WAKE; i++) {
        /* +1: a spare byte after any payload (sp_deliver's NUL). */
        if (sp_buf_reserve(&h->in, SP_READ_CHUNK + 1) != 0) {
            sp_log(h, STUPID_P2P_LOG_ERROR, "out of memory reading from the server");
            sp_connection_lost(h, STUPID_P2P_CAUSE_IO_ERROR);
            return;
        }
        size_t room = h->in.cap - h->in.len - 1;
        size_t n = 0;
        int err = 0;
        enum sp_io_result r = sp_io_read(h->fd, h->in.data + h->in.len, room, &n, &err);
        if (r == SP_IO_AGAIN)
            return;
        if (r == SP_IO_EOF) {
            sp_connection_lost(h, STUPID_P2P_CAUSE_EOF);
            return;
        }
        if (r == SP_IO_ERROR) {
            sp_log(h, STUPID_P2P_LOG_INFO, "read: %s", strerror(err));
            sp_connection_lost(h, STUPID_P2P_CAUSE_IO_ERROR);
            return;
        }
        h->in.len += n;
        for (;;) {
            struct p2p_frame f;
            enum p2p_frame_result fr = p2p_frame_parse(sp_buf_head(&h->in), sp_buf_used(&h->in), h->max_in, &f);
            if (fr == P2P_FRAME_TOO_LONG) {
                sp_log(h, STUPID_P2P_LOG_ERROR, "frame of %u bytes from the server exceeds %u", f.length,
                       h->max_in);
                sp_connection_lost(h, STUPID_P2P_CAUSE_BAD_FRAME);
                return;
            }
            if (fr == P2P_FRAME_INCOMPLETE)
                break;
            sp_dispatch(h, h->in.data + h->in.off + P2P_FRAME_HEADER_SIZE, f.length);
            if (h->epoch != epoch || sp_muted(h))
                return; /* the connection ended, or deinit began */
            sp_buf_consume(&h->in, f.consumed);
        }
        sp_buf_trim(&h->in, 1u << 18); /* give back what a burst took */
        if (n < room)
            return; /* drained: poll will say when there is more */
    }
}

/* ---- deadlines ------------------------------------------------------------------ */

static void sp_heartbeat_tick(struct sp_handle *h, uint64_t now)
{
    uint64_t limit = h->hb_interval * (uint64_t)h->opt.heartbeat_max_missed + h->cb_ms;
    if (now - h->last_alive >= limit) {
        sp_log(h, STUPID_P2P_LOG_WARNING, "no reply from the server for %llu ms",
               (unsigned long long)(now - h->last_alive));
        sp_connection_lost(h, STUPID_P2P_CAUSE_HEARTBEAT_LOST);
        return;
    }
    if (h->takeovers > 0 && now - h->id_since >= 2u * (uint64_t)h->opt.backoff_max_ms)
        h->takeovers = 0; /* held long enough: the fight is over */
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    if (!h->hb_outstanding) {
        /* v1 refuses subscriptions to offline devices: ask again, once per
         * interval, for those the server refused after a reconnect. */
        for (struct sp_sub *s = h->subs; s && rc == 0; s = s->next)
            if (!s->confirmed)
                rc = sp_internal_request(h, P2P_CMD_SUBSCRIBE, SP_REQ_RETRY_SUB, s->id, s->len);
        if (rc == 0)
            rc = sp_internal_request(h, P2P_CMD_HEARTBEAT, SP_REQ_HEARTBEAT, NULL, 0);
        if (rc == 0) {
            h->hb_outstanding = 1;
            rc = sp_flush_locked(h);
        }
    }
    pthread_mutex_unlock(&h->mu);
    if (rc != 0) {
        sp_connection_lost(h, STUPID_P2P_CAUSE_IO_ERROR);
        return;
    }
    h->deadline = now + h->hb_interval;
}

static void sp_on_deadline(struct sp_handle *h, uint64_t now)
{
    switch (h->phase) {
    case SP_PH_BACKOFF:
        sp_attempt_start(h);
        break;
    case SP_PH_RESOLVE:
        if (h->resolving == NULL) {
            h->deadline = 0;
            break;
        }
        sp_log(h, STUPID_P2P_LOG_WARNING, "resolving %s: no answer within %d ms", h->host,
               (int)h->opt.connect_timeout_ms);
        sp_abandon_resolver(h);
        sp_attempt_failed(h, STUPID_P2P_NET_ERROR, "host name resolution timed out");
        break;
    case SP_PH_CONNECTING:
        sp_log(h, STUPID_P2P_LOG_INFO, "connect timed out after %d ms", (int)h->opt.connect_timeout_ms);
        sp_drop_fd(h);
        sp_connect_next(h, "connect timed out");
        break;
    case SP_PH_HANDSHAKE:
    case SP_PH_RESTORE:
        sp_log(h, STUPID_P2P_LOG_WARNING, "the server did not answer the handshake in time");
        sp_connection_lost(h, STUPID_P2P_CAUSE_HEARTBEAT_LOST);
        break;
    case SP_PH_CONNECTED:
        sp_heartbeat_tick(h, now);
        break;
    default:
        h->deadline = 0;
        break;
    }
}

/* ---- the loop ----------------------------------------------------------------------- */

/* The socket is ready (revents): finishes a connect, or reads and
 * writes. */
static void sp_on_socket(struct sp_handle *h, short revents)
{
    if (h->phase == SP_PH_CONNECTING) {
        int err = sp_io_connect_result(h->fd);
        if (err == 0) {
            sp_on_connected(h);
            return;
        }
        sp_log(h, STUPID_P2P_LOG_INFO, "connect to %s port %s: %s", h->host, h->port, strerror(err));
        sp_drop_fd(h);
        sp_connect_next(h, sp_errno_text(err));
        return;
    }
    unsigned epoch = h->epoch;
    if (revents & (POLLIN | POLLERR | POLLHUP))
        sp_on_readable(h);
    if ((revents & POLLOUT) && h->epoch == epoch && h->fd >= 0) {
        pthread_mutex_lock(&h->mu);
        int rc = sp_flush_locked(h);
        pthread_mutex_unlock(&h->mu);
        if (rc != 0)
            sp_connection_lost(h, STUPID_P2P_CAUSE_IO_ERROR);
    }
}

static void *sp_thread_main(void *arg)
{
    struct sp_handle *h = arg;
    char name[16];
    snprintf(name, sizeof name, "stupidp2p-%u", (unsigned)h->id % 100000u);
    (void)pthread_setname_np(pthread_self(), name);

    sp_attempt_start(h);
    while (h->phase != SP_PH_FAILED_INIT) {
        pthread_mutex_lock(&h->mu);
        int closing = h->closing;
        int want_out = sp_buf_used(&h->out) > 0;
        pthread_mutex_unlock(&h->mu);
        if (closing)
            break;
        /* A deadline already due (a zero backoff, say) runs now: the timer
         * may have fired for this very millisecond already. */
        uint64_t due = sp_now_ms();
        if (h->deadline != 0 && due >= h->deadline) {
            sp_on_deadline(h, due);
            continue;
        }
        if (h->direct_deadline != 0 && due >= h->direct_deadline) {
            sp_direct_tick(h, due);
            continue;
        }
        uint64_t wake_at = sp_min_deadline(h->deadline, h->direct_deadline);
        if (wake_at != h->timer_armed) {
            int e = sp_io_timer_arm(h->tfd, wake_at);
            if (e != 0)
                sp_log(h, STUPID_P2P_LOG_ERROR, "timerfd_settime: %s", strerror(e));
            h->timer_armed = wake_at;
        }
        enum { P_WAKE, P_TIMER, P_MORE };
        struct pollfd pfd[4 + SP_DIRECT_POLL_MAX];
        struct sp_dpoll dmap[4 + SP_DIRECT_POLL_MAX];
        nfds_t nfd = P_MORE, sock = 0, resolver = 0;
        pfd[P_WAKE].fd = h->efd;
        pfd[P_WAKE].events = POLLIN;
        pfd[P_TIMER].fd = h->tfd;
        pfd[P_TIMER].events = POLLIN;
        if (h->fd >= 0) {
            sock = nfd++;
            pfd[sock].fd = h->fd;
            pfd[sock].events = h->phase == SP_PH_CONNECTING ? POLLOUT : (short)(POLLIN | (want_out ? POLLOUT : 0));
        }
        if (h->resolving != NULL) {
            resolver = nfd++;
            pfd[resolver].fd = h->resolving->efd;
            pfd[resolver].events = POLLIN;
        }
        nfds_t direct_from = nfd;
        nfd = sp_direct_poll_set(h, pfd, dmap, nfd);
        for (nfds_t i = 0; i < nfd; i++)
            pfd[i].revents = 0;
        if (poll(pfd, nfd, -1) == -1) {
            int e = errno;
            if (e != EINTR) {
                sp_log(h, STUPID_P2P_LOG_ERROR, "poll: %s", strerror(e));
                /* Cannot happen with valid fds; do not spin. */
                struct timespec ts = {0, 10000000L};
                nanosleep(&ts, NULL);
            }
            continue;
        }
        if (pfd[P_WAKE].revents)
            sp_io_drain(h->efd);
        if (pfd[P_TIMER].revents) {
            sp_io_drain(h->tfd);
            h->timer_armed = 0; /* fired: a one-shot timer is disarmed now */
        }
        if (resolver != 0 && pfd[resolver].revents && h->resolving != NULL)
            sp_on_resolver_done(h);
        if (sock != 0 && pfd[sock].revents && pfd[sock].fd == h->fd)
            sp_on_socket(h, pfd[sock].revents);
        for (nfds_t i = direct_from; i < nfd && !sp_muted(h); i++)
            if (pfd[i].revents)
                sp_direct_on_poll(h, &dmap[i], pfd[i].fd, pfd[i].revents);
        if (sp_muted(h))
            continue; /* deinit began (maybe in a callback just now): leave */
        uint64_t now = sp_now_ms();
        if (h->deadline != 0 && now >= h->deadline)
            sp_on_deadline(h, now);
        /* Direct-path timers, and attempts callers asked for (they wake
         * the thread through the eventfd). */
        sp_direct_tick(h, sp_now_ms());
    }

    sp_abandon_resolver(h);
    pthread_mutex_lock(&h->mu);
    sp_io_close(h->fd);
    h->fd = -1;
    if (h->init_done)
        h->state = STUPID_P2P_STATE_CLOSED;
    pthread_mutex_unlock(&h->mu);
    if (h->ai_list) {
        freeaddrinfo(h->ai_list);
        h->ai_list = h->ai_next = NULL;
    }
    return NULL;
}

#endif /* SP_ENGINE_H */
