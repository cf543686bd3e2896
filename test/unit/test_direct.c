/*
 * test_direct.c - the direct-path layouts of src/common/codec.c and the
 * proof of src/common/direct_proof.c, byte for byte, and the worked example
 * of man/stupidp2p.7 (DIRECT PATHS, "Example").
 *
 * The example's two proofs were computed independently (Python's hmac)
 * when the specification was written. The test builds every frame of the
 * example with the codec and the proof code and checks that the page shows
 * exactly those bytes: the block between the DIRECT-EXAMPLE-BEGIN and
 * DIRECT-EXAMPLE-END comments, every two-hex-digit token a byte (hex.h).
 * Every request is then fed to the parser whole (OK, every field back) and
 * as each shorter prefix, in a heap block of exactly that size, which must
 * be BAD_ARGUMENT (events: MALFORMED); malformed candidates and counts are
 * refused; a proof fails for the other role, another attempt, nonce, id or
 * secret.
 *
 * Links codec.c, direct_proof.c, sha256.c and hmac_sha256.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "direct_proof.h"
#include "hex.h"
#include "protocol.h"

#define ID(s) (const uint8_t *)(s), (sizeof(s) - 1)

static const char k_mac_offerer_hex[] = "594c5a28b96dbc975710072cc03834ab5d629156d5c0140fbdb8bda860fa437b";
static const char k_mac_target_hex[] = "aeac9edaa2d2e13749a30667ea1e74887032ff5503814d99b1b6ec5086810942";

/* The example: alice offers to bob, attempt 7, secret 00..1f, alice's
 * nonce a0..bf, bob's c0..df. */
struct example {
    uint8_t secret[32], nonce_a[32], nonce_b[32];
    struct p2p_candidate lan_a, lan_b, refl_a, refl_b;
};

static void fill_run(uint8_t *p, size_t n, uint8_t first)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(first + i);
}

static struct p2p_candidate candidate(uint8_t kind, uint16_t port, uint8_t a, uint8_t b, uint8_t c, uint8_t d)
{
    struct p2p_candidate x;
    memset(&x, 0, sizeof x);
    x.kind = kind;
    x.port = port;
    x.addr_len = 4;
    x.addr[0] = a;
    x.addr[1] = b;
    x.addr[2] = c;
    x.addr[3] = d;
    return x;
}

static void make_example(struct example *ex)
{
    fill_run(ex->secret, 32, 0x00);
    fill_run(ex->nonce_a, 32, 0xa0);
    fill_run(ex->nonce_b, 32, 0xc0);
    ex->lan_a = candidate(P2P_CANDIDATE_LAN, 50001, 192, 168, 1, 10);
    ex->lan_b = candidate(P2P_CANDIDATE_LAN, 50002, 10, 0, 0, 5);
    ex->refl_a = candidate(P2P_CANDIDATE_REFLEXIVE, 40001, 198, 51, 100, 7);
    ex->refl_b = candidate(P2P_CANDIDATE_REFLEXIVE, 40002, 192, 0, 2, 9);
}

static void mac_of(const struct example *ex, uint8_t role, uint8_t mac[32])
{
    p2p_direct_mac(ex->secret, role, 7, ID("alice"), ID("bob"), ex->nonce_a, ex->nonce_b, mac);
}

/* Appends one frame (header and payload) to buf. */
static void put_frame(uint8_t *buf, size_t *n, const uint8_t *payload, size_t len)
{
    p2p_frame_header_encode(buf + *n, (uint32_t)len);
    memcpy(buf + *n + 4, payload, len);
    *n += 4 + len;
}

