/*
 * test_v1_ids.c - device ids are arbitrary byte strings of 1 to 255 bytes
 * (NUL and high bytes included), compared exactly; no id is special. Empty
 * and 256-byte ids get status 0.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "harness.h"
#include "protocol.h"

static void test_ids_with_nul_bytes(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    tc_register_bytes(a, "a\0b", 3, 1);
    tc_check_alive_bytes(q, "a\0b", 3, 1);
    tc_check_alive_bytes(q, "a", 1, 0);
    tc_check_alive_bytes(q, "a\0", 2, 0);
    tc_check_alive_bytes(q, "a\0c", 3, 0);
    tc_check_alive_bytes(q, "a\0b\0", 4, 0);
    /* "a" is a different id: registering it takes nothing over. */
    tc_register_bytes(b, "a", 1, 1);
    assert_true(tc_is_open(a));
    tc_check_alive_bytes(q, "a\0b", 3, 1);
    tc_check_alive_bytes(q, "a", 1, 1);
    /* A lone NUL is an id too. */
    int c = tc_connect(tc_port(state));
    tc_register_bytes(c, "\0", 1, 1);
    tc_check_alive_bytes(q, "\0", 1, 1);
    tc_check_alive_bytes(q, "\0\0", 2, 0);
    /* Subscription and delivery by a NUL-bearing id. */
    tc_subscribe_bytes(q, "a\0b", 3, 1);
    tc_send_data(a, "nul", 3, 1);
    tc_expect_data(q, "nul", 3);
    tc_send_data(b, "plain", 5, 1);
    tc_expect_nothing_pending(q);
    tc_close(a);
    tc_close(b);
    tc_close(c);
    tc_close(q);
}

static void test_ids_with_high_bytes(void **state)
{
    static const uint8_t id1[] = {0xff, 0xfe, 0x80, 0x00, 0x7f};
    static const uint8_t id2[] = {0xff, 0xfe, 0x80, 0x00, 0x7e};
    static const uint8_t utf8[] = {0xe8, 0xae, 0xbe, 0xe5, 0xa4, 0x87}; /* 设备 */
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    tc_register_bytes(a, id1, sizeof id1, 1);
    tc_register_bytes(b, utf8, sizeof utf8, 1);
    tc_check_alive_bytes(q, id1, sizeof id1, 1);
    tc_check_alive_bytes(q, id2, sizeof id2, 0);
    tc_check_alive_bytes(q, utf8, sizeof utf8, 1);
    tc_subscribe_bytes(q, id1, sizeof id1, 1);
    tc_subscribe_bytes(q, id2, sizeof id2, 0);
    tc_send_data(a, "hi", 2, 1);
    tc_expect_data(q, "hi", 2);
    tc_close(a);
    tc_close(b);
    tc_close(q);
}

static void test_id_length_limits(void **state)
{
    uint8_t id[256];
    memset(id, 0xab, sizeof id);
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    /* 256 bytes: refused everywhere. */
    tc_register_bytes(a, id, 256, 0);
    tc_check_alive_bytes(q, id, 256, 0);
    tc_check_alive_bytes(q, id, 255, 0);
    tc_send_data(a, "x", 1, 0);
    /* 255 bytes: fine. */
    tc_register_bytes(a, id, 255, 1);
    tc_check_alive_bytes(q, id, 255, 1);
    tc_check_alive_bytes(q, id, 254, 0);
    tc_check_alive_bytes(q, id, 256, 0);
    tc_subscribe_bytes(q, id, 256, 0);
    tc_subscribe_bytes(q, id, 255, 1);
    tc_send_data(a, "long", 4, 1);
    tc_expect_data(q, "long", 4);
    /* A 256-byte REGISTER from a registered connection fails (81 00). */
    tc_register_bytes(b, id, 256, 0);
    assert_true(tc_is_open(a));
    tc_check_alive_bytes(q, id, 255, 1);
    /* Empty id: 81 00. */
    tc_register_bytes(b, "", 0, 0);
    tc_send_data(b, "x", 1, 0);
    /* 1-byte ids are fine. */
    tc_register_bytes(b, "1", 1, 1);
    tc_check_alive_bytes(q, "1", 1, 1);
    tc_close(a);
    tc_close(b);
    tc_close(q);
}

/* Far longer ids (up to the frame limit) are refused the same way and do
 * not disturb the connection. */
static void test_very_long_ids(void **state)
{
    static uint8_t id[4000];
    memset(id, 'L', sizeof id);
    int a = tc_connect(tc_port(state));
    tc_register_bytes(a, id, sizeof id, 0);
    tc_subscribe_bytes(a, id, sizeof id, 0);
    tc_check_alive_bytes(a, id, sizeof id, 0);
    tc_send_cmd(a, P2P_CMD_UNSUBSCRIBE, id, sizeof id);
    tc_expect_reply(a, P2P_CMD_UNSUBSCRIBE, 1);
    assert_true(tc_is_open(a));
    tc_close(a);
}

