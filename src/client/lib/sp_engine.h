/*
 * sp_engine.h - the background thread of a handle: connecting, negotiating,
 * restoring, reading and dispatching frames, heartbeats and reconnects.
 *
 * One thread per handle sleeps in poll(2) on three descriptors: the socket,
 * a timerfd armed (absolute, CLOCK_MONOTONIC) for the current phase's one
 * deadline, and an eventfd that callers write to when they leave bytes
 * unsent or deinit begins. There is no periodic tick and no sleep: the
 * thread wakes exactly when a byte arrives, a write can proceed, a
 * deadline passes or someone asks.
 *
 * Phases (enum sp_phase):
 *
 *   RESOLVE -> CONNECTING -> HANDSHAKE -> RESTORE -> CONNECTED
 *      ^                                                 |
 *      +------------ BACKOFF <----- (lost, failed) ------+
 *
 * - RESOLVE: getaddrinfo on this thread (never on a caller's), then a
 *   non-blocking connect to each address in turn, each bounded by
 *   connect_timeout_ms.
 * - HANDSHAKE: HELLO (version 2) followed by HEARTBEAT. A server of this
 *   project answers HELLO first; the original server ignores HELLO, so the
 *   heartbeat's reply comes first and the FIFO drops the HELLO request:
 *   that connection speaks v1.
 * - RESTORE: the remembered id is registered again and every remembered
 *   subscription renewed, pipelined; only when the last reply is in does
 *   the state become CONNECTED, so an application never sees a connected
 *   handle that has not got its id back.
 * - CONNECTED: a heartbeat every heartbeat_interval_ms (clamped to a third
 *   of the server's idle timeout); when nothing at all has arrived for
 *   heartbeat_max_missed intervals the connection is declared lost. EOF
 *   and errors are noticed at once by the read.
 * - BACKOFF: exponential backoff with full jitter (sp_backoff_ms); the
 *   envelope resets once a connection has lived for one heartbeat interval,
 *   so that two clients fighting over one id on a v1 server cannot spin.
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

#define SP_READ_CHUNK 65536u
#define SP_READS_PER_WAKE 16

static void sp_connection_lost(struct sp_handle *h, stupid_p2p_cause_t cause);
static void sp_attempt_start(struct sp_handle *h);

static const char *sp_cause_name(stupid_p2p_cause_t c)
{
    switch (c) {
    case STUPID_P2P_CAUSE_NONE: return "none";
    case STUPID_P2P_CAUSE_TAKEN_OVER: return "id taken over by another connection";
    case STUPID_P2P_CAUSE_IDLE_TIMEOUT: return "server idle timeout";
    case STUPID_P2P_CAUSE_SLOW_CONSUMER: return "slow consumer";
    case STUPID_P2P_CAUSE_SERVER_SHUTDOWN: return "server shutting down";
    case STUPID_P2P_CAUSE_PROTOCOL_ERROR: return "protocol error reported by the server";
    case STUPID_P2P_CAUSE_NOT_AUTHORIZED: return "not authorized";
    case STUPID_P2P_CAUSE_LIMIT: return "server limit reached";
    case STUPID_P2P_CAUSE_EOF: return "connection closed by the server";
    case STUPID_P2P_CAUSE_IO_ERROR: return "socket error";
    case STUPID_P2P_CAUSE_HEARTBEAT_LOST: return "heartbeats unanswered";
    case STUPID_P2P_CAUSE_BAD_FRAME: return "malformed or unexpected frame from the server";
    case STUPID_P2P_CAUSE_CONNECT_FAILED: return "connection attempt failed";
    case STUPID_P2P_CAUSE_DEINIT: return "deinit";
    }
    return "unknown";
}

static uint32_t sp_be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* ---- output (mu held) ------------------------------------------------------ */

/* Appends one frame: cmd, then (with prefix) a one-byte id length, the id,
 * then data. Returns 0 or -1 (out of memory, nothing appended). */
