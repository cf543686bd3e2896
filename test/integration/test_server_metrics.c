/*
 * test_server_metrics.c - --metrics ADDR:PORT: GET /metrics in the
 * Prometheus text format (checked line by line by a parser of the format
 * written here: # HELP and # TYPE before each family's samples, valid names,
 * escaped label values, numeric values, no series twice), with figures that
 * follow what clients did; GET /healthz 200 while serving and 503 while
 * shutting down; 404, 405 and 400 for the rest; and the bounds that keep
 * the endpoint from holding more than a few connections and kilobytes or
 * slowing the relay.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "harness.h"
#include "protocol.h"
#include "v2.h"

static const char *const kMetricsArgs[] = {"--metrics", "127.0.0.1:0", NULL};

/* The metrics port, from the server's log line "serving metrics on
 * http://127.0.0.1:PORT/metrics". */
static uint16_t metrics_port(const struct p2p_server *s)
{
    char buf[8192];
    for (int tries = 0; tries < 250; tries++) {
        FILE *f = fopen(s->log_path, "r");
        if (f != NULL) {
            size_t n = fread(buf, 1, sizeof buf - 1, f);
            fclose(f);
            buf[n] = '\0';
            const char *at = strstr(buf, "serving metrics on http://127.0.0.1:");
            if (at != NULL)
                return (uint16_t)atoi(at + strlen("serving metrics on http://127.0.0.1:"));
        }
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    tc_fail("no 'serving metrics on' line in %s", s->log_path);
}

/* Sends request on a new connection to port and reads the whole response
 * (the server closes after it) into buf. Returns the HTTP status, or -1
 * when the connection was closed without a response. */
static int http_raw(uint16_t port, const char *request, char *buf, size_t cap)
{
    int fd = tc_connect(port);
    if (request[0] != '\0')
        (void)tc_try_send_raw(fd, request, strlen(request)); /* may meet a close */
    size_t n = 0;
    for (;;) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 10000) != 1)
            tc_fail("no response within 10 s to: %s", request);
        ssize_t r = read(fd, buf + n, cap - 1 - n);
        if (r <= 0)
            break;
        n += (size_t)r;
        if (n == cap - 1)
            tc_fail("response larger than %zu bytes", cap);
    }
    buf[n] = '\0';
    tc_close(fd);
    int status = -1;
    if (n > 0 && sscanf(buf, "HTTP/1.%*d %d", &status) != 1)
        tc_fail("not an HTTP response: %.200s", buf);
    return status;
}

static int http_get(uint16_t port, const char *path, char *buf, size_t cap)
{
    char req[512];
    snprintf(req, sizeof req, "GET %s HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n", path);
    return http_raw(port, req, buf, cap);
}

/* ---- a parser of the Prometheus text format (0.0.4) --------------------- */

#define MAX_SERIES 256

struct series {
    char key[256]; /* name{labels} as written */
    double value;
};

struct scrape {
    struct series s[MAX_SERIES];
    int n;
};

static int valid_name(const char *p, size_t n)
{
    if (n == 0 || !(isalpha((unsigned char)p[0]) || p[0] == '_' || p[0] == ':'))
        return 0;
    for (size_t i = 1; i < n; i++)
        if (!(isalnum((unsigned char)p[i]) || p[i] == '_' || p[i] == ':'))
            return 0;
    return 1;
}

/* Parses body into *out, failing the test at the first line that breaks
 * the format. */