static void test_exact_comparison(void **state)
{
    int a = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    tc_register(a, "Device", 1);
    tc_check_alive_bytes(q, "Device", 6, 1);
    tc_check_alive_bytes(q, "device", 6, 0);
    tc_check_alive_bytes(q, "DEVICE", 6, 0);
    tc_check_alive_bytes(q, "Devic", 5, 0);
    tc_check_alive_bytes(q, "Device ", 7, 0);
    tc_check_alive_bytes(q, " Device", 7, 0);
    tc_check_alive_bytes(q, "Device\0", 7, 0);
    tc_check_alive_bytes(q, "Device\n", 7, 0);
    tc_subscribe(q, "device", 0);
    tc_close(a);
    tc_close(q);
}

/* No id is special: "delete" (the original's marker for "no id") and ids
 * that look like wildcards or numbers are ordinary ids. An unregistered
 * connection closing does not remove "delete". */
static void test_no_special_ids(void **state)
{
    static const char *const ids[] = {"delete", "*", "0", "null", "..", "/", "%s"};
    enum { N = sizeof ids / sizeof ids[0] };
    int fds[N];
    int q = tc_connect(tc_port(state));
    for (int i = 0; i < N; i++) {
        fds[i] = tc_connect(tc_port(state));
        tc_register(fds[i], ids[i], 1);
    }
    for (int i = 0; i < N; i++)
        tc_check_alive(q, ids[i], 1);
    int anon = tc_connect(tc_port(state));
    tc_unregister(anon);
    tc_close_and_wait(anon);
    tc_check_alive(q, "delete", 1);
    tc_check_alive(q, "**", 0);
    tc_subscribe(q, "delete", 1);
    tc_send_data(fds[0], "d", 1, 1);
    tc_expect_data(q, "d", 1);
    for (int i = 0; i < N; i++)
        tc_close(fds[i]);
    tc_close(q);
}

/* Ids differing only in their last byte, many of them, all distinct. */
static void test_many_similar_ids(void **state)
{
    enum { N = 100 };
    int fds[N];
    uint8_t id[200];
    memset(id, 's', sizeof id);
    int q = tc_connect(tc_port(state));
    for (int i = 0; i < N; i++) {
        fds[i] = tc_connect(tc_port(state));
        id[sizeof id - 1] = (uint8_t)i;
        tc_register_bytes(fds[i], id, sizeof id, 1);
    }
    for (int i = 0; i < N; i++) {
        id[sizeof id - 1] = (uint8_t)i;
        tc_check_alive_bytes(q, id, sizeof id, 1);
    }
    id[sizeof id - 1] = (uint8_t)N;
    tc_check_alive_bytes(q, id, sizeof id, 0);
    /* Every holder is still open: no id collided with another. */
    for (int i = 0; i < N; i++)
        assert_true(tc_is_open(fds[i]));
    for (int i = 0; i < N; i += 2)
        tc_close_and_wait(fds[i]);
    for (int i = 0; i < N; i++) {
        id[sizeof id - 1] = (uint8_t)i;
        tc_check_alive_bytes(q, id, sizeof id, i % 2 ? 1 : 0);
    }
    for (int i = 1; i < N; i += 2)
        tc_close(fds[i]);
    tc_close(q);
}

/* Churn: one connection registers a new id thousands of times (each
 * releasing the previous one) while another holds a fixed set; lookups stay
 * exact throughout. */
static void test_id_churn(void **state)
{
    enum { FIXED = 50, CYCLES = 3000 };
    int fixed[FIXED];
    char id[32];
    tc_connect_registered(tc_port(state), fixed, FIXED, "fixed-");
    int churn = tc_connect(tc_port(state));
    int q = tc_connect(tc_port(state));
    for (int c = 0; c < CYCLES; c++) {
        int n = snprintf(id, sizeof id, "churn-%d", c);
        tc_send_cmd(churn, P2P_CMD_REGISTER, id, (size_t)n);
        if (c % 3 == 0)
            tc_send_cmd(churn, P2P_CMD_UNREGISTER, NULL, 0);
    }
    for (int c = 0; c < CYCLES; c++) {
        tc_expect_reply(churn, P2P_CMD_REGISTER, 1);
        if (c % 3 == 0)
            tc_expect_reply(churn, P2P_CMD_UNREGISTER, 1);
    }
    /* Only the last id is online (CYCLES - 1 is not a multiple of 3). */
    for (int c = 0; c < CYCLES; c += 97) {
        int n = snprintf(id, sizeof id, "churn-%d", c);
        tc_check_alive_bytes(q, id, (size_t)n, 0);
    }
    int n = snprintf(id, sizeof id, "churn-%d", CYCLES - 1);
    tc_check_alive_bytes(q, id, (size_t)n, 1);
    for (int i = 0; i < FIXED; i++) {
        n = snprintf(id, sizeof id, "fixed-%d", i);
        tc_check_alive_bytes(q, id, (size_t)n, 1);
    }
    for (int i = 0; i < FIXED; i++)
        tc_close(fixed[i]);
    tc_close(churn);
    tc_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_ids_with_nul_bytes),
        TC_SERVER_TEST(test_ids_with_high_bytes),
        TC_SERVER_TEST(test_id_length_limits),
        TC_SERVER_TEST(test_very_long_ids),
        TC_SERVER_TEST(test_exact_comparison),
        TC_SERVER_TEST(test_no_special_ids),
        TC_SERVER_TEST(test_many_similar_ids),
        TC_SERVER_TEST(test_id_churn),
    };
    return cmocka_run_group_tests_name("v1 ids", tests, NULL, NULL);
}
