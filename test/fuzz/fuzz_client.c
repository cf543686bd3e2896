/*
 * fuzz_client.c - libFuzzer harness for the C client library
 * (src/client/lib/) facing a hostile server: the real engine, run on the
 * bytes a server sends, with no network and no thread.
 *
 * The seam. The library is one translation unit whose engine is static
 * functions (sp_buf.h says why), and this file includes it, so the
 * harness calls what the handle's thread would call, from its own thread:
 * sp_attempt_start to connect, sp_on_socket when the socket is ready,
 * sp_on_deadline and sp_direct_tick when time has passed. Nothing in the
 * library knows it is being fuzzed. The one difference from a real run is
 * connect(2), wrapped at link time (-Wl,--wrap=connect): the relay's
 * address (127.0.0.1 port FUZZ_RELAY_PORT) gets one end of a socketpair,
 * already connected, whose other end is the harness's fake server, and a
 * direct path's dial to 127.0.0.1 port FUZZ_PEER_PORT gets the fake peer
 * the same way; any other address (candidates come from the input) is
 * refused, so that no packet ever leaves the process.
 *
 * The input: a first byte of options (FUZZ_OPT_*), then records, each a
 * byte whose low 2 bits say what happens:
 *   0 bytes   [n][n bytes] the server writes them (anything: a frame cut
 *             anywhere, garbage, a lie)
 *   1 answer  [s] the server answers the oldest request it has not
 *             answered yet: correctly if s < 0x80 (HELLO granted, AUTH
 *             challenged then signed with the right key, an OFFER given an
 *             attempt, ...), not at all if s is 0xff (the original server
 *             and HELLO), else with status s & 0x7f
 *   2 time    [t] time passes: to the handle's deadline (t & 1: the
 *             heartbeat, the handshake's timeout, the backoff's end and a
 *             reconnection), and to the direct paths' (t & 2)
 *   3 event   [e] the server sends a well-formed event chosen by e:
 *             DELIVER, a v1 delivery, PRESENCE, GAP, BYE, the DIRECT_*
 *             events; or the application asks for a direct path (what
 *             stupid_p2p_connect_direct does before it waits)
 * With bit 2 of the byte set, the record is the fake peer's, on the direct
 * connection the client dialed (if any):
 *   0 bytes   [n][n bytes] the peer writes them
 *   1 proof   [a] the peer proves the attempt (a & 1: with a wrong mac;
 *             a & 2: then USE)
 *   2 close   [-] the peer closes the connection
 *   3 frame   [e] a well-formed DATA, ACK, PING or USE
 * With bit 3 set (and not bit 2), the application calls the library [a]:
 * recv (not waiting), send_to, send, register, subscribe, unsubscribe,
 * check_alive or connect_direct, on an id a picks. command_timeout_ms is
 * 1: a call that waits for a reply gives up after a millisecond (nobody
 * answers while it waits), leaving its request abandoned in the FIFO for
 * the server's answer, as a real timeout does.
 * After each record the handle reads what came and writes what it has;
 * the harness reads the client's frames, which must all be well-formed
 * requests (link frames on the direct connection), and checks the
 * handle's state: a connection phase has a
 * socket and no other phase does, the request FIFO is empty without a
 * connection, the receive queue is within its caps and adds up, ids and
 * subscriptions have valid lengths. Every callback checks its arguments
 * (lengths within bounds, NUL-terminated, NULL exactly when empty) and
 * reads every byte it is given, and every log line must be printable
 * ASCII (text from the network is escaped). At the end the server closes
 * the connection: the handle must be disconnected, without socket or
 * pending request, and is freed (LeakSanitizer checks the rest).
 * With FUZZ_VERBOSE set in the environment, the library's log and the
 * frames it sends go to stderr (to see what an input does).
 */
#include "stupidp2p.c" /* the library itself: see the file comment */

#include <arpa/inet.h>
#include <fcntl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "fuzz.h"

#define FUZZ_RELAY_PORT 1
#define FUZZ_PEER_PORT 4040 /* the candidate of the harness's DIRECT_* events */
#define FUZZ_REQS 64
#define FUZZ_OUT_MAX (1u << 20)

