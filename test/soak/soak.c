/*
 * soak.c - a long, mixed load against one p2pServer on 127.0.0.1, that
 * checks every message a subscriber should get arrives exactly once and in
 * order while, around it, thousands of clients come and go badly.
 *
 *   soak --port PORT [--seconds S] [--clients N] [--pid SERVER_PID]
 *
 * Roles (one epoll loop, non-blocking sockets, frames built and parsed with
 * the project's codec):
 *  - publishers (P = N/20, at least 2) register "pub<i>" and keep sending
 *    [u32 publisher][u64 sequence][padding] with SEND, at most WINDOW
 *    unacknowledged; half speak v1, half v2 with QUIET off.
 *  - steady subscribers (S = N/10, at least 2), v1 and v2, each subscribed to
 *    every publisher before any publisher starts, reading everything; they
 *    check that each publisher's sequence arrives 0, 1, 2, ... with nothing
 *    lost, repeated or reordered.
 *  - churners (the rest): connect, maybe say HELLO, register an id from a
 *    small shared pool (so they take ids over from each other), subscribe
 *    to publishers and to each other, send, send half a frame and vanish
 *    (reset), stop reading, send garbage or an oversize header; each lives
 *    a random time and is replaced by a new one.
 * At the end the publishers stop, the steady subscribers must catch up
 * (bounded), and the result line is printed:
 *   soak: N sent, N delivered, 0 lost, 0 duplicated, 0 reordered, ...
 * The exit status is 0 only if nothing was lost, duplicated or reordered,
 * no steady client was disconnected, and (with --pid) the server's open
 * descriptors are back to what they were before the run.
 * Loopback only; every wait bounded; at most ~N+64 descriptors.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <dirent.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "codec.h"
#include "protocol.h"
#include "soak_frame.h"

#define PAYLOAD 64          /* bytes of every published message */
#define WINDOW 64           /* unacknowledged SENDs per publisher */
#define MAX_PUBS 256
#define IN_CAP (1u << 20)
#define OUT_CAP (1u << 18)

enum role { PUB, SUB, CHURN };

struct client {
    enum role role;
    int fd;
    int index;               /* publisher or steady subscriber number */
    int v2;
    int ready;               /* handshake, register, subscriptions done */
    int replies_due;         /* set-up replies still to come */
    int reading;             /* churner: still reads its socket */
    uint64_t die_at;         /* churner: when it goes */
    uint64_t next_seq;       /* publisher: next sequence to send */
    uint64_t acked;          /* publisher: SEND replies received */
    uint64_t *expect;        /* steady sub: next sequence per publisher */
    uint8_t *in;
    size_t in_len;
    uint8_t *out;
    size_t out_len;
    int dead;
};

static struct client *clients;
static int n_clients, n_pubs, n_subs;
static int ep;
static uint16_t port;
static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t sent_total, delivered, lost, duplicated, reordered, steady_disconnects;
static uint64_t churn_connects, churn_resets, churn_takeovers_tried;
static int publishing = 0;

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
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
    fprintf(stderr, "soak: %s: %s\n", what, strerror(errno));
    exit(2);
}

static void put_frame(struct client *c, const uint8_t *head, size_t head_len, const uint8_t *data,
                      size_t len)
{
    /* A churner that does not drain loses what does not fit. */
    soak_put_frame(c->out, &c->out_len, OUT_CAP, head, head_len, data, len);
}

static void put_id_command(struct client *c, uint8_t cmd, const char *id)
{
    uint8_t p[P2P_ID_COMMAND_MAX];
    size_t n = p2p_encode_id_command(p, cmd, (const uint8_t *)id, id ? strlen(id) : 0);
    put_frame(c, p, n, NULL, 0);
    if (c->role != CHURN)
        c->replies_due++;
}

static void flush_out(struct client *c)
{
    while (c->out_len > 0 && !c->dead) {
        ssize_t n = send(c->fd, c->out, c->out_len, MSG_NOSIGNAL);
        if (n > 0) {
            memmove(c->out, c->out + n, c->out_len - (size_t)n);
            c->out_len -= (size_t)n;
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            return;
        c->dead = 1;
    }
}

static int connect_one(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1)
        die("socket");
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == -1 && errno != EINPROGRESS)
        die("connect");
    return fd;
}

