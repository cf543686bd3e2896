/*
 * cluster_bench.c - throughput across relays: publishers on one relay,
 * their subscribers on another, over a three-server NATS cluster
 * (test/support/cluster.h starts it); or, with --single, everything on one
 * relay without a cluster (to compare this generator with relaybench on
 * the same server). Measures what scripts/cluster-bench.sh reports beside
 * NATS alone; never run by the tests (speed is not asserted).
 *
 *   cluster_bench fanout --subs N [--size S] [--duration SEC] [--single]
 *   cluster_bench pairs --pairs P [--size S] [--duration SEC] [--single]
 *
 * fanout: one publisher on relay 0, N subscribers of it on relay 1.
 * pairs:  P pairs, one client of each on relay 0 and the other on relay 1,
 *         each subscribed to its partner, both sending.
 * Method, as relaybench's (so that the figures compare): every payload is
 * [u32 source][u64 sequence] padded to S bytes; publishers keep at most
 * WINDOW SENDs unanswered and run at most INFLIGHT messages ahead of their
 * subscribers on average (end to end: a relay's acknowledgement says
 * nothing of the other relay); up to 1024 messages per loop turn in one
 * send(); receivers read 256 KiB at a time. Publishing lasts --duration
 * seconds, then everything sent is awaited and checked (lost, reordered).
 * Before the clock starts, warm-up messages flow until every receiver has
 * one (interest crosses the NATS routes in its own time).
 * One line of key=value: deliveries_per_s is deliveries / (first send ->
 * last delivery); cpu_* are each process's CPU (% of one core) over the
 * run, other_cpu_pct the rest of the machine's (the noise). Exit 0 only if
 * nothing was lost or reordered.
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

#define WINDOW 1024
#define INFLIGHT 1024
#define BATCH 1024
#define IN_CAP (256u << 10)
#define OUT_CAP (4u << 20)
#define WARMUP UINT64_MAX
#define MAX_CLIENTS 4096

struct client {
    int fd;
    int source;       /* publisher index, or -1 */
    int partner;      /* whose messages it receives (index into pubs), or -1 */
    uint64_t sent, acked;  /* as a publisher: messages numbered 0..sent-1 */
    uint64_t delivered;    /* numbered deliveries received */
    uint64_t next_expect;
    uint64_t lost, reordered;
    int warm;
    int replies_due;
    uint8_t *in;
    size_t in_len;
    uint8_t *out;
    size_t out_len, out_off;
};

static struct relay_cluster cluster;
static struct p2p_server single;
static int use_single;
static struct client clients[MAX_CLIENTS];
static int n_clients;
static int pubs[MAX_CLIENTS]; /* client index of publisher i */
static int n_pubs;
static int subs_per_pub;      /* receivers of each publisher */
static size_t size = 64;
static double duration = 3;
static int ep;
static enum { SETUP, WARM, SETTLE, RUN, DRAIN } phase;
static uint64_t first_send_ns, last_delivery_ns;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
    fprintf(stderr, "cluster_bench: %s: %s\n", what, strerror(errno));
    if (use_single)
        p2p_server_stop(&single);
    else
        cl_try_stop(&cluster);
    exit(2);
}

static uint16_t relay_port(int relay)
{
    return use_single ? single.port : cl_port(&cluster, relay);
}

static void put_frame(struct client *c, uint8_t cmd, const void *data, size_t len)
{
    size_t total = P2P_FRAME_HEADER_SIZE + 1 + len;
    if (c->out_len + total > OUT_CAP)
        die("output buffer full");
    p2p_frame_header_encode(c->out + c->out_len, (uint32_t)(1 + len));
    c->out[c->out_len + P2P_FRAME_HEADER_SIZE] = cmd;
    memcpy(c->out + c->out_len + P2P_FRAME_HEADER_SIZE + 1, data, len);
    c->out_len += total;
}

static void flush_out(struct client *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            return;
        if (n <= 0)
            die("send");
        c->out_off += (size_t)n;
    }
    c->out_off = c->out_len = 0;
}

static int new_client(int relay, int source, int partner)
{
    if (n_clients == MAX_CLIENTS)
        die("too many clients");
    int i = n_clients++;
    struct client *c = &clients[i];
    c->source = source;
    c->partner = partner;
    c->in = malloc(IN_CAP);
    c->out = malloc(OUT_CAP);
    if (c->in == NULL || c->out == NULL)
        die("malloc");
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(relay_port(relay));
    if (c->fd == -1 || connect(c->fd, (struct sockaddr *)&a, sizeof a) == -1)
        die("connect");
    int one = 1;
    setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    if (fcntl(c->fd, F_SETFL, O_NONBLOCK) == -1)
        die("fcntl");
    struct epoll_event ev = {.events = EPOLLIN | EPOLLOUT | EPOLLET, .data.u32 = (uint32_t)i};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, c->fd, &ev) == -1)
        die("epoll_ctl");
    return i;
}