enum {
    FUZZ_OPT_V1 = 0x01,        /* protocol_version 1                         */
    FUZZ_OPT_DROP = 0x02,      /* slow_consumer DROP                          */
    FUZZ_OPT_TOKEN = 0x04,     /* a token: the id is claimed with AUTH         */
    FUZZ_OPT_ID = 0x08,        /* reconnecting: the id "me" to restore         */
    FUZZ_OPT_SUBS = 0x10,      /* reconnecting: subscriptions "a", "bb"        */
    FUZZ_OPT_DIRECT = 0x20,    /* direct ACCEPT (else OFF)                     */
    FUZZ_OPT_QUEUE = 0x40,     /* no message callback: a receive queue of 3    */
    FUZZ_OPT_RECONNECT = 0x80  /* the first connection was made already        */
};

static void check(int ok)
{
    if (!ok)
        abort();
}

/* ---- the harness's state --------------------------------------------------------- */

/* A request not answered yet, with what a right answer needs. */
struct fuzz_req {
    uint8_t cmd, step; /* step: AUTH's */
};

static struct fuzz_state {
    struct sp_handle *h;
    struct fuzz_req reqs[FUZZ_REQS];
    unsigned req_head, req_count;
    int relay_dial;   /* a connect now is the handle's, to the relay */
    int server_fd;    /* the fake relay's end of the connection, or -1 */
    int peer_fd;      /* the fake peer's end of a direct connection, or -1 */
    int verbose;      /* FUZZ_VERBOSE set: the library's log on stderr */
    /* AUTH: the last step 1 (id and client nonce) and the challenge sent. */
    uint8_t auth_id[P2P_ID_MAX], auth_id_len;
    uint8_t client_nonce[P2P_AUTH_NONCE_SIZE], server_nonce[P2P_AUTH_NONCE_SIZE];
    uint32_t attempt; /* the last direct-path attempt number given out */
    uint64_t sink;    /* every byte a callback gets is read into this */
    size_t out_len, link_len;
    /* The client's bytes not yet a whole frame, to the relay and on the
     * direct connection (last: not cleared between inputs). */
    uint8_t out[FUZZ_OUT_MAX];
    uint8_t link[FUZZ_OUT_MAX];
} fz;

/* ---- connect ------------------------------------------------------------------ */

static int is_loopback_port(const struct sockaddr *sa, socklen_t len, uint16_t port)
{
    const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
    return len >= sizeof *in && sa->sa_family == AF_INET && in->sin_port == htons(port) &&
           in->sin_addr.s_addr == htonl(INADDR_LOOPBACK);
}

/* Turns fd into one end of a new socketpair, connected at once; returns
 * the other end. */
static int socketpair_onto(int fd)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) == -1)
        abort();
    check(dup3(sv[0], fd, O_CLOEXEC) == fd);
    close(sv[0]);
    return sv[1];
}

/* The relay's address gets the fake relay; a direct path's dial to
 * 127.0.0.1 port FUZZ_PEER_PORT gets the fake peer, one connection at a
 * time; anything else is refused. */
int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t len);
int __wrap_connect(int fd, const struct sockaddr *sa, socklen_t len)
{
    if (fz.relay_dial && is_loopback_port(sa, len, FUZZ_RELAY_PORT)) {
        if (fz.server_fd != -1) /* the previous connection, which the client ended */
            close(fz.server_fd);
        fz.server_fd = socketpair_onto(fd);
        fz.out_len = 0; /* what the old connection left is void */
        fz.req_count = 0;
        return 0;
    }
    if (!fz.relay_dial && fz.peer_fd == -1 && is_loopback_port(sa, len, FUZZ_PEER_PORT)) {
        fz.peer_fd = socketpair_onto(fd);
        fz.link_len = 0;
        return 0;
    }
    errno = ECONNREFUSED;
    return -1;
}

/* ---- what the client sent ------------------------------------------------------ */

static const char kToken[] = "tok-me";

