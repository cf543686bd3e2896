/*
 * hex.h - hex text for the unit tests of the AUTH and direct-path crypto
 * (test_sha256.c, test_auth_proof.c, test_direct.c): published vectors are written as hex, and a mismatch
 * prints both sides. Include after <cmocka.h>.
 */
#ifndef STUPIDP2P_TEST_HEX_H
#define STUPIDP2P_TEST_HEX_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
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

/* Every token of exactly two lower-case hex digits between the comments
 * "NAME-BEGIN" and "NAME-END" of man/stupidp2p.7 (relative to the working
 * directory: the top of the tree under make test), in order, into out;
 * returns how many. Lines of mdoc macros are skipped. */
static inline size_t man_example_bytes(const char *name, uint8_t *out, size_t cap)
{
    FILE *f = fopen("man/stupidp2p.7", "r");
    if (f == NULL)
        fail_msg("cannot open man/stupidp2p.7: run from the top of the tree");
    char begin[64], end[64];
    snprintf(begin, sizeof begin, "%s-BEGIN", name);
    snprintf(end, sizeof end, "%s-END", name);
    char line[512];
    int inside = 0, seen_end = 0;
    size_t n = 0;
    while (fgets(line, sizeof line, f) != NULL) {
        if (strstr(line, begin) != NULL) {
            inside = 1;
            continue;
        }
        if (strstr(line, end) != NULL) {
            seen_end = 1;
            break;
        }
        if (!inside || line[0] == '.')
            continue;
        for (char *tok = strtok(line, " \t\n"); tok != NULL; tok = strtok(NULL, " \t\n")) {
            unsigned v;
            char extra;
            if (strlen(tok) == 2 && sscanf(tok, "%2x%c", &v, &extra) == 1 &&
                strspn(tok, "0123456789abcdef") == 2) {
                assert_true(n < cap);
                out[n++] = (uint8_t)v;
            }
        }
    }
    fclose(f);
    assert_true(inside && seen_end);
    return n;
}

#endif /* STUPIDP2P_TEST_HEX_H */
