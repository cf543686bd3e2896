/*
 * test_auth_reload.c - the auth file re-read on SIGHUP (p2pServer(8),
 * SIGNALS; stupidp2p(7), AUTHORIZATION), connections kept:
 *
 *  - a session whose id the new file removes, or whose verifier it
 *    changes, is closed with BYE 6, and the id's subscribers see it go;
 *  - a session holding by REGISTER an id the new file protects is closed
 *    (BYE 6 in v2, silently in v1);
 *  - subscriptions the new PEERS do not allow are cancelled: PRESENCE
 *    offline to a v2 subscriber, silence to a v1 one, and no more data;
 *    the subscribers stay connected;
 *  - a new file that does not parse (or has gone) keeps the old one in
 *    force, and the log says why;
 *  - everything else is untouched: bystanders stay connected, subscribed
 *    and silent, and new AUTHs use the new file;
 *  - a file that group or others may read is warned about at reload too;
 *  - SIGHUP without --auth-file changes nothing and does not stop the
 *    server.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "harness.h"
#include "protocol.h"
#include "v2.h"

/* alice (token A), bob (token B), both reachable by all. */
static void start(struct tc_auth_server *a)
{
    char text[2048] = "";
    tc_auth_line(text, sizeof text, "alice", TC_TOKEN_A, NULL);
    tc_auth_line(text, sizeof text, "bob", TC_TOKEN_B, NULL);
    tc_auth_server_start(a, text, NULL);
}

static void rewrite(struct tc_auth_server *a, const char *id1, const char *token1, const char *peers1,
                    const char *id2, const char *token2, const char *peers2)
{
    char text[2048] = "# rewritten\n";
    tc_auth_line(text, sizeof text, id1, token1, peers1);
    if (id2 != NULL)
        tc_auth_line(text, sizeof text, id2, token2, peers2);
    tc_write_file(a->path, text, 0600);
}

static void test_removed_id_bye_6(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int alice = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    int bob = tc_auth_connect(a.srv.port, "bob", TC_TOKEN_B);
    int watch = tc_v2_connect(a.srv.port);
    tc_v2_subscribe(watch, "alice", P2P_PRESENCE_ONLINE);
    tc_v2_subscribe(watch, "bob", P2P_PRESENCE_ONLINE);

    rewrite(&a, "bob", TC_TOKEN_B, NULL, NULL, NULL, NULL);
    tc_reload(&a.srv, 1);
    tc_expect_bye(alice, P2P_BYE_NOT_AUTHORIZED);
    tc_expect_presence(watch, P2P_PRESENCE_OFFLINE, "alice");
    /* bob and the watcher were not touched. */
    assert_true(tc_is_open(bob));
    tc_expect_nothing_pending(watch);
    tc_send_data(bob, "still", 5, P2P_STATUS_OK);
    tc_expect_deliver_str(watch, "bob", "still");
    /* alice is no longer protected: a REGISTER of it works now. */
    int fd = tc_v2_connect(a.srv.port);
    tc_expect_auth(fd, "alice", TC_TOKEN_A, P2P_STATUS_NOT_AUTHORIZED);
    tc_register(fd, "alice", P2P_STATUS_OK);
    tc_expect_presence(watch, P2P_PRESENCE_ONLINE, "alice");
    tc_close(fd);
    tc_close(alice);
    tc_close(bob);
    tc_close(watch);
    tc_auth_server_stop(&a);
}

static void test_changed_verifier_bye_6(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int alice = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    int bob = tc_auth_connect(a.srv.port, "bob", TC_TOKEN_B);
    rewrite(&a, "alice", TC_TOKEN_B, NULL, "bob", TC_TOKEN_B, NULL); /* alice's token changes */
    tc_reload(&a.srv, 1);
    tc_expect_bye(alice, P2P_BYE_NOT_AUTHORIZED);
    assert_true(tc_is_open(bob));
    int fd = tc_v2_connect(a.srv.port);
    tc_expect_auth(fd, "alice", TC_TOKEN_A, P2P_STATUS_NOT_AUTHORIZED);
    tc_expect_auth(fd, "alice", TC_TOKEN_B, P2P_STATUS_OK);
    tc_close(fd);
    tc_close(alice);
    tc_close(bob);
    tc_auth_server_stop(&a);
}

/* An id held by REGISTER that the new file protects: its holder did not
 * prove anything, so it goes. */
static void test_newly_protected_id(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int v1 = tc_connect(a.srv.port);
    tc_register(v1, "carol", P2P_STATUS_OK);
    int v2 = tc_v2_connect(a.srv.port);
    tc_register(v2, "dave", P2P_STATUS_OK);
    int other = tc_connect(a.srv.port);
    tc_register(other, "erin", P2P_STATUS_OK);
    char text[4096] = "";
    tc_auth_line(text, sizeof text, "alice", TC_TOKEN_A, NULL);
    tc_auth_line(text, sizeof text, "carol", TC_TOKEN_B, NULL);
    tc_auth_line(text, sizeof text, "dave", TC_TOKEN_B, NULL);
    tc_write_file(a.path, text, 0600);
    tc_reload(&a.srv, 1);
    tc_expect_closed(v1, TC_WAIT_MS, 0); /* v1: no word */
    tc_expect_bye(v2, P2P_BYE_NOT_AUTHORIZED);
    assert_true(tc_is_open(other));
    tc_check_alive(other, "erin", P2P_STATUS_OK);
    tc_close(v1);
    tc_close(v2);
    tc_close(other);
    tc_auth_server_stop(&a);
}

