/*
 * test_client_auth.c - the library claims ids with AUTH when it has a token
 * (stupidp2p(3), stupid_p2p_register; stupidp2p(7), AUTH).
 *
 * Against the real server with an auth file: both APIs authenticate, and
 * do again after a restart (the subscriptions renewed after step 2, which
 * the PEERS of the device they name require); a reload that keeps the
 * device keeps the session, one that withdraws it makes the library give
 * the id up, once; a wrong token is refused with NOT_AUTHORIZED and never
 * repeated by the library (the server's log counts the attempts); the
 * server's third-refusal BYE 6 keeps the id the handle held; takeovers
 * are taken back with AUTH. Without an auth file (8c 06) and against an
 * original (v1) server a token makes registering fail with UNSUPPORTED,
 * and no REGISTER goes out in its place, also after a reconnect. A fake
 * server with a wrong signature gets PROTOCOL_ERROR and a closed
 * connection. The new status 5 answers (PEERS, a v1 SEND_TO target) are
 * NOT_AUTHORIZED. And the token never appears in the library's log.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sys/random.h>

#include "auth.h"
#include "auth_proof.h"
#include "client_util.h"

/* ---- the library's log, searched for the tokens ------------------------------ */

static struct {
    pthread_mutex_t mu;
    int lines;
    int leaks; /* lines holding a piece of a token */
} logcap = {PTHREAD_MUTEX_INITIALIZER, 0, 0};

/* Twelve characters of each token: more than any accident could match. */
static int holds_token(const char *s)
{
    char a[13], b[13];
    memcpy(a, TC_TOKEN_A, 12);
    memcpy(b, TC_TOKEN_B, 12);
    a[12] = b[12] = '\0';
    return strstr(s, a) != NULL || strstr(s, b) != NULL;
}

static void cap_log(int32_t h, stupid_p2p_log_level_t level, const char *msg, void *u)
{
    ct_on_log(h, level, msg, u);
    pthread_mutex_lock(&logcap.mu);
    logcap.lines++;
    logcap.leaks += holds_token(msg);
    pthread_mutex_unlock(&logcap.mu);
}

/* Asserts that the library logged something, and never a token. */
static void expect_no_token_logged(void)
{
    pthread_mutex_lock(&logcap.mu);
    int lines = logcap.lines, leaks = logcap.leaks;
    pthread_mutex_unlock(&logcap.mu);
    fprintf(stderr, "  %d line(s) of library log, %d with a token\n", lines, leaks);
    assert_true(lines > 0);
    assert_int_equal(leaks, 0);
}

/* ---- handles ---------------------------------------------------------------- */

/* Options with every log line captured (debug level), and the token (NULL:
 * none). */
static void auth_options(stupid_p2p_options_t *o, struct ct_rec *r, const char *token)
{
    ct_options(o, r, 1);
    o->on_log = cap_log;
    o->log_level = STUPID_P2P_LOG_DEBUG;
    if (token != NULL) {
        o->token = token;
        o->token_len = strlen(token);
    }
}

static int32_t open_with_token(uint16_t port, struct ct_rec *r, const char *token)
{
    stupid_p2p_options_t o;
    auth_options(&o, r, token);
    return ct_open_opts(port, &o);
}

/* State reports with a given state and cause (r->mu held). */
static int reports(const struct ct_rec *r, stupid_p2p_state_t st, stupid_p2p_cause_t cause)
{
    int n = 0;
    for (int i = 0; i < r->n_states; i++)
        n += r->states[i] == st && r->causes[i] == cause;
    return n;
}

/* ---- servers ------------------------------------------------------------------ */

/* alice and bob reach each other only; carol is unlisted. */
static void start_alice_bob(struct tc_auth_server *a)
{
    char text[1024] = "";
    tc_auth_line(text, sizeof text, "alice", TC_TOKEN_A, "bob");
    tc_auth_line(text, sizeof text, "bob", TC_TOKEN_B, "alice");
    tc_auth_server_start(a, text, NULL);
}

static void expect_log(const struct p2p_server *srv, const char *needle, int n)
{
    int got = tc_log_count(srv, needle);
    if (got != n)
        tc_fail("server log: \"%s\" %d times, expected %d", needle, got, n);
}

/* Starts the alice-and-bob server and opens a handle with token (NULL:
 * none) and its recorder on it. */