static void remember_request(const struct p2p_request *r, const uint8_t *payload, size_t len)
{
    if (fz.req_count == FUZZ_REQS)
        return; /* the client never has this many outstanding; answers are the input's business */
    struct fuzz_req *q = &fz.reqs[(fz.req_head + fz.req_count++) % FUZZ_REQS];
    q->cmd = r->cmd;
    q->step = r->cmd == P2P_CMD_AUTH ? r->step : 0;
    if (r->cmd == P2P_CMD_AUTH && r->step == P2P_AUTH_STEP_START) {
        memcpy(fz.auth_id, r->id, r->id_len);
        fz.auth_id_len = (uint8_t)r->id_len;
        memcpy(fz.client_nonce, r->data, P2P_AUTH_NONCE_SIZE);
    }
    /* A DIRECT_* request has its layout exactly (p2p_direct_parse is the
     * stricter parser). */
    struct p2p_direct d;
    if (r->cmd >= P2P_CMD_DIRECT_OFFER && r->cmd <= P2P_CMD_DIRECT_RESULT)
        check(p2p_direct_parse(payload, len, &d) == P2P_PARSE_OK);
}

/* ---- the harness's ends of the connections ----------------------------------- */

/* Reads what the client wrote to *fd into buf[*len..cap); at EOF (the
 * client closed its end) closes *fd and sets it to -1. */
static void read_end(int *fd, uint8_t *buf, size_t *len, size_t cap)
{
    while (*fd != -1) {
        ssize_t n = read(*fd, buf + *len, cap - *len);
        if (n == 0 || (n == -1 && errno == ECONNRESET)) {
            close(*fd);
            *fd = -1;
        } else if (n == -1) {
            check(errno == EAGAIN);
            return;
        } else {
            *len += (size_t)n;
            check(*len < cap);
        }
    }
}

/* Hands every whole frame of buf[0..*len) to each (none may be empty or
 * longer than max) and keeps the rest. */
static void each_frame(uint8_t *buf, size_t *len, uint32_t max, void (*each)(const uint8_t *p, uint32_t n))
{
    size_t off = 0;
    for (;;) {
        struct p2p_frame f;
        enum p2p_frame_result r = p2p_frame_parse(buf + off, *len - off, max, &f);
        if (r == P2P_FRAME_INCOMPLETE)
            break;
        check(r == P2P_FRAME_COMPLETE && f.length > 0);
        each(f.payload, f.length);
        off += f.consumed;
    }
    memmove(buf, buf + off, *len - off);
    *len -= off;
}

/* Writes bytes to the client on fd (nothing once it is closed): a
 * socketpair takes far more than one record's bytes; the client may have
 * closed its end. */
static void write_end(int fd, const uint8_t *bytes, size_t len)
{
    if (fd == -1)
        return;
    ssize_t n = send(fd, bytes, len, MSG_NOSIGNAL);
    check(n == (ssize_t)len || (n == -1 && (errno == EPIPE || errno == ECONNRESET)));
}

/* Writes payload to fd as one frame. */
static void frame_end(int fd, const uint8_t *payload, size_t len)
{
    uint8_t buf[P2P_FRAME_HEADER_SIZE + P2P_DIRECT_MAX + 64];
    check(len <= sizeof buf - P2P_FRAME_HEADER_SIZE);
    p2p_frame_header_encode(buf, (uint32_t)len);
    memcpy(buf + P2P_FRAME_HEADER_SIZE, payload, len);
    write_end(fd, buf, P2P_FRAME_HEADER_SIZE + len);
}

/* A frame the client sent the relay: a request the server would accept
 * the layout of. */
static void on_request(const uint8_t *payload, uint32_t len)
{
    struct p2p_request req;
    check(p2p_request_parse(payload, len, &req) == P2P_PARSE_OK);
    if (fz.verbose)
        fprintf(stderr, "  client sent %02x (%u bytes)\n", payload[0], (unsigned)len);
    remember_request(&req, payload, len);
}

/* A frame the client sent on the direct connection: a link frame of a
 * known kind. */
static void on_link_frame(const uint8_t *payload, uint32_t len)
{
    struct p2p_link l;
    check(p2p_link_parse(payload, len, &l) == P2P_PARSE_OK && l.kind != P2P_LINK_KIND_UNKNOWN);
    if (fz.verbose)
        fprintf(stderr, "  client sent link frame %02x (%u bytes)\n", payload[0], (unsigned)len);
}

static void drain_client(void)
{
    read_end(&fz.server_fd, fz.out, &fz.out_len, sizeof fz.out);
    each_frame(fz.out, &fz.out_len, fz.h->max_frame, on_request); /* nothing above the grant */
}

