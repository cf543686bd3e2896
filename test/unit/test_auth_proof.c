/*
 * test_auth_proof.c - the AUTH arithmetic of src/common/auth_proof.c and the
 * worked example of man/stupidp2p.7 (EXAMPLES, "Authentication"), byte for
 * byte.
 *
 * The example's values below were computed independently (Python's hashlib
 * and hmac) when the specification was written. The test derives them again
 * with the project's code, builds the four frames of the exchange with the
 * codec, and then checks that the man page shows exactly these bytes: it
 * reads the block between the ".\\\" AUTH-EXAMPLE-BEGIN" and
 * ".\\\" AUTH-EXAMPLE-END" comments of man/stupidp2p.7 (relative to the
 * working directory, which is the top of the tree under make test) and
 * takes every token of exactly two hex digits as a byte. So the code, this
 * test and the page cannot drift apart.
 *
 * Also: a proof is valid for its own message only (another id, nonce or
 * token fails), a captured proof does not pass under a fresh server nonce,
 * and the verifier alone (StoredKey) does not produce a valid proof.
 *
 * Links auth_proof.c, sha256.c, hmac_sha256.c and codec.c.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth_proof.h"
#include "codec.h"
#include "hex.h"
#include "hmac_sha256.h"
#include "sha256.h"

static const char k_token[] = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8";

static const char k_salted_hex[] = "ea866a757e4c38babfa8127cbe9a409d3e1f93a00ff1488ff735fcf917afffd0";
static const char k_client_key_hex[] = "a5a8ad63a2f47471e58e499879dd633377242a5a3e115874721fa278c1fa840a";
static const char k_stored_key_hex[] = "d664d92a02a94f3f9dd31ad2e8e01e891e3096071c99cf522d65f98cf377b945";
static const char k_server_key_hex[] = "4b6238706967d79a1a4137907bdad7075c6ec5d47813e4810991bba155a5ce9e";
static const char k_client_sig_hex[] = "0a4c1b328d72c89f2d18b476d511c1b1c0dee81daef1d881df68f4a538fc73c0";
static const char k_proof_hex[] = "afe4b6512f86bceec896fdeeaccca282b7fac24790e080f5ad7756ddf906f7ca";
static const char k_server_sig_hex[] = "fecedc8e212d3e52cbc8cea0b6fdd57c3a8d3a898a139f65ed4b39a2f4045aee";

static void fill_run(uint8_t *p, size_t n, uint8_t first)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(first + i);
}

/* The example: id "alice", client nonce c0..df, server nonce e0..ff. */
struct example {
    struct p2p_auth_keys keys;
    uint8_t client_nonce[P2P_AUTH_NONCE_SIZE];
    uint8_t server_nonce[P2P_AUTH_NONCE_SIZE];
    uint8_t msg[P2P_AUTH_MESSAGE_MAX];
    size_t msg_len;
};

static void make_example(struct example *ex)
{
    p2p_auth_keys_from_token(k_token, strlen(k_token), &ex->keys);
    fill_run(ex->client_nonce, sizeof ex->client_nonce, 0xc0);
    fill_run(ex->server_nonce, sizeof ex->server_nonce, 0xe0);
    ex->msg_len = p2p_auth_message(ex->msg, (const uint8_t *)"alice", 5, ex->client_nonce, ex->server_nonce);
}

