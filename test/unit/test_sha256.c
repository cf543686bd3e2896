/*
 * test_sha256.c - SHA-256 and HMAC-SHA-256 of src/common/ against published
 * vectors, and the constant-time comparison.
 *
 * SHA-256: the examples of FIPS 180-4 (its appendix examples as published by
 * NIST: "abc", the two-block 448-bit message, the 896-bit message, one
 * million 'a') and the empty message; then messages of every length around
 * the padding boundaries (55, 56, 63, 64, ... bytes), whose digests were
 * cross-checked against Python's hashlib when written. Each is hashed whole
 * and fed in pieces split at every offset (and byte by byte), so the block
 * buffering cannot hide a bug the one-shot path would not show.
 *
 * HMAC-SHA-256: all seven cases of RFC 4231 section 4, case 5 compared on
 * its first 128 bits, as the RFC truncates it.
 *
 * Links sha256.c and hmac_sha256.c only.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hex.h"
#include "hmac_sha256.h"
#include "sha256.h"

/* The digest of msg, whole; then split in two at every offset (for
 * messages up to 300 bytes; at six offsets beyond); then byte by byte. */
static void check_sha256(const uint8_t *msg, size_t len, const char *want_hex)
{
    uint8_t d[P2P_SHA256_SIZE];
    p2p_sha256(msg, len, d);
    expect_hex(d, sizeof d, want_hex);

    size_t step = len <= 300 ? 1 : len / 5 + 1;
    for (size_t cut = 0; cut <= len; cut += step) {
        struct p2p_sha256_ctx ctx;
        p2p_sha256_init(&ctx);
        p2p_sha256_update(&ctx, msg, cut);
        p2p_sha256_update(&ctx, msg + cut, len - cut);
        p2p_sha256_final(&ctx, d);
        expect_hex(d, sizeof d, want_hex);
    }
    struct p2p_sha256_ctx ctx;
    p2p_sha256_init(&ctx);
    for (size_t i = 0; i < len; i++)
        p2p_sha256_update(&ctx, msg + i, 1);
    p2p_sha256_final(&ctx, d);
    expect_hex(d, sizeof d, want_hex);
}

static void check_sha256_str(const char *msg, const char *want_hex)
{
    check_sha256((const uint8_t *)msg, strlen(msg), want_hex);
}

