/*
 * test_v2_direct.c - the server's part in direct paths on the wire
 * (stupidp2p(7), DIRECT PATHS), against the real binary on 127.0.0.1:
 *
 *  - a whole rendezvous: the OFFER reaches the target with the offerer's
 *    reflexive candidate (the address and port the server sees for its
 *    connection, first) and its own candidates, the attempt id and secret
 *    the offerer's reply carries; the ANSWER comes back with the target's;
 *    SYNC and MARK are forwarded; each side's RESULT is counted once, in
 *    the counters the server logs on SIGUSR1 (as in /metrics);
 *  - refusals, each with its status and nothing forwarded: malformed
 *    offers (cut short, a candidate of the server's kind, port 0, 9
 *    candidates, the caller's own id), an unregistered caller, an offline
 *    or v1 target; a v1 session's offer is ignored without a reply;
 *  - PEERS both ways: a device may offer only to a device that may also
 *    reach it back.
 * The attempt table's bound and expiry and the rate limit are unit-tested
 * (test/unit/relay/test_relay_direct.cpp), where the clock is moved by hand.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <string.h>
#include <sys/socket.h>

#include "auth.h"
#include "codec.h"
#include "harness.h"
#include "protocol.h"
#include "v2.h"

#define ID(s) (const uint8_t *)(s), (sizeof(s) - 1)

static const uint8_t k_nonce_a[32] = {0xa0, 0xa1, 0xa2};
static const uint8_t k_nonce_b[32] = {0xc0, 0xc1, 0xc2};

static struct p2p_candidate lan(uint16_t port, uint8_t last)
{
    struct p2p_candidate c;
    memset(&c, 0, sizeof c);
    c.kind = P2P_CANDIDATE_LAN;
    c.port = port;
    c.addr_len = 4;
    c.addr[0] = 192;
    c.addr[1] = 168;
    c.addr[2] = 1;
    c.addr[3] = last;
    return c;
}

static void send_offer(int fd, const char *target, const struct p2p_candidate *c, size_t n)
{
    tc_send_offer(fd, target, k_nonce_a, c, n);
}

static void test_rendezvous_on_the_wire(void **state)
{
    struct p2p_server *srv = *state;
    int alice = tc_v2_connect(srv->port), bob = tc_v2_connect(srv->port);
    tc_register(alice, "alice", P2P_STATUS_OK);
    tc_register(bob, "bob", P2P_STATUS_OK);

    struct p2p_candidate mine = lan(50001, 10);
    send_offer(alice, "bob", &mine, 1);
    uint8_t ev[P2P_DIRECT_MAX + 16], reply[64], out[P2P_DIRECT_MAX];
    struct p2p_direct d;
    tc_expect_direct_event(bob, P2P_EVT_DIRECT_OFFER, ev, sizeof ev, &d);
    assert_int_equal(d.id_len, 5);
    assert_memory_equal(d.id, "alice", 5);
    assert_memory_equal(d.nonce, k_nonce_a, 32);
    assert_int_equal(d.local_port, 4001);
    assert_int_equal(d.candidate_count, 2);
    tc_expect_reflexive(&d.candidates[0], tc_local_port(alice));
    assert_memory_equal(&d.candidates[1], &mine, sizeof mine);
    uint32_t attempt = d.attempt;
    uint8_t secret[32];
    memcpy(secret, d.secret, 32);
    /* The offerer's reply: the same attempt and secret. */
    assert_int_equal(tc_recv_frame(alice, reply, sizeof reply, TC_WAIT_MS), P2P_DIRECT_OFFER_REPLY_SIZE);
    struct p2p_message m;
    assert_int_equal(p2p_message_parse(reply, P2P_DIRECT_OFFER_REPLY_SIZE, &m), P2P_PARSE_OK);
    assert_int_equal(m.cmd, P2P_CMD_DIRECT_OFFER);
    assert_int_equal(m.status, P2P_STATUS_OK);
    assert_int_equal(m.attempt, attempt);
    assert_memory_equal(m.data, secret, 32);

    /* The answer, with bob's reflexive candidate in front of his own. */
    struct p2p_candidate his = lan(50002, 20);
    size_t len = p2p_encode_direct_answer(out, P2P_CMD_DIRECT_ANSWER, ID("alice"), attempt, P2P_DIRECT_ACCEPT,
                                          k_nonce_b, 4002, &his, 1);
    tc_send_frame(bob, out, len);
    tc_expect_reply(bob, P2P_CMD_DIRECT_ANSWER, P2P_STATUS_OK);
    tc_expect_direct_event(alice, P2P_EVT_DIRECT_ANSWER, ev, sizeof ev, &d);
    assert_memory_equal(d.id, "bob", 3);
    assert_int_equal(d.attempt, attempt);
    assert_int_equal(d.accept, P2P_DIRECT_ACCEPT);
    assert_memory_equal(d.nonce, k_nonce_b, 32);
    assert_int_equal(d.candidate_count, 2);
    tc_expect_reflexive(&d.candidates[0], tc_local_port(bob));
    assert_memory_equal(&d.candidates[1], &his, sizeof his);

    /* SYNC and MARK, forwarded byte for byte but for the id. */
    len = p2p_encode_direct_sync(out, P2P_CMD_DIRECT_SYNC, ID("bob"), attempt);
    tc_send_frame(alice, out, len);
    tc_expect_reply(alice, P2P_CMD_DIRECT_SYNC, P2P_STATUS_OK);
    len = p2p_encode_direct_sync(out, P2P_EVT_DIRECT_SYNC, ID("alice"), attempt);
    tc_expect_frame(bob, out, len);
    len = p2p_encode_direct_mark(out, P2P_CMD_DIRECT_MARK, ID("bob"), attempt, P2P_MARK_SWITCH, 1);
    tc_send_frame(alice, out, len);
    tc_expect_reply(alice, P2P_CMD_DIRECT_MARK, P2P_STATUS_OK);
    len = p2p_encode_direct_mark(out, P2P_EVT_DIRECT_MARK, ID("alice"), attempt, P2P_MARK_SWITCH, 1);
    tc_expect_frame(bob, out, len);

    /* One RESULT a side; a second is not counted. */
    len = p2p_encode_direct_result(out, ID("bob"), attempt, P2P_DIRECT_OUTCOME_DIRECT, 12);
    tc_send_frame(alice, out, len);
    tc_expect_reply(alice, P2P_CMD_DIRECT_RESULT, P2P_STATUS_OK);
    tc_send_frame(alice, out, len);
    tc_expect_reply(alice, P2P_CMD_DIRECT_RESULT, P2P_STATUS_OFFLINE);
    len = p2p_encode_direct_result(out, ID("alice"), attempt, P2P_DIRECT_OUTCOME_DIRECT, 12);
    tc_send_frame(bob, out, len);
    tc_expect_reply(bob, P2P_CMD_DIRECT_RESULT, P2P_STATUS_OK);
    tc_expect_nothing_pending(alice);
    tc_expect_nothing_pending(bob);

    kill(srv->pid, SIGUSR1);
    tc_wait_log(srv, "direct_results{outcome=\"direct\"}=2", 1);
    tc_wait_log(srv, "direct_offers{result=\"forwarded\"}=1", 1);
    tc_wait_log(srv, "direct_answers{answer=\"accept\"}=1", 1);
    tc_wait_log(srv, "direct_marks=1", 1);
    tc_close(alice);
    tc_close(bob);
}

