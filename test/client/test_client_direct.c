/*
 * test_client_direct.c - direct paths in the C library (stupidp2p(3),
 * DIRECT PATHS) on 127.0.0.1, where two handles reach each other over
 * their LAN candidates (the relay connection's own address):
 *
 *  - connect_direct makes a path both ways; path() and the path callback
 *    say DIRECT; send_to's in both directions arrive once and in order,
 *    and the relay delivers none of them (its deliveries counter, logged
 *    on SIGUSR1, does not move), while SEND still goes through it;
 *  - the path killed mid-stream (shutdown(2) on one end's socket, found
 *    through /proc/self/fd and pidfd_getfd(2): a seam outside the
 *    library), with messages
 *    flowing both ways: both fall back to the relay by themselves, and
 *    every message arrives exactly once and in order;
 *  - a peer made of raw frames (the test, registered as the target): the
 *    library's offer, its dials and listener; a stranger connecting to
 *    the listener with a wrong proof, and one sending the library's own
 *    proof back to it, are closed; the right proof is answered with the
 *    library's proof and USE, and the SWITCH mark follows through the
 *    relay: the protocol of man/stupidp2p.7 byte for byte;
 *  - a raw peer that sends 20,000 messages on the path and never reads:
 *    the library owes it one ACK rather than queueing one per read, and
 *    sends it once the peer reads;
 *  - a handle closed right after its last send_to on a path: the peer
 *    still gets every message (deinit waits for the acknowledgement);
 *  - offers that cross (both ask at once) make one path, both ways; so do
 *    two that do not quite cross (one declined because its target had not
 *    asked yet, then the target's own);
 *  - a peer with the direct option OFF declines: the path stays RELAY and
 *    messages keep flowing through the relay;
 *  - the two handles on different relays of a cluster (three relays and
 *    nats-server, test/support/cluster.h; skipped without nats-server):
 *    the rendezvous crosses the relays and makes a path both ways, on
 *    which send_to's in both directions arrive once and in order while
 *    neither relay delivers any of them.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <signal.h>
#include <sched.h>
#include <stdatomic.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include "auth.h"
#include "client_util.h"
#include "cluster.h"
#include "direct_proof.h"
#include "v2.h"

#define ID(s) (const uint8_t *)(s), (sizeof(s) - 1)

/* Path changes, counted in the handle's recorder. */
static void on_path(int32_t h, const uint8_t *peer, size_t len, stupid_p2p_path_t path, void *u)
{
    (void)h, (void)peer, (void)len;
    struct ct_rec *r = u;
    pthread_mutex_lock(&r->mu);
    if (path == STUPID_P2P_PATH_DIRECT)
        r->n_direct++;
    else
        r->n_relay++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static int32_t open_direct(uint16_t port, struct ct_rec *rec, int32_t mode)
{
    stupid_p2p_options_t o;
    ct_options(&o, rec, 1);
    o.direct = mode;
    o.direct_keepalive_ms = 300;
    if (getenv("CT_DEBUG")) o.log_level = STUPID_P2P_LOG_DEBUG;
    o.on_path = on_path;
    return ct_open_opts(port, &o);
}

/* alice and bob, registered, with direct options mode_a and mode_b. */
struct pair {
    struct ct_rec ra, rb;
    int32_t a, b;
};

static void pair_open_on(uint16_t port_a, uint16_t port_b, struct pair *x, int32_t mode_a, int32_t mode_b)
{
    ct_rec_init(&x->ra);
    ct_rec_init(&x->rb);
    x->a = open_direct(port_a, &x->ra, mode_a);
    x->b = open_direct(port_b, &x->rb, mode_b);
    ct_ok(stupid_p2p_register(x->a, ID("alice")));
    ct_ok(stupid_p2p_register(x->b, ID("bob")));
}

static void pair_open(const struct p2p_server *srv, struct pair *x, int32_t mode_a, int32_t mode_b)
{
    pair_open_on(srv->port, srv->port, x, mode_a, mode_b);
}

static void pair_close(struct pair *x)
{
    stupid_p2p_deinit(x->a);
    stupid_p2p_deinit(x->b);
    ct_rec_destroy(&x->ra);
    ct_rec_destroy(&x->rb);
}

/* The relay's count of deliveries, from the counters it logs on SIGUSR1. */
static long relay_deliveries(const struct p2p_server *srv)
{
    int before = tc_log_count(srv, "counters:");
    kill(srv->pid, SIGUSR1);
    int64_t until = ct_now_ms() + CT_WAIT_MS;
    while (tc_log_count(srv, "counters:") <= before && ct_now_ms() < until)
        usleep(5000);
    FILE *f = fopen(srv->log_path, "r");
    assert_non_null(f);
    char line[8192];
    long n = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        const char *at = strstr(line, " deliveries=");
        if (strstr(line, "counters:") != NULL && at != NULL)
            n = atol(at + strlen(" deliveries="));
    }
    fclose(f);
    assert_true(n >= 0);
    return n;
}

