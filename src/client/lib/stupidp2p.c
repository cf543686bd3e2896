/*
 * stupidp2p.c - the public API of libstupidp2p.a (see include/stupidp2p.h
 * and stupidp2p(3)).
 *
 * Why one translation unit. The library is split by concept into
 * sp_buf.h (byte queue), sp_clock.h (time, jitter), sp_io.h (every
 * syscall), sp_resolve.h (host names resolved off the thread, abandonable),
 * sp_handle.h (a handle's state, the handle table, the request FIFO,
 * subscriptions, the receive queue) and sp_engine.h (the background
 * thread). Each holds static functions and is included here only, so that
 * `nm libstupidp2p.a` defines nothing but stupid_p2p_* (and the shared
 * p2p_* wire codec): a static archive cannot hide an extern symbol from a
 * program that links it, whatever its visibility attribute says.
 *
 * Why C. `cc app.c libstupidp2p.a -lpthread` must link with no C++ runtime.
 *
 * How a command runs (sp_command). The caller, under the handle's mutex,
 * appends its frame to the output queue, appends a node to the FIFO of
 * requests awaiting replies, and writes the queue to the socket itself if
 * it can (the common case: one send(2), no hand-off to the thread). Then it
 * sleeps on its node's own condition variable until the background thread
 * has matched the reply to it, the command timeout passes, or deinit
 * begins. Nothing polls a flag; nothing sleeps for a fixed time.
 */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>

#include "stupidp2p.h"

#include "sp_buf.h"
#include "sp_clock.h"
#include "sp_engine.h"
#include "sp_handle.h"
#include "sp_io.h"
#include "sp_resolve.h"

#define SP_RECV_DATA_MAX 1024 /* messages per stupid_p2p_recv_data, as before */
#define SP_HOST_MAX 1024
#define SP_MAX_FRAME_LIMIT_DEFAULT (16u << 20)
#define SP_MAX_FRAME_LIMIT_MIN (P2P_ID_COMMAND_MAX)  /* a REGISTER of any id */
#define SP_MAX_FRAME_LIMIT_MAX (1u << 30)
#define SP_TAKEOVER_RETRIES_DEFAULT 1

/* Why this thread's last init failed (stupid_p2p_connect_error(0)). */
static _Thread_local const char *sp_init_error;

/* ---- errors -------------------------------------------------------------------- */

const char *stupid_p2p_strerror(int32_t code)
{
    switch (code) {
    case STUPID_P2P_NO_ERROR: return "success";
    case STUPID_P2P_ERROR_COMMOND: return "the server refused the command, or unknown handle";
    case STUPID_P2P_BAD_PARAM: return "bad parameter";
    case STUPID_P2P_MEMORY_ERROR: return "out of memory";
    case STUPID_P2P_RESTARTING: return "not connected: reconnecting";
    case STUPID_P2P_NET_ERROR: return "network error: no connection, or connection lost before the reply";
    case STUPID_P2P_TIMEOUT: return "timed out";
    case STUPID_P2P_NOT_REGISTERED: return "this device has no id: register first";
    case STUPID_P2P_OFFLINE: return "target device offline or unknown";
    case STUPID_P2P_BAD_ARGUMENT: return "the server refused the argument";
    case STUPID_P2P_NOT_AUTHORIZED: return "not authorized";
    case STUPID_P2P_UNSUPPORTED: return "not supported by this server";
    case STUPID_P2P_LIMIT: return "a server limit was reached";
    case STUPID_P2P_CLOSED: return "handle closed (deinit) while waiting";
    case STUPID_P2P_WRONG_THREAD: return "blocking call from a library callback";
    case STUPID_P2P_PROTOCOL_ERROR:
        return "the server broke the protocol (a wrong AUTH signature: not the server it claims)";
    default: return "unknown error";
    }
}

/* ---- options ---------------------------------------------------------------------- */

void stupid_p2p_options_init(stupid_p2p_options_t *o)
{
    if (o == NULL)
        return;
    memset(o, 0, sizeof *o);
    o->struct_size = (uint32_t)sizeof *o;
    o->connect_timeout_ms = 5000;
    o->command_timeout_ms = 3000;
    o->heartbeat_interval_ms = 3000;
    o->heartbeat_max_missed = 3;
    o->backoff_initial_ms = 200;
    o->backoff_max_ms = 30000;
    o->recv_queue_max = 1024;
    o->recv_queue_max_bytes = 16 << 20;
    o->protocol_version = 2;
    o->log_level = STUPID_P2P_LOG_INFO;
    o->max_frame_limit = SP_MAX_FRAME_LIMIT_DEFAULT;
    o->takeover_retries = SP_TAKEOVER_RETRIES_DEFAULT;
    o->direct = STUPID_P2P_DIRECT_OFF;
    o->direct_keepalive_ms = SP_DIRECT_KEEPALIVE_MAX_MS;
}

