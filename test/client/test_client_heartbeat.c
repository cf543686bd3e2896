/*
 * test_client_heartbeat.c - heartbeats keep an idle connection alive: the
 * library learns the server's idle timeout from HELLO and beats at least
 * three times per timeout, whatever heartbeat_interval_ms says.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"

static void test_idle_connection_survives_short_server_timeout(void **state)
{
    (void)state;
    struct p2p_server srv;
    const char *const args[] = {"--idle-timeout", "1", NULL};
    assert_int_equal(p2p_server_start(&srv, args), 0);
    static struct ct_rec rec; /* static: outlives a failed test */
    ct_rec_init(&rec);
    stupid_p2p_options_t o;
    ct_options(&o, &rec, 0);
    o.heartbeat_interval_ms = 60000; /* far beyond the server's 1 s */
    int32_t h = ct_open_opts(srv.port, &o);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(h, &st));
    assert_int_equal(st.server_idle_timeout_s, 1);
    ct_ok(stupid_p2p_register(h, "idle", 4));
    /* Idle for 2.5 server timeouts: the connection must not drop. (A wait
     * that is expected to time out; its length is the point of the test.) */
    assert_false(CT_WAIT_FOR(&rec, 2500, rec.n_disconnected > 0));
    ct_ok(stupid_p2p_get_stats(h, &st));
    assert_int_equal(st.reconnects, 0);
    int raw = tc_connect(srv.port);
    tc_check_alive(raw, "idle", 1);
    tc_close(raw);
    stupid_p2p_deinit(h);
    ct_rec_destroy(&rec);
    assert_int_equal(p2p_server_stop(&srv), 0);
}

/* Without HELLO (protocol_version 1) the library cannot know the server's
 * timeout: an interval longer than it lets the server close the idle
 * connection, and the library reconnects and restores the id. */
static void test_v1_idle_timeout_reconnects(void **state)
{
    (void)state;
    struct p2p_server srv;
    const char *const args[] = {"--idle-timeout", "1", NULL};
    assert_int_equal(p2p_server_start(&srv, args), 0);
    static struct ct_rec rec;
    ct_rec_init(&rec);
    stupid_p2p_options_t o;
    ct_options(&o, &rec, 0);
    o.protocol_version = 1;
    o.heartbeat_interval_ms = 60000;
    int32_t h = ct_open_opts(srv.port, &o);
    ct_ok(stupid_p2p_register(h, "v1idle", 6));
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_disconnected > 0));
    assert_int_equal(rec.causes[0], STUPID_P2P_CAUSE_EOF);
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_connected > 0));
    int raw = tc_connect(srv.port);
    tc_check_alive(raw, "v1idle", 1);
    tc_close(raw);
    stupid_p2p_deinit(h);
    ct_rec_destroy(&rec);
    assert_int_equal(p2p_server_stop(&srv), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_idle_connection_survives_short_server_timeout),
        cmocka_unit_test(test_v1_idle_timeout_reconnects),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
