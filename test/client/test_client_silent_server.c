/*
 * test_client_silent_server.c - servers that stop answering. A fake server
 * (a thread in this test, on 127.0.0.1) answers the handshake and then
 * goes silent: the library must notice that its heartbeats go unanswered,
 * drop the connection and reconnect (and restore its id). A server that
 * never answers, or closes at once, makes init fail within its bounds. A
 * server that answers nothing but keeps trickling bytes is as dead as a
 * silent one: liveness comes from replies, not from bytes.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"

static void fast_options(stupid_p2p_options_t *o, struct ct_rec *rec)
{
    ct_options(o, rec, 0);
    o->heartbeat_interval_ms = 100;
    o->heartbeat_max_missed = 3;
    o->command_timeout_ms = 500;
    o->backoff_initial_ms = 20;
    o->backoff_max_ms = 100;
}

static void test_heartbeat_loss_reconnects(void **state)
{
    (void)state;
    static struct ct_fake f; /* static: outlives a failed test */
    static struct ct_rec rec;
    ct_rec_init(&rec);
    /* Per connection: HELLO, HEARTBEAT, REGISTER answered, then nothing. */
    ct_fake_start(&f, CT_FAKE_V2, 3);
    stupid_p2p_options_t o;
    fast_options(&o, &rec);
    int32_t h = stupid_p2p_init_ex("127.0.0.1", f.port, &o);
    assert_true(h > 0);
    ct_ok(stupid_p2p_register(h, "quiet", 5));

    /* Silence from now on: heartbeats are missed, the connection dropped. */
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_disconnected >= 1));
    assert_int_equal(rec.causes[0], STUPID_P2P_CAUSE_HEARTBEAT_LOST);
    assert_true(CT_WAIT_FOR(&f, CT_WAIT_MS, f.accepts >= 2 && f.closed >= 1));
    /* The new connection gets the handshake and the restore REGISTER
     * answered: CONNECTED again. */
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_connected >= 1));
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(h, &st));
    assert_true(st.reconnects >= 1);
    /* And it keeps doing it: a second loss, a third connection. */
    assert_true(CT_WAIT_FOR(&f, CT_WAIT_MS, f.accepts >= 3));
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
    ct_rec_destroy(&rec);
}

/* Answers the handshake and REGISTER, then sends one byte every 20 ms of
 * a frame that never ends, and answers nothing: any-byte liveness kept
 * such a connection "up" for ever while every command failed. */
static void test_trickling_server_is_dead(void **state)
{
    (void)state;
    static struct ct_fake f;
    static struct ct_rec rec;
    ct_rec_init(&rec);
    ct_fake_defaults(&f);
    f.trickle_ms = 20;
    ct_fake_start_cfg(&f, CT_FAKE_V2, 3);
    stupid_p2p_options_t o;
    fast_options(&o, &rec); /* heartbeats every 100 ms, 3 may go unanswered */
    int32_t h = stupid_p2p_init_ex("127.0.0.1", f.port, &o);
    assert_true(h > 0);
    ct_ok(stupid_p2p_register(h, "trickle", 7));
    /* A command into the trickle returns within the command timeout. */
    int32_t rc = stupid_p2p_check_alive(h, "x", 1);
    assert_true(rc == STUPID_P2P_TIMEOUT || rc == STUPID_P2P_NET_ERROR);
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_disconnected >= 1));
    assert_int_equal(rec.causes[0], STUPID_P2P_CAUSE_HEARTBEAT_LOST);
    uint64_t trickled = CT_GET(&f, f.trickled);
    fprintf(stderr, "  %llu byte(s) trickled, connection dropped for unanswered heartbeats\n",
            (unsigned long long)trickled);
    assert_true(trickled >= 3);
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
    ct_rec_destroy(&rec);
}

/* A command sent into the silence returns (NET_ERROR: no reply in time, or
 * the connection was dropped under it), it does not hang. */
static void test_command_into_silence_returns(void **state)
{
    (void)state;
    static struct ct_fake f;
    static struct ct_rec rec;
    ct_rec_init(&rec);
    ct_fake_start(&f, CT_FAKE_V2, 2);
    stupid_p2p_options_t o;
    fast_options(&o, &rec);
    o.heartbeat_interval_ms = 2000; /* let the command time out first */
    int32_t h = stupid_p2p_init_ex("127.0.0.1", f.port, &o);
    assert_true(h > 0);
    assert_int_equal(stupid_p2p_heart_beat(h), STUPID_P2P_NET_ERROR);
    assert_int_equal(stupid_p2p_check_alive(h, "x", 1), STUPID_P2P_TIMEOUT);
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
    ct_rec_destroy(&rec);
}

/* Accepts, never answers: init fails (the handshake times out). */
static void test_init_against_mute_server(void **state)
{
    (void)state;
    static struct ct_fake f;
    ct_fake_start(&f, CT_FAKE_MUTE, -1);
    stupid_p2p_options_t o;
    fast_options(&o, NULL);
    assert_int_equal(stupid_p2p_init_ex("127.0.0.1", f.port, &o), STUPID_P2P_NET_ERROR);
    /* The library closed its connection on the way out. */
    assert_true(CT_WAIT_FOR(&f, CT_WAIT_MS, f.closed >= 1));
    ct_fake_stop(&f);
}

/* Accepts and closes: init fails. */
static void test_init_against_closing_server(void **state)
{
    (void)state;
    static struct ct_fake f;
    ct_fake_start(&f, CT_FAKE_CLOSE, -1);
    assert_int_equal(stupid_p2p_init((const uint8_t *)"127.0.0.1", f.port), STUPID_P2P_NET_ERROR);
    ct_fake_stop(&f);
}

/* The original server ignores HELLO: the library falls back to v1 (and
 * refuses SEND_TO, which the original would never answer). */
static void test_original_server_fallback(void **state)
{
    (void)state;
    static struct ct_fake f;
    ct_fake_start(&f, CT_FAKE_ORIGINAL, -1);
    int32_t h = stupid_p2p_init((const uint8_t *)"127.0.0.1", f.port);
    assert_true(h > 0);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(h, &st));
    assert_int_equal(st.protocol_version, 1);
    assert_int_equal(st.server_idle_timeout_s, 0);
    ct_ok(stupid_p2p_register_device(h, (const uint8_t *)"old"));
    ct_ok(stupid_p2p_subscribe_device(h, (const uint8_t *)"other"));
    ct_ok(stupid_p2p_send_data(h, (uint8_t *)"hi", 2));
    assert_int_equal(stupid_p2p_send_to(h, "other", 5, "x", 1), STUPID_P2P_UNSUPPORTED);
    ct_ok(stupid_p2p_heart_beat(h));
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_heartbeat_loss_reconnects),
        cmocka_unit_test(test_trickling_server_is_dead),
        cmocka_unit_test(test_command_into_silence_returns),
        cmocka_unit_test(test_init_against_mute_server),
        cmocka_unit_test(test_init_against_closing_server),
        cmocka_unit_test(test_original_server_fallback),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
