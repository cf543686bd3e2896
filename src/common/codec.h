/*
 * codec.h - the stupidP2P wire codec, shared by the server, the C client
 * library and the test harness: the frame header, and the layout of every
 * payload (each request, reply and event), encoded and parsed in one place.
 *
 * The specification is man/stupidp2p.7; protocol.h holds the constants.
 * Nothing here does I/O, allocates or keeps state: encoders write into a
 * caller's buffer of the documented size and return how many bytes they
 * wrote; parsers point into the caller's bytes and never read past them.
 * It is written in C so that libstupidp2p.a needs no C++ runtime; the
 * server links the same object.
 *
 *   frame   = length (u32, big-endian) + payload (length bytes)
 *   payload = command byte + data
 *
 * Where a payload is an arbitrary-length head followed by caller data (a
 * delivery, a SEND, a SEND_TO), the codec encodes the head only ("_head"
 * functions), so that the data can be written straight from where it lies.
 */
#ifndef STUPIDP2P_CODEC_H
#define STUPIDP2P_CODEC_H

#include <stddef.h>
#include <stdint.h>

#include "protocol.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- integers ------------------------------------------------------------ */

void p2p_put_be32(uint8_t p[4], uint32_t v);
uint32_t p2p_get_be32(const uint8_t p[4]);
void p2p_put_be64(uint8_t p[8], uint64_t v);
uint64_t p2p_get_be64(const uint8_t p[8]);

/* ---- frames ---------------------------------------------------------------- */

/* Result of p2p_frame_parse. */
enum p2p_frame_result {
    P2P_FRAME_COMPLETE = 0,  /* a whole frame is in the buffer              */
    P2P_FRAME_INCOMPLETE = 1,/* more bytes are needed (see need)            */
    P2P_FRAME_TOO_LONG = 2   /* the header announces more than max_payload  */
};

/* One parsed frame: payload points into the caller's buffer. */
struct p2p_frame {
    const uint8_t *payload;  /* L bytes, valid while the buffer is          */
    uint32_t length;         /* L, the payload length (may be 0)            */
    size_t consumed;         /* 4 + L: bytes to drop to reach the next one  */
    size_t need;             /* INCOMPLETE: total bytes the frame needs (4
                                while the header itself is incomplete)      */
};

/* Writes the 4-byte big-endian header for a payload of `length` bytes. */
void p2p_frame_header_encode(uint8_t header[4], uint32_t length);

/* Reads the payload length out of a 4-byte header. */
uint32_t p2p_frame_header_decode(const uint8_t header[4]);

/* Looks for one frame at the start of buf[0..len). A header announcing more
 * than max_payload bytes is TOO_LONG as soon as the header is complete, so a
 * caller never buffers an oversize frame. Never reads past buf + len. */
enum p2p_frame_result p2p_frame_parse(const uint8_t *buf, size_t len,
                                      uint32_t max_payload,
                                      struct p2p_frame *out);

/* ---- payload sizes ------------------------------------------------------------ */

#define P2P_REPLY_SIZE 2u                        /* [cmd|0x80][status]        */
#define P2P_HELLO_SIZE 3u                        /* [08][version][flags]      */
#define P2P_ID_COMMAND_MAX (1u + P2P_ID_MAX)     /* [cmd][id]                 */
#define P2P_ID_HEAD_MAX (2u + P2P_ID_MAX)        /* [cmd][id_len][id]         */
#define P2P_PRESENCE_MAX (3u + P2P_ID_MAX)       /* [0b][state][id_len][id]   */
#define P2P_BYE_MAX (2u + P2P_BYE_TEXT_MAX)      /* [0e][reason][text]        */
#define P2P_GAP_FIXED 14u                        /* GAP without its id        */
#define P2P_GAP_MAX (P2P_GAP_FIXED + P2P_ID_MAX) /* [0f][id_len][id][u32][u64] */
/* AUTH step 1: [0c][01][id_len][id][client nonce] */
#define P2P_AUTH_START_MAX (3u + P2P_ID_MAX + P2P_AUTH_NONCE_SIZE)
#define P2P_AUTH_PROOF_REQ_SIZE (2u + P2P_AUTH_PROOF_SIZE) /* [0c][02][proof] */
/* An AUTH success: [8c][01][step][server nonce or server signature] */
#define P2P_AUTH_REPLY_SIZE (3u + P2P_AUTH_NONCE_SIZE)

