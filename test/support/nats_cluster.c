/*
 * nats_cluster.c - see nats_cluster.h.
 */
#include "nats_cluster.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"

/* ---- time and waiting ------------------------------------------------------ */

static int64_t clock_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Between two looks at a condition. */
static void pause_ms(int ms)
{
    struct timespec ts = {0, (long)ms * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* ---- the binary ------------------------------------------------------------ */

static int executable(const char *path)
{
    return access(path, X_OK) == 0;
}

const char *nats_server_path(void)
{
    static char found[512];
    const char *env = getenv("P2P_NATS_SERVER");
    if (env != NULL && env[0] != '\0')
        return executable(env) ? env : NULL;
    const char *path = getenv("PATH");
    char dirs[2048];
    snprintf(dirs, sizeof dirs, "%s:/usr/sbin:/usr/local/sbin", path != NULL ? path : "/usr/bin:/bin");
    char *save = NULL;
    for (char *dir = strtok_r(dirs, ":", &save); dir != NULL; dir = strtok_r(NULL, ":", &save)) {
        snprintf(found, sizeof found, "%s/nats-server", dir);
        if (executable(found))
            return found;
    }
    return NULL;
}

/* ---- ports ------------------------------------------------------------------- */

/* A bound, never listening, SO_REUSEADDR socket on 127.0.0.1:0: its port
 * is ours until the socket is closed. Returns the port (fd in *fd) or 0. */
uint16_t nats_reserve_port(int *fd)
{
    struct sockaddr_in a;
    socklen_t len = sizeof a;
    int one = 1;
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*fd == -1)
        return 0;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (setsockopt(*fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == 0 &&
        bind(*fd, (struct sockaddr *)&a, sizeof a) == 0 &&
        getsockname(*fd, (struct sockaddr *)&a, &len) == 0)
        return ntohs(a.sin_port);
    fprintf(stderr, "nats_cluster: reserving a port: %s\n", strerror(errno));
    close(*fd);
    *fd = -1;
    return 0;
}

static int connect_local(uint16_t port)
{
    struct sockaddr_in a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return -1;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    if (connect(fd, (struct sockaddr *)&a, sizeof a) == -1) {
        close(fd);
        return -1;
    }
    return fd;
}

/* Reads from fd until EOF, cap - 1 bytes or the deadline; NUL-terminates.
 * Returns the byte count. */
static size_t read_some(int fd, char *out, size_t cap, int64_t deadline, const char *enough)
{
    size_t n = 0;
    while (n + 1 < cap) {
        int64_t left = deadline - clock_ms();
        if (left <= 0)
            break;
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        int r = poll(&p, 1, (int)left);
        if (r == -1 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        ssize_t got = read(fd, out + n, cap - 1 - n);
        if (got == -1 && errno == EINTR)
            continue;
        if (got <= 0)
            break;
        n += (size_t)got;
        out[n] = '\0';
        if (enough != NULL && strstr(out, enough) != NULL)
            break;
    }
    out[n] = '\0';
    return n;
}

/* ---- probes ------------------------------------------------------------------ */

static int client_port_answers(uint16_t port)
{
    int fd = connect_local(port);
    if (fd == -1)
        return 0;
    char buf[64];
    read_some(fd, buf, sizeof buf, clock_ms() + 1000, "INFO ");
    close(fd);
    return strncmp(buf, "INFO ", 5) == 0;
}

int nats_node_routes(const struct nats_cluster *cluster, int i)
{
    int fd = connect_local(cluster->nodes[i].http_port);
    if (fd == -1)
        return -1;
    static const char request[] = "GET /routez HTTP/1.0\r\n\r\n";
    if (write(fd, request, sizeof request - 1) != (ssize_t)(sizeof request - 1)) {
        close(fd);
        return -1;
    }
    char reply[16384];
    read_some(fd, reply, sizeof reply, clock_ms() + 1000, NULL);
    close(fd);
    const char *field = strstr(reply, "\"num_routes\":");
    if (field == NULL)
        return -1;
    return atoi(field + strlen("\"num_routes\":"));
}

/* ---- processes --------------------------------------------------------------- */

static int open_log(struct nats_node *node, int i)
{
    const char *build = getenv("P2P_BUILD");
    char dir[400] = "/tmp";
    if (build != NULL && build[0] != '\0') {
        snprintf(dir, sizeof dir, "%s/test-logs/servers", build);
        char parent[420];
        snprintf(parent, sizeof parent, "%s/test-logs", build);
        mkdir(parent, 0777);
        if (mkdir(dir, 0777) == -1 && errno != EEXIST)
            snprintf(dir, sizeof dir, "/tmp");
    }
    snprintf(node->log_path, sizeof node->log_path, "%s/nats-%d-XXXXXX.txt", dir, i);
    int fd = mkostemps(node->log_path, 4, O_CLOEXEC);
    if (fd == -1)
        fprintf(stderr, "nats_cluster: %s: %s\n", node->log_path, strerror(errno));
    return fd;
}

static void print_log(const struct nats_node *node)
{
    FILE *f = fopen(node->log_path, "r");
    if (f == NULL)
        return;
    char line[512];
    fprintf(stderr, "--- %s:\n", node->log_path);
    while (fgets(line, sizeof line, f) != NULL)
        fputs(line, stderr);
    fclose(f);
}

static int spawn(struct nats_node *node, int i)
{
    const char *path = nats_server_path();
    if (path == NULL) {
        fprintf(stderr, "nats_cluster: nats-server not found\n");
        return -1;
    }
    int log = open_log(node, i);
    if (log == -1)
        return -1;
    pid_t pid = tc_fork_tied();
    if (pid == -1) {
        fprintf(stderr, "nats_cluster: fork: %s\n", strerror(errno));
        close(log);
        return -1;
    }
    if (pid == 0) {
        /* Only async-signal-safe calls here: the test may have threads. */
        sigset_t none;
        sigemptyset(&none);
        int nul = open("/dev/null", O_RDONLY);
        if (nul == -1 || dup2(nul, STDIN_FILENO) == -1 || dup2(log, STDOUT_FILENO) == -1 ||
            dup2(log, STDERR_FILENO) == -1)
            _exit(126);
        signal(SIGPIPE, SIG_DFL);
        sigprocmask(SIG_SETMASK, &none, NULL);
        char *const argv[] = {(char *)"nats-server", (char *)"-c", node->conf_path, NULL};
        execv(path, argv);
        _exit(127);
    }
    close(log);
    node->pid = pid;
    return 0;
}

/* Waits up to ms for the node to exit; 1 reaped, 0 still running. */
static int reap(struct nats_node *node, int ms)
{
    int64_t deadline = clock_ms() + ms;
    for (;;) {
        int status;
        pid_t r = waitpid(node->pid, &status, WNOHANG);
        if (r == node->pid || (r == -1 && errno == ECHILD)) {
            node->pid = 0;
            return 1;
        }
        if (clock_ms() >= deadline)
            return 0;
        pause_ms(5);
    }
}

/* Waits until the node's client port answers and, when routes >= 0, its
 * /routez shows that many routes. 0, or -1 when it exited or the deadline
 * passed. */
static int wait_ready(struct nats_cluster *cluster, int i, int routes)
{
    struct nats_node *node = &cluster->nodes[i];
    int64_t deadline = clock_ms() + NATS_CLUSTER_WAIT_MS;
    while (clock_ms() < deadline) {
        if (reap(node, 0)) {
            fprintf(stderr, "nats_cluster: node %d exited while starting\n", i);
            print_log(node);
            return -1;
        }
        if ((routes < 0 || nats_node_routes(cluster, i) == routes) &&
            client_port_answers(node->client_port))
            return 0;
        pause_ms(10);
    }
    fprintf(stderr, "nats_cluster: node %d not ready within %d ms\n", i, NATS_CLUSTER_WAIT_MS);
    print_log(node);
    return -1;
}

static int write_conf(struct nats_cluster *cluster, int i, const char *extra_conf)
{
    struct nats_node *node = &cluster->nodes[i];
    snprintf(node->conf_path, sizeof node->conf_path, "%s/n%d.conf", cluster->dir, i);
    FILE *f = fopen(node->conf_path, "w");
    if (f == NULL) {
        fprintf(stderr, "nats_cluster: %s: %s\n", node->conf_path, strerror(errno));
        return -1;
    }
    fprintf(f,
            "server_name: n%d\n"
            "listen: 127.0.0.1:%u\n"
            "http: 127.0.0.1:%u\n"
            "ping_interval: \"1s\"\n"
            "ping_max: 2\n"
            "cluster {\n"
            "  name: p2ptest\n"
            "  listen: 127.0.0.1:%u\n"
            "  routes: [\n",
            i, node->client_port, node->http_port, node->cluster_port);
    for (int k = 0; k < cluster->count; k++)
        if (k != i)
            fprintf(f, "    nats-route://127.0.0.1:%u\n", cluster->nodes[k].cluster_port);
    fprintf(f, "  ]\n}\n%s\n", extra_conf != NULL ? extra_conf : "");
    return fclose(f) == 0 ? 0 : -1;
}

int nats_cluster_start(struct nats_cluster *cluster, int count, const char *extra_conf)
{
    memset(cluster, 0, sizeof *cluster);
    for (int i = 0; i < NATS_CLUSTER_MAX; i++)
        for (int k = 0; k < 3; k++)
            cluster->nodes[i].reserve_fds[k] = -1;
    if (count < 1 || count > NATS_CLUSTER_MAX)
        return -1;
    cluster->count = count;
    snprintf(cluster->dir, sizeof cluster->dir, "/tmp/p2p-nats-XXXXXX");
    if (mkdtemp(cluster->dir) == NULL) {
        fprintf(stderr, "nats_cluster: mkdtemp: %s\n", strerror(errno));
        cluster->dir[0] = '\0';
        return -1;
    }
    for (int i = 0; i < count; i++) {
        struct nats_node *node = &cluster->nodes[i];
        node->client_port = nats_reserve_port(&node->reserve_fds[0]);
        node->cluster_port = nats_reserve_port(&node->reserve_fds[1]);
        node->http_port = nats_reserve_port(&node->reserve_fds[2]);
        if (node->client_port == 0 || node->cluster_port == 0 || node->http_port == 0)
            goto failed;
    }
    for (int i = 0; i < count; i++)
        if (write_conf(cluster, i, extra_conf) != 0 || spawn(&cluster->nodes[i], i) != 0)
            goto failed;
    for (int i = 0; i < count; i++)
        if (wait_ready(cluster, i, count - 1) != 0)
            goto failed;
    return 0;
failed:
    nats_cluster_stop(cluster);
    return -1;
}

void nats_node_kill(struct nats_cluster *cluster, int i)
{
    struct nats_node *node = &cluster->nodes[i];
    if (node->pid <= 0)
        return;
    if (kill(node->pid, SIGKILL) == -1 && errno != ESRCH)
        fprintf(stderr, "nats_cluster: kill: %s\n", strerror(errno));
    if (!reap(node, NATS_CLUSTER_WAIT_MS))
        fprintf(stderr, "nats_cluster: node %d did not die\n", i);
}

int nats_node_restart(struct nats_cluster *cluster, int i)
{
    nats_node_kill(cluster, i);
    if (spawn(&cluster->nodes[i], i) != 0)
        return -1;
    return wait_ready(cluster, i, -1);
}

void nats_cluster_stop(struct nats_cluster *cluster)
{
    for (int i = 0; i < NATS_CLUSTER_MAX; i++) {
        struct nats_node *node = &cluster->nodes[i];
        nats_node_kill(cluster, i);
        for (int k = 0; k < 3; k++) {
            if (node->reserve_fds[k] != -1)
                close(node->reserve_fds[k]);
            node->reserve_fds[k] = -1;
        }
        if (node->conf_path[0] != '\0')
            unlink(node->conf_path);
        node->conf_path[0] = '\0';
        /* Logs under P2P_BUILD stay for the test report; stray ones in /tmp go. */
        if (strncmp(node->log_path, "/tmp/", 5) == 0 && getenv("P2P_KEEP_LOGS") == NULL)
            unlink(node->log_path);
        node->log_path[0] = '\0';
    }
    if (cluster->dir[0] != '\0')
        rmdir(cluster->dir);
    cluster->dir[0] = '\0';
    cluster->count = 0;
}

void nats_node_url(const struct nats_cluster *cluster, int i, char *out, size_t cap)
{
    snprintf(out, cap, "nats://127.0.0.1:%u", cluster->nodes[i].client_port);
}
