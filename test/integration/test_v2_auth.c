/*
 * test_v2_auth.c - AUTH (stupidp2p(7), AUTH and AUTHENTICATION) against the
 * real server with an auth file: the two steps byte for byte, the server's
 * signature checked by the client, what a wrong token, an unknown id, a
 * step 2 without a step 1 and malformed requests get, three failures
 * closing the connection with BYE 6, a recorded exchange replayed on a new
 * connection failing, AUTH as a takeover (visible to subscribers) and as a
 * change of id, and the log line of a failure (the id escaped, the peer,
 * never the proof). AUTH in v1 sessions, and REGISTER against protected
 * ids: test_auth_register.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "harness.h"
#include "protocol.h"
#include "v2.h"

/* alice and bob are protected (anyone may reach them); "ev\x01l" too. */
static void start(struct tc_auth_server *a)
{
    char text[2048] = "# test_v2_auth\n";
    tc_auth_line(text, sizeof text, "alice", TC_TOKEN_A, NULL);
    tc_auth_line(text, sizeof text, "bob", TC_TOKEN_B, "*");
    tc_auth_line(text, sizeof text, "ev\\x01l", TC_TOKEN_B, NULL);
    tc_auth_server_start(a, text, NULL);
}

/* Step 1 and its challenge, by hand: 35 bytes, 8c 01 01 + 32 bytes of
 * nonce, new every time; then the proof made by the support code. */
static void test_auth_success(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int watch = tc_v2_connect(a.srv.port);
    tc_v2_subscribe(watch, "alice", P2P_PRESENCE_OFFLINE);
    int fd = tc_v2_connect(a.srv.port);
    struct tc_auth_exchange ex1, ex2;
    assert_int_equal(tc_auth(fd, "alice", TC_TOKEN_A, &ex1), P2P_STATUS_OK);
    assert_int_equal(ex1.challenge_len, 35);
    assert_memory_equal(ex1.challenge, "\x8c\x01\x01", 3);
    assert_int_equal(ex1.result_len, 35);
    assert_memory_equal(ex1.result, "\x8c\x01\x02", 3);
    tc_expect_presence(watch, P2P_PRESENCE_ONLINE, "alice");
    tc_check_alive(watch, "alice", P2P_STATUS_OK);

    /* Again on the same connection: same id, a fresh nonce, nothing
     * changes for the subscriber. */
    assert_int_equal(tc_auth(fd, "alice", TC_TOKEN_A, &ex2), P2P_STATUS_OK);
    assert_memory_not_equal(ex1.challenge + 3, ex2.challenge + 3, 32);
    tc_send_data(fd, "hi", 2, P2P_STATUS_OK);
    tc_expect_deliver_str(watch, "alice", "hi");
    tc_expect_nothing_pending(watch);
    tc_close(fd);
    tc_expect_presence(watch, P2P_PRESENCE_OFFLINE, "alice");
    tc_close(watch);
    tc_auth_server_stop(&a);
}

/* A wrong token and an unknown id both get a challenge and then 8c 05; the
 * connection stays, and holds nothing. */
static void test_auth_refused(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int fd = tc_v2_connect(a.srv.port);
    struct tc_auth_exchange ex;
    assert_int_equal(tc_auth(fd, "alice", TC_TOKEN_B, &ex), P2P_STATUS_NOT_AUTHORIZED);
    assert_int_equal(ex.challenge_len, 35); /* the challenge was given */
    assert_int_equal(tc_auth(fd, "nobody", TC_TOKEN_A, &ex), P2P_STATUS_NOT_AUTHORIZED);
    assert_int_equal(ex.challenge_len, 35); /* also for an unknown id */
    assert_true(tc_is_open(fd));
    tc_send_data(fd, "x", 1, P2P_STATUS_NOT_REGISTERED);
    tc_check_alive(fd, "alice", 0);
    tc_close(fd);
    tc_auth_server_stop(&a);
}

