/*
 * cluster_soak.c - a long, mixed load on three relays over a three-server
 * NATS cluster (test/support/cluster.h starts them), that checks every
 * message a subscriber should get arrives exactly once and in order while
 * devices register, move between relays, take each other's ids over,
 * subscribe and send around it.
 *
 *   cluster_soak [--seconds S] [--publishers P] [--subscribers N] [--churners C]
 *
 * Roles (one epoll loop, non-blocking sockets, frames built and parsed
 * with the project's codec):
 *  - publishers "sp<i>", v1 and v2 in turn, each sending numbered messages
 *    [u32 publisher][u64 sequence] with SEND, at most WINDOW unanswered,
 *    and every few seconds moving to another relay: it stops, waits until
 *    every steady subscriber has what it sent (a message in flight while
 *    ownership moves may be lost by design: doc/cluster.md; this soak
 *    checks that nothing else is), closes, connects to the next relay and
 *    registers there, and goes on numbering where it stopped;
 *  - steady subscribers, v1 and v2, spread over the relays, each
 *    subscribed to every publisher, checking each publisher's sequence:
 *    every number once, in order;
 *  - churners: connect to any relay, register an id from a small pool
 *    (so they take each other's ids over across relays), subscribe to
 *    publishers and to each other, SEND, SEND_TO, and vanish after a
 *    random time; nothing they get is checked, they are the noise.
 * Before counting, publishers send warm-up messages until every subscriber
 * has one from each (interest travels through the NATS routes in its own
 * time). At the end the publishers stop, the subscribers catch up
 * (bounded), every client leaves, and every relay must count no device of
 * the others any more (their views agree: all empty). One line per steady
 * subscriber and a total:
 *   cluster soak: N sent, N delivered, 0 lost, 0 duplicated, 0 reordered, ...
 * Exit 0 only if nothing was lost, duplicated or reordered, no steady
 * client was disconnected, the views emptied and every relay exited 0 on
 * SIGTERM. Loopback only; every wait bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "cluster.h"
#include "codec.h"
#include "protocol.h"
#include "soak_frame.h"

#define WINDOW 32
/* A publisher runs at most this far ahead of its slowest steady
 * subscriber: acknowledgements are its relay's, and what crosses relays
 * is not flow-controlled end to end (an overloaded path drops, counted:
 * that is the slow-consumer case, not what this soak checks). */
#define INFLIGHT 512
#define MAX_CLIENTS 512
#define MAX_PUBS 32
#define IN_CAP (1u << 20)
#define OUT_CAP (1u << 16)
#define WARMUP UINT64_MAX
#define PAYLOAD 12
#define POOL 16 /* churner ids */

enum role { PUB, SUB, CHURN };
enum pub_state { CONNECTING, RUNNING, DRAINING, GONE };

struct client {
    enum role role;
    int fd;
    int index;       /* publisher or subscriber number */
    int relay;
    int v2;
    int replies_due; /* set-up replies still to come */
    int pending;     /* publisher: SENDs unanswered */
    enum pub_state state;
    uint64_t next_seq;
    uint64_t move_at;
    uint64_t die_at; /* churner */
    uint64_t *expect;
    uint64_t delivered, lost, duplicated, reordered;
    int warm[MAX_PUBS];
    uint8_t *in;
    size_t in_len;
    uint8_t *out;
    size_t out_len;
};

static struct relay_cluster cluster;
static struct client *clients[MAX_CLIENTS];
static int n_pubs = 6, n_subs = 9, n_churn = 30;
static int ep;
static uint64_t rng = 0x2545F4914F6CDD1Dull;
/* WARM: warm-up messages; SETTLE: none, until they are answered; RUN:
 * numbered messages, moves, churn; STOP: none, until all arrived. */
static enum phase { WARM, SETTLE, RUN, STOP } phase = WARM;
static uint64_t moves, churn_connects, steady_disconnects, subscribe_failures;

static uint64_t now_ms(void)
{
    return (uint64_t)cl_now_ms();
}

static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static void die(const char *what)
{
    fprintf(stderr, "cluster soak: %s: %s\n", what, strerror(errno));
    cl_try_stop(&cluster);
    exit(2);
}

static void put_frame(struct client *c, const uint8_t *head, size_t head_len, const void *data,
                      size_t len)
{
    /* A churner that does not drain loses what does not fit. */
    soak_put_frame(c->out, &c->out_len, OUT_CAP, head, head_len, data, len);
}

static void put_id(struct client *c, uint8_t cmd, const char *id)
{
    uint8_t head[1] = {cmd};
    put_frame(c, head, 1, id, strlen(id));
}