static void start_client(struct client *c, enum role role, int index)
{
    c->role = role;
    c->index = index;
    c->fd = connect_one();
    c->dead = 0;
    c->ready = 0;
    c->replies_due = 0;
    c->reading = 1;
    c->in_len = c->out_len = 0;
    c->next_seq = c->acked = 0;
    c->v2 = (int)(rnd() & 1);
    struct epoll_event ev = {EPOLLIN | EPOLLOUT | EPOLLET, {.ptr = c}};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
        die("epoll_ctl");
    uint8_t hello[P2P_HELLO_SIZE];
    char id[32];
    if (role == PUB) {
        c->v2 = index & 1;
        if (c->v2) {
            put_frame(c, hello, p2p_encode_hello(hello, 2, 0), NULL, 0);
            c->replies_due++;
        }
        snprintf(id, sizeof id, "pub%d", index);
        put_id_command(c, P2P_CMD_REGISTER, id);
    } else if (role == SUB) {
        c->v2 = index & 1;
        if (c->v2) {
            put_frame(c, hello, p2p_encode_hello(hello, 2, 0), NULL, 0);
            c->replies_due++;
        }
        snprintf(id, sizeof id, "sub%d", index);
        put_id_command(c, P2P_CMD_REGISTER, id);
        for (int i = 0; i < n_pubs; i++) { /* pipelined: ready when all are answered */
            snprintf(id, sizeof id, "pub%d", i);
            put_id_command(c, P2P_CMD_SUBSCRIBE, id);
        }
    } else {
        churn_connects++;
        if (c->v2)
            put_frame(c, hello, p2p_encode_hello(hello, 2, rnd() & 1), NULL, 0);
        snprintf(id, sizeof id, "churn%d", (int)(rnd() % 64));
        put_id_command(c, P2P_CMD_REGISTER, id);
        churn_takeovers_tried++;
        for (int k = (int)(rnd() % 4); k > 0; k--) {
            if (rnd() & 1)
                snprintf(id, sizeof id, "pub%d", (int)(rnd() % (uint64_t)n_pubs));
            else
                snprintf(id, sizeof id, "churn%d", (int)(rnd() % 64));
            put_id_command(c, P2P_CMD_SUBSCRIBE, id);
        }
        c->reading = (rnd() % 8) != 0; /* one in eight never reads */
        c->die_at = now_ms() + 50 + rnd() % 2000;
    }
    flush_out(c);
}

/* Ends a churner abruptly: a reset, maybe mid-frame. */
static void kill_churner(struct client *c)
{
    if (rnd() & 1) {
        uint8_t half[8];
        p2p_frame_header_encode(half, 1000);
        memcpy(half + 4, "\x03zzz", 4);
        (void)send(c->fd, half, sizeof half, MSG_NOSIGNAL);
    }
    struct linger lg = {1, 0};
    setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
    close(c->fd);
    churn_resets++;
    start_client(c, CHURN, c->index);
}

static void on_delivery(struct client *c, const uint8_t *data, size_t len)
{
    if (c->role != SUB || len < 12)
        return;
    uint32_t pub;
    uint64_t seq;
    memcpy(&pub, data, 4);
    memcpy(&seq, data + 4, 8);
    if ((int)pub >= n_pubs)
        return;
    uint64_t *want = &c->expect[pub];
    if (seq == *want) {
        delivered++;
        (*want)++;
    } else if (seq < *want) {
        duplicated++;
    } else {
        lost += seq - *want;
        reordered++;
        *want = seq + 1;
    }
}

static void on_frame(struct client *c, const uint8_t *p, size_t n)
{
    struct p2p_message m;
    if (n == 0 || p2p_message_parse(p, n, &m) != P2P_PARSE_OK)
        return;
    switch (m.kind) {
    case P2P_MSG_REPLY:
        if (c->role == PUB && c->ready && m.cmd == P2P_CMD_SEND) {
            c->acked++;
            return;
        }
        if (c->role != CHURN && !c->ready) {
            if (m.status != P2P_STATUS_OK) {
                fprintf(stderr, "soak: set-up request %02x refused (%u)\n", m.cmd, m.status);
                exit(1);
            }
            if (--c->replies_due == 0)
                c->ready = 1;
        }
        return;
    case P2P_MSG_V1_DELIVERY:
    case P2P_MSG_DELIVER:
        on_delivery(c, m.data, m.data_len);
        return;
    case P2P_MSG_BYE:
        if (c->role != CHURN) {
            fprintf(stderr, "soak: steady client got BYE %u\n", m.reason);
            steady_disconnects++;
        }
        return;
    default:
        return;
    }
}