static int32_t open_on_auth_server(struct tc_auth_server *a, struct ct_rec *r, const char *token)
{
    start_alice_bob(a);
    ct_rec_init(r);
    return open_with_token(a->srv.port, r, token);
}

static void close_on_auth_server(int32_t h, struct tc_auth_server *a, struct ct_rec *r)
{
    stupid_p2p_deinit(h);
    tc_auth_server_stop(a);
    ct_rec_destroy(r);
}

#define AUTHENTICATED(id) "authenticated as \"" id "\""
#define AUTH_FAILED(id) "AUTH as \"" id "\" failed"

/* ---- authentication end to end -------------------------------------------------- */

/* Both APIs claim their ids with AUTH; the devices then reach each other
 * as their PEERS allow, each message naming its sender. */
static void test_auth_end_to_end(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start_alice_bob(&a);
    static struct ct_rec ra, rb;
    ct_rec_init(&ra);
    ct_rec_init(&rb);
    int32_t alice = open_with_token(a.srv.port, &ra, TC_TOKEN_A);
    int32_t bob = open_with_token(a.srv.port, &rb, TC_TOKEN_B);
    ct_ok(stupid_p2p_register(alice, "alice", 5));
    ct_ok(stupid_p2p_register_device(bob, (const uint8_t *)"bob")); /* the original call */
    expect_log(&a.srv, AUTHENTICATED("alice"), 1);
    expect_log(&a.srv, AUTHENTICATED("bob"), 1);
    ct_ok(stupid_p2p_subscribe(alice, "bob", 3));
    ct_ok(stupid_p2p_subscribe(bob, "alice", 5));
    ct_ok(stupid_p2p_send(alice, "hi bob", 6));
    ct_ok(stupid_p2p_send_to(bob, "alice", 5, "hi alice", 8));
    assert_true(CT_WAIT_FOR(&rb, CT_WAIT_MS, rb.n_msgs >= 1));
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_msgs >= 1));
    assert_string_equal(rb.first[0], "hi bob");
    assert_string_equal(rb.sender[0], "alice");
    assert_string_equal(ra.first[0], "hi alice");
    assert_string_equal(ra.sender[0], "bob");
    /* The server has only the verifiers: it holds both ids now. */
    assert_int_equal(stupid_p2p_check_alive(alice, "bob", 3), 1);
    stupid_p2p_deinit(alice);
    close_on_auth_server(bob, &a, &ra);
    ct_rec_destroy(&rb);
    expect_no_token_logged();
}

/* After a server restart the library authenticates the id again, then
 * renews the subscription to bob, which only alice may reach: so the
 * subscription goes out after step 2, and bob's data arrives. */
static void test_auth_again_after_restart(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start_alice_bob(&a);
    const char *args[] = {"--auth-file", a.path, NULL};
    static struct ct_rec ra;
    ct_rec_init(&ra);
    int32_t alice = open_with_token(a.srv.port, &ra, TC_TOKEN_A);
    ct_ok(stupid_p2p_register(alice, "alice", 5));
    ct_ok(stupid_p2p_subscribe(alice, "bob", 3));

    p2p_server_kill(&a.srv);
    assert_int_equal(p2p_server_restart(&a.srv, args), 0);
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_connected >= 1));
    assert_int_equal(CT_GET(&ra, reports(&ra, STUPID_P2P_STATE_CONNECTED, STUPID_P2P_CAUSE_NONE)), 1);
    expect_log(&a.srv, AUTHENTICATED("alice"), 1); /* the new server's log */
    expect_log(&a.srv, "AUTH as", 0);              /* no failure */

    int bob = tc_auth_connect(a.srv.port, "bob", TC_TOKEN_B);
    tc_send_data(bob, "after", 5, P2P_STATUS_OK);
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_msgs >= 1));
    assert_string_equal(ra.first[0], "after");
    assert_string_equal(ra.sender[0], "bob");
    ct_ok(stupid_p2p_send(alice, "x", 1)); /* holds its id */
    tc_close(bob);
    close_on_auth_server(alice, &a, &ra);
    expect_no_token_logged();
}

