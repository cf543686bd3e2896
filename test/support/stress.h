/*
 * stress.h - test support for the robustness tests (memory, bursts, floods,
 * descriptor limits, a blocked log): what the server process is doing, as
 * /proc tells it, and ways to put the server or a client in a corner that
 * the harness (harness.h) does not offer.
 *
 *  - Figures of a running process from /proc: peak and current resident
 *    memory, CPU time, open descriptors.
 *  - Pausing a server (SIGSTOP, waited for until the kernel reports it
 *    stopped) so that a test can pile input up in its sockets and have the
 *    server find it all in one pass of its loop.
 *  - A server whose standard error is a pipe the test owns (and may never
 *    read), for the log's non-blocking behaviour.
 *  - Clients with chosen socket buffer sizes, set before connect() so that
 *    TCP's window scaling takes them into account.
 *
 * As in harness.h, helpers named tc_* fail the current CMocka test on an
 * error they cannot recover from; every wait is bounded.
 */
#ifndef STUPIDP2P_TEST_STRESS_H
#define STUPIDP2P_TEST_STRESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* ---- /proc figures --------------------------------------------------------- */

/* VmHWM (peak resident set) and VmRSS of pid, in KiB; fail the test if
 * /proc/PID/status cannot be read. */
long tc_proc_peak_rss_kib(pid_t pid);
long tc_proc_rss_kib(pid_t pid);

/* User plus system CPU time of pid so far, in milliseconds
 * (/proc/PID/stat, clock ticks converted). */
long tc_proc_cpu_ms(pid_t pid);

/* Number of open descriptors of pid (entries of /proc/PID/fd). */
int tc_proc_fd_count(pid_t pid);

/* Milliseconds on CLOCK_MONOTONIC. */
int64_t tc_now_ms(void);

/* ---- pausing a process ----------------------------------------------------- */

/* SIGSTOP, then waits (bounded) until /proc/PID/stat shows it stopped. */
void tc_proc_pause(pid_t pid);
/* SIGCONT. */
void tc_proc_resume(pid_t pid);

/* ---- a server with its stderr on a pipe ------------------------------------ */

struct tc_piped_server {
    pid_t pid;
    uint16_t port;
    int reserve_fd; /* holds the port (see harness.c)                 */
    int log_fd;     /* read end of the server's stderr (non-blocking) */
};

/* Starts $P2P_SERVER --bind 127.0.0.1 [args...] PORT with stdout to
 * /dev/null and stderr into a pipe of pipe_size bytes (rounded up by the
 * kernel to a page at least), and returns once the server has written its
 * start-up line ("listening on ..."), which is read off the pipe; nothing
 * more is read unless the test does. Fails the test on error. */
void tc_piped_server_start(struct tc_piped_server *s, const char *const *args, int pipe_size);

/* SIGTERM, and waits (bounded) for the exit. Returns the exit status, or -1
 * if it had to be killed or died of a signal. Closes the pipe. */
int tc_piped_server_stop(struct tc_piped_server *s);

/* ---- clients ----------------------------------------------------------------- */

/* Connects to 127.0.0.1:port with SO_RCVBUF / SO_SNDBUF set first (0: the
 * system's default) and TCP_NODELAY; blocking. Fails the test on error. */
int tc_connect_buffers(uint16_t port, int rcvbuf, int sndbuf);

/* O_NONBLOCK on or off. */
void tc_set_nonblocking(int fd, int on);

/* Bytes waiting in fd's receive queue (FIONREAD). */
int tc_bytes_readable(int fd);

/* Reads and drops whatever fd has now, without blocking; returns the bytes
 * dropped, or -1 once the peer has closed (EOF or reset). */
ssize_t tc_drain_now(int fd);

#endif /* STUPIDP2P_TEST_STRESS_H */
