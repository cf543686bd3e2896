/*
 * protocol.h - the stupidP2P wire protocol: command bytes, status and reason
 * codes, BYE reasons and size limits, shared by the server (C++) and the
 * client library (C).
 *
 * Only constants live here: no functions, no I/O, no includes beyond
 * <stdint.h>, so that it compiles alone as C99 and as C++ and costs nothing.
 * The full specification is man/stupidp2p.7; the summary:
 *
 *   frame   = length (u32, big-endian) + payload (length bytes)
 *   payload = command byte + data
 *
 * Every request a server understands is answered by one frame whose payload
 * starts with (command | P2P_REPLY_BIT) and a status byte, in request order.
 */
#ifndef STUPIDP2P_PROTOCOL_H
#define STUPIDP2P_PROTOCOL_H

#include <stdint.h>

/* Requests (client -> server). 0x01..0x07 are the original protocol (v1). */
enum p2p_command {
    P2P_CMD_REGISTER = 0x01,     /* id                                    */
    P2P_CMD_SUBSCRIBE = 0x02,    /* id                                    */
    P2P_CMD_SEND = 0x03,         /* data; also the v1 delivery to clients */
    P2P_CMD_UNREGISTER = 0x04,   /* (nothing)                             */
    P2P_CMD_UNSUBSCRIBE = 0x05,  /* id                                    */
    P2P_CMD_CHECK_ALIVE = 0x06,  /* id                                    */
    P2P_CMD_HEARTBEAT = 0x07,    /* (nothing)                             */
    /* v2 additions; HELLO, SEND_TO and AUTH are answered in any session. */
    P2P_CMD_HELLO = 0x08,        /* version u8, flags u8                  */
    P2P_EVT_DELIVER = 0x09,      /* server -> v2 client: id_len, id, data */
    P2P_CMD_SEND_TO = 0x0A,      /* id_len, target id, data               */
    P2P_EVT_PRESENCE = 0x0B,     /* server -> v2 client: state, id_len, id*/
    P2P_CMD_AUTH = 0x0C,         /* step u8, then per step (see below)    */
    P2P_EVT_BYE = 0x0E,          /* server -> v2 client: reason, text     */
    P2P_EVT_GAP = 0x0F,          /* server -> v2 client: id_len, id,
                                    frames u32, bytes u64 (drop policy)   */
    /* Direct paths (v2 only; stupidp2p(7), DIRECT PATHS). Requests carry
     * [id_len][peer id] first; all but OFFER then the attempt id (u32). */
    P2P_CMD_DIRECT_OFFER = 0x10,   /* target, nonce, local port, candidates */
    P2P_CMD_DIRECT_ANSWER = 0x11,  /* offerer, attempt, accept [, nonce,
                                      local port, candidates]             */
    P2P_CMD_DIRECT_SYNC = 0x12,    /* target, attempt                      */
    P2P_CMD_DIRECT_MARK = 0x13,    /* peer, attempt, kind u8, seq u64      */
    P2P_CMD_DIRECT_RESULT = 0x14,  /* peer, attempt, outcome u8, ms u32    */
    /* ... and the events the server forwards them as, naming the sender. */
    P2P_EVT_DIRECT_OFFER = 0x18,   /* offerer, attempt, secret, nonce, ... */
    P2P_EVT_DIRECT_ANSWER = 0x19,  /* target, attempt, accept [, ...]      */
    P2P_EVT_DIRECT_SYNC = 0x1A,    /* offerer, attempt                     */
    P2P_EVT_DIRECT_MARK = 0x1B     /* peer, attempt, kind, seq             */
};

/* A reply's command byte is the request's with this bit set. Requests with
 * the bit set are not commands: v1 ignores them, v2 treats them as a
 * protocol error. */
#define P2P_REPLY_BIT 0x80u

/* The status byte of a reply. v1 sessions only ever see 0 and 1. */
enum p2p_status {
    P2P_STATUS_FAILURE = 0,          /* generic failure (all v1 failures) */
    P2P_STATUS_OK = 1,
    P2P_STATUS_NOT_REGISTERED = 2,   /* the caller holds no id            */
    P2P_STATUS_OFFLINE = 3,          /* target offline or unknown         */
    P2P_STATUS_BAD_ARGUMENT = 4,     /* empty/over-long id, own id, ...   */
    P2P_STATUS_NOT_AUTHORIZED = 5,
    P2P_STATUS_UNSUPPORTED = 6,      /* unknown command                   */
    P2P_STATUS_LIMIT = 7             /* a server limit was reached        */
};

/* The reason byte of a BYE, the last frame before the server closes a v2
 * connection. */
enum p2p_bye_reason {
    P2P_BYE_TAKEN_OVER = 1,
    P2P_BYE_IDLE_TIMEOUT = 2,
    P2P_BYE_SLOW_CONSUMER = 3,
    P2P_BYE_SHUTDOWN = 4,
    P2P_BYE_PROTOCOL_ERROR = 5,
    P2P_BYE_NOT_AUTHORIZED = 6,
    P2P_BYE_LIMIT = 7
};

