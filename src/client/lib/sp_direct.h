/*
 * sp_direct.h - direct paths: two devices that both use this library (or
 * speak stupidp2p(7), DIRECT PATHS) connect to each other with the relay
 * as rendezvous, and one's send_to's to the other travel on that TCP
 * connection instead of through the relay, and back through the relay
 * when it dies. Everything here runs on the handle's one background
 * thread (its poll set gains the direct sockets; there is no new thread),
 * except the send_to of a caller, which writes to the direct connection
 * itself as it writes to the relay's.
 *
 * The rendezvous, per peer (struct sp_peer, phases enum sp_dphase):
 *
 *   offerer: IDLE -> OFFERING -> AWAIT_ANSWER -> DIAL_WAIT -> DIALING -> DIRECT
 *   target:  IDLE ------------> AWAIT_SYNC ----------------> DIALING -> DIRECT
 *
 * The offerer opens a listening socket (its LAN candidates), sends
 * DIRECT_OFFER and measures the round trip to the ANSWER; it sends
 * DIRECT_SYNC and dials half a round trip later, while the target dials
 * when the SYNC arrives, so that both SYNs leave at about the same moment
 * (a NAT that sees the other's SYN before its own side's went out drops it
 * or, worse, answers with a RST). Dialing: a non-blocking connect to every
 * candidate of the other side, LAN candidates first, the ones to the
 * other's reflexive address from the relay connection's own local port
 * (SO_REUSEADDR on both: TCP simultaneous open through port-preserving
 * NATs). Each connect has its own deadline (a NAT that drops leaves a
 * connect hanging for two minutes otherwise) and is retried after a
 * random pause until the attempt's window closes: equal gaps keep both
 * sides failing in step.
 *
 * Every connection, dialed or accepted, proves the attempt secret before
 * anything else (direct_proof.h); one that fails, or does not prove in
 * time, is closed. The offerer takes the first connection whose proof
 * passes and says so with USE; the target takes the connection on which
 * USE arrives (after the offerer's proof): one choice, made by one side,
 * so that the two never keep different connections. The others close.
 *
 * Ordering, per direction (this device's send_to's to the peer):
 *  - Switch: under the handle's lock, DIRECT_MARK SWITCH is queued on the
 *    relay connection after every relayed SEND_TO to the peer, and from
 *    then on send_to writes DATA frames, numbered from 1, on the direct
 *    connection. The peer delivers direct DATA only after the marker has
 *    come through the relay (until then it stops reading the connection:
 *    the kernel's buffers are the bound), so nothing sent later overtakes
 *    what went through the relay before.
 *  - Acknowledgement: the peer acknowledges what it delivered (ACK with
 *    the highest sequence number); what is acknowledged is forgotten, the
 *    rest is kept (retx) and bounds the window: a send_to waits while
 *    more than SP_DIRECT_WINDOW_BYTES are unacknowledged.
 *  - Fallback (the connection failed, went quiet for three keepalive
 *    intervals, or the peer fell back): under the lock, DIRECT_MARK
 *    FALLBACK carrying the last acknowledged number X is queued on the
 *    relay, then every unacknowledged message again as a SEND_TO, then
 *    whatever send_to is called next. The peer stops delivering direct
 *    DATA when the marker arrives; it has delivered up to J >= X, so it
 *    drops the first J - X relayed messages from us after the marker,
 *    which are exactly the re-sent ones it has: nothing lost, nothing
 *    twice, in order.
 * A relay connection that is lost takes the direct paths with it (they
 * cannot fall back without the relay): messages written to them and not
 * acknowledged are lost, as relayed ones queued on the lost connection
 * are.
 *
 * Keepalive: a PING every direct_keepalive_ms (at most 25 s, to keep NAT
 * mappings alive), and nothing received for three times that ends the
 * path. After a failure or a fallback the next attempt waits a random
 * [1/2, 1] of SP_DIRECT_RETRY_MS * 2^n, n the failures and short-lived
 * paths in a row (at most SP_DIRECT_RETRY_MAX_MS); a path that lived
 * SP_DIRECT_SETTLED_MS resets n.
 *
 * A re-attempt soon after a path through the relay port ended may find
 * that 4-tuple in TIME_WAIT on the side that closed first (tcp(7)): its
 * dials to that candidate fail until the back-off has outlasted it.
 *
 * Locking: the peer table and each peer's shared fields (phase, the path's
 * fd and its buffers, the send window) are under h->mu; fields marked
 * "thread" belong to the background thread. Callbacks and deliveries run
 * without the lock. See sp_buf.h for why this is a header of static
 * functions.
 */
#ifndef SP_DIRECT_H
#define SP_DIRECT_H

#include <arpa/inet.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <poll.h>

#include "direct_proof.h"
#include "sp_handle.h"
#include "sp_io.h"

#define SP_DIRECT_PEERS_MAX 32u
/* The other side's candidates, and its reflexive address with its local
 * port too when a NAT changed the port. */
#define SP_DIRECT_DIALS_MAX (P2P_DIRECT_EVENT_CANDIDATES_MAX + 1u)
#define SP_DIRECT_ACCEPTS_MAX 4u
#define SP_DIRECT_CONNS_MAX (SP_DIRECT_DIALS_MAX + SP_DIRECT_ACCEPTS_MAX)
#define SP_DIRECT_STEP_MS 5000u        /* for the ANSWER, for the SYNC          */
#define SP_DIRECT_PUNCH_MS 6000u       /* dialing, from the first SYN          */
#define SP_DIRECT_TRY_MS 1500u         /* one connect                          */
#define SP_DIRECT_JITTER_MIN_MS 20u    /* pause before a connect is retried... */
#define SP_DIRECT_JITTER_MAX_MS 300u   /* ...uniform in [min, max]             */
#define SP_DIRECT_PROOF_MS 3000u       /* a connection proves itself within    */
#define SP_DIRECT_RETRY_MS 2000u       /* the next attempt, doubling...        */
#define SP_DIRECT_RETRY_MAX_MS 300000u /* ...up to                             */
#define SP_DIRECT_SETTLED_MS 60000u    /* a path that lived this long resets it */
#define SP_DIRECT_WINDOW_BYTES (4u << 20)
#define SP_DIRECT_KEEPALIVE_MAX_MS 25000
#define SP_DIRECT_KEEPALIVE_MIN_MS 100
/* Each peer: a listener, its connections, its path. */
#define SP_DIRECT_POLL_MAX (SP_DIRECT_PEERS_MAX * (2u + SP_DIRECT_CONNS_MAX))

enum sp_dphase {
    SP_D_IDLE = 0,
    SP_D_OFFERING,     /* offerer: OFFER sent, its reply awaited        */
    SP_D_AWAIT_ANSWER, /* offerer: the target's ANSWER awaited          */
    SP_D_AWAIT_SYNC,   /* target: ANSWER sent, the SYNC awaited         */
    SP_D_DIAL_WAIT,    /* offerer: SYNC sent, dialing at dial_at        */
    SP_D_DIALING,      /* connections being made and proven             */
    SP_D_DIRECT        /* the path carries our send_to's                */
};

enum sp_dconn_state {
    SP_DC_FREE = 0,
    SP_DC_WAIT,       /* a dial waiting to be retried at deadline      */
    SP_DC_CONNECTING, /* connect in progress until deadline            */
    SP_DC_PROVING,    /* our proof sent, the other's awaited           */
    SP_DC_PROVEN      /* target: the offerer proved; USE awaited       */
};

/* One connection of an attempt (thread). Slot i < ndials dials candidate
 * i; the slots after it hold accepted connections. */
struct sp_dconn {
    int fd;
    uint8_t state;
    uint64_t deadline;
    struct sp_buf in, out;
};

struct sp_peer {
    struct sp_peer *next;
    uint8_t id_len;
    uint8_t id[P2P_ID_MAX];

    /* ---- guarded by mu ---- */
    enum sp_dphase phase;
    uint8_t role;              /* P2P_ROLE_OFFERER or _TARGET, in an attempt */
    int wanted;                /* try again after failures (connect_direct,
                                  or a send_to with the AUTO option)       */
    int asked;                 /* named to connect_direct: its offers are
                                  accepted whatever the direct option says;
                                  unlike wanted, a decline does not clear
                                  it (a peer that declined before it asked
                                  itself, then offers, is accepted)        */
    int offer_done;            /* connect_direct: the OFFER was answered   */
    int offer_status;          /*   with this status                       */
    uint32_t attempt;
    int path_fd;               /* the direct connection, -1: none          */
    int broken;                /* a write on it failed: the thread falls back */
    struct sp_buf pout;        /* frames for the path not yet written      */
    struct sp_buf retx;        /* DATA frames not acknowledged yet         */
    size_t unacked;            /* their bytes                              */
    uint64_t next_seq;         /* of our next DATA                         */
    uint64_t acked;            /* highest of ours the peer delivered       */

