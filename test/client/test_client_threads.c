/*
 * test_client_threads.c - several threads calling on one handle at once:
 * each gets the reply to its own request (the original shared one status
 * flag per command, so concurrent callers read each other's answers).
 * Requests whose right answers differ (an online and an offline id) are
 * interleaved from many threads; one wrong answer fails the test.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)

enum { THREADS = 8, ROUNDS = 150 };

struct worker {
    pthread_t t;
    int32_t h;
    int index;
    int wrong;       /* answers that belong to another request */
    int errors;      /* anything else unexpected */
    int sent;
};

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    for (int i = 0; i < ROUNDS; i++) {
        switch ((i + w->index) % 4) {
        case 0: {
            int32_t r = stupid_p2p_check_device_alive(w->h, (const uint8_t *)"online");
            if (r == STUPID_P2P_ERROR_COMMOND)
                w->wrong++;
            else if (r != STUPID_P2P_NO_ERROR)
                w->errors++;
            break;
        }
        case 1: {
            int32_t r = stupid_p2p_check_device_alive(w->h, (const uint8_t *)"offline");
            if (r == STUPID_P2P_NO_ERROR)
                w->wrong++;
            else if (r != STUPID_P2P_ERROR_COMMOND)
                w->errors++;
            break;
        }
        case 2: {
            int32_t r = stupid_p2p_check_alive(w->h, "online", 6);
            if (r == 0)
                w->wrong++;
            else if (r != 1)
                w->errors++;
            r = stupid_p2p_subscribe(w->h, "main", 4); /* own id: reason 4 */
            if (r != STUPID_P2P_BAD_ARGUMENT)
                w->errors++;
            break;
        }
        default: {
            char m[32];
            int n = snprintf(m, sizeof m, "%d:%d", w->index, i);
            if (stupid_p2p_send(w->h, m, (size_t)n) != STUPID_P2P_NO_ERROR)
                w->errors++;
            else
                w->sent++;
            break;
        }
        }
    }
    return NULL;
}

static void test_many_threads_one_handle(void **state)
{
    static struct ct_rec rec; /* static: outlives a failed test */
    ct_rec_init(&rec);
    int32_t h = ct_open(ct_port(state), NULL, 0);
    int32_t other = ct_open(ct_port(state), NULL, 0);
    int32_t sink = ct_open(ct_port(state), &rec, 1);
    ct_ok(stupid_p2p_register(h, "main", 4));
    ct_ok(stupid_p2p_register(other, "online", 6));
    ct_ok(stupid_p2p_subscribe(sink, "main", 4));
    struct worker w[THREADS];
    for (int i = 0; i < THREADS; i++) {
        memset(&w[i], 0, sizeof w[i]);
        w[i].h = h;
        w[i].index = i;
        assert_int_equal(pthread_create(&w[i].t, NULL, worker_main, &w[i]), 0);
    }
    int total = 0;
    for (int i = 0; i < THREADS; i++) {
        pthread_join(w[i].t, NULL);
        assert_int_equal(w[i].wrong, 0);
        assert_int_equal(w[i].errors, 0);
        total += w[i].sent;
    }
    /* Every message arrived, each thread's in its own order. */
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_msgs >= total));
    ct_barrier(sink);
    pthread_mutex_lock(&rec.mu);
    assert_int_equal(rec.n_msgs, total);
    int last[THREADS];
    for (int i = 0; i < THREADS; i++)
        last[i] = -1;
    for (int k = 0; k < rec.n_msgs; k++) {
        int t = -1, i = -1;
        assert_int_equal(sscanf(rec.first[k], "%d:%d", &t, &i), 2);
        assert_true(t >= 0 && t < THREADS);
        assert_true(i > last[t]);
        last[t] = i;
    }
    pthread_mutex_unlock(&rec.mu);
    stupid_p2p_deinit(h);
    stupid_p2p_deinit(other);
    stupid_p2p_deinit(sink);
    ct_rec_destroy(&rec);
}

/* Threads calling on different handles, plus one thread draining with the
 * blocking receive while another drains with recv_data. */
struct drainer {
    pthread_t t;
    int32_t h;
    int want;
    int got;
    int blocking;
};

static void *drainer_main(void *arg)
{
    struct drainer *d = arg;
    int64_t until = ct_now_ms() + CT_WAIT_MS;
    while (d->got < d->want && ct_now_ms() < until) {
        if (d->blocking) {
            stupid_p2p_message_t *m = NULL;
            if (stupid_p2p_recv(d->h, &m, 200) == STUPID_P2P_NO_ERROR) {
                d->got++;
                stupid_p2p_message_free(m);
            }
        } else {
            /* recv_data never waits: a heartbeat round trip paces the
             * loop (and orders it after the deliveries queued so far). */
            (void)stupid_p2p_heart_beat(d->h);
            recv_data_buf_t *b = stupid_p2p_recv_data(d->h);
            if (b) {
                d->got += b->num;
                stupid_p2p_free_recv_data_buf(b);
            }
        }
    }
    return NULL;
}

static void test_concurrent_receivers(void **state)
{
    int32_t pub = ct_open(ct_port(state), NULL, 0);
    int32_t r1 = ct_open(ct_port(state), NULL, 0);
    int32_t r2 = ct_open(ct_port(state), NULL, 0);
    ct_ok(stupid_p2p_register(pub, "pub", 3));
    ct_ok(stupid_p2p_subscribe(r1, "pub", 3));
    ct_ok(stupid_p2p_subscribe(r2, "pub", 3));
    enum { N = 300 };
    struct drainer d1 = {.h = r1, .want = N, .blocking = 1};
    struct drainer d2 = {.h = r2, .want = N, .blocking = 0};
    assert_int_equal(pthread_create(&d1.t, NULL, drainer_main, &d1), 0);
    assert_int_equal(pthread_create(&d2.t, NULL, drainer_main, &d2), 0);
    for (int i = 0; i < N; i++)
        ct_ok(stupid_p2p_send(pub, "m", 1));
    pthread_join(d1.t, NULL);
    pthread_join(d2.t, NULL);
    assert_int_equal(d1.got, N);
    assert_int_equal(d2.got, N);
    stupid_p2p_deinit(pub);
    stupid_p2p_deinit(r1);
    stupid_p2p_deinit(r2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_many_threads_one_handle),
        T(test_concurrent_receivers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
