/*
 * stress.c - see stress.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "stress.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "harness.h"

#define STRESS_WAIT_MS TC_WAIT_MS

int64_t tc_now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
        tc_fail("clock_gettime: %s", strerror(errno));
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* ---- /proc figures --------------------------------------------------------- */

/* The value of "key:" in /proc/PID/status, in kB. */
static long status_field_kib(pid_t pid, const char *key)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        tc_fail("open %s: %s", path, strerror(errno));
    char line[256];
    size_t klen = strlen(key);
    long value = -1;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strncmp(line, key, klen) == 0 && line[klen] == ':') {
            value = strtol(line + klen + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    if (value < 0)
        tc_fail("%s: no %s line", path, key);
    return value;
}

long tc_proc_peak_rss_kib(pid_t pid)
{
    return status_field_kib(pid, "VmHWM");
}

long tc_proc_rss_kib(pid_t pid)
{
    return status_field_kib(pid, "VmRSS");
}

/* /proc/PID/stat: the state letter and utime + stime in ticks. The command
 * name (field 2) may hold spaces and parentheses: parse after the last ')'. */
static void read_stat(pid_t pid, char *state, long *ticks)
{
    char path[64], buf[1024];
    snprintf(path, sizeof path, "/proc/%ld/stat", (long)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        tc_fail("open %s: %s", path, strerror(errno));
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    char *p = strrchr(buf, ')');
    unsigned long utime = 0, stime = 0;
    /* ") S ppid pgrp session tty tpgid flags minflt cminflt majflt cmajflt utime stime" */
    if (p == NULL || sscanf(p + 1, " %c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu", state, &utime,
                            &stime) != 3)
        tc_fail("cannot parse %s", path);
    *ticks = (long)(utime + stime);
}

long tc_proc_cpu_ms(pid_t pid)
{
    char state;
    long ticks;
    read_stat(pid, &state, &ticks);
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    return ticks * 1000 / hz;
}

int tc_proc_fd_count(pid_t pid)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(path);
    if (d == NULL)
        tc_fail("opendir %s: %s", path, strerror(errno));
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            count++;
    closedir(d);
    return count;
}

/* ---- pausing ------------------------------------------------------------------ */

void tc_proc_pause(pid_t pid)
{
    if (kill(pid, SIGSTOP) == -1)
        tc_fail("kill(SIGSTOP): %s", strerror(errno));
    int64_t deadline = tc_now_ms() + STRESS_WAIT_MS;
    for (;;) {
        char state;
        long ticks;
        read_stat(pid, &state, &ticks);
        if (state == 'T' || state == 't')
            return;
        if (tc_now_ms() >= deadline)
            tc_fail("pid %ld not stopped %d ms after SIGSTOP (state %c)", (long)pid, STRESS_WAIT_MS, state);
        nap_ms(1);
    }
}

void tc_proc_resume(pid_t pid)
{
    if (kill(pid, SIGCONT) == -1)
        tc_fail("kill(SIGCONT): %s", strerror(errno));
}

/* ---- a server with its stderr on a pipe ------------------------------------ */

static struct sockaddr_in loopback(uint16_t port)
{
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    return addr;
}

static uint16_t reserve_port(int *fd_out)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        tc_fail("socket: %s", strerror(errno));
    int one = 1;
    struct sockaddr_in addr = loopback(0);
    socklen_t alen = sizeof addr;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
        bind(fd, (struct sockaddr *)&addr, sizeof addr) == -1 ||
        getsockname(fd, (struct sockaddr *)&addr, &alen) == -1)
        tc_fail("reserving a port: %s", strerror(errno));
    *fd_out = fd;
    return ntohs(addr.sin_port);
}

/* Reads from the non-blocking pipe until a line containing "listening on"
 * has arrived; fails if the server exits or the deadline passes first. */
static void await_start_line(struct tc_piped_server *s)
{
    char seen[8192];
    size_t have = 0;
    int64_t deadline = tc_now_ms() + STRESS_WAIT_MS;
    for (;;) {
        ssize_t n = read(s->log_fd, seen + have, sizeof seen - 1 - have);
        if (n > 0) {
            have += (size_t)n;
            seen[have] = '\0';
            if (strstr(seen, "listening on") != NULL)
                return;
            if (have == sizeof seen - 1)
                have = 0; /* keep looking in fresh text */
            continue;
        }
        if (n == 0)
            tc_fail("server exited before its start-up line; it wrote: %s", have ? seen : "");
        if (errno != EAGAIN && errno != EINTR)
            tc_fail("read(server stderr): %s", strerror(errno));
        int left = (int)(deadline - tc_now_ms());
        if (left <= 0)
            tc_fail("no start-up line from the server within %d ms", STRESS_WAIT_MS);
        struct pollfd p = {.fd = s->log_fd, .events = POLLIN, .revents = 0};
        poll(&p, 1, left);
    }
}