/* Every payload of the example, in the page's order; returns how many. */
static size_t example_payloads(const struct example *ex, uint8_t p[][P2P_DIRECT_MAX], size_t *len)
{
    struct p2p_candidate ca[2] = {ex->refl_a, ex->lan_a}, cb[2] = {ex->refl_b, ex->lan_b};
    uint8_t mac[32];
    size_t k = 0;
    len[k] = p2p_encode_direct_offer(p[k], ID("bob"), ex->nonce_a, 40001, &ex->lan_a, 1), k++;
    len[k] = p2p_encode_direct_offer_event(p[k], ID("alice"), 7, ex->secret, ex->nonce_a, 40001, ca, 2), k++;
    len[k] = p2p_encode_direct_offer_reply(p[k], 7, ex->secret), k++;
    len[k] = p2p_encode_direct_answer(p[k], P2P_CMD_DIRECT_ANSWER, ID("alice"), 7, P2P_DIRECT_ACCEPT, ex->nonce_b,
                                      40002, &ex->lan_b, 1), k++;
    len[k] = p2p_encode_direct_answer(p[k], P2P_EVT_DIRECT_ANSWER, ID("bob"), 7, P2P_DIRECT_ACCEPT, ex->nonce_b,
                                      40002, cb, 2), k++;
    len[k] = p2p_encode_reply(p[k], P2P_CMD_DIRECT_ANSWER, P2P_STATUS_OK), k++;
    len[k] = p2p_encode_direct_sync(p[k], P2P_CMD_DIRECT_SYNC, ID("bob"), 7), k++;
    len[k] = p2p_encode_direct_sync(p[k], P2P_EVT_DIRECT_SYNC, ID("alice"), 7), k++;
    len[k] = p2p_encode_reply(p[k], P2P_CMD_DIRECT_SYNC, P2P_STATUS_OK), k++;
    mac_of(ex, P2P_ROLE_OFFERER, mac);
    len[k] = p2p_encode_link_proof(p[k], P2P_ROLE_OFFERER, 7, mac), k++;
    mac_of(ex, P2P_ROLE_TARGET, mac);
    len[k] = p2p_encode_link_proof(p[k], P2P_ROLE_TARGET, 7, mac), k++;
    len[k] = p2p_encode_link_use(p[k]), k++;
    len[k] = p2p_encode_direct_mark(p[k], P2P_CMD_DIRECT_MARK, ID("bob"), 7, P2P_MARK_SWITCH, 1), k++;
    len[k] = p2p_encode_direct_mark(p[k], P2P_EVT_DIRECT_MARK, ID("alice"), 7, P2P_MARK_SWITCH, 1), k++;
    len[k] = p2p_encode_reply(p[k], P2P_CMD_DIRECT_MARK, P2P_STATUS_OK), k++;
    len[k] = p2p_encode_link_data_head(p[k], 1);
    memcpy(p[k] + len[k], "hi", 2);
    len[k] += 2, k++;
    len[k] = p2p_encode_link_ack(p[k], 1), k++;
    return k;
}

/* The example's payloads (static storage: they are large), their lengths
 * and count. */
struct payloads {
    struct example ex;
    uint8_t p[20][P2P_DIRECT_MAX];
    size_t len[20];
    size_t count;
};

static struct payloads *the_example(void)
{
    static struct payloads x;
    make_example(&x.ex);
    x.count = example_payloads(&x.ex, x.p, x.len);
    return &x;
}

static void test_proof_values(void **state)
{
    (void)state;
    struct example ex;
    make_example(&ex);
    uint8_t mac[32];
    mac_of(&ex, P2P_ROLE_OFFERER, mac);
    expect_hex(mac, 32, k_mac_offerer_hex);
    mac_of(&ex, P2P_ROLE_TARGET, mac);
    expect_hex(mac, 32, k_mac_target_hex);
}

static void test_example_in_man_page(void **state)
{
    (void)state;
    struct payloads *x = the_example();
    uint8_t want[2048], page[2048];
    size_t n = 0;
    for (size_t i = 0; i < x->count; i++)
        put_frame(want, &n, x->p[i], x->len[i]);
    size_t got = man_example_bytes("DIRECT-EXAMPLE", page, sizeof page);
    assert_int_equal(got, n);
    assert_memory_equal(page, want, n);
}

