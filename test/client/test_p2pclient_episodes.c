/*
 * test_p2pclient_episodes.c - p2pClient says one line when its connection
 * is lost, with the cause, and one when it is back, however many attempts
 * the reconnection takes (it used to print the library's BYE and
 * disconnect warnings too, and "connection lost (cannot connect)" at every
 * attempt).
 *
 * The server ($P2P_SERVER) is stopped gracefully (BYE 4), then a listener
 * of the test's own on the same port accepts and drops one of the
 * client's attempts, so that the episode surely holds a failed attempt
 * (there are usually more: refused while the server goes and comes back),
 * then the server comes back. p2pClient ($P2P_CLIENT) runs with its
 * standard input on a pipe and its standard error in a file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>

#include "client_util.h"

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)
#define DROPPED_ATTEMPTS 1
/* p2pClient reconnects with the library's default backoff (envelope 200 ms
 * doubling up to 30 s): after a few failed attempts the next one may be
 * seconds away. */
#define RECONNECT_WAIT_MS 60000

struct child {
    pid_t pid;
    int in;               /* its standard input                         */
    char err_path[64];    /* its standard error                         */
};

/* Starts $P2P_CLIENT with argv (argv[0] is replaced), stdin from a pipe, stdout to /dev/null,
 * stderr to a temporary file. */
static void spawn_client(struct child *c, const char **argv)
{
    const char *path = getenv("P2P_CLIENT");
    if (path == NULL || path[0] == '\0')
        path = "./p2pClient";
    snprintf(c->err_path, sizeof c->err_path, "/tmp/p2pclient-episode-XXXXXX");
    int err = mkostemp(c->err_path, O_CLOEXEC);
    assert_true(err >= 0);
    int p[2];
    assert_int_equal(pipe2(p, O_CLOEXEC), 0);
    pid_t parent = getpid();
    c->pid = fork();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        int nul = open("/dev/null", O_WRONLY);
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) == -1 || getppid() != parent || nul == -1 ||
            dup2(p[0], STDIN_FILENO) == -1 || dup2(nul, STDOUT_FILENO) == -1 || dup2(err, STDERR_FILENO) == -1)
            _exit(126);
        argv[0] = path;
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(p[0]);
    close(err);
    c->in = p[1];
}

/* Reads the child's standard error so far into buf (NUL-terminated). */
static void read_err(const struct child *c, char *buf, size_t cap)
{
    FILE *f = fopen(c->err_path, "r");
    assert_non_null(f);
    size_t n = fread(buf, 1, cap - 1, f);
    buf[n] = '\0';
    fclose(f);
}

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* Waits (bounded, polling the file) until the child's stderr holds needle. */
static void wait_err(const struct child *c, const char *needle, int ms)
{
    static char buf[65536];
    for (int64_t until = ct_now_ms() + ms; ct_now_ms() < until;) {
        read_err(c, buf, sizeof buf);
        if (strstr(buf, needle) != NULL)
            return;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    fail_msg("p2pClient never said \"%s\"; its stderr:\n%s", needle, buf);
}

/* Waits for the child to exit; returns its status (-1: killed). */
static int reap(struct child *c)
{
    for (int64_t until = ct_now_ms() + CT_WAIT_MS; ct_now_ms() < until;) {
        int st = 0;
        pid_t r = waitpid(c->pid, &st, WNOHANG);
        if (r == c->pid)
            return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
        struct timespec ts = {0, 20 * 1000000L};
        nanosleep(&ts, NULL);
    }
    kill(c->pid, SIGKILL);
    waitpid(c->pid, NULL, 0);
    return -1;
}

/* A listener on 127.0.0.1:port that accepts n connections and closes each
 * at once: failed attempts for the client. */
static void drop_attempts(uint16_t port, int n)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    int one = 1;
    assert_int_equal(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 4), 0);
    for (int i = 0; i < n; i++) {
        struct pollfd p = {.fd = l, .events = POLLIN, .revents = 0};
        assert_int_equal(poll(&p, 1, 3 * CT_WAIT_MS), 1);
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        assert_true(c >= 0);
        close(c);
    }
    close(l);
}

static void test_one_line_per_episode(void **state)
{
    struct p2p_server *srv = *state;
    int bob = tc_connect(srv->port);
    tc_register(bob, "bob", P2P_STATUS_OK);
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)srv->port);
    const char *argv[] = {"p2pClient", "-s", "127.0.0.1", "-p", port, "-m", "alice", "-o", "bob", "-w", "10", NULL};
    static struct child c;
    spawn_client(&c, argv);
    wait_err(&c, "input and receive", CT_WAIT_MS);

    assert_int_equal(p2p_server_stop(srv), 0); /* BYE 4 */
    tc_close(bob);
    /* At once, so that few attempts meet a closed port: each failure
     * doubles the next delay. */
    drop_attempts(srv->port, DROPPED_ATTEMPTS);
    assert_int_equal(p2p_server_restart(srv, NULL), 0);
    wait_err(&c, "connection lost", CT_WAIT_MS);
    wait_err(&c, "reconnected", RECONNECT_WAIT_MS);
    assert_int_equal(write(c.in, "quit\n", 5), 5);
    close(c.in);
    assert_int_equal(reap(&c), 0);

    static char err[65536];
    read_err(&c, err, sizeof err);
    unlink(c.err_path);
    fprintf(stderr, "---- p2pClient's stderr ----\n%s----\n", err);
    assert_int_equal(count_lines_with(err, "connection lost"), 1);
    assert_non_null(strstr(err, "p2pClient: connection lost (server shutting down), reconnecting\n"));
    assert_int_equal(count_lines_with(err, "reconnected"), 1);
    assert_non_null(strstr(err, "p2pClient: reconnected after ")); /* failed attempts were silent */
    assert_null(strstr(err, "goodbye"));
    assert_null(strstr(err, "disconnected:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_one_line_per_episode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