/* PRESENCE state byte. */
enum p2p_presence_state { P2P_PRESENCE_OFFLINE = 0, P2P_PRESENCE_ONLINE = 1 };

/* HELLO flags. Every other bit is reserved and makes HELLO fail (88 04). */
#define P2P_HELLO_FLAG_QUIET 0x01u
/* "Drop, don't disconnect": deliveries that would pass the output limit
 * are dropped whole and reported by GAP events instead of the session being
 * closed with BYE 3. */
#define P2P_HELLO_FLAG_DROP 0x02u
#define P2P_HELLO_FLAGS_KNOWN (P2P_HELLO_FLAG_QUIET | P2P_HELLO_FLAG_DROP)

/* AUTH (v2 only), a two-step challenge-response; stupidp2p(7), AUTH:
 *   step 1  C: 0c 01 id_len id client_nonce[32]   S: 8c 01 01 server_nonce[32]
 *   step 2  C: 0c 02 proof[32]                    S: 8c 01 02 server_signature[32]
 * A failure is the 2-byte [8c][status]; the third failed step 2 on one
 * connection is followed by BYE 6 and the close. */
enum p2p_auth_step { P2P_AUTH_STEP_START = 1, P2P_AUTH_STEP_PROOF = 2 };
#define P2P_AUTH_NONCE_SIZE 32u   /* client and server nonces           */
#define P2P_AUTH_PROOF_SIZE 32u   /* ClientProof, ServerSignature       */
#define P2P_AUTH_MAX_FAILURES 3u  /* failed step 2s before BYE 6        */

/* Direct paths (stupidp2p(7), DIRECT PATHS). */
#define P2P_DIRECT_SECRET_SIZE 32u   /* the attempt secret, from the server */
#define P2P_DIRECT_NONCE_SIZE 32u    /* each side's nonce                   */
#define P2P_DIRECT_MAC_SIZE 32u      /* a proof on the direct connection    */
#define P2P_DIRECT_CANDIDATES_MAX 8u /* candidates a client may offer       */
/* Candidate kinds: a listening socket on one of the device's addresses, and
 * the address the server sees for the device's relay connection (added by
 * the server, first in the list it forwards). */
enum p2p_candidate_kind { P2P_CANDIDATE_LAN = 1, P2P_CANDIDATE_REFLEXIVE = 2 };
enum p2p_direct_answer { P2P_DIRECT_DECLINE = 0, P2P_DIRECT_ACCEPT = 1 };
/* DIRECT_MARK kinds: from now on my SEND_TOs to you travel on the direct
 * path (SWITCH), or through the relay again (FALLBACK). */
enum p2p_mark_kind { P2P_MARK_SWITCH = 1, P2P_MARK_FALLBACK = 2 };
/* DIRECT_RESULT outcomes. */
enum p2p_direct_outcome { P2P_DIRECT_OUTCOME_DIRECT = 1, P2P_DIRECT_OUTCOME_FAILED = 2 };
/* Frames on a direct connection between two devices (the same framing). */
enum p2p_link_frame {
    P2P_LINK_PROOF = 0x01, /* role u8, attempt u32, mac[32]               */
    P2P_LINK_USE = 0x02,   /* (nothing): the offerer chose this connection */
    P2P_LINK_DATA = 0x03,  /* seq u64, data                               */
    P2P_LINK_ACK = 0x04,   /* seq u64: every message up to seq delivered   */
    P2P_LINK_PING = 0x05   /* (nothing): keepalive                        */
};
enum p2p_direct_role { P2P_ROLE_OFFERER = 1, P2P_ROLE_TARGET = 2 };

/* Protocol versions. A connection is v1 until HELLO negotiates 2. */
#define P2P_VERSION_1 1u
#define P2P_VERSION_2 2u
#define P2P_VERSION_MAX P2P_VERSION_2

/* Sizes. */
#define P2P_FRAME_HEADER_SIZE 4u
#define P2P_ID_MAX 255u                   /* ids are 1..255 bytes          */
#define P2P_DEFAULT_MAX_FRAME 65536u      /* bound on client-sent payloads */
#define P2P_DEFAULT_PORT 4040u
/* A DELIVER carries [0x09][id_len][id] before the data, so a frame from the
 * server may exceed the negotiated max_frame by up to this much
 * (2 + 255 id bytes, less the command byte already counted). */
#define P2P_SERVER_FRAME_SLACK 256u
#define P2P_BYE_TEXT_MAX 127u
/* HELLO reply: 88 01 version u8, max_frame u32, idle_timeout_s u32. */
#define P2P_HELLO_REPLY_SIZE 11u
/* GAP: at most this many events, one per publisher with drops plus one for
 * all the others, follow one episode of drops. */
#define P2P_GAP_NAMED_MAX 16u

#endif /* STUPIDP2P_PROTOCOL_H */