static void read_in(struct client *c)
{
    while (!c->dead) {
        if (c->in_len == IN_CAP)
            die("input buffer full");
        ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
        if (n > 0) {
            c->in_len += (size_t)n;
            size_t off = 0;
            for (;;) {
                struct p2p_frame f;
                enum p2p_frame_result r =
                    p2p_frame_parse(c->in + off, c->in_len - off, 70000, &f);
                if (r != P2P_FRAME_COMPLETE)
                    break;
                on_frame(c, f.payload, f.length);
                off += f.consumed;
            }
            memmove(c->in, c->in + off, c->in_len - off);
            c->in_len -= off;
            continue;
        }
        if (n == -1 && (errno == EAGAIN || errno == EINTR))
            return;
        c->dead = 1; /* EOF or error */
    }
}

static void publish(struct client *c)
{
    if (!publishing || !c->ready)
        return;
    uint8_t head[1], data[PAYLOAD];
    memset(data, 'p', sizeof data);
    while (c->next_seq - c->acked < WINDOW && c->out_len + 128 < OUT_CAP) {
        uint32_t pub = (uint32_t)c->index;
        memcpy(data, &pub, 4);
        memcpy(data + 4, &c->next_seq, 8);
        put_frame(c, head, p2p_encode_send_head(head), data, sizeof data);
        c->next_seq++;
        sent_total++;
    }
    flush_out(c);
}