/* The third failure closes the connection: 8c 05, then BYE 6. Failures
 * count per connection, whatever the ids and with successes between. */
static void test_three_failures_bye_6(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int fd = tc_v2_connect(a.srv.port);
    tc_expect_auth(fd, "alice", TC_TOKEN_B, P2P_STATUS_NOT_AUTHORIZED);
    tc_expect_auth(fd, "bob", TC_TOKEN_A, P2P_STATUS_NOT_AUTHORIZED);
    tc_expect_auth(fd, "alice", TC_TOKEN_A, P2P_STATUS_OK);
    tc_expect_auth(fd, "mallory", TC_TOKEN_A, P2P_STATUS_NOT_AUTHORIZED);
    tc_expect_bye(fd, P2P_BYE_NOT_AUTHORIZED);
    tc_close(fd);
    /* alice went with the connection. */
    int probe = tc_connect(a.srv.port);
    tc_wait_alive(probe, "alice", 5, 0, TC_WAIT_MS);
    /* A new connection starts again from zero. */
    fd = tc_v2_connect(a.srv.port);
    tc_expect_auth(fd, "alice", TC_TOKEN_B, P2P_STATUS_NOT_AUTHORIZED);
    tc_expect_auth(fd, "alice", TC_TOKEN_A, P2P_STATUS_OK);
    tc_close(fd);
    tc_close(probe);
    tc_auth_server_stop(&a);
}

/* A step 2 with no step 1 before it, or a second step 2 for one challenge,
 * fails (and counts). */
static void test_step_2_needs_a_challenge(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int fd = tc_v2_connect(a.srv.port);
    uint8_t proof[P2P_AUTH_PROOF_REQ_SIZE];
    uint8_t zeros[32] = {0};
    p2p_encode_auth_proof(proof, zeros);
    tc_send_frame(fd, proof, sizeof proof);
    tc_expect_reply(fd, P2P_CMD_AUTH, P2P_STATUS_NOT_AUTHORIZED);
    struct tc_auth_exchange ex;
    assert_int_equal(tc_auth(fd, "alice", TC_TOKEN_A, &ex), P2P_STATUS_OK);
    tc_send_frame(fd, ex.proof, sizeof ex.proof); /* the right proof, again */
    tc_expect_reply(fd, P2P_CMD_AUTH, P2P_STATUS_NOT_AUTHORIZED);
    tc_expect_auth(fd, "alice", TC_TOKEN_B, P2P_STATUS_NOT_AUTHORIZED);
    tc_expect_bye(fd, P2P_BYE_NOT_AUTHORIZED);
    tc_close(fd);
    tc_auth_server_stop(&a);
}

/* An eavesdropper's recording of a successful exchange is worth nothing on
 * a new connection: step 1 replayed gets a new server nonce, and the
 * recorded proof is refused. */
static void test_replayed_exchange_fails(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int victim = tc_v2_connect(a.srv.port);
    struct tc_auth_exchange rec;
    assert_int_equal(tc_auth(victim, "alice", TC_TOKEN_A, &rec), P2P_STATUS_OK);

    int thief = tc_v2_connect(a.srv.port);
    tc_send_frame(thief, rec.start, rec.start_len);
    uint8_t got[64];
    ssize_t n = tc_recv_frame(thief, got, sizeof got, TC_WAIT_MS);
    assert_int_equal(n, 35);
    assert_memory_equal(got, "\x8c\x01\x01", 3);
    assert_memory_not_equal(got + 3, rec.challenge + 3, 32);
    tc_send_frame(thief, rec.proof, sizeof rec.proof);
    tc_expect_reply(thief, P2P_CMD_AUTH, P2P_STATUS_NOT_AUTHORIZED);
    /* The proof alone, without a step 1, fails too. */
    int thief2 = tc_v2_connect(a.srv.port);
    tc_send_frame(thief2, rec.proof, sizeof rec.proof);
    tc_expect_reply(thief2, P2P_CMD_AUTH, P2P_STATUS_NOT_AUTHORIZED);

    /* The victim was not disturbed. */
    assert_true(tc_is_open(victim));
    tc_check_alive(thief, "alice", P2P_STATUS_OK);
    tc_send_data(thief, "x", 1, P2P_STATUS_NOT_REGISTERED);
    tc_close(thief);
    tc_close(thief2);
    tc_close(victim);
    tc_auth_server_stop(&a);
}

