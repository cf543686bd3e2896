// base64url.cpp - see base64url.h.
#include "base64url.h"

namespace {

const char kAlphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

// The 6-bit value of c, or -1 if c is not in the alphabet.
int sextet(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '-') return 62;
    if (c == '_') return 63;
    return -1;
}

}  // namespace

void base64url_encode(const uint8_t* bytes, size_t len, char* out) {
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < len; ++i) {
        acc = (acc << 8) | bytes[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = kAlphabet[(acc >> bits) & 63u];
        }
    }
    if (bits != 0) out[o++] = kAlphabet[(acc << (6 - bits)) & 63u];
    out[o] = '\0';
}

bool base64url_decode(const char* text, size_t n, uint8_t* out, size_t out_len) {
    if (n != base64url_length(out_len)) return false;
    size_t o = 0;
    uint32_t acc = 0;
    unsigned bits = 0;
    for (size_t i = 0; i < n; ++i) {
        int v = sextet(text[i]);
        if (v < 0) return false;
        acc = (acc << 6) | static_cast<uint32_t>(v);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = static_cast<uint8_t>(acc >> bits);
        }
    }
    // What is left are the padding bits of the last character: zero.
    return (acc & ((1u << bits) - 1u)) == 0;
}