/* Asks for the counters (SIGUSR1) until needle is among them (bounded). */
static void wait_counter(const struct p2p_server *srv, const char *needle)
{
    int64_t until = ct_now_ms() + CT_WAIT_MS;
    while (tc_log_count(srv, needle) == 0) {
        if (ct_now_ms() > until)
            fail_msg("the server's counters never showed %s", needle);
        kill(srv->pid, SIGUSR1);
        usleep(20000);
    }
}

/* Until alice (a) and bob (b) see each other online: at once on one
 * server, a claim's NATS hop later across relays. Bounded. */
static void wait_known_across(int32_t a, int32_t b)
{
    int64_t until = ct_now_ms() + CT_WAIT_MS;
    while ((stupid_p2p_check_alive(a, ID("bob")) != 1 || stupid_p2p_check_alive(b, ID("alice")) != 1) &&
           ct_now_ms() < until)
        usleep(2000);
}

static void wait_direct(int32_t a, const char *peer_of_a, int32_t b, const char *peer_of_b)
{
    int64_t until = ct_now_ms() + CT_WAIT_MS;
    while (ct_now_ms() < until) {
        if (stupid_p2p_path(a, peer_of_a, strlen(peer_of_a)) == STUPID_P2P_PATH_DIRECT &&
            stupid_p2p_path(b, peer_of_b, strlen(peer_of_b)) == STUPID_P2P_PATH_DIRECT)
            return;
        usleep(2000);
    }
    fail_msg("no direct path within %d ms", CT_WAIT_MS);
}

/* Every message of rec, from `from`, is "<tag> <i>" for i = 0, 1, ...
 * exactly: none missing, none twice, in order. */
static void expect_sequence(struct ct_rec *r, const char *from, const char *tag, int n)
{
    if (!CT_WAIT_FOR(r, CT_WAIT_MS, r->n_msgs >= n))
        fail_msg("%s: %d of %d messages", tag, CT_GET(r, r->n_msgs), n);
    pthread_mutex_lock(&r->mu);
    int k = 0;
    for (int i = 0; i < r->n_msgs; i++) {
        if (strcmp(r->sender[i], from) != 0)
            continue;
        char want[32];
        snprintf(want, sizeof want, "%s %d", tag, k);
        if (strcmp(r->first[i], want) != 0) {
            for (int j = 0; j < r->n_msgs; j++)
                if (strcmp(r->first[j], want) == 0)
                    fprintf(stderr, "(\"%s\" is message %d of %d)\n", want, j, r->n_msgs);
            pthread_mutex_unlock(&r->mu);
            fail_msg("message %d from %s is \"%s\", expected \"%s\"", i, from, r->first[i], want);
        }
        k++;
    }
    pthread_mutex_unlock(&r->mu);
    assert_int_equal(k, n);
}

static void send_numbered(int32_t h, const char *to, const char *tag, int from, int to_excl)
{
    for (int i = from; i < to_excl; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "%s %d", tag, i);
        ct_ok(stupid_p2p_send_to(h, to, strlen(to), m, (size_t)n));
    }
}

static void test_direct_on_loopback(void **state)
{
    struct p2p_server *srv = *state;
    struct pair x;
    pair_open(srv, &x, STUPID_P2P_DIRECT_AUTO, STUPID_P2P_DIRECT_ACCEPT);
    int32_t a = x.a, b = x.b;
    struct ct_rec *ra = &x.ra, *rb = &x.rb;
    assert_int_equal(stupid_p2p_path(a, ID("bob")), STUPID_P2P_PATH_RELAY);
    ct_ok(stupid_p2p_connect_direct(a, ID("bob")));
    wait_direct(a, "bob", b, "alice");
    assert_true(CT_WAIT_FOR(ra, CT_WAIT_MS, ra->n_direct == 1));
    assert_true(CT_WAIT_FOR(rb, CT_WAIT_MS, rb->n_direct == 1));

    long before = relay_deliveries(srv);
    enum { N = 500 };
    send_numbered(a, "bob", "ab", 0, N);
    send_numbered(b, "alice", "ba", 0, N);
    expect_sequence(rb, "alice", "ab", N);
    expect_sequence(ra, "bob", "ba", N);
    assert_int_equal(relay_deliveries(srv), before);
    /* A broadcast still goes through the relay. */
    ct_ok(stupid_p2p_subscribe(b, ID("alice")));
    ct_ok(stupid_p2p_send(a, "all", 3));
    assert_true(CT_WAIT_FOR(rb, CT_WAIT_MS, rb->n_msgs == N + 1));
    assert_int_equal(relay_deliveries(srv), before + 1);
    assert_int_equal(CT_GET(ra, ra->n_relay), 0);
    pair_close(&x);
}

