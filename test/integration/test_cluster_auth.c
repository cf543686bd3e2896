/*
 * test_cluster_auth.c - authentication across relays (issues 9 and 13):
 * every relay loads the same auth file. A protected id claimed by AUTH on
 * one relay cannot be REGISTERed on another (status 5, as on one server);
 * its PEERS apply on every relay (SUBSCRIBE, SEND_TO, CHECK_ALIVE); AUTH on
 * another relay takes it over (BYE 1 to the old holder); and a claim
 * without AUTH, from a relay that does not protect the id (a relay started
 * without the file), does not take it from its authenticated holder.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "cluster.h"
#include "harness.h"
#include "protocol.h"
#include "v2.h"

/* cam: viewer only; viewer: everyone. */
static int setup(void **state)
{
    static struct cl_auth_cluster f;
    *state = &f;
    char text[4096] = "";
    tc_auth_line(text, sizeof text, "cam", TC_TOKEN_A, "viewer");
    tc_auth_line(text, sizeof text, "viewer", TC_TOKEN_B, "*");
    cl_auth_start(&f, text);
    return 0;
}

static int teardown(void **state)
{
    cl_auth_stop(*state);
    return 0;
}

static void test_protected_id_across_relays(void **state)
{
    CL_REQUIRE_NATS();
    struct cl_auth_cluster *f = *state;
    struct relay_cluster *c = &f->c;
    int cam = tc_auth_connect(cl_port(c, 0), "cam", TC_TOKEN_A);
    int viewer = tc_auth_connect(cl_port(c, 2), "viewer", TC_TOKEN_B);
    int stranger = tc_v2_connect(cl_port(c, 1));
    tc_register(stranger, "stranger", P2P_STATUS_OK);

    /* REGISTER may not claim it on another relay either. */
    int thief = tc_v2_connect(cl_port(c, 1));
    tc_register(thief, "cam", P2P_STATUS_NOT_AUTHORIZED);
    tc_close(thief);

    /* PEERS, on relays that do not hold cam. */
    tc_wait_alive(viewer, "cam", 3, P2P_STATUS_OK, CL_WAIT_MS);
    tc_check_alive(stranger, "cam", P2P_STATUS_FAILURE);
    tc_subscribe(stranger, "cam", P2P_STATUS_NOT_AUTHORIZED);
    tc_send_to(stranger, "cam", 3, "x", 1);
    tc_expect_reply(stranger, P2P_CMD_SEND_TO, P2P_STATUS_NOT_AUTHORIZED);
    tc_v2_subscribe(viewer, "cam", P2P_PRESENCE_ONLINE);
    tc_send_to(viewer, "cam", 3, "hello cam", 9);
    tc_expect_reply(viewer, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    tc_expect_deliver_str(cam, "viewer", "hello cam");
    cl_sync_data(cam, &viewer, 1);
    tc_send_data(cam, "frame", 5, P2P_STATUS_OK);
    tc_expect_deliver_str(viewer, "cam", "frame");

    /* AUTH on relay 1 takes cam over from relay 0. */
    int cam2 = tc_auth_connect(cl_port(c, 1), "cam", TC_TOKEN_A);
    tc_expect_bye(cam, P2P_BYE_TAKEN_OVER);
    tc_close(cam);
    tc_expect_presence(viewer, P2P_PRESENCE_OFFLINE, "cam");
    tc_expect_presence(viewer, P2P_PRESENCE_ONLINE, "cam");
    tc_send_data(cam2, "frame2", 6, P2P_STATUS_OK);
    tc_expect_deliver_str(viewer, "cam", "frame2");
    tc_expect_nothing_pending(viewer);
    tc_close(cam2);
    tc_close(viewer);
    tc_close(stranger);
}

/* Relay 2 restarted without the auth file: its REGISTER of cam is a claim
 * without AUTH, which the relay holding cam refuses. */
static void test_unauthenticated_claim_does_not_take_a_protected_id(void **state)
{
    CL_REQUIRE_NATS();
    struct cl_auth_cluster *f = *state;
    struct relay_cluster *c = &f->c;
    cl_restart_relay_with(c, 2, NULL);
    int cam = tc_auth_connect(cl_port(c, 0), "cam", TC_TOKEN_A);
    int other = tc_v2_connect(cl_port(c, 2));
    tc_wait_alive(other, "cam", 3, P2P_STATUS_OK, CL_WAIT_MS);
    tc_register(other, "cam", P2P_STATUS_OK); /* relay 2 protects nothing */
    cl_wait_metric(c, 0, "stupidp2p_cluster_claims_total{kind=\"refused\"}", 1, CL_WAIT_MS);
    cl_wait_metric(c, 1, "stupidp2p_cluster_claims_total{kind=\"refused\"}", 1, CL_WAIT_MS);
    if (!tc_is_open(cam))
        tc_fail("an unauthenticated claim took a protected id");
    if (cl_log_count(c, 0, "do all relays load the same auth file?") < 1)
        tc_fail("the refusal was not logged");
    tc_close(other);
    tc_close(cam);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_protected_id_across_relays, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unauthenticated_claim_does_not_take_a_protected_id,
                                        setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
