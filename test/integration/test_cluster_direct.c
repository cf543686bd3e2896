/*
 * test_cluster_direct.c - direct-path rendezvous across the relays of a
 * cluster (issue 14; stupidp2p(7), DIRECT PATHS and CLUSTERS; the message
 * is doc/cluster.md's "direct"), on the wire against three real relays and
 * nats-server (skipped with a SKIP line without it):
 *
 *  - a whole rendezvous between a device on relay 0 and one on relay 1:
 *    the OFFER reaches the target with the reflexive candidate relay 0
 *    sees for the offerer, the attempt id and secret of the offerer's
 *    reply; the ANSWER comes back with the reflexive candidate relay 1
 *    sees for the target; SYNC and MARK follow; both RESULTs are counted
 *    once, on the offerer's relay (where the attempt is), none on the
 *    target's; a second RESULT is dropped and counted there;
 *  - a takeover on the target's relay after the ANSWER: the SYNC, bound to
 *    the connection that answered, is not delivered to the new holder
 *    (counted on that relay); a target that moved to another relay gets
 *    no SYNC either (3 to the offerer, the attempt is over);
 *  - PEERS across relays, both ways: an offer between devices that may not
 *    reach each other is refused (5) on the offerer's relay and counted
 *    there, and nothing reaches the target;
 *  - malformed direct-path messages published on a relay's subject by a
 *    stranger on NATS (cut short, a request that never crosses, trailing
 *    bytes, an unknown kind) are counted and dropped, and one for an
 *    earlier run of the relay is dropped as not here; the relay goes on.
 * Client-library paths across relays are test/client/test_client_cluster_direct.c.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "cluster.h"
#include "codec.h"
#include "harness.h"
#include "protocol.h"
#include "v2.h"

#define ID(s) (const uint8_t *)(s), (sizeof(s) - 1)

static const uint8_t k_nonce_a[32] = {0xa0, 0xa1, 0xa2};
static const uint8_t k_nonce_b[32] = {0xb0, 0xb1, 0xb2};

static const char k_results_direct[] = "stupidp2p_direct_results_total{outcome=\"direct\"}";
static const char k_not_here[] = "stupidp2p_cluster_direct_total{kind=\"not_here\"}";

/* Offers from `from` to target (held on another relay) and returns the
 * attempt id; the event the target got is checked against the reply and
 * against the offerer's reflexive candidate as its relay sees it. */
static uint32_t offer_across(int from, int target, const char *target_id, const char *from_id)
{
    tc_send_offer(from, target_id, k_nonce_a, NULL, 0);
    uint8_t reply[64], ev[P2P_DIRECT_MAX + 16];
    assert_int_equal(tc_recv_frame(from, reply, sizeof reply, TC_WAIT_MS), P2P_DIRECT_OFFER_REPLY_SIZE);
    struct p2p_message m;
    assert_int_equal(p2p_message_parse(reply, P2P_DIRECT_OFFER_REPLY_SIZE, &m), P2P_PARSE_OK);
    assert_int_equal(m.cmd, P2P_CMD_DIRECT_OFFER);
    assert_int_equal(m.status, P2P_STATUS_OK);
    struct p2p_direct d;
    tc_expect_direct_event(target, P2P_EVT_DIRECT_OFFER, ev, sizeof ev, &d);
    assert_int_equal(d.id_len, strlen(from_id));
    assert_memory_equal(d.id, from_id, d.id_len);
    assert_int_equal(d.attempt, m.attempt);
    assert_memory_equal(d.secret, m.data, P2P_DIRECT_SECRET_SIZE);
    assert_memory_equal(d.nonce, k_nonce_a, 32);
    assert_int_equal(d.candidate_count, 1);
    tc_expect_reflexive(&d.candidates[0], tc_local_port(from));
    return m.attempt;
}

/* The target accepts; the offerer gets the ANSWER event with the target's
 * reflexive candidate as the target's relay sees it. */