static void parse_exposition(const char *body, struct scrape *out)
{
    char help_for[128] = "", type_for[128] = "";
    out->n = 0;
    const char *line = body;
    int lineno = 0;
    while (*line != '\0') {
        const char *end = strchr(line, '\n');
        if (end == NULL)
            tc_fail("the last line has no newline: %s", line);
        size_t len = (size_t)(end - line);
        char text[1024];
        if (len >= sizeof text)
            tc_fail("line %d too long", lineno);
        memcpy(text, line, len);
        text[len] = '\0';
        lineno++;
        line = end + 1;
        if (strncmp(text, "# HELP ", 7) == 0 || strncmp(text, "# TYPE ", 7) == 0) {
            char name[128];
            if (sscanf(text + 7, "%127s", name) != 1 || !valid_name(name, strlen(name)))
                tc_fail("line %d: bad metric name: %s", lineno, text);
            if (text[2] == 'H') {
                snprintf(help_for, sizeof help_for, "%s", name);
            } else {
                const char *type = text + 7 + strlen(name) + 1;
                if (strcmp(type, "counter") != 0 && strcmp(type, "gauge") != 0)
                    tc_fail("line %d: unknown type: %s", lineno, text);
                if (strcmp(help_for, name) != 0)
                    tc_fail("line %d: TYPE of %s without its HELP first", lineno, name);
                snprintf(type_for, sizeof type_for, "%s", name);
            }
            continue;
        }
        if (text[0] == '#')
            continue; /* a comment */
        /* name[{labels}] value */
        size_t nl = strcspn(text, "{ ");
        if (!valid_name(text, nl))
            tc_fail("line %d: bad sample name: %s", lineno, text);
        if (strlen(type_for) != nl || strncmp(type_for, text, nl) != 0)
            tc_fail("line %d: sample before its # TYPE: %s", lineno, text);
        const char *p = text + nl;
        if (*p == '{') {
            p++;
            while (*p != '}') {
                size_t ln = strcspn(p, "=");
                if (!valid_name(p, ln) || p[ln] != '=' || p[ln + 1] != '"')
                    tc_fail("line %d: bad label: %s", lineno, text);
                p += ln + 2;
                while (*p != '"') {
                    if (*p == '\0' || *p == '\n')
                        tc_fail("line %d: unterminated label value", lineno);
                    if (*p == '\\') {
                        p++;
                        if (*p != '\\' && *p != '"' && *p != 'n')
                            tc_fail("line %d: bad escape in a label value", lineno);
                    }
                    p++;
                }
                p++;
                if (*p == ',')
                    p++;
                else if (*p != '}')
                    tc_fail("line %d: bad label list: %s", lineno, text);
            }
            p++;
        }
        if (*p != ' ')
            tc_fail("line %d: no space before the value: %s", lineno, text);
        char *vend = NULL;
        errno = 0;
        double v = strtod(p + 1, &vend);
        if (errno != 0 || vend == p + 1 || *vend != '\0')
            tc_fail("line %d: bad value: %s", lineno, text);
        size_t keylen = (size_t)(p - text);
        if (out->n == MAX_SERIES || keylen >= sizeof out->s[0].key)
            tc_fail("too many or too long series");
        for (int i = 0; i < out->n; i++)
            if (strlen(out->s[i].key) == keylen && strncmp(out->s[i].key, text, keylen) == 0)
                tc_fail("line %d: series written twice: %s", lineno, text);
        memcpy(out->s[out->n].key, text, keylen);
        out->s[out->n].key[keylen] = '\0';
        out->s[out->n].value = v;
        out->n++;
    }
}

static double value_of(const struct scrape *sc, const char *key)
{
    for (int i = 0; i < sc->n; i++)
        if (strcmp(sc->s[i].key, key) == 0)
            return sc->s[i].value;
    tc_fail("no series %s in the scrape", key);
}

static void scrape(uint16_t port, struct scrape *out)
{
    static char buf[65536];
    int status = http_get(port, "/metrics", buf, sizeof buf);
    if (status != 200)
        tc_fail("GET /metrics: %d\n%s", status, buf);
    if (strstr(buf, "Content-Type: text/plain; version=0.0.4") == NULL)
        tc_fail("GET /metrics: not the text format's content type:\n%.300s", buf);
    const char *body = strstr(buf, "\r\n\r\n");
    assert_non_null(body);
    parse_exposition(body + 4, out);
}

/* ---- tests --------------------------------------------------------------- */

/* The figures follow what clients do. */
static void test_metrics_follow_traffic(void **state)
{
    uint16_t port = tc_port(state);
    uint16_t mport = metrics_port(*state);
    struct scrape sc;
    scrape(mport, &sc);
    assert_true(value_of(&sc, "stupidp2p_connections_open") == 0);
    assert_true(value_of(&sc, "stupidp2p_build_info{version=\"" P2P_VERSION "\"}") == 1);

    int pub, sub;
    tc_connect_pub_sub(port, "pub", &pub, &sub);
    for (int i = 0; i < 3; i++) {
        tc_send_data(pub, "hi", 2, 1);
        tc_expect_data(sub, "hi", 2);
    }
    int thief = tc_connect(port);
    tc_register(thief, "pub", 1); /* takes "pub" over: pub is closed */
    tc_expect_closed(pub, TC_WAIT_MS, 0);
    tc_close(pub);
    tc_wait_alive(sub, "pub", 3, 1, TC_WAIT_MS); /* the server is past the takeover */

    scrape(mport, &sc);
    assert_true(value_of(&sc, "stupidp2p_connections_accepted_total") == 3);
    assert_true(value_of(&sc, "stupidp2p_devices_online") == 1);
    assert_true(value_of(&sc, "stupidp2p_subscriptions") == 1);
    assert_true(value_of(&sc, "stupidp2p_deliveries_total") == 3);
    assert_true(value_of(&sc, "stupidp2p_takeovers_total") == 1);
    assert_true(value_of(&sc, "stupidp2p_connections_closed_total{reason=\"taken_over\"}") == 1);
    /* register, subscribe, 3 sends, register, check-alive polls >= 1 */
    assert_true(value_of(&sc, "stupidp2p_frames_in_total") >= 7);
    assert_true(value_of(&sc, "stupidp2p_bytes_in_total") > 0);
    assert_true(value_of(&sc, "stupidp2p_bytes_out_total") > 0);
    assert_true(value_of(&sc, "stupidp2p_frames_out_total") >= 10);
    assert_true(value_of(&sc, "stupidp2p_output_pending_bytes") == 0);
    tc_close(sub);
    tc_close(thief);
}

