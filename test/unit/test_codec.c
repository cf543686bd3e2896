/*
 * test_codec.c - the payload layouts of src/common/codec.c, byte for byte.
 *
 * Every encoder is checked against bytes written out by hand from
 * man/stupidp2p.7 (the EXAMPLES section's frames where it has them), so the
 * codec cannot drift from the specification even though the server, the C
 * client and the test harness all build their frames with it. Every parser
 * is fed each of those payloads whole and then every shorter prefix, each in
 * a heap block of exactly that size (ASan catches a read past the end), and
 * must accept the whole and classify each prefix as the specification says.
 * Links the codec alone: no server or client code.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "codec.h"
#include "protocol.h"

#define ID(s) (const uint8_t *)(s), (sizeof(s) - 1)

static void expect_bytes(const uint8_t *got, size_t got_len, const uint8_t *want, size_t want_len)
{
    if (got_len != want_len || memcmp(got, want, want_len) != 0) {
        print_error("got %zu bytes:", got_len);
        for (size_t i = 0; i < got_len; i++)
            print_error(" %02x", got[i]);
        print_error("\nwant %zu bytes:", want_len);
        for (size_t i = 0; i < want_len; i++)
            print_error(" %02x", want[i]);
        print_error("\n");
        fail();
    }
}

/* A heap copy of exactly n bytes (at least 1 allocated), for the parsers. */
static uint8_t *exact_copy(const uint8_t *p, size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    assert_non_null(c);
    if (n)
        memcpy(c, p, n);
    return c;
}

/* ---- integers and frames -------------------------------------------------- */

static void test_be32(void **state)
{
    (void)state;
    uint8_t b[4];
    p2p_put_be32(b, 0x0102a0ffu);
    const uint8_t want[] = {0x01, 0x02, 0xa0, 0xff};
    expect_bytes(b, 4, want, 4);
    assert_int_equal(p2p_get_be32(want), 0x0102a0ffu);
    p2p_frame_header_encode(b, 65536);
    const uint8_t hdr[] = {0x00, 0x01, 0x00, 0x00};
    expect_bytes(b, 4, hdr, 4);
    assert_int_equal(p2p_frame_header_decode(hdr), 65536);
}

/* ---- encoders, against man/stupidp2p.7 ---------------------------------------- */

static void test_encode_requests(void **state)
{
    (void)state;
    uint8_t out[P2P_ID_HEAD_MAX];

    const uint8_t hello[] = {0x08, 0x02, 0x01}; /* HELLO v2, QUIET */
    expect_bytes(out, p2p_encode_hello(out, 2, P2P_HELLO_FLAG_QUIET), hello, sizeof hello);

    const uint8_t reg[] = {0x01, 0x62, 0x6f, 0x62}; /* REGISTER "bob" */
    expect_bytes(out, p2p_encode_id_command(out, P2P_CMD_REGISTER, ID("bob")), reg, sizeof reg);

    const uint8_t sub[] = {0x02, 0x61, 0x6c, 0x69, 0x63, 0x65}; /* SUBSCRIBE "alice" */
    expect_bytes(out, p2p_encode_id_command(out, P2P_CMD_SUBSCRIBE, ID("alice")), sub, sizeof sub);

    const uint8_t alive[] = {0x06, 0x63, 0x61, 0x72, 0x6f}; /* CHECK_ALIVE "caro" */
    expect_bytes(out, p2p_encode_id_command(out, P2P_CMD_CHECK_ALIVE, ID("caro")), alive, sizeof alive);

    const uint8_t hb[] = {0x07};
    expect_bytes(out, p2p_encode_id_command(out, P2P_CMD_HEARTBEAT, NULL, 0), hb, sizeof hb);

    const uint8_t send_to[] = {0x0a, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65}; /* + "yo" */
    expect_bytes(out, p2p_encode_send_to_head(out, ID("alice")), send_to, sizeof send_to);

    const uint8_t send[] = {0x03};
    expect_bytes(out, p2p_encode_send_head(out), send, sizeof send);

    /* The longest id fills the documented buffer exactly. */
    uint8_t id[P2P_ID_MAX];
    memset(id, 0xee, sizeof id);
    assert_int_equal(p2p_encode_send_to_head(out, id, sizeof id), P2P_ID_HEAD_MAX);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(out[P2P_ID_HEAD_MAX - 1], 0xee);
}

