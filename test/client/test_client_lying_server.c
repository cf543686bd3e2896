/*
 * test_client_lying_server.c - a fake server (a thread in this test, on
 * 127.0.0.1) that lies in its HELLO grant or says nasty things:
 *
 *  - a max_frame of 0xFFFFFFFF once wrapped the client's input limit to
 *    255 bytes; 0xFFFFFEFF let the server make it buffer 300 MiB of one
 *    frame. The grant is clamped to max_frame_limit (16 MiB by default)
 *    and a larger frame ends the connection at its header;
 *  - a grant that makes no sense (max_frame < 2, a version not asked for,
 *    a success reply without its grant) is a protocol error;
 *  - BYE text with control bytes reaches the log escaped;
 *  - a request longer than the grant (an OFFER to a long id under a grant
 *    of 256) is not sent: the server would close the connection.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "client_util.h"

static void fast_options(stupid_p2p_options_t *o, struct ct_rec *rec, int use_msg_cb)
{
    ct_options(o, rec, use_msg_cb);
    o->heartbeat_interval_ms = 200;
    o->command_timeout_ms = 1000;
    o->backoff_initial_ms = 20;
    o->backoff_max_ms = 100;
}

/* ---- hooks: what the fake does after answering REGISTER -------------------- */

#define DELIVER_LEN 1000

/* Sends a DELIVER from "peer" of arg-given length, after the reply. */
static int hook_deliver_after_register(struct ct_fake *f, int conn, const struct p2p_request *req)
{
    if (req->cmd != P2P_CMD_REGISTER)
        return 0;
    ct_fake_reply(f, conn, req->cmd);
    size_t len = *(const size_t *)f->arg;
    uint8_t head[P2P_ID_HEAD_MAX];
    size_t n = p2p_encode_deliver_head(head, (const uint8_t *)"peer", 4);
    uint8_t *payload = malloc(n + len);
    assert_non_null(payload);
    memcpy(payload, head, n);
    memset(payload + n, 'd', len);
    ct_fake_frame(f, conn, payload, n + len);
    free(payload);
    return 1;
}

/* Announces a 300 MiB frame after the reply, and sends none of it. */
static int hook_huge_header_after_register(struct ct_fake *f, int conn, const struct p2p_request *req)
{
    if (req->cmd != P2P_CMD_REGISTER)
        return 0;
    ct_fake_reply(f, conn, req->cmd);
    uint8_t hdr[P2P_FRAME_HEADER_SIZE];
    p2p_frame_header_encode(hdr, 300u << 20);
    (void)ct_fake_raw(f, conn, hdr, sizeof hdr);
    return 1;
}

static const char bye_text[] = "bye\x1b[2J\r\nFAKE LINE \\ \xff";

/* Says goodbye with terminal escapes and a forged line in the text. */
static int hook_bye_after_register(struct ct_fake *f, int conn, const struct p2p_request *req)
{
    if (req->cmd != P2P_CMD_REGISTER || f->serial[conn] != 1)
        return 0;
    ct_fake_reply(f, conn, req->cmd);
    uint8_t bye[P2P_BYE_MAX];
    ct_fake_frame(f, conn, bye, p2p_encode_bye(bye, P2P_BYE_SHUTDOWN, bye_text, sizeof bye_text - 1));
    ct_fake_hangup(f, conn);
    return 1;
}

/* Starts a v2 fake whose grant says max_frame, with a hook. */
static void start_fake(struct ct_fake *f, uint32_t max_frame, ct_fake_hook hook, void *arg)
{
    ct_fake_defaults(f);
    f->grant_max_frame = max_frame;
    f->hook = hook;
    f->arg = arg;
    ct_fake_start_cfg(f, CT_FAKE_V2, -1);
}

/* ---- the grant ---------------------------------------------------------------- */

/* 0xFFFFFFFF: the limit is clamped (16 MiB), not wrapped; a 1000-byte
 * message arrives. */
