/* auth_proof.c - see auth_proof.h. */
#include "auth_proof.h"

#include <string.h>

#include "hmac_sha256.h"

void p2p_auth_keys_from_token(const void *token, size_t len, struct p2p_auth_keys *out)
{
    uint8_t salted[P2P_SHA256_SIZE];
    p2p_sha256(token, len, salted);
    p2p_hmac_sha256(salted, sizeof salted, "Client Key", 10, out->client_key);
    p2p_sha256(out->client_key, sizeof out->client_key, out->stored_key);
    p2p_hmac_sha256(salted, sizeof salted, "Server Key", 10, out->server_key);
    explicit_bzero(salted, sizeof salted);
}

size_t p2p_auth_message(uint8_t *out, const uint8_t *id, size_t id_len,
                        const uint8_t client_nonce[P2P_AUTH_NONCE_SIZE],
                        const uint8_t server_nonce[P2P_AUTH_NONCE_SIZE])
{
    size_t n = 0;
    memcpy(out, P2P_AUTH_LABEL, P2P_AUTH_LABEL_SIZE);
    n += P2P_AUTH_LABEL_SIZE;
    out[n++] = (uint8_t)id_len;
    memcpy(out + n, id, id_len);
    n += id_len;
    memcpy(out + n, client_nonce, P2P_AUTH_NONCE_SIZE);
    n += P2P_AUTH_NONCE_SIZE;
    memcpy(out + n, server_nonce, P2P_AUTH_NONCE_SIZE);
    return n + P2P_AUTH_NONCE_SIZE;
}

/* out = a XOR b, 32 bytes. */
static void xor_key(uint8_t *out, const uint8_t *a, const uint8_t *b)
{
    for (size_t i = 0; i < P2P_AUTH_KEY_SIZE; i++)
        out[i] = (uint8_t)(a[i] ^ b[i]);
}

void p2p_auth_client_proof(const uint8_t client_key[P2P_AUTH_KEY_SIZE],
                           const uint8_t stored_key[P2P_AUTH_KEY_SIZE], const uint8_t *msg, size_t len,
                           uint8_t proof[P2P_AUTH_PROOF_SIZE])
{
    uint8_t signature[P2P_HMAC_SHA256_SIZE];
    p2p_hmac_sha256(stored_key, P2P_AUTH_KEY_SIZE, msg, len, signature);
    xor_key(proof, client_key, signature);
    explicit_bzero(signature, sizeof signature);
}

int p2p_auth_proof_valid(const uint8_t stored_key[P2P_AUTH_KEY_SIZE], const uint8_t *msg, size_t len,
                         const uint8_t proof[P2P_AUTH_PROOF_SIZE])
{
    uint8_t signature[P2P_HMAC_SHA256_SIZE], client_key[P2P_AUTH_KEY_SIZE], check[P2P_SHA256_SIZE];
    p2p_hmac_sha256(stored_key, P2P_AUTH_KEY_SIZE, msg, len, signature);
    xor_key(client_key, proof, signature);
    p2p_sha256(client_key, sizeof client_key, check);
    int valid = p2p_ct_equal(check, stored_key, P2P_AUTH_KEY_SIZE);
    explicit_bzero(client_key, sizeof client_key);
    return valid;
}

void p2p_auth_server_signature(const uint8_t server_key[P2P_AUTH_KEY_SIZE], const uint8_t *msg,
                               size_t len, uint8_t signature[P2P_AUTH_PROOF_SIZE])
{
    p2p_hmac_sha256(server_key, P2P_AUTH_KEY_SIZE, msg, len, signature);
}

int p2p_auth_server_signature_valid(const uint8_t server_key[P2P_AUTH_KEY_SIZE], const uint8_t *msg,
                                    size_t len, const uint8_t signature[P2P_AUTH_PROOF_SIZE])
{
    uint8_t want[P2P_HMAC_SHA256_SIZE];
    p2p_auth_server_signature(server_key, msg, len, want);
    return p2p_ct_equal(want, signature, sizeof want);
}