/* Calls act on every IPv4 socket of this process that has a peer, with
 * the peer's port, until it has said yes (returned nonzero) `most` times;
 * returns how many times it did. The library's descriptors are not
 * touched by number (the library may close and reuse one meanwhile):
 * each is duplicated with pidfd_getfd(2), and the duplicate examined and
 * acted on; shutdown and setsockopt act on the socket, whichever
 * descriptor names it. */
static int each_connected_socket(int (*act)(int fd, uint16_t peer_port, void *arg), void *arg, int most)
{
    int pidfd = (int)syscall(SYS_pidfd_open, getpid(), 0);
    assert_true(pidfd >= 0);
    DIR *d = opendir("/proc/self/fd");
    assert_non_null(d);
    int yes = 0;
    struct dirent *e;
    while (yes < most && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        int fd = (int)syscall(SYS_pidfd_getfd, pidfd, atoi(e->d_name), 0);
        if (fd < 0)
            continue;
        struct stat st;
        struct sockaddr_in peer;
        socklen_t len = sizeof peer;
        if (fstat(fd, &st) == 0 && S_ISSOCK(st.st_mode) &&
            getpeername(fd, (struct sockaddr *)&peer, &len) == 0 && peer.sin_family == AF_INET)
            yes += act(fd, ntohs(peer.sin_port), arg) != 0;
        close(fd);
    }
    closedir(d);
    close(pidfd);
    return yes;
}

static int shut_unless_relay(int fd, uint16_t port, void *arg)
{
    const uint16_t *relays = arg;
    return port != relays[0] && port != relays[1] && shutdown(fd, SHUT_RDWR) == 0;
}

/* Shuts down the first TCP socket of this process connected to 127.0.0.1
 * on another port than the servers' (relay_a, relay_b: the same one when
 * there is one server): one end of the direct path. */
static int cut_direct_socket(uint16_t relay_a, uint16_t relay_b)
{
    uint16_t relays[2] = {relay_a, relay_b};
    return each_connected_socket(shut_unless_relay, relays, 1);
}

struct sender {
    int32_t h;
    const char *to, *tag;
    int n;
};

static void *send_thread(void *arg)
{
    struct sender *s = arg;
    for (int i = 0; i < s->n; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "%s %d", s->tag, i);
        int32_t rc;
        /* A send may meet the moment the relay is being restored: retry
         * (bounded) as an application would. */
        for (int k = 0; k < 100; k++) {
            rc = stupid_p2p_send_to(s->h, s->to, strlen(s->to), m, (size_t)n);
            if (rc == STUPID_P2P_NO_ERROR)
                break;
            usleep(10000);
        }
        if (rc != STUPID_P2P_NO_ERROR)
            return (void *)1;
    }
    return NULL;
}

/* alice on relay_a, bob on relay_b (the same server, or two of a
 * cluster), a direct path, messages flowing both ways, the path cut. */
