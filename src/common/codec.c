/* codec.c - see codec.h; the layouts are those of man/stupidp2p.7. */
#include "codec.h"

#include <string.h>

void p2p_put_be32(uint8_t p[4], uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

uint32_t p2p_get_be32(const uint8_t p[4])
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void p2p_put_be64(uint8_t p[8], uint64_t v)
{
    p2p_put_be32(p, (uint32_t)(v >> 32));
    p2p_put_be32(p + 4, (uint32_t)v);
}

uint64_t p2p_get_be64(const uint8_t p[8])
{
    return (uint64_t)p2p_get_be32(p) << 32 | p2p_get_be32(p + 4);
}

/* ---- frames ---------------------------------------------------------------- */

void p2p_frame_header_encode(uint8_t header[4], uint32_t length)
{
    p2p_put_be32(header, length);
}

uint32_t p2p_frame_header_decode(const uint8_t header[4])
{
    return p2p_get_be32(header);
}

enum p2p_frame_result p2p_frame_parse(const uint8_t *buf, size_t len,
                                      uint32_t max_payload,
                                      struct p2p_frame *out)
{
    out->payload = NULL;
    out->length = 0;
    out->consumed = 0;
    if (len < P2P_FRAME_HEADER_SIZE) {
        out->need = P2P_FRAME_HEADER_SIZE;
        return P2P_FRAME_INCOMPLETE;
    }
    uint32_t length = p2p_frame_header_decode(buf);
    out->length = length;
    out->need = (size_t)P2P_FRAME_HEADER_SIZE + length;
    if (length > max_payload)
        return P2P_FRAME_TOO_LONG;
    if (len - P2P_FRAME_HEADER_SIZE < length)
        return P2P_FRAME_INCOMPLETE;
    out->payload = buf + P2P_FRAME_HEADER_SIZE;
    out->consumed = out->need;
    return P2P_FRAME_COMPLETE;
}

/* ---- encoders ----------------------------------------------------------------- */

size_t p2p_encode_reply(uint8_t *out, uint8_t cmd, uint8_t status)
{
    out[0] = (uint8_t)(cmd | P2P_REPLY_BIT);
    out[1] = status;
    return P2P_REPLY_SIZE;
}

size_t p2p_encode_hello_reply(uint8_t *out, uint8_t version, uint32_t max_frame,
                              uint32_t idle_timeout_s)
{
    out[0] = (uint8_t)(P2P_CMD_HELLO | P2P_REPLY_BIT);
    out[1] = P2P_STATUS_OK;
    out[2] = version;
    p2p_put_be32(out + 3, max_frame);
    p2p_put_be32(out + 7, idle_timeout_s);
    return P2P_HELLO_REPLY_SIZE;
}

size_t p2p_encode_hello(uint8_t *out, uint8_t version, uint8_t flags)
{
    out[0] = P2P_CMD_HELLO;
    out[1] = version;
    out[2] = flags;
    return P2P_HELLO_SIZE;
}

size_t p2p_encode_id_command(uint8_t *out, uint8_t cmd, const uint8_t *id, size_t id_len)
{
    out[0] = cmd;
    if (id_len != 0)
        memcpy(out + 1, id, id_len);
    return 1 + id_len;
}

/* [cmd][id_len][id] */
static size_t encode_id_head(uint8_t *out, uint8_t cmd, const uint8_t *id, size_t id_len)
{
    out[0] = cmd;
    out[1] = (uint8_t)id_len;
    if (id_len != 0)
        memcpy(out + 2, id, id_len);
    return 2 + id_len;
}

size_t p2p_encode_send_to_head(uint8_t *out, const uint8_t *id, size_t id_len)
{
    return encode_id_head(out, P2P_CMD_SEND_TO, id, id_len);
}

size_t p2p_encode_deliver_head(uint8_t *out, const uint8_t *id, size_t id_len)
{
    return encode_id_head(out, P2P_EVT_DELIVER, id, id_len);
}

size_t p2p_encode_send_head(uint8_t *out)
{
    out[0] = P2P_CMD_SEND;
    return 1;
}

size_t p2p_encode_presence(uint8_t *out, uint8_t state, const uint8_t *id, size_t id_len)
{
    out[0] = P2P_EVT_PRESENCE;
    out[1] = state;
    out[2] = (uint8_t)id_len;
    if (id_len != 0)
        memcpy(out + 3, id, id_len);
    return 3 + id_len;
}

size_t p2p_encode_bye(uint8_t *out, uint8_t reason, const char *text, size_t text_len)
{
    if (text_len > P2P_BYE_TEXT_MAX)
        text_len = P2P_BYE_TEXT_MAX;
    out[0] = P2P_EVT_BYE;
    out[1] = reason;
    if (text_len != 0)
        memcpy(out + 2, text, text_len);
    return 2 + text_len;
}

size_t p2p_encode_gap(uint8_t *out, const uint8_t *id, size_t id_len, uint32_t frames,
                      uint64_t bytes)
{
    out[0] = P2P_EVT_GAP;
    out[1] = (uint8_t)id_len;
    if (id_len != 0)
        memcpy(out + 2, id, id_len);
    p2p_put_be32(out + 2 + id_len, frames);
    p2p_put_be64(out + 6 + id_len, bytes);
    return P2P_GAP_FIXED + id_len;
}

size_t p2p_encode_auth_start(uint8_t *out, const uint8_t *id, size_t id_len,
                             const uint8_t nonce[P2P_AUTH_NONCE_SIZE])
{
    out[0] = P2P_CMD_AUTH;
    out[1] = P2P_AUTH_STEP_START;
    out[2] = (uint8_t)id_len;
    memcpy(out + 3, id, id_len);
    memcpy(out + 3 + id_len, nonce, P2P_AUTH_NONCE_SIZE);
    return 3 + id_len + P2P_AUTH_NONCE_SIZE;
}

size_t p2p_encode_auth_proof(uint8_t *out, const uint8_t proof[P2P_AUTH_PROOF_SIZE])
{
    out[0] = P2P_CMD_AUTH;
    out[1] = P2P_AUTH_STEP_PROOF;
    memcpy(out + 2, proof, P2P_AUTH_PROOF_SIZE);
    return P2P_AUTH_PROOF_REQ_SIZE;
}

size_t p2p_encode_auth_reply(uint8_t *out, uint8_t step, const uint8_t value[P2P_AUTH_NONCE_SIZE])
{
    out[0] = (uint8_t)(P2P_CMD_AUTH | P2P_REPLY_BIT);
    out[1] = P2P_STATUS_OK;
    out[2] = step;
    memcpy(out + 3, value, P2P_AUTH_NONCE_SIZE);
    return P2P_AUTH_REPLY_SIZE;
}

/* ---- direct paths ------------------------------------------------------------------ */

static size_t put_candidates(uint8_t *out, const struct p2p_candidate *cands, size_t n)
{
    size_t o = 0;
    out[o++] = (uint8_t)n;
    for (size_t i = 0; i < n; i++) {
        out[o++] = cands[i].kind;
        out[o++] = (uint8_t)(cands[i].port >> 8);
        out[o++] = (uint8_t)cands[i].port;
        out[o++] = cands[i].addr_len;
        memcpy(out + o, cands[i].addr, cands[i].addr_len);
        o += cands[i].addr_len;
    }
    return o;
}

static size_t put_u16(uint8_t *out, uint16_t v)
{
    out[0] = (uint8_t)(v >> 8);
    out[1] = (uint8_t)v;
    return 2;
}

/* [cmd][id_len][id], then the attempt unless it is an OFFER request. */
static size_t put_direct_head(uint8_t *out, uint8_t cmd, const uint8_t *id, size_t id_len, uint32_t attempt)
{
    size_t o = encode_id_head(out, cmd, id, id_len);
    if (cmd != P2P_CMD_DIRECT_OFFER) {
        p2p_put_be32(out + o, attempt);
        o += 4;
    }
    return o;
}

size_t p2p_encode_direct_offer(uint8_t *out, const uint8_t *target, size_t target_len,
                               const uint8_t nonce[P2P_DIRECT_NONCE_SIZE], uint16_t local_port,
                               const struct p2p_candidate *cands, size_t n)
{
    size_t o = put_direct_head(out, P2P_CMD_DIRECT_OFFER, target, target_len, 0);
    memcpy(out + o, nonce, P2P_DIRECT_NONCE_SIZE);
    o += P2P_DIRECT_NONCE_SIZE;
    o += put_u16(out + o, local_port);
    return o + put_candidates(out + o, cands, n);
}

size_t p2p_encode_direct_offer_event(uint8_t *out, const uint8_t *offerer, size_t offerer_len,
                                     uint32_t attempt, const uint8_t secret[P2P_DIRECT_SECRET_SIZE],
                                     const uint8_t nonce[P2P_DIRECT_NONCE_SIZE], uint16_t local_port,
                                     const struct p2p_candidate *cands, size_t n)
{
    size_t o = put_direct_head(out, P2P_EVT_DIRECT_OFFER, offerer, offerer_len, attempt);
    memcpy(out + o, secret, P2P_DIRECT_SECRET_SIZE);
    o += P2P_DIRECT_SECRET_SIZE;
    memcpy(out + o, nonce, P2P_DIRECT_NONCE_SIZE);
    o += P2P_DIRECT_NONCE_SIZE;
    o += put_u16(out + o, local_port);
    return o + put_candidates(out + o, cands, n);
}

size_t p2p_encode_direct_answer(uint8_t *out, uint8_t cmd, const uint8_t *id, size_t id_len,
                                uint32_t attempt, uint8_t accept,
                                const uint8_t *nonce, uint16_t local_port,
                                const struct p2p_candidate *cands, size_t n)
{
    size_t o = put_direct_head(out, cmd, id, id_len, attempt);
    out[o++] = accept;
    if (accept != P2P_DIRECT_ACCEPT)
        return o;
    memcpy(out + o, nonce, P2P_DIRECT_NONCE_SIZE);
    o += P2P_DIRECT_NONCE_SIZE;
    o += put_u16(out + o, local_port);
    return o + put_candidates(out + o, cands, n);
}

size_t p2p_encode_direct_sync(uint8_t *out, uint8_t cmd, const uint8_t *id, size_t id_len,
                              uint32_t attempt)
{
    return put_direct_head(out, cmd, id, id_len, attempt);
}

size_t p2p_encode_direct_mark(uint8_t *out, uint8_t cmd, const uint8_t *id, size_t id_len,
                              uint32_t attempt, uint8_t kind, uint64_t seq)
{
    size_t o = put_direct_head(out, cmd, id, id_len, attempt);
    out[o++] = kind;
    p2p_put_be64(out + o, seq);
    return o + 8;
}

size_t p2p_encode_direct_result(uint8_t *out, const uint8_t *peer, size_t peer_len,
                                uint32_t attempt, uint8_t outcome, uint32_t elapsed_ms)
{
    size_t o = put_direct_head(out, P2P_CMD_DIRECT_RESULT, peer, peer_len, attempt);
    out[o++] = outcome;
    p2p_put_be32(out + o, elapsed_ms);
    return o + 4;
}

size_t p2p_encode_direct_offer_reply(uint8_t *out, uint32_t attempt,
                                     const uint8_t secret[P2P_DIRECT_SECRET_SIZE])
{
    out[0] = (uint8_t)(P2P_CMD_DIRECT_OFFER | P2P_REPLY_BIT);
    out[1] = P2P_STATUS_OK;
    p2p_put_be32(out + 2, attempt);
    memcpy(out + 6, secret, P2P_DIRECT_SECRET_SIZE);
    return P2P_DIRECT_OFFER_REPLY_SIZE;
}

/* A cursor over a payload: every take fails once the bytes run out. */
struct reader {
    const uint8_t *p;
    size_t left;
    int bad;
};

static const uint8_t *take(struct reader *r, size_t n)
{
    if (r->bad || r->left < n) {
        r->bad = 1;
        return NULL;
    }
    const uint8_t *at = r->p;
    r->p += n;
    r->left -= n;
    return at;
}

static uint8_t take_u8(struct reader *r)
{
    const uint8_t *p = take(r, 1);
    return p != NULL ? p[0] : 0;
}

static uint16_t take_u16(struct reader *r)
{
    const uint8_t *p = take(r, 2);
    if (p == NULL)
        return 0;
    return (uint16_t)((unsigned)p[0] << 8 | (unsigned)p[1]);
}

static uint32_t take_u32(struct reader *r)
{
    const uint8_t *p = take(r, 4);
    return p != NULL ? p2p_get_be32(p) : 0;
}

/* [n][candidate]*n; a request's are LAN only, at most
 * P2P_DIRECT_CANDIDATES_MAX. */
static void take_candidates(struct reader *r, struct p2p_direct *out, int event)
{
    size_t n = take_u8(r);
    size_t max = event ? P2P_DIRECT_EVENT_CANDIDATES_MAX : P2P_DIRECT_CANDIDATES_MAX;
    if (n > max)
        r->bad = 1;
    for (size_t i = 0; i < n && !r->bad; i++) {
        struct p2p_candidate *c = &out->candidates[i];
        c->kind = take_u8(r);
        c->port = take_u16(r);
        c->addr_len = take_u8(r);
        int kind_ok = c->kind == P2P_CANDIDATE_LAN || (event && c->kind == P2P_CANDIDATE_REFLEXIVE);
        if (!kind_ok || c->port == 0 || (c->addr_len != 4 && c->addr_len != 16)) {
            r->bad = 1;
            break;
        }
        const uint8_t *a = take(r, c->addr_len);
        if (a != NULL)
            memcpy(c->addr, a, c->addr_len);
    }
    out->candidate_count = r->bad ? 0 : n;
}

/* nonce, local port, candidates */
static void take_offer_tail(struct reader *r, struct p2p_direct *out, int event)
{
    out->nonce = take(r, P2P_DIRECT_NONCE_SIZE);
    out->local_port = take_u16(r);
    take_candidates(r, out, event);
}

enum p2p_parse_result p2p_direct_parse(const uint8_t *payload, size_t len, struct p2p_direct *out)
{
    memset(out, 0, sizeof *out);
    out->cmd = payload[0];
    int event = out->cmd >= P2P_EVT_DIRECT_OFFER && out->cmd <= P2P_EVT_DIRECT_MARK;
    int request = out->cmd >= P2P_CMD_DIRECT_OFFER && out->cmd <= P2P_CMD_DIRECT_RESULT;
    if (!event && !request)
        return P2P_PARSE_BAD_ARGUMENT;
    struct reader r = {payload + 1, len - 1, 0};
    out->id_len = take_u8(&r);
    out->id = take(&r, out->id_len);
    if (out->id_len == 0)
        r.bad = 1;
    if (out->cmd != P2P_CMD_DIRECT_OFFER)
        out->attempt = take_u32(&r);
    switch (out->cmd) {
    case P2P_CMD_DIRECT_OFFER:
        take_offer_tail(&r, out, 0);
        break;
    case P2P_EVT_DIRECT_OFFER:
        out->secret = take(&r, P2P_DIRECT_SECRET_SIZE);
        take_offer_tail(&r, out, 1);
        break;
    case P2P_CMD_DIRECT_ANSWER:
    case P2P_EVT_DIRECT_ANSWER:
        out->accept = take_u8(&r);
        if (out->accept == P2P_DIRECT_ACCEPT)
            take_offer_tail(&r, out, event);
        else if (out->accept != P2P_DIRECT_DECLINE)
            r.bad = 1;
        break;
    case P2P_CMD_DIRECT_MARK:
    case P2P_EVT_DIRECT_MARK: {
        out->mark_kind = take_u8(&r);
        const uint8_t *seq = take(&r, 8);
        out->seq = seq != NULL ? p2p_get_be64(seq) : 0;
        if (out->mark_kind != P2P_MARK_SWITCH && out->mark_kind != P2P_MARK_FALLBACK)
            r.bad = 1;
        break;
    }
    case P2P_CMD_DIRECT_RESULT:
        out->outcome = take_u8(&r);
        out->elapsed_ms = take_u32(&r);
        if (out->outcome != P2P_DIRECT_OUTCOME_DIRECT && out->outcome != P2P_DIRECT_OUTCOME_FAILED)
            r.bad = 1;
        break;
    default: /* SYNC: nothing more */
        break;
    }
    if (r.bad || r.left != 0)
        return event ? P2P_PARSE_MALFORMED : P2P_PARSE_BAD_ARGUMENT;
    return P2P_PARSE_OK;
}

/* ---- link frames --------------------------------------------------------------------- */

size_t p2p_encode_link_proof(uint8_t *out, uint8_t role, uint32_t attempt,
                             const uint8_t mac[P2P_DIRECT_MAC_SIZE])
{
    out[0] = P2P_LINK_PROOF;
    out[1] = role;
    p2p_put_be32(out + 2, attempt);
    memcpy(out + 6, mac, P2P_DIRECT_MAC_SIZE);
    return P2P_LINK_PROOF_SIZE;
}

size_t p2p_encode_link_use(uint8_t *out)
{
    out[0] = P2P_LINK_USE;
    return 1;
}

size_t p2p_encode_link_data_head(uint8_t *out, uint64_t seq)
{
    out[0] = P2P_LINK_DATA;
    p2p_put_be64(out + 1, seq);
    return P2P_LINK_DATA_HEAD_SIZE;
}

size_t p2p_encode_link_ack(uint8_t *out, uint64_t seq)
{
    out[0] = P2P_LINK_ACK;
    p2p_put_be64(out + 1, seq);
    return P2P_LINK_ACK_SIZE;
}

size_t p2p_encode_link_ping(uint8_t *out)
{
    out[0] = P2P_LINK_PING;
    return 1;
}

enum p2p_parse_result p2p_link_parse(const uint8_t *payload, size_t len, struct p2p_link *out)
{
    memset(out, 0, sizeof *out);
    switch (payload[0]) {
    case P2P_LINK_PROOF:
        out->kind = P2P_LINK_KIND_PROOF;
        if (len != P2P_LINK_PROOF_SIZE || (payload[1] != P2P_ROLE_OFFERER && payload[1] != P2P_ROLE_TARGET))
            return P2P_PARSE_MALFORMED;
        out->role = payload[1];
        out->attempt = p2p_get_be32(payload + 2);
        out->mac = payload + 6;
        return P2P_PARSE_OK;
    case P2P_LINK_USE:
        out->kind = P2P_LINK_KIND_USE;
        return P2P_PARSE_OK;
    case P2P_LINK_DATA:
        out->kind = P2P_LINK_KIND_DATA;
        if (len < P2P_LINK_DATA_HEAD_SIZE)
            return P2P_PARSE_MALFORMED;
        out->seq = p2p_get_be64(payload + 1);
        out->data = payload + P2P_LINK_DATA_HEAD_SIZE;
        out->data_len = len - P2P_LINK_DATA_HEAD_SIZE;
        return P2P_PARSE_OK;
    case P2P_LINK_ACK:
        out->kind = P2P_LINK_KIND_ACK;
        if (len != P2P_LINK_ACK_SIZE)
            return P2P_PARSE_MALFORMED;
        out->seq = p2p_get_be64(payload + 1);
        return P2P_PARSE_OK;
    case P2P_LINK_PING:
        out->kind = P2P_LINK_KIND_PING;
        return P2P_PARSE_OK;
    default:
        out->kind = P2P_LINK_KIND_UNKNOWN;
        return P2P_PARSE_OK;
    }
}

/* ---- parsing -------------------------------------------------------------------- */

static int valid_id_length(size_t n)
{
    return n >= 1 && n <= P2P_ID_MAX;
}

/* AUTH's data: [01][id_len][id][nonce] or [02][proof], nothing more. */
static enum p2p_parse_result parse_auth(const uint8_t *arg, size_t arg_len, struct p2p_request *out)
{
    if (arg_len < 1)
        return P2P_PARSE_BAD_ARGUMENT;
    out->step = arg[0];
    if (arg[0] == P2P_AUTH_STEP_START) {
        if (arg_len < 2 || !valid_id_length(arg[1]) ||
            arg_len != 2 + (size_t)arg[1] + P2P_AUTH_NONCE_SIZE)
            return P2P_PARSE_BAD_ARGUMENT;
        out->id = arg + 2;
        out->id_len = arg[1];
        out->data = arg + 2 + out->id_len;
        out->data_len = P2P_AUTH_NONCE_SIZE;
        return P2P_PARSE_OK;
    }
    if (arg[0] == P2P_AUTH_STEP_PROOF) {
        if (arg_len != 1 + P2P_AUTH_PROOF_SIZE)
            return P2P_PARSE_BAD_ARGUMENT;
        out->data = arg + 1;
        out->data_len = P2P_AUTH_PROOF_SIZE;
        return P2P_PARSE_OK;
    }
    return P2P_PARSE_BAD_ARGUMENT;
}

enum p2p_parse_result p2p_request_parse(const uint8_t *payload, size_t len,
                                        struct p2p_request *out)
{
    memset(out, 0, sizeof *out);
    out->cmd = payload[0];
    const uint8_t *arg = payload + 1;
    size_t arg_len = len - 1;
    switch (out->cmd) {
    case P2P_CMD_REGISTER:
    case P2P_CMD_SUBSCRIBE:
    case P2P_CMD_UNSUBSCRIBE:
    case P2P_CMD_CHECK_ALIVE:
        /* The whole data is the id (v1 has no length byte). */
        if (!valid_id_length(arg_len))
            return P2P_PARSE_BAD_ARGUMENT;
        out->id = arg;
        out->id_len = arg_len;
        return P2P_PARSE_OK;
    case P2P_CMD_SEND:
        out->data = arg;
        out->data_len = arg_len;
        return P2P_PARSE_OK;
    case P2P_CMD_SEND_TO:
        /* [id_len][id][data]: an id of 1..255 bytes inside the payload. */
        if (arg_len < 1 || arg[0] == 0 || (size_t)arg[0] > arg_len - 1)
            return P2P_PARSE_BAD_ARGUMENT;
        out->id = arg + 1;
        out->id_len = arg[0];
        out->data = arg + 1 + out->id_len;
        out->data_len = arg_len - 1 - out->id_len;
        return P2P_PARSE_OK;
    case P2P_CMD_HELLO:
        if (arg_len != 2)
            return P2P_PARSE_BAD_ARGUMENT;
        out->version = arg[0];
        out->flags = arg[1];
        return P2P_PARSE_OK;
    case P2P_CMD_AUTH:
        return parse_auth(arg, arg_len, out);
    default:
        return P2P_PARSE_OK;
    }
}

enum p2p_parse_result p2p_message_parse(const uint8_t *payload, size_t len,
                                        struct p2p_message *out)
{
    memset(out, 0, sizeof *out);
    out->cmd = payload[0];
    if (payload[0] & P2P_REPLY_BIT) {
        out->kind = P2P_MSG_REPLY;
        out->cmd = (uint8_t)(payload[0] & ~P2P_REPLY_BIT);
        if (len < P2P_REPLY_SIZE)
            return P2P_PARSE_MALFORMED;
        out->status = payload[1];
        if (out->cmd == P2P_CMD_HELLO && out->status == P2P_STATUS_OK) {
            /* A successful HELLO reply carries the grant: all 11 bytes. */
            if (len < P2P_HELLO_REPLY_SIZE)
                return P2P_PARSE_MALFORMED;
            out->has_hello_grant = 1;
            out->version = payload[2];
            out->max_frame = p2p_get_be32(payload + 3);
            out->idle_timeout_s = p2p_get_be32(payload + 7);
        }
        if (out->cmd == P2P_CMD_AUTH && out->status == P2P_STATUS_OK) {
            if (len != P2P_AUTH_REPLY_SIZE ||
                (payload[2] != P2P_AUTH_STEP_START && payload[2] != P2P_AUTH_STEP_PROOF))
                return P2P_PARSE_MALFORMED;
            out->step = payload[2];
            out->data = payload + 3;
            out->data_len = P2P_AUTH_NONCE_SIZE;
        }
        if (out->cmd == P2P_CMD_DIRECT_OFFER && out->status == P2P_STATUS_OK) {
            if (len != P2P_DIRECT_OFFER_REPLY_SIZE)
                return P2P_PARSE_MALFORMED;
            out->attempt = p2p_get_be32(payload + 2);
            out->data = payload + 6;
            out->data_len = P2P_DIRECT_SECRET_SIZE;
        }
        return P2P_PARSE_OK;
    }
    switch (payload[0]) {
    case P2P_CMD_SEND:
        out->kind = P2P_MSG_V1_DELIVERY;
        out->data = payload + 1;
        out->data_len = len - 1;
        return P2P_PARSE_OK;
    case P2P_EVT_DELIVER:
        out->kind = P2P_MSG_DELIVER;
        if (len < 2 || payload[1] == 0 || 2u + (size_t)payload[1] > len)
            return P2P_PARSE_MALFORMED;
        out->id = payload + 2;
        out->id_len = payload[1];
        out->data = payload + 2 + out->id_len;
        out->data_len = len - 2 - out->id_len;
        return P2P_PARSE_OK;
    case P2P_EVT_PRESENCE:
        out->kind = P2P_MSG_PRESENCE;
        if (len < 3 || payload[2] == 0 || 3u + (size_t)payload[2] > len)
            return P2P_PARSE_MALFORMED;
        out->state = payload[1];
        out->id = payload + 3;
        out->id_len = payload[2];
        return P2P_PARSE_OK;
    case P2P_EVT_BYE:
        out->kind = P2P_MSG_BYE;
        if (len < 2)
            return P2P_PARSE_MALFORMED;
        out->reason = payload[1];
        out->data = payload + 2;
        out->data_len = len - 2 > P2P_BYE_TEXT_MAX ? P2P_BYE_TEXT_MAX : len - 2;
        return P2P_PARSE_OK;
    case P2P_EVT_GAP:
        out->kind = P2P_MSG_GAP;
        if (len < 2 || (size_t)P2P_GAP_FIXED + payload[1] > len)
            return P2P_PARSE_MALFORMED;
        out->id_len = payload[1];
        out->id = out->id_len != 0 ? payload + 2 : NULL;
        out->gap_frames = p2p_get_be32(payload + 2 + out->id_len);
        out->gap_bytes = p2p_get_be64(payload + 6 + out->id_len);
        return P2P_PARSE_OK;
    case P2P_EVT_DIRECT_OFFER:
    case P2P_EVT_DIRECT_ANSWER:
    case P2P_EVT_DIRECT_SYNC:
    case P2P_EVT_DIRECT_MARK: {
        out->kind = P2P_MSG_DIRECT;
        struct p2p_direct d;
        return p2p_direct_parse(payload, len, &d);
    }
    default:
        out->kind = P2P_MSG_UNKNOWN;
        return P2P_PARSE_OK;
    }
}