/* ---- encoders (each returns the bytes written) ----------------------------- */

/* A reply: [cmd | 0x80][status]. out: P2P_REPLY_SIZE bytes. */
size_t p2p_encode_reply(uint8_t *out, uint8_t cmd, uint8_t status);

/* The HELLO success reply: [88][01][version][max_frame u32][idle_timeout_s
 * u32]. out: P2P_HELLO_REPLY_SIZE bytes. */
size_t p2p_encode_hello_reply(uint8_t *out, uint8_t version, uint32_t max_frame,
                              uint32_t idle_timeout_s);

/* HELLO: [08][version][flags]. out: P2P_HELLO_SIZE bytes. */
size_t p2p_encode_hello(uint8_t *out, uint8_t version, uint8_t flags);

/* A request whose data is one id or nothing: REGISTER, SUBSCRIBE,
 * UNSUBSCRIBE, CHECK_ALIVE ([cmd][id]); UNREGISTER, HEARTBEAT (id_len 0).
 * out: 1 + id_len bytes (at most P2P_ID_COMMAND_MAX for a valid id). */
size_t p2p_encode_id_command(uint8_t *out, uint8_t cmd, const uint8_t *id, size_t id_len);

/* The head of SEND_TO ([0a][id_len][target id]) and of DELIVER ([09]
 * [id_len][sender id]); the data follows. id_len is 1..P2P_ID_MAX. out:
 * P2P_ID_HEAD_MAX bytes. */
size_t p2p_encode_send_to_head(uint8_t *out, const uint8_t *id, size_t id_len);
size_t p2p_encode_deliver_head(uint8_t *out, const uint8_t *id, size_t id_len);

/* The head of SEND from a client, which is also the head of a v1 delivery
 * from the server: [03]; the data follows. out: 1 byte. */
size_t p2p_encode_send_head(uint8_t *out);

/* PRESENCE: [0b][state][id_len][id]. out: P2P_PRESENCE_MAX bytes. */
size_t p2p_encode_presence(uint8_t *out, uint8_t state, const uint8_t *id, size_t id_len);

/* BYE: [0e][reason][text], the text cut to P2P_BYE_TEXT_MAX bytes. out:
 * P2P_BYE_MAX bytes. */
size_t p2p_encode_bye(uint8_t *out, uint8_t reason, const char *text, size_t text_len);

/* GAP: [0f][id_len][id][frames u32][bytes u64]; id_len 0 (no id) stands
 * for every publisher not named in the episode's other GAP events. out:
 * P2P_GAP_MAX bytes. */
size_t p2p_encode_gap(uint8_t *out, const uint8_t *id, size_t id_len, uint32_t frames,
                      uint64_t bytes);
/* AUTH step 1: [0c][01][id_len][id][client nonce, 32 bytes]. id_len is
 * 1..P2P_ID_MAX. out: P2P_AUTH_START_MAX bytes. */
size_t p2p_encode_auth_start(uint8_t *out, const uint8_t *id, size_t id_len,
                             const uint8_t nonce[P2P_AUTH_NONCE_SIZE]);

/* AUTH step 2: [0c][02][proof, 32 bytes]. out: P2P_AUTH_PROOF_REQ_SIZE. */
size_t p2p_encode_auth_proof(uint8_t *out, const uint8_t proof[P2P_AUTH_PROOF_SIZE]);

/* The success reply to an AUTH step: [8c][01][step][32 bytes], the server
 * nonce after step 1, the server signature after step 2. (A failure is the
 * plain p2p_encode_reply.) out: P2P_AUTH_REPLY_SIZE bytes. */
size_t p2p_encode_auth_reply(uint8_t *out, uint8_t step, const uint8_t value[P2P_AUTH_NONCE_SIZE]);

/* ---- parsing requests (what the server reads) -------------------------------- */

