/*
 * test_client_api.c - every call of the library against the real server:
 * the original API's return values, the new calls with the server's
 * reasons, parameter checks, init failures, strerror, state and stats.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>

#include "client_util.h"

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)
#define U8(s) ((const uint8_t *)(s))

static void test_init_bad_params(void **state)
{
    (void)state;
    assert_int_equal(stupid_p2p_init(NULL, 4040), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_init(U8(""), 4040), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_init(U8("127.0.0.1"), 0), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_init(U8("127.0.0.1"), 70000), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_init(U8("127.0.0.1"), -1), STUPID_P2P_BAD_PARAM);
    stupid_p2p_options_t o;
    stupid_p2p_options_init(&o);
    o.heartbeat_interval_ms = 0;
    assert_int_equal(stupid_p2p_init_ex("127.0.0.1", 4040, &o), STUPID_P2P_BAD_PARAM);
    stupid_p2p_options_init(&o);
    o.struct_size = 0;
    assert_int_equal(stupid_p2p_init_ex("127.0.0.1", 4040, &o), STUPID_P2P_BAD_PARAM);
    stupid_p2p_options_init(&o);
    o.protocol_version = 3;
    assert_int_equal(stupid_p2p_init_ex("127.0.0.1", 4040, &o), STUPID_P2P_BAD_PARAM);
}

/* The first connection cannot be made: an error, no handle, nothing left
 * behind (valgrind checks the leak part in test_client_deinit). */
/* An older program's smaller options struct: what it has is used, the
 * rest defaults. */
static void test_init_older_options(void **state)
{
    stupid_p2p_options_t o;
    stupid_p2p_options_init(&o);
    assert_int_equal(o.struct_size, sizeof o);
    o.protocol_version = 1;
    o.on_message = (stupid_p2p_message_cb)1; /* beyond struct_size: unread */
    o.struct_size = (uint32_t)offsetof(stupid_p2p_options_t, protocol_version);
    int32_t h = stupid_p2p_init_ex("127.0.0.1", ct_port(state), &o);
    assert_true(h > 0);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(h, &st));
    assert_int_equal(st.protocol_version, 2); /* the default, not 1 */
    ct_ok(stupid_p2p_heart_beat(h));
    stupid_p2p_deinit(h);
}

/* A refused connection is NET_ERROR, and stupid_p2p_connect_error says
 * why in words (errno's, not "network error"). */
static void test_init_connection_refused(void **state)
{
    /* A port nobody listens on: the server's, after it stopped. */
    struct p2p_server *srv = *state;
    uint16_t port = srv->port;
    assert_int_equal(p2p_server_stop(srv), 0);
    assert_int_equal(stupid_p2p_init(U8("127.0.0.1"), port), STUPID_P2P_NET_ERROR);
    assert_non_null(stupid_p2p_connect_error(0));
    assert_string_equal(stupid_p2p_connect_error(0), "connection refused");
    assert_int_equal(p2p_server_restart(srv, NULL), 0);
    int32_t h = stupid_p2p_init(U8("127.0.0.1"), port);
    assert_true(h > 0);
    assert_null(stupid_p2p_connect_error(0)); /* this thread's last init worked */
    assert_null(stupid_p2p_connect_error(h));
    stupid_p2p_deinit(h);
}

/* A handle's reconnect attempts keep their cause too, until one works. */
static void test_reconnect_error_kept(void **state)
{
    struct p2p_server *srv = *state;
    static struct ct_rec rec; /* static: outlives a failed test */
    ct_rec_init(&rec);
    int32_t h = ct_open(srv->port, &rec, 0);
    assert_int_equal(p2p_server_stop(srv), 0);
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_disconnected >= 2)); /* BYE, then a refusal */
    const char *why = stupid_p2p_connect_error(h);
    assert_non_null(why);
    assert_string_equal(why, "connection refused");
    assert_int_equal(p2p_server_restart(srv, NULL), 0);
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_connected >= 1));
    assert_null(stupid_p2p_connect_error(h));
    assert_null(stupid_p2p_connect_error(h + 1000)); /* unknown handle */
    stupid_p2p_deinit(h);
    ct_rec_destroy(&rec);
}

