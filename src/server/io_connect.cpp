// io_connect.cpp - see io_connect.h.
#include "io_connect.h"

#include <unistd.h>

#include <cerrno>

ConnectResult io_connect_start(const struct sockaddr* addr, socklen_t len) {
    int fd = socket(addr->sa_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) return {IoStatus::error, -1, errno};
    if (connect(fd, addr, len) == 0) return {IoStatus::ok, fd, 0};
    int err = errno;
    if (err == EINPROGRESS || err == EINTR) return {IoStatus::would_block, fd, 0};
    close(fd);
    return {IoStatus::error, -1, err};
}

int io_connect_outcome(int fd) {
    int err = 0;
    socklen_t len = sizeof err;
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1) return errno;
    return err;
}