static void killed_mid_stream(uint16_t relay_a, uint16_t relay_b)
{
    struct pair x;
    pair_open_on(relay_a, relay_b, &x, STUPID_P2P_DIRECT_AUTO, STUPID_P2P_DIRECT_ACCEPT);
    int32_t a = x.a, b = x.b;
    struct ct_rec *ra = &x.ra, *rb = &x.rb;
    wait_known_across(a, b);
    ct_ok(stupid_p2p_connect_direct(a, ID("bob")));
    wait_direct(a, "bob", b, "alice");

    enum { N = 3000 };
    struct sender sa = {a, "bob", "ab", N}, sb = {b, "alice", "ba", N};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, send_thread, &sa), 0);
    assert_int_equal(pthread_create(&tb, NULL, send_thread, &sb), 0);
    /* Mid-stream: once a few hundred have arrived each way. */
    assert_true(CT_WAIT_FOR(rb, CT_WAIT_MS, rb->n_msgs >= 300));
    assert_true(CT_WAIT_FOR(ra, CT_WAIT_MS, ra->n_msgs >= 300));
    assert_true(cut_direct_socket(relay_a, relay_b));
    void *ra_ret, *rb_ret;
    pthread_join(ta, &ra_ret);
    pthread_join(tb, &rb_ret);
    assert_null(ra_ret);
    assert_null(rb_ret);
    expect_sequence(rb, "alice", "ab", N);
    expect_sequence(ra, "bob", "ba", N);
    /* Both fell back (and may have made a new path since). */
    assert_true(CT_WAIT_FOR(ra, CT_WAIT_MS, ra->n_relay >= 1));
    assert_true(CT_WAIT_FOR(rb, CT_WAIT_MS, rb->n_relay >= 1));
    /* Nothing more trickles in later: no duplicate after the fact. */
    ct_barrier(b);
    ct_barrier(a);
    assert_int_equal(CT_GET(rb, rb->n_msgs), N);
    assert_int_equal(CT_GET(ra, ra->n_msgs), N);
    pair_close(&x);
}

static void test_direct_killed_mid_stream(void **state)
{
    struct p2p_server *srv = *state;
    killed_mid_stream(srv->port, srv->port);
}

/* ---- a peer made of raw frames ----------------------------------------------------- */

static void recv_direct_event(int fd, uint8_t cmd, uint8_t *buf, size_t cap, struct p2p_direct *d)
{
    for (int i = 0; i < 20; i++) {
        ssize_t n = tc_recv_frame(fd, buf, cap, CT_WAIT_MS);
        if (n <= 0)
            fail_msg("no frame (waiting for event %02x)", cmd);
        if (buf[0] == cmd) {
            assert_int_equal(p2p_direct_parse(buf, (size_t)n, d), P2P_PARSE_OK);
            return;
        }
        /* replies to our own requests, heartbeats: not what we wait for */
    }
    fail_msg("event %02x did not come", cmd);
}

static int tcp_to(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(port)};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof a), 0);
    return fd;
}

/* bob as raw frames, and what he learned of the attempt alice offered. */
struct raw_bob {
    int relay;        /* his connection to the server */
    uint32_t attempt;
    uint8_t secret[32], nonce_a[32], nonce_b[32];
    uint16_t listener; /* alice's LAN listener on 127.0.0.1 */
};

/* alice (a, registered) offers a path to bob; he accepts and the SYNC
 * comes: both may dial now. */
static void raw_rendezvous(const struct p2p_server *srv, int32_t a, struct raw_bob *b)
{
    b->relay = tc_v2_connect(srv->port);
    tc_register(b->relay, "bob", P2P_STATUS_OK);
    ct_ok(stupid_p2p_connect_direct(a, ID("bob")));
    uint8_t buf[1024], out[P2P_DIRECT_MAX];
    struct p2p_direct d;
    recv_direct_event(b->relay, P2P_EVT_DIRECT_OFFER, buf, sizeof buf, &d);
    assert_memory_equal(d.id, "alice", 5);
    b->attempt = d.attempt;
    memcpy(b->secret, d.secret, 32);
    memcpy(b->nonce_a, d.nonce, 32);
    memset(b->nonce_b, 0x5b, 32);
    /* The reflexive candidate first, then the library's LAN listener on
     * 127.0.0.1. */
    assert_true(d.candidate_count >= 2);
    assert_int_equal(d.candidates[0].kind, P2P_CANDIDATE_REFLEXIVE);
    assert_int_equal(d.candidates[1].kind, P2P_CANDIDATE_LAN);
    assert_int_equal(d.candidates[1].addr[0], 127);
    b->listener = d.candidates[1].port;
    size_t n = p2p_encode_direct_answer(out, P2P_CMD_DIRECT_ANSWER, ID("alice"), b->attempt, P2P_DIRECT_ACCEPT,
                                        b->nonce_b, 1, NULL, 0);
    tc_send_frame(b->relay, out, n);
    recv_direct_event(b->relay, P2P_EVT_DIRECT_SYNC, buf, sizeof buf, &d);
    assert_int_equal(d.attempt, b->attempt);
}

/* bob dials alice's listener from a socket whose receive buffer is rcvbuf
 * (0: the default), proves himself, checks her proof, gets USE and her
 * SWITCH mark: her path to him is direct. Returns his end of it. */
