/*
 * harness.h - test support shared by the integration tests (test/integration)
 * and the client library tests (test/client): start the real p2pServer on
 * 127.0.0.1 with an ephemeral port, and talk to it through raw sockets.
 *
 * Everything here goes to loopback only, and every wait is bounded: a helper
 * waits on a condition (bytes arriving, a connection closing, a process
 * exiting) up to a deadline, never for a fixed time.
 *
 * Helpers whose names start with tc_expect_ fail the current CMocka test
 * (via fail_msg) when the expectation does not hold; include <cmocka.h>'s
 * prerequisites before this header.
 */
#ifndef STUPIDP2P_TEST_HARNESS_H
#define STUPIDP2P_TEST_HARNESS_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Default bound on any single wait, in milliseconds. */
#define TC_WAIT_MS 5000

/* A running server. */
struct p2p_server {
    pid_t pid;            /* 0 when not running                          */
    uint16_t port;        /* the port it listens on, on 127.0.0.1         */
    char log_path[512];   /* its stderr, kept for the test's log          */
};

/* Starts $P2P_SERVER (default ./p2pServer) as
 *     p2pServer --bind 127.0.0.1 [extra_args...] PORT
 * on a free ephemeral port, and returns 0 once it accepts connections
 * (-1 on failure, with a message on stderr). extra_args is NULL or a
 * NULL-terminated list such as {"--idle-timeout", "1", NULL}. */
int p2p_server_start(struct p2p_server *server, const char *const *extra_args);

/* Sends SIGTERM, waits (bounded) and returns the exit status as from
 * waitpid's WEXITSTATUS, or -1 if it had to be killed or died of a signal. */
int p2p_server_stop(struct p2p_server *server);

/* SIGKILL and reap: a crash as far as clients can tell. */
void p2p_server_kill(struct p2p_server *server);

/* Restarts a stopped or killed server on the same port (bounded retries
 * while the port is still in TIME_WAIT's grip). Returns 0 on success. */
int p2p_server_restart(struct p2p_server *server, const char *const *extra_args);

/* Runs argv (argv[0] is the program) with stdout and stderr captured into
 * out (NUL-terminated, truncated to cap-1), waits at most timeout_ms, and
 * returns its exit status (-1 on timeout or signal). */
int tc_run_capture(const char *const *argv, char *out, size_t cap, int timeout_ms);

/* ---- raw clients (blocking sockets, TCP_NODELAY, to 127.0.0.1) ---------- */

/* Connects to 127.0.0.1:port; fails the test on error. */
int tc_connect(uint16_t port);

/* Writes all of buf; fails the test on error. */
void tc_send_raw(int fd, const void *buf, size_t len);

/* Writes one frame: the 4-byte big-endian length, then the payload. */
void tc_send_frame(int fd, const void *payload, size_t len);

/* Convenience: a frame of one command byte followed by data. */
void tc_send_cmd(int fd, uint8_t cmd, const void *data, size_t len);

/* Reads one whole frame into buf (cap bytes). Returns the payload length,
 * or -1 on EOF, error or when timeout_ms passes first. A frame larger than
 * cap fails the test. */
ssize_t tc_recv_frame(int fd, uint8_t *buf, size_t cap, int timeout_ms);

/* Reads one frame and asserts that its payload is exactly expected[0..len)
 * (a hex dump of both on mismatch). */
void tc_expect_frame(int fd, const void *expected, size_t len);

/* Asserts the next frame is the 2-byte reply [cmd|0x80, status]. */
void tc_expect_reply(int fd, uint8_t cmd, uint8_t status);

/* Asserts the peer closes the connection (EOF or reset) within timeout_ms,
 * with no further frame before it; pass allow_frames=1 to skip frames. */
void tc_expect_closed(int fd, int timeout_ms, int allow_frames);

/* Asserts that nothing is pending before the reply to a HEARTBEAT sent now:
 * the server answers in order, so anything queued for fd arrives first. */
void tc_expect_nothing_pending(int fd);

/* Client shortcuts that assert the expected reply status. */
void tc_register(int fd, const char *id, uint8_t expect_status);
void tc_subscribe(int fd, const char *id, uint8_t expect_status);

#endif /* STUPIDP2P_TEST_HARNESS_H */
