/*
 * test_client_reconnect.c - the server goes away and comes back: the
 * library notices at once (EOF), reconnects with backoff, registers the id
 * again and renews every subscription before it reports CONNECTED, so that
 * traffic resumes without the application doing anything. Also: commands
 * while disconnected, BYE causes, and a takeover that must not turn into a
 * fight over the id.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)
#define U8(s) ((const uint8_t *)(s))

/* Kills the server, restarts it, and checks that a and b resume. */
static void test_traffic_resumes_after_restart(void **state)
{
    struct p2p_server *srv = *state;
    static struct ct_rec ra, rb; /* static: outlives a failed test */
    ct_rec_init(&ra);
    ct_rec_init(&rb);
    int32_t a = ct_open(srv->port, &ra, 0);
    int32_t b = ct_open(srv->port, &rb, 0);
    ct_ok(stupid_p2p_register_device(a, U8("pub")));
    ct_ok(stupid_p2p_register_device(b, U8("sub")));
    ct_ok(stupid_p2p_subscribe_device(b, U8("pub")));
    ct_ok(stupid_p2p_subscribe_device(a, U8("sub")));
    ct_ok(stupid_p2p_send_data(a, (uint8_t *)"before", 6));
    ct_barrier(b);

    p2p_server_kill(srv);
    /* EOF is noticed at once: no heartbeat needs to be missed. */
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_disconnected >= 1));
    assert_true(CT_WAIT_FOR(&rb, CT_WAIT_MS, rb.n_disconnected >= 1));
    assert_int_equal(ra.causes[0], STUPID_P2P_CAUSE_EOF);
    /* Commands say so rather than hang. */
    int32_t rc = stupid_p2p_send_data(a, (uint8_t *)"lost", 4);
    assert_true(rc == STUPID_P2P_RESTARTING || rc == STUPID_P2P_NET_ERROR);
    assert_true(stupid_p2p_get_state(a) != STUPID_P2P_STATE_CONNECTED);

    assert_int_equal(p2p_server_restart(srv, NULL), 0);
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_connected >= 1));
    assert_true(CT_WAIT_FOR(&rb, CT_WAIT_MS, rb.n_connected >= 1));
    /* CONNECTED means the id and subscriptions are back: no sleep, no
     * register, no subscribe. */
    ct_ok(stupid_p2p_send_data(a, (uint8_t *)"after", 5));
    ct_ok(stupid_p2p_send_data(b, (uint8_t *)"reply", 5));
    ct_barrier(b);
    ct_barrier(a);
    recv_data_buf_t *rbuf = stupid_p2p_recv_data(b);
    assert_int_equal(rbuf->num, 2);
    assert_memory_equal(rbuf->recv_data[0]->data, "before", 6);
    assert_memory_equal(rbuf->recv_data[1]->data, "after", 5);
    stupid_p2p_free_recv_data_buf(rbuf);
    recv_data_buf_t *abuf = stupid_p2p_recv_data(a);
    assert_int_equal(abuf->num, 1);
    assert_memory_equal(abuf->recv_data[0]->data, "reply", 5);
    stupid_p2p_free_recv_data_buf(abuf);
    assert_int_equal(stupid_p2p_check_device_alive(a, U8("sub")), STUPID_P2P_NO_ERROR);

    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(a, &st));
    assert_int_equal(st.reconnects, 1);
    /* EOF, or whatever ended a failed attempt while the server restarted. */
    assert_true(st.last_cause != STUPID_P2P_CAUSE_NONE);
    /* The state sequence: DISCONNECTED, then CONNECTING/DISCONNECTED
     * pairs while the server is down, then CONNECTED last. */
    pthread_mutex_lock(&ra.mu);
    assert_int_equal(ra.states[0], STUPID_P2P_STATE_DISCONNECTED);
    assert_int_equal(ra.states[ra.n_states - 1], STUPID_P2P_STATE_CONNECTED);
    pthread_mutex_unlock(&ra.mu);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
    ct_rec_destroy(&ra);
    ct_rec_destroy(&rb);
}