static void test_encode_server_frames(void **state)
{
    (void)state;
    uint8_t out[P2P_PRESENCE_MAX];

    const uint8_t ok[] = {0x81, 0x01};
    expect_bytes(out, p2p_encode_reply(out, P2P_CMD_REGISTER, P2P_STATUS_OK), ok, sizeof ok);
    const uint8_t offline[] = {0x8a, 0x03};
    expect_bytes(out, p2p_encode_reply(out, P2P_CMD_SEND_TO, P2P_STATUS_OFFLINE), offline, sizeof offline);

    const uint8_t grant[] = {0x88, 0x01, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c};
    expect_bytes(out, p2p_encode_hello_reply(out, 2, 65536, 300), grant, sizeof grant);

    const uint8_t deliver[] = {0x09, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65}; /* + "hi" */
    expect_bytes(out, p2p_encode_deliver_head(out, ID("alice")), deliver, sizeof deliver);

    const uint8_t presence[] = {0x0b, 0x01, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65};
    expect_bytes(out, p2p_encode_presence(out, P2P_PRESENCE_ONLINE, ID("alice")), presence, sizeof presence);

    uint8_t bye[P2P_BYE_MAX];
    const uint8_t shutdown[] = {0x0e, 0x04, 0x73, 0x65, 0x72, 0x76, 0x65, 0x72, 0x20, 0x73, 0x68, 0x75,
                                0x74, 0x74, 0x69, 0x6e, 0x67, 0x20, 0x64, 0x6f, 0x77, 0x6e};
    expect_bytes(bye, p2p_encode_bye(bye, 4, "server shutting down", 20), shutdown, sizeof shutdown);

    /* A BYE's text is cut to 127 bytes. */
    char text[200];
    memset(text, 't', sizeof text);
    assert_int_equal(p2p_encode_bye(bye, 3, text, sizeof text), P2P_BYE_MAX);
    assert_int_equal(bye[P2P_BYE_MAX - 1], 't');
}

/* AUTH, against the worked example of man/stupidp2p.7: id "alice", client
 * nonce c0..df, server nonce e0..ff (the proof and signature there are any
 * 32 bytes to the codec). */
static void fill_run(uint8_t *p, size_t n, uint8_t first)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(first + i);
}

static void test_encode_auth(void **state)
{
    (void)state;
    uint8_t out[P2P_AUTH_START_MAX], nonce[P2P_AUTH_NONCE_SIZE], want[P2P_AUTH_START_MAX];

    fill_run(nonce, sizeof nonce, 0xc0);
    const uint8_t head[] = {0x0c, 0x01, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65};
    memcpy(want, head, sizeof head);
    memcpy(want + sizeof head, nonce, sizeof nonce);
    expect_bytes(out, p2p_encode_auth_start(out, ID("alice"), nonce), want, sizeof head + 32);

    fill_run(nonce, sizeof nonce, 0xe0);
    const uint8_t challenge[] = {0x8c, 0x01, 0x01};
    memcpy(want, challenge, 3);
    memcpy(want + 3, nonce, 32);
    expect_bytes(out, p2p_encode_auth_reply(out, P2P_AUTH_STEP_START, nonce), want, P2P_AUTH_REPLY_SIZE);

    fill_run(nonce, sizeof nonce, 0x30);
    const uint8_t accept[] = {0x8c, 0x01, 0x02};
    memcpy(want, accept, 3);
    memcpy(want + 3, nonce, 32);
    expect_bytes(out, p2p_encode_auth_reply(out, P2P_AUTH_STEP_PROOF, nonce), want, P2P_AUTH_REPLY_SIZE);

    const uint8_t proof_head[] = {0x0c, 0x02};
    memcpy(want, proof_head, 2);
    memcpy(want + 2, nonce, 32);
    expect_bytes(out, p2p_encode_auth_proof(out, nonce), want, P2P_AUTH_PROOF_REQ_SIZE);

    const uint8_t refused[] = {0x8c, 0x05};
    expect_bytes(out, p2p_encode_reply(out, P2P_CMD_AUTH, P2P_STATUS_NOT_AUTHORIZED), refused, 2);

    /* The longest id fills the documented buffer exactly. */
    uint8_t id[P2P_ID_MAX];
    memset(id, 0xee, sizeof id);
    assert_int_equal(p2p_encode_auth_start(out, id, sizeof id, nonce), P2P_AUTH_START_MAX);
    assert_int_equal(out[2], 0xff);
    assert_int_equal(out[P2P_AUTH_START_MAX - 1], nonce[31]);
}