/* A reload that keeps alice's line keeps her session: no disconnection. */
static void test_reload_keeping_the_device_keeps_the_session(void **state)
{
    (void)state;
    struct tc_auth_server a;
    static struct ct_rec ra;
    int32_t alice = open_on_auth_server(&a, &ra, TC_TOKEN_A);
    ct_ok(stupid_p2p_register(alice, "alice", 5));
    char text[1024] = "";
    tc_auth_line(text, sizeof text, "alice", TC_TOKEN_A, "bob");
    tc_auth_line(text, sizeof text, "bob", TC_TOKEN_B, "alice");
    tc_auth_line(text, sizeof text, "carol", TC_TOKEN_B, NULL);
    tc_write_file(a.path, text, 0600);
    tc_reload(&a.srv, 1);
    ct_ok(stupid_p2p_heart_beat(alice));
    ct_ok(stupid_p2p_send(alice, "still mine", 10));
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(alice, &st));
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(CT_GET(&ra, ra.n_disconnected), 0);
    expect_log(&a.srv, AUTHENTICATED("alice"), 1);
    close_on_auth_server(alice, &a, &ra);
}

/* A reload that removes alice closes her session with BYE 6: the library
 * reconnects without the id and says so once (CONNECTED with
 * NOT_AUTHORIZED); it does not try to authenticate again. */
static void test_reload_withdrawing_the_id_gives_it_up(void **state)
{
    (void)state;
    struct tc_auth_server a;
    static struct ct_rec ra;
    int32_t alice = open_on_auth_server(&a, &ra, TC_TOKEN_A);
    ct_ok(stupid_p2p_register(alice, "alice", 5));
    ct_ok(stupid_p2p_subscribe(alice, "carol", 5)); /* unlisted: anyone may */
    char text[1024] = "";
    tc_auth_line(text, sizeof text, "bob", TC_TOKEN_B, "alice");
    tc_write_file(a.path, text, 0600);
    tc_reload(&a.srv, 1);
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_connected >= 1));
    pthread_mutex_lock(&ra.mu);
    int byes = reports(&ra, STUPID_P2P_STATE_DISCONNECTED, STUPID_P2P_CAUSE_NOT_AUTHORIZED);
    int lost = reports(&ra, STUPID_P2P_STATE_CONNECTED, STUPID_P2P_CAUSE_NOT_AUTHORIZED);
    pthread_mutex_unlock(&ra.mu);
    assert_int_equal(byes, 1);
    assert_int_equal(lost, 1);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(alice, &st));
    assert_int_equal(st.last_cause, STUPID_P2P_CAUSE_NOT_AUTHORIZED);
    assert_int_equal(stupid_p2p_send(alice, "x", 1), STUPID_P2P_NOT_REGISTERED);
    ct_ok(stupid_p2p_heart_beat(alice));
    /* No AUTH after the withdrawal, nor a REGISTER (REGISTER of an unlisted
     * id would succeed: alice would be online). */
    expect_log(&a.srv, "AUTH as", 0);
    expect_log(&a.srv, AUTHENTICATED("alice"), 1);
    assert_int_equal(stupid_p2p_check_alive(alice, "alice", 5), 0);
    /* The subscription came back. */
    int carol = tc_connect(a.srv.port);
    tc_register(carol, "carol", P2P_STATUS_OK);
    tc_send_data(carol, "c", 1, P2P_STATUS_OK);
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_msgs >= 1));
    tc_close(carol);
    close_on_auth_server(alice, &a, &ra);
    expect_no_token_logged();
}

/* ---- refusals ------------------------------------------------------------------------ */

/* A wrong token: NOT_AUTHORIZED from both APIs, one AUTH each in the
 * server's log, and nothing more from the library. */
static void test_wrong_token_is_refused_once(void **state)
{
    (void)state;
    struct tc_auth_server a;
    static struct ct_rec ra;
    int32_t h = open_on_auth_server(&a, &ra, TC_TOKEN_B); /* bob's token */
    assert_int_equal(stupid_p2p_register(h, "alice", 5), STUPID_P2P_NOT_AUTHORIZED);
    expect_log(&a.srv, AUTH_FAILED("alice"), 1);
    assert_int_equal(stupid_p2p_register_device(h, (const uint8_t *)"alice"), STUPID_P2P_NOT_AUTHORIZED);
    expect_log(&a.srv, AUTH_FAILED("alice"), 2);
    /* Round trips, and time for a retry that must not come. */
    for (int i = 0; i < 3; i++)
        ct_ok(stupid_p2p_heart_beat(h));
    expect_log(&a.srv, AUTH_FAILED("alice"), 2);
    expect_log(&a.srv, AUTHENTICATED("alice"), 0);
    assert_int_equal(stupid_p2p_send(h, "x", 1), STUPID_P2P_NOT_REGISTERED);
    assert_int_equal(CT_GET(&ra, ra.n_disconnected), 0); /* two refusals keep the connection */
    close_on_auth_server(h, &a, &ra);
    expect_no_token_logged();
}