/* 1 if token[0..len) is a token as stupidp2p(7) defines it: 1 to 256
 * bytes of printable ASCII without spaces. */
static int sp_token_valid(const void *token, size_t len)
{
    if (token == NULL || len < 1 || len > P2P_TOKEN_MAX)
        return 0;
    const uint8_t *t = token;
    for (size_t i = 0; i < len; i++)
        if (t[i] < 0x21 || t[i] > 0x7e)
            return 0;
    return 1;
}

static int sp_options_valid(const stupid_p2p_options_t *o)
{
    if ((o->token != NULL || o->token_len != 0) && !sp_token_valid(o->token, o->token_len))
        return 0;
    return o->connect_timeout_ms > 0 && o->command_timeout_ms > 0 && o->heartbeat_interval_ms > 0 &&
           o->heartbeat_max_missed > 0 && o->backoff_initial_ms > 0 &&
           o->backoff_max_ms >= o->backoff_initial_ms && o->recv_queue_max > 0 &&
           o->recv_queue_max_bytes > 0 && (o->protocol_version == 1 || o->protocol_version == 2) &&
           o->max_frame_limit >= SP_MAX_FRAME_LIMIT_MIN && o->max_frame_limit <= SP_MAX_FRAME_LIMIT_MAX &&
           o->takeover_retries >= 0 &&
           (o->slow_consumer == STUPID_P2P_SLOW_DISCONNECT || o->slow_consumer == STUPID_P2P_SLOW_DROP) &&
           o->direct >= STUPID_P2P_DIRECT_OFF && o->direct <= STUPID_P2P_DIRECT_AUTO &&
           o->direct_keepalive_ms >= SP_DIRECT_KEEPALIVE_MIN_MS && o->direct_keepalive_ms <= SP_DIRECT_KEEPALIVE_MAX_MS;
}

/* ---- handle creation and destruction --------------------------------------------- */

static void sp_handle_free(struct sp_handle *h)
{
    struct sp_pending *p;
    while ((p = sp_pending_pop(h)) != NULL)
        sp_pending_free(p);
    sp_sub_clear(h);
    sp_peers_free(h);
    sp_queue_clear(h);
    sp_buf_free(&h->out);
    sp_buf_free(&h->in);
    if (h->ai_list)
        freeaddrinfo(h->ai_list);
    if (h->resolving)
        sp_resolve_release(h->resolving);
    sp_io_close(h->fd);
    sp_io_close(h->tfd);
    sp_io_close(h->efd);
    explicit_bzero(&h->keys, sizeof h->keys);
    pthread_cond_destroy(&h->direct_cond);
    pthread_cond_destroy(&h->q_cond);
    pthread_cond_destroy(&h->init_cond);
    pthread_condattr_destroy(&h->cattr);
    pthread_mutex_destroy(&h->mu);
    free(h->host);
    free(h);
}

/* The thread's entry: the loop, then, when deinit was called from one of
 * this handle's own callbacks (it could not join itself, and has already
 * taken the handle out of the table), the clean-up deinit would have
 * done. */
static void *sp_thread_entry(void *arg)
{
    struct sp_handle *h = arg;
    sp_thread_main(h);
    if (h->self_destroy) {
        (void)pthread_detach(pthread_self());
        sp_handle_free(h);
    }
    return NULL;
}

/* Allocates a handle with its locks and descriptors. NULL when out of
 * resources (*err says which). */
static struct sp_handle *sp_handle_new(const char *host, int32_t port, const stupid_p2p_options_t *o, int32_t *err)
{
    struct sp_handle *h = calloc(1, sizeof *h);
    if (h == NULL) {
        *err = STUPID_P2P_MEMORY_ERROR;
        return NULL;
    }
    h->fd = h->tfd = h->efd = -1;
    h->opt = *o;
    /* The token becomes keys at once; neither it nor the caller's pointer
     * is kept. */
    if (o->token != NULL) {
        p2p_auth_keys_from_token(o->token, o->token_len, &h->keys);
        h->has_token = 1;
    }
    h->opt.token = NULL;
    h->opt.token_len = 0;
    h->host = strdup(host);
    snprintf(h->port, sizeof h->port, "%d", (int)port);
    int ok = h->host != NULL;
    int mu = ok && pthread_mutex_init(&h->mu, NULL) == 0;
    int ca = mu && pthread_condattr_init(&h->cattr) == 0;
    ok = ca && pthread_condattr_setclock(&h->cattr, CLOCK_MONOTONIC) == 0;
    int c1 = ok && pthread_cond_init(&h->init_cond, &h->cattr) == 0;
    int c2 = c1 && pthread_cond_init(&h->q_cond, &h->cattr) == 0;
    int c3 = c2 && pthread_cond_init(&h->direct_cond, &h->cattr) == 0;
    if (!c3) {
        if (c2)
            pthread_cond_destroy(&h->q_cond);
        if (c1)
            pthread_cond_destroy(&h->init_cond);
        if (ca)
            pthread_condattr_destroy(&h->cattr);
        if (mu)
            pthread_mutex_destroy(&h->mu);
        free(h->host);
        free(h);
        *err = STUPID_P2P_MEMORY_ERROR;
        return NULL;
    }
    h->tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    h->efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (h->tfd == -1 || h->efd == -1) {
        sp_handle_free(h);
        *err = STUPID_P2P_NET_ERROR; /* out of descriptors */
        return NULL;
    }
    h->state = STUPID_P2P_STATE_CONNECTING;
    h->version = 1;
    h->max_frame = sp_default_max_frame(h);
    h->id = sp_reg_new_id();
    h->rng = sp_rand_seed((uint64_t)(uintptr_t)h ^ (uint64_t)h->id);
    return h;
}