static void test_example_keys(void **state)
{
    (void)state;
    uint8_t salted[P2P_SHA256_SIZE];
    p2p_sha256(k_token, strlen(k_token), salted);
    expect_hex(salted, sizeof salted, k_salted_hex);

    struct example ex;
    make_example(&ex);
    expect_hex(ex.keys.client_key, 32, k_client_key_hex);
    expect_hex(ex.keys.stored_key, 32, k_stored_key_hex);
    expect_hex(ex.keys.server_key, 32, k_server_key_hex);

    /* AuthMessage: the label, 05 "alice", the two nonces; 84 bytes. */
    assert_int_equal(ex.msg_len, 14 + 1 + 5 + 32 + 32);
    assert_memory_equal(ex.msg, "stupidP2P AUTH\x05" "alice", 20);
    assert_memory_equal(ex.msg + 20, ex.client_nonce, 32);
    assert_memory_equal(ex.msg + 52, ex.server_nonce, 32);

    uint8_t sig[32], proof[32], server_sig[32];
    p2p_hmac_sha256(ex.keys.stored_key, 32, ex.msg, ex.msg_len, sig);
    expect_hex(sig, 32, k_client_sig_hex);
    p2p_auth_client_proof(ex.keys.client_key, ex.keys.stored_key, ex.msg, ex.msg_len, proof);
    expect_hex(proof, 32, k_proof_hex);
    p2p_auth_server_signature(ex.keys.server_key, ex.msg, ex.msg_len, server_sig);
    expect_hex(server_sig, 32, k_server_sig_hex);

    assert_int_equal(p2p_auth_proof_valid(ex.keys.stored_key, ex.msg, ex.msg_len, proof), 1);
    assert_int_equal(p2p_auth_server_signature_valid(ex.keys.server_key, ex.msg, ex.msg_len, server_sig), 1);
}

/* Appends a frame (header + payload) to buf at *n. */
static void put_frame(uint8_t *buf, size_t *n, const uint8_t *payload, size_t len)
{
    p2p_frame_header_encode(buf + *n, (uint32_t)len);
    memcpy(buf + *n + 4, payload, len);
    *n += 4 + len;
}

static void test_example_in_man_page(void **state)
{
    (void)state;
    struct example ex;
    make_example(&ex);
    uint8_t want[1024];
    size_t n = 0;
    /* The keys and the intermediate values, in the page's order. */
    uint8_t salted[32], sig[32], proof[32], server_sig[32];
    p2p_sha256(k_token, strlen(k_token), salted);
    p2p_hmac_sha256(ex.keys.stored_key, 32, ex.msg, ex.msg_len, sig);
    p2p_auth_client_proof(ex.keys.client_key, ex.keys.stored_key, ex.msg, ex.msg_len, proof);
    p2p_auth_server_signature(ex.keys.server_key, ex.msg, ex.msg_len, server_sig);
    const uint8_t *values[] = {salted, ex.keys.client_key, ex.keys.stored_key, ex.keys.server_key};
    for (size_t i = 0; i < 4; i++) {
        memcpy(want + n, values[i], 32);
        n += 32;
    }
    memcpy(want + n, ex.msg, ex.msg_len);
    n += ex.msg_len;
    memcpy(want + n, sig, 32);
    n += 32;
    memcpy(want + n, proof, 32);
    n += 32;
    memcpy(want + n, server_sig, 32);
    n += 32;

    /* The four frames, built with the codec. */
    uint8_t p[P2P_AUTH_START_MAX];
    put_frame(want, &n, p, p2p_encode_auth_start(p, (const uint8_t *)"alice", 5, ex.client_nonce));
    put_frame(want, &n, p, p2p_encode_auth_reply(p, P2P_AUTH_STEP_START, ex.server_nonce));
    put_frame(want, &n, p, p2p_encode_auth_proof(p, proof));
    put_frame(want, &n, p, p2p_encode_auth_reply(p, P2P_AUTH_STEP_PROOF, server_sig));

    uint8_t page[1024];
    size_t got = man_example_bytes("AUTH-EXAMPLE", page, sizeof page);
    if (got != n || memcmp(page, want, n) != 0) {
        size_t i = 0;
        while (i < got && i < n && page[i] == want[i])
            i++;
        fail_msg("man/stupidp2p.7 AUTH example: %zu bytes, expected %zu; first difference at byte %zu",
                 got, n, i);
    }
}

