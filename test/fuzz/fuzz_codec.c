/*
 * fuzz_codec.c - libFuzzer harness for the wire codec (src/common/codec.c):
 * the input is a byte stream as either side might receive it. Every frame
 * p2p_frame_parse finds is handed to both payload parsers, and what they
 * return is checked: pointers inside the payload, lengths that add up, and
 * for each layout with an encoder (AUTH's and the direct paths' included,
 * and the frames of a direct connection), that encoding the parsed fields
 * gives back the payload's bytes exactly. Any disagreement aborts.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "fuzz.h"

#define FUZZ_MAX_FRAME 4096u

static void check(int ok)
{
    if (!ok)
        abort();
}

static int inside(const uint8_t *p, size_t n, const uint8_t *base, size_t len)
{
    return p == NULL ? n == 0 : (p >= base && n <= len && (size_t)(p - base) <= len - n);
}

/* A DIRECT_* request or event that parsed: every field inside the payload,
 * and the encoder of its layout gives the payload back. */
static void check_direct(const uint8_t *payload, size_t len)
{
    struct p2p_direct d;
    if (p2p_direct_parse(payload, len, &d) != P2P_PARSE_OK)
        return;
    check(d.cmd == payload[0] && d.id_len >= 1 && inside(d.id, d.id_len, payload, len));
    check(d.secret == NULL || inside(d.secret, P2P_DIRECT_SECRET_SIZE, payload, len));
    check(d.nonce == NULL || inside(d.nonce, P2P_DIRECT_NONCE_SIZE, payload, len));
    check(d.candidate_count <= P2P_DIRECT_EVENT_CANDIDATES_MAX);
    uint8_t buf[P2P_DIRECT_MAX];
    size_t n = 0;
    switch (d.cmd) {
    case P2P_CMD_DIRECT_OFFER:
        n = p2p_encode_direct_offer(buf, d.id, d.id_len, d.nonce, d.local_port, d.candidates, d.candidate_count);
        break;
    case P2P_EVT_DIRECT_OFFER:
        n = p2p_encode_direct_offer_event(buf, d.id, d.id_len, d.attempt, d.secret, d.nonce, d.local_port,
                                          d.candidates, d.candidate_count);
        break;
    case P2P_CMD_DIRECT_ANSWER:
    case P2P_EVT_DIRECT_ANSWER:
        n = p2p_encode_direct_answer(buf, d.cmd, d.id, d.id_len, d.attempt, d.accept, d.nonce, d.local_port,
                                     d.candidates, d.candidate_count);
        break;
    case P2P_CMD_DIRECT_SYNC:
    case P2P_EVT_DIRECT_SYNC:
        n = p2p_encode_direct_sync(buf, d.cmd, d.id, d.id_len, d.attempt);
        break;
    case P2P_CMD_DIRECT_MARK:
    case P2P_EVT_DIRECT_MARK:
        n = p2p_encode_direct_mark(buf, d.cmd, d.id, d.id_len, d.attempt, d.mark_kind, d.seq);
        break;
    case P2P_CMD_DIRECT_RESULT:
        n = p2p_encode_direct_result(buf, d.id, d.id_len, d.attempt, d.outcome, d.elapsed_ms);
        break;
    default:
        abort();
    }
    check(n == len && memcmp(buf, payload, len) == 0);
}

/* Any payload as a frame of a direct connection. */
static void check_link(const uint8_t *payload, size_t len)
{
    struct p2p_link l;
    if (p2p_link_parse(payload, len, &l) != P2P_PARSE_OK)
        return;
    uint8_t buf[P2P_LINK_PROOF_SIZE];
    switch (l.kind) {
    case P2P_LINK_KIND_PROOF:
        check(p2p_encode_link_proof(buf, l.role, l.attempt, l.mac) == len && memcmp(buf, payload, len) == 0);
        break;
    case P2P_LINK_KIND_DATA:
        check(inside(l.data, l.data_len, payload, len));
        check(p2p_encode_link_data_head(buf, l.seq) + l.data_len == len &&
              memcmp(buf, payload, P2P_LINK_DATA_HEAD_SIZE) == 0);
        break;
    case P2P_LINK_KIND_ACK:
        check(p2p_encode_link_ack(buf, l.seq) == len && memcmp(buf, payload, len) == 0);
        break;
    default:
        break;
    }
}