int32_t stupid_p2p_init_ex(const char *host, int32_t port, const stupid_p2p_options_t *options)
{
    sp_init_error = NULL;
    if (host == NULL || host[0] == '\0' || strnlen(host, SP_HOST_MAX) >= SP_HOST_MAX || port <= 0 || port > 65535)
        return STUPID_P2P_BAD_PARAM;
    stupid_p2p_options_t o;
    stupid_p2p_options_init(&o);
    if (options != NULL) {
        /* An older caller's smaller struct: take what it has. */
        size_t n = options->struct_size;
        if (n < offsetof(stupid_p2p_options_t, connect_timeout_ms) + sizeof(int32_t))
            return STUPID_P2P_BAD_PARAM;
        memcpy(&o, options, n < sizeof o ? n : sizeof o);
        o.struct_size = (uint32_t)sizeof o;
    }
    if (!sp_options_valid(&o))
        return STUPID_P2P_BAD_PARAM;

    int32_t err = STUPID_P2P_NO_ERROR;
    struct sp_handle *h = sp_handle_new(host, port, &o, &err);
    if (h == NULL)
        return err;
    int rc = pthread_create(&h->thread, NULL, sp_thread_entry, h);
    if (rc != 0) {
        sp_handle_free(h);
        return STUPID_P2P_MEMORY_ERROR;
    }

    /* The first attempt is bounded: resolution, connect_timeout_ms per
     * address, command_timeout_ms per handshake step. */
    pthread_mutex_lock(&h->mu);
    while (!h->init_done)
        pthread_cond_wait(&h->init_cond, &h->mu);
    int32_t result = h->init_result;
    pthread_mutex_unlock(&h->mu);

    if (result == STUPID_P2P_NO_ERROR && sp_reg_add(h) != 0)
        result = STUPID_P2P_MEMORY_ERROR;
    if (result != STUPID_P2P_NO_ERROR) {
        pthread_mutex_lock(&h->mu);
        h->closing = 1;
        sp_init_error = h->connect_error;
        pthread_mutex_unlock(&h->mu);
        sp_io_wake(h->efd);
        pthread_join(h->thread, NULL);
        sp_handle_free(h);
        return result;
    }
    return h->id;
}

int32_t stupid_p2p_init(const uint8_t *server_ip, const int32_t server_port)
{
    return stupid_p2p_init_ex((const char *)server_ip, server_port, NULL);
}

void stupid_p2p_deinit(int32_t fd)
{
    if (fd <= 0)
        return;
    struct sp_handle *h = sp_acquire(fd);
    if (h == NULL)
        return;
    pthread_mutex_lock(&h->mu);
    if (h->closing) {
        pthread_mutex_unlock(&h->mu);
        sp_release(h);
        return;
    }
    /* send_to on a direct path returns once the message is queued: give
     * the peer a moment (command_timeout_ms at most) to acknowledge what
     * is in flight, as a relayed send_to would have waited for the
     * server. Not from a callback: the thread that reads the ACKs is the
     * caller then. */
    if (!pthread_equal(pthread_self(), h->thread)) {
        struct timespec until = sp_deadline_ts(h->opt.command_timeout_ms);
        while (sp_direct_unsettled_locked(h) && !h->closing)
            if (pthread_cond_timedwait(&h->direct_cond, &h->mu, &until) == ETIMEDOUT)
                break;
        if (h->closing) { /* a concurrent deinit won */
            pthread_mutex_unlock(&h->mu);
            sp_release(h);
            return;
        }
    }
    h->closing = 1;
    __atomic_store_n(&h->muted, 1, __ATOMIC_RELEASE);
    for (struct sp_pending *p = h->req_head; p; p = p->next)
        if (p->has_cond)
            pthread_cond_signal(&p->cond);
    pthread_cond_broadcast(&h->q_cond);
    pthread_cond_broadcast(&h->direct_cond);
    pthread_mutex_unlock(&h->mu);
    sp_io_wake(h->efd);

    if (pthread_equal(pthread_self(), h->thread)) {
        /* From a callback: the thread cannot join itself; it stops
         * dispatching when the callback returns (h->muted) and frees the
         * handle. Callers still inside the handle were woken above and
         * leave without the thread; wait for them, so that none of them
         * logs after this returns, and unlist the handle. */
        h->self_destroy = 1;
        sp_reg_remove(h, 1);
        return;
    }
    pthread_join(h->thread, NULL);
    sp_reg_remove(h, 1);
    sp_handle_free(h);
}