static void drain_peer(void)
{
    read_end(&fz.peer_fd, fz.link, &fz.link_len, sizeof fz.link);
    each_frame(fz.link, &fz.link_len, P2P_DEFAULT_MAX_FRAME, on_link_frame);
}

static void server_write(const uint8_t *bytes, size_t len) { write_end(fz.server_fd, bytes, len); }
static void server_frame(const uint8_t *payload, size_t len) { frame_end(fz.server_fd, payload, len); }
static void peer_write(const uint8_t *bytes, size_t len) { write_end(fz.peer_fd, bytes, len); }
static void peer_frame(const uint8_t *payload, size_t len) { frame_end(fz.peer_fd, payload, len); }

/* ---- the server's side ---------------------------------------------------------- */

static void answer(uint8_t s)
{
    if (fz.req_count == 0)
        return;
    struct fuzz_req *q = &fz.reqs[fz.req_head];
    fz.req_head = (fz.req_head + 1) % FUZZ_REQS;
    fz.req_count--;
    uint8_t p[P2P_DIRECT_MAX];
    size_t n;
    if (s == 0xff)
        return; /* ignored, as the original server ignores HELLO */
    if (s & 0x80) {
        n = p2p_encode_reply(p, q->cmd, s & 0x7f);
    } else if (q->cmd == P2P_CMD_HELLO) {
        /* max_frame 2 .. 2 MiB, an idle timeout of 0 .. 90 s */
        n = p2p_encode_hello_reply(p, P2P_VERSION_2, 2u << (s % 21), 30u * ((s >> 5) & 3));
    } else if (q->cmd == P2P_CMD_AUTH && q->step == P2P_AUTH_STEP_START) {
        memset(fz.server_nonce, s, sizeof fz.server_nonce);
        n = p2p_encode_auth_reply(p, P2P_AUTH_STEP_START, fz.server_nonce);
    } else if (q->cmd == P2P_CMD_AUTH) {
        struct p2p_auth_keys keys;
        p2p_auth_keys_from_token(kToken, strlen(kToken), &keys);
        uint8_t msg[P2P_AUTH_MESSAGE_MAX], sig[P2P_AUTH_PROOF_SIZE];
        size_t len = p2p_auth_message(msg, fz.auth_id, fz.auth_id_len, fz.client_nonce, fz.server_nonce);
        p2p_auth_server_signature(keys.server_key, msg, len, sig);
        n = p2p_encode_auth_reply(p, P2P_AUTH_STEP_PROOF, sig);
    } else if (q->cmd == P2P_CMD_DIRECT_OFFER) {
        uint8_t secret[P2P_DIRECT_SECRET_SIZE];
        memset(secret, s, sizeof secret);
        n = p2p_encode_direct_offer_reply(p, ++fz.attempt, secret);
    } else {
        n = p2p_encode_reply(p, q->cmd, P2P_STATUS_OK);
    }
    server_frame(p, n);
}

