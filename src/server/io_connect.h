// io_connect.h - the syscalls of an outgoing TCP connection, which io.h
// (written for a server that only accepts) does not have: a non-blocking
// connect and its outcome. Same contract as io.h: errno is saved at once
// and returned, nothing here logs, EINTR never escapes. Kept apart from
// io.{h,cpp} only so that this change touches no existing file; it belongs
// there.
#pragma once

#include <sys/socket.h>

#include "io.h"

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