static void flush_out(struct client *c)
{
    while (c->out_len > 0) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            return; /* EAGAIN: EPOLLOUT resumes; an error shows up as EOF */
        memmove(c->out, c->out + n, c->out_len - (size_t)n);
        c->out_len -= (size_t)n;
    }
}

static int connect_relay(int relay)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        die("socket");
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(cl_port(&cluster, relay));
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == -1)
        die("connect");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(fd, F_SETFL, O_NONBLOCK) == -1)
        die("fcntl");
    return fd;
}

static void open_session(struct client *c, int slot)
{
    c->fd = connect_relay(c->relay);
    c->in_len = c->out_len = 0;
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)slot};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
        die("epoll_ctl");
    if (c->v2) {
        uint8_t hello[3] = {P2P_CMD_HELLO, 2, 0};
        put_frame(c, hello, 3, NULL, 0);
        c->replies_due++;
    }
}

static void close_session(struct client *c)
{
    if (c->fd == -1)
        return;
    epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
    close(c->fd);
    c->fd = -1;
}

static void pub_name(char *out, size_t cap, int i)
{
    snprintf(out, cap, "sp%d", i);
}

static void start_publisher(struct client *c, int slot)
{
    c->replies_due = 0;
    c->pending = 0;
    open_session(c, slot);
    char id[16];
    pub_name(id, sizeof id, c->index);
    put_id(c, P2P_CMD_REGISTER, id);
    c->replies_due++;
    c->state = CONNECTING;
    c->move_at = now_ms() + 2000 + rnd() % 3000;
    flush_out(c);
}

static void subscribe_all(struct client *c)
{
    for (int p = 0; p < n_pubs; p++) {
        char id[16];
        pub_name(id, sizeof id, p);
        put_id(c, P2P_CMD_SUBSCRIBE, id);
        c->replies_due++;
    }
}

static void start_churner(struct client *c, int slot)
{
    c->relay = (int)(rnd() % 3);
    c->v2 = (int)(rnd() % 2);
    c->replies_due = 0;
    open_session(c, slot);
    char id[16];
    snprintf(id, sizeof id, "ch%d", (int)(rnd() % POOL));
    put_id(c, P2P_CMD_REGISTER, id);
    snprintf(id, sizeof id, "ch%d", (int)(rnd() % POOL));
    put_id(c, P2P_CMD_SUBSCRIBE, id);
    char pub[16];
    pub_name(pub, sizeof pub, (int)(rnd() % (uint64_t)n_pubs));
    put_id(c, P2P_CMD_SUBSCRIBE, pub);
    c->die_at = now_ms() + 100 + rnd() % 2000;
    churn_connects++;
    flush_out(c);
}

/* ---- publishers ---------------------------------------------------------- */

static void publish(struct client *c, uint64_t seq)
{
    uint8_t head[1] = {P2P_CMD_SEND};
    uint8_t payload[PAYLOAD];
    uint32_t idx = (uint32_t)c->index;
    memcpy(payload, &idx, 4);
    memcpy(payload + 4, &seq, 8);
    put_frame(c, head, 1, payload, PAYLOAD);
    c->pending++;
}

/* The least of c's messages any steady subscriber has. */
static uint64_t slowest(const struct client *c)
{
    uint64_t least = c->next_seq;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        const struct client *s = clients[i];
        if (s != NULL && s->role == SUB && s->fd != -1 && s->expect[c->index] < least)
            least = s->expect[c->index];
    }
    return least;
}

/* Every steady subscriber has everything c sent. */
static int delivered_everywhere(const struct client *c)
{
    return slowest(c) == c->next_seq;
}

static void pump_publisher(struct client *c, int slot)
{
    if (c->state == CONNECTING || c->fd == -1)
        return;
    if (c->state == RUNNING && phase == RUN && now_ms() >= c->move_at)
        c->state = DRAINING;
    if (c->state == DRAINING) {
        if (c->pending > 0 || !delivered_everywhere(c))
            return;
        /* Everything arrived: move to the next relay. */
        close_session(c);
        c->relay = (c->relay + 1 + (int)(rnd() % 2)) % 3;
        moves++;
        start_publisher(c, slot);
        return;
    }
    if (phase == WARM) {
        /* Warm-up: one at a time until every subscriber has one. */
        if (c->pending == 0)
            publish(c, WARMUP);
    } else if (phase == RUN) {
        uint64_t least = slowest(c);
        while (c->pending < WINDOW && c->next_seq - least < INFLIGHT)
            publish(c, c->next_seq++);
    }
    flush_out(c);
}

