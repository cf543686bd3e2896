/* hmac_sha256.c - see hmac_sha256.h; the construction of RFC 2104 section 2. */
#include "hmac_sha256.h"

#include <string.h>

void p2p_hmac_sha256_init(struct p2p_hmac_sha256_ctx *ctx, const void *key, size_t key_len)
{
    uint8_t block[P2P_SHA256_BLOCK];
    memset(block, 0, sizeof block);
    if (key_len > P2P_SHA256_BLOCK)
        p2p_sha256(key, key_len, block); /* a long key is hashed first */
    else if (key_len != 0)
        memcpy(block, key, key_len);

    uint8_t pad[P2P_SHA256_BLOCK];
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = (uint8_t)(block[i] ^ 0x36u);
    p2p_sha256_init(&ctx->inner);
    p2p_sha256_update(&ctx->inner, pad, sizeof pad);
    for (size_t i = 0; i < sizeof pad; i++)
        pad[i] = (uint8_t)(block[i] ^ 0x5cu);
    p2p_sha256_init(&ctx->outer);
    p2p_sha256_update(&ctx->outer, pad, sizeof pad);
    explicit_bzero(block, sizeof block);
    explicit_bzero(pad, sizeof pad);
}

void p2p_hmac_sha256_update(struct p2p_hmac_sha256_ctx *ctx, const void *data, size_t len)
{
    p2p_sha256_update(&ctx->inner, data, len);
}

void p2p_hmac_sha256_final(struct p2p_hmac_sha256_ctx *ctx, uint8_t mac[P2P_HMAC_SHA256_SIZE])
{
    uint8_t inner[P2P_SHA256_SIZE];
    p2p_sha256_final(&ctx->inner, inner);
    p2p_sha256_update(&ctx->outer, inner, sizeof inner);
    p2p_sha256_final(&ctx->outer, mac);
    explicit_bzero(inner, sizeof inner);
}

void p2p_hmac_sha256(const void *key, size_t key_len, const void *data, size_t len,
                     uint8_t mac[P2P_HMAC_SHA256_SIZE])
{
    struct p2p_hmac_sha256_ctx ctx;
    p2p_hmac_sha256_init(&ctx, key, key_len);
    p2p_hmac_sha256_update(&ctx, data, len);
    p2p_hmac_sha256_final(&ctx, mac);
}

int p2p_ct_equal(const void *a, const void *b, size_t len)
{
    const uint8_t *x = a;
    const uint8_t *y = b;
    /* volatile: the compiler may not turn the loop into an early exit. */
    volatile uint8_t diff = 0;
    for (size_t i = 0; i < len; i++)
        diff = (uint8_t)(diff | (x[i] ^ y[i]));
    /* 0 -> 1, 1..255 -> 0, without a branch: (d - 1) >> 8 is all ones only
     * for d == 0. */
    return (int)(((unsigned)diff - 1u) >> 8 & 1u);
}