static int sp_out_frame(struct sp_handle *h, uint8_t cmd, int prefix, const uint8_t *id,
                        size_t id_len, const uint8_t *data, size_t len)
{
    size_t plen = 1 + (prefix ? 1u : 0u) + id_len + len;
    if (plen > UINT32_MAX || sp_buf_reserve(&h->out, P2P_FRAME_HEADER_SIZE + plen) != 0)
        return -1;
    uint8_t hdr[6];
    size_t n = P2P_FRAME_HEADER_SIZE;
    p2p_frame_header_encode(hdr, (uint32_t)plen);
    hdr[n++] = cmd;
    if (prefix)
        hdr[n++] = (uint8_t)id_len;
    (void)sp_buf_append(&h->out, hdr, n);
    (void)sp_buf_append(&h->out, id, id_len);
    (void)sp_buf_append(&h->out, data, len);
    return 0;
}

/* Writes what the kernel takes. Returns 0 (bytes may remain: the thread
 * waits for POLLOUT) or -1 on a socket error (the thread's read sees it
 * too and ends the connection). */
static int sp_flush_locked(struct sp_handle *h)
{
    while (h->fd >= 0 && sp_buf_used(&h->out) > 0) {
        size_t n = 0;
        int err = 0;
        enum sp_io_result r = sp_io_send(h->fd, sp_buf_head(&h->out), sp_buf_used(&h->out), &n, &err);
        if (r == SP_IO_OK) {
            sp_buf_consume(&h->out, n);
            continue;
        }
        if (r == SP_IO_AGAIN)
            return 0;
        sp_log(h, STUPID_P2P_LOG_INFO, "send: %s", strerror(err));
        return -1;
    }
    sp_buf_trim(&h->out, 1u << 20);
    return 0;
}

/* Queues an internal request (no waiter): the frame is cmd, id, data; the
 * node remembers id. Returns 0 or -1. */
static int sp_internal_request(struct sp_handle *h, uint8_t cmd, uint8_t kind, const uint8_t *id,
                               size_t id_len, const uint8_t *data, size_t len)
{
    struct sp_pending *p = sp_pending_new(h, cmd, kind, id, id_len);
    if (p == NULL)
        return -1;
    if (sp_out_frame(h, cmd, 0, id, id_len, data, len) != 0) {
        sp_pending_free(p);
        return -1;
    }
    sp_pending_push(h, p);
    return 0;
}

/* ---- state changes ---------------------------------------------------------- */

static void sp_notify_state(struct sp_handle *h, stupid_p2p_state_t st, stupid_p2p_cause_t cause)
{
    if (h->opt.on_state)
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
    uint64_t delay = sp_backoff_ms(&h->rng, h->attempt, (uint64_t)h->opt.backoff_initial_ms,
                                   (uint64_t)h->opt.backoff_max_ms);
    if (h->attempt < 64)
        h->attempt++;
    h->phase = SP_PH_BACKOFF;
    h->deadline = now + delay;
    sp_log(h, STUPID_P2P_LOG_INFO, "reconnecting in %llu ms", (unsigned long long)delay);
}

/* An attempt (resolve + every address, or a handshake) failed. */
static void sp_attempt_failed(struct sp_handle *h, int32_t init_err)
{
    if (h->ai_list) {
        freeaddrinfo(h->ai_list);
        h->ai_list = h->ai_next = NULL;
    }
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
    int first = !h->init_done;
    if (first) {
        h->init_done = 1;
        h->init_result = STUPID_P2P_NO_ERROR;
        pthread_cond_broadcast(&h->init_cond);
    } else {
        h->n_reconnects++;
    }
    int version = h->version;
    pthread_mutex_unlock(&h->mu);
    h->hb_interval = hb;
    h->phase = SP_PH_CONNECTED;
    h->connected_since = now;
    h->hb_outstanding = 0;
    h->deadline = now + hb;
    sp_log(h, STUPID_P2P_LOG_INFO, "connected to %s port %s (protocol v%d)", h->host, h->port, version);
    if (!first)
        sp_notify_state(h, STUPID_P2P_STATE_CONNECTED, STUPID_P2P_CAUSE_NONE);
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
    h->last_rx = now;
    sp_buf_clear(&h->in);
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    h->hello_answered = 0;
    h->version = 1;
    h->max_frame = P2P_DEFAULT_MAX_FRAME;
    h->idle_timeout_s = 0;
    if (h->opt.protocol_version >= 2) {
        const uint8_t hello[2] = {P2P_VERSION_2, 0};
        rc = sp_internal_request(h, P2P_CMD_HELLO, SP_REQ_HELLO, NULL, 0, hello, sizeof hello);
    }
    if (rc == 0)
        rc = sp_internal_request(h, P2P_CMD_HEARTBEAT, SP_REQ_PROBE, NULL, 0, NULL, 0);
    if (rc == 0)
        rc = sp_flush_locked(h);
    pthread_mutex_unlock(&h->mu);
    if (rc != 0)
        sp_connection_lost(h, STUPID_P2P_CAUSE_IO_ERROR);
}

