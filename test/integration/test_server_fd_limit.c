/*
 * test_server_fd_limit.c - at the open-file limit the server neither spins
 * nor forgets waiting clients (issue 10, finding 6; p2pServer(8), LIMITS,
 * "Out of file descriptors").
 *
 * The limit is lowered on the running server with prlimit(2) (its soft
 * limit only, so that it can be raised again): to the lowest descriptor
 * number it does not use, so that the next accept fails with EMFILE, or
 * below every descriptor it holds, so that not even its spare descriptor
 * can be reopened. Before the fix the accept path asked the loop to run
 * again at once after every such failure (accept(2) reports EMFILE before
 * it looks at the backlog, so the backlog never looked drained): 100% of a
 * CPU from the first refused client on. The test reads the server's CPU
 * time (/proc/PID/stat) across one second during which nothing is expected
 * to happen, and allows a tenth of it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>

#include "harness.h"
#include "protocol.h"
#include "stress.h"

#define QUIET_MS 1000

/* The lowest descriptor number pid does not use. */
static int lowest_free_fd(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
    static char used[65536];
    memset(used, 0, sizeof used);
    DIR *d = opendir(path);
    if (d == NULL)
        tc_fail("opendir %s: %s", path, strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        long n = strtol(e->d_name, NULL, 10);
        if (e->d_name[0] != '.' && n >= 0 && n < (long)sizeof used)
            used[n] = 1;
    }
    closedir(d);
    int fd = 0;
    while (fd < (int)sizeof used && used[fd])
        fd++;
    return fd;
}

/* Sets pid's soft limit on open files (its hard limit stays). */
static void set_soft_nofile(pid_t pid, rlim_t soft)
{
    struct rlimit old;
    if (prlimit(pid, RLIMIT_NOFILE, NULL, &old) == -1)
        tc_fail("prlimit: %s", strerror(errno));
    struct rlimit lim = {soft, old.rlim_max};
    if (prlimit(pid, RLIMIT_NOFILE, &lim, NULL) == -1)
        tc_fail("prlimit(%lu): %s", (unsigned long)soft, strerror(errno));
}

/* Waits QUIET_MS for fd to become readable, which it must not; returns the
 * server's CPU time over that wait, in ms. */
static long cpu_while_nothing_happens(pid_t pid, int fd, const char *what)
{
    long cpu0 = tc_proc_cpu_ms(pid);
    struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
    int r = poll(&p, 1, QUIET_MS);
    long cpu = tc_proc_cpu_ms(pid) - cpu0;
    if (r != 0)
        tc_fail("%s: something arrived while nothing should", what);
    fprintf(stderr, "%s: server CPU %ld ms during %d ms\n", what, cpu, QUIET_MS);
    if (cpu > QUIET_MS / 10)
        tc_fail("%s: the server used %ld ms of CPU in %d ms: a busy loop", what, cpu, QUIET_MS);
    return cpu;
}

/* At the limit with the spare descriptor: a client is refused at once and
 * the server then sleeps; a descriptor freed is used for the next client. */
static void test_refused_without_spinning(void **state)
{
    uint16_t port = tc_port(state);
    pid_t pid = ((struct p2p_server *)*state)->pid;
    int a = tc_connect(port), b = tc_connect(port);
    tc_expect_nothing_pending(a);
    tc_expect_nothing_pending(b);
    struct rlimit old;
    if (prlimit(pid, RLIMIT_NOFILE, NULL, &old) == -1)
        tc_fail("prlimit: %s", strerror(errno));
    set_soft_nofile(pid, (rlim_t)lowest_free_fd(pid));

    int refused = tc_connect(port);
    tc_expect_closed(refused, TC_WAIT_MS, 0);
    tc_close(refused);
    cpu_while_nothing_happens(pid, a, "at the limit, a client refused");
    tc_expect_nothing_pending(a); /* and still serving */

    tc_close_and_wait(b); /* frees a descriptor below the limit */
    int next = tc_connect(port);
    tc_expect_nothing_pending(next);
    tc_close(next);
    tc_close(a);
    set_soft_nofile(pid, old.rlim_cur);
}

/* Below every descriptor the server holds, even its spare: a client waits
 * in the backlog, neither refused nor served, while the server sleeps; once
 * the limit is raised it is served. */
static void test_waiting_without_spinning(void **state)
{
    uint16_t port = tc_port(state);
    pid_t pid = ((struct p2p_server *)*state)->pid;
    int a = tc_connect(port);
    tc_expect_nothing_pending(a);
    struct rlimit old;
    if (prlimit(pid, RLIMIT_NOFILE, NULL, &old) == -1)
        tc_fail("prlimit: %s", strerror(errno));
    set_soft_nofile(pid, 3);

    int waiting = tc_connect(port); /* the kernel completes the handshake */
    static const uint8_t hb[] = {0, 0, 0, 1, P2P_CMD_HEARTBEAT};
    tc_send_raw(waiting, hb, sizeof hb);
    cpu_while_nothing_happens(pid, waiting, "no descriptor at all, a client waiting");
    tc_expect_nothing_pending(a);

    set_soft_nofile(pid, old.rlim_cur);
    tc_expect_reply(waiting, P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
    tc_close(waiting);
    tc_close(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_refused_without_spinning),
        TC_SERVER_TEST(test_waiting_without_spinning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