static void event(uint8_t e)
{
    static const uint8_t *const ids[] = {(const uint8_t *)"a", (const uint8_t *)"bb", (const uint8_t *)"me"};
    const uint8_t *id = ids[(e >> 4) % 3];
    size_t id_len = strlen((const char *)id);
    uint8_t p[P2P_DIRECT_MAX];
    size_t n = 0;
    uint8_t nonce[P2P_DIRECT_NONCE_SIZE] = {(uint8_t)e};
    struct p2p_candidate cand = {P2P_CANDIDATE_LAN, FUZZ_PEER_PORT, 4, {127, 0, 0, 1}};
    switch (e % 10) {
    case 0: /* DELIVER: e >> 4 bytes of data */
        n = p2p_encode_deliver_head(p, id, id_len);
        memset(p + n, 'x', e >> 4);
        n += e >> 4;
        break;
    case 1: /* a v1 delivery */
        n = p2p_encode_send_head(p);
        memset(p + n, 'y', e >> 4);
        n += e >> 4;
        break;
    case 2:
        n = p2p_encode_presence(p, (e >> 6) & 1 ? P2P_PRESENCE_ONLINE : P2P_PRESENCE_OFFLINE, id, id_len);
        break;
    case 3:
        n = p2p_encode_gap(p, id, (e & 0x40) ? 0 : id_len, e, (uint64_t)e << 40);
        break;
    case 4: {
        static const char text[] = "bye\n\x1b[31m"; /* a line end and a terminal escape */
        n = p2p_encode_bye(p, (uint8_t)((e >> 4) % 9), text, sizeof text - 1);
        break;
    }
    case 5: /* an offer from a peer: attempt e >> 4 */
        fz.attempt = e >> 4;
        n = p2p_encode_direct_offer_event(p, id, id_len, fz.attempt, nonce, nonce, 4041, &cand, (e >> 6) & 1);
        break;
    case 6:
        n = p2p_encode_direct_answer(p, P2P_EVT_DIRECT_ANSWER, id, id_len, fz.attempt, (e >> 6) & 1, nonce, 4042,
                                     &cand, 1);
        break;
    case 7:
        n = p2p_encode_direct_sync(p, P2P_EVT_DIRECT_SYNC, id, id_len, fz.attempt);
        break;
    case 8:
        n = p2p_encode_direct_mark(p, P2P_EVT_DIRECT_MARK, id, id_len, fz.attempt,
                                   (e >> 6) & 1 ? P2P_MARK_FALLBACK : P2P_MARK_SWITCH, e >> 4);
        break;
    default: { /* the application wants a direct path to id */
        struct sp_handle *h = fz.h;
        pthread_mutex_lock(&h->mu);
        struct sp_peer *peer = sp_peer_get(h, id, id_len);
        if (peer != NULL) {
            peer->wanted = 1;
            if (peer->phase == SP_D_IDLE) {
                peer->retry_at = 0;
                peer->offer_done = 0;
            }
        }
        pthread_mutex_unlock(&h->mu);
        sp_direct_tick(h, sp_now_ms());
        return;
    }
    }
    server_frame(p, n);
}

/* ---- the peer's side of a direct connection -------------------------------------- */

/* The peer proves the attempt (a: bit 0, with a wrong mac; bit 1, then
 * USE), as the other side of the client's first peer in an attempt:
 * the secret and the nonces are the ones the relay carried to both. */
static void peer_proof(uint8_t a)
{
    struct sp_handle *h = fz.h;
    uint8_t mac[P2P_DIRECT_MAC_SIZE], frame[P2P_LINK_PROOF_SIZE];
    size_t n = 0;
    pthread_mutex_lock(&h->mu);
    for (const struct sp_peer *p = h->peers; p != NULL && n == 0; p = p->next) {
        if (p->phase != SP_D_DIALING && p->phase != SP_D_DIRECT)
            continue;
        int offerer = p->role == P2P_ROLE_OFFERER; /* the client's role */
        uint8_t role = offerer ? P2P_ROLE_TARGET : P2P_ROLE_OFFERER;
        p2p_direct_mac(p->secret, role, p->attempt, offerer ? h->reg_id : p->id, offerer ? h->reg_len : p->id_len,
                       offerer ? p->id : h->reg_id, offerer ? p->id_len : h->reg_len,
                       offerer ? p->my_nonce : p->peer_nonce, offerer ? p->peer_nonce : p->my_nonce, mac);
        mac[0] ^= (uint8_t)(a & 1);
        n = p2p_encode_link_proof(frame, role, p->attempt, mac);
    }
    pthread_mutex_unlock(&h->mu);
    if (n == 0)
        return;
    peer_frame(frame, n);
    if (a & 2)
        peer_frame(frame, p2p_encode_link_use(frame));
}

/* A well-formed link frame from the peer, chosen by e. */
static void peer_link_frame(uint8_t e)
{
    uint8_t p[P2P_LINK_DATA_HEAD_SIZE + 64];
    size_t n;
    switch (e % 4) {
    case 0: /* DATA number (e >> 2) & 15, of e >> 6 bytes */
        n = p2p_encode_link_data_head(p, (e >> 2) & 15);
        memset(p + n, 'z', e >> 6);
        n += e >> 6;
        break;
    case 1:
        n = p2p_encode_link_ack(p, e >> 2);
        break;
    case 2:
        n = p2p_encode_link_ping(p);
        break;
    default:
        n = p2p_encode_link_use(p);
        break;
    }
    peer_frame(p, n);
}

