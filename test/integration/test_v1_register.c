/*
 * test_v1_register.c - v1 REGISTER (0x01): the reply, the id going online,
 * registering again, a second id releasing the first, the empty id.
 * Takeover of an id held by another connection is test_v1_takeover.c.
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

/* 00 00 00 04 01 'd' 'e' 'v' is answered by exactly 00 00 00 02 81 01. */
static void test_register_reply_on_the_wire(void **state)
{
    int a = tc_connect(tc_port(state));
    static const uint8_t req[] = {0, 0, 0, 4, 0x01, 'd', 'e', 'v'};
    static const uint8_t rep[] = {0, 0, 0, 2, 0x81, 0x01};
    tc_send_raw(a, req, sizeof req);
    tc_expect_raw(a, rep, sizeof rep);
    tc_expect_nothing_pending(a);
    tc_close(a);
}

static void test_register_makes_id_online(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    tc_check_alive(b, "dev-a", 0);
    tc_register(a, "dev-a", 1);
    tc_check_alive(b, "dev-a", 1);
    tc_check_alive(a, "dev-a", 1);
    tc_close(a);
    tc_close(b);
}

/* Registering the id a connection already holds succeeds and changes
 * nothing: the connection is not taken over by itself. */
static void test_register_same_id_twice(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int s = tc_connect(tc_port(state));
    tc_register(a, "twice", 1);
    tc_subscribe(s, "twice", 1);
    tc_register(a, "twice", 1);
    tc_register(a, "twice", 1);
    assert_true(tc_is_open(a));
    tc_check_alive(b, "twice", 1);
    tc_send_data(a, "x", 1, 1);
    tc_expect_data(s, "x", 1);
    tc_expect_nothing_pending(s);
    tc_expect_nothing_pending(a);
    tc_close(a);
    tc_close(b);
    tc_close(s);
}

/* A connection holds at most one id: registering a second releases the
 * first, and data now goes to the second id's subscribers. */
static void test_second_id_releases_first(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    int s1 = tc_connect(tc_port(state));
    int s2 = tc_connect(tc_port(state));
    tc_register(a, "first", 1);
    tc_register(b, "watcher", 1);
    tc_subscribe(s1, "first", 1);
    tc_register(a, "second", 1);
    tc_check_alive(b, "first", 0);
    tc_check_alive(b, "second", 1);
    tc_subscribe(s2, "second", 1);
    tc_subscribe(s2, "first", 0);
    tc_send_data(a, "hello", 5, 1);
    tc_expect_data(s2, "hello", 5);
    tc_expect_nothing_pending(s1);
    tc_expect_nothing_pending(s2);
    /* The released id is free for anyone, without closing a. */
    int c = tc_connect(tc_port(state));
    tc_register(c, "first", 1);
    assert_true(tc_is_open(a));
    tc_check_alive(b, "second", 1);
    tc_close(a);
    tc_close(b);
    tc_close(c);
    tc_close(s1);
    tc_close(s2);
}

static void test_empty_id_fails(void **state)
{
    int a = tc_connect(tc_port(state));
    static const uint8_t req[] = {0, 0, 0, 1, 0x01};
    static const uint8_t rep[] = {0, 0, 0, 2, 0x81, 0x00};
    tc_send_raw(a, req, sizeof req);
    tc_expect_raw(a, rep, sizeof rep);
    /* Still no id: SEND is refused. The connection stays open. */
    tc_send_data(a, "x", 1, 0);
    assert_true(tc_is_open(a));
    tc_close(a);
}

/* No registration is needed for anything but SEND; an unregistered
 * connection that registers later works normally. */
static void test_register_after_other_commands(void **state)
{
    int a = tc_connect(tc_port(state));
    int b = tc_connect(tc_port(state));
    tc_check_alive(a, "late", 0);
    tc_send_data(a, "x", 1, 0);
    tc_register(a, "late", 1);
    tc_check_alive(b, "late", 1);
    tc_send_data(a, "x", 1, 1);
    tc_close(a);
    tc_close(b);
}

/* Many connections, each with its own id, all online at once. */
static void test_many_ids_online(void **state)
{
    enum { N = 64 };
    int fds[N];
    char id[32];
    tc_connect_registered(tc_port(state), fds, N, "device-");
    int q = tc_connect(tc_port(state));
    for (int i = 0; i < N; i++) {
        snprintf(id, sizeof id, "device-%d", i);
        tc_check_alive(q, id, 1);
    }
    tc_check_alive(q, "device-64", 0);
    for (int i = 0; i < N; i++)
        assert_true(tc_is_open(fds[i]));
    for (int i = 0; i < N; i++)
        tc_close(fds[i]);
    tc_close(q);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_register_reply_on_the_wire),
        TC_SERVER_TEST(test_register_makes_id_online),
        TC_SERVER_TEST(test_register_same_id_twice),
        TC_SERVER_TEST(test_second_id_releases_first),
        TC_SERVER_TEST(test_empty_id_fails),
        TC_SERVER_TEST(test_register_after_other_commands),
        TC_SERVER_TEST(test_many_ids_online),
    };
    return cmocka_run_group_tests_name("v1 REGISTER", tests, NULL, NULL);
}
