/*
 * harness.c - see harness.h.
 *
 * Design notes.
 *
 * Starting the server. A free port is found by binding 127.0.0.1:0 with
 * SO_REUSEADDR and reading getsockname. That socket is kept, bound but not
 * listening, for as long as the server may come back on the port: the server
 * binds with SO_REUSEADDR too, which Linux allows beside a socket that is not
 * listening, while other processes' binds to port 0 and their outgoing
 * connections keep off a port that a socket holds. Without it, another test
 * running in parallel could start its server on our port while a test has
 * killed ours to simulate a crash, and our clients would reconnect to the
 * wrong server. If the server still fails to start (the port was taken
 * before we reserved it), start-up is retried on a fresh port (5 attempts). Readiness is
 * decided without connecting to the server: /proc/net/tcp{,6} must show a
 * LISTEN socket on the port whose inode is one of the child's own fds. A
 * probe connection would show up in the server's log and count against
 * --max-conns; the /proc check cannot be fooled by another process holding
 * the port. Where /proc is unreadable a connect probe is the fallback.
 *
 * Waiting. Every wait has a deadline on CLOCK_MONOTONIC. Socket waits use
 * poll(); process waits poll a pidfd (Linux >= 5.3), so that a child's exit
 * wakes us at once; without pidfd they fall back to short naps bounded by
 * the deadline.
 *
 * Children. Every child is forked by tc_fork_tied() (child.h) and so gets
 * PR_SET_PDEATHSIG(SIGKILL): a test binary that crashes or is killed by
 * the runner's timeout leaves no server behind.
 *
 * Logs. The server's stdout and stderr go to a file under
 * $P2P_BUILD/test-logs/servers/ (not test-logs/ itself: the runner treats
 * every *.log there as a test's log), or /tmp when P2P_BUILD is unset. Files
 * in /tmp are removed when the server is stopped. When an expectation fails,
 * the tail of every running server's log is printed before the failure.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "harness.h"

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
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "child.h"
#include "codec.h"
#include "protocol.h"

/* Largest frame the harness will read: the largest --max-frame plus the
 * slack a v2 DELIVER may add. */
#define TC_FRAME_LIMIT (16777216u + P2P_SERVER_FRAME_SLACK)
#define TC_START_ATTEMPTS 5
#define TC_STOP_MS 5000
#define TC_LOG_TAIL_BYTES 3000

/* ---- time ----------------------------------------------------------------- */

static int64_t now_ms(void)
{
    struct timespec ts;
    if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1) {
        perror("harness: clock_gettime");
        abort();
    }
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int remaining_ms(int64_t deadline)
{
    int64_t left = deadline - now_ms();
    if (left < 0)
        return 0;
    if (left > 0x7fffffff)
        return 0x7fffffff;
    return (int)left;
}

/* Sleeps for ms milliseconds (only used between retries of a condition). */
static void nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* ---- failing the current test ----------------------------------------- */

/* Servers started and not yet stopped, for log tails on failure. */
struct tc_running {
    pid_t pid;
    char log_path[512];
};
#define TC_MAX_RUNNING 32
static struct tc_running running[TC_MAX_RUNNING];

static void running_add(const struct p2p_server *server)
{
    for (size_t i = 0; i < TC_MAX_RUNNING; i++) {
        if (running[i].pid == 0) {
            running[i].pid = server->pid;
            snprintf(running[i].log_path, sizeof running[i].log_path, "%s",
                     server->log_path);
            return;
        }
    }
}

static void running_remove(pid_t pid)
{
    for (size_t i = 0; i < TC_MAX_RUNNING; i++)
        if (running[i].pid == pid)
            running[i].pid = 0;
}

static void print_file_tail(const char *path, size_t max_bytes)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd == -1) {
        fprintf(stderr, "harness: cannot open %s: %s\n", path, strerror(errno));
        return;
    }
    struct stat st;
    if (fstat(fd, &st) == -1) {
        fprintf(stderr, "harness: fstat %s: %s\n", path, strerror(errno));
        close(fd);
        return;
    }
    off_t start = st.st_size > (off_t)max_bytes ? st.st_size - (off_t)max_bytes : 0;
    if (lseek(fd, start, SEEK_SET) == (off_t)-1) {
        fprintf(stderr, "harness: lseek %s: %s\n", path, strerror(errno));
        close(fd);
        return;
    }
    char buf[1024];
    int first = start > 0;
    for (;;) {
        ssize_t n = read(fd, buf, sizeof buf);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        char *p = buf;
        size_t len = (size_t)n;
        if (first) {
            /* Skip the partial first line. */
            char *nl = memchr(buf, '\n', len);
            first = 0;
            if (nl != NULL) {
                len -= (size_t)(nl + 1 - buf);
                p = nl + 1;
            }
        }
        fwrite(p, 1, len, stderr);
    }
    close(fd);
}

void tc_print_server_logs(void)
{
    for (size_t i = 0; i < TC_MAX_RUNNING; i++) {
        if (running[i].pid == 0)
            continue;
        fprintf(stderr, "---- tail of server log %s (pid %ld) ----\n",
                running[i].log_path, (long)running[i].pid);
        print_file_tail(running[i].log_path, TC_LOG_TAIL_BYTES);
        fprintf(stderr, "---- end of server log ----\n");
    }
    fflush(stderr);
}