/* The handshake is over: give the server back our id and subscriptions. */
static void sp_begin_restore(struct sp_handle *h)
{
    int rc = 0;
    unsigned n = 0;
    h->phase = SP_PH_RESTORE;
    h->deadline = sp_now_ms() + (uint64_t)h->opt.command_timeout_ms;
    pthread_mutex_lock(&h->mu);
    if (h->has_id) {
        rc = sp_internal_request(h, P2P_CMD_REGISTER, SP_REQ_RESTORE, h->reg_id, h->reg_len, NULL, 0);
        n += rc == 0;
    }
    for (struct sp_sub *s = h->subs; s && rc == 0; s = s->next) {
        s->confirmed = 0;
        rc = sp_internal_request(h, P2P_CMD_SUBSCRIBE, SP_REQ_RESTORE, s->id, s->len, NULL, 0);
        n += rc == 0;
    }
    if (rc == 0)
        rc = sp_flush_locked(h);
    pthread_mutex_unlock(&h->mu);
    h->restore_outstanding = n;
    if (rc != 0)
        sp_connection_lost(h, STUPID_P2P_CAUSE_IO_ERROR);
    else if (n == 0)
        sp_become_connected(h);
    else
        sp_log(h, STUPID_P2P_LOG_DEBUG, "restoring the id and %u subscription(s)", n - (h->has_id ? 1u : 0u));
}

/* Ends the current connection (HANDSHAKE, RESTORE or CONNECTED). */
static void sp_connection_lost(struct sp_handle *h, stupid_p2p_cause_t cause)
{
    pthread_mutex_lock(&h->mu);
    sp_io_close(h->fd);
    h->fd = -1;
    sp_buf_clear(&h->out);
    sp_pending_fail_all(h);
    h->state = STUPID_P2P_STATE_DISCONNECTED;
    h->last_cause = cause;
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
    sp_notify_state(h, STUPID_P2P_STATE_DISCONNECTED, cause);
    sp_schedule_backoff(h);
}

/* ---- connecting --------------------------------------------------------------- */