static void test_grant_of_all_ones_is_clamped(void **state)
{
    (void)state;
    static struct ct_fake f; /* static: outlives a failed test */
    static struct ct_rec rec;
    static size_t len = DELIVER_LEN;
    ct_rec_init(&rec);
    start_fake(&f, 0xFFFFFFFFu, hook_deliver_after_register, &len);
    stupid_p2p_options_t o;
    fast_options(&o, &rec, 1);
    int32_t h = ct_open_opts(f.port, &o);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(h, &st));
    assert_int_equal(st.max_frame, 16u << 20);
    ct_ok(stupid_p2p_register(h, "me", 2));
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_msgs >= 1 || rec.n_disconnected >= 1));
    assert_int_equal(CT_GET(&rec, rec.n_disconnected), 0);
    assert_int_equal(rec.len[0], DELIVER_LEN);
    assert_string_equal(rec.sender[0], "peer");
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
    ct_rec_destroy(&rec);
}

/* 0xFFFFFEFF, then a header announcing 300 MiB: the client drops the
 * connection at the header (BAD_FRAME) instead of buffering. */
static void test_huge_frame_refused_at_its_header(void **state)
{
    (void)state;
    static struct ct_fake f;
    static struct ct_rec rec;
    ct_rec_init(&rec);
    start_fake(&f, 0xFFFFFEFFu, hook_huge_header_after_register, NULL);
    stupid_p2p_options_t o;
    fast_options(&o, &rec, 1);
    o.heartbeat_interval_ms = 2000; /* the cause must be the frame, not silence */
    int32_t h = ct_open_opts(f.port, &o);
    ct_ok(stupid_p2p_register(h, "me", 2));
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_disconnected >= 1));
    assert_int_equal(rec.causes[0], STUPID_P2P_CAUSE_BAD_FRAME);
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
    ct_rec_destroy(&rec);
}

/* The option lowers the limit below an honest grant: sends above it are
 * refused locally, frames above it (+ the DELIVER slack) end the
 * connection. */
static void test_max_frame_limit_option(void **state)
{
    (void)state;
    static struct ct_fake f;
    static struct ct_rec rec;
    static size_t len = 5000;
    ct_rec_init(&rec);
    start_fake(&f, 65536, hook_deliver_after_register, &len);
    stupid_p2p_options_t o;
    fast_options(&o, &rec, 1);
    o.max_frame_limit = 4096;
    o.heartbeat_interval_ms = 2000;
    int32_t h = ct_open_opts(f.port, &o);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(h, &st));
    assert_int_equal(st.max_frame, 4096);
    static uint8_t big[5000];
    assert_int_equal(stupid_p2p_send(h, big, sizeof big), STUPID_P2P_BAD_PARAM);
    ct_ok(stupid_p2p_send(h, big, 4095)); /* [03] + 4095 = 4096 */
    ct_ok(stupid_p2p_register(h, "me", 2)); /* then the 5000-byte DELIVER */
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_disconnected >= 1));
    assert_int_equal(rec.causes[0], STUPID_P2P_CAUSE_BAD_FRAME);
    assert_int_equal(CT_GET(&rec, rec.n_msgs), 0);
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
    ct_rec_destroy(&rec);
}

/* Out-of-range values of the option are bad parameters. */
static void test_max_frame_limit_bounds(void **state)
{
    (void)state;
    stupid_p2p_options_t o;
    stupid_p2p_options_init(&o);
    assert_int_equal(o.max_frame_limit, 16u << 20);
    o.max_frame_limit = 255; /* a REGISTER of a 255-byte id needs 256 */
    assert_int_equal(stupid_p2p_init_ex("127.0.0.1", 1, &o), STUPID_P2P_BAD_PARAM);
    o.max_frame_limit = (1u << 30) + 1;
    assert_int_equal(stupid_p2p_init_ex("127.0.0.1", 1, &o), STUPID_P2P_BAD_PARAM);
    stupid_p2p_options_init(&o);
    o.takeover_retries = -1;
    assert_int_equal(stupid_p2p_init_ex("127.0.0.1", 1, &o), STUPID_P2P_BAD_PARAM);
}

/* A program built against the struct before max_frame_limit existed gets
 * the default: the field past its struct_size is never read. */