static void answer_across(int target, int offerer, const char *offerer_id, const char *target_id,
                          uint32_t attempt)
{
    uint8_t out[P2P_DIRECT_MAX], ev[P2P_DIRECT_MAX + 16];
    size_t len =
        p2p_encode_direct_answer(out, P2P_CMD_DIRECT_ANSWER, (const uint8_t *)offerer_id, strlen(offerer_id),
                                 attempt, P2P_DIRECT_ACCEPT, k_nonce_b, 4002, NULL, 0);
    tc_send_frame(target, out, len);
    tc_expect_reply(target, P2P_CMD_DIRECT_ANSWER, P2P_STATUS_OK);
    struct p2p_direct d;
    tc_expect_direct_event(offerer, P2P_EVT_DIRECT_ANSWER, ev, sizeof ev, &d);
    assert_memory_equal(d.id, target_id, strlen(target_id));
    assert_int_equal(d.attempt, attempt);
    assert_int_equal(d.accept, P2P_DIRECT_ACCEPT);
    assert_memory_equal(d.nonce, k_nonce_b, 32);
    assert_int_equal(d.candidate_count, 1);
    tc_expect_reflexive(&d.candidates[0], tc_local_port(target));
}

static void send_sync(int fd, const char *target_id, uint32_t attempt, uint8_t status)
{
    uint8_t out[P2P_DIRECT_MAX];
    tc_send_frame(fd, out,
                  p2p_encode_direct_sync(out, P2P_CMD_DIRECT_SYNC, (const uint8_t *)target_id,
                                         strlen(target_id), attempt));
    tc_expect_reply(fd, P2P_CMD_DIRECT_SYNC, status);
}

/* alice on relay 0, bob on relay 1, each online in the other's relay. */
static void connect_pair(struct relay_cluster *c, int *alice, int *bob)
{
    *alice = tc_v2_connect(cl_port(c, 0));
    tc_register(*alice, "alice", P2P_STATUS_OK);
    *bob = tc_v2_connect(cl_port(c, 1));
    tc_register(*bob, "bob", P2P_STATUS_OK);
    tc_wait_alive(*alice, "bob", 3, P2P_STATUS_OK, CL_WAIT_MS);
    tc_wait_alive(*bob, "alice", 5, P2P_STATUS_OK, CL_WAIT_MS);
}