void tc_fail(const char *fmt, ...)
{
    va_list ap;
    fflush(stdout);
    fprintf(stderr, "ERROR: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    tc_print_server_logs();
    _fail(__FILE__, __LINE__);
    abort(); /* _fail does not return; keep the compiler honest */
}

/* ---- hex dumps -------------------------------------------------------- */

void tc_hexdump(const char *label, const void *data, size_t len, size_t from,
                size_t count)
{
    const uint8_t *p = data;
    if (from > len)
        from = len;
    size_t end = count > len - from ? len : from + count;
    fprintf(stderr, "%s (%zu bytes)%s\n", label, len,
            from > 0 || end < len ? ", excerpt:" : ":");
    for (size_t off = from & ~(size_t)15; off < end; off += 16) {
        char hex[16 * 3 + 1];
        char asc[17];
        size_t h = 0;
        for (size_t i = 0; i < 16; i++) {
            size_t at = off + i;
            if (at < from || at >= end) {
                h += (size_t)snprintf(hex + h, sizeof hex - h, "   ");
                asc[i] = ' ';
            } else {
                h += (size_t)snprintf(hex + h, sizeof hex - h, "%02x ", p[at]);
                asc[i] = (p[at] >= 0x20 && p[at] < 0x7f) ? (char)p[at] : '.';
            }
        }
        asc[16] = '\0';
        fprintf(stderr, "  %08zx  %s |%s|\n", off, hex, asc);
    }
}

/* ---- processes -------------------------------------------------------- */

static int pidfd_open_compat(pid_t pid)
{
#ifdef SYS_pidfd_open
    long fd = syscall(SYS_pidfd_open, pid, 0);
    if (fd >= 0) {
        int ifd = (int)fd;
        if (fcntl(ifd, F_SETFD, FD_CLOEXEC) == -1) {
            close(ifd);
            return -1;
        }
        return ifd;
    }
#else
    (void)pid;
#endif
    return -1;
}

/* Waits up to timeout_ms for pid to exit and reaps it. Returns 1 when reaped
 * (status filled in), 0 on timeout, -1 on error. */
static int wait_child(pid_t pid, int timeout_ms, int *status)
{
    int64_t deadline = now_ms() + timeout_ms;
    int pfd = pidfd_open_compat(pid);
    int result = -1;
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid) {
            result = 1;
            break;
        }
        if (r == -1) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "harness: waitpid(%ld): %s\n", (long)pid, strerror(errno));
            break;
        }
        int left = remaining_ms(deadline);
        if (left == 0) {
            result = 0;
            break;
        }
        if (pfd >= 0) {
            struct pollfd p = {.fd = pfd, .events = POLLIN, .revents = 0};
            if (poll(&p, 1, left) == -1 && errno != EINTR) {
                fprintf(stderr, "harness: poll(pidfd): %s\n", strerror(errno));
                break;
            }
        } else {
            nap_ms(left < 5 ? left : 5);
        }
    }
    if (pfd >= 0)
        close(pfd);
    return result;
}

/* In a forked child after a failed exec: says so with write(2) only (the
 * test may have threads, so stdio locks may be held), and the caller exits
 * 127. */
static void child_exec_failed(const char *path)
{
    const char *why = strerrordesc_np(errno); /* static, untranslated: no locks */
    if (why == NULL)
        why = "unknown error";
    const char *parts[] = {"harness: exec ", path, ": ", why, "\n"};
    for (size_t i = 0; i < sizeof parts / sizeof parts[0]; i++) {
        ssize_t r = write(STDERR_FILENO, parts[i], strlen(parts[i]));
        (void)r;
    }
}

/* In a child from tc_fork_tied(): stdin from /dev/null, default signal
 * handling. Only async-signal-safe calls: the test may have threads. */
static void child_setup(void)
{
    int nul = open("/dev/null", O_RDONLY);
    if (nul == -1 || dup2(nul, STDIN_FILENO) == -1)
        _exit(126);
    if (nul != STDIN_FILENO)
        close(nul);
    /* The test may have changed these; the child gets the defaults. */
    signal(SIGPIPE, SIG_DFL);
    signal(SIGTERM, SIG_DFL);
    signal(SIGINT, SIG_DFL);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
}

const char *p2p_server_path(void)
{
    const char *path = getenv("P2P_SERVER");
    return (path != NULL && path[0] != '\0') ? path : "./p2pServer";
}

