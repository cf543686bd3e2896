/* bench_conn.c - see bench_conn.h. */
#include "bench_conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "codec.h"

/* send() calls per flush: a bound, not a limit one meets (the kernel's
 * buffer fills first). */
#define FLUSH_MAX_CALLS 64

enum bench_io bench_conn_connect(struct bench_conn *c, int epfd, const struct sockaddr *addr,
                                 socklen_t addr_len, void *tag, int *err)
{
    c->fd = -1;
    c->events = 0;
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) {
        *err = errno;
        return BENCH_IO_ERROR;
    }
    int one = 1;
    if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1) {
        *err = errno;
        close(fd);
        return BENCH_IO_ERROR;
    }
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = EPOLLIN | EPOLLOUT;
    ev.data.ptr = tag;
    if (epoll_ctl(epfd, EPOLL_CTL_ADD, fd, &ev) == -1) {
        *err = errno;
        close(fd);
        return BENCH_IO_ERROR;
    }
    c->fd = fd;
    c->events = EPOLLIN | EPOLLOUT;
    for (;;) {
        if (connect(fd, addr, addr_len) == 0)
            return BENCH_IO_OK;
        int e = errno;
        if (e == EINTR)
            continue; /* connect(2): the connection goes on; EPOLLOUT tells */
        if (e == EINPROGRESS || e == EALREADY)
            return BENCH_IO_AGAIN;
        *err = e;
        close(fd);
        c->fd = -1;
        c->events = 0;
        return BENCH_IO_ERROR;
    }
}

int bench_conn_connect_error(const struct bench_conn *c)
{
    int e = 0;
    socklen_t len = sizeof e;
    if (getsockopt(c->fd, SOL_SOCKET, SO_ERROR, &e, &len) == -1)
        return errno;
    return e;
}

int bench_conn_watch(struct bench_conn *c, int epfd, uint32_t events, void *tag)
{
    if (c->fd == -1 || c->events == events)
        return 0;
    struct epoll_event ev;
    memset(&ev, 0, sizeof ev);
    ev.events = events;
    ev.data.ptr = tag;
    if (epoll_ctl(epfd, EPOLL_CTL_MOD, c->fd, &ev) == -1)
        return errno;
    c->events = events;
    return 0;
}

enum bench_io bench_conn_flush(struct bench_conn *c, int *err)
{
    for (int calls = 0; calls < FLUSH_MAX_CALLS && bench_buf_len(&c->out) != 0; ++calls) {
        ssize_t n = send(c->fd, bench_buf_bytes(&c->out), bench_buf_len(&c->out), MSG_NOSIGNAL);
        if (n > 0) {
            bench_buf_consume(&c->out, (size_t)n);
            continue;
        }
        int e = errno;
        if (n == -1 && e == EINTR)
            continue;
        if (n == -1 && (e == EAGAIN || e == EWOULDBLOCK))
            return BENCH_IO_AGAIN;
        *err = n == 0 ? EPIPE : e; /* send of len > 0 never returns 0 on TCP */
        return BENCH_IO_ERROR;
    }
    return bench_buf_len(&c->out) == 0 ? BENCH_IO_OK : BENCH_IO_AGAIN;
}

enum bench_io bench_conn_read(struct bench_conn *c, uint8_t *scratch, size_t chunk,
                              uint32_t max_payload, bench_frame_fn fn, void *ctx, size_t *got,
                              int *err)
{
    *got = 0;
    /* The stream is parsed from one contiguous block: the kept part of a
     * split frame first, then what this recv brings. */
    size_t kept = bench_buf_len(&c->in);
    if (kept != 0)
        memcpy(scratch, bench_buf_bytes(&c->in), kept);
    ssize_t n;
    for (;;) {
        n = recv(c->fd, scratch + kept, chunk, 0);
        if (n >= 0)
            break;
        int e = errno;
        if (e == EINTR)
            continue;
        if (e == EAGAIN || e == EWOULDBLOCK)
            return BENCH_IO_AGAIN;
        *err = e;
        return BENCH_IO_ERROR;
    }
    if (n == 0)
        return BENCH_IO_EOF;
    *got = (size_t)n;
    bench_buf_consume(&c->in, kept);
    size_t len = kept + (size_t)n;
    size_t at = 0;
    while (at < len) {
        struct p2p_frame frame;
        enum p2p_frame_result r = p2p_frame_parse(scratch + at, len - at, max_payload, &frame);
        if (r == P2P_FRAME_INCOMPLETE)
            break;
        if (r == P2P_FRAME_TOO_LONG || frame.length == 0)
            return BENCH_IO_BAD_FRAME;
        if (fn(ctx, frame.payload, frame.length) != 0)
            return BENCH_IO_OK; /* the callee closed c */
        at += frame.consumed;
    }
    if (at < len &&
        bench_buf_append(&c->in, scratch + at, len - at, (size_t)max_payload + P2P_FRAME_HEADER_SIZE) != 0) {
        *err = ENOMEM;
        return BENCH_IO_ERROR;
    }
    return BENCH_IO_OK;
}

void bench_conn_abort(struct bench_conn *c)
{
    if (c->fd != -1) {
        struct linger lg = {.l_onoff = 1, .l_linger = 0};
        /* A failure only means a FIN instead of a reset. */
        (void)setsockopt(c->fd, SOL_SOCKET, SO_LINGER, &lg, sizeof lg);
        /* close(2): the descriptor is released even when close reports an
         * error, and it must not be retried. */
        (void)close(c->fd);
        c->fd = -1;
    }
    c->events = 0;
    bench_buf_free(&c->in);
    bench_buf_free(&c->out);
}