/* Three refusals on one connection: the server closes it with BYE 6. That
 * is its count of failures, not a withdrawal of the id the handle holds:
 * the library reconnects and authenticates that id again. */
static void test_third_refusal_keeps_the_held_id(void **state)
{
    (void)state;
    struct tc_auth_server a;
    static struct ct_rec ra;
    int32_t h = open_on_auth_server(&a, &ra, TC_TOKEN_A);
    ct_ok(stupid_p2p_register(h, "alice", 5));
    for (int i = 0; i < (int)P2P_AUTH_MAX_FAILURES; i++)
        assert_int_equal(stupid_p2p_register(h, "bob", 3), STUPID_P2P_NOT_AUTHORIZED);
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_connected >= 1));
    pthread_mutex_lock(&ra.mu);
    int byes = reports(&ra, STUPID_P2P_STATE_DISCONNECTED, STUPID_P2P_CAUSE_NOT_AUTHORIZED);
    int back = reports(&ra, STUPID_P2P_STATE_CONNECTED, STUPID_P2P_CAUSE_NONE);
    pthread_mutex_unlock(&ra.mu);
    assert_int_equal(byes, 1);
    assert_int_equal(back, 1);
    ct_ok(stupid_p2p_send(h, "x", 1)); /* alice again */
    expect_log(&a.srv, AUTHENTICATED("alice"), 2);
    expect_log(&a.srv, AUTH_FAILED("bob"), 3);
    close_on_auth_server(h, &a, &ra);
}

/* A takeover of an authenticated id is taken back with AUTH, once
 * (takeover_retries 1); the second is final (ID_LOST). */
static void test_takeover_is_taken_back_with_auth(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start_alice_bob(&a);
    static struct ct_rec ra;
    ct_rec_init(&ra);
    stupid_p2p_options_t o;
    auth_options(&o, &ra, TC_TOKEN_A);
    /* The count of takeovers settles after two backoff_max_ms of holding
     * the id: long enough here for the second to come first. */
    o.backoff_max_ms = 10000;
    int32_t h = ct_open_opts(a.srv.port, &o);
    ct_ok(stupid_p2p_register(h, "alice", 5));
    int raw = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    tc_expect_closed(raw, CT_WAIT_MS, 1); /* the library took it back */
    tc_close(raw);
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_connected >= 1));
    expect_log(&a.srv, AUTHENTICATED("alice"), 3);
    raw = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS,
                            reports(&ra, STUPID_P2P_STATE_CONNECTED, STUPID_P2P_CAUSE_ID_LOST) == 1));
    assert_true(tc_is_open(raw));
    expect_log(&a.srv, AUTHENTICATED("alice"), 4);
    tc_close(raw);
    close_on_auth_server(h, &a, &ra);
}

/* ---- servers that cannot authenticate ------------------------------------------------ */

/* No auth file: AUTH is answered 8c 06; register says UNSUPPORTED, and
 * no REGISTER went out instead (the id is not online). */
static void test_server_without_auth_file(void **state)
{
    static struct ct_rec r;
    ct_rec_init(&r);
    int32_t h = open_with_token(ct_port(state), &r, TC_TOKEN_A);
    assert_int_equal(stupid_p2p_register(h, "alice", 5), STUPID_P2P_UNSUPPORTED);
    assert_int_equal(stupid_p2p_register_device(h, (const uint8_t *)"alice"), STUPID_P2P_UNSUPPORTED);
    assert_int_equal(stupid_p2p_check_alive(h, "alice", 5), 0);
    /* Without the token, REGISTER as before. */
    ct_ok(stupid_p2p_set_token(h, NULL, 0));
    ct_ok(stupid_p2p_register(h, "alice", 5));
    assert_int_equal(stupid_p2p_check_alive(h, "alice", 5), 1);
    stupid_p2p_deinit(h);
    ct_rec_destroy(&r);
}

/* The server comes back without its auth file: the restore's AUTH gets
 * 8c 06, the id is given up (reported once) and not REGISTERed. */
