/*
 * sp_handle.h - the state behind one handle, and the table of open handles.
 *
 * Locking. A handle has one mutex, `mu`, guarding everything shared between
 * the callers and the background thread: the output queue, the FIFO of
 * requests awaiting replies, the remembered id and subscriptions, the
 * receive queue, the state and the counters. Fields marked "thread only"
 * belong to the background thread and are touched by nobody else (the
 * socket fd is written by it under `mu` and read by callers under `mu`, so
 * that a caller never writes to a closed descriptor). User callbacks run
 * without `mu` held, except the log callback (documented in stupidp2p.h).
 *
 * Lifetime. The handle table (sp_reg_*) maps the public int32_t to the
 * struct and counts the callers inside each handle (refs). deinit unlists
 * the handle, wakes every waiter, joins the thread and waits for refs to
 * drop to zero before freeing: a call racing with deinit gets CLOSED or
 * ERROR_COMMOND, never freed memory.
 *
 * Replies. The server answers every request in order, so requests wait in
 * a FIFO (sp_pending), each with its own condition variable: the reply at
 * the head of the stream belongs to the request at the head of the FIFO.
 * A caller that stops waiting (timeout, deinit) leaves its node in place,
 * marked abandoned, to keep the FIFO aligned; the thread frees it when its
 * reply arrives or the connection ends.
 *
 * See sp_buf.h for why this is a header of static functions.
 */
#ifndef SP_HANDLE_H
#define SP_HANDLE_H

#include <netdb.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth_proof.h"
#include "codec.h"
#include "protocol.h"
#include "stupidp2p.h"

#include "sp_buf.h"
#include "sp_clock.h"
#include "sp_resolve.h"

/* A request's status once complete: a wire status byte (0..255), or: */
#define SP_STATUS_LOST (-1)     /* the connection ended before the reply */
#define SP_STATUS_PROTOCOL (-2) /* AUTH: the server's signature (or the step
                                   its success reply named) was wrong      */

enum sp_req_kind {
    SP_REQ_USER = 0,       /* a caller waits on cond                       */
    SP_REQ_HELLO = 1,      /* handshake: the HELLO probe                   */
    SP_REQ_PROBE = 2,      /* handshake: the HEARTBEAT after HELLO         */
    SP_REQ_RESTORE = 3,    /* re-register / re-subscribe after reconnect   */
    SP_REQ_HEARTBEAT = 4,  /* periodic heartbeat                           */
    SP_REQ_RETRY_SUB = 5,  /* v1: retry of a subscription the server refused */
    SP_REQ_ID_PROBE = 6,   /* v1 restore: is our id held by someone else?  */
    SP_REQ_DIRECT = 7      /* a direct-path request, or a re-sent message
                              (sp_direct.h); the id is the peer's          */
};

/* What an AUTH exchange needs between its two steps. The keys are a copy
 * taken at step 1, so that stupid_p2p_set_token meanwhile cannot make the
 * proof and the signature check disagree; wiped when the node is freed. */
struct sp_auth {
    struct p2p_auth_keys keys;
    uint8_t client_nonce[P2P_AUTH_NONCE_SIZE];
    uint8_t server_nonce[P2P_AUTH_NONCE_SIZE];
};

struct sp_pending {
    struct sp_pending *next;
    uint8_t cmd;           /* request command byte; the reply is cmd|0x80 */
    uint8_t kind;          /* enum sp_req_kind                            */
    uint8_t id_len;        /* REGISTER/SUBSCRIBE/UNSUBSCRIBE/AUTH: the id, */
    uint8_t id[P2P_ID_MAX];/*   to update the remembered state on success */
    uint8_t step;          /* AUTH: the step whose reply is awaited       */
    uint8_t hello_flags;   /* HELLO: the flags asked for                  */
    struct sp_auth *auth;  /* AUTH: allocated with step 1                 */
    uint64_t sent_ms;      /* when it was queued (liveness, see engine)   */
    int done;              /* status is set                               */
    int status;
    int abandoned;         /* the waiter left: the thread frees the node  */
    int has_cond;
    pthread_cond_t cond;
};

struct sp_sub {
    struct sp_sub *next;
    int confirmed;         /* the server accepted it on this connection   */
    uint8_t len;
    uint8_t id[P2P_ID_MAX];
};

/* A queued message; pub is what stupid_p2p_recv hands out. */
struct sp_msg {
    stupid_p2p_message_t pub;  /* first: message_free casts back */
    struct sp_msg *next;
};

