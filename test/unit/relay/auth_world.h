// auth_world.h - AUTH for the relay's unit tests (test_relay_auth.cpp,
// test_relay_peers.cpp), on top of relay_world.h: auth tables installed
// from text, and the client's side of the exchange computed with
// src/common/auth_proof.h, so that a test can authenticate a FakeSession
// and check the server's signature byte for byte.
#pragma once

#include <cstring>
#include <memory>
#include <string>

#include "auth_proof.h"
#include "auth_table.h"
#include "relay_world.h"

namespace relay_test {

const char kTokenA[] = "token-A";
const char kTokenB[] = "token-B";

// "ID VERIFIER [PEERS]\n" for token, id written as the file writes it.
inline std::string auth_line(const std::string& id, const char* token, const char* peers = nullptr) {
    AuthVerifier v;
    auth_verifier_from_token(token, std::strlen(token), &v);
    char text[kVerifierTextMax];
    auth_verifier_format(v, text);
    std::string line = id + " " + text;
    if (peers != nullptr) line += std::string(" ") + peers;
    return line + "\n";
}

// Parses text and installs it in w's relay; fails the test if either fails.
inline AuthChanges install(World& w, const std::string& text) {
    char err[512] = "";
    std::unique_ptr<AuthTable> table = AuthTable::parse(text, "test", kKey, err, sizeof err);
    if (!table) fail_msg("%s", err);
    AuthChanges changes;
    assert_true(w.relay.install_auth(std::move(table), &changes));
    return changes;
}

inline Bytes auth_start(std::string_view id, const uint8_t* nonce) {
    uint8_t out[P2P_AUTH_START_MAX];
    size_t n = p2p_encode_auth_start(out, reinterpret_cast<const uint8_t*>(id.data()), id.size(), nonce);
    return Bytes(out, out + n);
}

inline Bytes auth_proof(const uint8_t* proof) {
    uint8_t out[P2P_AUTH_PROOF_REQ_SIZE];
    return Bytes(out, out + p2p_encode_auth_proof(out, proof));
}

// One exchange as the client sees it.
struct ClientAuth {
    uint8_t client_nonce[32];
    uint8_t server_nonce[32];
    uint8_t proof[32];
    uint8_t signature[32];  // the one the server must send
};

// Sends step 1 for id on s, takes the challenge (asserting its layout) and
// sends step 2 made with token. The result reply is left for the caller.
inline ClientAuth authenticate(World& w, Session& s, std::string_view id, const char* token) {
    static uint8_t counter = 0;
    ClientAuth c;
    std::memset(c.client_nonce, ++counter, sizeof c.client_nonce);
    w.in(s, auth_start(id, c.client_nonce));
    std::vector<Bytes> got = w.take(s);
    assert_int_equal(got.size(), 1);
    assert_int_equal(got[0].size(), P2P_AUTH_REPLY_SIZE);
    assert_int_equal(got[0][0], 0x8c);
    assert_int_equal(got[0][1], 0x01);
    assert_int_equal(got[0][2], 0x01);
    std::memcpy(c.server_nonce, got[0].data() + 3, 32);
    p2p_auth_keys keys;
    p2p_auth_keys_from_token(token, std::strlen(token), &keys);
    uint8_t msg[P2P_AUTH_MESSAGE_MAX];
    size_t len = p2p_auth_message(msg, reinterpret_cast<const uint8_t*>(id.data()), id.size(),
                                  c.client_nonce, c.server_nonce);
    p2p_auth_client_proof(keys.client_key, keys.stored_key, msg, len, c.proof);
    p2p_auth_server_signature(keys.server_key, msg, len, c.signature);
    w.in(s, auth_proof(c.proof));
    return c;
}

// The success reply for an exchange: 8c 01 02 + ServerSignature.
inline Bytes auth_accepted(const ClientAuth& c) {
    return Bytes{0x8c, 0x01, 0x02} + std::string_view(reinterpret_cast<const char*>(c.signature), 32);
}

// A session that authenticated as id (reply checked and taken).
inline void auth_ok(World& w, Session& s, std::string_view id, const char* token) {
    ClientAuth c = authenticate(w, s, id, token);
    std::vector<Bytes> got = w.take(s);
    assert_true(!got.empty());
    assert_string_equal(render(got[0]).c_str(), render(auth_accepted(c)).c_str());
    assert_non_null(s.device);
    assert_true(s.device->key() == id);
}

}  // namespace relay_test
