/*
 * test_client_deinit.c - deinit at awkward moments: while another thread
 * sends on the handle, while messages pour in, while a thread blocks in
 * the receive, from inside a callback, with messages still queued; and
 * many init/deinit cycles. Run under valgrind (see the report) it shows
 * that deinit joins its thread and frees everything.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)

struct sender {
    pthread_t t;
    int32_t h;
    int sent;
    int32_t last;   /* the error that ended the loop */
};

static void *sender_main(void *arg)
{
    struct sender *s = arg;
    for (int i = 0; i < 1000000; i++) {
        int32_t r = stupid_p2p_send(s->h, "flowing", 7);
        if (r != STUPID_P2P_NO_ERROR) {
            s->last = r;
            break;
        }
        s->sent++;
    }
    return NULL;
}

/* The sender's own handle is deinitialised under it: its next call (or the
 * one waiting) returns CLOSED or ERROR_COMMOND (unknown handle), never a
 * crash or a hang. */
static void test_deinit_while_sending(void **state)
{
    static struct ct_rec rec; /* static: outlives a failed test */
    ct_rec_init(&rec);
    int32_t a = ct_open(ct_port(state), NULL, 0);
    int32_t b = ct_open(ct_port(state), &rec, 1);
    ct_ok(stupid_p2p_register(a, "a", 1));
    ct_ok(stupid_p2p_subscribe(b, "a", 1));
    struct sender s = {.h = a};
    assert_int_equal(pthread_create(&s.t, NULL, sender_main, &s), 0);
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_msgs >= 100));
    stupid_p2p_deinit(a);
    pthread_join(s.t, NULL);
    assert_true(s.last == STUPID_P2P_CLOSED || s.last == STUPID_P2P_ERROR_COMMOND);
    assert_true(s.sent > 0); /* the last replies may have been cut off */
    stupid_p2p_deinit(b);
    ct_rec_destroy(&rec);
}

/* The receiver is deinitialised while messages pour in (its thread may be
 * inside the message callback). */
static void test_deinit_while_receiving(void **state)
{
    static struct ct_rec rec;
    ct_rec_init(&rec);
    int32_t a = ct_open(ct_port(state), NULL, 0);
    int32_t b = ct_open(ct_port(state), &rec, 1);
    int32_t c = ct_open(ct_port(state), NULL, 0); /* queue, not callback */
    ct_ok(stupid_p2p_register(a, "a", 1));
    ct_ok(stupid_p2p_subscribe(b, "a", 1));
    ct_ok(stupid_p2p_subscribe(c, "a", 1));
    struct sender s = {.h = a};
    assert_int_equal(pthread_create(&s.t, NULL, sender_main, &s), 0);
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_msgs >= 200));
    stupid_p2p_deinit(b);
    stupid_p2p_deinit(c); /* with messages queued: freed */
    /* The sender carries on (the server drops what has no subscriber)
     * until its own handle goes. */
    ct_ok(stupid_p2p_heart_beat(a));
    stupid_p2p_deinit(a);
    pthread_join(s.t, NULL);
    assert_true(s.sent > 0);
    assert_true(s.last == STUPID_P2P_CLOSED || s.last == STUPID_P2P_ERROR_COMMOND);
    ct_rec_destroy(&rec);
}

struct blocked {
    pthread_t t;
    int32_t h;
    int32_t rc;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cond;
};

static void *blocked_main(void *arg)
{
    struct blocked *b = arg;
    pthread_mutex_lock(&b->mu);
    b->started = 1;
    pthread_cond_broadcast(&b->cond);
    pthread_mutex_unlock(&b->mu);
    stupid_p2p_message_t *m = NULL;
    b->rc = stupid_p2p_recv(b->h, &m, -1); /* no limit: only deinit ends it */
    stupid_p2p_message_free(m);
    return NULL;
}

static void test_deinit_wakes_blocked_receive(void **state)
{
    static struct blocked b;
    memset(&b, 0, sizeof b);
    pthread_mutex_init(&b.mu, NULL);
    pthread_cond_init(&b.cond, NULL);
    b.h = ct_open(ct_port(state), NULL, 0);
    assert_int_equal(pthread_create(&b.t, NULL, blocked_main, &b), 0);
    assert_true(CT_WAIT_FOR(&b, CT_WAIT_MS, b.started));
    stupid_p2p_deinit(b.h); /* waits for the receiver to leave the handle */
    pthread_join(b.t, NULL);
    /* CLOSED if it was inside; ERROR_COMMOND if it arrived after. */
    assert_true(b.rc == STUPID_P2P_CLOSED || b.rc == STUPID_P2P_ERROR_COMMOND);
    pthread_mutex_destroy(&b.mu);
    pthread_cond_destroy(&b.cond);
}

/* deinit called from the handle's own callback: it cannot join itself,
 * so the thread finishes the job when the callback returns. */
static void cb_deinit_self(int32_t h, const uint8_t *s, size_t sl, const uint8_t *d, size_t l, void *u)
{
    (void)s;
    (void)sl;
    (void)d;
    (void)l;
    struct ct_rec *r = u;
    stupid_p2p_deinit(h);
    int32_t st = stupid_p2p_get_state(h);
    pthread_mutex_lock(&r->mu);
    r->n_msgs++;
    r->bad_nul = (st == STUPID_P2P_STATE_CLOSED || st == STUPID_P2P_ERROR_COMMOND) ? 0 : 1;
    pthread_cond_broadcast(&r->cond);
    pthread_mutex_unlock(&r->mu);
}

static void test_deinit_from_callback(void **state)
{
    static struct ct_rec rec;
    ct_rec_init(&rec);
    stupid_p2p_options_t o;
    ct_options(&o, &rec, 1);
    o.on_message = cb_deinit_self;
    int32_t a = ct_open(ct_port(state), NULL, 0);
    int32_t b = ct_open_opts(ct_port(state), &o);
    ct_ok(stupid_p2p_register(a, "a", 1));
    ct_ok(stupid_p2p_subscribe(b, "a", 1));
    ct_ok(stupid_p2p_send(a, "bye", 3));
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_msgs >= 1));
    assert_int_equal(rec.bad_nul, 0);
    /* Calls on it now fail cleanly. */
    int32_t rc = stupid_p2p_heart_beat(b);
    assert_true(rc == STUPID_P2P_CLOSED || rc == STUPID_P2P_ERROR_COMMOND);
    /* Its connection goes away: the server sees the id's subscriber
     * leave, and a's traffic is unaffected. */
    ct_ok(stupid_p2p_send(a, "after", 5));
    stupid_p2p_deinit(a);
    ct_rec_destroy(&rec);
}

/* Many cycles, each with traffic and queued messages left behind. */
static void test_init_deinit_cycles(void **state)
{
    int32_t pub = ct_open(ct_port(state), NULL, 0);
    ct_ok(stupid_p2p_register(pub, "pub", 3));
    for (int i = 0; i < 30; i++) {
        int32_t h = ct_open(ct_port(state), NULL, 0);
        ct_ok(stupid_p2p_register(h, "cycler", 6));
        ct_ok(stupid_p2p_subscribe(h, "pub", 3));
        ct_ok(stupid_p2p_send(pub, "queued", 6));
        ct_barrier(h);
        stupid_p2p_deinit(h);
    }
    stupid_p2p_deinit(pub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_deinit_while_sending),
        T(test_deinit_while_receiving),
        T(test_deinit_wakes_blocked_receive),
        T(test_deinit_from_callback),
        T(test_init_deinit_cycles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