static void test_init_bad_host(void **state)
{
    int32_t rc = stupid_p2p_init(U8("no-such-host.invalid"), ct_port(state));
    assert_true(rc == STUPID_P2P_BAD_PARAM || rc == STUPID_P2P_NET_ERROR);
    /* An address that is not one, as the original refused. */
    rc = stupid_p2p_init(U8("300.1.2.3"), ct_port(state));
    assert_true(rc == STUPID_P2P_BAD_PARAM || rc == STUPID_P2P_NET_ERROR);
}

/* Host names resolve (localhost may give ::1 first, which nobody listens
 * on here: the next address is tried). */
static void test_init_hostname(void **state)
{
    int32_t h = stupid_p2p_init(U8("localhost"), ct_port(state));
    assert_true(h > 0);
    assert_int_equal(stupid_p2p_get_state(h), STUPID_P2P_STATE_CONNECTED);
    ct_ok(stupid_p2p_heart_beat(h));
    stupid_p2p_deinit(h);
}

/* No process-wide side effects: no signal handler is installed (the
 * original set one for SIGPIPE); writes use MSG_NOSIGNAL instead. */
static void test_no_signal_handlers(void **state)
{
    struct sigaction before, after;
    assert_int_equal(sigaction(SIGPIPE, NULL, &before), 0);
    int32_t h = stupid_p2p_init(U8("127.0.0.1"), ct_port(state));
    assert_true(h > 0);
    ct_ok(stupid_p2p_heart_beat(h));
    assert_int_equal(sigaction(SIGPIPE, NULL, &after), 0);
    assert_true(before.sa_handler == after.sa_handler);
    assert_true(after.sa_handler == SIG_DFL);
    /* SIGPIPE is fatal by default here: a write to a closed connection
     * would kill this test. The server goes away under a 60 KB send. */
    ct_ok(stupid_p2p_register(h, "pipe", 4));
    static uint8_t big[60000];
    p2p_server_kill((struct p2p_server *)*state);
    for (int i = 0; i < 20; i++)
        (void)stupid_p2p_send(h, big, sizeof big);
    stupid_p2p_deinit(h);
    assert_int_equal(p2p_server_restart((struct p2p_server *)*state, NULL), 0);
}

static void test_handles_are_distinct(void **state)
{
    int32_t a = stupid_p2p_init(U8("127.0.0.1"), ct_port(state));
    int32_t b = stupid_p2p_init(U8("127.0.0.1"), ct_port(state));
    assert_true(a > 0 && b > 0 && a != b);
    stupid_p2p_deinit(a);
    int32_t c = stupid_p2p_init(U8("127.0.0.1"), ct_port(state));
    assert_true(c > 0 && c != a && c != b); /* never reused */
    stupid_p2p_deinit(b);
    stupid_p2p_deinit(c);
}