static void test_rendezvous_across_relays(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int alice, bob;
    connect_pair(c, &alice, &bob);

    uint32_t attempt = offer_across(alice, bob, "bob", "alice");
    answer_across(bob, alice, "alice", "bob", attempt);
    uint8_t out[P2P_DIRECT_MAX];
    send_sync(alice, "bob", attempt, P2P_STATUS_OK);
    size_t len = p2p_encode_direct_sync(out, P2P_EVT_DIRECT_SYNC, ID("alice"), attempt);
    tc_expect_frame(bob, out, len);
    /* MARK both ways, after a SEND_TO that it must not overtake. */
    tc_send_to(alice, "bob", 3, "m1", 2);
    tc_expect_reply(alice, P2P_CMD_SEND_TO, P2P_STATUS_OK);
    len = p2p_encode_direct_mark(out, P2P_CMD_DIRECT_MARK, ID("bob"), attempt, P2P_MARK_SWITCH, 1);
    tc_send_frame(alice, out, len);
    tc_expect_reply(alice, P2P_CMD_DIRECT_MARK, P2P_STATUS_OK);
    tc_expect_deliver_str(bob, "alice", "m1");
    len = p2p_encode_direct_mark(out, P2P_EVT_DIRECT_MARK, ID("alice"), attempt, P2P_MARK_SWITCH, 1);
    tc_expect_frame(bob, out, len);
    len = p2p_encode_direct_mark(out, P2P_CMD_DIRECT_MARK, ID("alice"), attempt, P2P_MARK_FALLBACK, 7);
    tc_send_frame(bob, out, len);
    tc_expect_reply(bob, P2P_CMD_DIRECT_MARK, P2P_STATUS_OK);
    len = p2p_encode_direct_mark(out, P2P_EVT_DIRECT_MARK, ID("bob"), attempt, P2P_MARK_FALLBACK, 7);
    tc_expect_frame(alice, out, len);

    /* RESULTs: both counted on relay 0, where the attempt is. */
    len = p2p_encode_direct_result(out, ID("alice"), attempt, P2P_DIRECT_OUTCOME_DIRECT, 12);
    tc_send_frame(bob, out, len);
    tc_expect_reply(bob, P2P_CMD_DIRECT_RESULT, P2P_STATUS_OK);
    cl_wait_metric(c, 0, k_results_direct, 1, CL_WAIT_MS);
    len = p2p_encode_direct_result(out, ID("bob"), attempt, P2P_DIRECT_OUTCOME_DIRECT, 12);
    tc_send_frame(alice, out, len);
    tc_expect_reply(alice, P2P_CMD_DIRECT_RESULT, P2P_STATUS_OK);
    assert_true(cl_metric(c, 0, k_results_direct) == 2);
    /* A second RESULT from bob: answered 1 by relay 1, which cannot know,
     * and dropped on relay 0, counted. */
    double dropped = cl_metric(c, 0, k_not_here);
    len = p2p_encode_direct_result(out, ID("alice"), attempt, P2P_DIRECT_OUTCOME_DIRECT, 12);
    tc_send_frame(bob, out, len);
    tc_expect_reply(bob, P2P_CMD_DIRECT_RESULT, P2P_STATUS_OK);
    cl_wait_metric(c, 0, k_not_here, dropped + 1, CL_WAIT_MS);
    assert_true(cl_metric(c, 0, k_results_direct) == 2);

    /* Counted where each step was handled. */
    assert_true(cl_metric(c, 0, "stupidp2p_direct_offers_total{result=\"forwarded\"}") == 1);
    assert_true(cl_metric(c, 1, "stupidp2p_direct_offers_total{result=\"forwarded\"}") == 0);
    assert_true(cl_metric(c, 0, "stupidp2p_direct_answers_total{answer=\"accept\"}") == 1);
    assert_true(cl_metric(c, 1, "stupidp2p_direct_answers_total{answer=\"accept\"}") == 0);
    assert_true(cl_metric(c, 0, "stupidp2p_direct_marks_total") == 1);
    assert_true(cl_metric(c, 1, "stupidp2p_direct_marks_total") == 1);
    assert_true(cl_metric(c, 1, k_results_direct) == 0);
    /* relay 0 published the offer, the sync and a mark; relay 1 took them. */
    assert_true(cl_metric(c, 0, "stupidp2p_cluster_direct_total{kind=\"out\"}") == 3);
    assert_true(cl_metric(c, 1, "stupidp2p_cluster_direct_total{kind=\"in\"}") == 3);
    assert_true(cl_metric(c, 1, "stupidp2p_cluster_direct_total{kind=\"out\"}") == 4);
    assert_true(cl_metric(c, 0, "stupidp2p_cluster_direct_total{kind=\"in\"}") == 3);
    tc_expect_nothing_pending(alice);
    tc_expect_nothing_pending(bob);
    tc_close(alice);
    tc_close(bob);
}

/* A takeover of id, as a subscriber sees it: PRESENCE offline, online. */
static void expect_takeover_seen(int fd, const char *id)
{
    tc_expect_presence(fd, P2P_PRESENCE_OFFLINE, id);
    tc_expect_presence(fd, P2P_PRESENCE_ONLINE, id);
}

static void test_takeover_and_move_during_attempt(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    int alice, bob;
    connect_pair(c, &alice, &bob);
    /* alice follows bob: a takeover's PRESENCE tells her (and the test)
     * that relay 0 has seen it. */
    tc_v2_subscribe(alice, "bob", P2P_PRESENCE_ONLINE);

    /* Taken over on its own relay after answering: the SYNC is for the
     * connection that answered only. */
    uint32_t attempt = offer_across(alice, bob, "bob", "alice");
    answer_across(bob, alice, "alice", "bob", attempt);
    int bob2 = tc_v2_connect(cl_port(c, 1));
    tc_register(bob2, "bob", P2P_STATUS_OK);
    tc_expect_bye(bob, P2P_BYE_TAKEN_OVER);
    expect_takeover_seen(alice, "bob");
    double dropped = cl_metric(c, 1, k_not_here);
    send_sync(alice, "bob", attempt, P2P_STATUS_OK);
    cl_wait_metric(c, 1, k_not_here, dropped + 1, CL_WAIT_MS);
    tc_expect_nothing_pending(bob2);

    /* Moved to relay 2 after answering: once relay 0 knows, the SYNC is 3
     * and the attempt is over. */
    attempt = offer_across(alice, bob2, "bob", "alice");
    answer_across(bob2, alice, "alice", "bob", attempt);
    int bob3 = tc_v2_connect(cl_port(c, 2));
    tc_register(bob3, "bob", P2P_STATUS_OK);
    tc_expect_bye(bob2, P2P_BYE_TAKEN_OVER);
    expect_takeover_seen(alice, "bob");
    send_sync(alice, "bob", attempt, P2P_STATUS_OFFLINE);
    send_sync(alice, "bob", attempt, P2P_STATUS_OFFLINE);
    tc_expect_nothing_pending(bob3);
    tc_expect_nothing_pending(alice);
    tc_close(alice);
    tc_close(bob3);
}

