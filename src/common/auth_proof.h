/*
 * auth_proof.h - the arithmetic of AUTH (stupidp2p(7), AUTH): keys derived
 * from a device token, the message both sides sign, the client's proof and
 * the server's signature. Shared by the server (which checks proofs against
 * a stored verifier) and the C client (which makes them); no I/O, no state.
 *
 * The design is SCRAM's (RFC 5802, section 3) with SHA-256 and without the
 * salt and iterations, which exist to slow down guessing of human passwords
 * and buy nothing against a 256-bit random token:
 *
 *   SaltedKey       = SHA-256(token)
 *   ClientKey       = HMAC(SaltedKey, "Client Key")
 *   StoredKey       = SHA-256(ClientKey)              (the server keeps this
 *   ServerKey       = HMAC(SaltedKey, "Server Key")    and this: the verifier)
 *   AuthMessage     = "stupidP2P AUTH" || id_len || id || client nonce || server nonce
 *   ClientSignature = HMAC(StoredKey, AuthMessage)
 *   ClientProof     = ClientKey XOR ClientSignature   (sent by the client)
 *   ServerSignature = HMAC(ServerKey, AuthMessage)    (sent by the server)
 *
 * The server recovers ClientKey' = ClientProof XOR HMAC(StoredKey,
 * AuthMessage) and accepts when SHA-256(ClientKey') equals StoredKey
 * (compared in constant time). So the verifier alone does not let anyone
 * log in (it does not give ClientKey), an eavesdropper sees a proof bound
 * to nonces that never recur, and the client learns from ServerSignature
 * that the server holds the verifier.
 *
 * Every secret this module computes lands in the caller's buffers; callers
 * wipe them (explicit_bzero) when done.
 */
#ifndef STUPIDP2P_AUTH_PROOF_H
#define STUPIDP2P_AUTH_PROOF_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"
#include "sha256.h"

#ifdef __cplusplus
extern "C" {
#endif

#define P2P_AUTH_KEY_SIZE P2P_SHA256_SIZE
/* Tokens are 1..P2P_TOKEN_MAX bytes. */
#define P2P_TOKEN_MAX 256u
/* "stupidP2P AUTH", the domain-separation label in front of AuthMessage. */
#define P2P_AUTH_LABEL "stupidP2P AUTH"
#define P2P_AUTH_LABEL_SIZE 14u
#define P2P_AUTH_MESSAGE_MAX \
    (P2P_AUTH_LABEL_SIZE + 1u + P2P_ID_MAX + 2u * P2P_AUTH_NONCE_SIZE)

struct p2p_auth_keys {
    uint8_t client_key[P2P_AUTH_KEY_SIZE]; /* the client's secret       */
    uint8_t stored_key[P2P_AUTH_KEY_SIZE]; /* verifier, first half      */
    uint8_t server_key[P2P_AUTH_KEY_SIZE]; /* verifier, second half     */
};

/* Derives the three keys from token[0..len) (the token's bytes exactly as
 * written, without a line end). */
void p2p_auth_keys_from_token(const void *token, size_t len, struct p2p_auth_keys *out);

/* Writes AuthMessage for id[0..id_len) (1..P2P_ID_MAX bytes) and the two
 * nonces into out (P2P_AUTH_MESSAGE_MAX bytes); returns its length. */
size_t p2p_auth_message(uint8_t *out, const uint8_t *id, size_t id_len,
                        const uint8_t client_nonce[P2P_AUTH_NONCE_SIZE],
                        const uint8_t server_nonce[P2P_AUTH_NONCE_SIZE]);

/* Client: ClientProof for AuthMessage msg[0..len). */
void p2p_auth_client_proof(const uint8_t client_key[P2P_AUTH_KEY_SIZE],
                           const uint8_t stored_key[P2P_AUTH_KEY_SIZE], const uint8_t *msg, size_t len,
                           uint8_t proof[P2P_AUTH_PROOF_SIZE]);

/* Server: 1 if proof is a valid ClientProof of msg[0..len) for the verifier
 * whose first half is stored_key, else 0. Takes the same time whatever the
 * proof holds. */
int p2p_auth_proof_valid(const uint8_t stored_key[P2P_AUTH_KEY_SIZE], const uint8_t *msg, size_t len,
                         const uint8_t proof[P2P_AUTH_PROOF_SIZE]);

/* Server: ServerSignature of msg[0..len). */
void p2p_auth_server_signature(const uint8_t server_key[P2P_AUTH_KEY_SIZE], const uint8_t *msg,
                               size_t len, uint8_t signature[P2P_AUTH_PROOF_SIZE]);

/* Client: 1 if signature is the ServerSignature of msg[0..len) under
 * server_key (compared in constant time), else 0. */
int p2p_auth_server_signature_valid(const uint8_t server_key[P2P_AUTH_KEY_SIZE], const uint8_t *msg,
                                    size_t len, const uint8_t signature[P2P_AUTH_PROOF_SIZE]);

#ifdef __cplusplus
}
#endif

#endif /* STUPIDP2P_AUTH_PROOF_H */
