/*
 * test_server_cli.c - p2pServer's command line: a bad or missing argument
 * prints a message on stderr and exits 2; --help and --version exit 0;
 * every option is accepted with a good value; SIGTERM and SIGINT exit 0,
 * closing the clients; a port already in use is an error, not a random
 * port.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "harness.h"
#include "protocol.h"

#define RUN_MS 10000

/* Runs the server with args; returns the exit status. stream 1 captures
 * stdout only, 2 stderr only (through sh redirections). */
static int run_server(const char *const *args, int stream, char *out, size_t cap)
{
    const char *argv[32];
    size_t n = 0;
    argv[n++] = "/bin/sh";
    argv[n++] = "-c";
    argv[n++] = stream == 1 ? "exec \"$0\" \"$@\" 2>/dev/null" : "exec \"$0\" \"$@\" 2>&1 >/dev/null";
    argv[n++] = p2p_server_path();
    for (size_t i = 0; args[i] != NULL && n < 31; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return tc_run_capture(argv, out, cap, RUN_MS);
}

/* Expects exit 2 with a message on stderr and nothing on stdout. */
static void expect_usage_error(const char *const *args)
{
    char err[4096], out[4096];
    int rc = run_server(args, 2, err, sizeof err);
    if (rc != 2 || err[0] == '\0') {
        fprintf(stderr, "args:");
        for (size_t i = 0; args[i] != NULL; i++)
            fprintf(stderr, " '%s'", args[i]);
        fprintf(stderr, "\nstderr: %s\n", err);
        fail_msg("expected exit 2 with a message on stderr, got exit %d", rc);
    }
    rc = run_server(args, 1, out, sizeof out);
    assert_int_equal(rc, 2);
    if (out[0] != '\0')
        fail_msg("usage error printed on stdout: %s", out);
}

static void test_bad_ports(void **state)
{
    (void)state;
    static const char *const ports[] = {"0", "70000", "65536", "abc", "12abc", "", "4040x",
                                        "99999999999999999999"};
    for (size_t i = 0; i < sizeof ports / sizeof ports[0]; i++) {
        const char *args[] = {ports[i], NULL};
        expect_usage_error(args);
        /* The message names the problem. */
        char err[4096];
        run_server(args, 2, err, sizeof err);
        if (strcasestr(err, "port") == NULL)
            fail_msg("message for port '%s' does not mention the port: %s", ports[i], err);
    }
}

static void test_missing_port(void **state)
{
    (void)state;
    const char *none[] = {NULL};
    expect_usage_error(none);
    const char *only_opts[] = {"--idle-timeout", "5", NULL};
    expect_usage_error(only_opts);
}

static void test_extra_argument(void **state)
{
    (void)state;
    const char *args[] = {"4040", "4041", NULL};
    expect_usage_error(args);
}

static void test_unknown_options(void **state)
{
    (void)state;
    const char *a[] = {"--frobnicate", "4040", NULL};
    expect_usage_error(a);
    const char *b[] = {"-z", "4040", NULL};
    expect_usage_error(b);
    const char *c[] = {"--max-frames", "1000", "4040", NULL};
    expect_usage_error(c);
}

static void test_bad_option_values(void **state)
{
    (void)state;
    static const char *const cases[][3] = {
        {"--max-frame", "255", "4040"},      {"--max-frame", "16777217", "4040"},
        {"--max-frame", "abc", "4040"},      {"--max-frame", "", "4040"},
        {"--idle-timeout", "abc", "4040"},   {"--idle-timeout", "-1", "4040"},
        {"--log-level", "loud", "4040"},     {"--log-level", "", "4040"},
        {"--max-conns", "abc", "4040"},      {"--max-output", "abc", "4040"},
        {"--max-subs", "abc", "4040"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *args[] = {cases[i][0], cases[i][1], cases[i][2], NULL};
        expect_usage_error(args);
    }
    /* An option missing its value at the end. */
    const char *d[] = {"4040", "--bind", NULL};
    expect_usage_error(d);
    const char *e[] = {"--max-frame", NULL};
    expect_usage_error(e);
}

static void test_help(void **state)
{
    (void)state;
    char out[8192];
    const char *args[] = {"--help", NULL};
    assert_int_equal(run_server(args, 1, out, sizeof out), 0);
    static const char *const opts[] = {"--bind",      "--idle-timeout", "--max-frame",
                                       "--max-conns", "--max-output",   "--max-subs",
                                       "--log-level", "--port",         "--help",
                                       "--version"};
    for (size_t i = 0; i < sizeof opts / sizeof opts[0]; i++)
        if (strstr(out, opts[i]) == NULL)
            fail_msg("--help does not mention %s:\n%s", opts[i], out);
    if (strstr(out, "PORT") == NULL && strcasestr(out, "port") == NULL)
        fail_msg("--help does not mention the port:\n%s", out);
}

static void test_version(void **state)
{
    (void)state;
    char out[4096];
    const char *args[] = {"--version", NULL};
    assert_int_equal(run_server(args, 1, out, sizeof out), 0);
    /* The project's one version (the file VERSION, through the Makefile). */
    if (strstr(out, "p2pServer " P2P_VERSION " ") == NULL)
        fail_msg("--version does not say p2pServer %s: %s", P2P_VERSION, out);
}

/* Every option with a good value: the server starts and serves. */
static void test_all_options_accepted(void **state)
{
    (void)state;
    static const char *const args[] = {"--idle-timeout", "60",       "--max-frame", "1000",
                                       "--max-conns",    "50",       "--max-output", "100000",
                                       "--max-subs",     "10",       "--log-level", "debug",
                                       NULL};
    struct p2p_server s;
    assert_int_equal(p2p_server_start(&s, args), 0);
    int a = tc_connect(s.port);
    tc_register(a, "opt", 1);
    tc_check_alive(a, "opt", 1);
    tc_close(a);
    assert_int_equal(p2p_server_stop(&s), 0);
}

static void test_log_levels_accepted(void **state)
{
    (void)state;
    static const char *const levels[] = {"error", "warn", "info", "debug"};
    for (size_t i = 0; i < 4; i++) {
        const char *args[] = {"--log-level", levels[i], NULL};
        struct p2p_server s;
        assert_int_equal(p2p_server_start(&s, args), 0);
        int a = tc_connect(s.port);
        assert_true(tc_is_open(a));
        tc_close(a);
        assert_int_equal(p2p_server_stop(&s), 0);
    }
}

/* SIGTERM and SIGINT: exit 0, every client sees its connection closed
 * (v1 clients get no frame first). */
static void graceful(int sig)
{
    struct p2p_server s;
    assert_int_equal(p2p_server_start(&s, NULL), 0);
    int a = tc_connect(s.port);
    int b = tc_connect(s.port);
    tc_register(a, "a", 1);
    tc_subscribe(b, "a", 1);
    assert_int_equal(p2p_server_stop_with(&s, sig), 0);
    tc_expect_closed(a, TC_WAIT_MS, 0);
    tc_expect_closed(b, TC_WAIT_MS, 0);
    tc_close(a);
    tc_close(b);
}

static void test_sigterm_exits_0(void **state)
{
    (void)state;
    graceful(SIGTERM);
}

static void test_sigint_exits_0(void **state)
{
    (void)state;
    graceful(SIGINT);
}

/* The port is taken: the second server fails (not exit 0, not a crash, not
 * hanging on some other port) and says why on stderr. */
static void test_port_in_use(void **state)
{
    (void)state;
    struct p2p_server s;
    assert_int_equal(p2p_server_start(&s, NULL), 0);
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)s.port);
    char err[4096];
    const char *args[] = {"--bind", "127.0.0.1", port, NULL};
    int rc = run_server(args, 2, err, sizeof err);
    if (rc <= 0)
        fail_msg("second server on port %s: exit %d (expected a failure status)", port, rc);
    assert_true(strlen(err) > 0);
    /* The first one is unaffected. */
    int a = tc_connect(s.port);
    assert_true(tc_is_open(a));
    tc_close(a);
    assert_int_equal(p2p_server_stop(&s), 0);
}