static void test_restart_without_auth_file_gives_the_id_up(void **state)
{
    (void)state;
    struct tc_auth_server a;
    static struct ct_rec ra;
    int32_t h = open_on_auth_server(&a, &ra, TC_TOKEN_A);
    ct_ok(stupid_p2p_register(h, "alice", 5));
    p2p_server_kill(&a.srv);
    assert_int_equal(p2p_server_restart(&a.srv, NULL), 0);
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_connected >= 1));
    assert_int_equal(CT_GET(&ra, reports(&ra, STUPID_P2P_STATE_CONNECTED, STUPID_P2P_CAUSE_NOT_AUTHORIZED)),
                     1);
    assert_int_equal(stupid_p2p_check_alive(h, "alice", 5), 0);
    assert_int_equal(stupid_p2p_send(h, "x", 1), STUPID_P2P_NOT_REGISTERED);
    close_on_auth_server(h, &a, &ra);
}

/* A v1 session cannot AUTH: with a token, registering is UNSUPPORTED and
 * nothing is sent (protocol_version 1 against the real server). */
static void test_v1_session_with_token(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start_alice_bob(&a);
    static struct ct_rec r;
    ct_rec_init(&r);
    stupid_p2p_options_t o;
    auth_options(&o, &r, TC_TOKEN_A);
    o.protocol_version = 1;
    int32_t h = ct_open_opts(a.srv.port, &o);
    assert_int_equal(stupid_p2p_register(h, "carol", 5), STUPID_P2P_UNSUPPORTED); /* carol: unlisted */
    assert_int_equal(stupid_p2p_register_device(h, (const uint8_t *)"carol"), STUPID_P2P_UNSUPPORTED);
    assert_int_equal(stupid_p2p_check_alive(h, "carol", 5), 0);
    expect_log(&a.srv, "AUTH as", 0);
    expect_log(&a.srv, AUTHENTICATED("carol"), 0);
    close_on_auth_server(h, &a, &r);
}

/* ---- fake servers: the original, and one that lies ------------------------------------ */

#define FAKE_SERIALS 8

struct fake_auth {
    int bad_sig_serial; /* this connection gets a wrong signature (0: none) */
    int original_from;  /* from this connection on, the original (0: never) */
    /* The fake's thread: the open challenge of each slot. */
    uint8_t id[CT_FAKE_CONNS][P2P_ID_MAX];
    size_t id_len[CT_FAKE_CONNS];
    uint8_t client_nonce[CT_FAKE_CONNS][P2P_AUTH_NONCE_SIZE];
    uint8_t server_nonce[CT_FAKE_CONNS][P2P_AUTH_NONCE_SIZE];
    /* Under the fake's mu, per connection serial: */
    int auths[FAKE_SERIALS];
    int registers[FAKE_SERIALS];
};

static int fake_count(struct ct_fake *f, const int *counts)
{
    pthread_mutex_lock(&f->mu);
    int n = 0;
    for (int i = 0; i < FAKE_SERIALS; i++)
        n += counts[i];
    pthread_mutex_unlock(&f->mu);
    return n;
}

/* Answers AUTH as a server with alice's verifier (token A) would, but with
 * a wrong signature on bad_sig_serial; from original_from on ignores HELLO
 * and AUTH, as the original does. CHECK_ALIVE "drop" hangs up. */
