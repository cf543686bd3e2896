/*
 * test_client_deinit.c - deinit at awkward moments: while another thread
 * sends on the handle, while messages pour in, while a thread blocks in
 * the receive, from inside a callback, with messages still queued; and
 * many init/deinit cycles. Run under valgrind (see the report) it shows
 * that deinit joins its thread and frees everything. And: once deinit has
 * returned, even from inside a callback, no callback runs any more.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"
#include "v2.h"

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

/* deinit from inside on_message while many more messages wait behind the
 * one being handled, in the same read: no callback may run after deinit
 * has returned. To have them all read at once, b's thread is held in the
 * presence callback (pub coming online) while pub sends them. */
#define FLOOD_MESSAGES 200

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int held;         /* the presence callback is holding the thread */
    int go;           /* the publisher has sent everything           */
    int calls;        /* on_message calls                            */
    int after;        /* of which after deinit had returned          */
    int deinit_done;
} flood = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, 0, 0};

static void cb_flood_presence(int32_t h, const uint8_t *id, size_t id_len, int online, void *u)
{
    (void)h;
    (void)id;
    (void)id_len;
    (void)u;
    if (!online)
        return;
    pthread_mutex_lock(&flood.mu);
    flood.held = 1;
    pthread_cond_broadcast(&flood.cond);
    struct timespec until = ct_deadline(CT_WAIT_MS);
    while (!flood.go)
        if (pthread_cond_timedwait(&flood.cond, &flood.mu, &until) == ETIMEDOUT)
            break;
    pthread_mutex_unlock(&flood.mu);
}

static void cb_flood_message(int32_t h, const uint8_t *s, size_t sl, const uint8_t *d, size_t l, void *u)
{
    (void)s;
    (void)sl;
    (void)d;
    (void)l;
    (void)u;
    pthread_mutex_lock(&flood.mu);
    int first = flood.calls++ == 0;
    flood.after += flood.deinit_done;
    pthread_mutex_unlock(&flood.mu);
    if (!first)
        return;
    stupid_p2p_deinit(h);
    pthread_mutex_lock(&flood.mu);
    flood.deinit_done = 1;
    pthread_cond_broadcast(&flood.cond);
    pthread_mutex_unlock(&flood.mu);
}

static void test_no_callback_after_deinit_from_callback(void **state)
{
    stupid_p2p_options_t o;
    ct_options(&o, NULL, 0);
    o.on_message = cb_flood_message;
    o.on_presence = cb_flood_presence;
    int32_t b = ct_open_opts(ct_port(state), &o);
    int32_t a = ct_open(ct_port(state), NULL, 0);
    ct_ok(stupid_p2p_register(b, "sub", 3));
    ct_ok(stupid_p2p_subscribe(b, "pub", 3)); /* offline yet */
    /* A raw watcher learns when b's connection is gone: after that its
     * thread has ended, and the counts below are final. */
    int watcher = tc_v2_connect(ct_port(state));
    tc_v2_subscribe(watcher, "sub", P2P_PRESENCE_ONLINE);
    ct_ok(stupid_p2p_register(a, "pub", 3));
    assert_true(CT_WAIT_FOR(&flood, CT_WAIT_MS, flood.held));
    for (int i = 0; i < FLOOD_MESSAGES; i++)
        ct_ok(stupid_p2p_send(a, "m", 1));
    pthread_mutex_lock(&flood.mu);
    flood.go = 1;
    pthread_cond_broadcast(&flood.cond);
    pthread_mutex_unlock(&flood.mu);
    assert_true(CT_WAIT_FOR(&flood, CT_WAIT_MS, flood.deinit_done));
    tc_expect_presence(watcher, P2P_PRESENCE_OFFLINE, "sub");
    int calls = CT_GET(&flood, flood.calls), after = CT_GET(&flood, flood.after);
    fprintf(stderr, "  %d on_message call(s), %d after deinit returned\n", calls, after);
    assert_int_equal(after, 0);
    assert_int_equal(calls, 1);
    tc_close(watcher);
    stupid_p2p_deinit(a);
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
        T(test_no_callback_after_deinit_from_callback),
        T(test_init_deinit_cycles),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