int32_t stupid_p2p_set_token(int32_t handle, const void *token, size_t len)
{
    int clear = token == NULL || len == 0;
    if (handle <= 0 || (!clear && !sp_token_valid(token, len)))
        return STUPID_P2P_BAD_PARAM;
    struct p2p_auth_keys keys;
    memset(&keys, 0, sizeof keys);
    if (!clear)
        p2p_auth_keys_from_token(token, len, &keys);
    struct sp_handle *h = sp_acquire(handle);
    if (h == NULL) {
        explicit_bzero(&keys, sizeof keys);
        return STUPID_P2P_ERROR_COMMOND;
    }
    pthread_mutex_lock(&h->mu);
    h->keys = keys; /* the old keys are overwritten */
    h->has_token = !clear;
    pthread_mutex_unlock(&h->mu);
    sp_release(h);
    explicit_bzero(&keys, sizeof keys);
    return STUPID_P2P_NO_ERROR;
}

/* ---- commands -------------------------------------------------------------------- */

struct sp_cmd {
    uint8_t cmd;
    const uint8_t *id;     /* the id argument, or the SEND_TO target */
    size_t id_len;
    const uint8_t *data;
    size_t len;
    int auth;              /* out: a REGISTER that went as AUTH (a token
                              is set), whose status may be
                              SP_STATUS_PROTOCOL                      */
};

/* Runs one command and waits for its reply. Returns NO_ERROR with the
 * reply's status byte in *status (or SP_STATUS_PROTOCOL for an AUTH whose
 * signature was wrong), or a local error: BAD_PARAM, ERROR_COMMOND
 * (unknown handle, or no random nonce for AUTH), WRONG_THREAD, CLOSED,
 * RESTARTING, UNSUPPORTED (SEND_TO, or AUTH, on a v1 session),
 * MEMORY_ERROR, TIMEOUT, NET_ERROR (connection lost). A REGISTER goes as
 * AUTH when the handle has a token: c->auth says so on return. */
static int32_t sp_command(int32_t handle, struct sp_cmd *c, int *status)
{
    c->auth = 0;
    if (handle <= 0)
        return STUPID_P2P_BAD_PARAM;
    struct sp_handle *h = sp_acquire(handle);
    if (h == NULL)
        return STUPID_P2P_ERROR_COMMOND;
    int32_t rc;
    if (pthread_equal(pthread_self(), h->thread)) {
        sp_release(h);
        return STUPID_P2P_WRONG_THREAD;
    }
    uint8_t head[P2P_ID_HEAD_MAX];
    size_t head_len = sp_encode_head(head, c->cmd, c->id, c->id_len);
    uint8_t nonce[P2P_AUTH_NONCE_SIZE];
    int rand_err = c->cmd == P2P_CMD_REGISTER ? sp_io_random(nonce, sizeof nonce) : 0;
    struct timespec until = sp_deadline_ts(h->opt.command_timeout_ms);
    pthread_mutex_lock(&h->mu);
    c->auth = c->cmd == P2P_CMD_REGISTER && h->has_token;
    uint8_t wire_cmd = c->auth ? P2P_CMD_AUTH : c->cmd;
    if (c->auth)
        head_len = 3u + c->id_len + P2P_AUTH_NONCE_SIZE; /* step 1 */
    struct sp_pending *p = NULL;
    if (h->closing) {
        rc = STUPID_P2P_CLOSED;
    } else if (h->state != STUPID_P2P_STATE_CONNECTED) {
        rc = STUPID_P2P_RESTARTING;
    } else if (c->len > h->max_frame || head_len > h->max_frame - c->len) {
        rc = STUPID_P2P_BAD_PARAM;
    } else if (c->cmd == P2P_CMD_SEND_TO && !h->hello_answered) {
        rc = STUPID_P2P_UNSUPPORTED; /* the original would never answer */
    } else if (c->cmd == P2P_CMD_SEND_TO && sp_direct_send_locked(h, c->id, c->id_len, c->data, c->len, &until, &rc)) {
        /* It went on the direct path (rc: as if the server had said 1). */
        *status = P2P_STATUS_OK;
    } else if (c->auth && h->version < 2) {
        rc = STUPID_P2P_UNSUPPORTED; /* AUTH is v2; never REGISTER instead */
    } else if (c->auth && rand_err != 0) {
        sp_log(h, STUPID_P2P_LOG_ERROR, "getrandom: %s", strerror(rand_err));
        rc = STUPID_P2P_ERROR_COMMAND;
    } else if ((p = sp_pending_new(h, wire_cmd, SP_REQ_USER, c->id, c->id_len)) == NULL) {
        rc = STUPID_P2P_MEMORY_ERROR;
    } else if ((c->auth ? sp_queue_auth_start(h, p, nonce)
                        : sp_queue_request(h, p, head, head_len, c->data, c->len)) != 0) {
        p = NULL;
        rc = STUPID_P2P_MEMORY_ERROR;
    } else {
        /* Write it now; leftovers (or an error, which the thread's read
         * will meet) are the thread's business. */
        if (sp_flush_locked(h) != 0 || sp_buf_used(&h->out) > 0)
            sp_io_wake(h->efd);
        while (!p->done && !h->closing) {
            int w = pthread_cond_timedwait(&p->cond, &h->mu, &until);
            if (w == ETIMEDOUT)
                break;
        }
        if (p->done) {
            /* The thread has completed it: it is ours to free. */
            *status = p->status;
            rc = p->status == SP_STATUS_LOST ? STUPID_P2P_NET_ERROR : STUPID_P2P_NO_ERROR;
            sp_pending_free(p);
        } else {
            /* Still in the FIFO: leave it there, keeping replies aligned. */
            p->abandoned = 1;
            rc = h->closing ? STUPID_P2P_CLOSED : STUPID_P2P_TIMEOUT;
        }
    }
    pthread_mutex_unlock(&h->mu);
    sp_release(h);
    return rc;
}