static void check_request(const uint8_t *payload, size_t len)
{
    struct p2p_request r;
    enum p2p_parse_result res = p2p_request_parse(payload, len, &r);
    check(r.cmd == payload[0]);
    if (res != P2P_PARSE_OK)
        return;
    check(inside(r.id, r.id_len, payload, len));
    check(inside(r.data, r.data_len, payload, len));
    uint8_t buf[P2P_ID_HEAD_MAX];
    switch (r.cmd) {
    case P2P_CMD_REGISTER:
    case P2P_CMD_SUBSCRIBE:
    case P2P_CMD_UNSUBSCRIBE:
    case P2P_CMD_CHECK_ALIVE:
        check(r.id_len >= 1 && r.id_len <= P2P_ID_MAX && 1 + r.id_len == len);
        check(p2p_encode_id_command(buf, r.cmd, r.id, r.id_len) == len);
        check(memcmp(buf, payload, len) == 0);
        break;
    case P2P_CMD_SEND_TO: {
        size_t h = p2p_encode_send_to_head(buf, r.id, r.id_len);
        check(h + r.data_len == len && memcmp(buf, payload, h) == 0);
        check(r.data == payload + h);
        break;
    }
    case P2P_CMD_HELLO:
        check(len == P2P_HELLO_SIZE);
        check(p2p_encode_hello(buf, r.version, r.flags) == len && memcmp(buf, payload, len) == 0);
        break;
    case P2P_CMD_SEND:
        check(r.data == payload + 1 && r.data_len == len - 1);
        break;
    case P2P_CMD_AUTH: {
        uint8_t auth[2 + P2P_ID_MAX + P2P_AUTH_NONCE_SIZE];
        size_t n = r.step == P2P_AUTH_STEP_START ? p2p_encode_auth_start(auth, r.id, r.id_len, r.data)
                                                 : p2p_encode_auth_proof(auth, r.data);
        check(n == len && memcmp(auth, payload, len) == 0);
        break;
    }
    default:
        break;
    }
}

static void check_message(const uint8_t *payload, size_t len)
{
    struct p2p_message m;
    enum p2p_parse_result res = p2p_message_parse(payload, len, &m);
    if (res != P2P_PARSE_OK)
        return;
    check(inside(m.id, m.id_len, payload, len));
    check(inside(m.data, m.data_len, payload, len));
    uint8_t buf[P2P_PRESENCE_MAX];
    switch (m.kind) {
    case P2P_MSG_REPLY:
        check(len >= P2P_REPLY_SIZE && m.cmd == (payload[0] & 0x7f));
        if (m.cmd == P2P_CMD_AUTH && m.status == P2P_STATUS_OK) {
            uint8_t auth[3 + P2P_AUTH_NONCE_SIZE];
            check(m.data_len == P2P_AUTH_NONCE_SIZE);
            check(p2p_encode_auth_reply(auth, m.step, m.data) == len && memcmp(auth, payload, len) == 0);
        }
        if (m.has_hello_grant) {
            check(p2p_encode_hello_reply(buf, m.version, m.max_frame, m.idle_timeout_s) ==
                  P2P_HELLO_REPLY_SIZE);
            check(memcmp(buf, payload, P2P_HELLO_REPLY_SIZE) == 0);
        }
        break;
    case P2P_MSG_DELIVER: {
        size_t h = p2p_encode_deliver_head(buf, m.id, m.id_len);
        check(h + m.data_len == len && memcmp(buf, payload, h) == 0);
        break;
    }
    case P2P_MSG_PRESENCE: {
        size_t h = p2p_encode_presence(buf, m.state, m.id, m.id_len);
        check(h <= len && memcmp(buf, payload, h) == 0);
        break;
    }
    case P2P_MSG_BYE:
        check(m.data_len <= P2P_BYE_TEXT_MAX && m.data == payload + 2);
        break;
    case P2P_MSG_V1_DELIVERY:
        check(m.data == payload + 1 && m.data_len == len - 1);
        break;
    case P2P_MSG_GAP: {
        uint8_t gap[P2P_GAP_MAX];
        size_t h = p2p_encode_gap(gap, m.id, m.id_len, m.gap_frames, m.gap_bytes);
        check(h == P2P_GAP_FIXED + m.id_len && h <= len && memcmp(gap, payload, h) == 0);
        break;
    }
    case P2P_MSG_DIRECT:
        check_direct(payload, len);
        break;
    case P2P_MSG_UNKNOWN:
        break;
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    size_t off = 0;
    while (off < size) {
        struct p2p_frame f;
        enum p2p_frame_result r = p2p_frame_parse(data + off, size - off, FUZZ_MAX_FRAME, &f);
        if (r != P2P_FRAME_COMPLETE) {
            check(r == P2P_FRAME_INCOMPLETE || f.length > FUZZ_MAX_FRAME);
            break;
        }
        check(f.consumed == P2P_FRAME_HEADER_SIZE + f.length && f.consumed <= size - off);
        if (f.length != 0) {
            /* Each parser gets an exact heap copy, so that ASan sees any
             * read past the payload. */
            uint8_t *copy = malloc(f.length);
            check(copy != NULL);
            memcpy(copy, f.payload, f.length);
            check_request(copy, f.length);
            check_message(copy, f.length);
            check_direct(copy, f.length);
            check_link(copy, f.length);
            free(copy);
        }
        off += f.consumed;
    }
    return 0;
}