enum sp_phase {
    SP_PH_RESOLVE = 0,     /* resolving the host name (or about to)       */
    SP_PH_CONNECTING = 1,  /* non-blocking connect in progress            */
    SP_PH_HANDSHAKE = 2,   /* HELLO + HEARTBEAT sent                      */
    SP_PH_RESTORE = 3,     /* re-registering and re-subscribing           */
    SP_PH_CONNECTED = 4,
    SP_PH_BACKOFF = 5,     /* waiting before the next attempt             */
    SP_PH_FAILED_INIT = 6  /* the first attempt failed: the thread ends   */
};

struct sp_peer; /* sp_direct.h */

struct sp_handle {
    int32_t id;
    stupid_p2p_options_t opt;
    char *host;
    char port[8];

    pthread_mutex_t mu;
    pthread_condattr_t cattr;  /* CLOCK_MONOTONIC, for every cond below */

    /* ---- guarded by mu ---- */
    int closing;               /* deinit has begun                       */
    int init_done;             /* the first attempt has an outcome       */
    int32_t init_result;
    pthread_cond_t init_cond;
    stupid_p2p_state_t state;
    stupid_p2p_cause_t last_cause;
    int fd;                    /* the socket, -1 when none               */
    struct sp_buf out;         /* frames not yet written                 */
    struct sp_pending *req_head, *req_tail;
    int version;               /* 1 or 2                                 */
    int hello_answered;        /* the server knows HELLO (not original)  */
    uint32_t max_frame;        /* largest payload we send: the server's
                                  grant, clamped to opt.max_frame_limit   */
    uint32_t idle_timeout_s;
    int drop_in_force;         /* the server granted DROP on this
                                  connection (see sp_on_reply)           */
    const char *connect_error; /* static text: why the last attempt failed,
                                  NULL when it succeeded                 */
    int has_id;
    uint8_t reg_len;
    uint8_t reg_id[P2P_ID_MAX];
    int has_token;             /* registering means AUTH, with keys       */
    struct p2p_auth_keys keys; /* derived from the token (never the token
                                  itself); wiped when replaced or freed  */
    struct sp_sub *subs;
    struct sp_msg *q_head, *q_tail;
    uint32_t q_len;
    size_t q_bytes;
    int q_overflowing;
    uint64_t q_dropped_episode;
    pthread_cond_t q_cond;
    uint64_t n_received, n_dropped, n_reconnects;
    uint64_t n_gap_events, n_missed_messages, n_missed_bytes; /* saturating */
    struct sp_peer *peers;     /* direct-path state, one per peer (sp_direct.h) */
    unsigned n_peers;
    pthread_cond_t direct_cond; /* a peer's offer was answered, or room
                                  freed in a direct path's window         */

    /* ---- atomic (__atomic builtins): read by any thread ---- */
    int muted;                 /* deinit has begun: no callback runs any
                                  more (see stupid_p2p_deinit)          */

    /* ---- thread only ---- */
    pthread_t thread;
    int self_destroy;          /* deinit was called on the thread itself */
    int tfd, efd;
    uint64_t timer_armed;
    enum sp_phase phase;
    uint64_t deadline;         /* of the current phase (ms, monotonic)   */
    struct sp_resolve *resolving; /* a host name lookup in progress      */
    struct addrinfo *ai_list, *ai_next;
    struct sp_buf in;
    uint32_t max_in;           /* largest payload accepted from the server */
    unsigned epoch;            /* connections ended so far (see engine)   */
    uint64_t last_alive;       /* send time of the newest request answered */
    uint64_t cb_ms;            /* ms spent in user callbacks since then   */
    uint64_t connected_since;
    uint64_t hb_interval;
    int hb_outstanding;
    unsigned restore_outstanding;
    unsigned attempt;          /* failed attempts since the last good one */
    uint64_t rng;
    /* Takeovers (see sp_takeover in the engine). */
    unsigned takeovers;        /* in a row, since the id was last settled */
    uint64_t id_since;         /* when the id was last (re)gained         */
    int probe_id;              /* v1: ask whether the id is held before
                                  restoring it                           */
    /* The id was given up (after takeovers: ID_LOST; its AUTH failed after
     * a reconnect, or a BYE 6 withdrew it: NOT_AUTHORIZED): the cause the
     * next CONNECTED reports, else NONE. */
    stupid_p2p_cause_t id_lost_cause;
    uint64_t direct_deadline;  /* the earliest direct-path timer, 0: none */
    unsigned conn_auth_refusals; /* AUTH step 2s refused (8c 05) on this
                                  connection: at P2P_AUTH_MAX_FAILURES the
                                  server's BYE 6 is its counter, not a
                                  withdrawal of our id                   */
};

/* ---- the table of open handles ------------------------------------------ */

struct sp_slot {
    struct sp_handle *h;
    unsigned refs;
};

static pthread_mutex_t sp_reg_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sp_reg_cond = PTHREAD_COND_INITIALIZER;
static struct sp_slot *sp_reg;
static size_t sp_reg_len, sp_reg_cap;
static int32_t sp_reg_next_id;