/* The failure of a REGISTER sent as AUTH (a token is set), for either
 * API: the distinct codes stupid_p2p_register documents. */
static int32_t sp_auth_code(int status)
{
    switch (status) {
    case P2P_STATUS_OK: return STUPID_P2P_NO_ERROR;
    case P2P_STATUS_NOT_AUTHORIZED: return STUPID_P2P_NOT_AUTHORIZED;
    case P2P_STATUS_UNSUPPORTED: return STUPID_P2P_UNSUPPORTED;
    case SP_STATUS_PROTOCOL: return STUPID_P2P_PROTOCOL_ERROR;
    default: return STUPID_P2P_ERROR_COMMAND;
    }
}

/* The original calls: every failure the server reports is ERROR_COMMOND
 * (except for a REGISTER sent as AUTH, which only a program that set a
 * token makes: sp_auth_code); no reply in time is NET_ERROR, as it was. */
static int32_t sp_compat(int32_t fd, uint8_t cmd, const uint8_t *id, const uint8_t *data, size_t len)
{
    struct sp_cmd c = {cmd, NULL, 0, data, len, 0};
    if (id != NULL) {
        size_t n = strnlen((const char *)id, P2P_ID_MAX + 1);
        if (n > P2P_ID_MAX)
            return STUPID_P2P_BAD_PARAM;
        c.id = id;
        c.id_len = n;
    }
    int status = 0;
    int32_t rc = sp_command(fd, &c, &status);
    if (rc == STUPID_P2P_TIMEOUT)
        return STUPID_P2P_NET_ERROR;
    if (rc != STUPID_P2P_NO_ERROR)
        return rc;
    if (c.auth)
        return sp_auth_code(status);
    return status == P2P_STATUS_OK ? STUPID_P2P_NO_ERROR : STUPID_P2P_ERROR_COMMOND;
}

int32_t stupid_p2p_register_device(const int32_t fd, const uint8_t *device_id)
{
    if (device_id == NULL)
        return STUPID_P2P_BAD_PARAM;
    return sp_compat(fd, P2P_CMD_REGISTER, device_id, NULL, 0);
}

int32_t stupid_p2p_subscribe_device(const int32_t fd, const uint8_t *device_id)
{
    if (device_id == NULL)
        return STUPID_P2P_BAD_PARAM;
    return sp_compat(fd, P2P_CMD_SUBSCRIBE, device_id, NULL, 0);
}

int32_t stupid_p2p_send_data(const int32_t fd, uint8_t *buf, int32_t length)
{
    if (length < 0 || (buf == NULL && length > 0))
        return STUPID_P2P_BAD_PARAM;
    return sp_compat(fd, P2P_CMD_SEND, NULL, buf, (size_t)length);
}

int32_t stupid_p2p_unregister_device(const int32_t fd)
{
    return sp_compat(fd, P2P_CMD_UNREGISTER, NULL, NULL, 0);
}

int32_t stupid_p2p_unsubscribe_device(const int32_t fd, const uint8_t *device_id)
{
    if (device_id == NULL)
        return STUPID_P2P_BAD_PARAM;
    return sp_compat(fd, P2P_CMD_UNSUBSCRIBE, device_id, NULL, 0);
}