static void test_fips_examples(void **state)
{
    (void)state;
    check_sha256_str("abc", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    check_sha256_str("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq",
                     "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
    check_sha256_str("abcdefghbcdefghicdefghijdefghijkefghijklfghijklmghijklmnhijklmno"
                     "ijklmnopjklmnopqklmnopqrlmnopqrsmnopqrstnopqrstu",
                     "cf5b16a778af8380036ce59e7b0492370b249b11e8f07a51afac45037afee9d1");
    check_sha256_str("", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    uint8_t d[P2P_SHA256_SIZE];
    p2p_sha256(NULL, 0, d);
    expect_hex(d, sizeof d, "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_one_million_a(void **state)
{
    (void)state;
    enum { N = 1000000 };
    uint8_t *a = malloc(N);
    assert_non_null(a);
    memset(a, 'a', N);
    check_sha256(a, N, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    /* And in uneven pieces that straddle block boundaries every way. */
    static const size_t pieces[] = {1, 63, 64, 65, 127, 997, 4096};
    for (size_t p = 0; p < sizeof pieces / sizeof pieces[0]; p++) {
        struct p2p_sha256_ctx ctx;
        p2p_sha256_init(&ctx);
        for (size_t off = 0; off < N; off += pieces[p])
            p2p_sha256_update(&ctx, a + off, N - off < pieces[p] ? N - off : pieces[p]);
        uint8_t d[P2P_SHA256_SIZE];
        p2p_sha256_final(&ctx, d);
        expect_hex(d, sizeof d, "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
    }
    free(a);
}

/* Lengths where the padding needs one block or two: byte i is (7i + 3). */
static void test_padding_boundaries(void **state)
{
    (void)state;
    static const struct {
        size_t len;
        const char *hex;
    } cases[] = {
        {55, "e7313d333c272e639f790978283f9eb392e843d0f29b7016828bb1daa4aac70b"},
        {56, "4324d65f3c103567f5589c710bc08f8523f929a9272e3af36fc968e52abc6c27"},
        {63, "81c80242132f230c3bd41b3e63bbcff16107339549214a99614ff26664625055"},
        {64, "39e3d7b6b5d075d37d053ad89b24b41bef4f3c29760c84447cab3f3be1882241"},
        {65, "aacca6ff74fdbb296d165a45cecfa04e5127bc008770fbbdd48006f2d2fae95e"},
        {119, "9ce7368e4daf32341631b492e80359dc9f594b48453cd0dd5bf0b19279cc177e"},
        {120, "7836b787757e95e58b3ca5aec90b1b004e8deba1e50e9675af9cabf1a13a04b5"},
        {127, "a8d23e75d936f303d248888d9b165ee543f4cbafcad3c9dd2a79bd84faa11d07"},
        {128, "d2742f1f4ac6bb7ca2b239ee18402ba8b3f9f8e652d2a72973c2b9ba11c08cf6"},
    };
    uint8_t msg[128];
    for (size_t i = 0; i < sizeof msg; i++)
        msg[i] = (uint8_t)(i * 7 + 3);
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++)
        check_sha256(msg, cases[c].len, cases[c].hex);
}

/* ---- HMAC-SHA-256: RFC 4231 section 4 ---------------------------------------- */

static void check_hmac(const uint8_t *key, size_t key_len, const uint8_t *data, size_t len,
                       const char *want_hex, size_t compare)
{
    uint8_t mac[P2P_HMAC_SHA256_SIZE];
    p2p_hmac_sha256(key, key_len, data, len, mac);
    expect_hex(mac, compare, want_hex);
    /* The incremental form, the data split at every offset. */
    for (size_t cut = 0; cut <= len; cut++) {
        struct p2p_hmac_sha256_ctx ctx;
        p2p_hmac_sha256_init(&ctx, key, key_len);
        p2p_hmac_sha256_update(&ctx, data, cut);
        p2p_hmac_sha256_update(&ctx, data + cut, len - cut);
        p2p_hmac_sha256_final(&ctx, mac);
        expect_hex(mac, compare, want_hex);
    }
}

static void test_rfc4231(void **state)
{
    (void)state;
    uint8_t key[131], data[152];

    /* 1: a 20-byte key of 0x0b. */
    memset(key, 0x0b, 20);
    check_hmac(key, 20, (const uint8_t *)"Hi There", 8,
               "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7", 32);
    /* 2: a key shorter than the MAC. */
    const char *what = "what do ya want for nothing?";
    check_hmac((const uint8_t *)"Jefe", 4, (const uint8_t *)what, strlen(what),
               "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843", 32);
    /* 3: 20 bytes of 0xaa, 50 of 0xdd. */
    memset(key, 0xaa, 20);
    memset(data, 0xdd, 50);
    check_hmac(key, 20, data, 50, "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe", 32);
    /* 4: key 0x01..0x19, 50 bytes of 0xcd. */
    for (size_t i = 0; i < 25; i++)
        key[i] = (uint8_t)(i + 1);
    memset(data, 0xcd, 50);
    check_hmac(key, 25, data, 50, "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b", 32);
    /* 5: truncation to 128 bits; the RFC gives only those. */
    memset(key, 0x0c, 20);
    check_hmac(key, 20, (const uint8_t *)"Test With Truncation", 20, "a3b6167473100ee06e0c796c2955552b",
               16);
    /* 6 and 7: a 131-byte key, longer than a block: hashed first. */
    memset(key, 0xaa, 131);
    const char *six = "Test Using Larger Than Block-Size Key - Hash Key First";
    check_hmac(key, 131, (const uint8_t *)six, strlen(six),
               "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54", 32);
    const char *seven = "This is a test using a larger than block-size key and a larger than "
                        "block-size data. The key needs to be hashed before being used by the HMAC "
                        "algorithm.";
    assert_int_equal(strlen(seven), 152);
    check_hmac(key, 131, (const uint8_t *)seven, strlen(seven),
               "9b09ffa71b942fcb27635fbcd5b0e944bfdc63644f0713938a7f51535c3a35e2", 32);
}

/* A key of exactly one block is used as it is, one byte more is hashed:
 * HMAC(K) with |K| = 65 equals HMAC(SHA-256(K)). */
static void test_key_lengths(void **state)
{
    (void)state;
    uint8_t key[65], hashed[P2P_SHA256_SIZE], a[32], b[32];
    for (size_t i = 0; i < sizeof key; i++)
        key[i] = (uint8_t)(0xa0 + i);
    p2p_sha256(key, 65, hashed);
    p2p_hmac_sha256(key, 65, "m", 1, a);
    p2p_hmac_sha256(hashed, sizeof hashed, "m", 1, b);
    assert_memory_equal(a, b, 32);
    p2p_hmac_sha256(key, 64, "m", 1, a);
    p2p_sha256(key, 64, hashed);
    p2p_hmac_sha256(hashed, sizeof hashed, "m", 1, b);
    assert_memory_not_equal(a, b, 32);
    /* An empty key is a block of zeros, as is a key of zeros. */
    uint8_t zeros[64] = {0};
    p2p_hmac_sha256(NULL, 0, "m", 1, a);
    p2p_hmac_sha256(zeros, 64, "m", 1, b);
    assert_memory_equal(a, b, 32);
}

static void test_ct_equal(void **state)
{
    (void)state;
    uint8_t a[32], b[32];
    for (size_t i = 0; i < sizeof a; i++)
        a[i] = b[i] = (uint8_t)(i * 29 + 1);
    assert_int_equal(p2p_ct_equal(a, b, 32), 1);
    assert_int_equal(p2p_ct_equal(a, b, 0), 1);
    /* Every position, every bit. */
    for (size_t i = 0; i < sizeof a; i++) {
        for (unsigned bit = 0; bit < 8; bit++) {
            b[i] ^= (uint8_t)(1u << bit);
            assert_int_equal(p2p_ct_equal(a, b, 32), 0);
            assert_int_equal(p2p_ct_equal(a, b, i), 1); /* before the difference */
            b[i] ^= (uint8_t)(1u << bit);
        }
    }
    memset(b, 0, sizeof b);
    memset(a, 0xff, sizeof a);
    assert_int_equal(p2p_ct_equal(a, b, 32), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fips_examples),
        cmocka_unit_test(test_one_million_a),
        cmocka_unit_test(test_padding_boundaries),
        cmocka_unit_test(test_rfc4231),
        cmocka_unit_test(test_key_lengths),
        cmocka_unit_test(test_ct_equal),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
