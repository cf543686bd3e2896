/*
 * cluster.h - a cluster of relays for tests: NATS_CLUSTER servers of
 * nats-server routed to each other (nats_cluster.h) and as many p2pServer
 * relays, relay i started as
 *     p2pServer --bind 127.0.0.1 --cluster URL_i,URL_i+1,... --node-name r<i>
 *               --metrics 127.0.0.1:PORT [extra args] PORT
 * so that each is attached to a different NATS server first and lists the
 * others to fail over to. Everything on 127.0.0.1 with ephemeral ports;
 * every wait bounded; the relays' logs as harness.h keeps them (printed by a
 * failing tc_ helper).
 *
 * Readiness of the cluster is a condition on every relay's /metrics: its
 * link is up and it counts every running relay alive (it has heard their
 * heartbeats). Interest in a device's data travels through the NATS routes
 * in its own time, a few milliseconds: cl_sync_data() waits for it with
 * probe messages, which tests use before they count sequence numbers.
 *
 * Helpers named cl_expect_* or that say they fail the test do so through
 * tc_fail (harness.h); include <cmocka.h>'s prerequisites first.
 */
#ifndef STUPIDP2P_TEST_CLUSTER_H
#define STUPIDP2P_TEST_CLUSTER_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"
#include "nats_cluster.h"

#define CL_RELAYS 3
/* Bound on the cluster forming, a relay coming back, a metric reaching a
 * value. */
#define CL_WAIT_MS 15000

struct relay_cluster {
    struct nats_cluster nats;
    struct p2p_server relays[CL_RELAYS];
    int count;
    uint16_t metrics_port[CL_RELAYS];
    int metrics_fd[CL_RELAYS];   /* holds the metrics port while a relay is down */
    char args[CL_RELAYS][8][300]; /* the cluster arguments of each relay */
    const char *argv[CL_RELAYS][40];
};

/* Prints the SKIP line and skips the current test when nats-server is
 * missing. */
#define CL_REQUIRE_NATS()                                                                          \
    do {                                                                                           \
        if (nats_server_path() == NULL) {                                                          \
            printf("SKIP: nats-server is not installed (Debian package nats-server; "              \
                   "scripts/ensure-test-deps.sh installs it when run as root)\n");                 \
            skip();                                                                                \
        }                                                                                          \
    } while (0)

/* Starts the NATS servers (nats_extra_conf added to each configuration, or
 * NULL) and the relays (extra_args, NULL-terminated, added to each, or
 * NULL), and waits until the cluster has formed. Fails the test on error. */
void cl_start(struct relay_cluster *c, const char *const *extra_args, const char *nats_extra_conf);

/* The same without failing a test (for tools: the soak, the benchmark): 0,
 * or -1 with the reason on stderr (cl_stop then stops what started). */
int cl_try_start(struct relay_cluster *c, const char *const *extra_args, const char *nats_extra_conf);
int cl_try_wait_formed(struct relay_cluster *c);
int cl_try_stop(struct relay_cluster *c);

/* Stops every relay (each must exit 0 on SIGTERM, unless killed) and every
 * NATS server. */
void cl_stop(struct relay_cluster *c);

/* CMocka fixtures: *state becomes a started cluster with default relays
 * (nothing is started without nats-server: the test's CL_REQUIRE_NATS()
 * skips it); teardown stops it. CL_TEST(f) is a case with its own
 * cluster. */
int cl_setup(void **state);
int cl_teardown(void **state);
#define CL_TEST(f) cmocka_unit_test_setup_teardown(f, cl_setup, cl_teardown)

/* A cluster whose relays all load one auth file (--auth-file), written
 * from text (tc_auth_line, auth.h) into a directory of its own. Without
 * nats-server nothing is started (the test's CL_REQUIRE_NATS() skips). */
struct cl_auth_cluster {
    struct relay_cluster c;
    char dir[512];
    char path[600];
    const char *args[3];
};
void cl_auth_start(struct cl_auth_cluster *f, const char *text);
void cl_auth_stop(struct cl_auth_cluster *f);

/* Waits until every running relay's link is up and it counts all running
 * relays alive; fails the test after CL_WAIT_MS. */
void cl_wait_formed(struct relay_cluster *c);

/* SIGKILL relay i (its ports stay reserved), and start it again. */
void cl_kill_relay(struct relay_cluster *c, int i);
void cl_restart_relay(struct relay_cluster *c, int i);

/* Stops relay i (it must exit 0 on SIGTERM) and starts it again with
 * other extra arguments (NULL-terminated, or NULL), waiting for the
 * cluster to form again. */
void cl_restart_relay_with(struct relay_cluster *c, int i, const char *const *extra_args);

uint16_t cl_port(const struct relay_cluster *c, int i);

/* Occurrences of text in relay i's log (of its current run). */
int cl_log_count(const struct relay_cluster *c, int i, const char *text);

/* A metric of relay i: the value of the first line of GET /metrics that
 * starts with series followed by a space (series is a name, with its
 * {labels} if it has any), or -1 when the relay does not answer or has no
 * such line. */
double cl_metric(const struct relay_cluster *c, int i, const char *series);

/* Waits until cl_metric(c, i, series) >= value; fails after timeout_ms.
 * Returns the milliseconds it took. */
long cl_wait_metric(const struct relay_cluster *c, int i, const char *series, double value,
                    int timeout_ms);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t cl_now_ms(void);

/* Waits until data published by the holder of the device fd `pub` reaches
 * every subscriber in subs[0..n): sends probe SENDs (pub_v2: pub is a v2
 * session, not quiet) until each subscriber has received one, then an end
 * marker, and reads each subscriber up to it. Probe deliveries are the
 * only frames a subscriber may receive meanwhile. Fails the test if the
 * data does not flow within CL_WAIT_MS. */
void cl_sync_data(int pub, const int *subs, int n);

/* A payload "NAME:SEQ" (NAME up to 32 bytes) for sequence checks; returns
 * its length. */
size_t cl_seq_payload(char *out, size_t cap, const char *name, unsigned seq);

#endif
