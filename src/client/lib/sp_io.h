/*
 * sp_io.h - every syscall the library makes on its sockets, timer and
 * wake-up descriptor meets errno here, once: EINTR is retried, EAGAIN means
 * "would block", 0 from read means EOF, anything else is an error whose
 * errno is returned to the caller (saved at once). No other file calls
 * read/send/connect directly. See sp_buf.h for why this is a header of
 * static functions.
 */
#ifndef SP_IO_H
#define SP_IO_H

#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/types.h>
#include <unistd.h>

enum sp_io_result {
    SP_IO_OK = 0,      /* *n bytes moved (> 0)                      */
    SP_IO_AGAIN = 1,   /* would block: nothing moved                */
    SP_IO_EOF = 2,     /* the peer closed (read only)               */
    SP_IO_ERROR = 3    /* *err holds errno                          */
};

/* send(2) with MSG_NOSIGNAL (no SIGPIPE: the library installs no handler)
 * and MSG_DONTWAIT. */
static enum sp_io_result sp_io_send(int fd, const void *buf, size_t len, size_t *n, int *err)
{
    for (;;) {
        ssize_t r = send(fd, buf, len, MSG_NOSIGNAL | MSG_DONTWAIT);
        if (r >= 0) {
            *n = (size_t)r;
            return r > 0 || len == 0 ? SP_IO_OK : SP_IO_AGAIN;
        }
        int e = errno;
        if (e == EINTR)
            continue;
        *n = 0;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return SP_IO_AGAIN;
        *err = e;
        return SP_IO_ERROR;
    }
}

static enum sp_io_result sp_io_read(int fd, void *buf, size_t cap, size_t *n, int *err)
{
    for (;;) {
        ssize_t r = read(fd, buf, cap);
        if (r > 0) {
            *n = (size_t)r;
            return SP_IO_OK;
        }
        *n = 0;
        if (r == 0)
            return SP_IO_EOF;
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return SP_IO_AGAIN;
        *err = e;
        return SP_IO_ERROR;
    }
}

/* Starts a non-blocking connect. Returns SP_IO_OK when connected at once,
 * SP_IO_AGAIN when in progress (wait for POLLOUT, then sp_io_connect_result),
 * SP_IO_ERROR otherwise. EINTR: the connection goes on asynchronously
 * (connect(2)), so it is "in progress" too. */
static enum sp_io_result sp_io_connect(int fd, const struct sockaddr *sa, socklen_t len, int *err)
{
    if (connect(fd, sa, len) == 0)
        return SP_IO_OK;
    int e = errno;
    if (e == EINPROGRESS || e == EINTR)
        return SP_IO_AGAIN;
    *err = e;
    return SP_IO_ERROR;
}

/* The outcome of a finished non-blocking connect: 0 or its errno. */
static int sp_io_connect_result(int fd)
{
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) == -1)
        return errno;
    return soerr;
}

/* A TCP socket for `family`, non-blocking, close-on-exec, TCP_NODELAY (a
 * command is one small frame waiting for its reply: Nagle would only add
 * latency) and SO_REUSEADDR (a direct path dials from the relay
 * connection's own port, and Linux lets a second socket bind a port in use
 * only when both set it: socket(7)). Returns the fd or -1 with *err set. */
static int sp_io_socket(int family, int *err)
{
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        *err = errno;
        return -1;
    }
    int one = 1;
    /* Failure only costs latency, or a direct path: ignore it. */
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    return fd;
}

/* bind(2). Returns 0 or an errno. */
static int sp_io_bind(int fd, const struct sockaddr *sa, socklen_t len)
{
    return bind(fd, sa, len) == 0 ? 0 : errno;
}

/* A listening socket of `family` on an ephemeral port of every address
 * (backlog 8). Returns the fd or -1 with *err set. */
static int sp_io_listen_any(int family, int *err)
{
    int fd = sp_io_socket(family, err);
    if (fd == -1)
        return -1;
    struct sockaddr_storage ss;
    memset(&ss, 0, sizeof ss);
    ss.ss_family = (sa_family_t)family;
    socklen_t len = family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6);
    if ((*err = sp_io_bind(fd, (struct sockaddr *)&ss, len)) != 0 || listen(fd, 8) == -1) {
        if (*err == 0)
            *err = errno;
        close(fd);
        return -1;
    }
    return fd;
}

/* accept4(2), non-blocking and close-on-exec. Returns the fd, or -1 with
 * *err (EAGAIN: none waiting). ECONNABORTED is retried. */
static int sp_io_accept(int lfd, int *err)
{
    for (;;) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            int one = 1;
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            return fd;
        }
        int e = errno;
        if (e == EINTR || e == ECONNABORTED)
            continue;
        *err = e == EWOULDBLOCK ? EAGAIN : e;
        return -1;
    }
}

/* getsockname(2) into *ss. Returns 0 or an errno. */
static int sp_io_local_address(int fd, struct sockaddr_storage *ss, socklen_t *len)
{
    *len = sizeof *ss;
    return getsockname(fd, (struct sockaddr *)ss, len) == 0 ? 0 : errno;
}

/* close(2) whose EINTR is not retried (Linux frees the fd anyway). */
static void sp_io_close(int fd)
{
    if (fd >= 0)
        (void)close(fd);
}

/* Wakes a thread polling the eventfd. EAGAIN (counter saturated) means it
 * is awake already. */
static void sp_io_wake(int efd)
{
    uint64_t one = 1;
    for (;;) {
        ssize_t r = write(efd, &one, sizeof one);
        if (r >= 0 || errno != EINTR)
            return;
    }
}

/* Reads an eventfd or timerfd counter to reset it; EAGAIN is fine. */
static void sp_io_drain(int fd)
{
    uint64_t v;
    for (;;) {
        ssize_t r = read(fd, &v, sizeof v);
        if (r >= 0 || errno != EINTR)
            return;
    }
}

/* Arms the timerfd for the absolute CLOCK_MONOTONIC time at_ms (0 disarms).
 * Returns 0 or an errno. */
static int sp_io_timer_arm(int tfd, uint64_t at_ms)
{
    struct itimerspec its;
    memset(&its, 0, sizeof its);
    if (at_ms != 0) {
        its.it_value.tv_sec = (time_t)(at_ms / 1000u);
        its.it_value.tv_nsec = (long)(at_ms % 1000u) * 1000000L;
        if (its.it_value.tv_sec == 0 && its.it_value.tv_nsec == 0)
            its.it_value.tv_nsec = 1;
    }
    if (timerfd_settime(tfd, TFD_TIMER_ABSTIME, &its, NULL) == -1)
        return errno;
    return 0;
}

/* Fills buf[0..len) from the kernel's cryptographic random source
 * (getrandom(2) without flags: it blocks only until the pool is first
 * initialised at boot; a read of up to 256 bytes is not cut short once it
 * is, but EINTR and a short count are handled anyway). Returns 0 or an
 * errno. */
static int sp_io_random(void *buf, size_t len)
{
    size_t done = 0;
    while (done < len) {
        ssize_t r = getrandom((uint8_t *)buf + done, len - done, 0);
        if (r > 0) {
            done += (size_t)r;
            continue;
        }
        int e = r == 0 ? EIO : errno;
        if (e != EINTR)
            return e;
    }
    return 0;
}

#endif /* SP_IO_H */
