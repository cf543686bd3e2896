/*
 * test_client_queue.c - the receive queue is bounded, in messages and in
 * bytes; what does not fit is dropped, counted in the stats and logged
 * (once per episode), never silently; and it takes messages again once
 * drained.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)

static pthread_mutex_t log_mu = PTHREAD_MUTEX_INITIALIZER;
static int log_full, log_room;

static void count_log(int32_t h, stupid_p2p_log_level_t level, const char *msg, void *u)
{
    (void)h;
    (void)level;
    (void)u;
    pthread_mutex_lock(&log_mu);
    if (strstr(msg, "receive queue full"))
        log_full++;
    if (strstr(msg, "room again"))
        log_room++;
    pthread_mutex_unlock(&log_mu);
}

static void test_overflow_counted(void **state)
{
    stupid_p2p_options_t o;
    ct_options(&o, NULL, 0);
    o.recv_queue_max = 10;
    o.on_log = count_log;
    int32_t a = ct_open(ct_port(state), NULL, 0);
    int32_t b = ct_open_opts(ct_port(state), &o);
    ct_ok(stupid_p2p_register(a, "a", 1));
    ct_ok(stupid_p2p_subscribe(b, "a", 1));
    for (int i = 0; i < 25; i++) {
        char m[8];
        int n = snprintf(m, sizeof m, "%d", i);
        ct_ok(stupid_p2p_send(a, m, (size_t)n));
    }
    ct_barrier(b);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(b, &st));
    assert_int_equal(st.messages_received, 10);
    assert_int_equal(st.messages_dropped, 15);
    assert_int_equal(st.queue_length, 10);
    pthread_mutex_lock(&log_mu);
    assert_int_equal(log_full, 1); /* one line per episode */
    pthread_mutex_unlock(&log_mu);
    /* The oldest are kept; the newest were dropped. */
    recv_data_buf_t *buf = stupid_p2p_recv_data(b);
    assert_int_equal(buf->num, 10);
    for (int i = 0; i < 10; i++) {
        char m[8];
        int n = snprintf(m, sizeof m, "%d", i);
        assert_int_equal(buf->recv_data[i]->length, n);
        assert_memory_equal(buf->recv_data[i]->data, m, (size_t)n);
    }
    stupid_p2p_free_recv_data_buf(buf);
    /* Room again: messages are taken, and the end of the episode logged. */
    ct_ok(stupid_p2p_send(a, "again", 5));
    stupid_p2p_message_t *m = NULL;
    ct_ok(stupid_p2p_recv(b, &m, CT_WAIT_MS));
    assert_memory_equal(m->data, "again", 5);
    stupid_p2p_message_free(m);
    /* The line is logged after the message is queued: once the thread has
     * handled the next frame, it has been. */
    ct_barrier(b);
    pthread_mutex_lock(&log_mu);
    assert_int_equal(log_room, 1);
    pthread_mutex_unlock(&log_mu);
    ct_ok(stupid_p2p_get_stats(b, &st));
    assert_int_equal(st.messages_dropped, 15);
    assert_int_equal(st.messages_received, 11);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
}

static void test_byte_bound(void **state)
{
    stupid_p2p_options_t o;
    ct_options(&o, NULL, 0);
    o.recv_queue_max_bytes = 1000;
    int32_t a = ct_open(ct_port(state), NULL, 0);
    int32_t b = ct_open_opts(ct_port(state), &o);
    ct_ok(stupid_p2p_register(a, "a", 1));
    ct_ok(stupid_p2p_subscribe(b, "a", 1));
    uint8_t big[300];
    memset(big, 'z', sizeof big);
    for (int i = 0; i < 5; i++)
        ct_ok(stupid_p2p_send(a, big, sizeof big));
    ct_barrier(b);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(b, &st));
    assert_int_equal(st.queue_length, 3);
    assert_int_equal(st.messages_dropped, 2);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b); /* frees the 3 still queued */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_overflow_counted),
        T(test_byte_bound),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