/* The proof is bound to everything in AuthMessage and to the token. */
static void test_proof_binding(void **state)
{
    (void)state;
    struct example ex;
    make_example(&ex);
    uint8_t proof[32];
    p2p_auth_client_proof(ex.keys.client_key, ex.keys.stored_key, ex.msg, ex.msg_len, proof);
    assert_true(p2p_auth_proof_valid(ex.keys.stored_key, ex.msg, ex.msg_len, proof));

    /* Any changed byte of the message (id, either nonce, label) or of the
     * proof fails. */
    for (size_t i = 0; i < ex.msg_len; i++) {
        ex.msg[i] ^= 0x01;
        assert_false(p2p_auth_proof_valid(ex.keys.stored_key, ex.msg, ex.msg_len, proof));
        ex.msg[i] ^= 0x01;
    }
    for (size_t i = 0; i < sizeof proof; i++) {
        proof[i] ^= 0x80;
        assert_false(p2p_auth_proof_valid(ex.keys.stored_key, ex.msg, ex.msg_len, proof));
        proof[i] ^= 0x80;
    }

    /* A replayed proof under a fresh server nonce fails. */
    uint8_t fresh[P2P_AUTH_NONCE_SIZE], msg2[P2P_AUTH_MESSAGE_MAX];
    fill_run(fresh, sizeof fresh, 0x10);
    size_t len2 = p2p_auth_message(msg2, (const uint8_t *)"alice", 5, ex.client_nonce, fresh);
    assert_false(p2p_auth_proof_valid(ex.keys.stored_key, msg2, len2, proof));

    /* Another token's keys fail, as does a "proof" made from the verifier
     * alone (StoredKey as if it were ClientKey, or a zero ClientKey). */
    struct p2p_auth_keys other;
    p2p_auth_keys_from_token("AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh9", 43, &other);
    uint8_t forged[32];
    p2p_auth_client_proof(other.client_key, other.stored_key, ex.msg, ex.msg_len, forged);
    assert_false(p2p_auth_proof_valid(ex.keys.stored_key, ex.msg, ex.msg_len, forged));
    p2p_auth_client_proof(ex.keys.stored_key, ex.keys.stored_key, ex.msg, ex.msg_len, forged);
    assert_false(p2p_auth_proof_valid(ex.keys.stored_key, ex.msg, ex.msg_len, forged));
    uint8_t zero[32] = {0};
    p2p_auth_client_proof(zero, ex.keys.stored_key, ex.msg, ex.msg_len, forged);
    assert_false(p2p_auth_proof_valid(ex.keys.stored_key, ex.msg, ex.msg_len, forged));

    /* The server signature is bound likewise. */
    uint8_t ss[32];
    p2p_auth_server_signature(ex.keys.server_key, ex.msg, ex.msg_len, ss);
    assert_false(p2p_auth_server_signature_valid(ex.keys.server_key, msg2, len2, ss));
    assert_false(p2p_auth_server_signature_valid(other.server_key, ex.msg, ex.msg_len, ss));
}

/* The longest id makes the longest message. */
static void test_message_bounds(void **state)
{
    (void)state;
    uint8_t id[P2P_ID_MAX], n1[32], n2[32];
    memset(id, 0x5a, sizeof id);
    fill_run(n1, 32, 1);
    fill_run(n2, 32, 100);
    uint8_t msg[P2P_AUTH_MESSAGE_MAX + 1];
    msg[P2P_AUTH_MESSAGE_MAX] = 0xee;
    assert_int_equal(p2p_auth_message(msg, id, sizeof id, n1, n2), P2P_AUTH_MESSAGE_MAX);
    assert_int_equal(msg[14], 0xff);
    assert_int_equal(msg[P2P_AUTH_MESSAGE_MAX], 0xee);
    assert_memory_equal(msg + P2P_AUTH_MESSAGE_MAX - 32, n2, 32);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_example_keys),
        cmocka_unit_test(test_example_in_man_page),
        cmocka_unit_test(test_proof_binding),
        cmocka_unit_test(test_message_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