int tc_run_capture(const char *const *argv, char *out, size_t cap, int timeout_ms)
{
    int pipefd[2];
    if (pipe2(pipefd, O_CLOEXEC) == -1) {
        fprintf(stderr, "harness: pipe2: %s\n", strerror(errno));
        return -1;
    }
    pid_t pid = tc_fork_tied();
    if (pid == -1) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    if (pid == 0) {
        child_setup();
        if (dup2(pipefd[1], STDOUT_FILENO) == -1 || dup2(pipefd[1], STDERR_FILENO) == -1)
            _exit(126);
        execvp(argv[0], (char *const *)argv);
        child_exec_failed(argv[0]);
        _exit(127);
    }
    close(pipefd[1]);

    int64_t deadline = now_ms() + timeout_ms;
    size_t used = 0;
    int timed_out = 0;
    for (;;) {
        int left = remaining_ms(deadline);
        if (left == 0) {
            timed_out = 1;
            break;
        }
        struct pollfd p = {.fd = pipefd[0], .events = POLLIN, .revents = 0};
        int r = poll(&p, 1, left);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            fprintf(stderr, "harness: poll: %s\n", strerror(errno));
            timed_out = 1;
            break;
        }
        if (r == 0)
            continue; /* the deadline check above ends the loop */
        char buf[4096];
        ssize_t n = read(pipefd[0], buf, sizeof buf);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            break;
        }
        if (n == 0)
            break;
        if (cap > 0 && used < cap - 1) {
            size_t take = (size_t)n < cap - 1 - used ? (size_t)n : cap - 1 - used;
            memcpy(out + used, buf, take);
            used += take;
        }
    }
    close(pipefd[0]);
    if (cap > 0)
        out[used] = '\0';

    int status = 0;
    int r = timed_out ? 0 : wait_child(pid, remaining_ms(deadline), &status);
    if (r != 1) {
        if (kill(pid, SIGKILL) == -1 && errno != ESRCH)
            fprintf(stderr, "harness: kill: %s\n", strerror(errno));
        wait_child(pid, TC_STOP_MS, &status);
        fprintf(stderr, "harness: %s did not finish within %d ms\n", argv[0], timeout_ms);
        return -1;
    }
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* ---- starting and stopping the server --------------------------------- */

/* Binds a reservation socket (SO_REUSEADDR, not listening) to
 * 127.0.0.1:port, port 0 meaning any free one. Returns the port and stores
 * the socket in *fd_out, or returns 0 (with *fd_out = -1). */
static uint16_t reserve_port(uint16_t port, int *fd_out)
{
    *fd_out = -1;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        fprintf(stderr, "harness: socket: %s\n", strerror(errno));
        return 0;
    }
    int one = 1;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    socklen_t alen = sizeof addr;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1) {
        fprintf(stderr, "harness: SO_REUSEADDR: %s\n", strerror(errno));
    } else if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == -1) {
        if (port == 0)
            fprintf(stderr, "harness: bind 127.0.0.1:0: %s\n", strerror(errno));
    } else if (getsockname(fd, (struct sockaddr *)&addr, &alen) == -1) {
        fprintf(stderr, "harness: getsockname: %s\n", strerror(errno));
    } else {
        *fd_out = fd;
        return ntohs(addr.sin_port);
    }
    close(fd);
    return 0;
}

static void release_port(struct p2p_server *server)
{
    if (server->reserve_fd != -1)
        close(server->reserve_fd);
    server->reserve_fd = -1;
}

/* Creates the log file; returns its fd (O_CLOEXEC) or -1. */
static int make_log_file(char *path, size_t cap)
{
    const char *build = getenv("P2P_BUILD");
    if (build != NULL && build[0] != '\0') {
        char dir[400];
        snprintf(dir, sizeof dir, "%s/test-logs", build);
        if (mkdir(dir, 0777) == -1 && errno != EEXIST)
            goto tmp;
        snprintf(dir, sizeof dir, "%s/test-logs/servers", build);
        if (mkdir(dir, 0777) == -1 && errno != EEXIST)
            goto tmp;
        snprintf(path, cap, "%s/p2pServer-XXXXXX.txt", dir);
        int fd = mkostemps(path, 4, O_CLOEXEC);
        if (fd != -1)
            return fd;
    }
tmp:
    snprintf(path, cap, "/tmp/p2pServer-test-XXXXXX.txt");
    int fd = mkostemps(path, 4, O_CLOEXEC);
    if (fd == -1)
        fprintf(stderr, "harness: mkostemps %s: %s\n", path, strerror(errno));
    return fd;
}

static int log_is_temporary(const char *path)
{
    return strncmp(path, "/tmp/p2pServer-test-", 20) == 0 && getenv("P2P_KEEP_LOGS") == NULL;
}

/* Does the child own a LISTEN socket on port? 1 yes, 0 not yet, -1 when
 * /proc cannot tell. */
