/*
 * test_cluster_cli.c - p2pServer --cluster and --node-name through the
 * real binary (issue 13): credentials in the URL reach NATS and never the
 * log, whether they are right or wrong; a host that is neither numeric nor
 * in /etc/hosts stops the start (exit 1), naming the host only; the
 * node name defaults to HOSTNAME-PORT; a bad command line exits 2.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "cluster.h"
#include "harness.h"
#include "protocol.h"

#define SECRET "s3cr3t-pa55"

static const char kAuthConf[] = "authorization {\n  user: relay\n  password: " SECRET "\n}\n";

static int log_has(const struct p2p_server *s, const char *text)
{
    return tc_log_count(s, text) > 0;
}

static void test_credentials_never_logged(void **state)
{
    (void)state;
    CL_REQUIRE_NATS();
    struct nats_cluster nats;
    if (nats_cluster_start(&nats, 1, kAuthConf) != 0)
        tc_fail("NATS did not start");
    char good[256], bad[256];
    snprintf(good, sizeof good, "nats://relay:%s@127.0.0.1:%u", SECRET, nats.nodes[0].client_port);
    snprintf(bad, sizeof bad, "nats://relay:wrong-%s@127.0.0.1:%u", SECRET,
             nats.nodes[0].client_port);
    const char *good_args[] = {"--cluster", good, "--node-name", "good", "--log-level", "debug", NULL};
    const char *bad_args[] = {"--cluster", bad, "--node-name", "bad", "--log-level", "debug", NULL};
    struct p2p_server ok, refused;
    tc_start_server(&ok, good_args);
    tc_start_server(&refused, bad_args);
    tc_wait_log(&ok, "nats: connected to 127.0.0.1:", 1);
    tc_wait_log(&refused, "Authorization Violation", 1);
    /* More attempts of the refused one, each a chance to leak. */
    int64_t until = cl_now_ms() + 500;
    while (cl_now_ms() < until)
        usleep(20000);
    if (log_has(&ok, SECRET) || log_has(&refused, SECRET))
        tc_fail("a password reached the log");
    if (!log_has(&refused, "nats: 127.0.0.1:"))
        tc_fail("the refusal does not name the server");
    tc_stop_server(&ok);
    tc_stop_server(&refused);
    nats_cluster_stop(&nats);
}

static void test_default_node_name(void **state)
{
    (void)state;
    CL_REQUIRE_NATS();
    struct nats_cluster nats;
    if (nats_cluster_start(&nats, 1, NULL) != 0)
        tc_fail("NATS did not start");
    char url[64];
    nats_node_url(&nats, 0, url, sizeof url);
    const char *args[] = {"--cluster", url, NULL};
    struct p2p_server s;
    tc_start_server(&s, args);
    char host[256] = "";
    gethostname(host, sizeof host);
    for (char *p = host; *p != '\0'; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
              *p == '_' || *p == '-'))
            *p = '-';
    char want[400];
    snprintf(want, sizeof want, "this relay is node %.56s-%u ", host, s.port);
    tc_wait_log(&s, want, 1);
    tc_stop_server(&s);
    nats_cluster_stop(&nats);
}

/* A relay alone: its snapshot request at connection is answered by NATS
 * with a "503 no responders" status, which is neither a message of the
 * cluster nor a malformed one (it was counted and logged as one). */
static void test_relay_alone(void **state)
{
    (void)state;
    CL_REQUIRE_NATS();
    struct relay_cluster c;
    memset(&c, 0, sizeof c);
    if (nats_cluster_start(&c.nats, 1, NULL) != 0)
        tc_fail("NATS did not start");
    c.count = 1;
    c.metrics_port[0] = nats_reserve_port(&c.metrics_fd[0]);
    char url[64], metrics[64];
    nats_node_url(&c.nats, 0, url, sizeof url);
    snprintf(metrics, sizeof metrics, "127.0.0.1:%u", c.metrics_port[0]);
    const char *args[] = {"--cluster", url, "--metrics", metrics, NULL};
    tc_start_server(&c.relays[0], args);
    cl_wait_metric(&c, 0, "stupidp2p_cluster_messages_total{direction=\"in\"}", 1, CL_WAIT_MS);
    if (cl_metric(&c, 0, "stupidp2p_cluster_dropped_total{reason=\"malformed\"}") != 0 ||
        tc_log_count(&c.relays[0], "is not ours") != 0)
        tc_fail("a NATS status was taken for a malformed message");
    if (cl_metric(&c, 0, "stupidp2p_cluster_nodes") != 1)
        tc_fail("a relay alone counts other relays");
    cl_stop(&c);
}

/* SIGUSR1 logs the counters whole: the cluster's on a line of their own
 * (on one line with the rest they passed the log's line limit and were
 * cut). No NATS server is needed for it. */
static void test_sigusr1_counters(void **state)
{
    (void)state;
    const char *args[] = {"--cluster", "nats://127.0.0.1:1", NULL};
    struct p2p_server s;
    tc_start_server(&s, args);
    if (kill(s.pid, SIGUSR1) == -1)
        tc_fail("kill: %s", strerror(errno));
    tc_wait_log(&s, "cluster counters: ", 1);
    /* Each line ends with its last figure, then the newline. */
    if (tc_log_count(&s, " metrics_bad_requests=0\n") != 1)
        tc_fail("the counters line was cut");
    if (tc_log_count(&s, " cluster_snapshots{kind=\"abandoned\"}=0\n") != 1)
        tc_fail("the cluster counters line was cut");
    tc_stop_server(&s);
}

static void test_bad_cluster_arguments(void **state)
{
    (void)state;
    char out[4096];
    /* A name that is neither numeric nor in /etc/hosts: exit 1 at start,
     * before listening. */
    const char *unresolvable[] = {p2p_server_path(), "--bind", "127.0.0.1", "--cluster",
                                  "nats://127.0.0.1:4222,nats://u:" SECRET "@no-such-host.invalid",
                                  "1", NULL};
    if (tc_run_capture(unresolvable, out, sizeof out, TC_WAIT_MS) != 1)
        tc_fail("an unresolvable NATS host did not stop the start: %s", out);
    if (strstr(out, "no-such-host.invalid is not an address and not in /etc/hosts") == NULL ||
        strstr(out, SECRET) != NULL)
        tc_fail("the error does not name the host, or shows the password: %s", out);
    const char *lonely[] = {p2p_server_path(), "--node-name", "r1", "4040", NULL};
    if (tc_run_capture(lonely, out, sizeof out, TC_WAIT_MS) != 2)
        tc_fail("--node-name without --cluster: %s", out);
    const char *bad_name[] = {p2p_server_path(), "--cluster", "nats://127.0.0.1", "--node-name",
                              "a.b", "4040", NULL};
    if (tc_run_capture(bad_name, out, sizeof out, TC_WAIT_MS) != 2)
        tc_fail("a node name with a dot: %s", out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_credentials_never_logged),
        cmocka_unit_test(test_default_node_name),
        cmocka_unit_test(test_relay_alone),
        cmocka_unit_test(test_sigusr1_counters),
        cmocka_unit_test(test_bad_cluster_arguments),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