/* A payload cut short by one byte, and other malformed offers: 90 04. */
static void test_refusals(void **state)
{
    struct p2p_server *srv = *state;
    int alice = tc_v2_connect(srv->port), bob = tc_v2_connect(srv->port), anon = tc_v2_connect(srv->port);
    int old = tc_connect(srv->port);
    tc_register(alice, "alice", P2P_STATUS_OK);
    tc_register(bob, "bob", P2P_STATUS_OK);
    tc_register(old, "old", P2P_STATUS_OK);
    uint8_t out[P2P_DIRECT_MAX];
    struct p2p_candidate c[9];
    for (int i = 0; i < 9; i++)
        c[i] = lan((uint16_t)(5000 + i), (uint8_t)i);
    size_t len = p2p_encode_direct_offer(out, ID("bob"), k_nonce_a, 4001, c, 1);
    tc_send_frame(alice, out, len - 1);
    tc_expect_reply(alice, P2P_CMD_DIRECT_OFFER, P2P_STATUS_BAD_ARGUMENT);
    len = p2p_encode_direct_offer(out, ID("bob"), k_nonce_a, 4001, c, 9);
    tc_send_frame(alice, out, len);
    tc_expect_reply(alice, P2P_CMD_DIRECT_OFFER, P2P_STATUS_BAD_ARGUMENT);
    c[0].kind = P2P_CANDIDATE_REFLEXIVE; /* only the server adds those */
    send_offer(alice, "bob", c, 1);
    tc_expect_reply(alice, P2P_CMD_DIRECT_OFFER, P2P_STATUS_BAD_ARGUMENT);
    c[0] = lan(0, 1);
    send_offer(alice, "bob", c, 1);
    tc_expect_reply(alice, P2P_CMD_DIRECT_OFFER, P2P_STATUS_BAD_ARGUMENT);
    send_offer(alice, "alice", NULL, 0);
    tc_expect_reply(alice, P2P_CMD_DIRECT_OFFER, P2P_STATUS_BAD_ARGUMENT);
    send_offer(anon, "bob", NULL, 0);
    tc_expect_reply(anon, P2P_CMD_DIRECT_OFFER, P2P_STATUS_NOT_REGISTERED);
    send_offer(alice, "nobody", NULL, 0);
    tc_expect_reply(alice, P2P_CMD_DIRECT_OFFER, P2P_STATUS_OFFLINE);
    send_offer(alice, "old", NULL, 0);
    tc_expect_reply(alice, P2P_CMD_DIRECT_OFFER, P2P_STATUS_UNSUPPORTED);
    /* The other requests, malformed. */
    static const uint8_t cut_answer[] = {0x11, 0x05, 'a', 'l', 'i', 'c', 'e', 0, 0, 0};
    tc_send_frame(bob, cut_answer, sizeof cut_answer);
    tc_expect_reply(bob, P2P_CMD_DIRECT_ANSWER, P2P_STATUS_BAD_ARGUMENT);
    static const uint8_t bad_mark[] = {0x13, 0x05, 'a', 'l', 'i', 'c', 'e', 0, 0, 0, 1, 9, 0, 0, 0, 0, 0, 0, 0, 0};
    tc_send_frame(bob, bad_mark, sizeof bad_mark);
    tc_expect_reply(bob, P2P_CMD_DIRECT_MARK, P2P_STATUS_BAD_ARGUMENT);
    /* An event code from a client is unsupported, as every event's is. */
    static const uint8_t event[] = {P2P_EVT_DIRECT_SYNC, 1, 'a', 0, 0, 0, 1};
    tc_send_frame(bob, event, sizeof event);
    tc_expect_reply(bob, P2P_EVT_DIRECT_SYNC, P2P_STATUS_UNSUPPORTED);
    /* A v1 session's offer: ignored, as the original ignored what it did
     * not know; the heartbeat after it is answered first. */
    send_offer(old, "bob", NULL, 0);
    tc_send_cmd(old, P2P_CMD_HEARTBEAT, NULL, 0);
    tc_expect_reply(old, P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
    tc_expect_nothing_pending(bob);
    tc_expect_nothing_pending(alice);
    kill(srv->pid, SIGUSR1);
    tc_wait_log(srv, "direct_offers{result=\"refused\"}=8", 1);
    tc_close(alice);
    tc_close(bob);
    tc_close(anon);
    tc_close(old);
}

/* alice lets bob and carol reach her; bob lets everyone; carol only bob.
 * carol may reach alice but alice may not reach carol: no offer either
 * way. bob and alice may. A stranger may offer to no one protected. */
static void test_peers_both_ways(void **state)
{
    (void)state;
    struct tc_auth_server a;
    char text[4096] = "";
    tc_auth_line(text, sizeof text, "alice", TC_TOKEN_A, "bob,carol");
    tc_auth_line(text, sizeof text, "bob", TC_TOKEN_B, "*");
    tc_auth_line(text, sizeof text, "carol", TC_TOKEN_B, "bob");
    tc_auth_server_start(&a, text, NULL);
    int alice = tc_auth_connect(a.srv.port, "alice", TC_TOKEN_A);
    int bob = tc_auth_connect(a.srv.port, "bob", TC_TOKEN_B);
    int carol = tc_auth_connect(a.srv.port, "carol", TC_TOKEN_B);
    int mallory = tc_v2_connect(a.srv.port);
    tc_register(mallory, "mallory", P2P_STATUS_OK);

    send_offer(carol, "alice", NULL, 0);
    tc_expect_reply(carol, P2P_CMD_DIRECT_OFFER, P2P_STATUS_NOT_AUTHORIZED);
    send_offer(alice, "carol", NULL, 0);
    tc_expect_reply(alice, P2P_CMD_DIRECT_OFFER, P2P_STATUS_NOT_AUTHORIZED);
    send_offer(mallory, "alice", NULL, 0);
    tc_expect_reply(mallory, P2P_CMD_DIRECT_OFFER, P2P_STATUS_NOT_AUTHORIZED);
    /* mallory may reach bob, bob may not reach mallory? He may: mallory is
     * not listed, so everyone may reach it. */
    send_offer(mallory, "bob", NULL, 0);
    uint8_t ev[P2P_DIRECT_MAX + 16];
    struct p2p_direct d;
    tc_expect_direct_event(bob, P2P_EVT_DIRECT_OFFER, ev, sizeof ev, &d);
    assert_int_equal(tc_recv_frame(mallory, ev, sizeof ev, TC_WAIT_MS), P2P_DIRECT_OFFER_REPLY_SIZE);
    tc_expect_nothing_pending(alice);
    tc_expect_nothing_pending(carol);

    send_offer(bob, "alice", NULL, 0);
    tc_expect_direct_event(alice, P2P_EVT_DIRECT_OFFER, ev, sizeof ev, &d);
    assert_memory_equal(d.id, "bob", 3);
    tc_close(alice);
    tc_close(bob);
    tc_close(carol);
    tc_close(mallory);
    tc_auth_server_stop(&a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_rendezvous_on_the_wire),
        TC_SERVER_TEST(test_refusals),
        cmocka_unit_test(test_peers_both_ways),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