    /* ---- thread ---- */
    uint8_t secret[P2P_DIRECT_SECRET_SIZE];
    uint8_t my_nonce[P2P_DIRECT_NONCE_SIZE], peer_nonce[P2P_DIRECT_NONCE_SIZE];
    struct sockaddr_storage dial[SP_DIRECT_DIALS_MAX];
    socklen_t dial_len[SP_DIRECT_DIALS_MAX];
    uint8_t dial_reflexive[SP_DIRECT_DIALS_MAX]; /* from the relay's local port */
    unsigned ndials;
    struct sp_dconn conns[SP_DIRECT_CONNS_MAX];
    int listen_fd;
    uint64_t step_deadline;    /* OFFERING, AWAIT_*: give up then          */
    uint64_t offer_sent;       /* offerer: to measure the round trip       */
    uint64_t dial_at;          /* DIAL_WAIT                                */
    uint64_t punch_deadline;   /* DIALING                                  */
    uint64_t started;          /* the attempt, for RESULT                  */
    uint64_t retry_at;         /* no new attempt before                    */
    unsigned failures;         /* in a row, for the back-off               */
    uint64_t direct_since;     /* the path was made then                   */
    uint64_t last_rx, last_ping;
    struct sp_buf pin;         /* bytes read from the path                 */
    int pin_blocked;           /* a DATA waits for the peer's SWITCH mark  */
    /* The peer's messages to us. */
    uint32_t in_attempt;       /* the attempt of the current path          */
    int in_switched;           /* its SWITCH mark came                     */
    int in_closed;             /* no more direct DATA delivered from it    */
    int in_marked;             /* its FALLBACK mark came                   */
    uint64_t in_delivered;     /* highest DATA delivered                   */
    int ack_owed;              /* in_delivered not acknowledged yet: the path's
                                  output waits on the peer (one ACK, later) */
    uint32_t prev_attempt;     /* the path before, until its FALLBACK mark */
    uint64_t prev_delivered;
    uint32_t switch_seen;      /* attempt of the last SWITCH mark seen      */
    uint64_t skip;             /* relayed messages still to drop (re-sent) */
};

static void sp_direct_fallback(struct sp_handle *h, struct sp_peer *p, const char *why);
static int sp_direct_path_readable(struct sp_handle *h, struct sp_peer *p, const char **why);

/* ---- the peer table (mu held) ------------------------------------------------ */

static struct sp_peer *sp_peer_find(struct sp_handle *h, const uint8_t *id, size_t len)
{
    for (struct sp_peer *p = h->peers; p != NULL; p = p->next)
        if (p->id_len == len && memcmp(p->id, id, len) == 0)
            return p;
    return NULL;
}

/* The peer's entry, made if there is none; NULL when the table is full
 * or memory is out. */
static struct sp_peer *sp_peer_get(struct sp_handle *h, const uint8_t *id, size_t len)
{
    struct sp_peer *p = sp_peer_find(h, id, len);
    if (p != NULL || h->n_peers >= SP_DIRECT_PEERS_MAX || len < 1 || len > P2P_ID_MAX)
        return p;
    p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    memcpy(p->id, id, len);
    p->id_len = (uint8_t)len;
    p->path_fd = -1;
    p->listen_fd = -1;
    for (unsigned i = 0; i < SP_DIRECT_CONNS_MAX; i++)
        p->conns[i].fd = -1;
    p->next = h->peers;
    h->peers = p;
    h->n_peers++;
    return p;
}

static void sp_dconn_close(struct sp_dconn *c)
{
    sp_io_close(c->fd);
    c->fd = -1;
    c->state = SP_DC_FREE;
    sp_buf_free(&c->in);
    sp_buf_free(&c->out);
}

/* Frees every peer (deinit; the thread has ended). */
static void sp_peers_free(struct sp_handle *h)
{
    while (h->peers != NULL) {
        struct sp_peer *p = h->peers;
        h->peers = p->next;
        for (unsigned i = 0; i < SP_DIRECT_CONNS_MAX; i++)
            sp_dconn_close(&p->conns[i]);
        sp_io_close(p->listen_fd);
        sp_io_close(p->path_fd);
        sp_buf_free(&p->pout);
        sp_buf_free(&p->retx);
        sp_buf_free(&p->pin);
        explicit_bzero(p->secret, sizeof p->secret);
        free(p);
    }
    h->n_peers = 0;
}

/* ---- small helpers ------------------------------------------------------------ */

static uint64_t sp_jitter(struct sp_handle *h, uint64_t lo, uint64_t hi)
{
    return lo + sp_rand_next(&h->rng) % (hi - lo + 1);
}

static void sp_path_changed(struct sp_handle *h, const struct sp_peer *p, stupid_p2p_path_t path)
{
    char id[4 * P2P_ID_MAX + 1];
    sp_escape(id, sizeof id, p->id, p->id_len);
    sp_log(h, STUPID_P2P_LOG_INFO, "path to \"%s\": %s", id, path == STUPID_P2P_PATH_DIRECT ? "direct" : "relay");
    if (h->opt.on_path == NULL || sp_muted(h))
        return;
    uint8_t copy[P2P_ID_MAX + 1];
    memcpy(copy, p->id, p->id_len);
    copy[p->id_len] = 0;
    uint64_t began = sp_callback_begin();
    h->opt.on_path(h->id, copy, p->id_len, path, h->opt.user_data);
    sp_callback_end(h, began);
}

/* Queues a direct-path request on the relay connection (mu held), a node
 * remembering the peer. Returns 0 or -1. */
static int sp_direct_request(struct sp_handle *h, const struct sp_peer *p, const uint8_t *frame, size_t len)
{
    if (h->fd < 0 || h->state != STUPID_P2P_STATE_CONNECTED)
        return -1;
    struct sp_pending *q = sp_pending_new(h, frame[0], SP_REQ_DIRECT, p->id, p->id_len);
    if (q == NULL)
        return -1;
    return sp_queue_request(h, q, frame, len, NULL, 0);
}

/* Writes what the path's socket takes (mu held). Returns 0, or -1 after a
 * write error (p->broken is set: the thread falls back). */
static int sp_direct_flush_locked(struct sp_handle *h, struct sp_peer *p)
{
    if (sp_send_buf(p->path_fd, &p->pout) == 0)
        return 0;
    p->broken = 1;
    sp_io_wake(h->efd);
    return -1;
}

/* Acknowledges what was delivered from the path (mu held). A peer that
 * does not read our output would otherwise make it grow by one ACK per
 * read of its DATA: while earlier output waits in pout, one ACK is owed
 * instead, for the highest number, written once pout has drained. Returns
 * 0, or -1 when memory ran out. */
static int sp_direct_ack_locked(struct sp_handle *h, struct sp_peer *p)
{
    (void)sp_direct_flush_locked(h, p);
    if (sp_buf_used(&p->pout) > 0) {
        p->ack_owed = 1;
        return 0;
    }
    p->ack_owed = 0;
    uint8_t ack[P2P_LINK_ACK_SIZE];
    size_t n = p2p_encode_link_ack(ack, p->in_delivered);
    if (sp_frame_to(&p->pout, ack, n, NULL, 0) != 0)
        return -1;
    (void)sp_direct_flush_locked(h, p);
    return 0;
}

/* ---- starting an attempt (the thread) ---------------------------------------- */

/* This device's LAN candidates: the address of the relay connection's own
 * end, then the other IPv4 addresses of interfaces that are up (loopback
 * only when the relay is reached over it), each with the listener's port.
 * Returns how many (at most P2P_DIRECT_CANDIDATES_MAX). */
