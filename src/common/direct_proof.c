/* direct_proof.c - see direct_proof.h. */
#include "direct_proof.h"

#include <string.h>

#include "hmac_sha256.h"

size_t p2p_direct_message(uint8_t *out, uint8_t role, uint32_t attempt, const uint8_t *offerer,
                          size_t offerer_len, const uint8_t *target, size_t target_len,
                          const uint8_t offerer_nonce[P2P_DIRECT_NONCE_SIZE],
                          const uint8_t target_nonce[P2P_DIRECT_NONCE_SIZE])
{
    size_t o = 0;
    memcpy(out, P2P_DIRECT_LABEL, P2P_DIRECT_LABEL_SIZE);
    o += P2P_DIRECT_LABEL_SIZE;
    out[o++] = role;
    out[o++] = (uint8_t)(attempt >> 24);
    out[o++] = (uint8_t)(attempt >> 16);
    out[o++] = (uint8_t)(attempt >> 8);
    out[o++] = (uint8_t)attempt;
    out[o++] = (uint8_t)offerer_len;
    memcpy(out + o, offerer, offerer_len);
    o += offerer_len;
    out[o++] = (uint8_t)target_len;
    memcpy(out + o, target, target_len);
    o += target_len;
    memcpy(out + o, offerer_nonce, P2P_DIRECT_NONCE_SIZE);
    o += P2P_DIRECT_NONCE_SIZE;
    memcpy(out + o, target_nonce, P2P_DIRECT_NONCE_SIZE);
    return o + P2P_DIRECT_NONCE_SIZE;
}

void p2p_direct_mac(const uint8_t secret[P2P_DIRECT_SECRET_SIZE], uint8_t role, uint32_t attempt,
                    const uint8_t *offerer, size_t offerer_len, const uint8_t *target,
                    size_t target_len, const uint8_t offerer_nonce[P2P_DIRECT_NONCE_SIZE],
                    const uint8_t target_nonce[P2P_DIRECT_NONCE_SIZE],
                    uint8_t mac[P2P_DIRECT_MAC_SIZE])
{
    uint8_t msg[P2P_DIRECT_MESSAGE_MAX];
    size_t len = p2p_direct_message(msg, role, attempt, offerer, offerer_len, target, target_len,
                                    offerer_nonce, target_nonce);
    p2p_hmac_sha256(secret, P2P_DIRECT_SECRET_SIZE, msg, len, mac);
}

int p2p_direct_mac_valid(const uint8_t secret[P2P_DIRECT_SECRET_SIZE], uint8_t role, uint32_t attempt,
                         const uint8_t *offerer, size_t offerer_len, const uint8_t *target,
                         size_t target_len, const uint8_t offerer_nonce[P2P_DIRECT_NONCE_SIZE],
                         const uint8_t target_nonce[P2P_DIRECT_NONCE_SIZE],
                         const uint8_t mac[P2P_DIRECT_MAC_SIZE])
{
    uint8_t want[P2P_DIRECT_MAC_SIZE];
    p2p_direct_mac(secret, role, attempt, offerer, offerer_len, target, target_len, offerer_nonce,
                   target_nonce, want);
    int ok = p2p_ct_equal(want, mac, P2P_DIRECT_MAC_SIZE);
    memset(want, 0, sizeof want);
    return ok;
}