static int raw_take_path(int32_t a, const struct raw_bob *b, int rcvbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    if (rcvbuf > 0)
        assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf), 0);
    struct sockaddr_in to = {.sin_family = AF_INET, .sin_port = htons(b->listener)};
    to.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(connect(fd, (struct sockaddr *)&to, sizeof to), 0);
    uint8_t frame[P2P_LINK_PROOF_SIZE], mac[32], theirs[64], buf[1024];
    p2p_direct_mac(b->secret, P2P_ROLE_TARGET, b->attempt, ID("alice"), ID("bob"), b->nonce_a, b->nonce_b, mac);
    size_t n = p2p_encode_link_proof(frame, P2P_ROLE_TARGET, b->attempt, mac);
    tc_send_frame(fd, frame, n);
    assert_int_equal(tc_recv_frame(fd, theirs, sizeof theirs, CT_WAIT_MS), P2P_LINK_PROOF_SIZE);
    struct p2p_link l;
    assert_int_equal(p2p_link_parse(theirs, P2P_LINK_PROOF_SIZE, &l), P2P_PARSE_OK);
    assert_int_equal(l.role, P2P_ROLE_OFFERER);
    assert_true(p2p_direct_mac_valid(b->secret, P2P_ROLE_OFFERER, b->attempt, ID("alice"), ID("bob"), b->nonce_a,
                                     b->nonce_b, l.mac));
    static const uint8_t use[] = {P2P_LINK_USE};
    tc_expect_frame(fd, use, 1);
    /* The SWITCH mark through the relay. */
    struct p2p_direct d;
    recv_direct_event(b->relay, P2P_EVT_DIRECT_MARK, buf, sizeof buf, &d);
    assert_int_equal(d.mark_kind, P2P_MARK_SWITCH);
    assert_int_equal(d.seq, 1);
    assert_int_equal(stupid_p2p_path(a, ID("bob")), STUPID_P2P_PATH_DIRECT);
    return fd;
}

/* bob's SWITCH mark through the relay: alice delivers his DATA from now. */
static void raw_switch(const struct raw_bob *b)
{
    uint8_t out[P2P_DIRECT_MAX];
    size_t n = p2p_encode_direct_mark(out, P2P_CMD_DIRECT_MARK, ID("alice"), b->attempt, P2P_MARK_SWITCH, 1);
    tc_send_frame(b->relay, out, n);
}

static void test_raw_peer_and_strangers(void **state)
{
    struct p2p_server *srv = *state;
    struct ct_rec ra;
    ct_rec_init(&ra);
    int32_t a = open_direct(srv->port, &ra, STUPID_P2P_DIRECT_AUTO);
    ct_ok(stupid_p2p_register(a, ID("alice")));
    struct raw_bob b;
    raw_rendezvous(srv, a, &b);
    uint8_t buf[1024];

    /* A stranger with a made-up proof: closed. */
    uint8_t frame[P2P_LINK_PROOF_SIZE], mac[32], theirs[64];
    memset(mac, 0x11, sizeof mac);
    int s1 = tcp_to(b.listener);
    size_t n = p2p_encode_link_proof(frame, P2P_ROLE_TARGET, b.attempt, mac);
    tc_send_frame(s1, frame, n);
    /* The library speaks first: its own proof; then it closes on ours. */
    assert_int_equal(tc_recv_frame(s1, theirs, sizeof theirs, CT_WAIT_MS), P2P_LINK_PROOF_SIZE);
    tc_expect_closed(s1, CT_WAIT_MS, 0);
    close(s1);
    /* A stranger sending the library's own proof back: the role differs. */
    int s2 = tcp_to(b.listener);
    assert_int_equal(tc_recv_frame(s2, theirs, sizeof theirs, CT_WAIT_MS), P2P_LINK_PROOF_SIZE);
    tc_send_frame(s2, theirs, P2P_LINK_PROOF_SIZE);
    tc_expect_closed(s2, CT_WAIT_MS, 0);
    close(s2);

    /* The real peer: its proof passes; the library's is right too; USE,
     * the SWITCH mark; then DATA 1 on the path. */
    int s3 = raw_take_path(a, &b, 0);
    ct_ok(stupid_p2p_send_to(a, ID("bob"), "hi", 2));
    static const uint8_t data1[] = {P2P_LINK_DATA, 0, 0, 0, 0, 0, 0, 0, 1, 'h', 'i'};
    tc_expect_frame(s3, data1, sizeof data1);
    /* Our DATA 1 to the library is held until our SWITCH mark. */
    uint8_t ours[] = {P2P_LINK_DATA, 0, 0, 0, 0, 0, 0, 0, 1, 'y', 'o'};
    tc_send_frame(s3, ours, sizeof ours);
    raw_switch(&b);
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_msgs == 1));
    assert_string_equal(ra.first[0], "yo");
    assert_string_equal(ra.sender[0], "bob");
    static const uint8_t ack1[] = {P2P_LINK_ACK, 0, 0, 0, 0, 0, 0, 0, 1};
    /* Pings may come before the ACK. */
    for (int i = 0; i < 50; i++) {
        ssize_t got = tc_recv_frame(s3, buf, sizeof buf, CT_WAIT_MS);
        assert_true(got > 0);
        if (got == 1 && buf[0] == P2P_LINK_PING)
            continue;
        assert_int_equal(got, sizeof ack1);
        assert_memory_equal(buf, ack1, sizeof ack1);
        break;
    }
    close(s3);
    close(b.relay);
    stupid_p2p_deinit(a);
    ct_rec_destroy(&ra);
}