static size_t sp_direct_lan_candidates(struct sp_handle *h, uint16_t port, struct p2p_candidate *out)
{
    size_t n = 0;
    struct sockaddr_storage local;
    socklen_t len;
    int relay_loopback = 0;
    if (h->fd >= 0 && sp_io_local_address(h->fd, &local, &len) == 0 && local.ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)&local;
        out[n].kind = P2P_CANDIDATE_LAN;
        out[n].port = port;
        out[n].addr_len = 4;
        memcpy(out[n].addr, &in->sin_addr, 4);
        relay_loopback = out[n].addr[0] == 127;
        n++;
    }
    struct ifaddrs *ifs = NULL;
    if (getifaddrs(&ifs) == -1)
        return n;
    for (struct ifaddrs *i = ifs; i != NULL && n < P2P_DIRECT_CANDIDATES_MAX; i = i->ifa_next) {
        if (i->ifa_addr == NULL || i->ifa_addr->sa_family != AF_INET || !(i->ifa_flags & IFF_UP))
            continue;
        if ((i->ifa_flags & IFF_LOOPBACK) && !relay_loopback)
            continue;
        const uint8_t *a = (const uint8_t *)&((const struct sockaddr_in *)i->ifa_addr)->sin_addr;
        int dup = 0;
        for (size_t k = 0; k < n; k++)
            dup |= memcmp(out[k].addr, a, 4) == 0;
        if (dup)
            continue;
        out[n].kind = P2P_CANDIDATE_LAN;
        out[n].port = port;
        out[n].addr_len = 4;
        memcpy(out[n].addr, a, 4);
        n++;
    }
    freeifaddrs(ifs);
    return n;
}

/* The relay connection's local port (0 when unknown). */
static uint16_t sp_relay_local_port(struct sp_handle *h)
{
    struct sockaddr_storage local;
    socklen_t len;
    if (h->fd < 0 || sp_io_local_address(h->fd, &local, &len) != 0)
        return 0;
    if (local.ss_family == AF_INET)
        return ntohs(((const struct sockaddr_in *)&local)->sin_port);
    if (local.ss_family == AF_INET6)
        return ntohs(((const struct sockaddr_in6 *)&local)->sin6_port);
    return 0;
}

/* A fresh nonce, a listener and the candidates for an OFFER or ANSWER
 * (mu held). Returns the number of candidates, or -1 (no randomness). */
static int sp_direct_prepare(struct sp_handle *h, struct sp_peer *p, struct p2p_candidate *cands, uint16_t *local_port)
{
    if (sp_io_random(p->my_nonce, sizeof p->my_nonce) != 0)
        return -1;
    int err = 0;
    if (p->listen_fd < 0)
        p->listen_fd = sp_io_listen_any(AF_INET, &err);
    size_t n = 0;
    struct sockaddr_storage ss;
    socklen_t len;
    if (p->listen_fd >= 0 && sp_io_local_address(p->listen_fd, &ss, &len) == 0)
        n = sp_direct_lan_candidates(h, ntohs(((const struct sockaddr_in *)&ss)->sin_port), cands);
    else
        sp_log(h, STUPID_P2P_LOG_INFO, "no listening socket for a direct path (%s): no LAN candidates", strerror(err));
    *local_port = sp_relay_local_port(h);
    return (int)n;
}

/* Frees what an attempt holds, the path excepted (thread, mu held). */
static void sp_direct_end_attempt(struct sp_peer *p)
{
    for (unsigned i = 0; i < SP_DIRECT_CONNS_MAX; i++)
        sp_dconn_close(&p->conns[i]);
    sp_io_close(p->listen_fd);
    p->listen_fd = -1;
    p->ndials = 0;
}

/* The next attempt, after a back-off that doubles with every failure or
 * short-lived path in a row (thread, mu held). */
static void sp_direct_backoff(struct sp_handle *h, struct sp_peer *p)
{
    uint64_t env = SP_DIRECT_RETRY_MS;
    for (unsigned i = 0; i < p->failures && env < SP_DIRECT_RETRY_MAX_MS; i++)
        env *= 2;
    if (env > SP_DIRECT_RETRY_MAX_MS)
        env = SP_DIRECT_RETRY_MAX_MS;
    if (p->failures < 64)
        p->failures++;
    p->retry_at = sp_now_ms() + sp_jitter(h, env / 2, env);
}

/* The attempt failed before a path was made (thread, mu held): back to
 * IDLE, the next attempt after a back-off; told to the server if it got
 * as far as an accepted ANSWER. */
static void sp_direct_attempt_failed(struct sp_handle *h, struct sp_peer *p, const char *why, int report)
{
    char id[4 * P2P_ID_MAX + 1];
    sp_escape(id, sizeof id, p->id, p->id_len);
    sp_log(h, STUPID_P2P_LOG_INFO, "direct path to \"%s\" not made: %s", id, why);
    if (report) {
        uint8_t frame[P2P_DIRECT_MAX];
        uint64_t ms = sp_now_ms() - p->started;
        size_t n = p2p_encode_direct_result(frame, p->id, p->id_len, p->attempt, P2P_DIRECT_OUTCOME_FAILED,
                                            (uint32_t)(ms > UINT32_MAX ? UINT32_MAX : ms));
        (void)sp_direct_request(h, p, frame, n);
        (void)sp_flush_locked(h);
    }
    sp_direct_end_attempt(p);
    p->phase = SP_D_IDLE;
    sp_direct_backoff(h, p);
    if (!p->offer_done) {
        p->offer_done = 1;
        p->offer_status = P2P_STATUS_FAILURE;
        pthread_cond_broadcast(&h->direct_cond);
    }
}

/* Sends an OFFER to the peer (thread, mu held). */
static void sp_direct_offer(struct sp_handle *h, struct sp_peer *p)
{
    struct p2p_candidate cands[P2P_DIRECT_CANDIDATES_MAX];
    uint16_t local_port = 0;
    int n = sp_direct_prepare(h, p, cands, &local_port);
    uint8_t frame[P2P_DIRECT_MAX];
    size_t len = n < 0 ? 0 : p2p_encode_direct_offer(frame, p->id, p->id_len, p->my_nonce, local_port, cands, (size_t)n);
    p->role = P2P_ROLE_OFFERER;
    char id[4 * P2P_ID_MAX + 1];
    sp_escape(id, sizeof id, p->id, p->id_len);
    sp_log(h, STUPID_P2P_LOG_INFO, "offering a direct path to \"%s\" with %d LAN candidate(s), port %u", id, n,
           n > 0 ? (unsigned)cands[0].port : 0u);
    p->started = p->offer_sent = sp_now_ms();
    p->step_deadline = p->started + SP_DIRECT_STEP_MS;
    p->phase = SP_D_OFFERING;
    if (n < 0 || sp_direct_request(h, p, frame, len) != 0) {
        sp_direct_attempt_failed(h, p, "the offer could not be sent", 0);
        return;
    }
    (void)sp_flush_locked(h);
}

/* ---- dialing (thread, mu held) ------------------------------------------------------ */

/* Where to dial: the other side's candidates, LAN ones first, then its
 * reflexive address, and that address with its local port when a NAT
 * changed the port (some keep the port for a while, some not at all). */
static void sp_direct_take_candidates(struct sp_peer *p, const struct p2p_direct *d)
{
    p->ndials = 0;
    for (int pass = 0; pass < 2; pass++) {
        for (size_t i = 0; i < d->candidate_count && p->ndials < SP_DIRECT_DIALS_MAX; i++) {
            const struct p2p_candidate *c = &d->candidates[i];
            int reflexive = c->kind == P2P_CANDIDATE_REFLEXIVE;
            if (reflexive != pass || c->addr_len != 4) /* IPv4 only, for now */
                continue;
            for (int with_local = 0; with_local < 1 + (reflexive && d->local_port != c->port); with_local++) {
                if (p->ndials >= SP_DIRECT_DIALS_MAX)
                    break;
                struct sockaddr_in *in = (struct sockaddr_in *)&p->dial[p->ndials];
                memset(in, 0, sizeof *in);
                in->sin_family = AF_INET;
                in->sin_port = htons(with_local ? d->local_port : c->port);
                memcpy(&in->sin_addr, c->addr, 4);
                p->dial_len[p->ndials] = sizeof *in;
                p->dial_reflexive[p->ndials] = (uint8_t)reflexive;
                p->ndials++;
            }
        }
    }
}