/* The handle's thread polls the direct sockets too (sp_thread_main). */
static void poll_direct(struct sp_handle *h)
{
    struct pollfd pfd[SP_DIRECT_POLL_MAX];
    struct sp_dpoll map[SP_DIRECT_POLL_MAX];
    nfds_t n = sp_direct_poll_set(h, pfd, map, 0);
    if (n == 0 || poll(pfd, n, 0) <= 0)
        return;
    for (nfds_t i = 0; i < n && !sp_muted(h); i++)
        if (pfd[i].revents)
            sp_direct_on_poll(h, &map[i], pfd[i].fd, pfd[i].revents);
}

/* ---- the handle ------------------------------------------------------------------- */

static int printable(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || (unsigned char)*s > 0x7e)
            return 0;
    return 1;
}

static void read_all(const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fz.sink += p[i];
}

static void on_message(int32_t handle, const uint8_t *sender, size_t sender_len, const uint8_t *data, size_t len,
                       void *user)
{
    check(user == &fz && handle == fz.h->id);
    check(sender_len <= P2P_ID_MAX && (sender == NULL) == (sender_len == 0));
    check(sender == NULL || sender[sender_len] == 0);
    check(data != NULL && data[len] == 0 && len <= fz.h->max_in);
    read_all(sender, sender_len);
    read_all(data, len);
}

static void on_presence(int32_t handle, const uint8_t *id, size_t id_len, int online, void *user)
{
    check(user == &fz && handle == fz.h->id);
    check(id != NULL && id_len >= 1 && id_len <= P2P_ID_MAX && id[id_len] == 0 && (online == 0 || online == 1));
    read_all(id, id_len);
}

static void on_gap(int32_t handle, const uint8_t *publisher, size_t publisher_len, uint32_t frames, uint64_t bytes,
                   void *user)
{
    check(user == &fz && handle == fz.h->id);
    check(publisher_len <= P2P_ID_MAX && (publisher == NULL) == (publisher_len == 0));
    check(publisher == NULL || publisher[publisher_len] == 0);
    read_all(publisher, publisher_len);
    fz.sink += frames + bytes;
}

static void on_state(int32_t handle, stupid_p2p_state_t state, stupid_p2p_cause_t cause, void *user)
{
    check(user == &fz && handle == fz.h->id);
    check(state == STUPID_P2P_STATE_CONNECTED || state == STUPID_P2P_STATE_CONNECTING ||
          state == STUPID_P2P_STATE_DISCONNECTED);
    check(strcmp(sp_cause_name(cause), "unknown") != 0);
}

static void on_log(int32_t handle, stupid_p2p_log_level_t level, const char *message, void *user)
{
    check(user == &fz && handle == fz.h->id);
    check(level >= STUPID_P2P_LOG_ERROR && level <= STUPID_P2P_LOG_DEBUG);
    check(strlen(message) < 1024 && printable(message));
    if (fz.verbose)
        fprintf(stderr, "  log %d: %s\n", (int)level, message);
}

static void on_path(int32_t handle, const uint8_t *peer, size_t peer_len, stupid_p2p_path_t path, void *user)
{
    check(user == &fz && handle == fz.h->id);
    check(peer != NULL && peer_len >= 1 && peer_len <= P2P_ID_MAX);
    check(path == STUPID_P2P_PATH_RELAY || path == STUPID_P2P_PATH_DIRECT);
    read_all(peer, peer_len);
}

/* ---- the application ---------------------------------------------------------------- */

