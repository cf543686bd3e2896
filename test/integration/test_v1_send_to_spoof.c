/*
 * test_v1_send_to_spoof.c - a v1 session cannot tell senders apart (a
 * delivery is [03] + data, whoever sent it), so SEND_TO reaches it only
 * from a device it subscribes to (stupidp2p(7), SEND_TO): a stranger's
 * SEND_TO gets 8a 05 (8a 00 from a v1 sender) and the target receives
 * nothing, on a server without any auth file. The attack: a stranger
 * injecting messages that look as if they came from the device the victim
 * trusts.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "harness.h"
#include "protocol.h"
#include "v2.h"

static void test_stranger_cannot_inject(void **state)
{
    int trusted = tc_connect(tc_port(state));
    tc_register(trusted, "thermostat", P2P_STATUS_OK);
    int victim = tc_connect(tc_port(state)); /* v1, listens to the thermostat */
    tc_register(victim, "heater", P2P_STATUS_OK);
    tc_subscribe(victim, "thermostat", P2P_STATUS_OK);

    int s2 = tc_v2_connect(tc_port(state));
    tc_register(s2, "stranger2", P2P_STATUS_OK);
    tc_send_to(s2, "heater", 6, "ON", 2);
    tc_expect_reply(s2, P2P_CMD_SEND_TO, P2P_STATUS_NOT_AUTHORIZED);
    int s1 = tc_connect(tc_port(state));
    tc_register(s1, "stranger1", P2P_STATUS_OK);
    tc_send_to(s1, "heater", 6, "ON", 2);
    tc_expect_reply(s1, P2P_CMD_SEND_TO, 0);
    tc_expect_nothing_pending(victim);

    /* The device it subscribes to may write to it directly. */
    tc_send_to(trusted, "heater", 6, "OFF", 3);
    tc_expect_data(victim, "OFF", 3);
    tc_expect_reply(trusted, P2P_CMD_SEND_TO, P2P_STATUS_OK);

    /* So may a stranger once the victim chooses to subscribe to it, and
     * no longer after it unsubscribes. */
    tc_subscribe(victim, "stranger2", P2P_STATUS_OK);
    tc_send_to(s2, "heater", 6, "hello", 5);
    tc_expect_data(victim, "hello", 5);
    tc_expect_reply(s2, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_unsubscribe(victim, "stranger2");
    tc_send_to(s2, "heater", 6, "again", 5);
    tc_expect_reply(s2, P2P_CMD_SEND_TO, P2P_STATUS_NOT_AUTHORIZED);
    tc_expect_nothing_pending(victim);

    /* A v2 target names the sender, so anyone may write to it. */
    tc_expect_hello(victim, 2, 0, 2, TC_DEFAULT_MAX_FRAME, TC_DEFAULT_IDLE);
    tc_send_to(s1, "heater", 6, "named", 5);
    tc_expect_deliver_str(victim, "stranger1", "named");
    tc_expect_reply(s1, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_close(s1);
    tc_close(s2);
    tc_close(victim);
    tc_close(trusted);
}

/* The subscription is to the id, not to a connection: a reconnected
 * publisher may still write to its v1 subscriber. */
static void test_subscription_follows_the_id(void **state)
{
    int victim = tc_connect(tc_port(state));
    tc_register(victim, "lamp", P2P_STATUS_OK);
    int pub = tc_connect(tc_port(state));
    tc_register(pub, "switch", P2P_STATUS_OK);
    tc_subscribe(victim, "switch", P2P_STATUS_OK);
    tc_close_and_wait(pub);
    pub = tc_v2_connect(tc_port(state));
    tc_register(pub, "switch", P2P_STATUS_OK);
    tc_send_to(pub, "lamp", 4, "on", 2);
    tc_expect_data(victim, "on", 2);
    tc_expect_reply(pub, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_close(pub);
    tc_close(victim);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_stranger_cannot_inject),
        TC_SERVER_TEST(test_subscription_follows_the_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