static void test_older_struct_gets_the_default_limit(void **state)
{
    (void)state;
    static struct ct_fake f;
    start_fake(&f, 0xFFFFFFFFu, NULL, NULL);
    stupid_p2p_options_t o;
    fast_options(&o, NULL, 0);
    o.struct_size = (uint32_t)offsetof(stupid_p2p_options_t, max_frame_limit);
    o.max_frame_limit = 7;    /* garbage beyond the older struct */
    o.takeover_retries = -5;  /* likewise */
    int32_t h = ct_open_opts(f.port, &o);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(h, &st));
    assert_int_equal(st.max_frame, 16u << 20);
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
}

/* Grants that make no sense fail init, with the cause named. */
static void test_nonsense_grants_fail(void **state)
{
    (void)state;
    static const struct {
        uint8_t version;
        uint32_t max_frame;
        size_t len;
        const char *what;
    } lies[] = {
        {2, 0, P2P_HELLO_REPLY_SIZE, "max_frame 0"},
        {2, 1, P2P_HELLO_REPLY_SIZE, "max_frame 1"},
        {3, 65536, P2P_HELLO_REPLY_SIZE, "version 3, not asked for"},
        {0xFF, 65536, P2P_HELLO_REPLY_SIZE, "version 255"},
        {2, 65536, P2P_REPLY_SIZE, "88 01 without the grant"},
        {2, 65536, 7, "a grant cut short"},
    };
    for (size_t i = 0; i < TC_ARRAY_LEN(lies); i++) {
        static struct ct_fake f;
        ct_fake_defaults(&f);
        f.grant_version = lies[i].version;
        f.grant_max_frame = lies[i].max_frame;
        f.grant_len = lies[i].len;
        ct_fake_start_cfg(&f, CT_FAKE_V2, -1);
        stupid_p2p_options_t o;
        fast_options(&o, NULL, 0);
        int32_t h = stupid_p2p_init_ex("127.0.0.1", f.port, &o);
        fprintf(stderr, "  %s: init %d, %s\n", lies[i].what, h,
                h < 0 ? stupid_p2p_connect_error(0) : "connected");
        if (h > 0)
            stupid_p2p_deinit(h);
        ct_fake_stop(&f);
        if (h != STUPID_P2P_NET_ERROR)
            fail_msg("%s: init returned %d, expected NET_ERROR", lies[i].what, h);
        assert_string_equal(stupid_p2p_connect_error(0), "malformed or unexpected frame from the server");
    }
}

/* A version 1 grant from a server that knows HELLO is honest: v1. */
static void test_version_1_grant(void **state)
{
    (void)state;
    static struct ct_fake f;
    ct_fake_defaults(&f);
    f.grant_version = 1;
    ct_fake_start_cfg(&f, CT_FAKE_V2, -1);
    stupid_p2p_options_t o;
    fast_options(&o, NULL, 0);
    int32_t h = ct_open_opts(f.port, &o);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(h, &st));
    assert_int_equal(st.protocol_version, 1);
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
}

/* ---- requests above the grant ------------------------------------------------ */

static int offers_seen; /* __atomic: written by the fake's thread */

static int hook_count_offers(struct ct_fake *f, int conn, const struct p2p_request *req)
{
    (void)f;
    (void)conn;
    if (req->cmd != P2P_CMD_DIRECT_OFFER)
        return 0;
    __atomic_add_fetch(&offers_seen, 1, __ATOMIC_SEQ_CST);
    return 1; /* unanswered: it should never have come */
}

/* A grant of 256, p2pServer's least --max-frame: an OFFER to a 255-byte
 * id (292 bytes and more) does not fit, and a server closes the connection
 * for a frame above its grant. The library used to send it (fuzz_client
 * found the like with a smaller grant and a REGISTER); now the offer fails
 * at once, nothing is sent, and the connection stays. */