int32_t stupid_p2p_check_device_alive(const int32_t fd, const uint8_t *device_id)
{
    if (device_id == NULL)
        return STUPID_P2P_BAD_PARAM;
    return sp_compat(fd, P2P_CMD_CHECK_ALIVE, device_id, NULL, 0);
}

int32_t stupid_p2p_heart_beat(const int32_t fd)
{
    return sp_compat(fd, P2P_CMD_HEARTBEAT, NULL, NULL, 0);
}

/* ---- the new calls ----------------------------------------------------------------- */

/* A reply's status as the new calls report it. */
static int32_t sp_status_code(int status)
{
    switch (status) {
    case P2P_STATUS_OK: return STUPID_P2P_NO_ERROR;
    case P2P_STATUS_NOT_REGISTERED: return STUPID_P2P_NOT_REGISTERED;
    case P2P_STATUS_OFFLINE: return STUPID_P2P_OFFLINE;
    case P2P_STATUS_BAD_ARGUMENT: return STUPID_P2P_BAD_ARGUMENT;
    case P2P_STATUS_NOT_AUTHORIZED: return STUPID_P2P_NOT_AUTHORIZED;
    case P2P_STATUS_UNSUPPORTED: return STUPID_P2P_UNSUPPORTED;
    case P2P_STATUS_LIMIT: return STUPID_P2P_LIMIT;
    case SP_STATUS_PROTOCOL: return STUPID_P2P_PROTOCOL_ERROR;
    default: return STUPID_P2P_ERROR_COMMAND;
    }
}

static int sp_id_ok(const void *id, size_t len)
{
    return id != NULL && len >= 1 && len <= P2P_ID_MAX;
}

static int32_t sp_new_call(int32_t handle, uint8_t cmd, const void *id, size_t id_len, int *status)
{
    struct sp_cmd c = {cmd, id, id_len, NULL, 0, 0};
    return sp_command(handle, &c, status);
}

/* A command whose argument is one device id, answered by a status: the id
 * is checked locally, the server's status mapped to a return code. */
static int32_t sp_id_command(int32_t handle, uint8_t cmd, const void *id, size_t id_len)
{
    if (!sp_id_ok(id, id_len))
        return STUPID_P2P_BAD_PARAM;
    int status = 0;
    int32_t rc = sp_new_call(handle, cmd, id, id_len, &status);
    return rc != STUPID_P2P_NO_ERROR ? rc : sp_status_code(status);
}

int32_t stupid_p2p_register(int32_t handle, const void *id, size_t id_len)
{
    return sp_id_command(handle, P2P_CMD_REGISTER, id, id_len);
}

int32_t stupid_p2p_unregister(int32_t handle)
{
    int status = 0;
    int32_t rc = sp_new_call(handle, P2P_CMD_UNREGISTER, NULL, 0, &status);
    return rc != STUPID_P2P_NO_ERROR ? rc : sp_status_code(status);
}

int32_t stupid_p2p_subscribe(int32_t handle, const void *id, size_t id_len)
{
    return sp_id_command(handle, P2P_CMD_SUBSCRIBE, id, id_len);
}

int32_t stupid_p2p_unsubscribe(int32_t handle, const void *id, size_t id_len)
{
    return sp_id_command(handle, P2P_CMD_UNSUBSCRIBE, id, id_len);
}

int32_t stupid_p2p_check_alive(int32_t handle, const void *id, size_t id_len)
{
    if (!sp_id_ok(id, id_len))
        return STUPID_P2P_BAD_PARAM;
    int status = 0;
    int32_t rc = sp_new_call(handle, P2P_CMD_CHECK_ALIVE, id, id_len, &status);
    if (rc != STUPID_P2P_NO_ERROR)
        return rc;
    if (status == P2P_STATUS_OK)
        return 1;
    if (status == P2P_STATUS_FAILURE)
        return 0;
    return sp_status_code(status);
}

int32_t stupid_p2p_send(int32_t handle, const void *data, size_t len)
{
    if (data == NULL && len > 0)
        return STUPID_P2P_BAD_PARAM;
    struct sp_cmd c = {P2P_CMD_SEND, NULL, 0, data, len, 0};
    int status = 0;
    int32_t rc = sp_command(handle, &c, &status);
    return rc != STUPID_P2P_NO_ERROR ? rc : sp_status_code(status);
}

int32_t stupid_p2p_send_to(int32_t handle, const void *id, size_t id_len, const void *data, size_t len)
{
    if (!sp_id_ok(id, id_len) || (data == NULL && len > 0))
        return STUPID_P2P_BAD_PARAM;
    struct sp_cmd c = {P2P_CMD_SEND_TO, id, id_len, data, len, 0};
    int status = 0;
    int32_t rc = sp_command(handle, &c, &status);
    return rc != STUPID_P2P_NO_ERROR ? rc : sp_status_code(status);
}

/* ---- direct paths ----------------------------------------------------------------------- */