/* ---- input ---------------------------------------------------------------- */

static void on_delivery(struct client *c, const uint8_t *data, size_t len)
{
    if (c->role != SUB || len != PAYLOAD)
        return;
    uint32_t pub;
    uint64_t seq;
    memcpy(&pub, data, 4);
    memcpy(&seq, data + 4, 8);
    if (pub >= (uint32_t)n_pubs)
        return;
    if (seq == WARMUP) {
        c->warm[pub] = 1;
        return;
    }
    uint64_t *want = &c->expect[pub];
    if (seq == *want) {
        (*want)++;
        c->delivered++;
    } else if (seq > *want) {
        c->lost += seq - *want;
        c->reordered++;
        *want = seq + 1;
        c->delivered++;
    } else {
        c->duplicated++;
    }
}

static void on_frame(struct client *c, const uint8_t *p, size_t len)
{
    if (len == 0)
        return;
    uint8_t cmd = p[0];
    if (cmd & P2P_REPLY_BIT) {
        if (cmd == (P2P_CMD_SEND | P2P_REPLY_BIT)) {
            if (c->pending > 0)
                c->pending--;
            return;
        }
        if (c->replies_due > 0)
            c->replies_due--;
        if (cmd == (P2P_CMD_SUBSCRIBE | P2P_REPLY_BIT) && len >= 2 && p[1] != P2P_STATUS_OK &&
            c->role == SUB)
            subscribe_failures++;
        if (c->role == PUB && c->replies_due == 0 && c->state == CONNECTING)
            c->state = RUNNING;
        return;
    }
    if (cmd == P2P_CMD_SEND)
        on_delivery(c, p + 1, len - 1);
    else if (cmd == P2P_EVT_DELIVER && len >= 2 && len >= 2u + p[1])
        on_delivery(c, p + 2 + p[1], len - 2 - p[1]);
}

/* Reads and handles what arrived; 0 on EOF or error. */
static int read_in(struct client *c)
{
    for (;;) {
        if (c->in_len == IN_CAP)
            return 0;
        ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            break;
        if (n <= 0)
            return 0;
        c->in_len += (size_t)n;
    }
    size_t off = 0;
    while (c->in_len - off >= P2P_FRAME_HEADER_SIZE) {
        uint32_t len = p2p_frame_header_decode(c->in + off);
        if (c->in_len - off < P2P_FRAME_HEADER_SIZE + len)
            break;
        on_frame(c, c->in + off + P2P_FRAME_HEADER_SIZE, len);
        off += P2P_FRAME_HEADER_SIZE + len;
    }
    memmove(c->in, c->in + off, c->in_len - off);
    c->in_len -= off;
    return 1;
}

/* ---- churn ------------------------------------------------------------------ */

static void churn(struct client *c, int slot)
{
    if (c->fd == -1 || now_ms() >= c->die_at) {
        close_session(c);
        start_churner(c, slot);
        return;
    }
    uint64_t r = rnd() % 8;
    if (r == 0) {
        char id[16];
        snprintf(id, sizeof id, "ch%d", (int)(rnd() % POOL));
        put_id(c, P2P_CMD_REGISTER, id);
    } else if (r < 4) {
        uint8_t head[1] = {P2P_CMD_SEND};
        put_frame(c, head, 1, "noise", 5);
    } else if (r == 4 && c->v2) {
        uint8_t head[P2P_ID_HEAD_MAX];
        char id[16];
        snprintf(id, sizeof id, "ch%d", (int)(rnd() % POOL));
        size_t n = p2p_encode_send_to_head(head, (const uint8_t *)id, strlen(id));
        put_frame(c, head, n, "psst", 4);
    }
    flush_out(c);
}

/* ---- the run ------------------------------------------------------------------ */

static struct client *new_client(enum role role, int index, int relay, int v2)
{
    struct client *c = calloc(1, sizeof *c);
    if (c == NULL || (c->in = malloc(IN_CAP)) == NULL || (c->out = malloc(OUT_CAP)) == NULL ||
        (c->expect = calloc(MAX_PUBS, sizeof *c->expect)) == NULL)
        die("malloc");
    c->role = role;
    c->index = index;
    c->relay = relay;
    c->v2 = v2;
    c->fd = -1;
    return c;
}