/* The next handle number: positive, never reused while the process lives
 * (it would take 2^31 inits to wrap). */
static int32_t sp_reg_new_id(void)
{
    pthread_mutex_lock(&sp_reg_mu);
    if (sp_reg_next_id == INT32_MAX)
        sp_reg_next_id = 0;
    int32_t id = ++sp_reg_next_id;
    pthread_mutex_unlock(&sp_reg_mu);
    return id;
}

static int sp_reg_add(struct sp_handle *h)
{
    int rc = 0;
    pthread_mutex_lock(&sp_reg_mu);
    if (sp_reg_len == sp_reg_cap) {
        size_t cap = sp_reg_cap ? sp_reg_cap * 2 : 8;
        struct sp_slot *p = realloc(sp_reg, cap * sizeof *p);
        if (p == NULL) {
            rc = -1;
            goto out;
        }
        sp_reg = p;
        sp_reg_cap = cap;
    }
    sp_reg[sp_reg_len].h = h;
    sp_reg[sp_reg_len].refs = 0;
    sp_reg_len++;
out:
    pthread_mutex_unlock(&sp_reg_mu);
    return rc;
}

/* Finds a handle and counts the caller in; pair with sp_release. */
static struct sp_handle *sp_acquire(int32_t id)
{
    struct sp_handle *h = NULL;
    pthread_mutex_lock(&sp_reg_mu);
    for (size_t i = 0; i < sp_reg_len; i++) {
        if (sp_reg[i].h->id == id) {
            sp_reg[i].refs++;
            h = sp_reg[i].h;
            break;
        }
    }
    pthread_mutex_unlock(&sp_reg_mu);
    return h;
}

/* Slots stay in the table (refs counting) until deinit has waited for them;
 * see sp_reg_remove. A slot being removed has h->closing set, and callers
 * check that under h->mu. */
static void sp_release(struct sp_handle *h)
{
    pthread_mutex_lock(&sp_reg_mu);
    for (size_t i = 0; i < sp_reg_len; i++) {
        if (sp_reg[i].h == h) {
            /* deinit may wait for refs to drop to its own count (1), not
             * to 0: wake it on every release. */
            sp_reg[i].refs--;
            pthread_cond_broadcast(&sp_reg_cond);
            break;
        }
    }
    pthread_mutex_unlock(&sp_reg_mu);
}

/* Waits until no caller is inside h (except `own` references held by the
 * calling thread itself), then removes it from the table. */
static void sp_reg_remove(struct sp_handle *h, unsigned own)
{
    pthread_mutex_lock(&sp_reg_mu);
    for (;;) {
        size_t i;
        for (i = 0; i < sp_reg_len; i++)
            if (sp_reg[i].h == h)
                break;
        if (i == sp_reg_len)
            break;
        if (sp_reg[i].refs <= own) {
            sp_reg[i] = sp_reg[--sp_reg_len];
            break;
        }
        pthread_cond_wait(&sp_reg_cond, &sp_reg_mu);
    }
    if (sp_reg_len == 0) {
        free(sp_reg);
        sp_reg = NULL;
        sp_reg_cap = 0;
    }
    pthread_mutex_unlock(&sp_reg_mu);
}

/* ---- callbacks ------------------------------------------------------------- */

/* 1 once deinit has begun: from then on no user callback is called, so
 * that none runs after stupid_p2p_deinit has returned (even when it was
 * called from a callback and returned before the thread ended). */
static int sp_muted(const struct sp_handle *h)
{
    return __atomic_load_n(&h->muted, __ATOMIC_ACQUIRE);
}

/* ---- logging --------------------------------------------------------------- */

__attribute__((format(printf, 3, 4)))
static void sp_log(const struct sp_handle *h, stupid_p2p_log_level_t level, const char *fmt, ...)
{
    if (h->opt.on_log == NULL || level > h->opt.log_level || sp_muted(h))
        return;
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    h->opt.on_log(h->id, level, line, h->opt.user_data);
}

/* Writes in[0..n) into out (cap >= 1) as printable ASCII: a byte outside
 * 0x20..0x7e becomes \xNN and a backslash \\, so that text from the
 * network can neither forge a log line nor drive a terminal. Cuts at a
 * whole escape when out is too small; always NUL-terminates. */
static void sp_escape(char *out, size_t cap, const uint8_t *in, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = in[i];
        char esc[4];
        size_t k = 0;
        if (c == '\\') {
            esc[k++] = '\\';
            esc[k++] = '\\';
        } else if (c >= 0x20 && c < 0x7f) {
            esc[k++] = (char)c;
        } else {
            esc[k++] = '\\';
            esc[k++] = 'x';
            esc[k++] = hex[c >> 4];
            esc[k++] = hex[c & 15];
        }
        if (o + k >= cap)
            break;
        memcpy(out + o, esc, k);
        o += k;
    }
    out[o] = '\0';
}

