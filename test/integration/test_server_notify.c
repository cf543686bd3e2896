/*
 * test_server_notify.c - the systemd notification protocol (sd_notify(3)),
 * with a datagram socket of the test standing in for systemd: READY=1 once
 * the server listens, a STATUS= line with connections and devices when they
 * change, STOPPING=1 on SIGTERM; both a socket path and an abstract name
 * ("@..."); a NOTIFY_SOCKET that names no socket is not fatal.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "harness.h"

/* A datagram socket bound where NOTIFY_SOCKET will point. */
struct fake_systemd {
    int fd;
    char dir[64];
    char path[108];
};

static void fake_open(struct fake_systemd *s, int abstract)
{
    memset(s, 0, sizeof *s);
    s->fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(s->fd >= 0);
    struct sockaddr_un addr;
    memset(&addr, 0, sizeof addr);
    addr.sun_family = AF_UNIX;
    socklen_t len;
    if (abstract) {
        snprintf(s->path, sizeof s->path, "@p2p-notify-test-%d", (int)getpid());
        memcpy(addr.sun_path, s->path, strlen(s->path));
        addr.sun_path[0] = '\0';
        len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + strlen(s->path));
    } else {
        snprintf(s->dir, sizeof s->dir, "/tmp/p2p-notify-XXXXXX");
        assert_non_null(mkdtemp(s->dir));
        snprintf(s->path, sizeof s->path, "%s/notify", s->dir);
        snprintf(addr.sun_path, sizeof addr.sun_path, "%s", s->path);
        len = sizeof addr;
    }
    assert_int_equal(bind(s->fd, (struct sockaddr *)&addr, len), 0);
    assert_int_equal(setenv("NOTIFY_SOCKET", s->path, 1), 0);
}

static void fake_close(struct fake_systemd *s)
{
    assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
    close(s->fd);
    if (s->dir[0] != '\0') {
        unlink(s->path);
        rmdir(s->dir);
    }
}

/* The next datagram, NUL-terminated, within timeout_ms; fails otherwise. */
static void fake_recv(struct fake_systemd *s, char *buf, size_t cap, int timeout_ms)
{
    struct pollfd p = {s->fd, POLLIN, 0};
    if (poll(&p, 1, timeout_ms) != 1)
        tc_fail("no notification within %d ms", timeout_ms);
    ssize_t n = recv(s->fd, buf, cap - 1, 0);
    assert_true(n > 0);
    buf[n] = '\0';
}

/* Datagrams until one contains want (bounded); fails if none does. */
static void fake_expect(struct fake_systemd *s, const char *want)
{
    char buf[512];
    for (int i = 0; i < 20; i++) {
        fake_recv(s, buf, sizeof buf, TC_WAIT_MS);
        if (strstr(buf, want) != NULL)
            return;
    }
    tc_fail("no notification with '%s' (last: '%s')", want, buf);
}

static void notify_cycle(int abstract)
{
    struct fake_systemd sd;
    fake_open(&sd, abstract);
    struct p2p_server server;
    tc_start_server(&server, NULL);
    char buf[512];
    /* READY comes first, and only once the server listens. */
    fake_recv(&sd, buf, sizeof buf, TC_WAIT_MS);
    if (strncmp(buf, "READY=1\n", 8) != 0)
        tc_fail("first notification is not READY=1: '%s'", buf);
    int a = tc_connect(server.port);
    tc_register(a, "notified", 1);
    fake_expect(&sd, "STATUS=serving: 1 connections, 1 devices");
    tc_stop_server(&server);
    fake_expect(&sd, "STOPPING=1");
    tc_close(a);
    fake_close(&sd);
}

static void test_notify_socket_path(void **state)
{
    (void)state;
    notify_cycle(0);
}

static void test_notify_abstract_name(void **state)
{
    (void)state;
    notify_cycle(1);
}

/* A NOTIFY_SOCKET that is neither a path nor an abstract name: the server
 * serves anyway. */
static void test_bad_notify_socket_not_fatal(void **state)
{
    (void)state;
    assert_int_equal(setenv("NOTIFY_SOCKET", "relative/name", 1), 0);
    struct p2p_server server;
    tc_start_server(&server, NULL);
    int a = tc_connect(server.port);
    assert_true(tc_is_open(a));
    tc_close(a);
    tc_stop_server(&server);
    assert_int_equal(unsetenv("NOTIFY_SOCKET"), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_notify_socket_path),
        cmocka_unit_test(test_notify_abstract_name),
        cmocka_unit_test(test_bad_notify_socket_not_fatal),
    };
    return cmocka_run_group_tests_name("p2pServer systemd notification", tests, NULL, NULL);
}