static void test_original_calls(void **state)
{
    int32_t a = stupid_p2p_init(U8("127.0.0.1"), ct_port(state));
    int32_t b = stupid_p2p_init(U8("127.0.0.1"), ct_port(state));
    assert_true(a > 0 && b > 0);
    assert_int_equal(stupid_p2p_heart_beat(a), STUPID_P2P_NO_ERROR);
    assert_int_equal(stupid_p2p_register_device(a, U8("dev-a")), STUPID_P2P_NO_ERROR);
    assert_int_equal(stupid_p2p_register_device(b, U8("dev-b")), STUPID_P2P_NO_ERROR);
    assert_int_equal(stupid_p2p_check_device_alive(a, U8("dev-b")), STUPID_P2P_NO_ERROR);
    assert_int_equal(stupid_p2p_check_device_alive(a, U8("nobody")), STUPID_P2P_ERROR_COMMOND);
    assert_int_equal(stupid_p2p_subscribe_device(b, U8("dev-a")), STUPID_P2P_NO_ERROR);
    /* The server's v2 reason (own id: 4) still reads as ERROR_COMMOND. */
    assert_int_equal(stupid_p2p_subscribe_device(a, U8("dev-a")), STUPID_P2P_ERROR_COMMOND);
    uint8_t msg[] = "hello";
    assert_int_equal(stupid_p2p_send_data(a, msg, 5), STUPID_P2P_NO_ERROR);
    ct_barrier(b);
    recv_data_buf_t *buf = stupid_p2p_recv_data(b);
    assert_non_null(buf);
    assert_int_equal(buf->num, 1);
    assert_int_equal(buf->recv_data[0]->length, 5);
    assert_memory_equal(buf->recv_data[0]->data, "hello", 5);
    stupid_p2p_free_recv_data_buf(buf);
    buf = stupid_p2p_recv_data(b);
    assert_non_null(buf);
    assert_int_equal(buf->num, 0);
    stupid_p2p_free_recv_data_buf(buf);
    assert_int_equal(stupid_p2p_unsubscribe_device(b, U8("dev-a")), STUPID_P2P_NO_ERROR);
    assert_int_equal(stupid_p2p_unsubscribe_device(b, U8("dev-a")), STUPID_P2P_NO_ERROR);
    assert_int_equal(stupid_p2p_send_data(a, msg, 5), STUPID_P2P_NO_ERROR);
    ct_barrier(b);
    buf = stupid_p2p_recv_data(b);
    assert_int_equal(buf->num, 0);
    stupid_p2p_free_recv_data_buf(buf);
    assert_int_equal(stupid_p2p_unregister_device(a), STUPID_P2P_NO_ERROR);
    assert_int_equal(stupid_p2p_check_device_alive(b, U8("dev-a")), STUPID_P2P_ERROR_COMMOND);
    /* Without an id, SEND fails. */
    assert_int_equal(stupid_p2p_send_data(a, msg, 5), STUPID_P2P_ERROR_COMMOND);
    assert_int_equal(stupid_p2p_unregister_device(a), STUPID_P2P_NO_ERROR);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
}

static void test_original_bad_params(void **state)
{
    int32_t a = stupid_p2p_init(U8("127.0.0.1"), ct_port(state));
    assert_true(a > 0);
    char longid[300];
    memset(longid, 'x', sizeof longid - 1);
    longid[sizeof longid - 1] = 0;
    assert_int_equal(stupid_p2p_register_device(a, NULL), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_register_device(a, U8(longid)), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_subscribe_device(a, NULL), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_unsubscribe_device(a, NULL), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_check_device_alive(a, NULL), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_send_data(a, NULL, 3), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_send_data(a, (uint8_t *)"x", -1), STUPID_P2P_BAD_PARAM);
    /* An empty id goes to the server, which refuses it, as before. */
    assert_int_equal(stupid_p2p_register_device(a, U8("")), STUPID_P2P_ERROR_COMMOND);
    /* Handles: <= 0 is a bad parameter, an unknown one ERROR_COMMOND. */
    assert_int_equal(stupid_p2p_heart_beat(0), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_heart_beat(-5), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_heart_beat(a + 1000), STUPID_P2P_ERROR_COMMOND);
    assert_null(stupid_p2p_recv_data(a + 1000));
    assert_null(stupid_p2p_recv_data(0));
    stupid_p2p_deinit(a + 1000); /* ignored */
    stupid_p2p_deinit(-1);       /* ignored */
    stupid_p2p_free_recv_data_buf(NULL);
    stupid_p2p_deinit(a);
    assert_int_equal(stupid_p2p_heart_beat(a), STUPID_P2P_ERROR_COMMOND);
    stupid_p2p_deinit(a); /* twice: ignored */
}

