/*
 * test_p2pclient_episodes.c - p2pClient says one line when its connection
 * is lost, with the cause, and one when it is back, however many attempts
 * the reconnection takes (it used to print the library's BYE and
 * disconnect warnings too, and "connection lost (cannot connect)" at every
 * attempt).
 *
 * The server ($P2P_SERVER) is stopped gracefully (BYE 4), then a listener
 * of the test's own on the same port accepts and drops one of the
 * client's attempts, so that the episode surely holds a failed attempt
 * (there are usually more: refused while the server goes and comes back),
 * then the server comes back. p2pClient ($P2P_CLIENT) runs with its
 * standard input on a pipe and its standard error in a file.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"
#include "p2pclient_child.h"

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)
#define DROPPED_ATTEMPTS 1
/* p2pClient reconnects with the library's default backoff (envelope 200 ms
 * doubling up to 30 s): after a few failed attempts the next one may be
 * seconds away. */
#define RECONNECT_WAIT_MS 60000

static int count_lines_with(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p += strlen(needle))
        n++;
    return n;
}

/* A listener on 127.0.0.1:port that accepts n connections and closes each
 * at once: failed attempts for the client. */
static void drop_attempts(uint16_t port, int n)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(l >= 0);
    int one = 1;
    assert_int_equal(setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one), 0);
    struct sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    a.sin_port = htons(port);
    assert_int_equal(bind(l, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(l, 4), 0);
    for (int i = 0; i < n; i++) {
        struct pollfd p = {.fd = l, .events = POLLIN, .revents = 0};
        assert_int_equal(poll(&p, 1, 3 * CT_WAIT_MS), 1);
        int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
        assert_true(c >= 0);
        close(c);
    }
    close(l);
}

static void test_one_line_per_episode(void **state)
{
    struct p2p_server *srv = *state;
    int bob = tc_connect(srv->port);
    tc_register(bob, "bob", P2P_STATUS_OK);
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)srv->port);
    const char *argv[] = {"p2pClient", "-s", "127.0.0.1", "-p", port, "-m", "alice", "-o", "bob", "-w", "10", NULL};
    static struct child c;
    spawn_client(&c, argv, 0);
    wait_err(&c, "input and receive", CT_WAIT_MS);

    assert_int_equal(p2p_server_stop(srv), 0); /* BYE 4 */
    tc_close(bob);
    /* At once, so that few attempts meet a closed port: each failure
     * doubles the next delay. */
    drop_attempts(srv->port, DROPPED_ATTEMPTS);
    assert_int_equal(p2p_server_restart(srv, NULL), 0);
    wait_err(&c, "connection lost", CT_WAIT_MS);
    wait_err(&c, "reconnected", RECONNECT_WAIT_MS);
    static char err[65536];
    quit_and_read_err(&c, err, sizeof err);
    fprintf(stderr, "---- p2pClient's stderr ----\n%s----\n", err);
    assert_int_equal(count_lines_with(err, "connection lost"), 1);
    assert_non_null(strstr(err, "p2pClient: connection lost (server shutting down), reconnecting\n"));
    assert_int_equal(count_lines_with(err, "reconnected"), 1);
    assert_non_null(strstr(err, "p2pClient: reconnected after ")); /* failed attempts were silent */
    assert_null(strstr(err, "goodbye"));
    assert_null(strstr(err, "disconnected:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_one_line_per_episode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
