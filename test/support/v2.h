/*
 * v2.h - protocol v2 shortcuts for the integration tests (stupidp2p(7)):
 * HELLO, SEND_TO, and the DELIVER, PRESENCE and BYE events, over the raw
 * clients of harness.h.
 *
 * As in harness.h, helpers named tc_expect_* (and those that wrap one) fail
 * the current CMocka test when the expectation does not hold; include
 * <cmocka.h>'s prerequisites before this header.
 */
#ifndef STUPIDP2P_TEST_V2_H
#define STUPIDP2P_TEST_V2_H

#include <stddef.h>
#include <stdint.h>

#include "harness.h"

/* p2pServer's defaults for --max-frame and --idle-timeout, as a HELLO reply
 * reports them (p2pServer(8)). Spelled out rather than taken from the
 * server's headers, so that a changed default shows up as a failure. */
#define TC_DEFAULT_MAX_FRAME 65536u
#define TC_DEFAULT_IDLE 300u

/* Sends HELLO [version][flags] and expects the 11-byte success reply
 * 88 01 granted max_frame idle_timeout. */
void tc_expect_hello(int fd, uint8_t version, uint8_t flags, uint8_t granted,
                     uint32_t max_frame, uint32_t idle);

/* A new connection turned into a v2 session (HELLO 2 with flags) on a
 * server with the given max_frame and idle timeout. */
int tc_v2_connect_cfg(uint16_t port, uint8_t flags, uint32_t max_frame, uint32_t idle);

/* A v2 session on a server with default settings: with flags, or 0. */
int tc_v2_connect_flags(uint16_t port, uint8_t flags);
int tc_v2_connect(uint16_t port);

/* Sends SEND_TO [id_len][id][data] (no reply awaited). */
void tc_send_to(int fd, const void *id, size_t id_len, const void *data, size_t len);

/* Expects DELIVER [0x09][id_len][sender id][data]. */
void tc_expect_deliver(int fd, const void *id, size_t id_len, const void *data, size_t len);
void tc_expect_deliver_str(int fd, const char *id, const char *data);

/* Expects PRESENCE [0x0B][state][id_len][id] (id_len at most 255). */
void tc_expect_presence_bytes(int fd, uint8_t state, const void *id, size_t id_len);
void tc_expect_presence(int fd, uint8_t state, const char *id);

/* SUBSCRIBE id on a v2 session: expects 82 01 and then PRESENCE with the
 * id's state (P2P_PRESENCE_ONLINE or P2P_PRESENCE_OFFLINE). */
void tc_v2_subscribe(int fd, const char *id, uint8_t presence);

/* 1 if s[0..len) is well-formed UTF-8 (no overlongs, no surrogates, nothing
 * above U+10FFFF), else 0. */
int tc_utf8_valid(const uint8_t *s, size_t len);

/* Expects BYE [0x0E][reason][1..127 bytes of UTF-8] within timeout_ms (or
 * TC_WAIT_MS), and then the server closing the connection with nothing
 * after it. */
void tc_expect_bye_within(int fd, uint8_t reason, int timeout_ms);
void tc_expect_bye(int fd, uint8_t reason);

/* ---- direct paths (stupidp2p(7), DIRECT PATHS) ---- */
struct p2p_candidate;
struct p2p_direct;

/* The local port of a connected IPv4 socket. */
uint16_t tc_local_port(int fd);

/* Receives one frame and splits it as a DIRECT_* event of kind cmd; the
 * payload stays in buf, which d points into. */
void tc_expect_direct_event(int fd, uint8_t cmd, uint8_t *buf, size_t cap, struct p2p_direct *d);

/* c is the server's reflexive candidate for a connection from 127.0.0.1
 * port `port`. */
void tc_expect_reflexive(const struct p2p_candidate *c, uint16_t port);

/* Sends DIRECT_OFFER to target with nonce, local_port 4001 and c[0..n)
 * (no reply awaited). */
void tc_send_offer(int fd, const char *target, const uint8_t nonce[32], const struct p2p_candidate *c,
                   size_t n);

#endif /* STUPIDP2P_TEST_V2_H */