static void test_new_calls_and_reasons(void **state)
{
    static struct ct_rec rec; /* static: outlives a failed test */
    ct_rec_init(&rec);
    int32_t a = ct_open(ct_port(state), NULL, 0);
    int32_t b = ct_open(ct_port(state), &rec, 0);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(a, &st));
    assert_int_equal(st.protocol_version, 2);
    assert_int_equal(st.max_frame, 65536);
    assert_true(st.server_idle_timeout_s > 0);

    assert_int_equal(stupid_p2p_send(a, "x", 1), STUPID_P2P_NOT_REGISTERED);
    assert_int_equal(stupid_p2p_send_to(a, "b", 1, "x", 1), STUPID_P2P_NOT_REGISTERED);
    ct_ok(stupid_p2p_register(a, "a\0bin\xff", 6)); /* ids are bytes */
    ct_ok(stupid_p2p_register(b, "b", 1));
    assert_int_equal(stupid_p2p_check_alive(b, "a\0bin\xff", 6), 1);
    assert_int_equal(stupid_p2p_check_alive(b, "a", 1), 0);
    assert_int_equal(stupid_p2p_subscribe(a, "a\0bin\xff", 6), STUPID_P2P_BAD_ARGUMENT);
    assert_int_equal(stupid_p2p_send_to(a, "a\0bin\xff", 6, "x", 1), STUPID_P2P_BAD_ARGUMENT);
    assert_int_equal(stupid_p2p_send_to(a, "zz", 2, "x", 1), STUPID_P2P_OFFLINE);
    /* v2: subscribing to an offline device succeeds, with presence. */
    ct_ok(stupid_p2p_subscribe(b, "later", 5));
    ct_ok(stupid_p2p_subscribe(b, "a\0bin\xff", 6));
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_presence >= 2));
    assert_string_equal(rec.presence_id[0], "later");
    assert_int_equal(rec.presence_online[0], 0);
    assert_int_equal(rec.presence_online[1], 1);

    ct_ok(stupid_p2p_send(a, "to subscribers", 14));
    ct_ok(stupid_p2p_send_to(a, "b", 1, "direct", 6));
    stupid_p2p_message_t *m = NULL;
    ct_ok(stupid_p2p_recv(b, &m, CT_WAIT_MS));
    assert_int_equal(m->length, 14);
    assert_memory_equal(m->data, "to subscribers", 14);
    assert_int_equal(m->data[14], 0);
    assert_int_equal(m->sender_len, 6);
    assert_memory_equal(m->sender, "a\0bin\xff", 6);
    stupid_p2p_message_free(m);
    ct_ok(stupid_p2p_recv(b, &m, CT_WAIT_MS));
    assert_memory_equal(m->data, "direct", 6);
    assert_int_equal(m->sender_len, 6);
    stupid_p2p_message_free(m);
    /* Nothing more: 0 does not wait, a short timeout times out. */
    assert_int_equal(stupid_p2p_recv(b, &m, 0), STUPID_P2P_TIMEOUT);
    assert_null(m);
    int64_t t0 = ct_now_ms();
    assert_int_equal(stupid_p2p_recv(b, &m, 50), STUPID_P2P_TIMEOUT);
    assert_true(ct_now_ms() - t0 >= 45);
    stupid_p2p_message_free(NULL);

    /* Presence on unregister, then register again. */
    int before = CT_GET(&rec, rec.n_presence);
    ct_ok(stupid_p2p_unregister(a));
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_presence > before));
    assert_int_equal(rec.presence_online[before], 0);

    ct_ok(stupid_p2p_unsubscribe(b, "later", 5));
    /* Parameter checks of the new calls. */
    assert_int_equal(stupid_p2p_register(b, NULL, 1), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_register(b, "x", 0), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_register(b, "x", 256), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_subscribe(b, "x", 0), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_unsubscribe(b, NULL, 3), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_check_alive(b, "x", 0), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_send(b, NULL, 1), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_send_to(b, "a", 1, NULL, 1), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_recv(b, NULL, 0), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_recv(0, &m, 0), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_get_stats(b, NULL), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_get_state(0), STUPID_P2P_BAD_PARAM);
    assert_int_equal(stupid_p2p_get_state(b + 1000), STUPID_P2P_ERROR_COMMAND);
    assert_int_equal(stupid_p2p_unregister(b), STUPID_P2P_NO_ERROR);
    assert_int_equal(rec.bad_nul, 0);

    ct_ok(stupid_p2p_get_stats(b, &st));
    assert_int_equal(st.messages_received, 2);
    assert_int_equal(st.messages_dropped, 0);
    assert_int_equal(st.queue_length, 0);
    assert_int_equal(st.reconnects, 0);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
    ct_rec_destroy(&rec);
}