static int listening_in_proc(pid_t pid, uint16_t port)
{
    static const char *const tables[] = {"/proc/net/tcp", "/proc/net/tcp6"};
    unsigned long inodes[8];
    size_t ninodes = 0;
    int readable = 0;
    char want[8];
    snprintf(want, sizeof want, ":%04X", port);

    for (size_t t = 0; t < 2; t++) {
        FILE *f = fopen(tables[t], "re");
        if (f == NULL)
            continue;
        readable = 1;
        char line[512];
        while (fgets(line, sizeof line, f) != NULL) {
            char local[128], remote[128], state[8];
            unsigned long inode = 0;
            /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode */
            if (sscanf(line, " %*s %127s %127s %7s %*s %*s %*s %*s %*s %lu", local,
                       remote, state, &inode) != 4)
                continue;
            size_t ll = strlen(local);
            if (ll < 5 || strcmp(local + ll - 5, want) != 0 || strcmp(state, "0A") != 0)
                continue;
            if (ninodes < 8)
                inodes[ninodes++] = inode;
        }
        fclose(f);
    }
    if (!readable)
        return -1;
    if (ninodes == 0)
        return 0;

    char dirpath[64];
    snprintf(dirpath, sizeof dirpath, "/proc/%ld/fd", (long)pid);
    DIR *d = opendir(dirpath);
    if (d == NULL)
        return errno == ENOENT ? 0 : -1;
    int found = 0;
    struct dirent *e;
    while (!found && (e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        char target[64];
        ssize_t n = readlinkat(dirfd(d), e->d_name, target, sizeof target - 1);
        if (n <= 0)
            continue;
        target[n] = '\0';
        for (size_t i = 0; i < ninodes; i++) {
            char want_target[64];
            snprintf(want_target, sizeof want_target, "socket:[%lu]", inodes[i]);
            if (strcmp(target, want_target) == 0)
                found = 1;
        }
    }
    closedir(d);
    return found;
}

/* Fallback readiness check: a connect to the port succeeds. */
static int connect_probe(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        return 0;
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    int ok = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
    close(fd);
    return ok;
}

enum start_result { START_OK, START_EXITED, START_FATAL };

/* Starts the server on one given port and waits until it listens. On
 * START_EXITED the child has exited (port taken?) and been reaped. */
static enum start_result start_on_port(struct p2p_server *server,
                                       const char *const *extra_args, uint16_t port,
                                       int quiet_exit)
{
    const char *path = p2p_server_path();
    const char *argv[64];
    size_t argc = 0;
    char port_str[8];
    snprintf(port_str, sizeof port_str, "%u", (unsigned)port);
    argv[argc++] = path;
    argv[argc++] = "--bind";
    argv[argc++] = "127.0.0.1";
    for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
        if (argc >= 60) {
            fprintf(stderr, "harness: too many server arguments\n");
            return START_FATAL;
        }
        argv[argc++] = extra_args[i];
    }
    argv[argc++] = port_str;
    argv[argc] = NULL;

    int logfd = make_log_file(server->log_path, sizeof server->log_path);
    if (logfd == -1)
        return START_FATAL;

    pid_t pid = tc_fork_tied();
    if (pid == -1) {
        fprintf(stderr, "harness: fork: %s\n", strerror(errno));
        close(logfd);
        return START_FATAL;
    }
    if (pid == 0) {
        child_setup();
        if (dup2(logfd, STDOUT_FILENO) == -1 || dup2(logfd, STDERR_FILENO) == -1)
            _exit(126);
        execv(path, (char *const *)argv);
        child_exec_failed(path);
        _exit(127);
    }
    close(logfd);
    server->pid = pid;
    server->port = port;

    int64_t deadline = now_ms() + TC_WAIT_MS;
    for (;;) {
        int r = listening_in_proc(pid, port);
        if (r == -1)
            r = connect_probe(port);
        if (r == 1)
            return START_OK;
        int status = 0;
        int left = remaining_ms(deadline);
        int w = wait_child(pid, left < 5 ? left : 5, &status);
        if (w == 1) {
            server->pid = 0;
            int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
            if (!quiet_exit || code == 127 || code == 126 || code == 2) {
                fprintf(stderr, "harness: %s exited (status %d) before listening on %u:\n",
                        path, code, (unsigned)port);
                print_file_tail(server->log_path, TC_LOG_TAIL_BYTES);
            }
            if (log_is_temporary(server->log_path))
                unlink(server->log_path);
            /* A missing binary or rejected arguments will not get better. */
            if (code == 127 || code == 126 || code == 2)
                return START_FATAL;
            return START_EXITED;
        }
        if (w == -1 || remaining_ms(deadline) == 0) {
            fprintf(stderr, "harness: %s did not listen on %u within %d ms\n", path,
                    (unsigned)port, TC_WAIT_MS);
            print_file_tail(server->log_path, TC_LOG_TAIL_BYTES);
            if (kill(pid, SIGKILL) == -1 && errno != ESRCH)
                fprintf(stderr, "harness: kill: %s\n", strerror(errno));
            wait_child(pid, TC_STOP_MS, &status);
            server->pid = 0;
            return START_FATAL;
        }
    }
}

int p2p_server_start(struct p2p_server *server, const char *const *extra_args)
{
    server->pid = 0;
    server->port = 0;
    server->log_path[0] = '\0';
    server->reserve_fd = -1;
    for (int attempt = 0; attempt < TC_START_ATTEMPTS; attempt++) {
        int fd = -1;
        uint16_t port = reserve_port(0, &fd);
        if (port == 0)
            return -1;
        enum start_result r = start_on_port(server, extra_args, port, 0);
        if (r == START_OK) {
            server->reserve_fd = fd;
            running_add(server);
            return 0;
        }
        close(fd);
        if (r == START_FATAL)
            return -1;
    }
    fprintf(stderr, "harness: could not start the server after %d attempts\n",
            TC_START_ATTEMPTS);
    return -1;
}