/* ---- request parser -------------------------------------------------------------- */

static void parse_request(const uint8_t *p, size_t n, enum p2p_parse_result want, struct p2p_request *out)
{
    uint8_t *c = exact_copy(p, n);
    assert_int_equal(p2p_request_parse(c, n, out), want);
    /* Rebase the pointers onto the caller's bytes before freeing the copy. */
    if (out->id)
        out->id = p + (out->id - c);
    if (out->data)
        out->data = p + (out->data - c);
    free(c);
}

static void test_parse_id_requests(void **state)
{
    (void)state;
    static const uint8_t cmds[] = {P2P_CMD_REGISTER, P2P_CMD_SUBSCRIBE, P2P_CMD_UNSUBSCRIBE,
                                   P2P_CMD_CHECK_ALIVE};
    uint8_t p[1 + P2P_ID_MAX + 1];
    memset(p, 'x', sizeof p);
    for (size_t c = 0; c < sizeof cmds; c++) {
        p[0] = cmds[c];
        struct p2p_request r;
        parse_request(p, 1, P2P_PARSE_BAD_ARGUMENT, &r); /* empty id */
        assert_int_equal(r.cmd, cmds[c]);
        for (size_t n = 1; n <= P2P_ID_MAX; n += 127) {
            parse_request(p, 1 + n, P2P_PARSE_OK, &r);
            assert_int_equal(r.cmd, cmds[c]);
            assert_ptr_equal(r.id, p + 1);
            assert_int_equal(r.id_len, n);
        }
        parse_request(p, 1 + P2P_ID_MAX, P2P_PARSE_OK, &r);
        parse_request(p, 2 + P2P_ID_MAX, P2P_PARSE_BAD_ARGUMENT, &r); /* 256 bytes */
    }
}

static void test_parse_send_and_hello(void **state)
{
    (void)state;
    struct p2p_request r;
    const uint8_t send[] = {0x03, 0x68, 0x69};
    parse_request(send, sizeof send, P2P_PARSE_OK, &r);
    assert_int_equal(r.cmd, P2P_CMD_SEND);
    assert_ptr_equal(r.data, send + 1);
    assert_int_equal(r.data_len, 2);
    parse_request(send, 1, P2P_PARSE_OK, &r); /* an empty SEND is a SEND */
    assert_int_equal(r.data_len, 0);

    const uint8_t hello[] = {0x08, 0x02, 0x01};
    parse_request(hello, sizeof hello, P2P_PARSE_OK, &r);
    assert_int_equal(r.version, 2);
    assert_int_equal(r.flags, 1);
    for (size_t n = 1; n < sizeof hello; n++)
        parse_request(hello, n, P2P_PARSE_BAD_ARGUMENT, &r);
    const uint8_t long_hello[] = {0x08, 0x02, 0x00, 0x00};
    parse_request(long_hello, sizeof long_hello, P2P_PARSE_BAD_ARGUMENT, &r);

    const uint8_t simple[] = {P2P_CMD_HEARTBEAT, P2P_CMD_UNREGISTER, 0x55, 0x83};
    for (size_t i = 0; i < sizeof simple; i++) {
        parse_request(simple + i, 1, P2P_PARSE_OK, &r);
        assert_int_equal(r.cmd, simple[i]);
        assert_null(r.id);
        assert_null(r.data);
    }
}