enum p2p_parse_result {
    P2P_PARSE_OK = 0,
    /* The data does not fit the command's layout: an id of 0 or more than
     * P2P_ID_MAX bytes, a SEND_TO whose id overruns the payload, a HELLO
     * that is not exactly version and flags, an AUTH that is not exactly
     * one of its two steps. The server answers such a
     * request with status 4 (bad argument); it is not a framing error. */
    P2P_PARSE_BAD_ARGUMENT = 1,
    /* A frame from the server that is too short for its kind. */
    P2P_PARSE_MALFORMED = 2
};

/* One request, split into its fields. Fields a command does not use are
 * zero/NULL. Pointers point into the payload. */
struct p2p_request {
    uint8_t cmd;             /* payload[0]                                   */
    const uint8_t *id;       /* REGISTER, SUBSCRIBE, UNSUBSCRIBE,
                                CHECK_ALIVE: the data; SEND_TO: the target  */
    size_t id_len;
    const uint8_t *data;     /* SEND: the data; SEND_TO: after the id; AUTH:
                                the 32-byte client nonce (step 1, after the
                                id) or proof (step 2)                        */
    size_t data_len;
    uint8_t version;         /* HELLO                                        */
    uint8_t flags;           /* HELLO                                        */
    uint8_t step;            /* AUTH: P2P_AUTH_STEP_START or _PROOF          */
};

/* Splits a non-empty payload (len >= 1) by its command byte. Unknown
 * commands, and the ones without data, come back OK with only cmd set.
 * BAD_ARGUMENT leaves cmd set and the other fields unspecified. */
enum p2p_parse_result p2p_request_parse(const uint8_t *payload, size_t len,
                                        struct p2p_request *out);

/* ---- parsing server frames (what a client reads) ------------------------------ */

enum p2p_message_kind {
    P2P_MSG_REPLY = 1,       /* [cmd|0x80][status][...]                      */
    P2P_MSG_V1_DELIVERY,     /* [03][data]: a v1 session's delivery          */
    P2P_MSG_DELIVER,         /* [09][id_len][sender id][data]                */
    P2P_MSG_PRESENCE,        /* [0b][state][id_len][id]                      */
    P2P_MSG_BYE,             /* [0e][reason][text]                           */
    P2P_MSG_GAP,             /* [0f][id_len][id][frames u32][bytes u64]      */
    P2P_MSG_DIRECT,          /* 0x18..0x1B: split with p2p_direct_parse      */
    P2P_MSG_UNKNOWN          /* any other command byte: to be ignored        */
};

struct p2p_message {
    enum p2p_message_kind kind;
    uint8_t cmd;             /* REPLY: the request's command (bit 7 cleared);
                                otherwise payload[0]                         */
    uint8_t status;          /* REPLY                                        */
    /* REPLY to HELLO with status 1: the grant. */
    int has_hello_grant;
    uint8_t version;
    uint32_t max_frame;
    uint32_t idle_timeout_s;
    /* REPLY to AUTH with status 1: the step it answers, and in data the
     * 32-byte server nonce (step 1) or server signature (step 2). */
    uint8_t step;
    /* REPLY to DIRECT_OFFER with status 1: the attempt id, and in data the
     * 32-byte attempt secret. */
    uint32_t attempt;
    const uint8_t *id;       /* DELIVER: sender; PRESENCE: the device; GAP:
                                the publisher (id_len 0: the others)         */
    size_t id_len;
    const uint8_t *data;     /* V1_DELIVERY, DELIVER: the data; BYE: text;
                                AUTH success: the 32 bytes after the step    */
    size_t data_len;
    uint8_t state;           /* PRESENCE                                     */
    uint8_t reason;          /* BYE                                          */
    uint32_t gap_frames;     /* GAP: messages dropped                        */
    uint64_t gap_bytes;      /* GAP: their data bytes                        */
};

/* Classifies and splits a non-empty payload from the server. MALFORMED: a
 * reply without its status, a successful HELLO reply shorter than its 11
 * bytes, an AUTH success reply that is not exactly [8c][01][1 or 2][32
 * bytes], a DIRECT_OFFER success reply that is not exactly its 38 bytes,
 * a DELIVER or PRESENCE whose id is empty or overruns the payload, a
 * BYE without its reason, a GAP whose id or counts overrun the payload.
 * Bytes after a GAP's counts are ignored. */
