// io.cpp - see io.h.
#include "io.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

IoResult io_read(int fd, void* buf, size_t n) {
    struct iovec span = {buf, n};
    return io_readv(fd, &span, 1);
}

IoResult io_readv(int fd, const struct iovec* iov, int count) {
    for (;;) {
        ssize_t n = readv(fd, iov, count);
        if (n > 0) return {IoStatus::ok, static_cast<size_t>(n), 0};
        if (n == 0) return {IoStatus::eof, 0, 0};
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) return {IoStatus::would_block, 0, 0};
        return {IoStatus::error, 0, err};
    }
}

IoResult io_writev(int fd, const struct iovec* iov, int count) {
    struct msghdr msg;
    std::memset(&msg, 0, sizeof msg);
    msg.msg_iov = const_cast<struct iovec*>(iov);
    msg.msg_iovlen = static_cast<size_t>(count);
    for (;;) {
        ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);
        if (n >= 0) return {IoStatus::ok, static_cast<size_t>(n), 0};
        int err = errno;
        if (err == EINTR) continue;
        if (err == EAGAIN || err == EWOULDBLOCK) return {IoStatus::would_block, 0, 0};
        return {IoStatus::error, 0, err};
    }
}

AcceptResult io_accept(int listen_fd) {
    AcceptResult r;
    std::memset(&r, 0, sizeof r);
    for (;;) {
        r.peer_len = sizeof r.peer;
        int fd = accept4(listen_fd, reinterpret_cast<struct sockaddr*>(&r.peer), &r.peer_len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd != -1) {
            r.status = IoStatus::ok;
            r.fd = fd;
            return r;
        }
        int err = errno;
        switch (err) {
            case EINTR:
            // accept(2): these are errors of the pending connection, already
            // gone; Linux passes them on and wants the call retried.
            case ECONNABORTED:
            case EPROTO:
            case ENETDOWN:
            case ENOPROTOOPT:
            case EHOSTDOWN:
            case ENONET:
            case EHOSTUNREACH:
            case EOPNOTSUPP:
            case ENETUNREACH:
                continue;
            case EAGAIN:
#if EWOULDBLOCK != EAGAIN
            case EWOULDBLOCK:
#endif
                r.status = IoStatus::would_block;
                return r;
            default:
                r.status = IoStatus::error;
                r.err = err;
                r.fd = -1;
                return r;
        }
    }
}

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

int io_shutdown_write(int fd) { return shutdown(fd, SHUT_WR) == -1 ? errno : 0; }

int io_set_nodelay(int fd) {
    int one = 1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1 ? errno : 0;
}

int io_close(int fd) { return close(fd) == -1 ? errno : 0; }

int io_datagram_socket(int family, int* err) {
    int fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) *err = errno;
    return fd;
}

int io_send_datagram(int fd, const void* buf, size_t len, const struct sockaddr* to,
                     socklen_t to_len) {
    for (;;) {
        if (sendto(fd, buf, len, MSG_NOSIGNAL, to, to_len) != -1) return 0;
        if (errno != EINTR) return errno;
    }
}

bool io_error_is_peer(int err) {
    switch (err) {
        case ECONNRESET:
        case EPIPE:
        case ETIMEDOUT:
        case EHOSTUNREACH:
        case ENETUNREACH:
        case ECONNABORTED:
            return true;
        default:
            return false;
    }
}

PeerAddress io_peer_address(const struct sockaddr* addr, socklen_t len) {
    PeerAddress p;
    if (addr->sa_family == AF_INET && len >= sizeof(struct sockaddr_in)) {
        const auto* in = reinterpret_cast<const struct sockaddr_in*>(addr);
        std::memcpy(p.bytes, &in->sin_addr, 4);
        p.port = ntohs(in->sin_port);
        p.family = AF_INET;
    } else if (addr->sa_family == AF_INET6 && len >= sizeof(struct sockaddr_in6)) {
        const auto* in6 = reinterpret_cast<const struct sockaddr_in6*>(addr);
        p.port = ntohs(in6->sin6_port);
        if (IN6_IS_ADDR_V4MAPPED(&in6->sin6_addr)) {
            std::memcpy(p.bytes, &in6->sin6_addr.s6_addr[12], 4);
            p.family = AF_INET;
        } else {
            std::memcpy(p.bytes, &in6->sin6_addr, 16);
            p.family = AF_INET6;
        }
    }
    return p;
}

void io_format_peer(const PeerAddress& peer, char* out, size_t cap) {
    char host[INET6_ADDRSTRLEN] = "?";
    if (peer.family == AF_INET) {
        inet_ntop(AF_INET, peer.bytes, host, sizeof host);
        std::snprintf(out, cap, "%s:%u", host, peer.port);
    } else if (peer.family == AF_INET6) {
        inet_ntop(AF_INET6, peer.bytes, host, sizeof host);
        std::snprintf(out, cap, "[%s]:%u", host, peer.port);
    } else {
        std::snprintf(out, cap, "unknown");
    }
}
