// base64url.h - the URL- and filename-safe base64 alphabet of RFC 4648
// section 5 ("A-Z a-z 0-9 - _"), without '=' padding: how tokens
// (--gen-token) and the two keys of a verifier (--hash-token, the auth
// file) are written. Text of this alphabet needs no quoting in a shell, a
// file name or an auth file line.
#pragma once

#include <cstddef>
#include <cstdint>

// Characters needed for n bytes: ceil(4n / 3), no padding.
constexpr size_t base64url_length(size_t n) { return (4 * n + 2) / 3; }

// Writes base64url_length(len) characters and a NUL into out.
void base64url_encode(const uint8_t* bytes, size_t len, char* out);

// Decodes text[0..n) into out (out_len bytes), which must be exactly what
// the text encodes: n == base64url_length(out_len), only alphabet
// characters, and the unused low bits of the last character zero (so that
// each value has one spelling). False otherwise; out is then unspecified.
bool base64url_decode(const char* text, size_t n, uint8_t* out, size_t out_len);
