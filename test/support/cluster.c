/*
 * cluster.c - see cluster.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "cluster.h"

#include "auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "protocol.h"

int64_t cl_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* relay i's arguments: the cluster ones, then extra_args. */
static void build_args(struct relay_cluster *c, int i, const char *const *extra_args)
{
    char urls[1024] = "";
    size_t n = 0;
    for (int k = 0; k < c->count; k++) {
        char url[64];
        nats_node_url(&c->nats, (i + k) % c->count, url, sizeof url);
        n += (size_t)snprintf(urls + n, sizeof urls - n, "%s%s", k ? "," : "", url);
    }
    snprintf(c->args[i][0], sizeof c->args[i][0], "%s", urls);
    snprintf(c->args[i][1], sizeof c->args[i][1], "r%d", i);
    snprintf(c->args[i][2], sizeof c->args[i][2], "127.0.0.1:%u", c->metrics_port[i]);
    size_t a = 0;
    c->argv[i][a++] = "--cluster";
    c->argv[i][a++] = c->args[i][0];
    c->argv[i][a++] = "--node-name";
    c->argv[i][a++] = c->args[i][1];
    c->argv[i][a++] = "--metrics";
    c->argv[i][a++] = c->args[i][2];
    for (size_t k = 0; extra_args != NULL && extra_args[k] != NULL && a < 38; k++)
        c->argv[i][a++] = extra_args[k];
    c->argv[i][a] = NULL;
}

int cl_try_start(struct relay_cluster *c, const char *const *extra_args,
                 const char *nats_extra_conf)
{
    memset(c, 0, sizeof *c);
    for (int i = 0; i < CL_RELAYS; i++)
        c->metrics_fd[i] = -1;
    if (nats_cluster_start(&c->nats, CL_RELAYS, nats_extra_conf) != 0) {
        fprintf(stderr, "cluster: the NATS cluster did not start\n");
        return -1;
    }
    c->count = CL_RELAYS;
    for (int i = 0; i < c->count; i++) {
        c->metrics_port[i] = nats_reserve_port(&c->metrics_fd[i]);
        build_args(c, i, extra_args);
        if (c->metrics_port[i] == 0 || p2p_server_start(&c->relays[i], c->argv[i]) != 0) {
            fprintf(stderr, "cluster: relay %d did not start\n", i);
            return -1;
        }
    }
    return cl_try_wait_formed(c);
}

void cl_start(struct relay_cluster *c, const char *const *extra_args, const char *nats_extra_conf)
{
    if (cl_try_start(c, extra_args, nats_extra_conf) != 0)
        tc_fail("the cluster did not start");
}

int cl_try_stop(struct relay_cluster *c)
{
    int bad = -1;
    for (int i = 0; i < c->count; i++) {
        if (c->relays[i].pid != 0 && p2p_server_stop(&c->relays[i]) != 0 && bad < 0)
            bad = i;
        if (c->metrics_fd[i] != -1)
            close(c->metrics_fd[i]);
        c->metrics_fd[i] = -1;
    }
    nats_cluster_stop(&c->nats);
    if (bad >= 0)
        fprintf(stderr, "cluster: relay %d did not exit 0 on SIGTERM\n", bad);
    return bad >= 0 ? -1 : 0;
}

void cl_stop(struct relay_cluster *c)
{
    if (cl_try_stop(c) != 0)
        tc_fail("a relay did not exit 0 on SIGTERM");
}

void cl_restart_relay_with(struct relay_cluster *c, int i, const char *const *extra_args)
{
    if (c->relays[i].pid != 0 && p2p_server_stop(&c->relays[i]) != 0)
        tc_fail("relay %d did not exit 0 on SIGTERM", i);
    build_args(c, i, extra_args);
    if (p2p_server_restart(&c->relays[i], c->argv[i]) != 0)
        tc_fail("relay %d did not start again", i);
    cl_wait_formed(c);
}

int cl_log_count(const struct relay_cluster *c, int i, const char *text)
{
    return tc_log_count(&c->relays[i], text);
}

int cl_setup(void **state)
{
    static struct relay_cluster cluster;
    *state = &cluster;
    memset(&cluster, 0, sizeof cluster);
    if (nats_server_path() != NULL)
        cl_start(&cluster, NULL, NULL);
    return 0;
}

int cl_teardown(void **state)
{
    struct relay_cluster *c = *state;
    if (c->count != 0)
        cl_stop(c);
    c->count = 0;
    return 0;
}

uint16_t cl_port(const struct relay_cluster *c, int i)
{
    return c->relays[i].port;
}

void cl_kill_relay(struct relay_cluster *c, int i)
{
    p2p_server_kill(&c->relays[i]);
}

void cl_restart_relay(struct relay_cluster *c, int i)
{
    if (p2p_server_restart(&c->relays[i], c->argv[i]) != 0)
        tc_fail("relay %d did not start again", i);
}

/* GET /metrics from port into buf; 0 on success. */
static int scrape(uint16_t port, char *buf, size_t cap)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    static const char req[] = "GET /metrics HTTP/1.0\r\n\r\n";
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == -1 ||
        write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return -1;
    }
    size_t n = 0;
    int64_t deadline = cl_now_ms() + 5000;
    while (n + 1 < cap) {
        int left = (int)(deadline - cl_now_ms());
        struct pollfd p = {fd, POLLIN, 0};
        if (left <= 0 || poll(&p, 1, left) != 1)
            break;
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
    }
    buf[n] = '\0';
    close(fd);
    return n > 0 ? 0 : -1;
}

