/*
 * test_client_v1_restore.c - renewing subscriptions on a version 1
 * connection, where the server refuses to subscribe to an offline device:
 * after a reconnect the library keeps asking (once per heartbeat interval)
 * until the device is back, so messages flow again without the
 * application subscribing.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"

#define T(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)

static void test_v1_subscription_renewed_when_device_returns(void **state)
{
    struct p2p_server *srv = *state;
    static struct ct_rec rb; /* static: outlives a failed test */
    ct_rec_init(&rb);
    stupid_p2p_options_t o;
    ct_options(&o, &rb, 0);
    o.protocol_version = 1;
    o.heartbeat_interval_ms = 100;
    int32_t b = ct_open_opts(srv->port, &o);
    ct_options(&o, NULL, 0);
    o.protocol_version = 1;
    int32_t a = ct_open_opts(srv->port, &o);
    ct_ok(stupid_p2p_register(a, "pub", 3));
    ct_ok(stupid_p2p_register(b, "sub", 3));
    ct_ok(stupid_p2p_subscribe(b, "pub", 3));
    /* The publisher goes away, then the server restarts: b's renewal of
     * its subscription is refused (v1: "pub" is offline). */
    stupid_p2p_deinit(a);
    p2p_server_kill(srv);
    assert_int_equal(p2p_server_restart(srv, NULL), 0);
    assert_true(CT_WAIT_FOR(&rb, CT_WAIT_MS, rb.n_connected >= 1));
    ct_options(&o, NULL, 0);
    o.protocol_version = 1;
    a = ct_open_opts(srv->port, &o);
    ct_ok(stupid_p2p_register(a, "pub", 3));
    /* No store-and-forward: send until b's retry has gone through. Each
     * round waits for a message, bounded. */
    stupid_p2p_message_t *m = NULL;
    int rounds = 0;
    for (int64_t until = ct_now_ms() + CT_WAIT_MS; m == NULL && ct_now_ms() < until; rounds++) {
        ct_ok(stupid_p2p_send(a, "ping", 4));
        (void)stupid_p2p_recv(b, &m, 100);
    }
    assert_non_null(m);
    assert_memory_equal(m->data, "ping", 4);
    stupid_p2p_message_free(m);
    fprintf(stderr, "  renewed after %d send(s)\n", rounds);
    /* b's id came back too. */
    assert_int_equal(stupid_p2p_check_alive(a, "sub", 3), 1);
    stupid_p2p_deinit(a);
    stupid_p2p_deinit(b);
    ct_rec_destroy(&rb);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_v1_subscription_renewed_when_device_returns),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
