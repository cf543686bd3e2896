/*
 * hmac_sha256.h - HMAC-SHA-256 (RFC 2104, FIPS 198-1) on sha256.h, and a
 * comparison of secrets whose time does not depend on where they differ.
 *
 * HMAC(K, m) = H((K' ^ opad) || H((K' ^ ipad) || m)), where K' is K padded
 * with zeros to the 64-byte block, or H(K) padded when K is longer than a
 * block; ipad is 0x36 and opad 0x5c repeated. Tested against every case of
 * RFC 4231 in test/unit/test_sha256.c.
 */
#ifndef STUPIDP2P_HMAC_SHA256_H
#define STUPIDP2P_HMAC_SHA256_H

#include <stddef.h>
#include <stdint.h>

#include "sha256.h"

#ifdef __cplusplus
extern "C" {
#endif

#define P2P_HMAC_SHA256_SIZE P2P_SHA256_SIZE

struct p2p_hmac_sha256_ctx {
    struct p2p_sha256_ctx inner; /* H((K' ^ ipad) || ...), fed by update */
    struct p2p_sha256_ctx outer; /* H((K' ^ opad) || ...), keyed at init */
};

/* Keys the MAC with key[0..key_len) (any length; NULL when 0). */
void p2p_hmac_sha256_init(struct p2p_hmac_sha256_ctx *ctx, const void *key, size_t key_len);
void p2p_hmac_sha256_update(struct p2p_hmac_sha256_ctx *ctx, const void *data, size_t len);
/* Writes the 32-byte MAC and wipes the context. */
void p2p_hmac_sha256_final(struct p2p_hmac_sha256_ctx *ctx, uint8_t mac[P2P_HMAC_SHA256_SIZE]);

/* The MAC of data[0..len) under key in one call. */
void p2p_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                     uint8_t mac[P2P_HMAC_SHA256_SIZE]);

/* 1 if a[0..len) equals b[0..len), else 0. Reads every byte of both
 * whatever they hold, without a data-dependent branch, so that the time
 * taken tells nothing about how much of a guessed proof was right. */
int p2p_ct_equal(const void *a, const void *b, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* STUPIDP2P_HMAC_SHA256_H */