static void pub_id(char *out, size_t cap, int p)
{
    snprintf(out, cap, "bench-p%d", p);
}

/* ---- the flow ---------------------------------------------------------------- */

/* How far publisher p is ahead of its receivers, on average. */
static uint64_t lead(int p)
{
    const struct client *c = &clients[pubs[p]];
    uint64_t delivered = 0;
    for (int i = 0; i < n_clients; i++)
        if (clients[i].partner == p)
            delivered += clients[i].delivered;
    uint64_t avg = delivered / (uint64_t)subs_per_pub;
    return c->sent > avg ? c->sent - avg : 0;
}

static void publish(struct client *c, uint64_t seq)
{
    uint8_t payload[65536];
    uint32_t src = (uint32_t)c->source;
    memcpy(payload, &src, 4);
    memcpy(payload + 4, &seq, 8);
    memset(payload + 12, 'b', size - 12);
    put_frame(c, P2P_CMD_SEND, payload, size);
}

static uint64_t deadline_ns;

static void pump(int p)
{
    struct client *c = &clients[pubs[p]];
    if (phase == WARM) {
        if (c->sent == c->acked) {
            publish(c, WARMUP);
            c->sent++;
        }
    } else if (phase == RUN) {
        if (now_ns() >= deadline_ns)
            return;
        uint64_t ahead = lead(p);
        int batch = 0;
        while (batch < BATCH && c->sent - c->acked < WINDOW && ahead < INFLIGHT) {
            if (first_send_ns == 0)
                first_send_ns = now_ns();
            publish(c, c->sent++);
            ahead++;
            batch++;
        }
    }
    flush_out(c);
}

static void on_delivery(struct client *c, const uint8_t *data, size_t len)
{
    if (len != size || c->partner < 0)
        return;
    uint64_t seq;
    memcpy(&seq, data + 4, 8);
    if (seq == WARMUP) {
        c->warm = 1;
        return;
    }
    if (seq != c->next_expect) {
        if (seq > c->next_expect)
            c->lost += seq - c->next_expect;
        c->reordered++;
    }
    c->next_expect = seq + 1;
    c->delivered++;
    last_delivery_ns = now_ns();
}

static void read_in(struct client *c)
{
    for (;;) {
        ssize_t n = recv(c->fd, c->in + c->in_len, IN_CAP - c->in_len, 0);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN)
            return;
        if (n <= 0)
            die("recv (closed by the relay)");
        c->in_len += (size_t)n;
        size_t off = 0;
        while (c->in_len - off >= P2P_FRAME_HEADER_SIZE) {
            uint32_t len = p2p_frame_header_decode(c->in + off);
            if (len > IN_CAP - P2P_FRAME_HEADER_SIZE)
                die("frame too large");
            if (c->in_len - off < P2P_FRAME_HEADER_SIZE + len)
                break;
            const uint8_t *f = c->in + off + P2P_FRAME_HEADER_SIZE;
            if (len >= 2 && f[0] == (P2P_CMD_SEND | P2P_REPLY_BIT))
                c->acked++;
            else if (len >= 2 && (f[0] & P2P_REPLY_BIT)) {
                if (f[1] != P2P_STATUS_OK)
                    die("a set-up request was refused");
                c->replies_due--;
            } else if (len >= 1 && f[0] == P2P_CMD_SEND)
                on_delivery(c, f + 1, len - 1);
            off += P2P_FRAME_HEADER_SIZE + len;
        }
        memmove(c->in, c->in + off, c->in_len - off);
        c->in_len -= off;
    }
}

static void turn(int timeout_ms)
{
    struct epoll_event evs[256];
    int n = epoll_wait(ep, evs, 256, timeout_ms);
    if (n == -1 && errno != EINTR)
        die("epoll_wait");
    for (int i = 0; i < n; i++) {
        struct client *c = &clients[evs[i].data.u32];
        if (evs[i].events & EPOLLIN)
            read_in(c);
        if (evs[i].events & EPOLLOUT)
            flush_out(c);
    }
    for (int p = 0; p < n_pubs; p++)
        pump(p);
}

static int set_up_done(void)
{
    for (int i = 0; i < n_clients; i++)
        if (clients[i].replies_due > 0)
            return 0;
    return 1;
}

static int all_warm(void)
{
    for (int i = 0; i < n_clients; i++)
        if (clients[i].partner >= 0 && !clients[i].warm)
            return 0;
    return 1;
}

static int all_acked(void)
{
    for (int p = 0; p < n_pubs; p++)
        if (clients[pubs[p]].sent != clients[pubs[p]].acked)
            return 0;
    return 1;
}

/* ---- CPU of the servers ------------------------------------------------------------ */

