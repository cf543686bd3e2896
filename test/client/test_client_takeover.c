/*
 * test_client_takeover.c - two holders of one id must not fight forever.
 *
 * When another connection takes the id over (v2: BYE 1; v1: the server
 * closes ours without a word, and the id is found online at the next
 * connection), the library takes it back after a backoff that grows with
 * every takeover in a row, and after takeover_retries of them gives it up:
 * the next CONNECTED carries STUPID_P2P_CAUSE_ID_LOST. Against the real
 * server: a raw connection that keeps taking the id (v2), and two library
 * handles on v1, which used to take the id from each other for ever.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)
#define FIGHT_ROUNDS_MAX 20
#define DEFAULT_RETRIES 1 /* takeover_retries, as stupidp2p(3) documents it */

/* CONNECTED reports that came with ID_LOST (r->mu held). */
static int id_lost_reports(const struct ct_rec *r)
{
    int n = 0;
    for (int i = 0; i < r->n_states; i++)
        n += r->states[i] == STUPID_P2P_STATE_CONNECTED && r->causes[i] == STUPID_P2P_CAUSE_ID_LOST;
    return n;
}

/* Disconnections with a given cause (r->mu held). */
static int disconnects_by(const struct ct_rec *r, stupid_p2p_cause_t cause)
{
    int n = 0;
    for (int i = 0; i < r->n_states; i++)
        n += r->states[i] == STUPID_P2P_STATE_DISCONNECTED && r->causes[i] == cause;
    return n;
}

/* 1 once the server has closed fd (the library took the id back), 0 if it
 * is still open. Does not block. */
static int raw_closed(int fd)
{
    uint8_t b[64];
    ssize_t n = recv(fd, b, sizeof b, MSG_DONTWAIT);
    if (n == 0 || (n == -1 && (errno == ECONNRESET || errno == EPIPE)))
        return 1;
    if (n > 0)
        fail_msg("fd %d: an unexpected frame on the raw fighter", fd);
    return 0;
}

/* A raw v1 connection takes id; then waits (bounded) until the library has
 * either taken it back (the server closes the raw connection: returns 1)
 * or given it up (want_lost ID_LOST reports: returns 0, *kept holds the
 * raw connection, still open). */
static int raw_takes_over(uint16_t port, const char *id, struct ct_rec *r, int want_lost, int *kept)
{
    int raw = tc_connect(port);
    tc_register(raw, id, P2P_STATUS_OK);
    int64_t until = ct_now_ms() + CT_WAIT_MS;
    while (ct_now_ms() < until) {
        struct pollfd p = {.fd = raw, .events = POLLIN, .revents = 0};
        (void)poll(&p, 1, 20);
        if (p.revents && raw_closed(raw)) {
            tc_close(raw);
            return 1;
        }
        if (CT_GET(r, id_lost_reports(r)) >= want_lost) {
            *kept = raw;
            return 0;
        }
    }
    fail_msg("the library neither took \"%s\" back nor gave it up", id);
    return -1;
}

/* A handle that holds "contested", with takeover_retries (-1: default). */
static int32_t open_holder(void **state, struct ct_rec *r, int retries)
{
    stupid_p2p_options_t o;
    ct_options(&o, r, 0);
    assert_int_equal(o.takeover_retries, DEFAULT_RETRIES);
    if (retries >= 0)
        o.takeover_retries = retries;
    int32_t h = ct_open_opts(ct_port(state), &o);
    ct_ok(stupid_p2p_register(h, "contested", 9));
    return h;
}

/* v2: the library takes the id back takeover_retries times, after a
 * growing backoff, then gives it up and says so; the other holder keeps
 * it. With 3 retries, to see the count go up. */
static void test_v2_takes_back_then_gives_up(void **state)
{
    static struct ct_rec ra; /* static: outlives a failed test */
    ct_rec_init(&ra);
    int32_t a = open_holder(state, &ra, 3);
    int takeovers = 0, raw = -1;
    while (takeovers < FIGHT_ROUNDS_MAX) {
        takeovers++;
        if (!raw_takes_over(ct_port(state), "contested", &ra, 1, &raw))
            break;
    }
    fprintf(stderr, "  %d takeover(s) by the raw connection, then the library gave up\n", takeovers);
    assert_int_equal(takeovers, 4);
    pthread_mutex_lock(&ra.mu);
    int byes = disconnects_by(&ra, STUPID_P2P_CAUSE_TAKEN_OVER), lost = id_lost_reports(&ra);
    pthread_mutex_unlock(&ra.mu);
    assert_int_equal(byes, 4);
    assert_int_equal(lost, 1);
    /* The raw connection keeps the id; the handle runs without one. */
    ct_ok(stupid_p2p_heart_beat(a));
    assert_true(tc_is_open(raw));
    tc_check_alive(raw, "contested", 1);
    assert_int_equal(stupid_p2p_send(a, "x", 1), STUPID_P2P_NOT_REGISTERED);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(a, &st));
    assert_int_equal(st.last_cause, STUPID_P2P_CAUSE_ID_LOST);
    tc_close(raw);
    stupid_p2p_deinit(a);
    ct_rec_destroy(&ra);
}

