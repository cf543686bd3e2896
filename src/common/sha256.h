/*
 * sha256.h - SHA-256 (FIPS 180-4, section 6.2), shared by the server and the
 * C client: the AUTH exchange (auth_proof.h) hashes and MACs with it, and
 * later the direct-path proofs will too.
 *
 * Written from the standard, not from another implementation: the message
 * schedule, the compression function, the padding and the constants are
 * those of FIPS 180-4 sections 4.1.2, 4.2.2, 5.1.1, 5.3.3 and 6.2.2. Tested
 * against the standard's examples (one block, two blocks, one million 'a')
 * and the NIST byte-oriented test vectors in test/unit/test_sha256.c.
 *
 * Incremental: init, any number of updates of any size, final. No I/O, no
 * allocation, no global state; a context may be copied (HMAC does).
 */
#ifndef STUPIDP2P_SHA256_H
#define STUPIDP2P_SHA256_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define P2P_SHA256_SIZE 32u  /* digest bytes */
#define P2P_SHA256_BLOCK 64u /* block bytes  */

struct p2p_sha256_ctx {
    uint32_t state[8];               /* H0..H7                          */
    uint64_t length;                 /* bytes hashed so far             */
    uint8_t block[P2P_SHA256_BLOCK]; /* a partial block, `used` bytes   */
    size_t used;
};

void p2p_sha256_init(struct p2p_sha256_ctx *ctx);

/* Hashes data[0..len); data may be NULL when len is 0. */
void p2p_sha256_update(struct p2p_sha256_ctx *ctx, const void *data, size_t len);

/* Pads, writes the 32-byte digest and wipes the context (init again to
 * reuse it). */
void p2p_sha256_final(struct p2p_sha256_ctx *ctx, uint8_t digest[P2P_SHA256_SIZE]);

/* The digest of data[0..len) in one call. */
void p2p_sha256(const void *data, size_t len, uint8_t digest[P2P_SHA256_SIZE]);

#ifdef __cplusplus
}
#endif

#endif /* STUPIDP2P_SHA256_H */