static void test_parse_send_to(void **state)
{
    (void)state;
    struct p2p_request r;
    const uint8_t st[] = {0x0a, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65, 0x79, 0x6f};
    parse_request(st, sizeof st, P2P_PARSE_OK, &r);
    assert_int_equal(r.id_len, 5);
    assert_memory_equal(r.id, "alice", 5);
    assert_int_equal(r.data_len, 2);
    assert_memory_equal(r.data, "yo", 2);
    /* Every prefix: complete from the end of the id on (empty data is
     * allowed), a bad argument before. */
    for (size_t n = 1; n < sizeof st; n++)
        parse_request(st, n, n >= 7 ? P2P_PARSE_OK : P2P_PARSE_BAD_ARGUMENT, &r);
    const uint8_t zero_id[] = {0x0a, 0x00, 0x79};
    parse_request(zero_id, sizeof zero_id, P2P_PARSE_BAD_ARGUMENT, &r);
}

static void test_parse_auth(void **state)
{
    (void)state;
    struct p2p_request r;
    uint8_t start[8 + 32];
    const uint8_t head[] = {0x0c, 0x01, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65};
    memcpy(start, head, sizeof head);
    fill_run(start + 8, 32, 0xc0);
    parse_request(start, sizeof start, P2P_PARSE_OK, &r);
    assert_int_equal(r.cmd, P2P_CMD_AUTH);
    assert_int_equal(r.step, P2P_AUTH_STEP_START);
    assert_ptr_equal(r.id, start + 3);
    assert_int_equal(r.id_len, 5);
    assert_ptr_equal(r.data, start + 8);
    assert_int_equal(r.data_len, 32);
    /* Every prefix, and one byte more, is a bad argument. */
    for (size_t n = 1; n < sizeof start; n++) {
        parse_request(start, n, P2P_PARSE_BAD_ARGUMENT, &r);
        assert_int_equal(r.cmd, P2P_CMD_AUTH);
    }
    uint8_t longer[sizeof start + 1];
    memcpy(longer, start, sizeof start);
    longer[sizeof start] = 0;
    parse_request(longer, sizeof longer, P2P_PARSE_BAD_ARGUMENT, &r);
    /* id_len 0 with the nonce right after it. */
    uint8_t no_id[3 + 32] = {0x0c, 0x01, 0x00};
    parse_request(no_id, sizeof no_id, P2P_PARSE_BAD_ARGUMENT, &r);

    uint8_t proof[2 + 32] = {0x0c, 0x02};
    fill_run(proof + 2, 32, 0x30);
    parse_request(proof, sizeof proof, P2P_PARSE_OK, &r);
    assert_int_equal(r.step, P2P_AUTH_STEP_PROOF);
    assert_ptr_equal(r.data, proof + 2);
    assert_int_equal(r.data_len, 32);
    assert_null(r.id);
    for (size_t n = 1; n < sizeof proof; n++)
        parse_request(proof, n, P2P_PARSE_BAD_ARGUMENT, &r);
    uint8_t long_proof[3 + 32] = {0x0c, 0x02};
    parse_request(long_proof, sizeof long_proof, P2P_PARSE_BAD_ARGUMENT, &r);
    /* Steps other than 1 and 2. */
    static const uint8_t steps[] = {0x00, 0x03, 0x81, 0xff};
    for (size_t i = 0; i < sizeof steps; i++) {
        proof[1] = steps[i];
        parse_request(proof, sizeof proof, P2P_PARSE_BAD_ARGUMENT, &r);
    }
}

/* ---- server frame parser ------------------------------------------------------------ */

static void parse_message(const uint8_t *p, size_t n, enum p2p_parse_result want, struct p2p_message *out)
{
    uint8_t *c = exact_copy(p, n);
    assert_int_equal(p2p_message_parse(c, n, out), want);
    if (out->id)
        out->id = p + (out->id - c);
    if (out->data)
        out->data = p + (out->data - c);
    free(c);
}