static int fake_auth_hook(struct ct_fake *f, int conn, const struct p2p_request *req)
{
    struct fake_auth *fa = f->arg;
    int serial = f->serial[conn] < FAKE_SERIALS ? f->serial[conn] : FAKE_SERIALS - 1;
    pthread_mutex_lock(&f->mu);
    fa->auths[serial] += req->cmd == P2P_CMD_AUTH;
    fa->registers[serial] += req->cmd == P2P_CMD_REGISTER;
    pthread_cond_broadcast(&f->cond);
    pthread_mutex_unlock(&f->mu);
    if (fa->original_from != 0 && serial >= fa->original_from)
        return req->cmd == P2P_CMD_HELLO || req->cmd == P2P_CMD_AUTH;
    if (req->cmd == P2P_CMD_CHECK_ALIVE && req->id_len == 4 && memcmp(req->id, "drop", 4) == 0) {
        ct_fake_hangup(f, conn);
        return 1;
    }
    if (req->cmd != P2P_CMD_AUTH)
        return 0;
    uint8_t out[P2P_AUTH_REPLY_SIZE];
    if (req->step == P2P_AUTH_STEP_START) {
        memcpy(fa->id[conn], req->id, req->id_len);
        fa->id_len[conn] = req->id_len;
        memcpy(fa->client_nonce[conn], req->data, P2P_AUTH_NONCE_SIZE);
        /* Not an assertion: this is the fake's thread. A fixed nonce
         * would do as well for the client. */
        if (getrandom(fa->server_nonce[conn], P2P_AUTH_NONCE_SIZE, 0) != (ssize_t)P2P_AUTH_NONCE_SIZE)
            memset(fa->server_nonce[conn], serial, P2P_AUTH_NONCE_SIZE);
        ct_fake_frame(f, conn, out, p2p_encode_auth_reply(out, P2P_AUTH_STEP_START, fa->server_nonce[conn]));
        return 1;
    }
    struct p2p_auth_keys keys;
    p2p_auth_keys_from_token(TC_TOKEN_A, strlen(TC_TOKEN_A), &keys);
    uint8_t msg[P2P_AUTH_MESSAGE_MAX], sig[P2P_AUTH_PROOF_SIZE];
    size_t len =
        p2p_auth_message(msg, fa->id[conn], fa->id_len[conn], fa->client_nonce[conn], fa->server_nonce[conn]);
    if (!p2p_auth_proof_valid(keys.stored_key, msg, len, req->data)) {
        ct_fake_frame(f, conn, out, p2p_encode_reply(out, P2P_CMD_AUTH, P2P_STATUS_NOT_AUTHORIZED));
        return 1;
    }
    p2p_auth_server_signature(keys.server_key, msg, len, sig);
    if (serial == fa->bad_sig_serial)
        sig[7] ^= 0x20;
    ct_fake_frame(f, conn, out, p2p_encode_auth_reply(out, P2P_AUTH_STEP_PROOF, sig));
    return 1;
}

/* Starts the fake (bad_sig_serial, original_from: see struct fake_auth)
 * and opens a handle with alice's token on it. */
static int32_t fake_auth_open(struct ct_fake *f, struct fake_auth *fa, struct ct_rec *r, int bad_sig_serial,
                              int original_from)
{
    memset(fa, 0, sizeof *fa);
    fa->bad_sig_serial = bad_sig_serial;
    fa->original_from = original_from;
    ct_fake_defaults(f);
    f->hook = fake_auth_hook;
    f->arg = fa;
    ct_fake_start_cfg(f, CT_FAKE_V2, -1);
    ct_rec_init(r);
    return open_with_token(f->port, r, TC_TOKEN_A);
}

static void fake_auth_close(int32_t h, struct ct_fake *f, struct ct_rec *r)
{
    stupid_p2p_deinit(h);
    ct_fake_stop(f);
    ct_rec_destroy(r);
}

/* Registers alice, has the fake hang up, and waits for the reconnection. */
static void alice_then_reconnect(int32_t h, struct ct_rec *r)
{
    ct_ok(stupid_p2p_register(h, "alice", 5));
    assert_int_equal(stupid_p2p_check_alive(h, "drop", 4), STUPID_P2P_NET_ERROR);
    assert_true(CT_WAIT_FOR(r, CT_WAIT_MS, r->n_connected >= 1));
}

/* A server whose signature is wrong: PROTOCOL_ERROR, the connection
 * closed as a bad frame, and the id not claimed again after it. */
static void test_wrong_signature_is_a_protocol_error(void **state)
{
    (void)state;
    static struct fake_auth fa;
    static struct ct_fake f;
    static struct ct_rec r;
    int32_t h = fake_auth_open(&f, &fa, &r, 1, 0);
    assert_int_equal(stupid_p2p_register(h, "alice", 5), STUPID_P2P_PROTOCOL_ERROR);
    assert_true(CT_WAIT_FOR(&r, CT_WAIT_MS, r.n_connected >= 1));
    assert_int_equal(CT_GET(&r, reports(&r, STUPID_P2P_STATE_DISCONNECTED, STUPID_P2P_CAUSE_BAD_FRAME)), 1);
    ct_ok(stupid_p2p_heart_beat(h));
    assert_int_equal(fake_count(&f, fa.auths), 2); /* step 1 and 2, never again */
    assert_int_equal(fake_count(&f, fa.registers), 0);
    fake_auth_close(h, &f, &r);
    expect_no_token_logged();
}

/* After a reconnect a wrong signature ends that connection, and the id is
 * claimed again on the next one (after a backoff), not given up. */