int p2p_server_restart(struct p2p_server *server, const char *const *extra_args)
{
    if (server->pid != 0) {
        fprintf(stderr, "harness: restart of a running server (pid %ld)\n", (long)server->pid);
        return -1;
    }
    uint16_t port = server->port;
    if (port == 0)
        return p2p_server_start(server, extra_args);
    /* After a stop the reservation is gone: take it again if we can. */
    if (server->reserve_fd == -1)
        reserve_port(port, &server->reserve_fd);
    /* The old server's connections may linger in TIME_WAIT; a server without
     * SO_REUSEADDR then fails to bind for a while. Retry for ~10 s. */
    int64_t deadline = now_ms() + 2 * TC_WAIT_MS;
    int delay = 20;
    for (;;) {
        enum start_result r = start_on_port(server, extra_args, port, 1);
        if (r == START_OK) {
            running_add(server);
            return 0;
        }
        if (r == START_FATAL)
            return -1;
        int left = remaining_ms(deadline);
        if (left == 0) {
            fprintf(stderr, "harness: could not restart the server on port %u\n",
                    (unsigned)port);
            return -1;
        }
        nap_ms(delay < left ? delay : left);
        if (delay < 500)
            delay *= 2;
    }
}

int p2p_server_stop(struct p2p_server *server)
{
    return p2p_server_stop_with(server, SIGTERM);
}

int p2p_server_stop_with(struct p2p_server *server, int sig)
{
    if (server->pid == 0)
        return -1;
    pid_t pid = server->pid;
    int status = 0;
    int result = -1;
    if (kill(pid, sig) == -1)
        fprintf(stderr, "harness: kill(%d): %s\n", sig, strerror(errno));
    int w = wait_child(pid, TC_STOP_MS, &status);
    if (w == 1) {
        if (WIFEXITED(status))
            result = WEXITSTATUS(status);
        else
            fprintf(stderr, "harness: server died of signal %d\n", WTERMSIG(status));
    } else {
        fprintf(stderr, "harness: server did not exit within %d ms of signal %d\n", TC_STOP_MS, sig);
        if (kill(pid, SIGKILL) == -1 && errno != ESRCH)
            fprintf(stderr, "harness: kill(SIGKILL): %s\n", strerror(errno));
        wait_child(pid, TC_STOP_MS, &status);
    }
    running_remove(pid);
    server->pid = 0;
    release_port(server);
    if (log_is_temporary(server->log_path))
        unlink(server->log_path);
    return result;
}

void p2p_server_kill(struct p2p_server *server)
{
    if (server->pid == 0)
        return;
    pid_t pid = server->pid;
    int status = 0;
    if (kill(pid, SIGKILL) == -1 && errno != ESRCH)
        fprintf(stderr, "harness: kill(SIGKILL): %s\n", strerror(errno));
    if (wait_child(pid, TC_STOP_MS, &status) != 1)
        fprintf(stderr, "harness: server pid %ld not reaped after SIGKILL\n", (long)pid);
    running_remove(pid);
    server->pid = 0;
    if (log_is_temporary(server->log_path))
        unlink(server->log_path);
}

/* ---- raw clients ------------------------------------------------------ */

int tc_connect(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd == -1)
        tc_fail("socket: %s", strerror(errno));
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1)
        tc_fail("setsockopt(TCP_NODELAY): %s", strerror(errno));
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(port);
    while (connect(fd, (struct sockaddr *)&addr, sizeof addr) == -1) {
        if (errno == EINTR)
            continue;
        int e = errno;
        close(fd);
        tc_fail("connect 127.0.0.1:%u: %s", (unsigned)port, strerror(e));
    }
    return fd;
}

int tc_try_send_raw(int fd, const void *buf, size_t len)
{
    const uint8_t *p = buf;
    int64_t deadline = now_ms() + TC_WAIT_MS;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (n == -1) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                /* The server is not reading (yet): wait, bounded. */
                struct pollfd pfd = {.fd = fd, .events = POLLOUT, .revents = 0};
                int left = remaining_ms(deadline);
                if (left == 0) {
                    errno = ETIMEDOUT;
                    return -1;
                }
                if (poll(&pfd, 1, left) == -1 && errno != EINTR)
                    return -1;
                continue;
            }
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

void tc_send_raw(int fd, const void *buf, size_t len)
{
    if (tc_try_send_raw(fd, buf, len) == -1)
        tc_fail("send of %zu bytes on fd %d: %s", len, fd, strerror(errno));
}

void tc_send_frame(int fd, const void *payload, size_t len)
{
    if (len > UINT32_MAX)
        tc_fail("tc_send_frame: payload of %zu bytes", len);
    uint8_t *buf = tc_xmalloc(4 + len);
    p2p_frame_header_encode(buf, (uint32_t)len);
    if (len > 0)
        memcpy(buf + 4, payload, len);
    int r = tc_try_send_raw(fd, buf, 4 + len);
    int e = errno;
    free(buf);
    if (r == -1)
        tc_fail("send of a %zu-byte frame on fd %d: %s", len, fd, strerror(e));
}

uint8_t *tc_payload(const uint8_t *head, size_t head_len, const void *data, size_t len)
{
    uint8_t *buf = tc_xmalloc(head_len + len);
    memcpy(buf, head, head_len);
    if (len > 0)
        memcpy(buf + head_len, data, len);
    return buf;
}