static double cpu_ticks(pid_t pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "r");
    if (f == NULL)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    const char *p = strrchr(buf, ')');
    unsigned long utime = 0, stime = 0;
    if (p == NULL || sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", &utime,
                            &stime) != 2)
        return 0;
    return (double)(utime + stime);
}

/* Busy CPU of the whole machine so far, in clock ticks (/proc/stat). */
static double machine_busy_ticks(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return 0;
    unsigned long long user = 0, nice = 0, sys = 0, idle = 0, iowait = 0, irq = 0, softirq = 0,
                       steal = 0;
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &sys, &idle,
                   &iowait, &irq, &softirq, &steal);
    fclose(f);
    return n == 8 ? (double)(user + nice + sys + irq + softirq + steal) : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2 || (strcmp(argv[1], "fanout") != 0 && strcmp(argv[1], "pairs") != 0)) {
        fprintf(stderr, "usage: cluster_bench fanout|pairs [--subs N] [--pairs P] [--size S] "
                        "[--duration SEC] [--single]\n");
        return 2;
    }
    int fanout = strcmp(argv[1], "fanout") == 0;
    int count = fanout ? 100 : 50;
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--single") == 0)
            use_single = 1;
        else if (i + 1 < argc && (strcmp(argv[i], "--subs") == 0 || strcmp(argv[i], "--pairs") == 0))
            count = atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--size") == 0)
            size = (size_t)atoi(argv[++i]);
        else if (i + 1 < argc && strcmp(argv[i], "--duration") == 0)
            duration = atof(argv[++i]);
        else {
            fprintf(stderr, "cluster_bench: unknown argument %s\n", argv[i]);
            return 2;
        }
    }
    if (count < 1 || count > (fanout ? MAX_CLIENTS - 1 : MAX_CLIENTS / 2) || size < 12 ||
        size > 65536 || duration <= 0) {
        fprintf(stderr, "cluster_bench: bad arguments\n");
        return 2;
    }
    static const char *const args[] = {"--log-level", "warn", "--max-subs", "100000", NULL};
    if (use_single) {
        if (p2p_server_start(&single, args) != 0)
            return 2;
    } else {
        if (nats_server_path() == NULL) {
            printf("SKIP: nats-server is not installed\n");
            return 77;
        }
        if (cl_try_start(&cluster, args, NULL) != 0) {
            cl_try_stop(&cluster);
            return 2;
        }
    }
    ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep == -1)
        die("epoll_create1");

    /* Publishers register first, so that v1 SUBSCRIBEs on the other relay
     * find them online there (checked before they subscribe). */
    n_pubs = fanout ? 1 : 2 * count;
    subs_per_pub = fanout ? count : 1;
    for (int p = 0; p < n_pubs; p++) {
        int relay = fanout ? 0 : p % 2;
        pubs[p] = new_client(relay, p, fanout ? -1 : p ^ 1);
        char id[32];
        pub_id(id, sizeof id, p);
        put_frame(&clients[pubs[p]], P2P_CMD_REGISTER, id, strlen(id));
        clients[pubs[p]].replies_due++;
        flush_out(&clients[pubs[p]]);
    }
    while (!set_up_done())
        turn(10);
    if (!use_single) {
        /* Each relay knows the other's publishers. */
        for (int r = 0; r < 2; r++) {
            int want = fanout ? (r == 1) : count;
            uint64_t until = now_ns() + 10000000000ull;
            while (cl_metric(&cluster, r, "stupidp2p_cluster_remote_devices") < want) {
                if (now_ns() > until)
                    die("the relays do not see each other's publishers");
                turn(10);
            }
        }
    }
    for (int p = 0; p < n_pubs; p++) {
        char id[32];
        if (fanout) {
            for (int s = 0; s < count; s++) {
                int i = new_client(1, -1, 0);
                pub_id(id, sizeof id, 0);
                put_frame(&clients[i], P2P_CMD_SUBSCRIBE, id, strlen(id));
                clients[i].replies_due++;
                flush_out(&clients[i]);
            }
        } else {
            /* The publisher of pair p subscribes to its partner. */
            pub_id(id, sizeof id, p ^ 1);
            struct client *c = &clients[pubs[p]];
            put_frame(c, P2P_CMD_SUBSCRIBE, id, strlen(id));
            c->replies_due++;
            flush_out(c);
        }
    }
    while (!set_up_done())
        turn(10);
    phase = WARM;
    uint64_t until = now_ns() + 30000000000ull;
    while (!all_warm()) {
        if (now_ns() > until)
            die("warm-up: data does not reach every receiver");
        turn(1);
    }
    phase = SETTLE;
    while (!all_acked())
        turn(1);
    for (int p = 0; p < n_pubs; p++)
        clients[pubs[p]].sent = clients[pubs[p]].acked = 0;

    pid_t pids[8];
    int n_pids = 0;
    if (use_single) {
        pids[n_pids++] = single.pid;
    } else {
        for (int r = 0; r < 3; r++)
            pids[n_pids++] = cluster.relays[r].pid;
        for (int k = 0; k < 3; k++)
            pids[n_pids++] = cluster.nats.nodes[k].pid;
    }
    double before[8];
    for (int k = 0; k < n_pids; k++)
        before[k] = cpu_ticks(pids[k]);
    double machine_before = machine_busy_ticks();
    struct timespec gen_before;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &gen_before);
    phase = RUN;
    uint64_t start = now_ns();
    deadline_ns = start + (uint64_t)(duration * 1e9);
    uint64_t idle_since = 0, last_seen = 0;
    for (;;) {
        turn(1);
        uint64_t delivered = 0, sent = 0;
        for (int i = 0; i < n_clients; i++)
            delivered += clients[i].delivered;
        for (int p = 0; p < n_pubs; p++)
            sent += clients[pubs[p]].sent;
        if (now_ns() >= deadline_ns && delivered == sent * (uint64_t)subs_per_pub)
            break;
        if (delivered != last_seen) {
            last_seen = delivered;
            idle_since = now_ns();
        } else if (idle_since != 0 && now_ns() - idle_since > 5000000000ull) {
            break; /* nothing for 5 s: what is missing is lost */
        }
    }
    double elapsed = (double)(last_delivery_ns - first_send_ns) / 1e9;
    double ticks = (double)sysconf(_SC_CLK_TCK);
    double wall = (double)(now_ns() - start) / 1e9;
    uint64_t delivered = 0, sent = 0, lost = 0, reordered = 0;
    for (int i = 0; i < n_clients; i++) {
        delivered += clients[i].delivered;
        lost += clients[i].lost;
        reordered += clients[i].reordered;
    }
    for (int p = 0; p < n_pubs; p++)
        sent += clients[pubs[p]].sent;
    uint64_t expected = sent * (uint64_t)subs_per_pub;
    if (delivered < expected)
        lost += expected - delivered;
    printf("server=%s workload=%s %s=%d size=%zu duration=%g sent=%llu deliveries=%llu "
           "expected=%llu deliveries_per_s=%.0f lost=%llu reordered=%llu",
           use_single ? "relay" : "cluster", fanout ? "fanout" : "pairs", fanout ? "subs" : "pairs",
           count, size, duration, (unsigned long long)sent, (unsigned long long)delivered,
           (unsigned long long)expected, elapsed > 0 ? (double)delivered / elapsed : 0,
           (unsigned long long)lost, (unsigned long long)reordered);
    static const char *const names[] = {"relay0", "relay1", "relay2", "nats0", "nats1", "nats2"};
    double ours = 0;
    for (int k = 0; k < n_pids; k++) {
        double pct = 100.0 * (cpu_ticks(pids[k]) - before[k]) / ticks / wall;
        ours += pct;
        printf(" cpu_%s=%.0f", use_single ? "relay" : names[k], pct);
    }
    struct timespec gen_after;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &gen_after);
    double gen = 100.0 *
                 ((double)(gen_after.tv_sec - gen_before.tv_sec) +
                  (double)(gen_after.tv_nsec - gen_before.tv_nsec) / 1e9) /
                 wall;
    double machine = 100.0 * (machine_busy_ticks() - machine_before) / ticks / wall;
    printf(" cpu_generator=%.0f machine_cpu_pct=%.0f other_cpu_pct=%.0f", gen, machine,
           machine - ours - gen);
    if (!use_single) {
        /* How many SENDs a NATS message carried (batching), from relay 0. */
        double sends = cl_metric(&cluster, 0, "stupidp2p_cluster_sends_total{kind=\"send_out\"}");
        double msgs = cl_metric(&cluster, 0, "stupidp2p_cluster_messages_total{direction=\"out\"}");
        if (msgs > 0)
            printf(" sends_per_nats_message=%.1f", sends / msgs);
        /* Where losses come from, if any: the relays' own counts. */
        static const char *const why[] = {"nats_disconnected", "nats_slow", "stale_holder",
                                          "out_of_order", "unfollowed"};
        for (int r = 0; r < 2; r++)
            for (size_t k = 0; k < sizeof why / sizeof why[0]; k++) {
                char series[128];
                snprintf(series, sizeof series, "stupidp2p_cluster_dropped_total{reason=\"%s\"}",
                         why[k]);
                double v = cl_metric(&cluster, r, series);
                if (v > 0)
                    printf(" relay%d_dropped_%s=%.0f", r, why[k], v);
            }
    }
    printf("\n");
    int stopped = use_single ? (p2p_server_stop(&single) == 0 ? 0 : -1) : cl_try_stop(&cluster);
    return lost == 0 && reordered == 0 && stopped == 0 ? 0 : 1;
}