int32_t stupid_p2p_connect_direct(int32_t handle, const void *id, size_t id_len)
{
    if (handle <= 0 || !sp_id_ok(id, id_len))
        return STUPID_P2P_BAD_PARAM;
    struct sp_handle *h = sp_acquire(handle);
    if (h == NULL)
        return STUPID_P2P_ERROR_COMMOND;
    if (pthread_equal(pthread_self(), h->thread)) {
        sp_release(h);
        return STUPID_P2P_WRONG_THREAD;
    }
    struct timespec until = sp_deadline_ts(h->opt.command_timeout_ms);
    int32_t rc = STUPID_P2P_NO_ERROR;
    struct sp_peer *p = NULL;
    pthread_mutex_lock(&h->mu);
    if (h->closing)
        rc = STUPID_P2P_CLOSED;
    else if (h->state != STUPID_P2P_STATE_CONNECTED)
        rc = STUPID_P2P_RESTARTING;
    else if (h->version < 2)
        rc = STUPID_P2P_UNSUPPORTED;
    else if (!h->has_id)
        rc = STUPID_P2P_NOT_REGISTERED;
    else if (h->reg_len == id_len && memcmp(h->reg_id, id, id_len) == 0)
        rc = STUPID_P2P_BAD_ARGUMENT;
    else if ((p = sp_peer_get(h, id, id_len)) == NULL)
        rc = STUPID_P2P_LIMIT;
    if (rc == STUPID_P2P_NO_ERROR) {
        p->wanted = p->asked = 1;
        if (p->phase == SP_D_IDLE) {
            /* An attempt now, whatever the back-off said. */
            p->retry_at = 0;
            p->offer_done = 0;
            sp_io_wake(h->efd);
            while (!p->offer_done && !h->closing) {
                if (pthread_cond_timedwait(&h->direct_cond, &h->mu, &until) == ETIMEDOUT)
                    break;
            }
            if (h->closing)
                rc = STUPID_P2P_CLOSED;
            else if (!p->offer_done)
                rc = STUPID_P2P_TIMEOUT;
            else if (p->offer_status == SP_STATUS_LOST)
                rc = STUPID_P2P_NET_ERROR;
            else if (p->offer_status != P2P_STATUS_OK)
                rc = sp_status_code(p->offer_status);
        }
    }
    pthread_mutex_unlock(&h->mu);
    sp_release(h);
    return rc;
}

int32_t stupid_p2p_path(int32_t handle, const void *id, size_t id_len)
{
    if (handle <= 0 || !sp_id_ok(id, id_len))
        return STUPID_P2P_BAD_PARAM;
    struct sp_handle *h = sp_acquire(handle);
    if (h == NULL)
        return STUPID_P2P_ERROR_COMMOND;
    pthread_mutex_lock(&h->mu);
    struct sp_peer *p = sp_peer_find(h, id, id_len);
    int32_t path = p != NULL && p->phase == SP_D_DIRECT && !p->broken ? STUPID_P2P_PATH_DIRECT : STUPID_P2P_PATH_RELAY;
    pthread_mutex_unlock(&h->mu);
    sp_release(h);
    return path;
}

/* ---- receiving ----------------------------------------------------------------------- */

recv_data_buf_t *stupid_p2p_recv_data(const int32_t fd)
{
    if (fd <= 0)
        return NULL;
    struct sp_handle *h = sp_acquire(fd);
    if (h == NULL)
        return NULL;
    recv_data_buf_t *buf = calloc(1, sizeof *buf);
    if (buf == NULL) {
        sp_release(h);
        return NULL;
    }
    pthread_mutex_lock(&h->mu);
    size_t n = h->q_len < SP_RECV_DATA_MAX ? h->q_len : SP_RECV_DATA_MAX;
    if (n > 0) {
        /* Allocate everything first: on failure the messages stay queued. */
        recv_data_t **arr = calloc(n, sizeof *arr);
        size_t got = 0;
        while (arr != NULL && got < n && (arr[got] = malloc(sizeof **arr)) != NULL)
            got++;
        if (arr == NULL || got < n) {
            for (size_t i = 0; arr != NULL && i < got; i++)
                free(arr[i]);
            free(arr);
            pthread_mutex_unlock(&h->mu);
            sp_release(h);
            free(buf);
            return NULL;
        }
        for (size_t i = 0; i < n; i++) {
            struct sp_msg *m = sp_queue_pop(h);
            arr[i]->data = m->pub.data;
            arr[i]->length = (int32_t)m->pub.length;
            free(m);
        }
        buf->recv_data = arr;
        buf->num = (int32_t)n;
    }
    pthread_mutex_unlock(&h->mu);
    sp_release(h);
    return buf;
}

void stupid_p2p_free_recv_data_buf(recv_data_buf_t *recv_data_buf)
{
    if (recv_data_buf == NULL)
        return;
    for (int32_t i = 0; i < recv_data_buf->num; i++) {
        if (recv_data_buf->recv_data[i] != NULL) {
            free(recv_data_buf->recv_data[i]->data);
            free(recv_data_buf->recv_data[i]);
        }
    }
    free(recv_data_buf->recv_data);
    free(recv_data_buf);
}