void tc_send_cmd(int fd, uint8_t cmd, const void *data, size_t len)
{
    /* [cmd][data]: the codec's layout of every command whose data is an
     * id or nothing; tests also use it for arbitrary bytes. */
    uint8_t *buf = tc_xmalloc(1 + len);
    size_t n = p2p_encode_id_command(buf, cmd, data, len);
    tc_send_frame(fd, buf, n);
    free(buf);
}

/* Why a read stopped. */
enum rx_result { RX_OK = 0, RX_EOF = 1, RX_ERROR = 2, RX_TIMEOUT = 3 };

static const char *rx_name(enum rx_result r)
{
    switch (r) {
    case RX_OK: return "ok";
    case RX_EOF: return "EOF (connection closed by the server)";
    case RX_ERROR: return "error";
    case RX_TIMEOUT: return "timeout";
    }
    return "?";
}

/* Reads exactly n bytes before deadline. *got says how many arrived. */
static enum rx_result read_exact(int fd, uint8_t *buf, size_t n, int64_t deadline, size_t *got,
                                 int *err)
{
    size_t have = 0;
    enum rx_result res = RX_OK;
    *err = 0;
    while (have < n) {
        struct pollfd pfd = {.fd = fd, .events = POLLIN, .revents = 0};
        int left = remaining_ms(deadline);
        int r = poll(&pfd, 1, left);
        if (r == -1) {
            if (errno == EINTR)
                continue;
            *err = errno;
            res = RX_ERROR;
            break;
        }
        if (r == 0) {
            res = RX_TIMEOUT;
            break;
        }
        ssize_t m = recv(fd, buf + have, n - have, MSG_DONTWAIT);
        if (m == -1) {
            if (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)
                continue;
            *err = errno;
            res = RX_ERROR;
            break;
        }
        if (m == 0) {
            res = RX_EOF;
            break;
        }
        have += (size_t)m;
    }
    if (got != NULL)
        *got = have;
    return res;
}

/* Reads one frame into a malloc'ed buffer (*out, free it). Returns the
 * result; *len is the payload length on RX_OK. A header announcing more than
 * TC_FRAME_LIMIT fails the test. */
static enum rx_result recv_frame_alloc(int fd, uint8_t **out, size_t *len, int timeout_ms,
                                       int *err, size_t *partial)
{
    int64_t deadline = now_ms() + timeout_ms;
    uint8_t header[4];
    size_t got = 0;
    *out = NULL;
    *len = 0;
    *partial = 0;
    enum rx_result r = read_exact(fd, header, 4, deadline, &got, err);
    if (r != RX_OK) {
        *partial = got;
        return r;
    }
    uint32_t l = p2p_frame_header_decode(header);
    if (l > TC_FRAME_LIMIT)
        tc_fail("fd %d: frame header announces %u bytes (header %02x %02x %02x %02x)", fd,
                (unsigned)l, header[0], header[1], header[2], header[3]);
    uint8_t *buf = tc_xmalloc(l);
    r = read_exact(fd, buf, l, deadline, &got, err);
    if (r != RX_OK) {
        *partial = 4 + got;
        free(buf);
        return r;
    }
    *out = buf;
    *len = l;
    return RX_OK;
}

ssize_t tc_recv_frame(int fd, uint8_t *buf, size_t cap, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    uint8_t header[4];
    size_t got = 0;
    int err = 0;
    if (read_exact(fd, header, 4, deadline, &got, &err) != RX_OK)
        return -1;
    uint32_t l = p2p_frame_header_decode(header);
    if (l > cap)
        tc_fail("fd %d: received a frame of %u bytes, larger than the %zu-byte buffer", fd,
                (unsigned)l, cap);
    if (read_exact(fd, buf, l, deadline, &got, &err) != RX_OK)
        return -1;
    return (ssize_t)l;
}

static void describe_rx_failure(int fd, enum rx_result r, int err, size_t partial,
                                char *msg, size_t cap)
{
    if (r == RX_ERROR)
        snprintf(msg, cap, "fd %d: %s (%s) after %zu bytes of a frame", fd, rx_name(r),
                 strerror(err), partial);
    else
        snprintf(msg, cap, "fd %d: %s after %zu bytes of a frame", fd, rx_name(r), partial);
}

void tc_expect_frame_within(int fd, const void *expected, size_t len, int timeout_ms)
{
    uint8_t *got = NULL;
    size_t got_len = 0;
    int err = 0;
    size_t partial = 0;
    enum rx_result r = recv_frame_alloc(fd, &got, &got_len, timeout_ms, &err, &partial);
    if (r != RX_OK) {
        char why[200];
        describe_rx_failure(fd, r, err, partial, why, sizeof why);
        tc_hexdump("expected", expected, len, 0, 64);
        tc_fail("expected a %zu-byte frame, got none: %s", len, why);
    }
    if (got_len == len && (len == 0 || memcmp(got, expected, len) == 0)) {
        free(got);
        return;
    }
    const uint8_t *e = expected;
    size_t diff = 0;
    while (diff < len && diff < got_len && e[diff] == got[diff])
        diff++;
    size_t from = diff > 32 ? diff - 32 : 0;
    tc_hexdump("expected", expected, len, from, 128);
    tc_hexdump("received", got, got_len, from, 128);
    free(got);
    tc_fail("fd %d: frame mismatch: expected %zu bytes, received %zu, first difference at "
            "offset %zu",
            fd, len, got_len, diff);
}

