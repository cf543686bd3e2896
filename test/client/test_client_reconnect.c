/*
 * test_client_reconnect.c - the server goes away and comes back: the
 * library notices at once (EOF), reconnects with backoff, registers the id
 * again and renews every subscription before it reports CONNECTED, so that
 * traffic resumes without the application doing anything. Also: commands
 * while disconnected, BYE causes, backoff, and a restore that fails being
 * reported once.
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

/* ---- a restore that fails -------------------------------------------------------
 * The second connection's handshake succeeds but the restore's REGISTER
 * cannot be sent (the fake has reset the connection after its replies).
 * The connection must end, and be reported, once: the thread used to go
 * on reading the dead connection when the read that brought the replies
 * had filled its buffer, and reported a second DISCONNECTED.
 *
 * To make that read fill the buffer, the fake holds the client's thread
 * twice in the log callback (on "ignored during the handshake", for
 * frames it sends before its replies) and sends while it waits: first a
 * part of a large ignored frame, so that the buffer is part full, then
 * the rest, the replies and more than fits, and the reset. */
#define HOLDS 2
#define BIG_FRAME 65000u      /* an ignored frame the first read cuts */
#define BIG_PART 60000u       /* bytes of it (header included) sent first */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int held;                 /* times the log callback has held the thread */
    int released;
} hold = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0};

static void holding_log(int32_t h, stupid_p2p_log_level_t level, const char *msg, void *u)
{
    (void)h;
    (void)level;
    (void)u;
    if (strstr(msg, "ignored during the handshake") == NULL)
        return;
    pthread_mutex_lock(&hold.mu);
    if (hold.held < HOLDS) {
        int n = ++hold.held;
        pthread_cond_broadcast(&hold.cond);
        struct timespec until = ct_deadline(CT_WAIT_MS);
        while (hold.released < n)
            if (pthread_cond_timedwait(&hold.cond, &hold.mu, &until) == ETIMEDOUT)
                break;
    }
    pthread_mutex_unlock(&hold.mu);
}

/* The fake's side: waits (bounded) until the thread is held n times. */
static void wait_held(int n)
{
    assert_true(CT_WAIT_FOR(&hold, CT_WAIT_MS, hold.held >= n));
}

static void release_hold(int n)
{
    pthread_mutex_lock(&hold.mu);
    hold.released = n;
    pthread_cond_broadcast(&hold.cond);
    pthread_mutex_unlock(&hold.mu);
}

/* A frame the client ignores in its handshake: an unknown event. */
static size_t ignored_frame(uint8_t *out, uint32_t payload_len)
{
    p2p_frame_header_encode(out, payload_len);
    memset(out + P2P_FRAME_HEADER_SIZE, 0x42, payload_len);
    return P2P_FRAME_HEADER_SIZE + payload_len;
}

static int hook_failing_restore(struct ct_fake *f, int conn, const struct p2p_request *req)
{
    if (f->serial[conn] == 1) {
        if (req->cmd != P2P_CMD_REGISTER)
            return 0;
        ct_fake_reply(f, conn, req->cmd);
        ct_fake_hangup(f, conn); /* the client reconnects and restores "me" */
        return 1;
    }
    if (f->serial[conn] != 2 || (req->cmd != P2P_CMD_HELLO && req->cmd != P2P_CMD_HEARTBEAT))
        return 0;
    if (req->cmd == P2P_CMD_HELLO)
        return 1; /* answered below, with the heartbeat */
    static uint8_t out[400000];
    size_t n = ignored_frame(out, 1);
    (void)ct_fake_raw(f, conn, out, n);
    wait_held(1);
    n = ignored_frame(out, 1);
    size_t big = ignored_frame(out + n, BIG_FRAME);
    (void)ct_fake_raw(f, conn, out, n + BIG_PART);
    release_hold(1);
    wait_held(2);
    n = big - BIG_PART;
    memmove(out, out + ignored_frame(out, 1) + BIG_PART, n);
    uint8_t r[P2P_HELLO_REPLY_SIZE];
    size_t rn = p2p_encode_hello_reply(r, P2P_VERSION_2, 65536, 300);
    p2p_frame_header_encode(out + n, (uint32_t)rn);
    memcpy(out + n + P2P_FRAME_HEADER_SIZE, r, rn);
    n += P2P_FRAME_HEADER_SIZE + rn;
    rn = p2p_encode_reply(r, P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
    p2p_frame_header_encode(out + n, (uint32_t)rn);
    memcpy(out + n + P2P_FRAME_HEADER_SIZE, r, rn);
    n += P2P_FRAME_HEADER_SIZE + rn;
    while (n + 1004 <= sizeof out)
        n += ignored_frame(out + n, 1000);
    size_t sent = ct_fake_raw(f, conn, out, n);
    fprintf(stderr, "  fake: %zu bytes after the second hold, then a reset\n", sent);
    ct_fake_reset(f, conn);
    release_hold(2);
    return 1;
}

static void test_failed_restore_reported_once(void **state)
{
    (void)state;
    static struct ct_fake f;
    static struct ct_rec rec;
    ct_rec_init(&rec);
    ct_fake_defaults(&f);
    f.hook = hook_failing_restore;
    ct_fake_start_cfg(&f, CT_FAKE_V2, -1);
    stupid_p2p_options_t o;
    ct_options(&o, &rec, 0);
    o.on_log = holding_log;
    o.log_level = STUPID_P2P_LOG_DEBUG;
    int32_t h = ct_open_opts(f.port, &o);
    ct_ok(stupid_p2p_register(h, "me", 2));
    /* EOF; the failed restore; then a third connection that works. */
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_connected >= 1));
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
    pthread_mutex_lock(&rec.mu);
    int twice = -1, disconnects = rec.n_disconnected;
    for (int i = 0; i < rec.n_states; i++) {
        fprintf(stderr, "  state %d cause %d\n", rec.states[i], rec.causes[i]);
        if (i > 0 && twice < 0 && rec.states[i] == STUPID_P2P_STATE_DISCONNECTED &&
            rec.states[i - 1] == STUPID_P2P_STATE_DISCONNECTED)
            twice = i;
    }
    pthread_mutex_unlock(&rec.mu);
    assert_int_equal(CT_GET(&hold, hold.held), HOLDS);
    assert_int_equal(twice, -1);
    assert_int_equal(disconnects, 2); /* EOF, then the failed restore */
    ct_rec_destroy(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_traffic_resumes_after_restart),
        T(test_repeated_restarts_v2),
        T(test_backoff_bounds_attempts),
        cmocka_unit_test(test_failed_restore_reported_once),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