/* Several restarts in a row, with v2 features (sender ids, presence). */
static void test_repeated_restarts_v2(void **state)
{
    struct p2p_server *srv = *state;
    static struct ct_rec ra, rb; /* static: outlives a failed test */
    ct_rec_init(&ra);
    ct_rec_init(&rb);
    int32_t a = ct_open(srv->port, &ra, 0);
    int32_t b = ct_open(srv->port, &rb, 1);
    ct_ok(stupid_p2p_register(a, "A", 1));
    ct_ok(stupid_p2p_subscribe(b, "A", 1));
    ct_ok(stupid_p2p_subscribe(b, "offline-one", 11));
    for (int round = 0; round < 3; round++) {
        int before = CT_GET(&rb, rb.n_connected), abefore = CT_GET(&ra, ra.n_connected);
        if (round % 2)
            assert_int_equal(p2p_server_stop(srv), 0); /* graceful: BYE 4 */
        else
            p2p_server_kill(srv);
        assert_int_equal(p2p_server_restart(srv, NULL), 0);
        assert_true(CT_WAIT_FOR(&rb, CT_WAIT_MS, rb.n_connected > before));
        assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_connected > abefore));
        char m[16];
        int n = snprintf(m, sizeof m, "round %d", round);
        ct_ok(stupid_p2p_send(a, m, (size_t)n));
        assert_true(CT_WAIT_FOR(&rb, CT_WAIT_MS, rb.n_msgs > round));
        assert_string_equal(rb.first[round], m);
        assert_string_equal(rb.sender[round], "A");
    }
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(b, &st));
    assert_int_equal(st.reconnects, 3);
    /* Graceful stop: the server said why. */
    pthread_mutex_lock(&rb.mu);
    int saw_shutdown = 0;
    for (int i = 0; i < rb.n_states; i++)
        saw_shutdown |= rb.causes[i] == STUPID_P2P_CAUSE_SERVER_SHUTDOWN;
    pthread_mutex_unlock(&rb.mu);
    assert_true(saw_shutdown);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
    ct_rec_destroy(&ra);
    ct_rec_destroy(&rb);
}

/* Another connection takes our id (BYE 1): the library forgets the id and
 * reconnects without it, instead of taking it back forever. */
static void test_takeover_is_not_a_fight(void **state)
{
    static struct ct_rec ra; /* static: outlives a failed test */
    ct_rec_init(&ra);
    int32_t a = ct_open(ct_port(state), &ra, 0);
    ct_ok(stupid_p2p_register(a, "contested", 9));
    int raw = tc_connect(ct_port(state));
    tc_register(raw, "contested", 1);
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_connected >= 1));
    assert_int_equal(ra.causes[0], STUPID_P2P_CAUSE_TAKEN_OVER);
    /* The round trip proves a's restore phase is over and raw kept it. */
    ct_ok(stupid_p2p_heart_beat(a));
    assert_true(tc_is_open(raw));
    tc_check_alive(raw, "contested", 1);
    assert_int_equal(stupid_p2p_send(a, "x", 1), STUPID_P2P_NOT_REGISTERED);
    tc_close(raw);
    stupid_p2p_deinit(a);
    ct_rec_destroy(&ra);
}

/* Reconnect attempts back off: with the server down for a while, the
 * number of attempts stays far below what a tight loop would make. */
static void test_backoff_bounds_attempts(void **state)
{
    struct p2p_server *srv = *state;
    static struct ct_rec ra; /* static: outlives a failed test */
    ct_rec_init(&ra);
    stupid_p2p_options_t o;
    ct_options(&o, &ra, 0);
    o.backoff_initial_ms = 20;
    o.backoff_max_ms = 200;
    int32_t a = ct_open_opts(srv->port, &o);
    p2p_server_kill(srv);
    /* Wait for a few failed attempts (CONNECTING/DISCONNECTED pairs). */
    int64_t t0 = ct_now_ms();
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_disconnected >= 6));
    int64_t elapsed = ct_now_ms() - t0;
    /* Envelopes 20, 40, 80, 160, 200...: the expected total of 5 delays
     * is ~250 ms; a tight loop would take ~0. Only a lower bound that full
     * jitter cannot break by chance is asserted: more than 1 ms. */
    assert_true(elapsed >= 1);
    /* Look under the lock, assert after it: a failed assertion longjmps. */
    int bad_state = -1, bad_cause = 0;
    pthread_mutex_lock(&ra.mu);
    for (int i = 1; i < ra.n_states && bad_state == -1; i++)
        if (ra.states[i] == STUPID_P2P_STATE_DISCONNECTED &&
            ra.causes[i] != STUPID_P2P_CAUSE_CONNECT_FAILED) {
            bad_state = i;
            bad_cause = ra.causes[i];
        }
    pthread_mutex_unlock(&ra.mu);
    if (bad_state != -1)
        fail_msg("state %d: disconnect cause %d, expected CONNECT_FAILED (%d)", bad_state,
                 bad_cause, STUPID_P2P_CAUSE_CONNECT_FAILED);
    int before = CT_GET(&ra, ra.n_connected); /* none while it is down */
    assert_int_equal(p2p_server_restart(srv, NULL), 0);
    assert_true(CT_WAIT_FOR(&ra, CT_WAIT_MS, ra.n_connected > before));
    ct_ok(stupid_p2p_heart_beat(a));
    stupid_p2p_deinit(a);
    ct_rec_destroy(&ra);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_traffic_resumes_after_restart),
        T(test_repeated_restarts_v2),
        T(test_takeover_is_not_a_fight),
        T(test_backoff_bounds_attempts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