/* The proof binds everything: any change fails it. */
static void test_proof_binds(void **state)
{
    (void)state;
    struct example ex;
    make_example(&ex);
    uint8_t mac[32];
    mac_of(&ex, P2P_ROLE_OFFERER, mac);
    assert_true(p2p_direct_mac_valid(ex.secret, P2P_ROLE_OFFERER, 7, ID("alice"), ID("bob"), ex.nonce_a,
                                     ex.nonce_b, mac));
    /* Reflected: the target cannot send the offerer's proof back. */
    assert_false(p2p_direct_mac_valid(ex.secret, P2P_ROLE_TARGET, 7, ID("alice"), ID("bob"), ex.nonce_a,
                                      ex.nonce_b, mac));
    assert_false(p2p_direct_mac_valid(ex.secret, P2P_ROLE_OFFERER, 8, ID("alice"), ID("bob"), ex.nonce_a,
                                      ex.nonce_b, mac));
    assert_false(p2p_direct_mac_valid(ex.secret, P2P_ROLE_OFFERER, 7, ID("bob"), ID("alice"), ex.nonce_a,
                                      ex.nonce_b, mac));
    assert_false(p2p_direct_mac_valid(ex.secret, P2P_ROLE_OFFERER, 7, ID("alice"), ID("bob"), ex.nonce_b,
                                      ex.nonce_a, mac));
    /* ids are length-prefixed: "alic"+"ebob" is not "alice"+"bob". */
    assert_false(p2p_direct_mac_valid(ex.secret, P2P_ROLE_OFFERER, 7, ID("alic"), ID("ebob"), ex.nonce_a,
                                      ex.nonce_b, mac));
    ex.secret[31] ^= 1;
    assert_false(p2p_direct_mac_valid(ex.secret, P2P_ROLE_OFFERER, 7, ID("alice"), ID("bob"), ex.nonce_a,
                                      ex.nonce_b, mac));
}

/* Each direct payload of the example parses with every field back; every
 * prefix of it is refused. */
static void test_parse_example_and_prefixes(void **state)
{
    (void)state;
    struct payloads *x = the_example();
    struct example ex = x->ex;
    size_t count = x->count, *len = x->len;
    uint8_t (*p)[P2P_DIRECT_MAX] = x->p;
    size_t direct_frames = 0;
    for (size_t i = 0; i < count; i++) {
        uint8_t cmd = p[i][0];
        int request = cmd >= P2P_CMD_DIRECT_OFFER && cmd <= P2P_CMD_DIRECT_RESULT;
        int event = cmd >= P2P_EVT_DIRECT_OFFER && cmd <= P2P_EVT_DIRECT_MARK;
        if (!request && !event)
            continue;
        direct_frames++;
        for (size_t cut = 1; cut <= len[i]; cut++) {
            uint8_t *c = malloc(cut);
            assert_non_null(c);
            memcpy(c, p[i], cut);
            struct p2p_direct d;
            enum p2p_parse_result r = p2p_direct_parse(c, cut, &d);
            if (cut == len[i])
                assert_int_equal(r, P2P_PARSE_OK);
            else
                assert_int_equal(r, request ? P2P_PARSE_BAD_ARGUMENT : P2P_PARSE_MALFORMED);
            if (event) {
                struct p2p_message m;
                r = p2p_message_parse(c, cut, &m);
                assert_int_equal(m.kind, P2P_MSG_DIRECT);
                assert_int_equal(r, cut == len[i] ? P2P_PARSE_OK : P2P_PARSE_MALFORMED);
            }
            free(c);
        }
    }
    assert_int_equal(direct_frames, 8);

    /* Fields of the OFFER event and the MARK. */
    struct p2p_direct d;
    assert_int_equal(p2p_direct_parse(p[1], len[1], &d), P2P_PARSE_OK);
    assert_int_equal(d.cmd, P2P_EVT_DIRECT_OFFER);
    assert_int_equal(d.id_len, 5);
    assert_memory_equal(d.id, "alice", 5);
    assert_int_equal(d.attempt, 7);
    assert_memory_equal(d.secret, ex.secret, 32);
    assert_memory_equal(d.nonce, ex.nonce_a, 32);
    assert_int_equal(d.local_port, 40001);
    assert_int_equal(d.candidate_count, 2);
    assert_int_equal(d.candidates[0].kind, P2P_CANDIDATE_REFLEXIVE);
    assert_int_equal(d.candidates[0].port, 40001);
    assert_memory_equal(d.candidates[1].addr, ex.lan_a.addr, 4);
    assert_int_equal(p2p_direct_parse(p[12], len[12], &d), P2P_PARSE_OK);
    assert_int_equal(d.mark_kind, P2P_MARK_SWITCH);
    assert_int_equal(d.seq, 1);
    /* The OFFER reply. */
    struct p2p_message m;
    assert_int_equal(p2p_message_parse(p[2], len[2], &m), P2P_PARSE_OK);
    assert_int_equal(m.kind, P2P_MSG_REPLY);
    assert_int_equal(m.attempt, 7);
    assert_memory_equal(m.data, ex.secret, 32);
    assert_int_equal(p2p_message_parse(p[2], len[2] - 1, &m), P2P_PARSE_MALFORMED);
    /* A failed OFFER is two bytes. */
    const uint8_t refused[] = {0x90, 0x05};
    assert_int_equal(p2p_message_parse(refused, 2, &m), P2P_PARSE_OK);
    assert_int_equal(m.status, P2P_STATUS_NOT_AUTHORIZED);
}