/* AUTH of an id another connection holds takes it over, as REGISTER would:
 * BYE 1 to the old holder, PRESENCE offline then online to subscribers. */
static void test_auth_takeover_is_visible(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int watch = tc_v2_connect(a.srv.port);
    tc_v2_subscribe(watch, "alice", P2P_PRESENCE_OFFLINE);
    int v1 = tc_connect(a.srv.port);
    int old = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    tc_expect_presence(watch, P2P_PRESENCE_ONLINE, "alice");
    tc_subscribe(v1, "alice", P2P_STATUS_OK);
    int neu = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    tc_expect_bye(old, P2P_BYE_TAKEN_OVER);
    tc_expect_presence(watch, P2P_PRESENCE_OFFLINE, "alice");
    tc_expect_presence(watch, P2P_PRESENCE_ONLINE, "alice");
    tc_send_data(neu, "new", 3, P2P_STATUS_OK);
    tc_expect_deliver_str(watch, "alice", "new");
    tc_expect_data(v1, "new", 3); /* v1 subscribers just go on */
    tc_expect_nothing_pending(watch);
    tc_close(old);
    tc_close(neu);
    tc_close(v1);
    tc_close(watch);
    tc_auth_server_stop(&a);
}

/* AUTH while holding another id releases it first, as REGISTER does. */
static void test_auth_changes_id(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int watch = tc_v2_connect(a.srv.port);
    int fd = tc_v2_connect(a.srv.port);
    tc_register(fd, "temp", P2P_STATUS_OK);
    tc_v2_subscribe(watch, "temp", P2P_PRESENCE_ONLINE);
    tc_v2_subscribe(watch, "bob", P2P_PRESENCE_OFFLINE);
    tc_expect_auth(fd, "bob", TC_TOKEN_B, P2P_STATUS_OK);
    tc_expect_presence(watch, P2P_PRESENCE_OFFLINE, "temp");
    tc_expect_presence(watch, P2P_PRESENCE_ONLINE, "bob");
    tc_close(fd);
    tc_expect_presence(watch, P2P_PRESENCE_OFFLINE, "bob");
    tc_close(watch);
    tc_auth_server_stop(&a);
}

/* Malformed AUTH requests get 8c 04, change nothing and do not count. */
static void test_malformed_auth(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int fd = tc_v2_connect(a.srv.port);
    uint8_t start_req[P2P_AUTH_START_MAX];
    uint8_t nonce[32];
    memset(nonce, 7, sizeof nonce);
    size_t n = p2p_encode_auth_start(start_req, (const uint8_t *)"alice", 5, nonce);
    static const size_t cuts[] = {1, 2, 3, 8, 39};
    for (size_t i = 0; i < TC_ARRAY_LEN(cuts); i++) {
        tc_send_frame(fd, start_req, cuts[i]);
        tc_expect_reply(fd, P2P_CMD_AUTH, P2P_STATUS_BAD_ARGUMENT);
    }
    uint8_t longer[P2P_AUTH_START_MAX + 1];
    memcpy(longer, start_req, n);
    longer[n] = 0;
    tc_send_frame(fd, longer, n + 1);
    tc_expect_reply(fd, P2P_CMD_AUTH, P2P_STATUS_BAD_ARGUMENT);
    const uint8_t bad_step[] = {0x0c, 0x03, 0x00};
    tc_send_frame(fd, bad_step, sizeof bad_step);
    tc_expect_reply(fd, P2P_CMD_AUTH, P2P_STATUS_BAD_ARGUMENT);
    const uint8_t short_proof[] = {0x0c, 0x02, 0x01};
    tc_send_frame(fd, short_proof, sizeof short_proof);
    tc_expect_reply(fd, P2P_CMD_AUTH, P2P_STATUS_BAD_ARGUMENT);
    tc_expect_auth(fd, "alice", TC_TOKEN_A, P2P_STATUS_OK);
    tc_close(fd);
    tc_auth_server_stop(&a);
}

