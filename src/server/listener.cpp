// listener.cpp - see listener.h.
#include "listener.h"

#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>

#include "io.h"

namespace {

// One listening socket on addr, or -1 with errno set.
int open_listener(int family, const struct sockaddr* addr, socklen_t len, bool dual_stack) {
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd == -1) return -1;
    int one = 1;
    int zero = 0;
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) == -1 ||
        (family == AF_INET6 &&
         setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, dual_stack ? &zero : &one, sizeof one) == -1) ||
        bind(fd, addr, len) == -1 || listen(fd, SOMAXCONN) == -1) {
        int err = errno;
        close(fd);
        errno = err;
        return -1;
    }
    return fd;
}

}  // namespace

size_t listen_tcp(const char* bind_address, uint16_t port, int* fds, size_t max_fds, char* err,
                  size_t err_cap) {
    if (bind_address == nullptr || *bind_address == '\0') {
        struct sockaddr_in6 in6;
        std::memset(&in6, 0, sizeof in6);
        in6.sin6_family = AF_INET6;
        in6.sin6_addr = in6addr_any;
        in6.sin6_port = htons(port);
        int fd = open_listener(AF_INET6, reinterpret_cast<struct sockaddr*>(&in6), sizeof in6, true);
        if (fd == -1 && (errno == EAFNOSUPPORT || errno == EADDRNOTAVAIL)) {
            struct sockaddr_in in4;
            std::memset(&in4, 0, sizeof in4);
            in4.sin_family = AF_INET;
            in4.sin_addr.s_addr = htonl(INADDR_ANY);
            in4.sin_port = htons(port);
            fd = open_listener(AF_INET, reinterpret_cast<struct sockaddr*>(&in4), sizeof in4, false);
        }
        if (fd == -1) {
            std::snprintf(err, err_cap, "cannot listen on port %u: %s", port, strerrordesc_np(errno));
            return 0;
        }
        fds[0] = fd;
        return 1;
    }

    struct addrinfo hints;
    std::memset(&hints, 0, sizeof hints);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    char service[8];
    std::snprintf(service, sizeof service, "%u", port);
    struct addrinfo* res = nullptr;
    int rc = getaddrinfo(bind_address, service, &hints, &res);
    if (rc != 0) {
        std::snprintf(err, err_cap, "cannot resolve bind address '%s': %s", bind_address,
                      gai_strerror(rc));
        return 0;
    }
    size_t count = 0;
    for (struct addrinfo* ai = res; ai != nullptr && count < max_fds; ai = ai->ai_next) {
        // Resolvers may list one address twice (/etc/hosts and DNS).
        bool seen = false;
        for (struct addrinfo* prev = res; prev != ai && !seen; prev = prev->ai_next)
            seen = prev->ai_addrlen == ai->ai_addrlen &&
                   std::memcmp(prev->ai_addr, ai->ai_addr, ai->ai_addrlen) == 0;
        if (seen) continue;
        int fd = open_listener(ai->ai_family, ai->ai_addr, ai->ai_addrlen, false);
        if (fd == -1) {
            char where[64];
            io_format_peer(io_peer_address(ai->ai_addr, ai->ai_addrlen), where, sizeof where);
            std::snprintf(err, err_cap, "cannot listen on %s: %s", where, strerrordesc_np(errno));
            for (size_t i = 0; i < count; ++i) close(fds[i]);
            freeaddrinfo(res);
            return 0;
        }
        fds[count++] = fd;
    }
    freeaddrinfo(res);
    if (count == 0) std::snprintf(err, err_cap, "bind address '%s' has no usable address", bind_address);
    return count;
}