static void test_wrong_signature_after_reconnect_is_retried(void **state)
{
    (void)state;
    static struct fake_auth fa;
    static struct ct_fake f;
    static struct ct_rec r;
    int32_t h = fake_auth_open(&f, &fa, &r, 2, 0);
    alice_then_reconnect(h, &r);
    pthread_mutex_lock(&r.mu);
    int bad = reports(&r, STUPID_P2P_STATE_DISCONNECTED, STUPID_P2P_CAUSE_BAD_FRAME);
    int ok = reports(&r, STUPID_P2P_STATE_CONNECTED, STUPID_P2P_CAUSE_NONE);
    pthread_mutex_unlock(&r.mu);
    assert_int_equal(bad, 1);
    assert_int_equal(ok, 1);
    pthread_mutex_lock(&f.mu);
    int on2 = fa.auths[2], on3 = fa.auths[3];
    pthread_mutex_unlock(&f.mu);
    assert_int_equal(on2, 2);
    assert_int_equal(on3, 2);
    ct_ok(stupid_p2p_send(h, "x", 1));
    fake_auth_close(h, &f, &r);
}

/* An original server: registering with a token is UNSUPPORTED at once,
 * and neither AUTH nor REGISTER reaches the server. */
static void test_original_server_with_token(void **state)
{
    (void)state;
    static struct fake_auth fa;
    static struct ct_fake f;
    static struct ct_rec r;
    int32_t h = fake_auth_open(&f, &fa, &r, 0, 1);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(h, &st));
    assert_int_equal(st.protocol_version, 1);
    assert_int_equal(stupid_p2p_register(h, "alice", 5), STUPID_P2P_UNSUPPORTED);
    assert_int_equal(stupid_p2p_register_device(h, (const uint8_t *)"alice"), STUPID_P2P_UNSUPPORTED);
    ct_ok(stupid_p2p_heart_beat(h));
    assert_int_equal(fake_count(&f, fa.auths), 0);
    assert_int_equal(fake_count(&f, fa.registers), 0);
    fake_auth_close(h, &f, &r);
}

/* The server is replaced by an original one: after the reconnect the id
 * cannot be authenticated: given up, reported once, never REGISTERed. */
static void test_original_server_after_reconnect(void **state)
{
    (void)state;
    static struct fake_auth fa;
    static struct ct_fake f;
    static struct ct_rec r;
    int32_t h = fake_auth_open(&f, &fa, &r, 0, 2);
    alice_then_reconnect(h, &r);
    assert_int_equal(CT_GET(&r, reports(&r, STUPID_P2P_STATE_CONNECTED, STUPID_P2P_CAUSE_NOT_AUTHORIZED)), 1);
    ct_ok(stupid_p2p_heart_beat(h));
    pthread_mutex_lock(&f.mu);
    int auths = fa.auths[2], regs = fa.registers[2];
    pthread_mutex_unlock(&f.mu);
    assert_int_equal(auths, 0);
    assert_int_equal(regs, 0);
    fake_auth_close(h, &f, &r);
}

/* ---- status 5 in the other commands ------------------------------------------------------- */

/* PEERS refusals and a v1 target that does not subscribe to the sender:
 * NOT_AUTHORIZED from the new calls, ERROR_COMMOND from the original ones,
 * and CHECK_ALIVE says offline. */
static void test_refusals_are_not_authorized(void **state)
{
    (void)state;
    struct tc_auth_server a;
    static struct ct_rec r;
    int32_t h = open_on_auth_server(&a, &r, NULL);
    ct_ok(stupid_p2p_register(h, "eve", 3)); /* unlisted: REGISTER */
    int bob = tc_auth_connect(a.srv.port, "bob", TC_TOKEN_B);
    assert_int_equal(stupid_p2p_subscribe(h, "bob", 3), STUPID_P2P_NOT_AUTHORIZED);
    assert_int_equal(stupid_p2p_subscribe_device(h, (const uint8_t *)"bob"), STUPID_P2P_ERROR_COMMOND);
    assert_int_equal(stupid_p2p_send_to(h, "bob", 3, "x", 1), STUPID_P2P_NOT_AUTHORIZED);
    assert_int_equal(stupid_p2p_check_alive(h, "bob", 3), 0);
    /* A protected id cannot be REGISTERed. */
    assert_int_equal(stupid_p2p_register(h, "alice", 5), STUPID_P2P_NOT_AUTHORIZED);
    assert_int_equal(stupid_p2p_register_device(h, (const uint8_t *)"alice"), STUPID_P2P_ERROR_COMMOND);
    /* A v1 session that does not subscribe to eve. */
    int old = tc_connect(a.srv.port);
    tc_register(old, "old", P2P_STATUS_OK);
    assert_int_equal(stupid_p2p_send_to(h, "old", 3, "x", 1), STUPID_P2P_NOT_AUTHORIZED);
    tc_subscribe(old, "eve", P2P_STATUS_OK);
    ct_ok(stupid_p2p_send_to(h, "old", 3, "y", 1));
    tc_expect_data(old, "y", 1);
    tc_close(old);
    tc_close(bob);
    close_on_auth_server(h, &a, &r);
}