struct sndbuf_to {
    uint16_t port;
    int bytes;
};

static int set_sndbuf_if_to(int fd, uint16_t port, void *arg)
{
    const struct sndbuf_to *w = arg;
    return port == w->port && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &w->bytes, sizeof w->bytes) == 0;
}

static atomic_int never_reads_delivered;

static void count_message(int32_t h, const uint8_t *sender, size_t slen, const uint8_t *data, size_t len, void *u)
{
    (void)h, (void)sender, (void)slen, (void)data, (void)len, (void)u;
    atomic_fetch_add(&never_reads_delivered, 1);
}

/* A peer that sends on the path and never reads: the library owes it one
 * ACK, for the highest number, instead of queueing one per read of its
 * DATA (which grew the library's output without bound: about one ACK per
 * two of the peer's messages here), and sends that ACK once the peer
 * reads again. */
static void test_peer_that_never_reads(void **state)
{
    struct p2p_server *srv = *state;
    stupid_p2p_options_t o;
    stupid_p2p_options_init(&o);
    o.direct = STUPID_P2P_DIRECT_ACCEPT;
    o.on_message = count_message;
    int32_t a = stupid_p2p_init_ex("127.0.0.1", srv->port, &o);
    assert_true(a >= 0);
    ct_ok(stupid_p2p_register(a, ID("alice")));
    struct raw_bob b;
    raw_rendezvous(srv, a, &b);
    int path = raw_take_path(a, &b, 4096);
    /* The library's end: a small send buffer, so that what bob does not
     * read backs up into the library soon. */
    struct sockaddr_in me;
    socklen_t ml = sizeof me;
    assert_int_equal(getsockname(path, (struct sockaddr *)&me, &ml), 0);
    struct sndbuf_to small = {ntohs(me.sin_port), 4096};
    assert_int_equal(each_connected_socket(set_sndbuf_if_to, &small, 2), 1);
    raw_switch(&b);

    /* 20,000 one-byte messages, each sent once the one before was
     * delivered, so that the library reads each on its own (and once
     * queued an ACK for each); bob reads nothing meanwhile. */
    enum { N = 20000 };
    atomic_store(&never_reads_delivered, 0);
    uint8_t data[P2P_LINK_DATA_HEAD_SIZE + 1];
    int64_t deadline = ct_now_ms() + 60000;
    for (uint64_t i = 1; i <= N; i++) {
        size_t n = p2p_encode_link_data_head(data, i);
        data[n] = 'x';
        tc_send_frame(path, data, n + 1);
        while ((uint64_t)atomic_load(&never_reads_delivered) < i) {
            if (ct_now_ms() > deadline)
                fail_msg("message %llu was not delivered", (unsigned long long)i);
            sched_yield();
        }
    }

    /* Now bob reads: ACKs (and PINGs) until the one for N, which must come
     * although it was owed while bob did not read. The sockets' buffers
     * between them held about a thousand ACKs when measured; one per
     * message, as before, is 20,000. */
    int acks = 0;
    uint64_t last = 0;
    uint8_t buf[64];
    while (last != N) {
        ssize_t got = tc_recv_frame(path, buf, sizeof buf, CT_WAIT_MS);
        assert_true(got > 0);
        if (got == 1 && buf[0] == P2P_LINK_PING)
            continue;
        struct p2p_link l;
        assert_int_equal(p2p_link_parse(buf, (size_t)got, &l), P2P_PARSE_OK);
        assert_int_equal(l.kind, P2P_LINK_KIND_ACK);
        assert_true(l.seq > last);
        last = l.seq;
        acks++;
    }
    print_message("bob read %d ACKs for %d messages\n", acks, N);
    assert_true(acks <= N / 4);
    assert_int_equal(stupid_p2p_path(a, ID("bob")), STUPID_P2P_PATH_DIRECT);
    close(path);
    close(b.relay);
    stupid_p2p_deinit(a);
}