/* One pass of the loop: events, then every client's timers. */
static void run_for(uint64_t ms)
{
    uint64_t until = now_ms() + ms;
    while (now_ms() < until) {
        struct epoll_event evs[128];
        int n = epoll_wait(ep, evs, 128, 5);
        if (n == -1 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            int slot = (int)evs[i].data.u32;
            struct client *c = clients[slot];
            if (c == NULL || c->fd == -1)
                continue;
            if (evs[i].events & EPOLLOUT)
                flush_out(c);
            if (!read_in(c)) {
                close_session(c);
                if (c->role == SUB) {
                    steady_disconnects++;
                } else if (c->role == PUB && c->state != GONE) {
                    /* Taken over or cut off: that is a failure for a publisher. */
                    steady_disconnects++;
                    c->state = GONE;
                }
            }
        }
        for (int i = 0; i < MAX_CLIENTS; i++) {
            struct client *c = clients[i];
            if (c == NULL)
                continue;
            if (c->role == PUB && c->state != GONE)
                pump_publisher(c, i);
            else if (c->role == CHURN && phase == RUN)
                churn(c, i);
            else if (c->fd != -1)
                flush_out(c);
        }
    }
}

static int all_warm(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = clients[i];
        if (c == NULL || c->role != SUB)
            continue;
        if (c->replies_due > 0)
            return 0;
        for (int p = 0; p < n_pubs; p++)
            if (!c->warm[p])
                return 0;
    }
    return 1;
}

static int all_drained(void)
{
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = clients[i];
        if (c != NULL && c->role == PUB && c->state != GONE &&
            (c->pending > 0 || !delivered_everywhere(c)))
            return 0;
    }
    return 1;
}

static int arg_int(const char *v, int lo, int hi)
{
    int n = atoi(v);
    if (n < lo || n > hi) {
        fprintf(stderr, "cluster soak: %s not in %d..%d\n", v, lo, hi);
        exit(2);
    }
    return n;
}