static void test_health_and_errors(void **state)
{
    uint16_t mport = metrics_port(*state);
    char buf[4096];
    assert_int_equal(http_get(mport, "/healthz", buf, sizeof buf), 200);
    assert_non_null(strstr(buf, "\r\n\r\nok\n"));
    assert_int_equal(http_get(mport, "/healthz?verbose=1", buf, sizeof buf), 200);
    assert_int_equal(http_get(mport, "/nope", buf, sizeof buf), 404);
    assert_int_equal(http_raw(mport, "POST /metrics HTTP/1.1\r\n\r\n", buf, sizeof buf), 405);
    assert_non_null(strstr(buf, "Allow: GET, HEAD"));
    assert_int_equal(http_raw(mport, "HEAD /metrics HTTP/1.0\r\n\r\n", buf, sizeof buf), 200);
    assert_null(strstr(buf, "# HELP")); /* HEAD: headers only */
    assert_int_equal(http_raw(mport, "garbage\r\n\r\n", buf, sizeof buf), 400);
    assert_int_equal(http_raw(mport, "GET metrics HTTP/1.1\r\n\r\n", buf, sizeof buf), 400);
    /* A request that never ends within 4 KiB: 400 and a close. */
    char big[6000];
    memset(big, 'a', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(http_raw(mport, big, buf, sizeof buf), 400);
    struct scrape sc;
    scrape(mport, &sc);
    assert_true(value_of(&sc, "stupidp2p_metrics_bad_requests_total") == 3);
}

/* Four idle connections are all it holds: a fifth is closed at once, the
 * relay answers meanwhile, and a silent client is let go within the
 * request timeout (5 s). */
static void test_bounded_clients(void **state)
{
    uint16_t port = tc_port(state);
    uint16_t mport = metrics_port(*state);
    int idle[4];
    for (int i = 0; i < 4; i++)
        idle[i] = tc_connect(mport);
    char buf[256];
    /* The fifth: closed without a response. */
    assert_int_equal(http_get(mport, "/healthz", buf, sizeof buf), -1);
    int c = tc_connect(port);
    assert_true(tc_is_open(c)); /* the relay does not wait for them */
    /* The silent ones are closed by the server (EOF), bounded. */
    for (int i = 0; i < 4; i++)
        tc_expect_closed(idle[i], 10000, 0);
    for (int i = 0; i < 4; i++)
        tc_close(idle[i]);
    int status = -1;
    for (int tries = 0; tries < 50 && status != 200; tries++)
        status = http_get(mport, "/healthz", buf, sizeof buf); /* until they are reaped */
    assert_int_equal(status, 200);
    tc_close(c);
}

/* While shutting down (a v2 client that ignores its BYE holds the shutdown
 * for up to 2 s), /healthz answers 503. */
static void test_health_503_while_shutting_down(void **state)
{
    (void)state;
    struct p2p_server s;
    tc_start_server(&s, kMetricsArgs);
    uint16_t mport = metrics_port(&s);
    int stubborn = tc_v2_connect(s.port);
    assert_int_equal(kill(s.pid, SIGTERM), 0);
    tc_expect_bye(stubborn, P2P_BYE_SHUTDOWN); /* the server is shutting down */
    char buf[256];
    assert_int_equal(http_get(mport, "/healthz", buf, sizeof buf), 503);
    tc_close(stubborn);
    assert_int_equal(p2p_server_stop(&s), 0);
}

/* SIGUSR1: every counter, on one log line. */
static void test_sigusr1_logs_counters(void **state)
{
    struct p2p_server *s = *state;
    int a = tc_connect(s->port);
    tc_register(a, "counted", 1);
    assert_int_equal(kill(s->pid, SIGUSR1), 0);
    char buf[16384];
    const char *line = NULL;
    for (int tries = 0; tries < 250 && line == NULL; tries++) {
        FILE *f = fopen(s->log_path, "r");
        assert_non_null(f);
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        buf[n] = '\0';
        line = strstr(buf, " counters: ");
        if (line == NULL) {
            struct timespec ts = {0, 20 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    if (line == NULL)
        tc_fail("no counters line after SIGUSR1");
    const char *eol = strchr(line, '\n');
    assert_non_null(eol);
    char text[4096];
    snprintf(text, sizeof text, "%.*s", (int)(eol - line), line);
    static const char *const want[] = {"connections_open=1 ", "devices_online=1 ",
                                       "connections_accepted=1 ", "frames_in=1 ",
                                       "connections_closed{reason=\"taken_over\"}=0 "};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        if (strstr(text, want[i]) == NULL)
            tc_fail("the counters line lacks %s:%s", want[i], text);
    assert_true(tc_is_open(a)); /* and the server carries on */
    tc_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST_ARGS(test_metrics_follow_traffic, kMetricsArgs),
        TC_SERVER_TEST_ARGS(test_health_and_errors, kMetricsArgs),
        TC_SERVER_TEST_ARGS(test_bounded_clients, kMetricsArgs),
        cmocka_unit_test(test_health_503_while_shutting_down),
        TC_SERVER_TEST(test_sigusr1_logs_counters),
    };
    return cmocka_run_group_tests_name("p2pServer metrics endpoint", tests, NULL, NULL);
}