int32_t stupid_p2p_recv(int32_t handle, stupid_p2p_message_t **message, int32_t timeout_ms)
{
    if (message == NULL)
        return STUPID_P2P_BAD_PARAM;
    *message = NULL;
    if (handle <= 0)
        return STUPID_P2P_BAD_PARAM;
    struct sp_handle *h = sp_acquire(handle);
    if (h == NULL)
        return STUPID_P2P_ERROR_COMMOND;
    if (timeout_ms != 0 && pthread_equal(pthread_self(), h->thread)) {
        sp_release(h);
        return STUPID_P2P_WRONG_THREAD;
    }
    struct timespec until = sp_deadline_ts(timeout_ms > 0 ? timeout_ms : 0);
    int32_t rc = STUPID_P2P_TIMEOUT;
    pthread_mutex_lock(&h->mu);
    while (h->q_head == NULL && !h->closing && timeout_ms != 0) {
        int w = timeout_ms < 0 ? pthread_cond_wait(&h->q_cond, &h->mu)
                               : pthread_cond_timedwait(&h->q_cond, &h->mu, &until);
        if (w == ETIMEDOUT)
            break;
    }
    if (h->q_head != NULL) {
        *message = &sp_queue_pop(h)->pub;
        rc = STUPID_P2P_NO_ERROR;
    } else if (h->closing) {
        rc = STUPID_P2P_CLOSED;
    }
    pthread_mutex_unlock(&h->mu);
    sp_release(h);
    return rc;
}

void stupid_p2p_message_free(stupid_p2p_message_t *message)
{
    /* pub is the first member of struct sp_msg. */
    sp_msg_free((struct sp_msg *)(void *)message);
}

/* ---- introspection -------------------------------------------------------------------- */

int32_t stupid_p2p_get_state(int32_t handle)
{
    if (handle <= 0)
        return STUPID_P2P_BAD_PARAM;
    struct sp_handle *h = sp_acquire(handle);
    if (h == NULL)
        return STUPID_P2P_ERROR_COMMOND;
    pthread_mutex_lock(&h->mu);
    int32_t st = h->closing ? STUPID_P2P_STATE_CLOSED : (int32_t)h->state;
    pthread_mutex_unlock(&h->mu);
    sp_release(h);
    return st;
}

/* The size of the 0.2 struct's fields, all that a program built against
 * the 0.2 header has room for (its struct may be padded beyond them). */
#define SP_STATS_0_3_SIZE (offsetof(stupid_p2p_stats_t, last_cause) + sizeof(stupid_p2p_cause_t))

int32_t stupid_p2p_get_stats_ex(int32_t handle, stupid_p2p_stats_t *stats, size_t stats_size)
{
    if (handle <= 0 || stats == NULL || stats_size < SP_STATS_0_3_SIZE)
        return STUPID_P2P_BAD_PARAM;
    struct sp_handle *h = sp_acquire(handle);
    if (h == NULL)
        return STUPID_P2P_ERROR_COMMOND;
    stupid_p2p_stats_t st;
    memset(&st, 0, sizeof st);
    pthread_mutex_lock(&h->mu);
    st.messages_received = h->n_received;
    st.messages_dropped = h->n_dropped;
    st.reconnects = h->n_reconnects;
    st.queue_length = h->q_len;
    st.protocol_version = h->version;
    st.max_frame = h->max_frame;
    st.server_idle_timeout_s = h->idle_timeout_s;
    st.last_cause = h->last_cause;
    st.drop_in_force = h->drop_in_force;
    st.gap_events = h->n_gap_events;
    st.missed_messages = h->n_missed_messages;
    st.missed_bytes = h->n_missed_bytes;
    pthread_mutex_unlock(&h->mu);
    sp_release(h);
    memcpy(stats, &st, stats_size < sizeof st ? stats_size : sizeof st);
    return STUPID_P2P_NO_ERROR;
}

/* The function behind the name, for programs built against the 0.2 header
 * (the header's macro of the same name calls stupid_p2p_get_stats_ex). */
#undef stupid_p2p_get_stats
int32_t stupid_p2p_get_stats(int32_t handle, stupid_p2p_stats_t *stats)
{
    return stupid_p2p_get_stats_ex(handle, stats, SP_STATS_0_3_SIZE);
}

const char *stupid_p2p_connect_error(int32_t handle)
{
    if (handle <= 0)
        return sp_init_error;
    struct sp_handle *h = sp_acquire(handle);
    if (h == NULL)
        return NULL;
    pthread_mutex_lock(&h->mu);
    const char *why = h->connect_error;
    pthread_mutex_unlock(&h->mu);
    sp_release(h);
    return why;
}