/* alice's PEERS shrink to bob: other subscribers lose the subscription
 * (PRESENCE offline in v2, nothing in v1) and her data; they stay. */
static void test_changed_peers_cancel_subscriptions(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int alice = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    int bob = tc_auth_connect(a.srv.port, "bob", TC_TOKEN_B);
    tc_v2_subscribe(bob, "alice", P2P_PRESENCE_ONLINE);
    int w2 = tc_v2_connect(a.srv.port);
    tc_v2_subscribe(w2, "alice", P2P_PRESENCE_ONLINE);
    tc_v2_subscribe(w2, "bob", P2P_PRESENCE_ONLINE);
    int w1 = tc_connect(a.srv.port);
    tc_subscribe(w1, "alice", P2P_STATUS_OK);

    rewrite(&a, "alice", TC_TOKEN_A, "bob", "bob", TC_TOKEN_B, "*");
    tc_reload(&a.srv, 1);
    tc_expect_presence(w2, P2P_PRESENCE_OFFLINE, "alice");
    tc_send_data(alice, "for bob", 7, P2P_STATUS_OK);
    tc_expect_deliver_str(bob, "alice", "for bob");
    tc_expect_nothing_pending(w2);
    tc_expect_nothing_pending(w1);
    tc_expect_nothing_pending(alice);
    tc_expect_nothing_pending(bob);
    /* w2 keeps its subscription to bob, and both stay connected. */
    tc_send_data(bob, "b", 1, P2P_STATUS_OK);
    tc_expect_deliver_str(w2, "bob", "b");
    tc_subscribe(w2, "alice", P2P_STATUS_NOT_AUTHORIZED);
    tc_subscribe(w1, "alice", 0);
    assert_true(tc_is_open(w1));
    tc_close(alice);
    tc_close(bob);
    tc_close(w1);
    tc_close(w2);
    tc_auth_server_stop(&a);
}

/* A file that does not parse, or is gone, changes nothing. */
static void test_bad_file_keeps_the_old_one(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    int alice = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    int watch = tc_v2_connect(a.srv.port);
    tc_v2_subscribe(watch, "alice", P2P_PRESENCE_ONLINE);

    char text[4096] = "";
    tc_auth_line(text, sizeof text, "newdev", TC_TOKEN_A, NULL);
    strcat(text, "broken line without a verifier\n");
    tc_write_file(a.path, text, 0600);
    tc_reload(&a.srv, 0);
    char why[700];
    snprintf(why, sizeof why, "%s:2: too many fields", a.path);
    tc_wait_log(&a.srv, why, 1);
    assert_true(tc_is_open(alice));
    tc_expect_nothing_pending(watch);
    int fd = tc_v2_connect(a.srv.port);
    tc_expect_auth(fd, "newdev", TC_TOKEN_A, P2P_STATUS_NOT_AUTHORIZED);
    tc_expect_auth(fd, "bob", TC_TOKEN_B, P2P_STATUS_OK); /* the old file */
    tc_close(fd);

    unlink(a.path);
    tc_reload(&a.srv, 0);
    tc_wait_log(&a.srv, "No such file or directory", 1);
    assert_true(tc_is_open(alice));
    fd = tc_v2_connect(a.srv.port);
    tc_expect_auth(fd, "bob", TC_TOKEN_B, P2P_STATUS_OK);
    tc_close(fd);

    /* Fixed again: in force, and alice (unchanged) stays. */
    rewrite(&a, "alice", TC_TOKEN_A, NULL, "newdev", TC_TOKEN_A, NULL);
    tc_reload(&a.srv, 1);
    assert_true(tc_is_open(alice));
    fd = tc_v2_connect(a.srv.port);
    tc_expect_auth(fd, "newdev", TC_TOKEN_A, P2P_STATUS_OK);
    tc_close(fd);
    tc_expect_nothing_pending(watch);
    tc_close(alice);
    tc_close(watch);
    tc_auth_server_stop(&a);
}

static void test_mode_warning_at_reload(void **state)
{
    (void)state;
    struct tc_auth_server a;
    start(&a);
    assert_int_equal(tc_log_count(&a.srv, "by group or others"), 0);
    char text[2048] = "";
    tc_auth_line(text, sizeof text, "alice", TC_TOKEN_A, NULL);
    tc_write_file(a.path, text, 0640);
    tc_reload(&a.srv, 1);
    assert_int_equal(tc_log_count(&a.srv, "may be read by group or others (mode 0640)"), 1);
    tc_auth_server_stop(&a);
}

/* Without --auth-file there is nothing to reload, and SIGHUP (whose default
 * action would end the process) is only logged. */
static void test_sighup_without_auth_file(void **state)
{
    struct p2p_server *srv = *state;
    int fd = tc_connect(srv->port);
    tc_register(fd, "x", P2P_STATUS_OK);
    assert_int_equal(kill(srv->pid, SIGHUP), 0);
    tc_wait_log(srv, "nothing to reload", 1);
    assert_true(tc_is_open(fd));
    tc_check_alive(fd, "x", P2P_STATUS_OK);
    tc_close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_removed_id_bye_6),
        cmocka_unit_test(test_changed_verifier_bye_6),
        cmocka_unit_test(test_newly_protected_id),
        cmocka_unit_test(test_changed_peers_cancel_subscriptions),
        cmocka_unit_test(test_bad_file_keeps_the_old_one),
        cmocka_unit_test(test_mode_warning_at_reload),
        TC_SERVER_TEST(test_sighup_without_auth_file),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