static void test_request_above_the_grant_not_sent(void **state)
{
    (void)state;
    static struct ct_fake f;
    static struct ct_rec rec;
    ct_rec_init(&rec);
    ct_fake_defaults(&f);
    f.grant_max_frame = 256;
    f.hook = hook_count_offers;
    ct_fake_start_cfg(&f, CT_FAKE_V2, -1);
    stupid_p2p_options_t o;
    fast_options(&o, &rec, 1);
    int32_t h = ct_open_opts(f.port, &o);
    ct_ok(stupid_p2p_register(h, "me", 2));
    uint8_t peer[P2P_ID_MAX];
    memset(peer, 'p', sizeof peer);
    int32_t rc = stupid_p2p_connect_direct(h, peer, sizeof peer);
    fprintf(stderr, "  connect_direct: %d\n", rc);
    assert_int_not_equal(rc, STUPID_P2P_NO_ERROR);
    /* Answered after anything sent before it: no offer came. */
    assert_int_equal(stupid_p2p_check_alive(h, "me", 2), 1);
    assert_int_equal(__atomic_load_n(&offers_seen, __ATOMIC_SEQ_CST), 0);
    assert_int_equal(CT_GET(&rec, rec.n_disconnected), 0);
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
    ct_rec_destroy(&rec);
}

/* ---- BYE text ------------------------------------------------------------------ */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int n;
    char lines[64][1100];
} logrec = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, {{0}}};

static void record_log(int32_t h, stupid_p2p_log_level_t level, const char *msg, void *u)
{
    (void)h;
    (void)level;
    (void)u;
    pthread_mutex_lock(&logrec.mu);
    if (logrec.n < 64)
        snprintf(logrec.lines[logrec.n++], sizeof logrec.lines[0], "%s", msg);
    pthread_cond_broadcast(&logrec.cond);
    pthread_mutex_unlock(&logrec.mu);
}

static int log_has(const char *needle)
{
    for (int i = 0; i < logrec.n; i++)
        if (strstr(logrec.lines[i], needle) != NULL)
            return 1;
    return 0;
}

static void test_bye_text_is_escaped_in_the_log(void **state)
{
    (void)state;
    static struct ct_fake f;
    static struct ct_rec rec;
    ct_rec_init(&rec);
    start_fake(&f, 65536, hook_bye_after_register, NULL);
    stupid_p2p_options_t o;
    fast_options(&o, &rec, 0);
    o.on_log = record_log;
    o.log_level = STUPID_P2P_LOG_DEBUG;
    int32_t h = ct_open_opts(f.port, &o);
    ct_ok(stupid_p2p_register(h, "me", 2));
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_disconnected >= 1));
    assert_int_equal(rec.causes[0], STUPID_P2P_CAUSE_SERVER_SHUTDOWN); /* BYE 4, by the table */
    assert_true(CT_WAIT_FOR(&logrec, CT_WAIT_MS, log_has("server says goodbye")));
    stupid_p2p_deinit(h);
    pthread_mutex_lock(&logrec.mu);
    int found = log_has("server says goodbye (reason 4): bye\\x1b[2J\\x0d\\x0aFAKE LINE \\\\ \\xff");
    int raw = -1;
    for (int i = 0; i < logrec.n && raw < 0; i++)
        for (const char *c = logrec.lines[i]; *c && raw < 0; c++)
            if ((unsigned char)*c < 0x20 || (unsigned char)*c >= 0x7f)
                raw = i;
    char line[1100] = "";
    for (int i = 0; i < logrec.n; i++)
        if (strstr(logrec.lines[i], "goodbye"))
            snprintf(line, sizeof line, "%s", logrec.lines[i]);
    pthread_mutex_unlock(&logrec.mu);
    fprintf(stderr, "  logged: %s\n", line);
    assert_int_equal(raw, -1);
    assert_true(found);
    ct_fake_stop(&f);
    ct_rec_destroy(&rec);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grant_of_all_ones_is_clamped),
        cmocka_unit_test(test_huge_frame_refused_at_its_header),
        cmocka_unit_test(test_max_frame_limit_option),
        cmocka_unit_test(test_max_frame_limit_bounds),
        cmocka_unit_test(test_older_struct_gets_the_default_limit),
        cmocka_unit_test(test_nonsense_grants_fail),
        cmocka_unit_test(test_version_1_grant),
        cmocka_unit_test(test_request_above_the_grant_not_sent),
        cmocka_unit_test(test_bye_text_is_escaped_in_the_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