/* The auth file of every relay: alice lets only bob reach her; bob lets
 * everyone. */
static int auth_setup(void **state)
{
    static struct cl_auth_cluster f;
    *state = &f;
    char text[4096] = "";
    tc_auth_line(text, sizeof text, "alice", TC_TOKEN_A, "bob");
    tc_auth_line(text, sizeof text, "bob", TC_TOKEN_B, "*");
    cl_auth_start(&f, text);
    return 0;
}

static int auth_teardown(void **state)
{
    cl_auth_stop(*state);
    return 0;
}

static void test_peers_across_relays(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = &((struct cl_auth_cluster *)*state)->c;
    static const char refused[] = "stupidp2p_direct_offers_total{result=\"refused\"}";
    int alice = tc_auth_connect(cl_port(c, 0), "alice", TC_TOKEN_A);
    int carol = tc_v2_connect(cl_port(c, 1));
    tc_register(carol, "carol", P2P_STATUS_OK);
    int bob = tc_auth_connect(cl_port(c, 2), "bob", TC_TOKEN_B);
    tc_wait_alive(alice, "carol", 5, P2P_STATUS_OK, CL_WAIT_MS);
    tc_wait_alive(bob, "alice", 5, P2P_STATUS_OK, CL_WAIT_MS);
    tc_wait_alive(alice, "bob", 3, P2P_STATUS_OK, CL_WAIT_MS);

    /* carol may not reach alice. */
    tc_send_offer(carol, "alice", k_nonce_a, NULL, 0);
    tc_expect_reply(carol, P2P_CMD_DIRECT_OFFER, P2P_STATUS_NOT_AUTHORIZED);
    assert_true(cl_metric(c, 1, refused) == 1);
    /* alice may reach carol (unlisted: open to all), but not back. */
    tc_send_offer(alice, "carol", k_nonce_a, NULL, 0);
    tc_expect_reply(alice, P2P_CMD_DIRECT_OFFER, P2P_STATUS_NOT_AUTHORIZED);
    assert_true(cl_metric(c, 0, refused) == 1);
    assert_true(cl_metric(c, 0, "stupidp2p_cluster_direct_total{kind=\"out\"}") == 0);
    assert_true(cl_metric(c, 1, "stupidp2p_cluster_direct_total{kind=\"out\"}") == 0);
    tc_expect_nothing_pending(alice);
    tc_expect_nothing_pending(carol);

    /* bob and alice may: the offer crosses from relay 2 to relay 0. */
    uint32_t attempt = offer_across(bob, alice, "alice", "bob");
    assert_int_not_equal(attempt, 0);
    assert_true(cl_metric(c, 2, "stupidp2p_direct_offers_total{result=\"forwarded\"}") == 1);
    tc_close(alice);
    tc_close(carol);
    tc_close(bob);
}

/* A stranger on NATS server 0 of the cluster: PUB of each payload to
 * subject, then PING, and PONG awaited (NATS has taken them, in order). */