static int sp_dconn_send_proof(struct sp_handle *h, struct sp_peer *p, struct sp_dconn *c)
{
    uint8_t mac[P2P_DIRECT_MAC_SIZE], frame[P2P_LINK_PROOF_SIZE];
    int offerer = p->role == P2P_ROLE_OFFERER;
    p2p_direct_mac(p->secret, p->role, p->attempt, offerer ? h->reg_id : p->id, offerer ? h->reg_len : p->id_len,
                   offerer ? p->id : h->reg_id, offerer ? p->id_len : h->reg_len,
                   offerer ? p->my_nonce : p->peer_nonce, offerer ? p->peer_nonce : p->my_nonce, mac);
    size_t n = p2p_encode_link_proof(frame, p->role, p->attempt, mac);
    return sp_frame_to(&c->out, frame, n, NULL, 0);
}

/* Starts (or restarts) the dial of slot i. */
static void sp_direct_dial(struct sp_handle *h, struct sp_peer *p, unsigned i, uint64_t now)
{
    struct sp_dconn *c = &p->conns[i];
    sp_dconn_close(c);
    int err = 0;
    int fd = sp_io_socket(AF_INET, &err);
    if (fd >= 0 && p->dial_reflexive[i]) {
        /* From the relay connection's own address and port: the mapping
         * its NAT made for the relay is the one the server saw. */
        struct sockaddr_storage local;
        socklen_t len;
        err = h->fd >= 0 ? sp_io_local_address(h->fd, &local, &len) : ENOTCONN;
        if (err == 0)
            err = sp_io_bind(fd, (struct sockaddr *)&local, len);
    }
    enum sp_io_result r = SP_IO_ERROR;
    if (fd >= 0 && err == 0)
        r = sp_io_connect(fd, (struct sockaddr *)&p->dial[i], p->dial_len[i], &err);
    if (fd < 0 || r == SP_IO_ERROR) {
        sp_io_close(fd);
        c->state = SP_DC_WAIT;
        c->deadline = now + sp_jitter(h, SP_DIRECT_JITTER_MIN_MS, SP_DIRECT_JITTER_MAX_MS);
        return;
    }
    c->fd = fd;
    c->state = SP_DC_CONNECTING;
    c->deadline = now + SP_DIRECT_TRY_MS;
    if (r == SP_IO_OK) {
        c->state = SP_DC_PROVING;
        c->deadline = now + SP_DIRECT_PROOF_MS;
        if (sp_dconn_send_proof(h, p, c) != 0)
            sp_dconn_close(c);
    }
}

static void sp_direct_start_dialing(struct sp_handle *h, struct sp_peer *p, uint64_t now)
{
    p->phase = SP_D_DIALING;
    p->punch_deadline = now + SP_DIRECT_PUNCH_MS;
    for (unsigned i = 0; i < p->ndials; i++)
        sp_direct_dial(h, p, i, now);
}

/* ---- the path is made ------------------------------------------------------------- */

/* Connection slot i won (thread, mu held): it becomes the path; the
 * others and the listener close; the SWITCH mark goes out through the
 * relay after everything relayed so far, and our send_to's take the
 * path from now on. */
static void sp_direct_established(struct sp_handle *h, struct sp_peer *p, unsigned i)
{
    struct sp_dconn *c = &p->conns[i];
    uint64_t now = sp_now_ms();
    p->path_fd = c->fd;
    c->fd = -1;
    sp_buf_free(&p->pout);
    p->pout = c->out; /* our proof or USE, if not written yet */
    p->ack_owed = 0;
    memset(&c->out, 0, sizeof c->out);
    sp_buf_free(&p->pin);
    p->pin = c->in; /* what followed the other's proof */
    memset(&c->in, 0, sizeof c->in);
    sp_direct_end_attempt(p);
    sp_buf_free(&p->retx);
    p->unacked = 0;
    p->next_seq = 1;
    p->acked = 0;
    p->broken = 0;
    /* The peer's side: a new numbering; the last path's count is kept
     * until its FALLBACK mark says what to skip. */
    if (p->in_attempt != 0 && !p->in_marked) {
        p->prev_attempt = p->in_attempt;
        p->prev_delivered = p->in_delivered;
    }
    p->in_marked = 0;
    p->in_attempt = p->attempt;
    p->in_switched = p->switch_seen == p->attempt;
    p->in_closed = 0;
    p->in_delivered = 0;
    p->pin_blocked = 0;
    p->last_rx = p->last_ping = p->direct_since = now;
    p->phase = SP_D_DIRECT;
    uint8_t frame[P2P_DIRECT_MAX];
    size_t n = p2p_encode_direct_mark(frame, P2P_CMD_DIRECT_MARK, p->id, p->id_len, p->attempt, P2P_MARK_SWITCH, 1);
    int rc = sp_direct_request(h, p, frame, n);
    uint64_t ms = now - p->started;
    n = p2p_encode_direct_result(frame, p->id, p->id_len, p->attempt, P2P_DIRECT_OUTCOME_DIRECT,
                                 (uint32_t)(ms > UINT32_MAX ? UINT32_MAX : ms));
    if (rc == 0)
        (void)sp_direct_request(h, p, frame, n);
    (void)sp_flush_locked(h);
    if (!p->offer_done) {
        p->offer_done = 1;
        p->offer_status = P2P_STATUS_OK;
        pthread_cond_broadcast(&h->direct_cond);
    }
    if (rc != 0) {
        /* Without its mark the peer would never deliver our DATA. */
        p->broken = 1;
        return;
    }
    char id[4 * P2P_ID_MAX + 1], where[INET6_ADDRSTRLEN] = "?";
    sp_escape(id, sizeof id, p->id, p->id_len);
    struct sockaddr_in peer;
    socklen_t plen = sizeof peer;
    if (getpeername(p->path_fd, (struct sockaddr *)&peer, &plen) == 0 && peer.sin_family == AF_INET)
        inet_ntop(AF_INET, &peer.sin_addr, where, sizeof where);
    sp_log(h, STUPID_P2P_LOG_INFO, "direct path to \"%s\" made in %llu ms (attempt %u), over %s:%u", id,
           (unsigned long long)ms, p->attempt, where, (unsigned)ntohs(peer.sin_port));
    (void)sp_direct_flush_locked(h, p);
}

/* ---- falling back -------------------------------------------------------------------- */

/* Closes the path and forgets what was queued on it (mu held): no more
 * DATA from the peer is delivered from it. */
static void sp_direct_close_path(struct sp_peer *p)
{
    sp_io_close(p->path_fd);
    p->path_fd = -1;
    sp_buf_free(&p->pout);
    sp_buf_free(&p->retx);
    sp_buf_free(&p->pin);
    p->unacked = 0;
    p->in_closed = 1;
    p->broken = 0;
    p->ack_owed = 0;
}

/* Ends the path (thread): the FALLBACK mark and every unacknowledged
 * message go through the relay, in that order, before anything else we
 * send the peer; the path closes. Reports RELAY to the application. */
static void sp_direct_fallback(struct sp_handle *h, struct sp_peer *p, const char *why)
{
    pthread_mutex_lock(&h->mu);
    if (p->phase != SP_D_DIRECT) {
        pthread_mutex_unlock(&h->mu);
        return;
    }
    char id[4 * P2P_ID_MAX + 1];
    sp_escape(id, sizeof id, p->id, p->id_len);
    uint8_t frame[P2P_DIRECT_MAX];
    size_t n = p2p_encode_direct_mark(frame, P2P_CMD_DIRECT_MARK, p->id, p->id_len, p->attempt, P2P_MARK_FALLBACK,
                                      p->acked);
    int rc = sp_direct_request(h, p, frame, n);
    unsigned resent = 0, lost = 0;
    /* retx holds whole DATA frames: [len][03][seq][data]. */
    const uint8_t *at = sp_buf_head(&p->retx);
    size_t left = sp_buf_used(&p->retx);
    while (left >= P2P_FRAME_HEADER_SIZE) {
        uint32_t plen = p2p_frame_header_decode(at);
        const uint8_t *data = at + P2P_FRAME_HEADER_SIZE + P2P_LINK_DATA_HEAD_SIZE;
        size_t dlen = plen - P2P_LINK_DATA_HEAD_SIZE;
        uint8_t head[P2P_ID_HEAD_MAX];
        size_t hl = p2p_encode_send_to_head(head, p->id, p->id_len);
        struct sp_pending *q = rc == 0 ? sp_pending_new(h, P2P_CMD_SEND_TO, SP_REQ_DIRECT, p->id, p->id_len) : NULL;
        if (q != NULL && sp_queue_request(h, q, head, hl, data, dlen) == 0) {
            resent++;
        } else {
            rc = -1;
            lost++;
        }
        at += P2P_FRAME_HEADER_SIZE + plen;
        left -= P2P_FRAME_HEADER_SIZE + plen;
    }
    (void)sp_flush_locked(h);
    uint64_t acked = p->acked, next = p->next_seq;
    sp_direct_close_path(p);
    p->phase = SP_D_IDLE;
    if (sp_now_ms() - p->direct_since >= SP_DIRECT_SETTLED_MS)
        p->failures = 0; /* it served well: try again soon */
    sp_direct_backoff(h, p);
    pthread_cond_broadcast(&h->direct_cond);
    pthread_mutex_unlock(&h->mu);
    if (lost > 0)
        sp_log(h, STUPID_P2P_LOG_ERROR, "direct path to \"%s\" ended (%s): %u message(s) could not be sent again", id,
               why, lost);
    else
        sp_log(h, STUPID_P2P_LOG_INFO, "direct path to \"%s\" ended (%s): %u message(s) sent again through the relay",
               id, why, resent);
    sp_log(h, STUPID_P2P_LOG_DEBUG, "fallback from attempt %u: acknowledged %llu, next %llu", p->attempt,
           (unsigned long long)acked, (unsigned long long)next);
    sp_path_changed(h, p, STUPID_P2P_PATH_RELAY);
}

