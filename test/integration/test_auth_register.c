/*
 * test_auth_register.c - REGISTER and AUTH on a server with an auth file
 * (stupidp2p(7), AUTHORIZATION; p2pServer(8), --auth-file and
 * --auth-required), in both protocol versions:
 *
 *  - REGISTER of a protected id is refused (81 05 in v2, 81 00 in v1) and
 *    the holder stays connected, holding the id, its subscribers told
 *    nothing: the hijack of the original no longer works;
 *  - ids not in the file can be registered as before, unless
 *    --auth-required, which refuses every REGISTER (the original's clients
 *    cannot hold an id) while AUTH works;
 *  - AUTH in a v1 session is 8c 00, whatever it carries;
 *  - re-registering the id a connection holds by AUTH changes nothing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "auth.h"
#include "harness.h"
#include "protocol.h"
#include "v2.h"

static void start(struct tc_auth_server *a, const char *const *extra)
{
    char text[2048] = "";
    tc_auth_line(text, sizeof text, "alice", TC_TOKEN_A, NULL);
    tc_auth_server_start(a, text, extra);
}

static void test_register_protected_refused(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a, NULL);
    int holder = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    int watch = tc_v2_connect(a.srv.port);
    tc_v2_subscribe(watch, "alice", P2P_PRESENCE_ONLINE);
    int v1sub = tc_connect(a.srv.port);
    tc_subscribe(v1sub, "alice", P2P_STATUS_OK);

    int attacker2 = tc_v2_connect(a.srv.port);
    tc_register(attacker2, "alice", P2P_STATUS_NOT_AUTHORIZED);
    int attacker1 = tc_connect(a.srv.port);
    tc_register(attacker1, "alice", 0);
    /* A refused REGISTER keeps the id the connection had. */
    tc_register(attacker1, "mallory", P2P_STATUS_OK);
    tc_register(attacker1, "alice", 0);
    tc_check_alive(holder, "mallory", P2P_STATUS_OK);

    /* The holder is untouched and still the one subscribers hear. */
    assert_true(tc_is_open(holder));
    tc_expect_nothing_pending(watch);
    tc_send_data(holder, "real", 4, P2P_STATUS_OK);
    tc_expect_deliver_str(watch, "alice", "real");
    tc_expect_data(v1sub, "real", 4);
    tc_send_data(attacker2, "fake", 4, P2P_STATUS_NOT_REGISTERED);
    tc_send_data(attacker1, "fake", 4, P2P_STATUS_OK); /* as mallory: nobody listens */
    tc_expect_nothing_pending(watch);
    tc_expect_nothing_pending(v1sub);
    tc_close(attacker1);
    tc_close(attacker2);
    tc_close(v1sub);
    tc_close(watch);
    tc_close(holder);
    tc_auth_server_stop(&a);
}

/* Unlisted ids are open to REGISTER, as on a server without a file. */
static void test_unlisted_ids_register(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a, NULL);
    int v1 = tc_connect(a.srv.port);
    tc_register(v1, "plain", P2P_STATUS_OK);
    int v2 = tc_v2_connect(a.srv.port);
    tc_register(v2, "other", P2P_STATUS_OK);
    tc_check_alive(v2, "plain", P2P_STATUS_OK);
    tc_close(v1);
    tc_close(v2);
    tc_auth_server_stop(&a);
}

/* --auth-required: no REGISTER at all; AUTH of a listed id works. */
static void test_auth_required(void **state)
{
    (void)state;
    static const char *const required[] = {"--auth-required", NULL};
    struct tc_auth_server a;
    start(&a, required);
    int v1 = tc_connect(a.srv.port);
    tc_register(v1, "plain", 0);
    tc_register(v1, "alice", 0);
    int v2 = tc_v2_connect(a.srv.port);
    tc_register(v2, "plain", P2P_STATUS_NOT_AUTHORIZED);
    tc_send_data(v2, "x", 1, P2P_STATUS_NOT_REGISTERED);
    tc_expect_auth(v2, "plain", TC_TOKEN_A, P2P_STATUS_NOT_AUTHORIZED);
    tc_expect_auth(v2, "alice", TC_TOKEN_A, P2P_STATUS_OK);
    tc_check_alive(v1, "alice", P2P_STATUS_OK);
    tc_check_alive(v1, "plain", 0);
    /* Holding the id already: REGISTER of it is not a new claim. */
    tc_register(v2, "alice", P2P_STATUS_OK);
    tc_close(v1);
    tc_close(v2);
    tc_auth_server_stop(&a);
}

/* AUTH does not exist in v1: 8c 00 for every step, also after HELLO 1. */
static void test_auth_in_v1(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a, NULL);
    int fd = tc_connect(a.srv.port);
    uint8_t req[P2P_AUTH_START_MAX], nonce[32] = {0};
    size_t n = p2p_encode_auth_start(req, (const uint8_t *)"alice", 5, nonce);
    tc_send_frame(fd, req, n);
    tc_expect_reply(fd, P2P_CMD_AUTH, 0);
    n = p2p_encode_auth_proof(req, nonce);
    tc_send_frame(fd, req, n);
    tc_expect_reply(fd, P2P_CMD_AUTH, 0);
    tc_send_frame(fd, "\x0c", 1);
    tc_expect_reply(fd, P2P_CMD_AUTH, 0);
    /* v2, authenticate, back to v1: the id stays; AUTH answers 0 again. */
    tc_expect_hello(fd, 2, 0, 2, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    tc_expect_auth(fd, "alice", TC_TOKEN_A, P2P_STATUS_OK);
    tc_expect_hello(fd, 1, 0, 1, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    tc_send_frame(fd, req, n);
    tc_expect_reply(fd, P2P_CMD_AUTH, 0);
    tc_check_alive(fd, "alice", P2P_STATUS_OK);
    tc_close(fd);
    tc_auth_server_stop(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_register_protected_refused),
        cmocka_unit_test(test_unlisted_ids_register),
        cmocka_unit_test(test_auth_required),
        cmocka_unit_test(test_auth_in_v1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