void tc_expect_frame(int fd, const void *expected, size_t len)
{
    tc_expect_frame_within(fd, expected, len, TC_WAIT_MS);
}

void tc_expect_reply(int fd, uint8_t cmd, uint8_t status)
{
    uint8_t want[P2P_REPLY_SIZE];
    tc_expect_frame(fd, want, p2p_encode_reply(want, cmd, status));
}

/* Sends [cmd] + data and asserts the reply [cmd|0x80, expect_status]. */
static void request(int fd, uint8_t cmd, const void *data, size_t len, uint8_t expect_status)
{
    tc_send_cmd(fd, cmd, data, len);
    tc_expect_reply(fd, cmd, expect_status);
}

void tc_expect_closed(int fd, int timeout_ms, int allow_frames)
{
    int64_t deadline = now_ms() + timeout_ms;
    for (;;) {
        uint8_t *got = NULL;
        size_t got_len = 0;
        int err = 0;
        size_t partial = 0;
        enum rx_result r =
            recv_frame_alloc(fd, &got, &got_len, remaining_ms(deadline), &err, &partial);
        if (r == RX_OK) {
            if (allow_frames) {
                free(got);
                continue;
            }
            tc_hexdump("unexpected frame", got, got_len, 0, 64);
            free(got);
            tc_fail("fd %d: expected the server to close the connection, got a frame first",
                    fd);
        }
        if (partial > 0 && !allow_frames)
            tc_fail("fd %d: expected a close, got %zu bytes of a frame first", fd, partial);
        if (r == RX_EOF)
            return;
        if (r == RX_ERROR && (err == ECONNRESET || err == EPIPE))
            return;
        if (r == RX_TIMEOUT)
            tc_fail("fd %d: connection still open after %d ms", fd, timeout_ms);
        tc_fail("fd %d: waiting for a close: %s", fd, strerror(err));
    }
}

void tc_expect_nothing_pending(int fd)
{
    request(fd, P2P_CMD_HEARTBEAT, NULL, 0, P2P_STATUS_OK);
}

/* Parses a frame from the server with the codec: 1 if it is the reply
 * [cmd|0x80][status] and nothing more (*status set), else 0. */
static int parse_reply(const uint8_t *buf, ssize_t n, uint8_t cmd, uint8_t *status)
{
    struct p2p_message m;
    if (n != (ssize_t)P2P_REPLY_SIZE || p2p_message_parse(buf, (size_t)n, &m) != P2P_PARSE_OK ||
        m.kind != P2P_MSG_REPLY || m.cmd != cmd)
        return 0;
    *status = m.status;
    return 1;
}

int tc_is_open(int fd)
{
    /* A HEARTBEAT must be answered by an open connection. */
    uint8_t frame[P2P_FRAME_HEADER_SIZE + 1];
    size_t n = p2p_encode_id_command(frame + P2P_FRAME_HEADER_SIZE, P2P_CMD_HEARTBEAT, NULL, 0);
    p2p_frame_header_encode(frame, (uint32_t)n);
    if (tc_try_send_raw(fd, frame, sizeof frame) == -1)
        return 0;
    uint8_t buf[16];
    ssize_t got = tc_recv_frame(fd, buf, sizeof buf, TC_WAIT_MS);
    uint8_t status = 0;
    if (parse_reply(buf, got, P2P_CMD_HEARTBEAT, &status) && status == P2P_STATUS_OK)
        return 1;
    if (got >= 0)
        tc_fail("fd %d: heartbeat got an unexpected %zd-byte frame", fd, got);
    return 0;
}

void tc_register_bytes(int fd, const void *id, size_t len, uint8_t expect_status)
{
    request(fd, P2P_CMD_REGISTER, id, len, expect_status);
}

void tc_subscribe_bytes(int fd, const void *id, size_t len, uint8_t expect_status)
{
    request(fd, P2P_CMD_SUBSCRIBE, id, len, expect_status);
}

void tc_register(int fd, const char *id, uint8_t expect_status)
{
    tc_register_bytes(fd, id, strlen(id), expect_status);
}

void tc_subscribe(int fd, const char *id, uint8_t expect_status)
{
    tc_subscribe_bytes(fd, id, strlen(id), expect_status);
}

void tc_unsubscribe(int fd, const char *id)
{
    request(fd, P2P_CMD_UNSUBSCRIBE, id, strlen(id), P2P_STATUS_OK);
}

void tc_unregister(int fd)
{
    request(fd, P2P_CMD_UNREGISTER, NULL, 0, P2P_STATUS_OK);
}

void tc_check_alive_bytes(int fd, const void *id, size_t len, uint8_t expect_status)
{
    request(fd, P2P_CMD_CHECK_ALIVE, id, len, expect_status);
}

void tc_check_alive(int fd, const char *id, uint8_t expect_status)
{
    tc_check_alive_bytes(fd, id, strlen(id), expect_status);
}

void tc_connect_pub_sub(uint16_t port, const char *id, int *pub, int *sub)
{
    *pub = tc_connect(port);
    *sub = tc_connect(port);
    tc_register(*pub, id, P2P_STATUS_OK);
    tc_subscribe(*sub, id, P2P_STATUS_OK);
}