int main(int argc, char **argv)
{
    int seconds = 60;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--seconds") == 0)
            seconds = arg_int(argv[i + 1], 1, 86400);
        else if (strcmp(argv[i], "--publishers") == 0)
            n_pubs = arg_int(argv[i + 1], 1, MAX_PUBS);
        else if (strcmp(argv[i], "--subscribers") == 0)
            n_subs = arg_int(argv[i + 1], 1, 128);
        else if (strcmp(argv[i], "--churners") == 0)
            n_churn = arg_int(argv[i + 1], 0, 256);
        else {
            fprintf(stderr, "usage: cluster_soak [--seconds S] [--publishers P] "
                            "[--subscribers N] [--churners C]\n");
            return 2;
        }
    }
    if (nats_server_path() == NULL) {
        printf("SKIP: nats-server is not installed\n");
        return 77;
    }
    static const char *const quiet[] = {"--log-level", "warn", NULL};
    if (cl_try_start(&cluster, quiet, NULL) != 0) {
        cl_try_stop(&cluster);
        return 2;
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1)
        die("epoll_create1");
    int slot = 0;
    for (int p = 0; p < n_pubs; p++) {
        clients[slot] = new_client(PUB, p, p % 3, p % 2);
        start_publisher(clients[slot], slot);
        slot++;
    }
    /* Every relay knows every publisher (a v1 SUBSCRIBE needs it online). */
    for (int r = 0; r < 3; r++) {
        int others = 0;
        for (int p = 0; p < n_pubs; p++)
            others += p % 3 != r;
        uint64_t deadline = now_ms() + 10000;
        while (cl_metric(&cluster, r, "stupidp2p_cluster_remote_devices") != others) {
            if (now_ms() > deadline) {
                fprintf(stderr, "cluster soak: relay %d does not see the publishers\n", r);
                cl_try_stop(&cluster);
                return 1;
            }
            run_for(10);
        }
    }
    for (int s = 0; s < n_subs; s++) {
        clients[slot] = new_client(SUB, s, s % 3, (s / 3) % 2);
        open_session(clients[slot], slot);
        subscribe_all(clients[slot]);
        flush_out(clients[slot]);
        slot++;
    }
    uint64_t warm_deadline = now_ms() + 30000;
    while (!all_warm()) {
        if (now_ms() > warm_deadline) {
            fprintf(stderr, "cluster soak: data did not reach every subscriber within 30 s\n");
            cl_try_stop(&cluster);
            return 1;
        }
        run_for(20);
    }
    /* Warm-ups are answered; after the last, every publisher counts from 0. */
    phase = SETTLE;
    while (!all_drained()) {
        if (now_ms() > warm_deadline) {
            fprintf(stderr, "cluster soak: the warm-up did not end within 30 s\n");
            cl_try_stop(&cluster);
            return 1;
        }
        run_for(5);
    }
    for (int k = 0; k < n_churn; k++) {
        clients[slot] = new_client(CHURN, k, 0, 0);
        start_churner(clients[slot], slot);
        slot++;
    }
    fprintf(stderr, "cluster soak: warm; publishing for %d s\n", seconds);
    phase = RUN;
    uint64_t start = now_ms();
    run_for((uint64_t)seconds * 1000u);
    phase = STOP;
    uint64_t drain_deadline = now_ms() + 30000;
    while (!all_drained() && now_ms() < drain_deadline)
        run_for(20);
    double elapsed = (double)(now_ms() - start) / 1000.0;
    if (!all_drained())
        fprintf(stderr, "cluster soak: the subscribers did not catch up within 30 s\n");

    uint64_t sent = 0, total_delivered = 0, total_lost = 0, total_dup = 0, total_reordered = 0;
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i] != NULL && clients[i]->role == PUB)
            sent += clients[i]->next_seq;
    int failed = 0;
    for (int i = 0; i < MAX_CLIENTS; i++) {
        struct client *c = clients[i];
        if (c == NULL || c->role != SUB)
            continue;
        uint64_t lost = c->lost;
        for (int p = 0; p < n_pubs; p++)
            for (int k = 0; k < MAX_CLIENTS; k++)
                if (clients[k] != NULL && clients[k]->role == PUB && clients[k]->index == p &&
                    clients[k]->next_seq > c->expect[p])
                    lost += clients[k]->next_seq - c->expect[p];
        printf("subscriber %d (v%d on relay %d): %llu sent, %llu delivered, %llu lost, %llu "
               "duplicated, %llu reordered\n",
               c->index, c->v2 ? 2 : 1, c->relay, (unsigned long long)sent,
               (unsigned long long)c->delivered, (unsigned long long)lost,
               (unsigned long long)c->duplicated, (unsigned long long)c->reordered);
        total_delivered += c->delivered;
        total_lost += lost;
        total_dup += c->duplicated;
        total_reordered += c->reordered;
        if (lost || c->duplicated || c->reordered || c->delivered != sent)
            failed = 1;
    }
    for (int i = 0; i < MAX_CLIENTS; i++)
        if (clients[i] != NULL)
            close_session(clients[i]);
    /* Every relay's view of the others empties. */
    int views_empty = 1;
    for (int r = 0; r < 3; r++) {
        uint64_t deadline = now_ms() + 10000;
        while (cl_metric(&cluster, r, "stupidp2p_cluster_remote_devices") != 0 ||
               cl_metric(&cluster, r, "stupidp2p_devices_online") != 0) {
            if (now_ms() > deadline) {
                fprintf(stderr, "cluster soak: relay %d still counts %g remote devices, %g local\n",
                        r, cl_metric(&cluster, r, "stupidp2p_cluster_remote_devices"),
                        cl_metric(&cluster, r, "stupidp2p_devices_online"));
                views_empty = 0;
                break;
            }
            run_for(20);
        }
    }
    double takeovers = 0, dropped = 0;
    for (int r = 0; r < 3; r++) {
        takeovers += cl_metric(&cluster, r, "stupidp2p_takeovers_total");
        dropped += cl_metric(&cluster, r, "stupidp2p_cluster_dropped_total{reason=\"stale_holder\"}");
    }
    printf("cluster soak: %llu sent, %llu delivered (%d subscribers), %llu lost, %llu duplicated, "
           "%llu reordered; %.0f s, %.0f messages/s, %llu moves between relays, %llu churner "
           "connections, %.0f takeovers, %.0f stale messages dropped, %llu steady clients "
           "disconnected\n",
           (unsigned long long)sent, (unsigned long long)total_delivered, n_subs,
           (unsigned long long)total_lost, (unsigned long long)total_dup,
           (unsigned long long)total_reordered, elapsed, (double)sent / elapsed,
           (unsigned long long)moves, (unsigned long long)churn_connects, takeovers, dropped,
           (unsigned long long)steady_disconnects);
    int stopped = cl_try_stop(&cluster);
    if (subscribe_failures != 0)
        printf("cluster soak: %llu SUBSCRIBEs of steady subscribers failed\n",
               (unsigned long long)subscribe_failures);
    if (failed || steady_disconnects || subscribe_failures || !views_empty || stopped != 0) {
        printf("cluster soak: FAILED\n");
        return 1;
    }
    printf("cluster soak: passed\n");
    return 0;
}