/* A program that sends and closes at once loses nothing: deinit waits
 * for the peer's acknowledgement of what is in flight on the path. */
static void test_send_then_deinit(void **state)
{
    struct p2p_server *srv = *state;
    struct pair x;
    pair_open(srv, &x, STUPID_P2P_DIRECT_AUTO, STUPID_P2P_DIRECT_ACCEPT);
    ct_ok(stupid_p2p_connect_direct(x.a, ID("bob")));
    wait_direct(x.a, "bob", x.b, "alice");
    /* 2000 messages of 2 KiB: more than the sockets' buffers take at
     * once, so that some wait in the library when deinit is called. The
     * recorder keeps the text before the NUL. */
    enum { N = 2000, SIZE = 2048 };
    static char m[SIZE];
    memset(m, 'x', sizeof m);
    for (int i = 0; i < N; i++) {
        int n = snprintf(m, 32, "ab %d", i);
        m[n] = 0;
        ct_ok(stupid_p2p_send_to(x.a, "bob", 3, m, SIZE));
    }
    stupid_p2p_deinit(x.a);
    expect_sequence(&x.rb, "alice", "ab", N);
    stupid_p2p_deinit(x.b);
    ct_rec_destroy(&x.ra);
    ct_rec_destroy(&x.rb);
}

struct offer_arg {
    int32_t h;
    const char *to;
    int32_t rc;
};

static void *offer_thread(void *arg)
{
    struct offer_arg *o = arg;
    o->rc = stupid_p2p_connect_direct(o->h, o->to, strlen(o->to));
    return NULL;
}

/* Both ask at once: the offers cross, the one from the smaller id wins on
 * both sides, and one path carries both directions. */
static void test_crossing_offers(void **state)
{
    struct p2p_server *srv = *state;
    struct pair x;
    pair_open(srv, &x, STUPID_P2P_DIRECT_AUTO, STUPID_P2P_DIRECT_AUTO);
    int32_t a = x.a, b = x.b;
    struct ct_rec *ra = &x.ra, *rb = &x.rb;
    struct offer_arg oa = {a, "bob", 1}, ob = {b, "alice", 1};
    pthread_t ta, tb;
    assert_int_equal(pthread_create(&ta, NULL, offer_thread, &oa), 0);
    assert_int_equal(pthread_create(&tb, NULL, offer_thread, &ob), 0);
    pthread_join(ta, NULL);
    pthread_join(tb, NULL);
    ct_ok(oa.rc);
    ct_ok(ob.rc);
    wait_direct(a, "bob", b, "alice");
    long before = relay_deliveries(srv);
    send_numbered(a, "bob", "ab", 0, 100);
    send_numbered(b, "alice", "ba", 0, 100);
    expect_sequence(rb, "alice", "ab", 100);
    expect_sequence(ra, "bob", "ba", 100);
    assert_int_equal(relay_deliveries(srv), before);
    assert_int_equal(CT_GET(ra, ra->n_direct), 1);
    assert_int_equal(CT_GET(rb, rb->n_direct), 1);
    pair_close(&x);
}

/* The interleaving of the crossing that does not quite cross, in order:
 * alice's offer reaches bob before his own connect_direct (his direct
 * option is off: he declines), then bob asks. Alice asked for a path
 * herself, so she takes his offer: one path. Before, the decline had
 * cleared her wanted flag, she declined his offer, and neither tried
 * again. */
static void test_declined_before_the_peer_asked(void **state)
{
    struct p2p_server *srv = *state;
    struct pair x;
    pair_open(srv, &x, STUPID_P2P_DIRECT_OFF, STUPID_P2P_DIRECT_OFF);
    ct_ok(stupid_p2p_connect_direct(x.a, ID("bob")));
    /* Counted before it is forwarded: it reaches alice before bob's offer. */
    wait_counter(srv, "direct_answers{answer=\"decline\"}=1");
    assert_int_equal(stupid_p2p_path(x.a, ID("bob")), STUPID_P2P_PATH_RELAY);
    ct_ok(stupid_p2p_connect_direct(x.b, ID("alice")));
    wait_direct(x.a, "bob", x.b, "alice");
    send_numbered(x.a, "bob", "ab", 0, 10);
    send_numbered(x.b, "alice", "ba", 0, 10);
    expect_sequence(&x.rb, "alice", "ab", 10);
    expect_sequence(&x.ra, "bob", "ba", 10);
    pair_close(&x);
}

