/*
 * p2pclient_child.h - p2pClient ($P2P_CLIENT, default ./p2pClient) as a
 * child process of a test: its standard input on a pipe the test writes,
 * its standard output on a pipe the test reads (or /dev/null), its
 * standard error in a temporary file the test polls. The child dies with
 * the test (PR_SET_PDEATHSIG). Every wait is bounded.
 *
 * Include client_util.h first.
 */
#ifndef P2PCLIENT_CHILD_H
#define P2PCLIENT_CHILD_H

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>

#include "child.h"

struct child {
    pid_t pid;
    int in;               /* its standard input                          */
    int out;              /* its standard output, or -1 (/dev/null)       */
    char err_path[64];    /* its standard error                          */
};

/* Starts $P2P_CLIENT with argv (argv[0] is replaced); with capture_stdout
 * its standard output is a pipe (c->out), else /dev/null. */
static void spawn_client(struct child *c, const char **argv, int capture_stdout)
{
    const char *path = getenv("P2P_CLIENT");
    if (path == NULL || path[0] == '\0')
        path = "./p2pClient";
    snprintf(c->err_path, sizeof c->err_path, "/tmp/p2pclient-test-XXXXXX");
    int err = mkostemp(c->err_path, O_CLOEXEC);
    assert_true(err >= 0);
    int in[2], out[2] = {-1, -1};
    assert_int_equal(pipe2(in, O_CLOEXEC), 0);
    if (capture_stdout)
        assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    c->pid = tc_fork_tied();
    assert_true(c->pid >= 0);
    if (c->pid == 0) {
        int o = capture_stdout ? out[1] : open("/dev/null", O_WRONLY);
        if (o == -1 || dup2(in[0], STDIN_FILENO) == -1 || dup2(o, STDOUT_FILENO) == -1 || dup2(err, STDERR_FILENO) == -1)
            _exit(126);
        argv[0] = path;
        execv(path, (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(err);
    c->in = in[1];
    c->out = out[0];
    if (capture_stdout)
        close(out[1]);
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

/* Ends the session with "quit" and the end of its input, asserts that the
 * child exits 0, and reads its standard error into err (cap bytes,
 * NUL-terminated), removing the file. */
static void quit_and_read_err(struct child *c, char *err, size_t cap)
{
    assert_int_equal(write(c->in, "quit\n", 5), 5);
    close(c->in);
    assert_int_equal(reap(c), 0);
    read_err(c, err, cap);
    unlink(c->err_path);
}

#endif /* P2PCLIENT_CHILD_H */