static void sp_connect_next(struct sp_handle *h)
{
    while (h->ai_next != NULL) {
        struct addrinfo *ai = h->ai_next;
        h->ai_next = ai->ai_next;
        int err = 0;
        int fd = sp_io_socket(ai->ai_family, &err);
        if (fd == -1) {
            sp_log(h, STUPID_P2P_LOG_WARNING, "socket: %s", strerror(err));
            continue;
        }
        enum sp_io_result r = sp_io_connect(fd, ai->ai_addr, ai->ai_addrlen, &err);
        if (r == SP_IO_ERROR) {
            sp_log(h, STUPID_P2P_LOG_INFO, "connect: %s", strerror(err));
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
    sp_attempt_failed(h, STUPID_P2P_NET_ERROR);
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
    struct addrinfo hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_protocol = IPPROTO_TCP;
    hints.ai_flags = AI_NUMERICSERV;
    struct addrinfo *list = NULL;
    int rc = getaddrinfo(h->host, h->port, &hints, &list);
    if (rc != 0) {
        sp_log(h, STUPID_P2P_LOG_WARNING, "cannot resolve %s: %s", h->host,
               rc == EAI_SYSTEM ? strerror(errno) : gai_strerror(rc));
        int32_t err = (rc == EAI_NONAME || rc == EAI_SERVICE || rc == EAI_FAMILY) ? STUPID_P2P_BAD_PARAM
                                                                                  : STUPID_P2P_NET_ERROR;
        sp_attempt_failed(h, err);
        return;
    }
    h->ai_list = h->ai_next = list;
    sp_connect_next(h);
}

/* ---- incoming frames -------------------------------------------------------------- */

/* A message for the application: to the callback, or to the bounded queue.
 * data[len] is writable (the input buffer keeps a spare byte) and is
 * NUL-terminated for the callback's duration. */
static void sp_deliver(struct sp_handle *h, const uint8_t *sender, size_t slen, uint8_t *data, size_t len)
{
    if (h->opt.on_message) {
        uint8_t id[P2P_ID_MAX + 1];
        if (slen > 0)
            memcpy(id, sender, slen);
        id[slen] = 0;
        uint8_t saved = data[len];
        data[len] = 0;
        pthread_mutex_lock(&h->mu);
        h->n_received++;
        pthread_mutex_unlock(&h->mu);
        h->opt.on_message(h->id, slen ? id : NULL, slen, data, len, h->opt.user_data);
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

/* Updates the remembered id and subscriptions from a reply (mu held). */
static void sp_apply_reply(struct sp_handle *h, const struct sp_pending *req, uint8_t status)
{
    if (status != P2P_STATUS_OK) {
        if (req->cmd == P2P_CMD_SUBSCRIBE && req->kind != SP_REQ_USER) {
            struct sp_sub *s = sp_sub_find(h, req->id, req->id_len);
            if (s == NULL)
                return;
            if (h->version >= 2) {
                /* v2 accepts offline ids: a refusal is final. */
                sp_log(h, STUPID_P2P_LOG_WARNING, "server refused to renew a subscription (reason %u): dropped", status);
                sp_sub_remove(h, req->id, req->id_len);
            } else {
                s->confirmed = 0; /* v1: the device is offline; retried */
            }
        }
        return;
    }
    switch (req->cmd) {
    case P2P_CMD_REGISTER:
        h->has_id = 1;
        memcpy(h->reg_id, req->id, req->id_len);
        h->reg_len = req->id_len;
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

/* A reply [cmd|0x80, status, ...]. Returns 0, or -1 when the connection
 * was ended. */
static int sp_on_reply(struct sp_handle *h, const uint8_t *p, uint32_t n)
{
    if (n < 2) {
        sp_connection_lost(h, STUPID_P2P_CAUSE_BAD_FRAME);
        return -1;
    }
    uint8_t cmd = (uint8_t)(p[0] & 0x7fu);
    uint8_t status = p[1];
    pthread_mutex_lock(&h->mu);
    struct sp_pending *req;
    for (;;) {
        req = h->req_head;
        if (req != NULL && req->cmd == cmd)
            break;
        if (req != NULL && req->kind == SP_REQ_HELLO) {
            /* The original server ignores HELLO: this is its heartbeat
             * reply, and the connection speaks v1. */
            sp_pending_free(sp_pending_pop(h));
            continue;
        }
        pthread_mutex_unlock(&h->mu);
        sp_log(h, STUPID_P2P_LOG_ERROR, "reply %02x %02x matches no request (expected %02x)",
               p[0], status, req ? req->cmd | P2P_REPLY_BIT : 0);
        sp_connection_lost(h, STUPID_P2P_CAUSE_BAD_FRAME);
        return -1;
    }
    (void)sp_pending_pop(h);
    uint8_t kind = req->kind;
    if (kind == SP_REQ_HELLO) {
        h->hello_answered = 1;
        if (status == P2P_STATUS_OK && n >= P2P_HELLO_REPLY_SIZE) {
            h->version = p[2] >= P2P_VERSION_2 ? 2 : 1;
            uint32_t mf = sp_be32(p + 3);
            h->max_frame = mf >= 2 ? mf : P2P_DEFAULT_MAX_FRAME;
            h->idle_timeout_s = sp_be32(p + 7);
        }
    } else if (kind == SP_REQ_HEARTBEAT) {
        h->hb_outstanding = 0;
    } else if (kind != SP_REQ_PROBE) {
        sp_apply_reply(h, req, status);
    }
    if (kind == SP_REQ_USER)
        sp_pending_complete(req, status);
    else
        sp_pending_free(req);
    pthread_mutex_unlock(&h->mu);

    if (kind == SP_REQ_PROBE && h->phase == SP_PH_HANDSHAKE) {
        sp_begin_restore(h);
    } else if (kind == SP_REQ_RESTORE && h->phase == SP_PH_RESTORE) {
        if (--h->restore_outstanding == 0)
            sp_become_connected(h);
    }
    return 0;
}

/* One frame from the server. payload[n] is writable (see sp_deliver).
 * Returns 0, or -1 when the connection was ended. */
static int sp_dispatch(struct sp_handle *h, uint8_t *p, uint32_t n)
{
    if (n == 0)
        return 0;
    if (p[0] & P2P_REPLY_BIT)
        return sp_on_reply(h, p, n);
    if (h->phase != SP_PH_CONNECTED && h->phase != SP_PH_RESTORE && p[0] != P2P_EVT_BYE) {
        /* Deliveries can arrive during restore (subscriptions come back
         * one by one); before that there is nothing to deliver. */
        sp_log(h, STUPID_P2P_LOG_DEBUG, "frame %02x ignored during the handshake", p[0]);
        return 0;
    }
    switch (p[0]) {
    case P2P_CMD_SEND: /* v1 delivery: no sender id */
        sp_deliver(h, NULL, 0, p + 1, n - 1u);
        return 0;
    case P2P_EVT_DELIVER: {
        if (n < 2 || p[1] == 0 || 2u + p[1] > n)
            break;
        size_t slen = p[1];
        sp_deliver(h, p + 2, slen, p + 2 + slen, n - 2u - slen);
        return 0;
    }
    case P2P_EVT_PRESENCE: {
        if (n < 3 || p[2] == 0 || 3u + p[2] > n)
            break;
        if (h->opt.on_presence) {
            uint8_t id[P2P_ID_MAX + 1];
            memcpy(id, p + 3, p[2]);
            id[p[2]] = 0;
            h->opt.on_presence(h->id, id, p[2], p[1] == P2P_PRESENCE_ONLINE, h->opt.user_data);
        }
        return 0;
    }
    case P2P_EVT_BYE: {
        if (n < 2)
            break;
        int tlen = (int)(n - 2u > P2P_BYE_TEXT_MAX ? P2P_BYE_TEXT_MAX : n - 2u);
        sp_log(h, STUPID_P2P_LOG_WARNING, "server says goodbye (reason %u): %.*s", p[1], tlen, (const char *)p + 2);
        stupid_p2p_cause_t cause = (p[1] >= 1 && p[1] <= 7) ? (stupid_p2p_cause_t)p[1] : STUPID_P2P_CAUSE_EOF;
        if (cause == STUPID_P2P_CAUSE_TAKEN_OVER) {
            /* Another connection holds our id now: taking it back on
             * reconnect would make two clients fight forever. */
            pthread_mutex_lock(&h->mu);
            h->has_id = 0;
            pthread_mutex_unlock(&h->mu);
        }
        sp_connection_lost(h, cause);
        return -1;
    }
    default:
        sp_log(h, STUPID_P2P_LOG_DEBUG, "unknown frame %02x ignored", p[0]);
        return 0;
    }
    sp_log(h, STUPID_P2P_LOG_ERROR, "malformed frame %02x (%u bytes)", p[0], n);
    sp_connection_lost(h, STUPID_P2P_CAUSE_BAD_FRAME);
    return -1;
}

/* Reads what the socket has (bounded per wake) and dispatches every whole
 * frame. */
static void sp_on_readable(struct sp_handle *h)
{
    uint32_t max_in = (h->max_frame > P2P_DEFAULT_MAX_FRAME ? h->max_frame : P2P_DEFAULT_MAX_FRAME) +
                      P2P_SERVER_FRAME_SLACK;
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
        h->last_rx = sp_now_ms();
        for (;;) {
            struct p2p_frame f;
            enum p2p_frame_result fr = p2p_frame_parse(sp_buf_head(&h->in), sp_buf_used(&h->in), max_in, &f);
            if (fr == P2P_FRAME_TOO_LONG) {
                sp_log(h, STUPID_P2P_LOG_ERROR, "frame of %u bytes from the server exceeds %u", f.length, max_in);
                sp_connection_lost(h, STUPID_P2P_CAUSE_BAD_FRAME);
                return;
            }
            if (fr == P2P_FRAME_INCOMPLETE)
                break;
            uint8_t *payload = h->in.data + h->in.off + P2P_FRAME_HEADER_SIZE;
            if (sp_dispatch(h, payload, f.length) != 0)
                return;
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
    if (now - h->last_rx >= h->hb_interval * (uint64_t)h->opt.heartbeat_max_missed) {
        sp_connection_lost(h, STUPID_P2P_CAUSE_HEARTBEAT_LOST);
        return;
    }
    int rc = 0;
    pthread_mutex_lock(&h->mu);
    if (!h->hb_outstanding) {
        /* v1 refuses subscriptions to offline devices: ask again, once per
         * interval, for those the server refused after a reconnect. */
        for (struct sp_sub *s = h->subs; s && rc == 0; s = s->next)
            if (!s->confirmed)
                rc = sp_internal_request(h, P2P_CMD_SUBSCRIBE, SP_REQ_RETRY_SUB, s->id, s->len, NULL, 0);
        if (rc == 0)
            rc = sp_internal_request(h, P2P_CMD_HEARTBEAT, SP_REQ_HEARTBEAT, NULL, 0, NULL, 0);
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
    case SP_PH_CONNECTING:
        sp_log(h, STUPID_P2P_LOG_INFO, "connect timed out after %d ms", (int)h->opt.connect_timeout_ms);
        sp_drop_fd(h);
        sp_connect_next(h);
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
        if (h->deadline != h->timer_armed) {
            int e = sp_io_timer_arm(h->tfd, h->deadline);
            if (e != 0)
                sp_log(h, STUPID_P2P_LOG_ERROR, "timerfd_settime: %s", strerror(e));
            h->timer_armed = h->deadline;
        }
        struct pollfd pfd[3];
        nfds_t nfd = 2;
        pfd[0].fd = h->efd;
        pfd[0].events = POLLIN;
        pfd[1].fd = h->tfd;
        pfd[1].events = POLLIN;
        if (h->fd >= 0) {
            pfd[2].fd = h->fd;
            pfd[2].events = h->phase == SP_PH_CONNECTING ? POLLOUT : (short)(POLLIN | (want_out ? POLLOUT : 0));
            nfd = 3;
        }
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
        if (pfd[0].revents)
            sp_io_drain(h->efd);
        if (pfd[1].revents) {
            sp_io_drain(h->tfd);
            h->timer_armed = 0; /* fired: a one-shot timer is disarmed now */
        }
        if (nfd == 3 && pfd[2].revents && pfd[2].fd == h->fd) {
            short re = pfd[2].revents;
            if (h->phase == SP_PH_CONNECTING) {
                int err = sp_io_connect_result(h->fd);
                if (err == 0) {
                    sp_on_connected(h);
                } else {
                    sp_log(h, STUPID_P2P_LOG_INFO, "connect to %s port %s: %s", h->host, h->port, strerror(err));
                    sp_drop_fd(h);
                    sp_connect_next(h);
                }
            } else {
                if (re & (POLLIN | POLLERR | POLLHUP))
                    sp_on_readable(h);
                if ((re & POLLOUT) && h->fd >= 0) {
                    pthread_mutex_lock(&h->mu);
                    int rc = sp_flush_locked(h);
                    pthread_mutex_unlock(&h->mu);
                    if (rc != 0)
                        sp_connection_lost(h, STUPID_P2P_CAUSE_IO_ERROR);
                }
            }
        }
        uint64_t now = sp_now_ms();
        if (h->deadline != 0 && now >= h->deadline)
            sp_on_deadline(h, now);
    }

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
