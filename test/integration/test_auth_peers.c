/*
 * test_auth_peers.c - who may reach whom (stupidp2p(7), AUTHORIZATION;
 * the PEERS field of p2pServer(8)'s auth file), in both versions:
 *
 *  - a device not in a protected device's PEERS cannot SUBSCRIBE to it
 *    (82 05 / 82 00), SEND_TO it (8a 05 / 8a 00, before "offline" so that
 *    nothing is revealed), or learn whether it is online (86 00), and so
 *    receives neither its data nor its PRESENCE;
 *  - a listed peer can, a device may always reach itself, "*" lets every
 *    connection in, and a connection holding no id is let in by "*" only;
 *  - a connection whose id changes loses the subscriptions its new id may
 *    not hold (PRESENCE offline in v2);
 *  - a PEERS id that is not in the file is warned about in the log.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "auth.h"
#include "harness.h"
#include "protocol.h"
#include "v2.h"

/* alice: bob only; bob: everyone; carol: alice and bob. */
static void start(struct tc_auth_server *a)
{
    char text[4096] = "";
    tc_auth_line(text, sizeof text, "alice", TC_TOKEN_A, "bob");
    tc_auth_line(text, sizeof text, "bob", TC_TOKEN_B, "*");
    tc_auth_line(text, sizeof text, "carol", TC_TOKEN_B, "alice,bob,outsider");
    tc_auth_server_start(a, text, NULL);
}

static void test_stranger_cannot_reach(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int alice = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    int v2 = tc_v2_connect(a.srv.port);
    tc_register(v2, "mallory", P2P_STATUS_OK);
    int v1 = tc_connect(a.srv.port);
    tc_register(v1, "trudy", P2P_STATUS_OK);
    int anon = tc_v2_connect(a.srv.port); /* holds no id */

    tc_subscribe(v2, "alice", P2P_STATUS_NOT_AUTHORIZED);
    tc_subscribe(v1, "alice", 0);
    tc_subscribe(anon, "alice", P2P_STATUS_NOT_AUTHORIZED);
    tc_send_to(v2, "alice", 5, "x", 1);
    tc_expect_reply(v2, P2P_CMD_SEND_TO, P2P_STATUS_NOT_AUTHORIZED);
    tc_send_to(v1, "alice", 5, "x", 1);
    tc_expect_reply(v1, P2P_CMD_SEND_TO, 0);
    tc_check_alive(v2, "alice", 0); /* online, but not to mallory */
    tc_check_alive(v1, "alice", 0);
    tc_check_alive(anon, "alice", 0);
    /* carol is offline: a stranger still gets 5, not 3. */
    tc_send_to(v2, "carol", 5, "x", 1);
    tc_expect_reply(v2, P2P_CMD_SEND_TO, P2P_STATUS_NOT_AUTHORIZED);

    /* alice's data and presence reach none of them. */
    tc_send_data(alice, "secret", 6, P2P_STATUS_OK);
    tc_close(alice);
    tc_expect_nothing_pending(v2);
    tc_expect_nothing_pending(v1);
    tc_expect_nothing_pending(anon);
    tc_close(v2);
    tc_close(v1);
    tc_close(anon);
    tc_auth_server_stop(&a);
}

static void test_peer_can_reach(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int alice = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    int bob = tc_auth_connect(a.srv.port, "bob", TC_TOKEN_B);
    tc_v2_subscribe(bob, "alice", P2P_PRESENCE_ONLINE);
    tc_check_alive(bob, "alice", P2P_STATUS_OK);
    tc_send_data(alice, "hi bob", 6, P2P_STATUS_OK);
    tc_expect_deliver_str(bob, "alice", "hi bob");
    tc_send_to(bob, "alice", 5, "hi alice", 8);
    tc_expect_deliver_str(alice, "bob", "hi alice");
    tc_expect_reply(bob, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    /* alice may reach bob ("*"), and anyone may, even with no id. */
    tc_send_to(alice, "bob", 3, "back", 4);
    tc_expect_deliver_str(bob, "alice", "back");
    tc_expect_reply(alice, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    int anon = tc_connect(a.srv.port);
    tc_subscribe(anon, "bob", P2P_STATUS_OK);
    tc_check_alive(anon, "bob", P2P_STATUS_OK);
    /* A device may always reach itself: alice's own id is not among her
     * peers, yet CHECK_ALIVE of it answers. */
    tc_check_alive(alice, "alice", P2P_STATUS_OK);
    tc_close(alice);
    tc_expect_presence(bob, P2P_PRESENCE_OFFLINE, "alice");
    tc_close(bob);
    tc_close(anon);
    tc_auth_server_stop(&a);
}

/* bob subscribes to alice, then the same connection takes another id: the
 * subscription goes, with a PRESENCE offline, and alice's data no longer
 * reaches it. */
static void test_changed_id_loses_subscriptions(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int alice = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    int fd = tc_auth_connect(a.srv.port, "bob", TC_TOKEN_B);
    tc_v2_subscribe(fd, "alice", P2P_PRESENCE_ONLINE);
    tc_v2_subscribe(fd, "carol", P2P_PRESENCE_OFFLINE);
    tc_register(fd, "someone", P2P_STATUS_OK);
    tc_expect_presence(fd, P2P_PRESENCE_OFFLINE, "alice");
    tc_expect_presence(fd, P2P_PRESENCE_OFFLINE, "carol");
    tc_send_data(alice, "gone", 4, P2P_STATUS_OK);
    tc_expect_nothing_pending(fd);
    tc_subscribe(fd, "alice", P2P_STATUS_NOT_AUTHORIZED);
    tc_close(fd);
    tc_close(alice);
    tc_auth_server_stop(&a);
}

static void test_unlisted_peer_warned(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    tc_wait_log(&a.srv, "peer \"outsider\" of \"carol\" is not in the file", 1);
    assert_int_equal(tc_log_count(&a.srv, "peer \"bob\""), 0);
    tc_auth_server_stop(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stranger_cannot_reach),
        cmocka_unit_test(test_peer_can_reach),
        cmocka_unit_test(test_changed_id_loses_subscriptions),
        cmocka_unit_test(test_unlisted_peer_warned),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
