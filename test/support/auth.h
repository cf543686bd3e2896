/*
 * auth.h - authentication for the integration tests (stupidp2p(7), AUTH):
 * the client's side of the proof, built on src/common/auth_proof.h (the
 * client library has no AUTH yet); auth files; SIGHUP reloads observed
 * through the server's log; and running p2pServer's token tools with a
 * given standard input.
 *
 * As in harness.h, helpers named tc_expect_* (and those that wrap one) fail
 * the current CMocka test when the expectation does not hold; include
 * <cmocka.h>'s prerequisites before this header.
 */
#ifndef STUPIDP2P_TEST_AUTH_H
#define STUPIDP2P_TEST_AUTH_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "codec.h"
#include "harness.h"

/* Two tokens for the tests, as --gen-token makes them (43 characters). */
#define TC_TOKEN_A "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8"
#define TC_TOKEN_B "ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8"

/* The auth file line for id (written as the file writes it) and token:
 * "ID VERIFIER", then " PEERS" unless peers is NULL, then a newline.
 * Appended to out (a NUL-terminated string with cap bytes in all). */
void tc_auth_line(char *out, size_t cap, const char *id, const char *token, const char *peers);

/* A new directory for a test's files under $P2P_BUILD/test-logs/auth or
 * /tmp (cap >= 64). Files in it are the test's to remove. */
void tc_auth_dir(char *out, size_t cap);

/* Replaces path with text (mode mode) by writing a temporary file beside
 * it and renaming it over path, so that a reload reads either the old or
 * the new file, never half of one. */
void tc_write_file(const char *path, const char *text, mode_t mode);

/* What one AUTH exchange put on the wire, payloads without the length. */
struct tc_auth_exchange {
    uint8_t start[P2P_AUTH_START_MAX]; /* the client's step 1   */
    size_t start_len;
    uint8_t challenge[P2P_AUTH_REPLY_SIZE]; /* the server's answer  */
    size_t challenge_len;
    uint8_t proof[P2P_AUTH_PROOF_REQ_SIZE]; /* the client's step 2   */
    uint8_t result[P2P_AUTH_REPLY_SIZE]; /* the server's answer  */
    size_t result_len;
};

/* Authenticates fd (a v2 session) as id_len bytes of id with token: step
 * 1 with a random client nonce, then, if the challenge came, step 2 with
 * the proof. Returns the status of the last reply; on 1 the server's
 * signature has been checked (a wrong one fails the test). ex (may be
 * NULL) gets the frames. */
int tc_auth_bytes(int fd, const void *id, size_t id_len, const char *token,
                  struct tc_auth_exchange *ex);
int tc_auth(int fd, const char *id, const char *token, struct tc_auth_exchange *ex);

/* tc_auth, asserting the final status. */
void tc_expect_auth(int fd, const char *id, const char *token, uint8_t status);

/* A new v2 session authenticated as id with token (asserted). */
int tc_auth_connect(uint16_t port, const char *id, const char *token);

/* A server with an auth file of its own. */
struct tc_auth_server {
    struct p2p_server srv;
    char dir[512];  /* a directory for the file (tc_auth_dir) */
    char path[600]; /* the auth file, mode 0600               */
};

/* Writes text as the auth file and starts p2pServer with --auth-file and
 * extra_args (NULL or a NULL-terminated list of at most 8), failing the
 * test if it does not start. */
void tc_auth_server_start(struct tc_auth_server *a, const char *text, const char *const *extra_args);

/* Stops the server (asserting exit 0) and removes its files. */
void tc_auth_server_stop(struct tc_auth_server *a);

/* Number of times needle occurs in the server's log so far. */
int tc_log_count(const struct p2p_server *server, const char *needle);

/* Waits (bounded by TC_WAIT_MS) until needle occurs at least n times in the
 * server's log; fails the test otherwise. */
void tc_wait_log(const struct p2p_server *server, const char *needle, int n);

/* Sends SIGHUP and waits until the server has finished the reload: its log
 * shows the new auth file in force (expect_ok) or the old one kept. */
void tc_reload(const struct p2p_server *server, int expect_ok);

/* Runs argv (argv[0] is the program) with input[0..len) on its standard
 * input, then end of input; stdout and stderr are captured separately into
 * out and err (NUL-terminated, truncated to their cap - 1). Returns the exit
 * status, or -1 on timeout (timeout_ms) or a signal. */
int tc_run_with_input(const char *const *argv, const void *input, size_t len, char *out,
                      size_t out_cap, char *err, size_t err_cap, int timeout_ms);

/* tc_run_with_input for p2pServer itself: argv is the server's path
 * followed by args (a NULL-terminated list of at most 14). */
int tc_run_server_with_input(const char *const *args, const void *input, size_t len, char *out,
                             size_t out_cap, char *err, size_t err_cap, int timeout_ms);

#endif /* STUPIDP2P_TEST_AUTH_H */