/* The relay connection is gone (thread): the paths go with it, without
 * marks (there is no relay to carry them). The peer's side of the
 * numbering is kept: its FALLBACK mark may still reach us after a
 * reconnect. */
static void sp_direct_relay_lost(struct sp_handle *h)
{
    struct sp_peer *changed[SP_DIRECT_PEERS_MAX];
    unsigned n = 0;
    pthread_mutex_lock(&h->mu);
    for (struct sp_peer *p = h->peers; p != NULL; p = p->next) {
        if (p->phase == SP_D_DIRECT) {
            changed[n++] = p;
            if (p->unacked > 0)
                sp_log(h, STUPID_P2P_LOG_WARNING, "relay lost: %zu unacknowledged byte(s) on a direct path are lost",
                       p->unacked);
            sp_direct_close_path(p);
        }
        sp_direct_end_attempt(p);
        p->phase = SP_D_IDLE;
        p->retry_at = sp_now_ms() + SP_DIRECT_RETRY_MS;
        if (!p->offer_done) {
            p->offer_done = 1;
            p->offer_status = SP_STATUS_LOST;
        }
    }
    pthread_cond_broadcast(&h->direct_cond);
    pthread_mutex_unlock(&h->mu);
    for (unsigned i = 0; i < n; i++)
        sp_path_changed(h, changed[i], STUPID_P2P_PATH_RELAY);
}

/* ---- the relay's side: replies and events --------------------------------------------- */

/* A reply to a direct-path request or re-sent message (thread, mu held). */
static void sp_direct_on_reply(struct sp_handle *h, const struct sp_pending *req, const struct p2p_message *m)
{
    struct sp_peer *p = sp_peer_find(h, req->id, req->id_len);
    char id[4 * P2P_ID_MAX + 1];
    sp_escape(id, sizeof id, req->id, req->id_len);
    pthread_cond_broadcast(&h->direct_cond); /* deinit may wait for re-sends */
    if (req->cmd != P2P_CMD_DIRECT_OFFER) {
        if (m->status != P2P_STATUS_OK)
            sp_log(h, STUPID_P2P_LOG_INFO, "request %02x for \"%s\" refused (status %u)", req->cmd, id, m->status);
        return;
    }
    if (p == NULL || p->phase != SP_D_OFFERING)
        return; /* abandoned meanwhile */
    p->offer_done = 1;
    p->offer_status = m->status;
    pthread_cond_broadcast(&h->direct_cond);
    if (m->status != P2P_STATUS_OK) {
        /* A refusal the server will repeat: no automatic retries. */
        if (m->status == P2P_STATUS_NOT_AUTHORIZED || m->status == P2P_STATUS_UNSUPPORTED)
            p->wanted = 0;
        sp_direct_attempt_failed(h, p, "the server refused the offer", 0);
        return;
    }
    p->attempt = m->attempt;
    memcpy(p->secret, m->data, P2P_DIRECT_SECRET_SIZE);
    p->phase = SP_D_AWAIT_ANSWER;
}

/* Answers the peer's offer `attempt` (mu held). A decline leaves p's own
 * attempt, if any, as it is (our offer may be the one that wins); an
 * acceptance makes p the target of this attempt. */
static void sp_direct_answer(struct sp_handle *h, struct sp_peer *p, uint32_t attempt, int accept)
{
    struct p2p_candidate cands[P2P_DIRECT_CANDIDATES_MAX];
    memset(cands, 0, sizeof cands);
    uint16_t local_port = 0;
    int prepared = accept;
    int n = accept ? sp_direct_prepare(h, p, cands, &local_port) : 0;
    if (n < 0)
        accept = 0, n = 0;
    uint8_t frame[P2P_DIRECT_MAX];
    size_t len = p2p_encode_direct_answer(frame, P2P_CMD_DIRECT_ANSWER, p->id, p->id_len, attempt,
                                          accept ? P2P_DIRECT_ACCEPT : P2P_DIRECT_DECLINE, p->my_nonce, local_port,
                                          cands, (size_t)n);
    if (sp_direct_request(h, p, frame, len) != 0)
        accept = 0;
    (void)sp_flush_locked(h);
    if (!accept) {
        if (prepared)
            sp_direct_end_attempt(p); /* the listener made for it */
        return;
    }
    p->role = P2P_ROLE_TARGET;
    p->attempt = attempt;
    p->phase = SP_D_AWAIT_SYNC;
    p->started = sp_now_ms();
    p->step_deadline = p->started + SP_DIRECT_STEP_MS;
}

/* 1 when our own attempt gives way to the peer's offer that crossed it:
 * the offer of the smaller id wins, on both sides alike. */
static int sp_direct_yields(const struct sp_handle *h, const struct sp_peer *p)
{
    size_t n = h->reg_len < p->id_len ? h->reg_len : p->id_len;
    int c = memcmp(h->reg_id, p->id, n);
    return c > 0 || (c == 0 && h->reg_len > p->id_len);
}

