// test_listener.cpp - unit tests for src/server/listener.{h,cpp}: the
// listening sockets p2pServer opens for --bind. Each returned socket is
// listening, non-blocking and close-on-exec on the address asked for; a
// name is resolved (without duplicates, within the caller's array); an
// address that cannot be bound, or a port in use, is an error with a message
// naming it. Only 127.0.0.1 is connected to; names used resolve from
// /etc/hosts, so no query leaves the machine.
#include <arpa/inet.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <string>

#include "listener.h"

extern "C" {
#include <cmocka.h>
}

namespace {

uint16_t local_port(int fd, int* family) {
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    assert_int_equal(getsockname(fd, reinterpret_cast<struct sockaddr*>(&ss), &len), 0);
    *family = ss.ss_family;
    if (ss.ss_family == AF_INET) return ntohs(reinterpret_cast<struct sockaddr_in*>(&ss)->sin_port);
    return ntohs(reinterpret_cast<struct sockaddr_in6*>(&ss)->sin6_port);
}

void expect_listening(int fd) {
    int on = 0;
    socklen_t len = sizeof on;
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_ACCEPTCONN, &on, &len), 0);
    assert_true(on != 0);
    assert_true((fcntl(fd, F_GETFL) & O_NONBLOCK) != 0);
    assert_true((fcntl(fd, F_GETFD) & FD_CLOEXEC) != 0);
    len = sizeof on;
    assert_int_equal(getsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, &len), 0);
    assert_true(on != 0);
}

// A blocking connect to 127.0.0.1:port succeeds.
void expect_reachable_on_loopback(uint16_t port) {
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(c >= 0);
    struct sockaddr_in in;
    std::memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    in.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    in.sin_port = htons(port);
    assert_int_equal(connect(c, reinterpret_cast<struct sockaddr*>(&in), sizeof in), 0);
    close(c);
}

void test_numeric_address(void**) {
    int fds[4];
    char err[256] = "";
    size_t n = listen_tcp("127.0.0.1", 0, fds, 4, err, sizeof err);
    assert_int_equal(n, 1);
    expect_listening(fds[0]);
    int family = 0;
    uint16_t port = local_port(fds[0], &family);
    assert_int_equal(family, AF_INET);
    assert_true(port != 0);
    expect_reachable_on_loopback(port);

    // The same port again is in use: an error naming the address, not
    // another port.
    int again[4];
    assert_int_equal(listen_tcp("127.0.0.1", port, again, 4, err, sizeof err), 0);
    std::string want = "cannot listen on 127.0.0.1:" + std::to_string(port);
    assert_non_null(std::strstr(err, want.c_str()));
    assert_non_null(std::strstr(err, "in use"));
    close(fds[0]);
}

// No address: one dual-stack socket on [::] (or 0.0.0.0 without IPv6),
// which IPv4 clients reach too.
void test_all_interfaces(void**) {
    int fds[4];
    char err[256] = "";
    size_t n = listen_tcp("", 0, fds, 4, err, sizeof err);
    assert_int_equal(n, 1);
    expect_listening(fds[0]);
    int family = 0;
    uint16_t port = local_port(fds[0], &family);
    if (family == AF_INET6) {
        int v6only = 1;
        socklen_t len = sizeof v6only;
        assert_int_equal(getsockopt(fds[0], IPPROTO_IPV6, IPV6_V6ONLY, &v6only, &len), 0);
        assert_int_equal(v6only, 0);
    }
    expect_reachable_on_loopback(port);
    close(fds[0]);
}

// A name resolves to one socket per distinct address, at most max_fds.
void test_name_resolved(void**) {
    int fds[8];
    char err[256] = "";
    size_t n = listen_tcp("localhost", 0, fds, 8, err, sizeof err);
    assert_true(n >= 1);
    bool v4 = false;
    for (size_t i = 0; i < n; ++i) {
        expect_listening(fds[i]);
        int family = 0;
        uint16_t port = local_port(fds[i], &family);
        if (family == AF_INET) {
            assert_false(v4);  // a duplicate address would be listed twice
            v4 = true;
            expect_reachable_on_loopback(port);
        }
        close(fds[i]);
    }
    assert_true(v4);
    if (n > 1) {
        assert_int_equal(listen_tcp("localhost", 0, fds, 1, err, sizeof err), 1);
        close(fds[0]);
    }
}

// TEST-NET-1 (RFC 5737) is numeric, so nothing is resolved, and is not an
// address of this machine, so it cannot be bound.
void test_unbindable_address(void**) {
    int fds[4];
    char err[256] = "";
    assert_int_equal(listen_tcp("192.0.2.1", 0, fds, 4, err, sizeof err), 0);
    assert_non_null(std::strstr(err, "cannot listen on 192.0.2.1:0"));
    assert_non_null(std::strstr(err, "assign requested address"));
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_numeric_address),
        cmocka_unit_test(test_all_interfaces),
        cmocka_unit_test(test_name_resolved),
        cmocka_unit_test(test_unbindable_address),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