static void nats_publish(struct relay_cluster *c, const char *subject, const uint8_t *const *payloads,
                         const size_t *lens, int n)
{
    char url[64];
    nats_node_url(&c->nats, 0, url, sizeof url);
    int fd = tc_connect((uint16_t)atoi(strrchr(url, ':') + 1));
    static const char hello[] = "CONNECT {\"verbose\":false,\"pedantic\":false}\r\n";
    tc_send_raw(fd, hello, sizeof hello - 1);
    for (int i = 0; i < n; i++) {
        char head[200];
        int h = snprintf(head, sizeof head, "PUB %s %zu\r\n", subject, lens[i]);
        tc_send_raw(fd, head, (size_t)h);
        tc_send_raw(fd, payloads[i], lens[i]);
        tc_send_raw(fd, "\r\n", 2);
    }
    tc_send_raw(fd, "PING\r\n", 6);
    char in[4096];
    size_t got = 0;
    int64_t until = cl_now_ms() + CL_WAIT_MS;
    while (got < sizeof in - 1) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        if (cl_now_ms() > until || poll(&p, 1, 100) < 0)
            tc_fail("NATS did not answer PING");
        if (p.revents == 0)
            continue;
        ssize_t r = read(fd, in + got, sizeof in - 1 - got);
        if (r <= 0)
            tc_fail("NATS closed the connection");
        got += (size_t)r;
        in[got] = '\0';
        if (strstr(in, "PONG\r\n") != NULL)
            break;
        if (strstr(in, "-ERR") != NULL)
            tc_fail("NATS: %s", in);
    }
    close(fd);
}

static void test_malformed_counted_and_dropped(void **state)
{
    CL_REQUIRE_NATS();
    struct relay_cluster *c = *state;
    static const char malformed[] = "stupidp2p_cluster_dropped_total{reason=\"malformed\"}";
    int alice, bob;
    connect_pair(c, &alice, &bob);
    /* Direct messages for bob on relay 1 (node r1), from nobody. */
    uint8_t head[34] = {1, 8};
    uint8_t sync_event[P2P_DIRECT_MAX], sync_request[P2P_DIRECT_MAX];
    size_t ev_len = p2p_encode_direct_sync(sync_event, P2P_EVT_DIRECT_SYNC, ID("alice"), 5);
    size_t req_len = p2p_encode_direct_sync(sync_request, P2P_CMD_DIRECT_SYNC, ID("alice"), 5);
    uint8_t cut[40], request[80], trailing[80], unknown[40], stale[80];
    memcpy(cut, head, 34);
    memcpy(cut + 34, sync_event, 3);
    memcpy(request, head, 34);
    memcpy(request + 34, sync_request, req_len);
    memcpy(trailing, head, 34);
    memcpy(trailing + 34, sync_event, ev_len);
    trailing[34 + ev_len] = 0;
    memcpy(unknown, cut, sizeof unknown);
    unknown[1] = 9;
    memcpy(stale, head, 34);
    stale[25] = 1; /* to relay: incarnation 1, not relay 1's */
    memcpy(stale + 34, sync_event, ev_len);
    const uint8_t *bad[] = {head, cut, request, trailing, unknown};
    const size_t bad_lens[] = {10, 37, 34 + req_len, 34 + ev_len + 1, 37};
    double before = cl_metric(c, 1, malformed);
    nats_publish(c, "sp.to.r1.626f62", bad, bad_lens, 5);
    cl_wait_metric(c, 1, malformed, before + 5, CL_WAIT_MS);
    const uint8_t *old[] = {stale};
    const size_t old_len[] = {34 + ev_len};
    double not_here = cl_metric(c, 1, k_not_here);
    nats_publish(c, "sp.to.r1.626f62", old, old_len, 1);
    cl_wait_metric(c, 1, k_not_here, not_here + 1, CL_WAIT_MS);
    assert_true(cl_metric(c, 1, malformed) == before + 5);
    tc_expect_nothing_pending(bob);
    /* The relay goes on: a rendezvous across it still works. */
    uint32_t attempt = offer_across(alice, bob, "bob", "alice");
    answer_across(bob, alice, "alice", "bob", attempt);
    tc_close(alice);
    tc_close(bob);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        CL_TEST(test_rendezvous_across_relays),
        CL_TEST(test_takeover_and_move_during_attempt),
        CL_TEST(test_malformed_counted_and_dropped),
        cmocka_unit_test_setup_teardown(test_peers_across_relays, auth_setup, auth_teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