/* protocol_version 1: no HELLO, a v1 session: no sender ids, no SEND_TO. */
static void test_protocol_v1_option(void **state)
{
    stupid_p2p_options_t o;
    ct_options(&o, NULL, 0);
    o.protocol_version = 1;
    int32_t a = ct_open_opts(ct_port(state), &o);
    int32_t b = ct_open_opts(ct_port(state), &o);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(a, &st));
    assert_int_equal(st.protocol_version, 1);
    ct_ok(stupid_p2p_register(a, "a", 1));
    ct_ok(stupid_p2p_register(b, "b", 1));
    /* v1: subscribing to an offline device fails, with no reason. */
    assert_int_equal(stupid_p2p_subscribe(b, "off", 3), STUPID_P2P_ERROR_COMMAND);
    ct_ok(stupid_p2p_subscribe(b, "a", 1));
    ct_ok(stupid_p2p_send(a, "v1 data", 7));
    stupid_p2p_message_t *m = NULL;
    ct_ok(stupid_p2p_recv(b, &m, CT_WAIT_MS));
    assert_int_equal(m->length, 7);
    assert_memory_equal(m->data, "v1 data", 7);
    assert_int_equal(m->sender_len, 0);
    stupid_p2p_message_free(m);
    /* Without HELLO the library cannot know that the server answers
     * SEND_TO (the original would not): refused locally. */
    assert_int_equal(stupid_p2p_send_to(a, "nobody", 6, "x", 1), STUPID_P2P_UNSUPPORTED);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
}

static void test_strerror(void **state)
{
    (void)state;
    const int32_t codes[] = {STUPID_P2P_NO_ERROR, STUPID_P2P_ERROR_COMMOND, STUPID_P2P_BAD_PARAM,
                             STUPID_P2P_MEMORY_ERROR, STUPID_P2P_RESTARTING, STUPID_P2P_NET_ERROR,
                             STUPID_P2P_TIMEOUT, STUPID_P2P_NOT_REGISTERED, STUPID_P2P_OFFLINE,
                             STUPID_P2P_BAD_ARGUMENT, STUPID_P2P_NOT_AUTHORIZED, STUPID_P2P_UNSUPPORTED,
                             STUPID_P2P_LIMIT, STUPID_P2P_CLOSED, STUPID_P2P_WRONG_THREAD};
    const char *unknown = stupid_p2p_strerror(12345);
    assert_non_null(unknown);
    for (size_t i = 0; i < sizeof codes / sizeof codes[0]; i++) {
        const char *s = stupid_p2p_strerror(codes[i]);
        assert_non_null(s);
        assert_string_not_equal(s, unknown);
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(s, stupid_p2p_strerror(codes[j]));
    }
    /* The original's values, and the alias. */
    assert_int_equal((uint32_t)STUPID_P2P_ERROR_COMMOND, 0x80000001u);
    assert_int_equal((uint32_t)STUPID_P2P_BAD_PARAM, 0x80000002u);
    assert_int_equal((uint32_t)STUPID_P2P_MEMORY_ERROR, 0x80000003u);
    assert_int_equal((uint32_t)STUPID_P2P_RESTARTING, 0x80000004u);
    assert_int_equal((uint32_t)STUPID_P2P_NET_ERROR, 0x80000005u);
    assert_int_equal(STUPID_P2P_ERROR_COMMAND, STUPID_P2P_ERROR_COMMOND);
    assert_true(STUPID_P2P_ERROR_COMMOND < 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_init_bad_params),     T(test_init_older_options),      T(test_init_connection_refused), T(test_init_bad_host),
        T(test_reconnect_error_kept),
        T(test_init_hostname),       T(test_no_signal_handlers),      T(test_handles_are_distinct),    T(test_original_calls),
        T(test_original_bad_params), T(test_new_calls_and_reasons),   T(test_protocol_v1_option),
        T(test_strerror),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
