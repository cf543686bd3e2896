/*
 * bench_conn.h - one p2pBench socket to the server, and every syscall the
 * generator makes on it: connect, send, recv, epoll registration, close.
 * errno is met here once: EINTR is retried, EAGAIN means "would block", 0
 * from recv is EOF, anything else is an error whose errno goes back to the
 * caller. Nothing here knows the workloads; bytes in are cut into frames
 * with the project codec (p2p_frame_parse) and handed to a callback.
 *
 * Sockets are non-blocking, TCP_NODELAY, and registered with epoll
 * level-triggered: EPOLLIN always, EPOLLOUT only while output is pending
 * (or while connecting).
 */
#ifndef P2P_BENCH_CONN_H
#define P2P_BENCH_CONN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "bench_buf.h"

enum bench_io {
    BENCH_IO_OK = 0,       /* progress (see each function)               */
    BENCH_IO_AGAIN = 1,    /* would block: nothing moved                 */
    BENCH_IO_EOF = 2,      /* the server closed the connection           */
    BENCH_IO_ERROR = 3,    /* *err holds errno                           */
    BENCH_IO_BAD_FRAME = 4 /* the server sent an empty or oversize frame */
};

struct bench_conn {
    int fd;                /* -1 when closed                               */
    uint32_t events;       /* what epoll watches for it now                */
    struct bench_buf in;   /* a frame split by the last read, to complete  */
    struct bench_buf out;  /* bytes the kernel has not taken yet           */
};

/* Called once per complete frame with its payload (len >= 1). Returns 0 to
 * go on, -1 when the connection has just been closed by the callee (the
 * rest of the bytes are dropped). */
typedef int (*bench_frame_fn)(void *ctx, const uint8_t *payload, uint32_t len);

/* Opens a non-blocking TCP_NODELAY socket, registers it with epfd (data =
 * tag; EPOLLIN | EPOLLOUT) and starts connecting. AGAIN: in progress,
 * EPOLLOUT tells when it is done (then bench_conn_connect_error); OK:
 * connected at once; ERROR: *err, nothing left open. */
enum bench_io bench_conn_connect(struct bench_conn *c, int epfd, const struct sockaddr *addr,
                                 socklen_t addr_len, void *tag, int *err);

/* The outcome of a connect in progress: 0 or an errno value (SO_ERROR). */
int bench_conn_connect_error(const struct bench_conn *c);

/* Makes epoll watch `events` for c (no call when unchanged). 0, or errno. */
int bench_conn_watch(struct bench_conn *c, int epfd, uint32_t events, void *tag);

/* Sends queued output until it is gone or the kernel's buffer is full.
 * OK: everything sent; AGAIN: some is left (EPOLLOUT tells when to go
 * on); ERROR: *err. */
enum bench_io bench_conn_flush(struct bench_conn *c, int *err);

/* One recv into scratch after the partial frame kept from the last read,
 * then every complete frame to fn, in order; the incomplete rest is kept.
 * scratch must hold max_payload + 4 bytes plus the read chunk: the kept
 * part is at most one incomplete frame. OK: *got bytes read (fewer than
 * chunk means the socket is drained); AGAIN, EOF, ERROR (*err); BAD_FRAME
 * when a frame is empty or longer than max_payload. */
enum bench_io bench_conn_read(struct bench_conn *c, uint8_t *scratch, size_t chunk,
                              uint32_t max_payload, bench_frame_fn fn, void *ctx, size_t *got,
                              int *err);

/* Closes with a reset (SO_LINGER 0): no TIME_WAIT pile-up across runs, and
 * the server sees the end at once. Frees both buffers. Safe on a closed
 * connection. */
void bench_conn_abort(struct bench_conn *c);

#endif /* P2P_BENCH_CONN_H */
