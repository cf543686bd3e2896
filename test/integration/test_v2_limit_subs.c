/*
 * test_v2_limit_subs.c - status 7 (limit reached) with --max-subs 1
 * (stupidp2p(7), SUBSCRIBE; p2pServer(8), --max-subs): a subscription
 * beyond the limit gets 82 07 in v2 and 82 00 in v1, a repeated one is not
 * new, unsubscribing frees room, and the limit is per connection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "protocol.h"
#include "v2.h"

static const char *const max_subs_1[] = {"--max-subs", "1", NULL};

/* v2: the second distinct subscription gets 82 07 and no PRESENCE; the
 * first keeps working. */
static void test_limit_subs_v2_status_7(void **state)
{
    int a = tc_v2_connect(tc_port(state));
    tc_register(a, "a", P2P_STATUS_OK);
    int b = tc_v2_connect(tc_port(state));
    tc_register(b, "b", P2P_STATUS_OK);
    int sub = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(sub, "a", P2P_PRESENCE_ONLINE);
    tc_subscribe(sub, "b", P2P_STATUS_LIMIT);
    tc_subscribe(sub, "offline-id", P2P_STATUS_LIMIT);
    tc_expect_nothing_pending(sub); /* no PRESENCE after a failure */
    /* b's messages do not reach sub, a's do. */
    tc_send_data(b, "from b", 6, P2P_STATUS_OK);
    tc_send_data(a, "from a", 6, P2P_STATUS_OK);
    tc_expect_deliver_str(sub, "a", "from a");
    tc_expect_nothing_pending(sub);
    tc_close(a);
    tc_close(b);
    tc_close(sub);
}

/* A repeated subscription is not a new one: it never fails for the limit. */
static void test_limit_subs_repeat_is_not_new(void **state)
{
    int sub = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(sub, "x", P2P_PRESENCE_OFFLINE);
    tc_v2_subscribe(sub, "x", P2P_PRESENCE_OFFLINE);
    tc_close(sub);
}

/* Unsubscribing makes room again. */
static void test_limit_subs_unsubscribe_frees(void **state)
{
    int sub = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(sub, "x", P2P_PRESENCE_OFFLINE);
    tc_subscribe(sub, "y", P2P_STATUS_LIMIT);
    tc_unsubscribe(sub, "x");
    tc_v2_subscribe(sub, "y", P2P_PRESENCE_OFFLINE);
    /* UNREGISTER cancels the connection's subscriptions too. */
    tc_unregister(sub);
    tc_v2_subscribe(sub, "z", P2P_PRESENCE_OFFLINE);
    tc_close(sub);
}

/* The limit is per connection: another connection has its own. */
static void test_limit_subs_per_connection(void **state)
{
    int s1 = tc_v2_connect(tc_port(state));
    int s2 = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(s1, "x", P2P_PRESENCE_OFFLINE);
    tc_v2_subscribe(s2, "y", P2P_PRESENCE_OFFLINE);
    tc_close(s1);
    tc_close(s2);
}

/* v1: beyond the limit SUBSCRIBE gets 82 00. */
static void test_limit_subs_v1_status_0(void **state)
{
    int a = tc_connect(tc_port(state));
    tc_register(a, "a", P2P_STATUS_OK);
    int b = tc_connect(tc_port(state));
    tc_register(b, "b", P2P_STATUS_OK);
    int sub = tc_connect(tc_port(state));
    tc_subscribe(sub, "a", P2P_STATUS_OK);
    tc_subscribe(sub, "b", 0);
    tc_send_data(b, "from b", 6, P2P_STATUS_OK);
    tc_expect_nothing_pending(sub);
    tc_close(a);
    tc_close(b);
    tc_close(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST_ARGS(test_limit_subs_v2_status_7, max_subs_1),
        TC_SERVER_TEST_ARGS(test_limit_subs_repeat_is_not_new, max_subs_1),
        TC_SERVER_TEST_ARGS(test_limit_subs_unsubscribe_frees, max_subs_1),
        TC_SERVER_TEST_ARGS(test_limit_subs_per_connection, max_subs_1),
        TC_SERVER_TEST_ARGS(test_limit_subs_v1_status_0, max_subs_1),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
