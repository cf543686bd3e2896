// test_io.cpp - unit tests for src/server/io.{h,cpp}, the one place where
// socket syscalls meet errno: every result kind of readv, sendmsg and
// accept4 on real loopback sockets, EINTR retried (injected through
// -Wl,--wrap seams, so the real module is linked unchanged), peer errors
// graded, and peer addresses kept and formatted.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <string>

#include "io.h"

extern "C" {
#include <cmocka.h>
}

// ---- seams: each call fails with EINTR while its counter is positive ------

namespace {
int g_eintr_readv = 0;
int g_eintr_sendmsg = 0;
int g_eintr_accept4 = 0;
int g_calls_readv = 0;
int g_calls_sendmsg = 0;
int g_calls_accept4 = 0;
}  // namespace

extern "C" {
ssize_t __real_readv(int fd, const struct iovec* iov, int count);
ssize_t __real_sendmsg(int fd, const struct msghdr* msg, int flags);
int __real_accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags);

ssize_t __wrap_readv(int fd, const struct iovec* iov, int count) {
    ++g_calls_readv;
    if (g_eintr_readv > 0) {
        --g_eintr_readv;
        errno = EINTR;
        return -1;
    }
    return __real_readv(fd, iov, count);
}

ssize_t __wrap_sendmsg(int fd, const struct msghdr* msg, int flags) {
    ++g_calls_sendmsg;
    if (g_eintr_sendmsg > 0) {
        --g_eintr_sendmsg;
        errno = EINTR;
        return -1;
    }
    return __real_sendmsg(fd, msg, flags);
}

int __wrap_accept4(int fd, struct sockaddr* addr, socklen_t* len, int flags) {
    ++g_calls_accept4;
    if (g_eintr_accept4 > 0) {
        --g_eintr_accept4;
        errno = EINTR;
        return -1;
    }
    return __real_accept4(fd, addr, len, flags);
}
}

namespace {

struct Pair {
    int a = -1, b = -1;
    Pair() {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv), 0);
        a = sv[0];
        b = sv[1];
    }
    ~Pair() {
        if (a != -1) close(a);
        if (b != -1) close(b);
    }
};

// A listening TCP socket on 127.0.0.1 with an ephemeral port.
int listen_loopback(uint16_t* port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in in;
    std::memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, reinterpret_cast<struct sockaddr*>(&in), sizeof in), 0);
    assert_int_equal(listen(fd, 8), 0);
    socklen_t len = sizeof in;
    assert_int_equal(getsockname(fd, reinterpret_cast<struct sockaddr*>(&in), &len), 0);
    *port = ntohs(in.sin_port);
    return fd;
}

int connect_loopback(uint16_t port) {
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    struct sockaddr_in in;
    std::memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in.sin_port = htons(port);
    assert_int_equal(connect(fd, reinterpret_cast<struct sockaddr*>(&in), sizeof in), 0);
    return fd;
}

void test_readv_results(void**) {
    Pair p;
    char buf[8];
    struct iovec iov = {buf, sizeof buf};
    IoResult r = io_readv(p.a, &iov, 1);
    assert_int_equal(static_cast<int>(r.status), static_cast<int>(IoStatus::would_block));

    assert_int_equal(write(p.b, "hello", 5), 5);
    g_eintr_readv = 2;
    g_calls_readv = 0;
    r = io_readv(p.a, &iov, 1);
    assert_int_equal(static_cast<int>(r.status), static_cast<int>(IoStatus::ok));
    assert_int_equal(r.bytes, 5);
    assert_memory_equal(buf, "hello", 5);
    assert_int_equal(g_calls_readv, 3);  // two EINTRs retried

    // Two spans filled in order.
    assert_int_equal(write(p.b, "abcdef", 6), 6);
    char x[2], y[8];
    struct iovec two[2] = {{x, sizeof x}, {y, sizeof y}};
    r = io_readv(p.a, two, 2);
    assert_int_equal(r.bytes, 6);
    assert_memory_equal(x, "ab", 2);
    assert_memory_equal(y, "cdef", 4);

    // io_read: the single-buffer form, here on an eventfd.
    int efd = eventfd(3, EFD_NONBLOCK | EFD_CLOEXEC);
    uint64_t v = 0;
    r = io_read(efd, &v, sizeof v);
    assert_int_equal(r.bytes, sizeof v);
    assert_int_equal(v, 3);
    r = io_read(efd, &v, sizeof v);
    assert_int_equal(static_cast<int>(r.status), static_cast<int>(IoStatus::would_block));
    close(efd);

    shutdown(p.b, SHUT_WR);
    r = io_readv(p.a, &iov, 1);
    assert_int_equal(static_cast<int>(r.status), static_cast<int>(IoStatus::eof));

    r = io_readv(-1, &iov, 1);
    assert_int_equal(static_cast<int>(r.status), static_cast<int>(IoStatus::error));
    assert_int_equal(r.err, EBADF);
}