/* The application calls the library (see the file comment). */
static void app_call(uint8_t a)
{
    static const char *const ids[] = {"a", "bb", "me"};
    const char *id = ids[(a >> 3) % 3];
    size_t id_len = strlen(id);
    static const uint8_t data[21] = "from the application";
    size_t len = (a >> 5) * 3u; /* 0 .. 21 bytes */
    int32_t h = fz.h->id, rc;
    switch (a % 8) {
    case 0: {
        stupid_p2p_message_t *m = NULL;
        rc = stupid_p2p_recv(h, &m, 0);
        check((rc == STUPID_P2P_NO_ERROR) == (m != NULL));
        if (m != NULL) {
            check(m->sender_len <= P2P_ID_MAX && m->sender[m->sender_len] == 0);
            check(m->data != NULL && m->data[m->length] == 0);
            read_all(m->data, m->length);
        }
        stupid_p2p_message_free(m);
        break;
    }
    case 1:
        rc = stupid_p2p_send_to(h, id, id_len, data, len);
        break;
    case 2:
        rc = stupid_p2p_send(h, data, len);
        break;
    case 3:
        rc = stupid_p2p_register(h, id, id_len);
        break;
    case 4:
        rc = stupid_p2p_subscribe(h, id, id_len);
        break;
    case 5:
        rc = stupid_p2p_unsubscribe(h, id, id_len);
        break;
    case 6:
        rc = stupid_p2p_check_alive(h, id, id_len);
        break;
    default:
        rc = stupid_p2p_connect_direct(h, id, id_len);
        check(stupid_p2p_path(h, id, id_len) == STUPID_P2P_PATH_RELAY ||
              stupid_p2p_path(h, id, id_len) == STUPID_P2P_PATH_DIRECT);
        break;
    }
    check(stupid_p2p_strerror(rc) != NULL);
    stupid_p2p_stats_t st;
    check(stupid_p2p_get_stats(h, &st) == STUPID_P2P_NO_ERROR);
    check(st.queue_length <= (uint32_t)fz.h->opt.recv_queue_max);
}

static int connection_phase(enum sp_phase ph)
{
    return ph == SP_PH_HANDSHAKE || ph == SP_PH_RESTORE || ph == SP_PH_CONNECTED;
}

/* What must hold between two wake-ups of the handle's thread. */
static void check_handle(const struct sp_handle *h)
{
    check(connection_phase(h->phase) || h->phase == SP_PH_BACKOFF || h->phase == SP_PH_FAILED_INIT);
    check(connection_phase(h->phase) == (h->fd >= 0));
    check((h->phase == SP_PH_CONNECTED) == (h->state == STUPID_P2P_STATE_CONNECTED));
    if (h->fd < 0)
        check(h->req_head == NULL && h->req_tail == NULL && sp_buf_used(&h->out) == 0);
    check(h->version == 1 || h->version == 2);
    check(h->max_frame <= (uint32_t)h->opt.max_frame_limit);
    check(h->max_in <= (uint32_t)h->opt.max_frame_limit + P2P_SERVER_FRAME_SLACK);
    check(!h->has_id || (h->reg_len >= 1));
    uint32_t count = 0;
    size_t bytes = 0;
    for (const struct sp_msg *m = h->q_head; m != NULL; m = m->next) {
        check(m->pub.sender_len <= P2P_ID_MAX && m->pub.data[m->pub.length] == 0);
        check(m->next != NULL || m == h->q_tail);
        count++;
        bytes += m->pub.length;
    }
    check(count == h->q_len && bytes == h->q_bytes);
    check(count <= (uint32_t)h->opt.recv_queue_max && bytes <= (size_t)h->opt.recv_queue_max_bytes);
    for (const struct sp_sub *s = h->subs; s != NULL; s = s->next) {
        check(s->len >= 1);
        for (const struct sp_sub *t = s->next; t != NULL; t = t->next)
            check(t->len != s->len || memcmp(t->id, s->id, s->len) != 0);
    }
    unsigned peers = 0;
    for (const struct sp_peer *p = h->peers; p != NULL; p = p->next)
        check(++peers <= SP_DIRECT_PEERS_MAX && p->id_len >= 1);
    check(peers == h->n_peers);
}

/* One iteration of the handle's thread (sp_thread_main) that finds the
 * socket readable and writable, its own deadline left to the time
 * records (with a command timeout of 1 ms, real time would end every
 * handshake); then the harness reads what the client wrote and checks the
 * handle. */
static void pump(struct sp_handle *h)
{
    if (connection_phase(h->phase))
        sp_on_socket(h, POLLIN | POLLOUT);
    poll_direct(h);
    sp_direct_tick(h, sp_now_ms()); /* and attempts the application asked for */
    drain_client();
    drain_peer();
    check_handle(h);
}