double cl_metric(const struct relay_cluster *c, int i, const char *series)
{
    if (c->relays[i].pid == 0)
        return -1;
    static char body[256 * 1024];
    if (scrape(c->metrics_port[i], body, sizeof body) != 0)
        return -1;
    size_t len = strlen(series);
    for (const char *line = body; line != NULL && *line != '\0';) {
        if (strncmp(line, series, len) == 0 && line[len] == ' ')
            return strtod(line + len + 1, NULL);
        line = strchr(line, '\n');
        if (line != NULL)
            line++;
    }
    return -1;
}

long cl_wait_metric(const struct relay_cluster *c, int i, const char *series, double value,
                    int timeout_ms)
{
    int64_t start = cl_now_ms();
    for (;;) {
        double got = cl_metric(c, i, series);
        if (got >= value)
            return (long)(cl_now_ms() - start);
        if (cl_now_ms() - start > timeout_ms)
            tc_fail("relay %d: %s is %g, not %g or more, after %d ms", i, series, got, value,
                    timeout_ms);
        nap(5);
    }
}

int cl_try_wait_formed(struct relay_cluster *c)
{
    int running = 0;
    for (int i = 0; i < c->count; i++)
        running += c->relays[i].pid != 0;
    int64_t deadline = cl_now_ms() + CL_WAIT_MS;
    for (int i = 0; i < c->count; i++) {
        if (c->relays[i].pid == 0)
            continue;
        while (cl_metric(c, i, "stupidp2p_cluster_link_up") != 1 ||
               cl_metric(c, i, "stupidp2p_cluster_nodes") != running) {
            if (cl_now_ms() > deadline) {
                fprintf(stderr, "cluster: relay %d: no cluster within %d ms (link up %g, %g nodes "
                                "of %d)\n",
                        i, CL_WAIT_MS, cl_metric(c, i, "stupidp2p_cluster_link_up"),
                        cl_metric(c, i, "stupidp2p_cluster_nodes"), running);
                return -1;
            }
            nap(10);
        }
    }
    return 0;
}

void cl_wait_formed(struct relay_cluster *c)
{
    if (cl_try_wait_formed(c) != 0)
        tc_fail("the cluster did not form");
}

/* ---- data ------------------------------------------------------------------- */

static const char kProbe[] = "\xff" "probe";
static const char kProbeEnd[] = "\xff" "probe-end";

/* Whether frame[0..n) is a delivery (v1 or v2) whose data is text. */
static int delivery_of(const uint8_t *frame, ssize_t n, const char *text)
{
    size_t len = strlen(text);
    size_t head;
    if (n >= 1 && frame[0] == P2P_CMD_SEND)
        head = 1;
    else if (n >= 2 && frame[0] == P2P_EVT_DELIVER)
        head = 2 + (size_t)frame[1];
    else
        return 0;
    return (size_t)n == head + len && memcmp(frame + head, text, len) == 0;
}

void cl_sync_data(int pub, const int *subs, int n)
{
    int seen[16] = {0};
    int left = n;
    if (n > 16)
        tc_fail("cl_sync_data: at most 16 subscribers");
    int64_t deadline = cl_now_ms() + CL_WAIT_MS;
    while (left > 0) {
        if (cl_now_ms() > deadline)
            tc_fail("data did not reach %d of %d subscribers within %d ms", left, n, CL_WAIT_MS);
        tc_send_cmd(pub, P2P_CMD_SEND, kProbe, strlen(kProbe));
        tc_expect_reply(pub, P2P_CMD_SEND, P2P_STATUS_OK);
        for (int i = 0; i < n; i++) {
            if (seen[i])
                continue;
            uint8_t buf[512];
            ssize_t got = tc_recv_frame(subs[i], buf, sizeof buf, 20);
            if (got < 0)
                continue;
            if (!delivery_of(buf, got, kProbe)) {
                tc_hexdump("received", buf, (size_t)got, 0, 64);
                tc_fail("subscriber %d: a frame other than a probe while waiting for data", i);
            }
            seen[i] = 1;
            left--;
        }
    }
    tc_send_cmd(pub, P2P_CMD_SEND, kProbeEnd, strlen(kProbeEnd));
    tc_expect_reply(pub, P2P_CMD_SEND, P2P_STATUS_OK);
    for (int i = 0; i < n; i++) {
        for (;;) {
            uint8_t buf[512];
            ssize_t got = tc_recv_frame(subs[i], buf, sizeof buf, TC_WAIT_MS);
            if (got < 0)
                tc_fail("subscriber %d: no end of the probes", i);
            if (delivery_of(buf, got, kProbeEnd))
                break;
            if (!delivery_of(buf, got, kProbe)) {
                tc_hexdump("received", buf, (size_t)got, 0, 64);
                tc_fail("subscriber %d: a frame other than a probe among the probes", i);
            }
        }
    }
}

size_t cl_seq_payload(char *out, size_t cap, const char *name, unsigned seq)
{
    int n = snprintf(out, cap, "%.32s:%u", name, seq);
    return n < 0 ? 0 : (size_t)n;
}

void cl_auth_start(struct cl_auth_cluster *f, const char *text)
{
    memset(f, 0, sizeof *f);
    if (nats_server_path() == NULL)
        return;
    tc_auth_dir(f->dir, sizeof f->dir);
    snprintf(f->path, sizeof f->path, "%s/auth", f->dir);
    tc_write_file(f->path, text, 0600);
    f->args[0] = "--auth-file";
    f->args[1] = f->path;
    f->args[2] = NULL;
    cl_start(&f->c, f->args, NULL);
}

void cl_auth_stop(struct cl_auth_cluster *f)
{
    if (f->c.count == 0)
        return;
    cl_stop(&f->c);
    unlink(f->path);
    rmdir(f->dir);
}