void test_writev_results(void**) {
    Pair p;
    char a[] = "frame", b[] = "-tail";
    struct iovec two[2] = {{a, 5}, {b, 5}};
    g_eintr_sendmsg = 1;
    g_calls_sendmsg = 0;
    IoResult r = io_writev(p.a, two, 2);
    assert_int_equal(static_cast<int>(r.status), static_cast<int>(IoStatus::ok));
    assert_int_equal(r.bytes, 10);
    assert_int_equal(g_calls_sendmsg, 2);
    char got[16];
    assert_int_equal(read(p.b, got, sizeof got), 10);
    assert_memory_equal(got, "frame-tail", 10);

    // Full: a short write, then would_block, nothing lost.
    static char big[1 << 16];
    size_t total = 0;
    struct iovec one = {big, sizeof big};
    for (int i = 0; i < 1000; ++i) {
        r = io_writev(p.a, &one, 1);
        if (r.status != IoStatus::ok) break;
        total += r.bytes;
    }
    assert_int_equal(static_cast<int>(r.status), static_cast<int>(IoStatus::would_block));
    assert_true(total > 0);

    // The peer gone: EPIPE as a result, no SIGPIPE (the test would die).
    close(p.b);
    p.b = -1;
    r = io_writev(p.a, two, 2);
    assert_int_equal(static_cast<int>(r.status), static_cast<int>(IoStatus::error));
    assert_int_equal(r.err, EPIPE);
    assert_true(io_error_is_peer(r.err));
}

void test_accept_and_addresses(void**) {
    uint16_t port = 0;
    int lfd = listen_loopback(&port);
    AcceptResult r = io_accept(lfd);
    assert_int_equal(static_cast<int>(r.status), static_cast<int>(IoStatus::would_block));

    int c = connect_loopback(port);
    g_eintr_accept4 = 1;
    g_calls_accept4 = 0;
    r = io_accept(lfd);
    assert_int_equal(static_cast<int>(r.status), static_cast<int>(IoStatus::ok));
    assert_int_equal(g_calls_accept4, 2);
    // Non-blocking and close-on-exec.
    assert_true((fcntl(r.fd, F_GETFL) & O_NONBLOCK) != 0);
    assert_true((fcntl(r.fd, F_GETFD) & FD_CLOEXEC) != 0);

    // The peer address is the client's.
    PeerAddress peer = io_peer_address(reinterpret_cast<struct sockaddr*>(&r.peer), r.peer_len);
    struct sockaddr_in local;
    socklen_t len = sizeof local;
    assert_int_equal(getsockname(c, reinterpret_cast<struct sockaddr*>(&local), &len), 0);
    char text[64];
    io_format_peer(peer, text, sizeof text);
    std::string want = "127.0.0.1:" + std::to_string(ntohs(local.sin_port));
    assert_string_equal(text, want.c_str());

    // TCP_NODELAY, the half close and close.
    assert_int_equal(io_set_nodelay(r.fd), 0);
    int on = 0;
    len = sizeof on;
    assert_int_equal(getsockopt(r.fd, IPPROTO_TCP, TCP_NODELAY, &on, &len), 0);
    assert_true(on != 0);
    assert_int_equal(io_shutdown_write(r.fd), 0);
    char b;
    assert_int_equal(read(c, &b, 1), 0);  // our FIN reached the client
    assert_int_equal(io_close(r.fd), 0);
    assert_int_equal(io_close(r.fd), EBADF);
    assert_int_equal(io_set_nodelay(-1), EBADF);
    close(c);
    close(lfd);

    r = io_accept(-1);
    assert_int_equal(static_cast<int>(r.status), static_cast<int>(IoStatus::error));
    assert_int_equal(r.err, EBADF);
}

void test_peer_address_formats(void**) {
    char text[64];
    struct sockaddr_in6 in6;
    std::memset(&in6, 0, sizeof in6);
    in6.sin6_family = AF_INET6;
    in6.sin6_port = htons(4040);
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr), 1);
    PeerAddress p = io_peer_address(reinterpret_cast<struct sockaddr*>(&in6), sizeof in6);
    io_format_peer(p, text, sizeof text);
    assert_string_equal(text, "[2001:db8::1]:4040");

    // IPv4-mapped IPv6 (a dual-stack listener) is shown as IPv4.
    assert_int_equal(inet_pton(AF_INET6, "::ffff:10.1.2.3", &in6.sin6_addr), 1);
    p = io_peer_address(reinterpret_cast<struct sockaddr*>(&in6), sizeof in6);
    io_format_peer(p, text, sizeof text);
    assert_string_equal(text, "10.1.2.3:4040");

    // Too short for its family, or another family: unknown.
    p = io_peer_address(reinterpret_cast<struct sockaddr*>(&in6), sizeof(struct sockaddr_in));
    io_format_peer(p, text, sizeof text);
    assert_string_equal(text, "unknown");
    struct sockaddr un;
    std::memset(&un, 0, sizeof un);
    un.sa_family = AF_UNIX;
    p = io_peer_address(&un, sizeof un);
    io_format_peer(p, text, sizeof text);
    assert_string_equal(text, "unknown");

    // Cut to the buffer, NUL-terminated.
    in6.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, "2001:db8::1", &in6.sin6_addr), 1);
    p = io_peer_address(reinterpret_cast<struct sockaddr*>(&in6), sizeof in6);
    char small[6];
    io_format_peer(p, small, sizeof small);
    assert_string_equal(small, "[2001");
}

void test_peer_errors_graded(void**) {
    for (int e : {ECONNRESET, EPIPE, ETIMEDOUT, EHOSTUNREACH, ENETUNREACH, ECONNABORTED})
        assert_true(io_error_is_peer(e));
    for (int e : {EBADF, EINVAL, ENOMEM, ENOBUFS, EFAULT, ENOTSOCK})
        assert_false(io_error_is_peer(e));
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readv_results),
        cmocka_unit_test(test_writev_results),
        cmocka_unit_test(test_accept_and_addresses),
        cmocka_unit_test(test_peer_address_formats),
        cmocka_unit_test(test_peer_errors_graded),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