static void test_declined_stays_relayed(void **state)
{
    struct p2p_server *srv = *state;
    struct pair x;
    pair_open(srv, &x, STUPID_P2P_DIRECT_AUTO, STUPID_P2P_DIRECT_OFF);
    int32_t a = x.a;
    struct ct_rec *ra = &x.ra, *rb = &x.rb;
    ct_ok(stupid_p2p_connect_direct(a, ID("bob")));
    wait_counter(srv, "direct_answers{answer=\"decline\"}=1");
    long before = relay_deliveries(srv);
    send_numbered(a, "bob", "ab", 0, 50);
    expect_sequence(rb, "alice", "ab", 50);
    assert_int_equal(relay_deliveries(srv), before + 50);
    assert_int_equal(stupid_p2p_path(a, ID("bob")), STUPID_P2P_PATH_RELAY);
    assert_int_equal(CT_GET(ra, ra->n_direct), 0);
    pair_close(&x);
}

/* Both handles' messages go direct across two relays: the relays'
 * deliveries (stupidp2p_deliveries_total) do not move while they flow. */
static void test_direct_across_relays(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    struct pair x;
    pair_open_on(cl_port(c, 0), cl_port(c, 1), &x, STUPID_P2P_DIRECT_AUTO, STUPID_P2P_DIRECT_ACCEPT);
    int32_t a = x.a, b = x.b;
    struct ct_rec *ra = &x.ra, *rb = &x.rb;
    wait_known_across(a, b);
    ct_ok(stupid_p2p_connect_direct(a, ID("bob")));
    wait_direct(a, "bob", b, "alice");
    assert_true(CT_WAIT_FOR(ra, CT_WAIT_MS, ra->n_direct == 1));
    assert_true(CT_WAIT_FOR(rb, CT_WAIT_MS, rb->n_direct == 1));

    double before0 = cl_metric(c, 0, "stupidp2p_deliveries_total");
    double before1 = cl_metric(c, 1, "stupidp2p_deliveries_total");
    enum { N = 500 };
    send_numbered(a, "bob", "ab", 0, N);
    send_numbered(b, "alice", "ba", 0, N);
    expect_sequence(rb, "alice", "ab", N);
    expect_sequence(ra, "bob", "ba", N);
    assert_true(cl_metric(c, 0, "stupidp2p_deliveries_total") == before0);
    assert_true(cl_metric(c, 1, "stupidp2p_deliveries_total") == before1);
    assert_int_equal(CT_GET(ra, ra->n_relay), 0);
    assert_int_equal(CT_GET(rb, rb->n_relay), 0);
    pair_close(&x);
    /* Both RESULTs were counted on the offerer's relay, where the attempt was. */
    cl_wait_metric(c, 0, "stupidp2p_direct_results_total{outcome=\"direct\"}", 2, CL_WAIT_MS);
    assert_true(cl_metric(c, 1, "stupidp2p_direct_results_total{outcome=\"direct\"}") == 0);
}

/* The path between two relays' clients cut mid-stream: both fall back,
 * the FALLBACK marks and the re-sent messages cross the relays, and every
 * message arrives once, in order. */
static void test_direct_killed_across_relays(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    killed_mid_stream(cl_port(c, 0), cl_port(c, 1));
    assert_true(cl_metric(c, 0, "stupidp2p_direct_marks_total") >= 2);
    assert_true(cl_metric(c, 1, "stupidp2p_direct_marks_total") >= 2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_direct_on_loopback),
        TC_SERVER_TEST(test_direct_killed_mid_stream),
        TC_SERVER_TEST(test_raw_peer_and_strangers),
        TC_SERVER_TEST(test_peer_that_never_reads),
        TC_SERVER_TEST(test_send_then_deinit),
        TC_SERVER_TEST(test_crossing_offers),
        TC_SERVER_TEST(test_declined_before_the_peer_asked),
        TC_SERVER_TEST(test_declined_stays_relayed),
        CL_TEST(test_direct_across_relays),
        CL_TEST(test_direct_killed_across_relays),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