/* An OFFER, ANSWER, SYNC or MARK event from the relay (thread). */
static void sp_direct_on_event(struct sp_handle *h, const uint8_t *payload, uint32_t len)
{
    struct p2p_direct d;
    if (p2p_direct_parse(payload, len, &d) != P2P_PARSE_OK)
        return; /* p2p_message_parse has checked it already */
    uint64_t now = sp_now_ms();
    pthread_mutex_lock(&h->mu);
    struct sp_peer *p = d.cmd == P2P_EVT_DIRECT_OFFER ? sp_peer_get(h, d.id, d.id_len) : sp_peer_find(h, d.id, d.id_len);
    if (p == NULL) {
        if (d.cmd == P2P_EVT_DIRECT_OFFER) {
            /* No room to follow another peer: decline it. */
            struct sp_peer tmp;
            memset(&tmp, 0, sizeof tmp);
            memcpy(tmp.id, d.id, d.id_len);
            tmp.id_len = (uint8_t)d.id_len;
            tmp.listen_fd = -1;
            for (unsigned i = 0; i < SP_DIRECT_CONNS_MAX; i++)
                tmp.conns[i].fd = -1;
            sp_direct_answer(h, &tmp, d.attempt, 0);
        }
        pthread_mutex_unlock(&h->mu);
        return;
    }
    int fall_back = 0, resume = 0;
    switch (d.cmd) {
    case P2P_EVT_DIRECT_OFFER: {
        int accept = h->opt.direct != STUPID_P2P_DIRECT_OFF || p->asked;
        if (accept && (p->phase == SP_D_OFFERING || p->phase == SP_D_AWAIT_ANSWER) && !sp_direct_yields(h, p))
            accept = 0; /* our own offer wins the crossing */
        if (accept && p->phase == SP_D_DIRECT) {
            fall_back = 1; /* the peer has given up this path already */
            accept = 0;
        }
        if (p->phase != SP_D_DIRECT && accept) {
            sp_direct_end_attempt(p);
            p->phase = SP_D_IDLE;
        }
        if (!accept && !fall_back) {
            sp_direct_answer(h, p, d.attempt, 0);
            break;
        }
        if (fall_back)
            break; /* answered once the path is closed, below */
        memcpy(p->secret, d.secret, P2P_DIRECT_SECRET_SIZE);
        memcpy(p->peer_nonce, d.nonce, P2P_DIRECT_NONCE_SIZE);
        sp_direct_take_candidates(p, &d);
        sp_direct_answer(h, p, d.attempt, 1);
        if (!p->offer_done) {
            /* Our own offer gave way to this one: a path is on its way. */
            p->offer_done = 1;
            p->offer_status = P2P_STATUS_OK;
            pthread_cond_broadcast(&h->direct_cond);
        }
        break;
    }
    case P2P_EVT_DIRECT_ANSWER:
        if (p->phase != SP_D_AWAIT_ANSWER || p->attempt != d.attempt)
            break;
        if (d.accept != P2P_DIRECT_ACCEPT) {
            /* The peer does not want direct paths: no retries (asked
             * stays: an offer it makes once it asks is still taken). */
            p->wanted = 0;
            sp_direct_attempt_failed(h, p, "declined by the peer", 0);
            break;
        }
        memcpy(p->peer_nonce, d.nonce, P2P_DIRECT_NONCE_SIZE);
        sp_direct_take_candidates(p, &d);
        uint8_t frame[P2P_DIRECT_MAX];
        size_t n = p2p_encode_direct_sync(frame, P2P_CMD_DIRECT_SYNC, p->id, p->id_len, p->attempt);
        if (sp_direct_request(h, p, frame, n) != 0) {
            sp_direct_attempt_failed(h, p, "the relay connection is gone", 0);
            break;
        }
        (void)sp_flush_locked(h);
        /* The SYNC takes about half a round trip to the target. */
        p->phase = SP_D_DIAL_WAIT;
        p->dial_at = now + (now - p->offer_sent) / 2;
        break;
    case P2P_EVT_DIRECT_SYNC:
        if (p->phase == SP_D_AWAIT_SYNC && p->attempt == d.attempt)
            sp_direct_start_dialing(h, p, now);
        break;
    default: /* MARK */
        if (d.mark_kind == P2P_MARK_SWITCH) {
            p->switch_seen = d.attempt;
            if (p->in_attempt == d.attempt && !p->in_closed) {
                p->in_switched = 1;
                resume = p->pin_blocked && p->path_fd >= 0;
            }
            break;
        }
        /* FALLBACK: the peer re-sends through the relay everything after
         * d.seq; we drop what we delivered of it already. */
        uint64_t delivered = d.attempt == p->in_attempt ? p->in_delivered
                             : d.attempt == p->prev_attempt ? p->prev_delivered : 0;
        if (d.attempt == p->in_attempt)
            p->in_closed = p->in_marked = 1;
        if (d.attempt == p->prev_attempt)
            p->prev_attempt = 0;
        if (delivered > d.seq)
            p->skip += delivered - d.seq;
        sp_log(h, STUPID_P2P_LOG_DEBUG, "the peer fell back from attempt %u after %llu acknowledged; %llu delivered: "
               "%llu re-sent message(s) to drop", d.attempt, (unsigned long long)d.seq, (unsigned long long)delivered,
               (unsigned long long)p->skip);
        fall_back = p->phase == SP_D_DIRECT && p->attempt == d.attempt;
        break;
    }
    pthread_mutex_unlock(&h->mu);
    const char *why = NULL;
    if (resume && sp_direct_path_readable(h, p, &why) != 0)
        sp_direct_fallback(h, p, why); /* the DATA held for the mark go now */
    if (fall_back) {
        sp_direct_fallback(h, p, d.cmd == P2P_EVT_DIRECT_OFFER ? "the peer offered a new path" : "the peer fell back");
        if (d.cmd == P2P_EVT_DIRECT_OFFER)
            sp_direct_on_event(h, payload, len); /* now IDLE: answered as any offer */
    }
}

/* A relayed delivery from `from`: 1 if it is a message re-sent after a
 * fallback that we delivered already from the direct path (thread). */
static int sp_direct_skip(struct sp_handle *h, const uint8_t *from, size_t len)
{
    if (len == 0)
        return 0;
    pthread_mutex_lock(&h->mu);
    struct sp_peer *p = sp_peer_find(h, from, len);
    int skip = p != NULL && p->skip > 0;
    if (skip)
        p->skip--;
    pthread_mutex_unlock(&h->mu);
    return skip;
}

/* ---- the direct connection's frames (thread) ------------------------------------------- */

/* Reads what an attempt's connection or the path has into in (at most a
 * chunk a call). Returns 1 if bytes came, 0 if none, -1 at EOF or error. */
static int sp_direct_read(int fd, struct sp_buf *in)
{
    if (sp_buf_reserve(in, SP_READ_CHUNK + 1) != 0)
        return -1;
    size_t room = in->cap - in->len - 1, n = 0;
    int err = 0;
    enum sp_io_result r = sp_io_read(fd, in->data + in->len, room, &n, &err);
    if (r == SP_IO_AGAIN)
        return 0;
    if (r != SP_IO_OK)
        return -1;
    in->len += n;
    return 1;
}

/* The other side's proof on an attempt's connection, checked. */
static int sp_direct_proof_valid(struct sp_handle *h, struct sp_peer *p, const struct p2p_link *l)
{
    uint8_t role = p->role == P2P_ROLE_OFFERER ? P2P_ROLE_TARGET : P2P_ROLE_OFFERER;
    int offerer = p->role == P2P_ROLE_OFFERER;
    if (l->kind != P2P_LINK_KIND_PROOF || l->role != role || l->attempt != p->attempt)
        return 0;
    return p2p_direct_mac_valid(p->secret, role, p->attempt, offerer ? h->reg_id : p->id,
                                offerer ? h->reg_len : p->id_len, offerer ? p->id : h->reg_id,
                                offerer ? p->id_len : h->reg_len, offerer ? p->my_nonce : p->peer_nonce,
                                offerer ? p->peer_nonce : p->my_nonce, l->mac);
}

/* An attempt's connection i is readable (mu held): the proof, and for the
 * target the USE after it. */
static void sp_dconn_readable(struct sp_handle *h, struct sp_peer *p, unsigned i)
{
    struct sp_dconn *c = &p->conns[i];
    if (sp_direct_read(c->fd, &c->in) < 0) {
        sp_dconn_close(c);
        return;
    }
    for (;;) {
        struct p2p_frame f;
        enum p2p_frame_result fr = p2p_frame_parse(sp_buf_head(&c->in), sp_buf_used(&c->in), P2P_LINK_PROOF_SIZE, &f);
        if (fr == P2P_FRAME_INCOMPLETE)
            return;
        struct p2p_link l;
        int ok = fr == P2P_FRAME_COMPLETE && f.length > 0 && p2p_link_parse(f.payload, f.length, &l) == P2P_PARSE_OK;
        if (ok && c->state == SP_DC_PROVING) {
            if (!sp_direct_proof_valid(h, p, &l)) {
                sp_log(h, STUPID_P2P_LOG_WARNING,
                       "a connection for a direct path failed its proof: closed (a stranger, or a stale attempt)");
                sp_dconn_close(c);
                return;
            }
            sp_buf_consume(&c->in, f.consumed);
            if (p->role == P2P_ROLE_OFFERER) {
                uint8_t use[1];
                size_t n = p2p_encode_link_use(use);
                if (sp_frame_to(&c->out, use, n, NULL, 0) != 0) {
                    sp_dconn_close(c);
                    return;
                }
                sp_direct_established(h, p, i);
                return;
            }
            c->state = SP_DC_PROVEN;
            continue;
        }
        if (ok && c->state == SP_DC_PROVEN && l.kind == P2P_LINK_KIND_USE) {
            sp_buf_consume(&c->in, f.consumed);
            sp_direct_established(h, p, i);
            return;
        }
        /* Anything else before the choice is a broken or foreign peer. */
        sp_dconn_close(c);
        return;
    }
}

/* Writes an attempt's connection's pending bytes (its proof). */
static void sp_dconn_flush(struct sp_dconn *c)
{
    if (sp_send_buf(c->fd, &c->out) != 0)
        sp_dconn_close(c);
}