void tc_connect_registered(uint16_t port, int *fds, int n, const char *prefix)
{
    for (int i = 0; i < n; i++) {
        char id[P2P_ID_MAX + 1];
        int len = snprintf(id, sizeof id, "%s%d", prefix, i);
        if (len < 0 || (size_t)len >= sizeof id)
            tc_fail("tc_connect_registered: id \"%s%d\" is too long", prefix, i);
        fds[i] = tc_connect(port);
        tc_register(fds[i], id, P2P_STATUS_OK);
    }
}

void tc_send_data(int fd, const void *data, size_t len, uint8_t expect_status)
{
    request(fd, P2P_CMD_SEND, data, len, expect_status);
}

void tc_expect_data(int fd, const void *data, size_t len)
{
    uint8_t head[1];
    size_t n = p2p_encode_send_head(head);
    uint8_t *want = tc_payload(head, n, data, len);
    tc_expect_frame(fd, want, n + len);
    free(want);
}

void tc_close(int fd)
{
    if (fd >= 0 && close(fd) == -1)
        tc_fail("close(%d): %s", fd, strerror(errno));
}

void tc_expect_raw(int fd, const void *expected, size_t len)
{
    uint8_t *got = tc_xmalloc(len);
    size_t n = 0;
    int err = 0;
    enum rx_result r = read_exact(fd, got, len, now_ms() + TC_WAIT_MS, &n, &err);
    if (r != RX_OK || memcmp(got, expected, len) != 0) {
        tc_hexdump("expected bytes", expected, len, 0, 128);
        tc_hexdump("received bytes", got, n, 0, 128);
        free(got);
        tc_fail("fd %d: raw bytes mismatch (%s%s%s)", fd, rx_name(r), err ? ": " : "",
                err ? strerror(err) : "");
    }
    free(got);
}

void tc_close_and_wait(int fd)
{
    if (shutdown(fd, SHUT_WR) == -1)
        tc_fail("shutdown(%d): %s", fd, strerror(errno));
    tc_expect_closed(fd, TC_WAIT_MS, 1);
    tc_close(fd);
}

void tc_wait_alive(int fd, const void *id, size_t len, uint8_t status, int timeout_ms)
{
    int64_t deadline = now_ms() + timeout_ms;
    int delay = 1;
    for (;;) {
        uint8_t buf[8];
        tc_send_cmd(fd, P2P_CMD_CHECK_ALIVE, id, len);
        ssize_t n = tc_recv_frame(fd, buf, sizeof buf, TC_WAIT_MS);
        uint8_t got = 0;
        if (!parse_reply(buf, n, P2P_CMD_CHECK_ALIVE, &got) || got > P2P_STATUS_OK) {
            if (n >= 0)
                tc_hexdump("received", buf, (size_t)n, 0, 8);
            tc_fail("fd %d: CHECK_ALIVE: expected 86 00 or 86 01", fd);
        }
        if (got == status)
            return;
        int left = remaining_ms(deadline);
        if (left == 0)
            tc_fail("fd %d: CHECK_ALIVE still answers 86 %02x after %d ms", fd, got,
                    timeout_ms);
        nap_ms(delay < left ? delay : left);
        if (delay < 64)
            delay *= 2;
    }
}

int tc_setup_server(void **state)
{
    return tc_setup_server_args(state, NULL);
}

int tc_setup_server_args(void **state, const char *const *extra_args)
{
    struct p2p_server *server = calloc(1, sizeof *server);
    if (server == NULL)
        return -1;
    if (p2p_server_start(server, extra_args) != 0) {
        free(server);
        return -1;
    }
    *state = server;
    return 0;
}

int tc_teardown_server(void **state)
{
    struct p2p_server *server = *state;
    if (server == NULL)
        return 0;
    int rc = p2p_server_stop(server);
    free(server);
    *state = NULL;
    if (rc != 0) {
        fprintf(stderr, "harness: the server did not exit 0 on SIGTERM (status %d)\n", rc);
        return -1;
    }
    return 0;
}

int tc_setup_server_prestate(void **state)
{
    const char *const *extra_args = *state;
    *state = NULL;
    return tc_setup_server_args(state, extra_args);
}

uint16_t tc_port(void **state)
{
    return ((struct p2p_server *)*state)->port;
}

void tc_start_server(struct p2p_server *server, const char *const *extra_args)
{
    if (p2p_server_start(server, extra_args) != 0)
        tc_fail("could not start %s", p2p_server_path());
}

void tc_stop_server(struct p2p_server *server)
{
    int status = p2p_server_stop(server);
    if (status != 0)
        tc_fail("server exited with %d after SIGTERM, expected 0", status);
}

/* ---- small utilities ------------------------------------------------------ */

void *tc_xmalloc(size_t n)
{
    void *p = malloc(n > 0 ? n : 1);
    if (p == NULL)
        tc_fail("out of memory");
    return p;
}

void tc_fill_indexed(uint8_t *buf, size_t len, int i)
{
    memset(buf, 'a' + i % 26, len);
    buf[0] = (uint8_t)i;
    buf[1] = (uint8_t)(i >> 8);
}

void tc_put_u32(uint8_t *p, uint32_t v)
{
    p2p_put_be32(p, v);
}