static void test_parse_replies(void **state)
{
    (void)state;
    struct p2p_message m;
    const uint8_t ok[] = {0x8a, 0x01};
    parse_message(ok, sizeof ok, P2P_PARSE_OK, &m);
    assert_int_equal(m.kind, P2P_MSG_REPLY);
    assert_int_equal(m.cmd, P2P_CMD_SEND_TO);
    assert_int_equal(m.status, 1);
    assert_false(m.has_hello_grant);
    parse_message(ok, 1, P2P_PARSE_MALFORMED, &m);

    const uint8_t grant[] = {0x88, 0x01, 0x02, 0x00, 0x01, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c};
    parse_message(grant, sizeof grant, P2P_PARSE_OK, &m);
    assert_true(m.has_hello_grant);
    assert_int_equal(m.version, 2);
    assert_int_equal(m.max_frame, 65536);
    assert_int_equal(m.idle_timeout_s, 300);
    /* A successful HELLO reply without all of its grant is malformed. */
    for (size_t n = 2; n < sizeof grant; n++)
        parse_message(grant, n, P2P_PARSE_MALFORMED, &m);
    const uint8_t refused[] = {0x88, 0x04};
    parse_message(refused, sizeof refused, P2P_PARSE_OK, &m);
    assert_int_equal(m.status, 4);
    assert_false(m.has_hello_grant);
}

static void test_parse_auth_replies(void **state)
{
    (void)state;
    struct p2p_message m;
    uint8_t challenge[P2P_AUTH_REPLY_SIZE + 1] = {0x8c, 0x01, 0x01};
    fill_run(challenge + 3, 32, 0xe0);
    parse_message(challenge, P2P_AUTH_REPLY_SIZE, P2P_PARSE_OK, &m);
    assert_int_equal(m.kind, P2P_MSG_REPLY);
    assert_int_equal(m.cmd, P2P_CMD_AUTH);
    assert_int_equal(m.status, 1);
    assert_int_equal(m.step, P2P_AUTH_STEP_START);
    assert_ptr_equal(m.data, challenge + 3);
    assert_int_equal(m.data_len, 32);
    challenge[2] = P2P_AUTH_STEP_PROOF;
    parse_message(challenge, P2P_AUTH_REPLY_SIZE, P2P_PARSE_OK, &m);
    assert_int_equal(m.step, P2P_AUTH_STEP_PROOF);
    /* A success reply must carry exactly its step and 32 bytes. */
    for (size_t n = 2; n < P2P_AUTH_REPLY_SIZE; n++)
        parse_message(challenge, n, P2P_PARSE_MALFORMED, &m);
    parse_message(challenge, P2P_AUTH_REPLY_SIZE + 1, P2P_PARSE_MALFORMED, &m);
    challenge[2] = 0x03;
    parse_message(challenge, P2P_AUTH_REPLY_SIZE, P2P_PARSE_MALFORMED, &m);
    parse_message(challenge, 1, P2P_PARSE_MALFORMED, &m);
    /* Failures are two bytes. */
    static const uint8_t statuses[] = {0x00, 0x04, 0x05, 0x06, 0x07};
    for (size_t i = 0; i < sizeof statuses; i++) {
        const uint8_t failed[] = {0x8c, statuses[i]};
        parse_message(failed, sizeof failed, P2P_PARSE_OK, &m);
        assert_int_equal(m.status, statuses[i]);
        assert_int_equal(m.step, 0);
        assert_null(m.data);
    }
}

static void test_parse_events(void **state)
{
    (void)state;
    struct p2p_message m;
    const uint8_t deliver[] = {0x09, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65, 0x68, 0x69};
    parse_message(deliver, sizeof deliver, P2P_PARSE_OK, &m);
    assert_int_equal(m.kind, P2P_MSG_DELIVER);
    assert_memory_equal(m.id, "alice", 5);
    assert_int_equal(m.id_len, 5);
    assert_memory_equal(m.data, "hi", 2);
    assert_int_equal(m.data_len, 2);
    for (size_t n = 1; n < sizeof deliver; n++)
        parse_message(deliver, n, n >= 7 ? P2P_PARSE_OK : P2P_PARSE_MALFORMED, &m);

    const uint8_t presence[] = {0x0b, 0x00, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65};
    parse_message(presence, sizeof presence, P2P_PARSE_OK, &m);
    assert_int_equal(m.kind, P2P_MSG_PRESENCE);
    assert_int_equal(m.state, P2P_PRESENCE_OFFLINE);
    assert_memory_equal(m.id, "alice", 5);
    for (size_t n = 1; n < sizeof presence; n++)
        parse_message(presence, n, P2P_PARSE_MALFORMED, &m);

    const uint8_t bye[] = {0x0e, 0x04, 0x73, 0x65};
    parse_message(bye, sizeof bye, P2P_PARSE_OK, &m);
    assert_int_equal(m.kind, P2P_MSG_BYE);
    assert_int_equal(m.reason, 4);
    assert_int_equal(m.data_len, 2);
    parse_message(bye, 2, P2P_PARSE_OK, &m);
    assert_int_equal(m.data_len, 0);
    parse_message(bye, 1, P2P_PARSE_MALFORMED, &m);

    const uint8_t v1[] = {0x03, 0x68, 0x69};
    parse_message(v1, sizeof v1, P2P_PARSE_OK, &m);
    assert_int_equal(m.kind, P2P_MSG_V1_DELIVERY);
    assert_memory_equal(m.data, "hi", 2);
    parse_message(v1, 1, P2P_PARSE_OK, &m);
    assert_int_equal(m.data_len, 0);

    const uint8_t unknown[] = {0x10, 0x01};
    parse_message(unknown, sizeof unknown, P2P_PARSE_OK, &m);
    assert_int_equal(m.kind, P2P_MSG_UNKNOWN);
    assert_int_equal(m.cmd, 0x10);
}

