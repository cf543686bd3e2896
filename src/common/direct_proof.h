/*
 * direct_proof.h - the proof two devices exchange on a direct connection
 * (stupidp2p(7), DIRECT PATHS, "The direct connection"): each proves that
 * it holds the attempt secret the server gave both, bound to the attempt,
 * both ids, both nonces and its role, so that a stranger who finds the
 * port, a proof replayed from another attempt, or a proof reflected back
 * at its sender (the role differs) all fail. No I/O, no state.
 *
 *   DirectMessage = "stupidP2P DIRECT" || role || attempt (u32) ||
 *                   offerer_len || offerer id || target_len || target id ||
 *                   offerer nonce || target nonce
 *   mac           = HMAC-SHA-256(attempt secret, DirectMessage)
 *
 * The secret reaches both devices through the relay in clear, as
 * everything on a relay connection does: the proof keeps out whoever does
 * not read that traffic, not whoever does (the relay connection's own
 * protection, TLS in front of the server, covers both).
 */
#ifndef STUPIDP2P_DIRECT_PROOF_H
#define STUPIDP2P_DIRECT_PROOF_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

#define P2P_DIRECT_LABEL "stupidP2P DIRECT"
#define P2P_DIRECT_LABEL_SIZE 16u
#define P2P_DIRECT_MESSAGE_MAX \
    (P2P_DIRECT_LABEL_SIZE + 1u + 4u + 2u * (1u + P2P_ID_MAX) + 2u * P2P_DIRECT_NONCE_SIZE)

/* Writes DirectMessage into out (P2P_DIRECT_MESSAGE_MAX bytes); returns its
 * length. ids are 1..P2P_ID_MAX bytes. */
size_t p2p_direct_message(uint8_t *out, uint8_t role, uint32_t attempt, const uint8_t *offerer,
                          size_t offerer_len, const uint8_t *target, size_t target_len,
                          const uint8_t offerer_nonce[P2P_DIRECT_NONCE_SIZE],
                          const uint8_t target_nonce[P2P_DIRECT_NONCE_SIZE]);

/* The mac of role for the attempt (see above). */
void p2p_direct_mac(const uint8_t secret[P2P_DIRECT_SECRET_SIZE], uint8_t role, uint32_t attempt,
                    const uint8_t *offerer, size_t offerer_len, const uint8_t *target,
                    size_t target_len, const uint8_t offerer_nonce[P2P_DIRECT_NONCE_SIZE],
                    const uint8_t target_nonce[P2P_DIRECT_NONCE_SIZE],
                    uint8_t mac[P2P_DIRECT_MAC_SIZE]);

/* 1 if mac is that of role for the attempt, compared in constant time. */
int p2p_direct_mac_valid(const uint8_t secret[P2P_DIRECT_SECRET_SIZE], uint8_t role, uint32_t attempt,
                         const uint8_t *offerer, size_t offerer_len, const uint8_t *target,
                         size_t target_len, const uint8_t offerer_nonce[P2P_DIRECT_NONCE_SIZE],
                         const uint8_t target_nonce[P2P_DIRECT_NONCE_SIZE],
                         const uint8_t mac[P2P_DIRECT_MAC_SIZE]);

#ifdef __cplusplus
}
#endif

#endif /* STUPIDP2P_DIRECT_PROOF_H */