enum p2p_parse_result p2p_message_parse(const uint8_t *payload, size_t len,
                                        struct p2p_message *out);

/* ---- direct paths (stupidp2p(7), DIRECT PATHS) ------------------------------ */

/* One address a device may be reached at: [kind u8][port u16][addr_len u8:
 * 4 or 16][addr]. */
struct p2p_candidate {
    uint8_t kind;            /* P2P_CANDIDATE_LAN or _REFLEXIVE             */
    uint16_t port;           /* never 0                                     */
    uint8_t addr_len;        /* 4 (IPv4) or 16 (IPv6)                       */
    uint8_t addr[16];
};
#define P2P_CANDIDATE_MAX_SIZE 20u
/* An event may carry the server's reflexive candidate too. */
#define P2P_DIRECT_EVENT_CANDIDATES_MAX (P2P_DIRECT_CANDIDATES_MAX + 1u)
/* The largest DIRECT_* payload, request or event (an OFFER event with a
 * 255-byte id and 9 IPv6 candidates is 508 bytes). */
#define P2P_DIRECT_MAX 512u
/* The success reply to DIRECT_OFFER: [90][01][attempt u32][secret]. */
#define P2P_DIRECT_OFFER_REPLY_SIZE (6u + P2P_DIRECT_SECRET_SIZE)

/* A DIRECT_* request (0x10..0x14) or event (0x18..0x1B), split. Fields a
 * command does not use are zero/NULL; pointers point into the payload. */
struct p2p_direct {
    uint8_t cmd;
    const uint8_t *id;       /* the peer: target, offerer or sender          */
    size_t id_len;
    uint32_t attempt;        /* all but the OFFER request                    */
    const uint8_t *secret;   /* OFFER event: P2P_DIRECT_SECRET_SIZE bytes    */
    const uint8_t *nonce;    /* OFFER, and an accepting ANSWER: 32 bytes     */
    uint16_t local_port;     /* OFFER, accepting ANSWER                      */
    uint8_t accept;          /* ANSWER: P2P_DIRECT_ACCEPT or _DECLINE        */
    uint8_t mark_kind;       /* MARK                                         */
    uint64_t seq;            /* MARK                                         */
    uint8_t outcome;         /* RESULT                                       */
    uint32_t elapsed_ms;     /* RESULT                                       */
    size_t candidate_count;
    struct p2p_candidate candidates[P2P_DIRECT_EVENT_CANDIDATES_MAX];
};

/* Splits a DIRECT_* payload (len >= 1, payload[0] one of the ten codes).
 * A request (0x10..0x14) that does not have its layout exactly is
 * BAD_ARGUMENT: an id of 0 bytes or running past the payload, a length
 * that does not add up, an ANSWER's accept byte other than 0 or 1, a MARK
 * kind or RESULT outcome that is not defined, more than
 * P2P_DIRECT_CANDIDATES_MAX candidates, a candidate of another kind than
 * LAN, with port 0 or an addr_len other than 4 and 16. An event
 * (0x18..0x1B) that does not is MALFORMED; events may carry one more
 * candidate and REFLEXIVE ones. Any other command byte is BAD_ARGUMENT. */
enum p2p_parse_result p2p_direct_parse(const uint8_t *payload, size_t len, struct p2p_direct *out);

/* Encoders; each returns the bytes written into out (P2P_DIRECT_MAX bytes
 * suffice for any of them). ids are 1..P2P_ID_MAX bytes; cands[0..n) with
 * n at most P2P_DIRECT_EVENT_CANDIDATES_MAX. cmd picks the request or the
 * event of the same layout. */
/* OFFER request: [10][id_len][target][nonce 32][local_port u16][n][cands]. */
size_t p2p_encode_direct_offer(uint8_t *out, const uint8_t *target, size_t target_len,
                               const uint8_t nonce[P2P_DIRECT_NONCE_SIZE], uint16_t local_port,
                               const struct p2p_candidate *cands, size_t n);
/* OFFER event: [18][id_len][offerer][attempt u32][secret 32][nonce 32]
 * [local_port u16][n][cands]. */