/* GAP (stupidp2p(7), EVENTS): the publisher's id, then frames u32 and bytes
 * u64; id_len 0 is the others' aggregate. The bytes of the page's example. */
static void test_gap(void **state)
{
    (void)state;
    uint8_t out[P2P_GAP_MAX];
    const uint8_t alice[] = {0x0f, 0x05, 0x61, 0x6c, 0x69, 0x63, 0x65, 0x00, 0x00, 0x00, 0x03,
                             0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01, 0x2c};
    expect_bytes(out, p2p_encode_gap(out, ID("alice"), 3, 300), alice, sizeof alice);
    const uint8_t others[] = {0x0f, 0x00, 0x00, 0x00, 0x00, 0x02, 0x00, 0x00,
                              0x00, 0x00, 0x00, 0x00, 0x00, 0x0a};
    expect_bytes(out, p2p_encode_gap(out, NULL, 0, 2, 10), others, sizeof others);
    const uint8_t big[] = {0x0f, 0x01, 0x7a, 0xff, 0xff, 0xff, 0xff, 0x01, 0x02,
                           0x03, 0x04, 0x05, 0x06, 0x07, 0x08};
    expect_bytes(out, p2p_encode_gap(out, ID("z"), 0xffffffffu, 0x0102030405060708ull), big,
                 sizeof big);

    struct p2p_message m;
    parse_message(alice, sizeof alice, P2P_PARSE_OK, &m);
    assert_int_equal(m.kind, P2P_MSG_GAP);
    assert_int_equal(m.cmd, P2P_EVT_GAP);
    assert_int_equal(m.id_len, 5);
    assert_memory_equal(m.id, "alice", 5);
    assert_int_equal(m.gap_frames, 3);
    assert_int_equal(m.gap_bytes, 300);
    for (size_t n = 1; n < sizeof alice; n++)
        parse_message(alice, n, P2P_PARSE_MALFORMED, &m);

    parse_message(others, sizeof others, P2P_PARSE_OK, &m);
    assert_int_equal(m.kind, P2P_MSG_GAP);
    assert_int_equal(m.id_len, 0);
    assert_null(m.id);
    assert_int_equal(m.gap_frames, 2);
    assert_int_equal(m.gap_bytes, 10);
    for (size_t n = 1; n < sizeof others; n++)
        parse_message(others, n, P2P_PARSE_MALFORMED, &m);

    parse_message(big, sizeof big, P2P_PARSE_OK, &m);
    assert_int_equal(m.gap_frames, 0xffffffffu);
    assert_true(m.gap_bytes == 0x0102030405060708ull);

    /* Later versions may append fields: what follows the counts is ignored. */
    uint8_t longer[sizeof alice + 3];
    memcpy(longer, alice, sizeof alice);
    memset(longer + sizeof alice, 0xee, 3);
    parse_message(longer, sizeof longer, P2P_PARSE_OK, &m);
    assert_int_equal(m.gap_frames, 3);
    assert_int_equal(m.gap_bytes, 300);
}