/* ---- the token's form and the options struct ----------------------------------------------- */

static void test_token_validation(void **state)
{
    stupid_p2p_options_t o;
    ct_options(&o, NULL, 0);
    const char *bad[] = {"with space", "tab\there", "del\x7f", "caf\xc3\xa9"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        o.token = bad[i];
        o.token_len = strlen(bad[i]);
        assert_int_equal(stupid_p2p_init_ex("127.0.0.1", ct_port(state), &o), STUPID_P2P_BAD_PARAM);
    }
    char long_token[258];
    memset(long_token, 'x', sizeof long_token);
    o.token = long_token;
    o.token_len = 257;
    assert_int_equal(stupid_p2p_init_ex("127.0.0.1", ct_port(state), &o), STUPID_P2P_BAD_PARAM);
    o.token = NULL;
    o.token_len = 5;
    assert_int_equal(stupid_p2p_init_ex("127.0.0.1", ct_port(state), &o), STUPID_P2P_BAD_PARAM);
    o.token = long_token;
    o.token_len = 256; /* the longest */
    int32_t h = ct_open_opts(ct_port(state), &o);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        assert_int_equal(stupid_p2p_set_token(h, bad[i], strlen(bad[i])), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_set_token(h, long_token, 257), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_set_token(h + 1000, "t", 1), STUPID_P2P_ERROR_COMMOND);
    assert_int_equal(stupid_p2p_set_token(0, "t", 1), STUPID_P2P_BAD_PARAM);
    /* The server has no auth file: the token is in force. */
    assert_int_equal(stupid_p2p_register(h, "zed", 3), STUPID_P2P_UNSUPPORTED);
    ct_ok(stupid_p2p_set_token(h, NULL, 0));
    ct_ok(stupid_p2p_register(h, "zed", 3));
    ct_ok(stupid_p2p_set_token(h, "!~", 2)); /* the ends of the range */
    assert_int_equal(stupid_p2p_register(h, "zed", 3), STUPID_P2P_UNSUPPORTED);
    stupid_p2p_deinit(h);

    /* A program built against 0.2 passes a struct without the token: the
     * bytes after it are not read. */
    struct {
        stupid_p2p_options_t o;
        uint8_t poison[64];
    } old;
    memset(&old, 0xA5, sizeof old);
    ct_options(&old.o, NULL, 0);
    old.o.struct_size = (uint32_t)offsetof(stupid_p2p_options_t, token);
    memset(&old.o.token, 0xA5, sizeof old.o.token + sizeof old.o.token_len);
    h = ct_open_opts(ct_port(state), &old.o);
    ct_ok(stupid_p2p_register(h, "zed", 3)); /* REGISTER: no token */
    stupid_p2p_deinit(h);
}

#define A(f) cmocka_unit_test(f)
#define S(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)

int main(void)
{
    const struct CMUnitTest tests[] = {
        A(test_auth_end_to_end),
        A(test_auth_again_after_restart),
        A(test_reload_keeping_the_device_keeps_the_session),
        A(test_reload_withdrawing_the_id_gives_it_up),
        A(test_wrong_token_is_refused_once),
        A(test_third_refusal_keeps_the_held_id),
        A(test_takeover_is_taken_back_with_auth),
        S(test_server_without_auth_file),
        A(test_restart_without_auth_file_gives_the_id_up),
        A(test_v1_session_with_token),
        A(test_wrong_signature_is_a_protocol_error),
        A(test_wrong_signature_after_reconnect_is_retried),
        A(test_original_server_with_token),
        A(test_original_server_after_reconnect),
        A(test_refusals_are_not_authorized),
        S(test_token_validation),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