/* ACK: the peer delivered everything up to seq (mu held): forget it. */
static void sp_direct_acked(struct sp_handle *h, struct sp_peer *p, uint64_t seq)
{
    if (seq <= p->acked || seq >= p->next_seq)
        return;
    p->acked = seq;
    while (sp_buf_used(&p->retx) >= P2P_FRAME_HEADER_SIZE + P2P_LINK_DATA_HEAD_SIZE) {
        const uint8_t *at = sp_buf_head(&p->retx);
        if (p2p_get_be64(at + P2P_FRAME_HEADER_SIZE + 1) > seq)
            break;
        size_t whole = P2P_FRAME_HEADER_SIZE + p2p_frame_header_decode(at);
        sp_buf_consume(&p->retx, whole);
        p->unacked -= whole;
    }
    sp_buf_trim(&p->retx, 1u << 20);
    pthread_cond_broadcast(&h->direct_cond);
}

/* The path is readable: dispatches its frames (thread). Returns 0, or -1
 * when the path must end (why set). */
static int sp_direct_path_readable(struct sp_handle *h, struct sp_peer *p, const char **why)
{
    /* What came before an end or error is still delivered (below). */
    int ended = 0;
    if (!p->pin_blocked) {
        int r = sp_direct_read(p->path_fd, &p->pin);
        ended = r < 0;
        if (r > 0)
            p->last_rx = sp_now_ms();
    }
    uint32_t max = h->max_in > P2P_LINK_DATA_HEAD_SIZE ? h->max_in : P2P_DEFAULT_MAX_FRAME;
    uint64_t delivered_before = p->in_delivered;
    p->pin_blocked = 0;
    for (;;) {
        struct p2p_frame f;
        enum p2p_frame_result fr = p2p_frame_parse(sp_buf_head(&p->pin), sp_buf_used(&p->pin), max, &f);
        if (fr == P2P_FRAME_INCOMPLETE)
            break;
        struct p2p_link l;
        if (fr == P2P_FRAME_TOO_LONG || f.length == 0 || p2p_link_parse(f.payload, f.length, &l) != P2P_PARSE_OK) {
            *why = "the peer sent a malformed frame";
            return -1;
        }
        if (l.kind == P2P_LINK_KIND_DATA) {
            if (!p->in_switched) {
                p->pin_blocked = 1; /* until the SWITCH mark comes through the relay */
                break;
            }
            if (p->in_closed) {
                sp_buf_consume(&p->pin, f.consumed); /* the peer fell back: re-sent by the relay */
                continue;
            }
            if (l.seq != p->in_delivered + 1) {
                *why = "the peer's messages are out of sequence";
                return -1;
            }
            p->in_delivered = l.seq;
            /* data[len] is writable: a header follows, or the spare byte. */
            sp_deliver(h, p->id, p->id_len, (uint8_t *)l.data, l.data_len);
            if (sp_muted(h))
                return 0;
        } else if (l.kind == P2P_LINK_KIND_ACK) {
            pthread_mutex_lock(&h->mu);
            sp_direct_acked(h, p, l.seq);
            pthread_mutex_unlock(&h->mu);
        }
        sp_buf_consume(&p->pin, f.consumed);
    }
    sp_buf_trim(&p->pin, 1u << 18);
    if (ended) {
        *why = "the connection closed";
        return -1;
    }
    if (p->in_delivered != delivered_before) {
        pthread_mutex_lock(&h->mu);
        int rc = sp_direct_ack_locked(h, p);
        pthread_mutex_unlock(&h->mu);
        if (rc != 0) {
            *why = "out of memory";
            return -1;
        }
    }
    return 0;
}

/* ---- the poll set and the timers (thread) ------------------------------------------------ */

struct sp_dpoll {
    struct sp_peer *p;
    int slot; /* -1: the listener, -2: the path, >= 0: an attempt's connection */
};

/* Adds the direct sockets to pfd[n..), their owners to map; returns the
 * new count. */
static nfds_t sp_direct_poll_set(struct sp_handle *h, struct pollfd *pfd, struct sp_dpoll *map, nfds_t n)
{
    pthread_mutex_lock(&h->mu);
    for (struct sp_peer *p = h->peers; p != NULL; p = p->next) {
        if (p->listen_fd >= 0) {
            pfd[n] = (struct pollfd){p->listen_fd, POLLIN, 0};
            map[n++] = (struct sp_dpoll){p, -1};
        }
        if (p->path_fd >= 0) {
            short ev = (short)((p->pin_blocked ? 0 : POLLIN) |
                               (sp_buf_used(&p->pout) > 0 || p->ack_owed ? POLLOUT : 0));
            pfd[n] = (struct pollfd){p->path_fd, ev, 0};
            map[n++] = (struct sp_dpoll){p, -2};
        }
        for (unsigned i = 0; i < SP_DIRECT_CONNS_MAX; i++) {
            struct sp_dconn *c = &p->conns[i];
            if (c->fd < 0)
                continue;
            short ev = c->state == SP_DC_CONNECTING ? POLLOUT
                                                    : (short)(POLLIN | (sp_buf_used(&c->out) > 0 ? POLLOUT : 0));
            pfd[n] = (struct pollfd){c->fd, ev, 0};
            map[n++] = (struct sp_dpoll){p, (int)i};
        }
    }
    pthread_mutex_unlock(&h->mu);
    return n;
}

/* A listener is readable: takes the waiting connections into free slots
 * (others are closed at once). mu held. */
static void sp_direct_accept(struct sp_handle *h, struct sp_peer *p)
{
    for (int k = 0; k < 8; k++) {
        int err = 0;
        int fd = sp_io_accept(p->listen_fd, &err);
        if (fd < 0)
            return;
        unsigned i = SP_DIRECT_DIALS_MAX;
        while (i < SP_DIRECT_CONNS_MAX && p->conns[i].fd >= 0)
            i++;
        if (i == SP_DIRECT_CONNS_MAX || (p->phase != SP_D_DIALING && p->phase != SP_D_DIAL_WAIT &&
                                         p->phase != SP_D_AWAIT_SYNC && p->phase != SP_D_AWAIT_ANSWER)) {
            sp_io_close(fd);
            continue;
        }
        struct sp_dconn *c = &p->conns[i];
        c->fd = fd;
        c->state = SP_DC_PROVING;
        c->deadline = sp_now_ms() + SP_DIRECT_PROOF_MS;
        if (sp_dconn_send_proof(h, p, c) != 0)
            sp_dconn_close(c);
        else
            sp_dconn_flush(c);
    }
}

/* One ready direct socket, fd when the poll set was made: a socket closed
 * and its number reused since is left for the next round. */
static void sp_direct_on_poll(struct sp_handle *h, const struct sp_dpoll *m, int fd, short revents)
{
    struct sp_peer *p = m->p;
    const char *why = NULL;
    if (m->slot == -2) {
        if (p->path_fd != fd)
            return;
        pthread_mutex_lock(&h->mu);
        int nomem = 0;
        if ((revents & POLLOUT) && p->ack_owed)
            nomem = sp_direct_ack_locked(h, p) != 0; /* the output first, then the ACK */
        else if (revents & POLLOUT)
            (void)sp_direct_flush_locked(h, p);
        pthread_mutex_unlock(&h->mu);
        if (nomem) {
            sp_direct_fallback(h, p, "out of memory");
            return;
        }
        if ((revents & (POLLIN | POLLERR | POLLHUP)) && sp_direct_path_readable(h, p, &why) != 0) {
            sp_direct_fallback(h, p, why);
            return;
        }
        pthread_mutex_lock(&h->mu);
        int broken = p->broken;
        pthread_mutex_unlock(&h->mu);
        if (broken)
            sp_direct_fallback(h, p, "a write failed");
        return;
    }
    pthread_mutex_lock(&h->mu);
    int was_direct = p->phase == SP_D_DIRECT;
    if (m->slot == -1) {
        if (p->listen_fd >= 0 && p->listen_fd == fd)
            sp_direct_accept(h, p);
    } else if (p->conns[m->slot].fd == fd) {
        struct sp_dconn *c = &p->conns[m->slot];
        if (c->fd >= 0 && c->state == SP_DC_CONNECTING) {
            if (sp_io_connect_result(c->fd) != 0) {
                sp_io_close(c->fd);
                c->fd = -1;
                c->state = SP_DC_WAIT;
                c->deadline = sp_now_ms() + sp_jitter(h, SP_DIRECT_JITTER_MIN_MS, SP_DIRECT_JITTER_MAX_MS);
            } else {
                c->state = SP_DC_PROVING;
                c->deadline = sp_now_ms() + SP_DIRECT_PROOF_MS;
                if (sp_dconn_send_proof(h, p, c) != 0)
                    sp_dconn_close(c);
            }
        }
        if (c->fd >= 0 && c->state != SP_DC_CONNECTING && (revents & POLLOUT))
            sp_dconn_flush(c);
        if (c->fd >= 0 && c->state >= SP_DC_PROVING && (revents & (POLLIN | POLLERR | POLLHUP)))
            sp_dconn_readable(h, p, (unsigned)m->slot);
    }
    int made = !was_direct && p->phase == SP_D_DIRECT;
    pthread_mutex_unlock(&h->mu);
    if (made) {
        sp_path_changed(h, p, STUPID_P2P_PATH_DIRECT);
        /* Bytes that came with the choice wait in pin. */
        if (sp_buf_used(&p->pin) > 0 && sp_direct_path_readable(h, p, &why) != 0)
            sp_direct_fallback(h, p, why);
    }
}