/* HELLO's flag bits: QUIET and DROP, and nothing else known. */
static void test_hello_flags(void **state)
{
    (void)state;
    assert_int_equal(P2P_HELLO_FLAG_QUIET, 0x01);
    assert_int_equal(P2P_HELLO_FLAG_DROP, 0x02);
    assert_int_equal(P2P_HELLO_FLAGS_KNOWN, 0x03);
    uint8_t out[P2P_HELLO_SIZE];
    const uint8_t both[] = {0x08, 0x02, 0x03}; /* HELLO v2, QUIET and DROP */
    expect_bytes(out, p2p_encode_hello(out, 2, P2P_HELLO_FLAG_QUIET | P2P_HELLO_FLAG_DROP), both,
                 sizeof both);
    struct p2p_request r;
    parse_request(both, sizeof both, P2P_PARSE_OK, &r);
    assert_int_equal(r.flags, 0x03);
}

/* Whatever an encoder writes, the matching parser reads back. */
static void test_round_trips(void **state)
{
    (void)state;
    uint8_t id[P2P_ID_MAX];
    for (size_t i = 0; i < sizeof id; i++)
        id[i] = (uint8_t)(i * 7 + 1);
    uint8_t buf[P2P_ID_HEAD_MAX + 8];
    for (size_t n = 1; n <= P2P_ID_MAX; n++) {
        struct p2p_message m;
        size_t h = p2p_encode_deliver_head(buf, id, n);
        memcpy(buf + h, "data", 4);
        parse_message(buf, h + 4, P2P_PARSE_OK, &m);
        assert_int_equal(m.id_len, n);
        assert_memory_equal(m.id, id, n);
        assert_int_equal(m.data_len, 4);

        h = p2p_encode_presence(buf, P2P_PRESENCE_ONLINE, id, n);
        parse_message(buf, h, P2P_PARSE_OK, &m);
        assert_int_equal(m.id_len, n);
        assert_int_equal(m.state, P2P_PRESENCE_ONLINE);

        struct p2p_request r;
        h = p2p_encode_send_to_head(buf, id, n);
        parse_request(buf, h, P2P_PARSE_OK, &r);
        assert_int_equal(r.id_len, n);
        assert_memory_equal(r.id, id, n);
        assert_int_equal(r.data_len, 0);

        h = p2p_encode_id_command(buf, P2P_CMD_REGISTER, id, n);
        parse_request(buf, h, P2P_PARSE_OK, &r);
        assert_int_equal(r.id_len, n);

        uint8_t gap[P2P_GAP_MAX];
        h = p2p_encode_gap(gap, id, n, (uint32_t)n * 1000u, (uint64_t)n << 40);
        assert_int_equal(h, P2P_GAP_FIXED + n);
        parse_message(gap, h, P2P_PARSE_OK, &m);
        assert_int_equal(m.kind, P2P_MSG_GAP);
        assert_int_equal(m.id_len, n);
        assert_memory_equal(m.id, id, n);
        assert_int_equal(m.gap_frames, n * 1000u);
        assert_true(m.gap_bytes == (uint64_t)n << 40);
        uint8_t start[P2P_AUTH_START_MAX], nonce[P2P_AUTH_NONCE_SIZE];
        fill_run(nonce, sizeof nonce, (uint8_t)n);
        h = p2p_encode_auth_start(start, id, n, nonce);
        parse_request(start, h, P2P_PARSE_OK, &r);
        assert_int_equal(r.step, P2P_AUTH_STEP_START);
        assert_int_equal(r.id_len, n);
        assert_memory_equal(r.id, id, n);
        assert_memory_equal(r.data, nonce, 32);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_be32),
        cmocka_unit_test(test_encode_requests),
        cmocka_unit_test(test_encode_server_frames),
        cmocka_unit_test(test_encode_auth),
        cmocka_unit_test(test_parse_id_requests),
        cmocka_unit_test(test_parse_send_and_hello),
        cmocka_unit_test(test_parse_send_to),
        cmocka_unit_test(test_parse_auth),
        cmocka_unit_test(test_parse_replies),
        cmocka_unit_test(test_parse_auth_replies),
        cmocka_unit_test(test_parse_events),
        cmocka_unit_test(test_round_trips),
        cmocka_unit_test(test_gap),
        cmocka_unit_test(test_hello_flags),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