static void test_decline_result_and_bad_fields(void **state)
{
    (void)state;
    uint8_t out[P2P_DIRECT_MAX];
    /* A decline: [11][05]alice[attempt][00], nothing more. */
    size_t n = p2p_encode_direct_answer(out, P2P_CMD_DIRECT_ANSWER, ID("alice"), 0x01020304, P2P_DIRECT_DECLINE,
                                        NULL, 0, NULL, 0);
    const uint8_t decline[] = {0x11, 0x05, 'a', 'l', 'i', 'c', 'e', 0x01, 0x02, 0x03, 0x04, 0x00};
    assert_int_equal(n, sizeof decline);
    assert_memory_equal(out, decline, n);
    struct p2p_direct d;
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_OK);
    assert_int_equal(d.accept, P2P_DIRECT_DECLINE);
    assert_null(d.nonce);
    out[n - 1] = 2; /* neither accept nor decline */
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_BAD_ARGUMENT);
    out[n - 1] = 0;
    out[n] = 0; /* a byte too many */
    assert_int_equal(p2p_direct_parse(out, n + 1, &d), P2P_PARSE_BAD_ARGUMENT);

    /* RESULT: [14][03]bob[attempt][outcome][ms]. */
    n = p2p_encode_direct_result(out, ID("bob"), 7, P2P_DIRECT_OUTCOME_DIRECT, 81);
    const uint8_t result[] = {0x14, 0x03, 'b', 'o', 'b', 0, 0, 0, 7, 1, 0, 0, 0, 81};
    assert_int_equal(n, sizeof result);
    assert_memory_equal(out, result, n);
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_OK);
    assert_int_equal(d.outcome, P2P_DIRECT_OUTCOME_DIRECT);
    assert_int_equal(d.elapsed_ms, 81);
    out[9] = 3;
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_BAD_ARGUMENT);

    /* MARK kinds 1 and 2 only. */
    n = p2p_encode_direct_mark(out, P2P_CMD_DIRECT_MARK, ID("bob"), 7, P2P_MARK_FALLBACK, 5);
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_OK);
    out[9] = 0;
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_BAD_ARGUMENT);

    /* id_len 0. */
    const uint8_t no_id[] = {0x12, 0x00, 0, 0, 0, 7};
    assert_int_equal(p2p_direct_parse(no_id, sizeof no_id, &d), P2P_PARSE_BAD_ARGUMENT);

    /* Candidates: a client offers LAN ones only, with a port, 4 or 16
     * address bytes, at most 8; an event may have 9 and REFLEXIVE ones. */
    uint8_t nonce[32] = {0};
    struct p2p_candidate c[9];
    for (int i = 0; i < 9; i++)
        c[i] = candidate(P2P_CANDIDATE_LAN, (uint16_t)(1000 + i), 10, 0, 0, (uint8_t)i);
    n = p2p_encode_direct_offer(out, ID("bob"), nonce, 1, c, 8);
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_OK);
    assert_int_equal(d.candidate_count, 8);
    n = p2p_encode_direct_offer(out, ID("bob"), nonce, 1, c, 9);
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_BAD_ARGUMENT);
    n = p2p_encode_direct_offer_event(out, ID("bob"), 1, nonce, nonce, 1, c, 9);
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_OK);
    c[0].kind = P2P_CANDIDATE_REFLEXIVE;
    n = p2p_encode_direct_offer(out, ID("bob"), nonce, 1, c, 1);
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_BAD_ARGUMENT);
    c[0] = candidate(P2P_CANDIDATE_LAN, 0, 10, 0, 0, 1);
    n = p2p_encode_direct_offer(out, ID("bob"), nonce, 1, c, 1);
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_BAD_ARGUMENT);
    c[0] = candidate(P2P_CANDIDATE_LAN, 9, 10, 0, 0, 1);
    c[0].addr_len = 16;
    n = p2p_encode_direct_offer(out, ID("bob"), nonce, 1, c, 1);
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_OK);
    assert_int_equal(d.candidates[0].addr_len, 16);
    out[n - 17] = 6; /* addr_len 6 */
    assert_int_equal(p2p_direct_parse(out, n, &d), P2P_PARSE_BAD_ARGUMENT);
}

