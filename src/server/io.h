// io.h - the one place where socket syscalls meet errno.
//
// Every read, write, accept and outgoing connect on a connection, and every
// read of the loop's timerfd and signalfd, goes through here, and comes
// back as an IoResult: ok with a byte count, would_block (EAGAIN), eof, or
// error with the saved errno. EINTR is retried here and never escapes. Writes
// use sendmsg(MSG_NOSIGNAL), so a peer that has gone away is an EPIPE result,
// not a signal. Nothing here logs: callers know what the connection was doing
// and log with that context; io_error_is_peer() tells them how loudly.
#pragma once

#include <sys/socket.h>
#include <sys/uio.h>

#include <cstddef>
#include <cstdint>

enum class IoStatus { ok, would_block, eof, error };

struct IoResult {
    IoStatus status;
    size_t bytes;  // ok: bytes moved (> 0)
    int err;       // error: errno
};

// read(2) of up to n bytes: for the loop's timerfd and signalfd.
IoResult io_read(int fd, void* buf, size_t n);

// readv(2) into iov[0..count).
IoResult io_readv(int fd, const struct iovec* iov, int count);

// sendmsg(2) of iov[0..count) with MSG_NOSIGNAL. A short write is ok with
// the bytes written; the caller keeps the rest.
IoResult io_writev(int fd, const struct iovec* iov, int count);

struct AcceptResult {
    IoStatus status;  // ok, would_block or error (never eof)
    int fd;           // ok: non-blocking, close-on-exec
    int err;          // error: errno
    struct sockaddr_storage peer;
    socklen_t peer_len;
};

// accept4(2) with SOCK_NONBLOCK | SOCK_CLOEXEC. Errors that concern only the
// one connection being accepted (ECONNABORTED, EPROTO, ...) are skipped
// here and the next pending connection is tried.
AcceptResult io_accept(int listen_fd);

struct ConnectResult {
    IoStatus status;  // ok (connected at once), would_block (in progress) or error
    int fd;           // ok, would_block: non-blocking, close-on-exec; error: -1
    int err;          // error: errno (the socket is already closed)
};

// socket(2) + connect(2) to addr without blocking. In progress: wait for
// EPOLLOUT (or EPOLLERR/EPOLLHUP), then ask io_connect_outcome(). connect(2)
// interrupted by a signal goes on asynchronously, so EINTR is "in progress"
// too (retrying would give EALREADY).
ConnectResult io_connect_start(const struct sockaddr* addr, socklen_t len);

// After a connect in progress reported writability or an error: 0 when the
// connection is established, else the errno it failed with (SO_ERROR, see
// connect(2), EINPROGRESS).
int io_connect_outcome(int fd);

// shutdown(2) for writing: our FIN after the last byte. 0, or the errno.
int io_shutdown_write(int fd);

// setsockopt(TCP_NODELAY): frames leave at once, batching is ours. 0, or
// the errno.
int io_set_nodelay(int fd);

// close(2). 0, or the errno; never retried on EINTR (on Linux the
// descriptor is gone whatever close returns, and may already be reused).
int io_close(int fd);

// socket(family, SOCK_DGRAM) non-blocking and close-on-exec: the fd, or -1
// with *err set.
int io_datagram_socket(int family, int* err);

// sendto(2) of one datagram with MSG_NOSIGNAL. 0, or the errno (EAGAIN
// included: a datagram that cannot be queued is the caller's to drop).
int io_send_datagram(int fd, const void* buf, size_t len, const struct sockaddr* to,
                     socklen_t to_len);

// True for errors a peer causes in the normal course of things (reset,
// broken pipe, timeouts, unreachable): logged quietly.
bool io_error_is_peer(int err);

// A peer's address in 20 bytes rather than a 128-byte sockaddr_storage:
// kept per connection for log lines, formatted only when one is written.
struct PeerAddress {
    uint8_t bytes[16] = {};  // IPv4 in the first 4, IPv4-mapped IPv6 as IPv4
    uint16_t port = 0;
    uint8_t family = 0;      // AF_INET, AF_INET6 or 0 (unknown)
};

PeerAddress io_peer_address(const struct sockaddr* addr, socklen_t len);
// Formats an address as "1.2.3.4:5" or "[::1]:5".
void io_format_peer(const PeerAddress& peer, char* out, size_t cap);