/* ---- requests awaiting replies (mu held) ------------------------------------ */

static struct sp_pending *sp_pending_new(struct sp_handle *h, uint8_t cmd, uint8_t kind,
                                         const uint8_t *id, size_t id_len)
{
    struct sp_pending *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->cmd = cmd;
    p->kind = kind;
    if (id != NULL && id_len > 0 && id_len <= P2P_ID_MAX) {
        memcpy(p->id, id, id_len);
        p->id_len = (uint8_t)id_len;
    }
    if (kind == SP_REQ_USER) {
        if (pthread_cond_init(&p->cond, &h->cattr) != 0) {
            free(p);
            return NULL;
        }
        p->has_cond = 1;
    }
    return p;
}

static void sp_pending_free(struct sp_pending *p)
{
    if (p->has_cond)
        pthread_cond_destroy(&p->cond);
    if (p->auth != NULL) {
        explicit_bzero(p->auth, sizeof *p->auth);
        free(p->auth);
    }
    free(p);
}

static void sp_pending_push(struct sp_handle *h, struct sp_pending *p)
{
    p->next = NULL;
    p->sent_ms = sp_now_ms();
    if (h->req_tail)
        h->req_tail->next = p;
    else
        h->req_head = p;
    h->req_tail = p;
}

static struct sp_pending *sp_pending_pop(struct sp_handle *h)
{
    struct sp_pending *p = h->req_head;
    if (p) {
        h->req_head = p->next;
        if (h->req_head == NULL)
            h->req_tail = NULL;
        p->next = NULL;
    }
    return p;
}

/* Completes a popped request: wakes its waiter, or frees it when nobody
 * waits. */
static void sp_pending_complete(struct sp_pending *p, int status)
{
    if (p->kind == SP_REQ_USER && !p->abandoned) {
        p->status = status;
        p->done = 1;
        pthread_cond_signal(&p->cond);
    } else {
        sp_pending_free(p);
    }
}

/* The connection ended: every request still waiting fails with LOST. */
static void sp_pending_fail_all(struct sp_handle *h)
{
    struct sp_pending *p;
    while ((p = sp_pending_pop(h)) != NULL)
        sp_pending_complete(p, SP_STATUS_LOST);
}

/* ---- remembered subscriptions (mu held) ------------------------------------- */

static struct sp_sub *sp_sub_find(struct sp_handle *h, const uint8_t *id, size_t len)
{
    for (struct sp_sub *s = h->subs; s; s = s->next)
        if (s->len == len && memcmp(s->id, id, len) == 0)
            return s;
    return NULL;
}

static void sp_sub_add(struct sp_handle *h, const uint8_t *id, size_t len)
{
    struct sp_sub *s = sp_sub_find(h, id, len);
    if (s == NULL) {
        s = calloc(1, sizeof *s);
        if (s == NULL) {
            sp_log(h, STUPID_P2P_LOG_ERROR, "out of memory: a subscription will not be renewed after a reconnect");
            return;
        }
        memcpy(s->id, id, len);
        s->len = (uint8_t)len;
        s->next = h->subs;
        h->subs = s;
    }
    s->confirmed = 1;
}

static void sp_sub_remove(struct sp_handle *h, const uint8_t *id, size_t len)
{
    for (struct sp_sub **pp = &h->subs; *pp; pp = &(*pp)->next) {
        struct sp_sub *s = *pp;
        if (s->len == len && memcmp(s->id, id, len) == 0) {
            *pp = s->next;
            free(s);
            return;
        }
    }
}

static void sp_sub_clear(struct sp_handle *h)
{
    while (h->subs) {
        struct sp_sub *s = h->subs;
        h->subs = s->next;
        free(s);
    }
}

/* ---- the receive queue (mu held) -------------------------------------------- */

static void sp_msg_free(struct sp_msg *m)
{
    if (m) {
        free(m->pub.data);
        free(m);
    }
}

static void sp_queue_clear(struct sp_handle *h)
{
    while (h->q_head) {
        struct sp_msg *m = h->q_head;
        h->q_head = m->next;
        sp_msg_free(m);
    }
    h->q_tail = NULL;
    h->q_len = 0;
    h->q_bytes = 0;
}

static struct sp_msg *sp_queue_pop(struct sp_handle *h)
{
    struct sp_msg *m = h->q_head;
    if (m) {
        h->q_head = m->next;
        if (h->q_head == NULL)
            h->q_tail = NULL;
        h->q_len--;
        h->q_bytes -= m->pub.length;
        m->next = NULL;
    }
    return m;
}

#endif /* SP_HANDLE_H */