static uint64_t sp_min_deadline(uint64_t a, uint64_t b)
{
    return a == 0 ? b : b == 0 ? a : a < b ? a : b;
}

/* The direct-path timers that are due, and the next one (thread). */
static void sp_direct_tick(struct sp_handle *h, uint64_t now)
{
    uint64_t next = 0, ka = (uint64_t)h->opt.direct_keepalive_ms;
    struct sp_peer *quiet[SP_DIRECT_PEERS_MAX];
    unsigned nquiet = 0;
    pthread_mutex_lock(&h->mu);
    int can_offer = h->state == STUPID_P2P_STATE_CONNECTED && h->version >= 2 && h->has_id;
    for (struct sp_peer *p = h->peers; p != NULL; p = p->next) {
        switch (p->phase) {
        case SP_D_IDLE:
            if (p->wanted && can_offer && now >= p->retry_at)
                sp_direct_offer(h, p);
            else if (p->wanted)
                next = sp_min_deadline(next, p->retry_at > now ? p->retry_at : now + 1000);
            break;
        case SP_D_OFFERING:
        case SP_D_AWAIT_ANSWER:
        case SP_D_AWAIT_SYNC:
            if (now >= p->step_deadline)
                sp_direct_attempt_failed(h, p, "the rendezvous timed out", p->phase == SP_D_AWAIT_SYNC);
            break;
        case SP_D_DIAL_WAIT:
            if (now >= p->dial_at)
                sp_direct_start_dialing(h, p, now);
            break;
        case SP_D_DIALING:
            if (now >= p->punch_deadline) {
                sp_direct_attempt_failed(h, p, "no connection passed its proof in time", 1);
                break;
            }
            for (unsigned i = 0; i < SP_DIRECT_CONNS_MAX; i++) {
                struct sp_dconn *c = &p->conns[i];
                if (c->state == SP_DC_FREE || now < c->deadline)
                    continue;
                if (i < p->ndials && (c->state == SP_DC_WAIT || c->state == SP_DC_CONNECTING))
                    sp_direct_dial(h, p, i, now); /* again, with a fresh SYN */
                else
                    sp_dconn_close(c); /* did not prove itself in time */
            }
            break;
        case SP_D_DIRECT:
            if (p->broken || now - p->last_rx >= 3 * ka) {
                quiet[nquiet++] = p;
                break;
            }
            if (now - p->last_ping >= ka) {
                /* Not behind output the peer has not taken: it would
                 * not reach it sooner, and would pile up. */
                uint8_t ping[1];
                size_t n = p2p_encode_link_ping(ping);
                if (sp_buf_used(&p->pout) == 0 && sp_frame_to(&p->pout, ping, n, NULL, 0) == 0)
                    (void)sp_direct_flush_locked(h, p);
                p->last_ping = now;
            }
            break;
        }
        /* The phase may have changed above: its next timer. */
        switch (p->phase) {
        case SP_D_OFFERING:
        case SP_D_AWAIT_ANSWER:
        case SP_D_AWAIT_SYNC: next = sp_min_deadline(next, p->step_deadline); break;
        case SP_D_DIAL_WAIT: next = sp_min_deadline(next, p->dial_at); break;
        case SP_D_DIALING:
            next = sp_min_deadline(next, p->punch_deadline);
            for (unsigned i = 0; i < SP_DIRECT_CONNS_MAX; i++)
                if (p->conns[i].state != SP_DC_FREE)
                    next = sp_min_deadline(next, p->conns[i].deadline);
            break;
        case SP_D_DIRECT:
            next = sp_min_deadline(next, p->last_ping + ka);
            next = sp_min_deadline(next, p->last_rx + 3 * ka);
            break;
        default:
            if (p->wanted)
                next = sp_min_deadline(next, p->retry_at > now ? p->retry_at : now + 1000);
            break;
        }
    }
    pthread_mutex_unlock(&h->mu);
    h->direct_deadline = next;
    for (unsigned i = 0; i < nquiet; i++)
        sp_direct_fallback(h, quiet[i], quiet[i]->broken ? "a write failed" : "nothing came for three keepalive intervals");
    if (nquiet > 0)
        h->direct_deadline = sp_min_deadline(h->direct_deadline, now + 1);
}

/* ---- the callers' side ----------------------------------------------------------------------- */

/* 1 while messages sent on a direct path are not acknowledged, or re-sent
 * ones not answered by the relay (mu held): deinit waits for these. */
static int sp_direct_unsettled_locked(const struct sp_handle *h)
{
    for (const struct sp_peer *p = h->peers; p != NULL; p = p->next)
        if (p->phase == SP_D_DIRECT && !p->broken && p->unacked > 0)
            return 1;
    for (const struct sp_pending *q = h->req_head; q != NULL; q = q->next)
        if (q->kind == SP_REQ_DIRECT && q->cmd == P2P_CMD_SEND_TO)
            return 1;
    return 0;
}

/* send_to on the direct path, if the peer has one (mu held; the caller's
 * thread). Returns 1 with *rc set when it went (or failed) there, 0 when
 * the message must go through the relay. Waits (releasing mu) while the
 * window is full, at most until `until`. With the AUTO option, a peer
 * without a path is noted for an attempt. */
static int sp_direct_send_locked(struct sp_handle *h, const uint8_t *id, size_t id_len, const uint8_t *data,
                                 size_t len, const struct timespec *until, int32_t *rc)
{
    struct sp_peer *p = sp_peer_find(h, id, id_len);
    if (p == NULL && h->opt.direct == STUPID_P2P_DIRECT_AUTO && h->version >= 2)
        p = sp_peer_get(h, id, id_len);
    if (p == NULL)
        return 0;
    if (h->opt.direct == STUPID_P2P_DIRECT_AUTO && !p->wanted) {
        p->wanted = 1;
        sp_io_wake(h->efd);
    }
    while (p->phase == SP_D_DIRECT && p->unacked > SP_DIRECT_WINDOW_BYTES && !h->closing) {
        if (pthread_cond_timedwait(&h->direct_cond, &h->mu, until) == ETIMEDOUT) {
            *rc = STUPID_P2P_TIMEOUT;
            return 1;
        }
    }
    if (h->closing) {
        *rc = STUPID_P2P_CLOSED;
        return 1;
    }
    if (p->phase != SP_D_DIRECT)
        return 0;
    /* A broken path still takes the message, into retx only: the thread's
     * fallback re-sends it after the FALLBACK mark and those before it.
     * Through the relay now, it would overtake them. */
    uint8_t head[P2P_LINK_DATA_HEAD_SIZE];
    size_t hl = p2p_encode_link_data_head(head, p->next_seq);
    size_t before = sp_buf_used(&p->retx);
    if (sp_frame_to(&p->retx, head, hl, data, len) != 0 ||
        (!p->broken && sp_frame_to(&p->pout, head, hl, data, len) != 0)) {
        p->retx.len = p->retx.off + before; /* nothing half-queued */
        *rc = STUPID_P2P_MEMORY_ERROR;
        return 1;
    }
    p->next_seq++;
    p->unacked += P2P_FRAME_HEADER_SIZE + hl + len;
    /* A write error is the thread's to handle: the message is in retx and
     * goes through the relay with the fallback. */
    (void)sp_direct_flush_locked(h, p);
    if (sp_buf_used(&p->pout) > 0)
        sp_io_wake(h->efd);
    *rc = STUPID_P2P_NO_ERROR;
    return 1;
}

#endif /* SP_DIRECT_H */
