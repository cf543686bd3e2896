// token_tools.h - the two commands that run instead of the server
// (p2pServer(8), TOKENS):
//
//   p2pServer --gen-token          a new device token on standard output
//   p2pServer --hash-token ID      a token on standard input; the auth file
//                                  line for ID on standard output
//
// A token is 1..P2P_TOKEN_MAX bytes of printable ASCII without spaces
// (0x21..0x7e). --gen-token makes one of 32 random bytes from getrandom(2),
// written in base64url without padding (43 characters). The server never
// sees a token: it keeps the verifier --hash-token prints.
#pragma once

// Each returns the process's exit status: 0 done; 1 failed (no randomness,
// a bad token on standard input, a write error), with a message on standard
// error; 2 for a bad ID (written as in the auth file).
int gen_token_main();
int hash_token_main(const char* id_text);
