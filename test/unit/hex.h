/*
 * hex.h - hex text for the unit tests of the AUTH crypto (test_sha256.c,
 * test_auth_proof.c): published vectors are written as hex, and a mismatch
 * prints both sides. Include after <cmocka.h>.
 */
#ifndef STUPIDP2P_TEST_HEX_H
#define STUPIDP2P_TEST_HEX_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

/* Parses exactly 2n lower-case hex digits into out[0..n). */
static void unhex(const char *hex, uint8_t *out, size_t n)
{
    assert_int_equal(strlen(hex), 2 * n);
    for (size_t i = 0; i < n; i++) {
        unsigned v = 0;
        for (int k = 0; k < 2; k++) {
            char c = hex[2 * i + (size_t)k];
            v <<= 4;
            if (c >= '0' && c <= '9')
                v |= (unsigned)(c - '0');
            else if (c >= 'a' && c <= 'f')
                v |= (unsigned)(c - 'a' + 10);
            else
                fail_msg("bad hex digit '%c'", c);
        }
        out[i] = (uint8_t)v;
    }
}

/* Fails unless got[0..n) is the n bytes written in want_hex (n <= 64). */
static void expect_hex(const uint8_t *got, size_t n, const char *want_hex)
{
    uint8_t want[64];
    assert_true(n <= sizeof want);
    unhex(want_hex, want, n);
    if (memcmp(got, want, n) != 0) {
        print_error("got  ");
        for (size_t i = 0; i < n; i++)
            print_error("%02x", got[i]);
        print_error("\nwant %s\n", want_hex);
        fail();
    }
}

#endif /* STUPIDP2P_TEST_HEX_H */