/* Open descriptors of a process, from /proc, or -1. */
static int fd_count(long pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", pid);
    DIR *d = opendir(path);
    if (d == NULL)
        return -1;
    int n = 0;
    for (struct dirent *e; (e = readdir(d)) != NULL;)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

static void run_loop(uint64_t until, int (*done)(void))
{
    struct epoll_event evs[256];
    while (now_ms() < until && !(done && done())) {
        int n = epoll_wait(ep, evs, 256, 20);
        if (n == -1 && errno != EINTR)
            die("epoll_wait");
        for (int i = 0; i < n; i++) {
            struct client *c = evs[i].data.ptr;
            if (c->dead)
                continue;
            if ((evs[i].events & (EPOLLIN | EPOLLERR | EPOLLHUP)) && c->reading)
                read_in(c);
            if (!c->dead)
                flush_out(c);
        }
        uint64_t t = now_ms();
        for (int i = 0; i < n_clients; i++) {
            struct client *c = &clients[i];
            if (c->role == CHURN && (c->dead || t >= c->die_at)) {
                if (!c->dead && c->reading)
                    read_in(c);
                kill_churner(c);
                continue;
            }
            if (c->dead) {
                fprintf(stderr, "soak: steady client %s%d lost its connection\n",
                        c->role == PUB ? "pub" : "sub", c->index);
                steady_disconnects++;
                close(c->fd);
                c->dead = 0;
                c->fd = -1;
                c->role = CHURN; /* out of the accounting */
                start_client(c, CHURN, c->index);
                continue;
            }
            if (c->role == PUB)
                publish(c);
            if (c->role == SUB && c->reading)
                read_in(c);
        }
    }
}

static int all_ready(void)
{
    for (int i = 0; i < n_pubs + n_subs; i++)
        if (!clients[i].ready)
            return 0;
    return 1;
}

static int all_caught_up(void)
{
    for (int i = 0; i < n_pubs; i++)
        if (clients[i].role == PUB && clients[i].acked < clients[i].next_seq)
            return 0;
    for (int s = n_pubs; s < n_pubs + n_subs; s++) {
        struct client *c = &clients[s];
        if (c->role != SUB)
            continue;
        for (int p = 0; p < n_pubs; p++)
            if (clients[p].role == PUB && c->expect[p] < clients[p].next_seq)
                return 0;
    }
    return 1;
}

int main(int argc, char **argv)
{
    int seconds = 30, total = 2000;
    long pid = 0;
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--port") == 0)
            port = (uint16_t)atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--seconds") == 0)
            seconds = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--clients") == 0)
            total = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--pid") == 0)
            pid = atol(argv[i + 1]);
    }
    if (port == 0 || seconds <= 0 || total < 20 || total > 18000) {
        fprintf(stderr, "usage: soak --port PORT [--seconds S] [--clients 20..18000] [--pid PID]\n");
        return 2;
    }
    int fds_before = pid ? fd_count(pid) : -1;
    n_pubs = total / 20 < 2 ? 2 : (total / 20 > 64 ? 64 : total / 20);
    n_subs = total / 10 < 2 ? 2 : total / 10;
    n_clients = total;
    clients = calloc((size_t)total, sizeof *clients);
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (clients == NULL || ep == -1)
        die("set-up");
    for (int i = 0; i < total; i++) {
        struct client *c = &clients[i];
        c->in = malloc(IN_CAP);
        c->out = malloc(OUT_CAP);
        if (i >= n_pubs && i < n_pubs + n_subs)
            c->expect = calloc(MAX_PUBS, sizeof(uint64_t));
        if (!c->in || !c->out || (i >= n_pubs && i < n_pubs + n_subs && !c->expect))
            die("malloc");
    }
    /* Publishers and subscribers first, all set up before anyone sends. */
    for (int i = 0; i < n_pubs; i++)
        start_client(&clients[i], PUB, i);
    run_loop(now_ms() + 10000, all_ready);
    for (int i = n_pubs; i < n_pubs + n_subs; i++)
        start_client(&clients[i], SUB, i - n_pubs);
    run_loop(now_ms() + 20000, all_ready);
    if (!all_ready()) {
        fprintf(stderr, "soak: set-up did not finish\n");
        return 1;
    }
    for (int i = n_pubs + n_subs; i < total; i++)
        start_client(&clients[i], CHURN, i);
    publishing = 1;
    run_loop(now_ms() + (uint64_t)seconds * 1000u, NULL);
    publishing = 0;
    /* Churners go; the steady ones catch up. */
    for (int i = n_pubs + n_subs; i < total; i++) {
        close(clients[i].fd);
        clients[i].role = CHURN;
        clients[i].dead = 1;
        clients[i].die_at = UINT64_MAX;
    }
    n_clients = n_pubs + n_subs;
    run_loop(now_ms() + 30000, all_caught_up);
    uint64_t expected = 0;
    for (int s = n_pubs; s < n_pubs + n_subs; s++)
        for (int p = 0; p < n_pubs; p++)
            if (clients[s].role == SUB && clients[p].role == PUB) {
                expected += clients[p].next_seq;
                if (clients[s].expect[p] < clients[p].next_seq)
                    lost += clients[p].next_seq - clients[s].expect[p];
            }
    for (int i = 0; i < n_pubs + n_subs; i++)
        close(clients[i].fd);
    int fds_after = -1;
    if (pid) {
        /* The server closes them as it reads our FINs: wait, bounded. */
        for (int tries = 0; tries < 500; tries++) {
            fds_after = fd_count(pid);
            if (fds_after <= fds_before)
                break;
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    printf("soak: %llu sent, %llu expected deliveries, %llu delivered, %llu lost, %llu duplicated, "
           "%llu reordered; %llu steady disconnects; %llu churner connections, %llu resets; "
           "server fds %d before, %d after\n",
           (unsigned long long)sent_total, (unsigned long long)expected,
           (unsigned long long)delivered, (unsigned long long)lost, (unsigned long long)duplicated,
           (unsigned long long)reordered, (unsigned long long)steady_disconnects,
           (unsigned long long)churn_connects, (unsigned long long)churn_resets, fds_before,
           fds_after);
    int ok = lost == 0 && duplicated == 0 && reordered == 0 && steady_disconnects == 0 &&
             delivered == expected && expected > 0 && (pid == 0 || fds_after <= fds_before);
    return ok ? 0 : 1;
}
