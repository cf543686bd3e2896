/*
 * test_v1_check_alive.c - v1 CHECK_ALIVE (0x06): 86 01 while the id is
 * online, 86 00 otherwise (never registered, unregistered, closed, empty or
 * over-long id). No registration needed.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <string.h>

#include "harness.h"
#include "protocol.h"

static void test_check_alive_on_the_wire(void **state)
{
    int a = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    static const uint8_t req[] = {0, 0, 0, 3, 0x06, 'i', 'd'};
    static const uint8_t off[] = {0, 0, 0, 2, 0x86, 0x00};
    static const uint8_t on[] = {0, 0, 0, 2, 0x86, 0x01};
    tc_send_raw(q, req, sizeof req);
    tc_expect_raw(q, off, sizeof off);
    tc_register(a, "id", 1);
    tc_send_raw(q, req, sizeof req);
    tc_expect_raw(q, on, sizeof on);
    tc_close(a);
    tc_close(q);
}

static void test_check_alive_own_id(void **state)
{
    int a = tc_connect(tc_port(state));
    tc_register(a, "self", 1);
    tc_check_alive(a, "self", 1);
    tc_close(a);
}

static void test_check_alive_after_unregister(void **state)
{
    int a = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    tc_register(a, "dev", 1);
    tc_check_alive(q, "dev", 1);
    tc_unregister(a);
    tc_check_alive(q, "dev", 0);
    tc_close(a);
    tc_close(q);
}

/* The server has seen the close when it closes its side: the id is offline
 * from then on. */
static void test_check_alive_after_close(void **state)
{
    int a = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    tc_register(a, "dev", 1);
    tc_close_and_wait(a);
    tc_check_alive(q, "dev", 0);
    tc_close(q);
}

static void test_check_alive_bad_ids(void **state)
{
    int q = tc_connect(tc_port(state));
    uint8_t longid[256];
    memset(longid, 'z', sizeof longid);
    tc_send_cmd(q, P2P_CMD_CHECK_ALIVE, NULL, 0);
    tc_expect_reply(q, P2P_CMD_CHECK_ALIVE, 0);
    tc_send_cmd(q, P2P_CMD_CHECK_ALIVE, longid, sizeof longid);
    tc_expect_reply(q, P2P_CMD_CHECK_ALIVE, 0);
    /* A 255-byte id registered is online; its 256-byte extension is not. */
    int a = tc_connect(tc_port(state));
    tc_register_bytes(a, longid, 255, 1);
    tc_send_cmd(q, P2P_CMD_CHECK_ALIVE, longid, 255);
    tc_expect_reply(q, P2P_CMD_CHECK_ALIVE, 1);
    tc_send_cmd(q, P2P_CMD_CHECK_ALIVE, longid, sizeof longid);
    tc_expect_reply(q, P2P_CMD_CHECK_ALIVE, 0);
    assert_true(tc_is_open(q));
    tc_close(a);
    tc_close(q);
}

/* A takeover keeps the id online all along. */
static void test_check_alive_across_takeover(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    tc_register(a, "dev", 1);
    tc_register(b, "dev", 1);
    tc_check_alive(q, "dev", 1);
    tc_expect_closed(a, TC_WAIT_MS, 0);
    tc_check_alive(q, "dev", 1);
    tc_close(a);
    tc_close(b);
    tc_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_check_alive_on_the_wire),
        TC_SERVER_TEST(test_check_alive_own_id),
        TC_SERVER_TEST(test_check_alive_after_unregister),
        TC_SERVER_TEST(test_check_alive_after_close),
        TC_SERVER_TEST(test_check_alive_bad_ids),
        TC_SERVER_TEST(test_check_alive_across_takeover),
    };
    return cmocka_run_group_tests_name("v1 CHECK_ALIVE", tests, NULL, NULL);
}