static struct sp_handle *open_handle(uint8_t opts)
{
    stupid_p2p_options_t o;
    stupid_p2p_options_init(&o);
    o.protocol_version = (opts & FUZZ_OPT_V1) ? 1 : 2;
    o.slow_consumer = (opts & FUZZ_OPT_DROP) ? STUPID_P2P_SLOW_DROP : STUPID_P2P_SLOW_DISCONNECT;
    o.direct = (opts & FUZZ_OPT_DIRECT) ? STUPID_P2P_DIRECT_ACCEPT : STUPID_P2P_DIRECT_OFF;
    o.command_timeout_ms = 1; /* see app_call */
    if (opts & FUZZ_OPT_TOKEN) {
        o.token = kToken;
        o.token_len = strlen(kToken);
    }
    if (opts & FUZZ_OPT_QUEUE) {
        o.recv_queue_max = 3;
        o.recv_queue_max_bytes = 64;
    } else {
        o.on_message = on_message;
    }
    o.on_presence = on_presence;
    o.on_gap = on_gap;
    o.on_state = on_state;
    o.on_log = on_log;
    o.log_level = STUPID_P2P_LOG_DEBUG;
    o.on_path = on_path;
    o.user_data = &fz;
    check(sp_options_valid(&o));
    int32_t err = 0;
    struct sp_handle *h = sp_handle_new("127.0.0.1", FUZZ_RELAY_PORT, &o, &err);
    check(h != NULL);
    if (opts & FUZZ_OPT_RECONNECT) {
        pthread_mutex_lock(&h->mu);
        h->init_done = 1;
        if (opts & FUZZ_OPT_ID) {
            h->has_id = 1;
            h->reg_len = 2;
            memcpy(h->reg_id, "me", 2);
        }
        if (opts & FUZZ_OPT_SUBS) {
            sp_sub_add(h, (const uint8_t *)"a", 1);
            sp_sub_add(h, (const uint8_t *)"bb", 2);
        }
        pthread_mutex_unlock(&h->mu);
    }
    return h;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    memset(&fz, 0, offsetof(struct fuzz_state, out));
    fz.server_fd = fz.peer_fd = -1;
    fz.verbose = getenv("FUZZ_VERBOSE") != NULL;
    struct sp_handle *h = fz.h = open_handle(data[0]);
    check(sp_reg_add(h) == 0); /* for the application's calls */
    fz.relay_dial = 1;
    sp_attempt_start(h); /* connects at once: see __wrap_connect */
    fz.relay_dial = 0;
    drain_client();
    check_handle(h);
    size_t off = 1;
    while (off < size && h->phase != SP_PH_FAILED_INIT) {
        uint8_t head = data[off++];
        uint8_t arg = off < size ? data[off++] : 0;
        if ((head & 12) == 8) {
            app_call(arg);
            pump(h);
            continue;
        }
        if (head & 4) { /* the peer of a direct connection */
            switch (head & 3) {
            case 0: {
                size_t n = arg < size - off ? arg : size - off;
                peer_write(data + off, n);
                off += n;
                break;
            }
            case 1:
                peer_proof(arg);
                break;
            case 2:
                if (fz.peer_fd != -1) {
                    close(fz.peer_fd);
                    fz.peer_fd = -1;
                }
                break;
            default:
                peer_link_frame(arg);
                break;
            }
            pump(h);
            continue;
        }
        switch (head & 3) {
        case 0: {
            size_t n = arg < size - off ? arg : size - off;
            server_write(data + off, n);
            off += n;
            break;
        }
        case 1:
            answer(arg);
            break;
        case 2: {
            uint64_t now = sp_now_ms();
            if ((arg & 1) && h->deadline != 0) {
                fz.relay_dial = h->phase == SP_PH_BACKOFF; /* the backoff ends in a reconnection */
                sp_on_deadline(h, h->deadline > now ? h->deadline : now);
                fz.relay_dial = 0;
            }
            if ((arg & 2) && h->direct_deadline != 0)
                sp_direct_tick(h, h->direct_deadline > now ? h->direct_deadline : now);
            break;
        }
        default:
            event(arg);
            break;
        }
        pump(h);
    }
    /* The server and the peer go away. */
    if (fz.server_fd != -1) {
        close(fz.server_fd);
        fz.server_fd = -1;
    }
    if (fz.peer_fd != -1) {
        close(fz.peer_fd);
        fz.peer_fd = -1;
    }
    if (connection_phase(h->phase))
        sp_on_socket(h, POLLIN);
    check_handle(h);
    check(h->phase == SP_PH_BACKOFF || h->phase == SP_PH_FAILED_INIT);
    check(h->fd == -1 && h->req_head == NULL);
    sp_reg_remove(h, 0);
    sp_handle_free(h);
    return 0;
}