void tc_piped_server_start(struct tc_piped_server *s, const char *const *args, int pipe_size)
{
    s->port = reserve_port(&s->reserve_fd);
    char port_str[8];
    snprintf(port_str, sizeof port_str, "%u", (unsigned)s->port);
    const char *argv[64];
    size_t argc = 0;
    argv[argc++] = p2p_server_path();
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1";
    for (size_t i = 0; args != NULL && args[i] != NULL && argc < 60; i++)
        argv[argc++] = args[i];
    argv[argc++] = port_str;
    argv[argc] = NULL;

    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) == -1)
        tc_fail("pipe2: %s", strerror(errno));
    if (pipe_size > 0 && fcntl(pipefd[1], F_SETPIPE_SZ, pipe_size) == -1)
        tc_fail("F_SETPIPE_SZ: %s", strerror(errno));
    pid_t pid = tc_fork_tied();
    if (pid == -1)
        tc_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        /* Async-signal-safe calls only: the test may have threads. */
        int nul = open("/dev/null", O_RDWR);
        if (nul == -1 || dup2(nul, STDIN_FILENO) == -1 || dup2(nul, STDOUT_FILENO) == -1 ||
            dup2(pipefd[1], STDERR_FILENO) == -1)
            _exit(126);
        signal(SIGPIPE, SIG_DFL);
        sigset_t none;
        sigemptyset(&none);
        sigprocmask(SIG_SETMASK, &none, NULL);
        execv(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(pipefd[1]);
    s->pid = pid;
    s->log_fd = pipefd[0];
    tc_set_nonblocking(s->log_fd, 1);
    await_start_line(s);
}

int tc_piped_server_stop(struct tc_piped_server *s)
{
    int result = -1;
    if (s->pid > 0) {
        if (kill(s->pid, SIGTERM) == -1)
            tc_fail("kill(SIGTERM): %s", strerror(errno));
        int64_t deadline = tc_now_ms() + STRESS_WAIT_MS;
        int status = 0;
        for (;;) {
            pid_t r = waitpid(s->pid, &status, WNOHANG);
            if (r == s->pid) {
                if (WIFEXITED(status))
                    result = WEXITSTATUS(status);
                break;
            }
            if (r == -1 && errno != EINTR)
                tc_fail("waitpid: %s", strerror(errno));
            if (tc_now_ms() >= deadline) {
                kill(s->pid, SIGKILL);
                waitpid(s->pid, &status, 0);
                break;
            }
            /* The server may be flushing its log into the pipe at exit. */
            char sink[4096];
            while (read(s->log_fd, sink, sizeof sink) > 0) {
            }
            nap_ms(2);
        }
        s->pid = 0;
    }
    if (s->log_fd != -1)
        close(s->log_fd);
    if (s->reserve_fd != -1)
        close(s->reserve_fd);
    s->log_fd = s->reserve_fd = -1;
    return result;
}

/* ---- clients ----------------------------------------------------------------- */

int tc_connect_buffers(uint16_t port, int rcvbuf, int sndbuf)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        tc_fail("socket: %s", strerror(errno));
    int one = 1;
    if ((rcvbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof rcvbuf) != 0) ||
        (sndbuf > 0 && setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &sndbuf, sizeof sndbuf) != 0) ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0)
        tc_fail("setsockopt: %s", strerror(errno));
    struct sockaddr_in addr = loopback(port);
    if (connect(fd, (struct sockaddr *)&addr, sizeof addr) != 0)
        tc_fail("connect to 127.0.0.1:%u: %s", (unsigned)port, strerror(errno));
    return fd;
}

void tc_set_nonblocking(int fd, int on)
{
    int flags = fcntl(fd, F_GETFL);
    if (flags == -1)
        tc_fail("F_GETFL: %s", strerror(errno));
    flags = on ? flags | O_NONBLOCK : flags & ~O_NONBLOCK;
    if (fcntl(fd, F_SETFL, flags) == -1)
        tc_fail("F_SETFL: %s", strerror(errno));
}

int tc_bytes_readable(int fd)
{
    int n = 0;
    if (ioctl(fd, FIONREAD, &n) == -1)
        tc_fail("FIONREAD: %s", strerror(errno));
    return n;
}

ssize_t tc_drain_now(int fd)
{
    char buf[65536];
    ssize_t total = 0;
    for (;;) {
        ssize_t n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n > 0) {
            total += n;
            continue;
        }
        if (n == 0)
            return -1;
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return total;
        return -1; /* reset */
    }
}