/* takeover_retries 0: the first takeover is final (no fight at all). */
static void test_no_retries_gives_up_at_once(void **state)
{
    static struct ct_rec ra;
    ct_rec_init(&ra);
    int32_t a = open_holder(state, &ra, 0);
    int raw = -1;
    assert_int_equal(raw_takes_over(ct_port(state), "contested", &ra, 1, &raw), 0);
    ct_ok(stupid_p2p_heart_beat(a));
    assert_true(tc_is_open(raw));
    assert_int_equal(stupid_p2p_send(a, "x", 1), STUPID_P2P_NOT_REGISTERED);
    tc_close(raw);
    stupid_p2p_deinit(a);
    ct_rec_destroy(&ra);
}

/* The application registering the id itself starts the count over: with
 * one retry, takeover, retake, register, takeover and retake again. */
static void test_register_resets_the_count(void **state)
{
    static struct ct_rec ra;
    ct_rec_init(&ra);
    int32_t a = open_holder(state, &ra, 1);
    int raw = -1;
    assert_int_equal(raw_takes_over(ct_port(state), "contested", &ra, 1, &raw), 1);
    ct_wait_state(a, &ra, STUPID_P2P_STATE_CONNECTED, CT_WAIT_MS);
    ct_ok(stupid_p2p_register(a, "contested", 9));
    assert_int_equal(raw_takes_over(ct_port(state), "contested", &ra, 1, &raw), 1);
    /* Without the reset this second takeover would have been the last. */
    ct_wait_state(a, &ra, STUPID_P2P_STATE_CONNECTED, CT_WAIT_MS);
    assert_int_equal(raw_takes_over(ct_port(state), "contested", &ra, 1, &raw), 0);
    tc_close(raw);
    stupid_p2p_deinit(a);
    ct_rec_destroy(&ra);
}

/* v1 has no BYE: two handles on one id used to take it from each other at
 * every reconnect, for ever. Now one gives up, and the other keeps it. */
static void test_v1_two_handles_stop_fighting(void **state)
{
    static struct ct_rec ra, rb;
    ct_rec_init(&ra);
    ct_rec_init(&rb);
    stupid_p2p_options_t o;
    ct_options(&o, &ra, 0);
    o.protocol_version = 1;
    int32_t a = ct_open_opts(ct_port(state), &o);
    ct_options(&o, &rb, 0);
    o.protocol_version = 1;
    int32_t b = ct_open_opts(ct_port(state), &o);
    ct_ok(stupid_p2p_register(a, "twin", 4));
    ct_ok(stupid_p2p_register(b, "twin", 4)); /* the first takeover */
    int64_t t0 = ct_now_ms();
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, id_lost_reports(&ra) >= 1) ||
                CT_WAIT_FOR(&rb, 1, id_lost_reports(&rb) >= 1));
    int32_t loser = CT_GET(&ra, id_lost_reports(&ra)) ? a : b;
    int32_t winner = loser == a ? b : a;
    struct ct_rec *rw = loser == a ? &rb : &ra;
    ct_wait_state(winner, rw, STUPID_P2P_STATE_CONNECTED, CT_WAIT_MS);
    int eof_a = CT_GET(&ra, disconnects_by(&ra, STUPID_P2P_CAUSE_EOF));
    int eof_b = CT_GET(&rb, disconnects_by(&rb, STUPID_P2P_CAUSE_EOF));
    fprintf(stderr, "  %d takeover(s) in %lld ms, then handle %s gave the id up\n", eof_a + eof_b,
            (long long)(ct_now_ms() - t0), loser == a ? "a" : "b");
    /* b's first registration, then at most takeover_retries + 1 each. */
    assert_true(eof_a + eof_b <= 2 * (DEFAULT_RETRIES + 1));
    /* Settled: the winner holds the id, the loser none. */
    assert_int_equal(stupid_p2p_check_alive(loser, "twin", 4), 1);
    int before = CT_GET(rw, rw->n_disconnected);
    ct_ok(stupid_p2p_heart_beat(winner));
    assert_int_equal(stupid_p2p_send(loser, "x", 1), STUPID_P2P_ERROR_COMMAND); /* v1: status 0 */
    ct_ok(stupid_p2p_send(winner, "x", 1));
    assert_int_equal(CT_GET(rw, rw->n_disconnected), before);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
    ct_rec_destroy(&ra);
    ct_rec_destroy(&rb);
}

/* v1, a server restart: EOF on a connection holding the id, but nobody
 * else holds it: not a takeover (the id comes back, nothing is given up). */
static void test_v1_restart_is_not_a_takeover(void **state)
{
    struct p2p_server *srv = *state;
    static struct ct_rec ra;
    ct_rec_init(&ra);
    stupid_p2p_options_t o;
    ct_options(&o, &ra, 0);
    o.protocol_version = 1;
    o.takeover_retries = 0; /* one takeover would be final */
    int32_t a = ct_open_opts(srv->port, &o);
    ct_ok(stupid_p2p_register(a, "solo", 4));
    for (int round = 0; round < 2; round++) {
        int before = CT_GET(&ra, ra.n_connected);
        assert_int_equal(p2p_server_stop(srv), 0);
        assert_int_equal(p2p_server_restart(srv, NULL), 0);
        assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_connected > before));
    }
    assert_int_equal(CT_GET(&ra, id_lost_reports(&ra)), 0);
    int raw = tc_connect(srv->port);
    tc_check_alive(raw, "solo", 1);
    tc_close(raw);
    stupid_p2p_deinit(a);
    ct_rec_destroy(&ra);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_v2_takes_back_then_gives_up),
        T(test_no_retries_gives_up_at_once),
        T(test_register_resets_the_count),
        T(test_v1_two_handles_stop_fighting),
        T(test_v1_restart_is_not_a_takeover),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