/* Without an auth file AUTH is unsupported: 8c 06, as before. */
static void test_no_auth_file(void **state)
{
    int fd = tc_v2_connect(tc_port(state));
    struct tc_auth_exchange ex;
    assert_int_equal(tc_auth(fd, "alice", TC_TOKEN_A, &ex), P2P_STATUS_UNSUPPORTED);
    assert_int_equal(ex.challenge_len, 2);
    tc_register(fd, "alice", P2P_STATUS_OK);
    tc_close(fd);
}

/* A failure is logged with the id, escaped, and the peer; never with the
 * proof. An id given in bytes is checked as bytes ("ev\x01l"). */
static void test_failure_log(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int fd = tc_v2_connect(a.srv.port);
    struct tc_auth_exchange ex;
    assert_int_equal(tc_auth_bytes(fd, "ev\x01l", 4, TC_TOKEN_A, &ex), P2P_STATUS_NOT_AUTHORIZED);
    tc_wait_log(&a.srv, "AUTH as \"ev\\x01l\" failed: wrong proof (1 of 3)", 1);
    /* The line names the peer. */
    FILE *f = fopen(a.srv.log_path, "rb");
    assert_non_null(f);
    static char log[1 << 16];
    size_t len = fread(log, 1, sizeof log, f);
    fclose(f);
    const char *line = strstr(log, "AUTH as");
    assert_non_null(line);
    const char *start_of_line = line;
    while (start_of_line > log && start_of_line[-1] != '\n')
        start_of_line--;
    assert_non_null(strstr(start_of_line, "[127.0.0.1:"));
    /* Neither the proof's bytes nor their hex are anywhere in the log. */
    const uint8_t *proof = ex.proof + 2;
    char hex[65];
    for (size_t i = 0; i < 32; i++)
        snprintf(hex + 2 * i, 3, "%02x", proof[i]);
    assert_null(memmem(log, len, proof, 32));
    assert_null(memmem(log, len, proof, 8));
    assert_null(memmem(log, len, hex, 16));
    assert_true(tc_is_open(fd));
    /* The file's spelling is not the id: these 7 bytes are not listed. */
    tc_expect_auth(fd, "ev\\x01l", TC_TOKEN_B, P2P_STATUS_NOT_AUTHORIZED);
    assert_int_equal(tc_auth_bytes(fd, "ev\x01l", 4, TC_TOKEN_A, NULL), P2P_STATUS_NOT_AUTHORIZED);
    tc_expect_bye(fd, P2P_BYE_NOT_AUTHORIZED);
    tc_close(fd);
    fd = tc_v2_connect(a.srv.port);
    assert_int_equal(tc_auth_bytes(fd, "ev\x01l", 4, TC_TOKEN_B, NULL), P2P_STATUS_OK);
    tc_close(fd);
    tc_auth_server_stop(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_success),
        cmocka_unit_test(test_auth_refused),
        cmocka_unit_test(test_three_failures_bye_6),
        cmocka_unit_test(test_step_2_needs_a_challenge),
        cmocka_unit_test(test_replayed_exchange_fails),
        cmocka_unit_test(test_auth_takeover_is_visible),
        cmocka_unit_test(test_auth_changes_id),
        cmocka_unit_test(test_malformed_auth),
        TC_SERVER_TEST(test_no_auth_file),
        cmocka_unit_test(test_failure_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
