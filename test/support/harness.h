/*
 * harness.h - test support shared by the integration tests (test/integration)
 * and the client library tests (test/client): start the real p2pServer on
 * 127.0.0.1 with an ephemeral port, and talk to it through raw sockets.
 *
 * Everything here goes to loopback only, and every wait is bounded: a helper
 * waits on a condition (bytes arriving, a connection closing, a process
 * exiting) up to a deadline, never for a fixed time.
 *
 * Servers and child processes die with the thread that started them
 * (PR_SET_PDEATHSIG): start them from the test's main thread.
 *
 * A server is ready when /proc shows its own LISTEN socket on the port: no
 * probe connection is made, so --max-conns and the server's log see only
 * the test's connections. Its stdout and stderr go to
 * $P2P_BUILD/test-logs/servers/p2pServer-*.txt, or /tmp/p2pServer-test-*.txt
 * without P2P_BUILD (removed at stop/kill unless P2P_KEEP_LOGS is set). A
 * failing tc_ helper prints the tail of every running server's log.
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
    int reserve_fd;       /* -1, or a socket holding the port between a
                             kill and a restart (see harness.c)           */
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

/* Convenience: a frame of one command byte followed by data (the codec's
 * [cmd][id] layout, used for any bytes). */
void tc_send_cmd(int fd, uint8_t cmd, const void *data, size_t len);

/* A new buffer (free it) holding head[0..head_len) then data[0..len): a
 * payload whose head a codec encoder wrote, and its data. */
uint8_t *tc_payload(const uint8_t *head, size_t head_len, const void *data, size_t len);

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

/* ---- additions (harness.c) ---------------------------------------------- */

/* The server binary: $P2P_SERVER, or ./p2pServer. */
const char *p2p_server_path(void);

/* Prints the tail of every running server's log to stderr (done by every
 * failing tc_ helper before it fails the test). */
void tc_print_server_logs(void);

/* Fails the current test with a printf-style message, after printing the
 * running servers' log tails. Does not return. */
void tc_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

/* Hex dump of data[from..from+count) (clipped to len) on stderr. */
void tc_hexdump(const char *label, const void *data, size_t len, size_t from, size_t count);

/* Like tc_send_raw but returns -1 (errno set) instead of failing: for
 * writes that may meet a connection the server has closed. */
int tc_try_send_raw(int fd, const void *buf, size_t len);

/* tc_expect_frame with an explicit timeout. */
void tc_expect_frame_within(int fd, const void *expected, size_t len, int timeout_ms);

/* 1 if the connection answers a HEARTBEAT with 87 01, 0 if it is closed
 * (EOF, reset or no answer within TC_WAIT_MS). Fails on any other frame. */
int tc_is_open(int fd);

/* Ids as byte strings (NUL and high bytes allowed). */
void tc_register_bytes(int fd, const void *id, size_t len, uint8_t expect_status);
void tc_subscribe_bytes(int fd, const void *id, size_t len, uint8_t expect_status);

/* More v1 shortcuts that assert the reply. */
void tc_unsubscribe(int fd, const char *id);                       /* 85 01 */
void tc_unregister(int fd);                                        /* 84 01 */
void tc_check_alive(int fd, const char *id, uint8_t expect_status); /* 86 s */
void tc_send_data(int fd, const void *data, size_t len, uint8_t expect_status); /* 83 s */

/* Asserts the next frame is the v1 delivery [0x03] + data. */
void tc_expect_data(int fd, const void *data, size_t len);

/* close() that fails the test on error; ignores fd < 0. */
void tc_close(int fd);

/* p2p_server_stop with another signal (SIGINT, ...). */
int p2p_server_stop_with(struct p2p_server *server, int sig);

/* Reads exactly len bytes and asserts they are expected[0..len): for
 * checking frames on the wire, headers included. */
void tc_expect_raw(int fd, const void *expected, size_t len);

/* Closes our side with shutdown(SHUT_WR), waits (bounded) for the server to
 * close its side, skipping frames, then closes fd. When it returns the
 * server has processed the close: the connection's id is released. */
void tc_close_and_wait(int fd);

/* Sends CHECK_ALIVE id on fd until the reply status is `status` (bounded
 * by timeout_ms): for the few cases with no event to synchronise on. */
void tc_wait_alive(int fd, const void *id, size_t len, uint8_t status, int timeout_ms);

/* CMocka fixtures: *state becomes a started struct p2p_server (allocated);
 * teardown stops it and fails if it did not exit 0 on SIGTERM. */
int tc_setup_server(void **state);
int tc_setup_server_args(void **state, const char *const *extra_args);
int tc_teardown_server(void **state);

/* Fixture for cmocka's prestate: on entry *state is the server's extra_args
 * (a NULL-terminated list, as given to TC_SERVER_TEST_ARGS); on success it
 * becomes the started server, as with tc_setup_server_args. */
int tc_setup_server_prestate(void **state);

/* A test case with a server of its own, started by the fixtures above:
 * default settings, or with extra_args (a static NULL-terminated list).
 * Needs <cmocka.h>. */
#define TC_SERVER_TEST(f) cmocka_unit_test_setup_teardown(f, tc_setup_server, tc_teardown_server)
#define TC_SERVER_TEST_ARGS(f, extra_args)                                                    \
    cmocka_unit_test_prestate_setup_teardown(f, tc_setup_server_prestate, tc_teardown_server, \
                                             (void *)(extra_args))

/* The port of the server a tc_setup_server* fixture put in *state. */
uint16_t tc_port(void **state);

/* For tests that start their own servers: p2p_server_start, failing the
 * test if it does not start; p2p_server_stop, failing it unless the server
 * exits 0 on SIGTERM. */
void tc_start_server(struct p2p_server *server, const char *const *extra_args);
void tc_stop_server(struct p2p_server *server);

/* Connects *pub and then *sub to 127.0.0.1:port, registers *pub as id and
 * subscribes *sub to it, each reply asserted to be status 1 (81 01, 82 01).
 * Both are v1 sessions, as from tc_connect. */
void tc_connect_pub_sub(uint16_t port, const char *id, int *pub, int *sub);

/* Connects n clients to 127.0.0.1:port, one after the other, and registers
 * fds[i] as prefix followed by i in decimal ("p0", "p1", ...), each reply
 * asserted to be 81 01. */
void tc_connect_registered(uint16_t port, int *fds, int n, const char *prefix);

/* CHECK_ALIVE with an id given as bytes; asserts 86 expect_status. */
void tc_check_alive_bytes(int fd, const void *id, size_t len, uint8_t expect_status);

/* malloc (of at least 1 byte) that fails the test when out of memory. */
void *tc_xmalloc(size_t n);

/* Fills buf[0..len) (len >= 2) with 'a' + i % 26, then writes i's low 16
 * bits little-endian at buf[0..2): the i-th of a run of distinct payloads. */
void tc_fill_indexed(uint8_t *buf, size_t len, int i);

/* Writes v big-endian at p[0..4) (p2p_put_be32). */
void tc_put_u32(uint8_t *p, uint32_t v);

#define TC_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif /* STUPIDP2P_TEST_HARNESS_H */