/* Starts a server with args (P2P_KEEP_LOGS set, so that its log survives
 * the stop); see stop_and_read_log. */
static void start_logged(struct p2p_server *s, const char *const *args)
{
    assert_int_equal(setenv("P2P_KEEP_LOGS", "1", 1), 0);
    assert_int_equal(p2p_server_start(s, args), 0);
}

/* Stops a server started by start_logged and reads its whole log into buf
 * (NUL-terminated, at most cap - 1 bytes), removing a log kept in /tmp. */
static void stop_and_read_log(struct p2p_server *s, char *buf, size_t cap)
{
    char path[sizeof s->log_path];
    snprintf(path, sizeof path, "%s", s->log_path);
    assert_int_equal(p2p_server_stop(s), 0);
    assert_int_equal(unsetenv("P2P_KEEP_LOGS"), 0);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    fclose(f);
    buf[n] = '\0';
    if (strncmp(path, "/tmp/", 5) == 0)
        assert_int_equal(unlink(path), 0);
}

/* Logs go to stderr: a register shows up in the log (info level). */
static void test_logs_on_stderr(void **state)
{
    (void)state;
    struct p2p_server s;
    const char *args[] = {"--log-level", "info", NULL};
    start_logged(&s, args);
    int a = tc_connect(s.port);
    tc_register(a, "logged-device", 1);
    tc_close(a);
    char buf[8192];
    stop_and_read_log(&s, buf, sizeof buf);
    if (strstr(buf, "logged-device") == NULL)
        fail_msg("the register of 'logged-device' is not in the log:\n%s", buf);
}

/* The open-file limit lowers --max-conns: a warning when --max-conns asked
 * for more than it allows, and not a word otherwise (the default of 100000
 * is no one's request); the start-up line gives the effective limit. */
static void test_fd_limit_line_only_when_asked(void **state)
{
    (void)state;
    struct p2p_server s;
    char buf[8192];
    start_logged(&s, NULL);
    stop_and_read_log(&s, buf, sizeof buf);
    if (strstr(buf, "open-file limit") != NULL)
        fail_msg("a default start mentions the open-file limit:\n%s", buf);
    assert_non_null(strstr(buf, "connections, max frame"));

    const char *asked[] = {"--max-conns", "10000000", NULL};
    start_logged(&s, asked);
    stop_and_read_log(&s, buf, sizeof buf);
    if (strstr(buf, "warn  --max-conns 10000000 lowered to") == NULL)
        fail_msg("--max-conns 10000000 above the open-file limit is not reported:\n%s", buf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_bad_ports),
        cmocka_unit_test(test_missing_port),
        cmocka_unit_test(test_extra_argument),
        cmocka_unit_test(test_unknown_options),
        cmocka_unit_test(test_bad_option_values),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_version),
        cmocka_unit_test(test_all_options_accepted),
        cmocka_unit_test(test_log_levels_accepted),
        cmocka_unit_test(test_sigterm_exits_0),
        cmocka_unit_test(test_sigint_exits_0),
        cmocka_unit_test(test_port_in_use),
        cmocka_unit_test(test_logs_on_stderr),
        cmocka_unit_test(test_fd_limit_line_only_when_asked),
    };
    return cmocka_run_group_tests_name("p2pServer command line", tests, NULL, NULL);
}