static void test_link_frames(void **state)
{
    (void)state;
    uint8_t out[64], mac[32];
    fill_run(mac, 32, 0x40);
    struct p2p_link l;
    size_t n = p2p_encode_link_proof(out, P2P_ROLE_TARGET, 9, mac);
    assert_int_equal(n, P2P_LINK_PROOF_SIZE);
    assert_int_equal(p2p_link_parse(out, n, &l), P2P_PARSE_OK);
    assert_int_equal(l.kind, P2P_LINK_KIND_PROOF);
    assert_int_equal(l.role, P2P_ROLE_TARGET);
    assert_int_equal(l.attempt, 9);
    assert_memory_equal(l.mac, mac, 32);
    for (size_t cut = 1; cut < n; cut++)
        assert_int_equal(p2p_link_parse(out, cut, &l), P2P_PARSE_MALFORMED);
    out[1] = 3;
    assert_int_equal(p2p_link_parse(out, n, &l), P2P_PARSE_MALFORMED);

    n = p2p_encode_link_data_head(out, 0x0102030405060708ull);
    const uint8_t head[] = {0x03, 1, 2, 3, 4, 5, 6, 7, 8};
    assert_memory_equal(out, head, sizeof head);
    assert_int_equal(p2p_link_parse(out, n, &l), P2P_PARSE_OK);
    assert_int_equal(l.data_len, 0);
    assert_int_equal(l.seq, 0x0102030405060708ull);
    assert_int_equal(p2p_link_parse(out, n - 1, &l), P2P_PARSE_MALFORMED);
    n = p2p_encode_link_ack(out, 3);
    assert_int_equal(p2p_link_parse(out, n, &l), P2P_PARSE_OK);
    assert_int_equal(l.kind, P2P_LINK_KIND_ACK);
    assert_int_equal(p2p_link_parse(out, n - 1, &l), P2P_PARSE_MALFORMED);
    n = p2p_encode_link_ping(out);
    assert_int_equal(p2p_link_parse(out, n, &l), P2P_PARSE_OK);
    assert_int_equal(l.kind, P2P_LINK_KIND_PING);
    const uint8_t later[] = {0x7e, 1, 2};
    assert_int_equal(p2p_link_parse(later, sizeof later, &l), P2P_PARSE_OK);
    assert_int_equal(l.kind, P2P_LINK_KIND_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_proof_values),
        cmocka_unit_test(test_example_in_man_page),
        cmocka_unit_test(test_proof_binds),
        cmocka_unit_test(test_parse_example_and_prefixes),
        cmocka_unit_test(test_decline_result_and_bad_fields),
        cmocka_unit_test(test_link_frames),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