size_t p2p_encode_direct_offer_event(uint8_t *out, const uint8_t *offerer, size_t offerer_len,
                                     uint32_t attempt, const uint8_t secret[P2P_DIRECT_SECRET_SIZE],
                                     const uint8_t nonce[P2P_DIRECT_NONCE_SIZE], uint16_t local_port,
                                     const struct p2p_candidate *cands, size_t n);
/* ANSWER (cmd 0x11 or 0x19): [cmd][id_len][id][attempt u32][accept], and
 * when accept is 1: [nonce 32][local_port u16][n][cands] (nonce may be NULL
 * when declining). */
size_t p2p_encode_direct_answer(uint8_t *out, uint8_t cmd, const uint8_t *id, size_t id_len,
                                uint32_t attempt, uint8_t accept,
                                const uint8_t *nonce, uint16_t local_port,
                                const struct p2p_candidate *cands, size_t n);
/* SYNC (0x12 or 0x1A): [cmd][id_len][id][attempt u32]. */
size_t p2p_encode_direct_sync(uint8_t *out, uint8_t cmd, const uint8_t *id, size_t id_len,
                              uint32_t attempt);
/* MARK (0x13 or 0x1B): [cmd][id_len][id][attempt u32][kind u8][seq u64]. */
size_t p2p_encode_direct_mark(uint8_t *out, uint8_t cmd, const uint8_t *id, size_t id_len,
                              uint32_t attempt, uint8_t kind, uint64_t seq);
/* RESULT: [14][id_len][peer][attempt u32][outcome u8][elapsed_ms u32]. */
size_t p2p_encode_direct_result(uint8_t *out, const uint8_t *peer, size_t peer_len,
                                uint32_t attempt, uint8_t outcome, uint32_t elapsed_ms);
/* The success reply to OFFER: [90][01][attempt u32][secret 32]. out:
 * P2P_DIRECT_OFFER_REPLY_SIZE bytes. */
size_t p2p_encode_direct_offer_reply(uint8_t *out, uint32_t attempt,
                                     const uint8_t secret[P2P_DIRECT_SECRET_SIZE]);

/* ---- the direct connection between two devices (link frames) ---------------- */

#define P2P_LINK_PROOF_SIZE (6u + P2P_DIRECT_MAC_SIZE) /* [01][role][attempt][mac] */
#define P2P_LINK_DATA_HEAD_SIZE 9u                      /* [03][seq u64]           */
#define P2P_LINK_ACK_SIZE 9u                            /* [04][seq u64]           */

enum p2p_link_kind {
    P2P_LINK_KIND_UNKNOWN = 0, /* a frame type this side does not know: ignored */
    P2P_LINK_KIND_PROOF,
    P2P_LINK_KIND_USE,
    P2P_LINK_KIND_DATA,
    P2P_LINK_KIND_ACK,
    P2P_LINK_KIND_PING
};

struct p2p_link {
    enum p2p_link_kind kind;
    uint8_t role;            /* PROOF                                        */
    uint32_t attempt;        /* PROOF                                        */
    const uint8_t *mac;      /* PROOF: 32 bytes                              */
    uint64_t seq;            /* DATA, ACK                                    */
    const uint8_t *data;     /* DATA                                         */
    size_t data_len;
};

size_t p2p_encode_link_proof(uint8_t *out, uint8_t role, uint32_t attempt,
                             const uint8_t mac[P2P_DIRECT_MAC_SIZE]);
size_t p2p_encode_link_use(uint8_t *out);                     /* 1 byte  */
size_t p2p_encode_link_data_head(uint8_t *out, uint64_t seq); /* 9 bytes */
size_t p2p_encode_link_ack(uint8_t *out, uint64_t seq);       /* 9 bytes */
size_t p2p_encode_link_ping(uint8_t *out);                    /* 1 byte  */

/* Splits a non-empty link payload. MALFORMED: a PROOF that is not exactly
 * 38 bytes or names a role other than 1 and 2, a DATA shorter than its 9
 * bytes of head, an ACK not exactly 9 bytes. USE and PING ignore any bytes
 * after the type, as unknown types are ignored whole: later versions may
 * add to them. */
enum p2p_parse_result p2p_link_parse(const uint8_t *payload, size_t len, struct p2p_link *out);

#ifdef __cplusplus
}
#endif

#endif /* STUPIDP2P_CODEC_H */
