/*
 * nats_cluster.h - real nats-server processes for tests: a cluster of up to
 * NATS_CLUSTER_MAX servers on 127.0.0.1, each with a client port, a
 * monitoring port and a cluster block whose routes name every other server,
 * all on ephemeral ports. C, so that the C integration tests can use it as
 * well as the C++ unit tests.
 *
 * Ports are reserved the way harness.c reserves the relay's: a socket bound
 * to 127.0.0.1:0 with SO_REUSEADDR and never listening holds each port for
 * as long as the cluster lives, so that no other test's server or outgoing
 * connection takes it, also while a node is killed and before it comes back
 * on the same ports. nats-server (Go) binds with SO_REUSEADDR beside it.
 *
 * Readiness is a condition, polled with short naps up to a deadline: the
 * monitoring port answers GET /routez with num_routes equal to the number of
 * other servers, and the client port accepts a connection and sends INFO.
 * Configurations go to a temporary directory, each server's output to
 * $P2P_BUILD/test-logs/servers/nats-*.txt (or /tmp). Children die with the
 * thread that started them (PR_SET_PDEATHSIG): start them from the test's
 * main thread.
 *
 * Lower ping intervals than the defaults are configured (ping_interval 1s,
 * ping_max 2), so that a client that stops answering is dropped quickly.
 */
#ifndef STUPIDP2P_TEST_NATS_CLUSTER_H
#define STUPIDP2P_TEST_NATS_CLUSTER_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#ifdef __cplusplus
extern "C" {
#endif

#define NATS_CLUSTER_MAX 5
/* Bound on waiting for a server to be ready, or to exit. */
#define NATS_CLUSTER_WAIT_MS 10000

struct nats_node {
    pid_t pid; /* 0 when not running */
    uint16_t client_port;
    uint16_t cluster_port;
    uint16_t http_port;
    int reserve_fds[3]; /* hold the three ports for the cluster's life */
    char conf_path[300];
    char log_path[512];
};

struct nats_cluster {
    int count;
    char dir[64]; /* the configurations */
    struct nats_node nodes[NATS_CLUSTER_MAX];
};

/* The nats-server binary: $P2P_NATS_SERVER, or nats-server on PATH, in
 * /usr/sbin or /usr/local/sbin (Debian installs it in /usr/sbin, often not
 * on a user's PATH). NULL when there is none. */
const char *nats_server_path(void);

/* Starts count (1..NATS_CLUSTER_MAX) servers routed to each other, each
 * configuration ending with extra_conf (NULL or text such as an
 * authorization block). Returns 0 once every server is ready, -1 (with a
 * message on stderr, and everything started stopped again) otherwise. */
int nats_cluster_start(struct nats_cluster *cluster, int count, const char *extra_conf);

/* SIGKILL and reap node i: a crash, as its clients see it. Its ports stay
 * reserved. */
void nats_node_kill(struct nats_cluster *cluster, int i);

/* Starts node i again on the same ports and configuration; 0 once its
 * client port answers (routes re-form on their own), -1 otherwise. */
int nats_node_restart(struct nats_cluster *cluster, int i);

/* num_routes from node i's GET /routez, or -1 if it does not answer. */
int nats_node_routes(const struct nats_cluster *cluster, int i);

/* Kills every node, releases the ports, removes the configurations. Safe to
 * call twice, and on a cluster that failed to start. */
void nats_cluster_stop(struct nats_cluster *cluster);

/* A free port on 127.0.0.1, held by a bound, never listening,
 * SO_REUSEADDR socket (*fd) until that is closed: for the other servers of
 * a test too. 0 (and *fd -1) on failure. */
uint16_t nats_reserve_port(int *fd);

/* Writes "nats://127.0.0.1:PORT" of node i into out. */
void nats_node_url(const struct nats_cluster *cluster, int i, char *out, size_t cap);

#ifdef __cplusplus
}
#endif

#endif
