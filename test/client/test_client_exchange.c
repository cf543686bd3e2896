/*
 * test_client_exchange.c - two handles exchanging data both ways, through
 * the queue (original recv_data and the blocking recv) and through the
 * message callback, in order, byte for byte.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)
#define U8(s) ((const uint8_t *)(s))

static void test_both_ways_queue(void **state)
{
    int32_t a = ct_open(ct_port(state), NULL, 0);
    int32_t b = ct_open(ct_port(state), NULL, 0);
    ct_ok(stupid_p2p_register_device(a, U8("alice")));
    ct_ok(stupid_p2p_register_device(b, U8("bob")));
    ct_ok(stupid_p2p_subscribe_device(a, U8("bob")));
    ct_ok(stupid_p2p_subscribe_device(b, U8("alice")));
    enum { N = 200 };
    for (int i = 0; i < N; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "a->b %d", i);
        ct_ok(stupid_p2p_send_data(a, (uint8_t *)m, n));
        n = snprintf(m, sizeof m, "b->a %d", i);
        ct_ok(stupid_p2p_send_data(b, (uint8_t *)m, n));
    }
    ct_barrier(a);
    ct_barrier(b);
    recv_data_buf_t *ba = stupid_p2p_recv_data(a);
    recv_data_buf_t *bb = stupid_p2p_recv_data(b);
    assert_int_equal(ba->num, N);
    assert_int_equal(bb->num, N);
    for (int i = 0; i < N; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "b->a %d", i);
        assert_int_equal(ba->recv_data[i]->length, n);
        assert_memory_equal(ba->recv_data[i]->data, m, (size_t)n);
        n = snprintf(m, sizeof m, "a->b %d", i);
        assert_int_equal(bb->recv_data[i]->length, n);
        assert_memory_equal(bb->recv_data[i]->data, m, (size_t)n);
    }
    stupid_p2p_free_recv_data_buf(ba);
    stupid_p2p_free_recv_data_buf(bb);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
}

/* recv_data hands out at most 1024 messages per call, oldest first. */
static void test_recv_data_batches(void **state)
{
    stupid_p2p_options_t o;
    ct_options(&o, NULL, 0);
    o.recv_queue_max = 5000;
    int32_t a = ct_open_opts(ct_port(state), &o);
    int32_t b = ct_open_opts(ct_port(state), &o);
    ct_ok(stupid_p2p_register(a, "a", 1));
    ct_ok(stupid_p2p_subscribe(b, "a", 1));
    enum { N = 1500 };
    for (int i = 0; i < N; i++) {
        uint8_t m[4] = {(uint8_t)(i >> 8), (uint8_t)i, 0, 0};
        ct_ok(stupid_p2p_send_data(a, m, 2));
    }
    ct_barrier(b);
    recv_data_buf_t *r1 = stupid_p2p_recv_data(b);
    recv_data_buf_t *r2 = stupid_p2p_recv_data(b);
    assert_int_equal(r1->num, 1024);
    assert_int_equal(r2->num, N - 1024);
    for (int i = 0; i < N; i++) {
        recv_data_t *d = i < 1024 ? r1->recv_data[i] : r2->recv_data[i - 1024];
        assert_int_equal(d->length, 2);
        assert_int_equal(d->data[0] << 8 | d->data[1], i);
    }
    stupid_p2p_free_recv_data_buf(r1);
    stupid_p2p_free_recv_data_buf(r2);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
}

/* The message callback gets every message, in order, with the sender id,
 * and nothing is queued. */
static void test_callback_delivery(void **state)
{
    static struct ct_rec rec; /* static: outlives a failed test */
    ct_rec_init(&rec);
    int32_t a = ct_open(ct_port(state), NULL, 0);
    int32_t c = ct_open(ct_port(state), NULL, 0);
    int32_t b = ct_open(ct_port(state), &rec, 1);
    ct_ok(stupid_p2p_register(a, "pub-a", 5));
    ct_ok(stupid_p2p_register(c, "pub-c", 5));
    ct_ok(stupid_p2p_subscribe(b, "pub-a", 5));
    ct_ok(stupid_p2p_subscribe(b, "pub-c", 5));
    for (int i = 0; i < 50; i++) {
        char m[32];
        int n = snprintf(m, sizeof m, "%d", i);
        ct_ok(stupid_p2p_send(i % 2 ? c : a, m, (size_t)n));
    }
    ct_ok(stupid_p2p_send_to(a, "pub-c", 5, "not for b", 9));
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_msgs >= 50));
    ct_barrier(b);
    ct_barrier(c);
    pthread_mutex_lock(&rec.mu);
    assert_int_equal(rec.n_msgs, 50);
    for (int i = 0; i < 50; i++) {
        char m[32];
        snprintf(m, sizeof m, "%d", i);
        assert_string_equal(rec.first[i], m);
        assert_string_equal(rec.sender[i], i % 2 ? "pub-c" : "pub-a");
        assert_int_equal(rec.sender_len[i], 5);
    }
    assert_int_equal(rec.bad_nul, 0);
    pthread_mutex_unlock(&rec.mu);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(b, &st));
    assert_int_equal(st.queue_length, 0);
    assert_int_equal(st.messages_received, 50);
    recv_data_buf_t *buf = stupid_p2p_recv_data(b);
    assert_int_equal(buf->num, 0);
    stupid_p2p_free_recv_data_buf(buf);
    /* c got the direct message (queued: c has no callback). */
    stupid_p2p_message_t *m = NULL;
    ct_ok(stupid_p2p_recv(c, &m, 0));
    assert_memory_equal(m->data, "not for b", 9);
    assert_string_equal((char *)m->sender, "pub-a");
    stupid_p2p_message_free(m);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
    stupid_p2p_deinit(c);
    ct_rec_destroy(&rec);
}

/* Blocking commands from a callback would wait for the thread running
 * the callback: refused with WRONG_THREAD, not deadlocked. */
static int32_t g_cb_result;
static void cb_calls_back(int32_t h, const uint8_t *s, size_t sl, const uint8_t *d, size_t l, void *u)
{
    (void)s;
    (void)sl;
    (void)d;
    (void)l;
    struct ct_rec *r = u;
    int32_t rc = stupid_p2p_heart_beat(h);
    stupid_p2p_message_t *m = NULL;
    int32_t rc2 = stupid_p2p_recv(h, &m, 100);
    int32_t st = stupid_p2p_get_state(h);
    pthread_mutex_lock(&r->mu);
    g_cb_result = (rc == STUPID_P2P_WRONG_THREAD && rc2 == STUPID_P2P_WRONG_THREAD &&
                   st == STUPID_P2P_STATE_CONNECTED) ? 1 : -1;
    r->n_msgs++;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static void test_callback_cannot_block(void **state)
{
    static struct ct_rec rec; /* static: outlives a failed test */
    ct_rec_init(&rec);
    stupid_p2p_options_t o;
    ct_options(&o, &rec, 1);
    o.on_message = cb_calls_back;
    int32_t a = ct_open(ct_port(state), NULL, 0);
    int32_t b = ct_open_opts(ct_port(state), &o);
    ct_ok(stupid_p2p_register(a, "a", 1));
    ct_ok(stupid_p2p_subscribe(b, "a", 1));
    ct_ok(stupid_p2p_send(a, "x", 1));
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_msgs >= 1));
    assert_int_equal(g_cb_result, 1);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
    ct_rec_destroy(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_both_ways_queue),
        T(test_recv_data_batches),
        T(test_callback_delivery),
        T(test_callback_cannot_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
