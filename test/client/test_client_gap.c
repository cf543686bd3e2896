/*
 * test_client_gap.c - the slow-consumer policy from the library's side
 * (stupidp2p(3), Slow consumers; stupidp2p(7), GAP):
 *
 *  - against the real server (--max-output 131072): a subscriber that asked
 *    for DROP stops reading (its message callback blocks) while a publisher
 *    sends numbered 16 KiB messages, until the server's log says it drops,
 *    and then some; then it reads again. It must get every message up to
 *    the drop point in order, then GAPs whose counts make up exactly for
 *    the numbers it did not get, then the later messages in order, all on
 *    one connection (no BYE 3). Without DROP the old behaviour stays: BYE
 *    3, cause SLOW_CONSUMER, and a reconnect;
 *  - against a fake server: GAPs are reported in stream order with the
 *    messages, "the others" as a NULL publisher, the counters stop at
 *    UINT64_MAX; malformed GAPs, and a GAP on a connection without DROP,
 *    are protocol errors (BAD_FRAME); a server that refuses the flag (an
 *    older v2 server: 88 04) keeps the v2 session and the policy is
 *    reported as not in force, as with an original server;
 *  - the options and statistics structs stay compatible with programs
 *    built against the 0.3 header.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth.h" /* tc_log_count */
#include "client_util.h"

#define MSG_SIZE 16384
#define FLOOD_MAX 4000  /* 64 MiB: far beyond the socket buffers and the cap */
#define EXTRA 20        /* sent after the server said it drops: all dropped */
#define LATER 10        /* sent after the subscriber has caught up          */
#define MAX_EVENTS 8192
#define HOLD_MAX_MS 60000 /* a held callback lets go by itself after this   */

static const char *const small_cap[] = {"--max-output", "131072", NULL};

/* ---- what the subscriber's callbacks saw, in stream order ---------------------- */

enum { EV_MSG = 1, EV_GAP = 2 };

struct event {
    int kind;
    uint32_t seq;      /* EV_MSG: the message's number; EV_GAP: frames */
    uint64_t bytes;    /* EV_GAP                                       */
    int others;        /* EV_GAP: publisher NULL                       */
    char pub[32];      /* EV_GAP: the publisher                        */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int hold;          /* the message callback blocks while set */
    int held;          /* it is blocked now                     */
    int n;
    struct event ev[MAX_EVENTS];
    int bad;           /* messages not whole, or a NUL missing   */
    uint64_t accounted;/* messages received + reported missing   */
} sr = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, 0, 0, {{0}}, 0, 0};

static void sr_reset(int hold)
{
    pthread_mutex_lock(&sr.mu);
    sr.hold = hold;
    sr.held = 0;
    sr.n = 0;
    sr.bad = 0;
    sr.accounted = 0;
    pthread_mutex_unlock(&sr.mu);
}

static void sr_release(void)
{
    pthread_mutex_lock(&sr.mu);
    sr.hold = 0;
    pthread_cond_broadcast(&sr.cond);
    pthread_mutex_unlock(&sr.mu);
}

static void fill_message(uint8_t *msg, uint32_t seq)
{
    memset(msg, 'a' + (int)(seq % 26), MSG_SIZE);
    msg[0] = (uint8_t)(seq >> 24);
    msg[1] = (uint8_t)(seq >> 16);
    msg[2] = (uint8_t)(seq >> 8);
    msg[3] = (uint8_t)seq;
}

/* Records a message; while hold is set, blocks after recording it (the
 * application stopped reading), bounded by HOLD_MAX_MS. */
static void sr_on_message(int32_t h, const uint8_t *sender, size_t slen, const uint8_t *data, size_t len, void *u)
{
    (void)h;
    (void)sender;
    (void)slen;
    (void)u;
    static uint8_t want[MSG_SIZE];
    pthread_mutex_lock(&sr.mu);
    uint32_t seq = len >= 4 ? p2p_get_be32(data) : UINT32_MAX;
    if (len != MSG_SIZE || data[len] != 0) {
        sr.bad++;
    } else {
        fill_message(want, seq);
        if (memcmp(want, data, MSG_SIZE) != 0)
            sr.bad++;
    }
    if (sr.n < MAX_EVENTS)
        sr.ev[sr.n++] = (struct event){EV_MSG, seq, 0, 0, ""};
    sr.accounted++;
    struct timespec until = ct_deadline(HOLD_MAX_MS);
    while (sr.hold) {
        sr.held = 1;
        pthread_cond_broadcast(&sr.cond);
        if (pthread_cond_timedwait(&sr.cond, &sr.mu, &until) == ETIMEDOUT)
            break;
    }
    sr.held = 0;
    pthread_cond_broadcast(&sr.cond);
    pthread_mutex_unlock(&sr.mu);
}

static void sr_on_gap(int32_t h, const uint8_t *pub, size_t pub_len, uint32_t frames, uint64_t bytes, void *u)
{
    (void)h;
    (void)u;
    pthread_mutex_lock(&sr.mu);
    if ((pub == NULL) != (pub_len == 0) || (pub != NULL && pub[pub_len] != 0))
        sr.bad++;
    if (sr.n < MAX_EVENTS) {
        struct event *e = &sr.ev[sr.n++];
        *e = (struct event){EV_GAP, frames, bytes, pub == NULL, ""};
        if (pub != NULL)
            snprintf(e->pub, sizeof e->pub, "%.*s", (int)(pub_len < 31 ? pub_len : 31), (const char *)pub);
    }
    sr.accounted += frames;
    pthread_cond_broadcast(&sr.cond);
    pthread_mutex_unlock(&sr.mu);
}

/* ---- against the real server ------------------------------------------------------- */

/* The subscriber: a message callback that can stop reading, GAPs and
 * states recorded; heartbeats slow enough that a release after a long
 * hold has time to read what piled up. */
static int32_t open_subscriber(uint16_t port, struct ct_rec *rec, int drop)
{
    stupid_p2p_options_t o;
    ct_options(&o, rec, 0);
    o.on_message = sr_on_message;
    o.heartbeat_interval_ms = 2000;
    if (drop) {
        o.slow_consumer = STUPID_P2P_SLOW_DROP;
        o.on_gap = sr_on_gap;
    }
    return ct_open_opts(port, &o);
}

/* A subscriber to "pub" (DROP asked for or not, and checked in force or
 * not) that holds its first message, and the publisher "pub". */
static void open_pair(uint16_t port, struct ct_rec *rec, int drop, int32_t *sub, int32_t *pub)
{
    ct_rec_init(rec);
    sr_reset(1);
    *sub = open_subscriber(port, rec, drop);
    *pub = ct_open(port, NULL, 0);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(*sub, &st));
    assert_int_equal(st.drop_in_force, drop);
    ct_ok(stupid_p2p_register(*pub, "pub", 3));
    ct_ok(stupid_p2p_subscribe(*sub, "pub", 3));
}

/* Sends message seq from the publisher. */
static void publish(int32_t pub, uint32_t seq)
{
    static uint8_t msg[MSG_SIZE];
    fill_message(msg, seq);
    ct_ok(stupid_p2p_send(pub, msg, MSG_SIZE));
}

/* Message 0, which the subscriber holds; then more, until the server's log
 * says `needle` (checked every 16 messages), then EXTRA more. Returns the
 * number of messages sent. */
static uint32_t flood_until_logged(struct p2p_server *srv, int32_t pub, const char *needle)
{
    publish(pub, 0);
    if (!CT_WAIT_FOR(&sr, CT_WAIT_MS, sr.held))
        fail_msg("the subscriber never received message 0");
    uint32_t sent = 1;
    while (tc_log_count(srv, needle) == 0) {
        if (sent >= FLOOD_MAX)
            fail_msg("%u messages sent; the server never said \"%s\"", sent, needle);
        for (uint32_t end = sent + 16; sent < end; sent++)
            publish(pub, sent);
    }
    for (uint32_t end = sent + EXTRA; sent < end; sent++)
        publish(pub, sent);
    return sent;
}

/* Waits (bounded) until messages received and reported missing make up
 * total. */
static void wait_accounted(uint32_t total)
{
    if (!CT_WAIT_FOR(&sr, 3 * CT_WAIT_MS, sr.accounted >= total))
        fail_msg("%llu of %u messages accounted for", (unsigned long long)CT_GET(&sr, sr.accounted), total);
}

/* Checks the events: messages numbered 0, 1, ... in order, each hole
 * exactly the frames of the GAPs before the next message (all from
 * "pub", 16 KiB each), up to total. Returns the number of GAP events. */
static int check_stream(uint32_t total, uint64_t *missed)
{
    pthread_mutex_lock(&sr.mu);
    uint32_t expected = 0;
    int gaps = 0;
    *missed = 0;
    for (int i = 0; i < sr.n; i++) {
        const struct event *e = &sr.ev[i];
        if (e->kind == EV_MSG) {
            if (e->seq != expected) {
                pthread_mutex_unlock(&sr.mu);
                fail_msg("event %d: message %u where %u was expected", i, e->seq, expected);
            }
            expected++;
            continue;
        }
        if (e->others || strcmp(e->pub, "pub") != 0 || e->bytes != (uint64_t)e->seq * MSG_SIZE || e->seq == 0) {
            pthread_mutex_unlock(&sr.mu);
            fail_msg("event %d: GAP of %u messages, %llu bytes, from \"%s\"%s", i, e->seq,
                     (unsigned long long)e->bytes, e->pub, e->others ? " (others)" : "");
        }
        fprintf(stderr, "  GAP after message %u: %u messages (%llu bytes) missed\n", expected - 1, e->seq,
                (unsigned long long)e->bytes);
        expected += e->seq;
        *missed += e->seq;
        gaps++;
    }
    int bad = sr.bad, n = sr.n;
    pthread_mutex_unlock(&sr.mu);
    assert_int_equal(bad, 0);
    assert_true(n < MAX_EVENTS);
    assert_int_equal(expected, total);
    return gaps;
}

static void test_drop_reports_exactly_what_was_missed(void **state)
{
    struct p2p_server *srv = *state;
    static struct ct_rec rec;
    int32_t sub, pub;
    open_pair(srv->port, &rec, 1, &sub, &pub);

    uint32_t sent = flood_until_logged(srv, pub, "dropping deliveries until it catches up");
    sr_release();
    wait_accounted(sent);
    /* Caught up: later messages arrive again, in order. */
    for (uint32_t end = sent + LATER; sent < end; sent++)
        publish(pub, sent);
    wait_accounted(sent);
    ct_barrier(sub);

    stupid_p2p_stats_t st;
    uint64_t missed = 0;
    int gaps = check_stream(sent, &missed);
    fprintf(stderr, "  %u messages sent: %llu missed, reported by %d GAP event(s)\n", sent,
            (unsigned long long)missed, gaps);
    assert_true(gaps >= 1);
    assert_true(missed >= EXTRA);
    /* The last ones came after every GAP. */
    pthread_mutex_lock(&sr.mu);
    for (int i = sr.n - LATER; i < sr.n; i++)
        assert_int_equal(sr.ev[i].kind, EV_MSG);
    pthread_mutex_unlock(&sr.mu);

    ct_ok(stupid_p2p_get_stats(sub, &st));
    assert_int_equal(st.drop_in_force, 1);
    assert_int_equal(st.gap_events, (uint64_t)gaps);
    assert_int_equal(st.missed_messages, missed);
    assert_int_equal(st.missed_bytes, missed * MSG_SIZE);
    assert_int_equal(st.messages_received, (uint64_t)sent - missed);
    assert_int_equal(st.reconnects, 0);
    assert_int_equal(st.last_cause, STUPID_P2P_CAUSE_NONE);
    assert_int_equal(CT_GET(&rec, rec.n_disconnected), 0); /* no BYE 3 */
    assert_int_equal(stupid_p2p_get_state(sub), STUPID_P2P_STATE_CONNECTED);
    stupid_p2p_deinit(sub);
    stupid_p2p_deinit(pub);
    ct_rec_destroy(&rec);
}

/* Without DROP, the same subscriber is cut off (BYE 3) and reconnects;
 * what it got before is in order, and nothing reports the rest. */
static void test_without_drop_a_slow_consumer_is_disconnected(void **state)
{
    struct p2p_server *srv = *state;
    static struct ct_rec rec;
    int32_t sub, pub;
    open_pair(srv->port, &rec, 0, &sub, &pub);

    uint32_t sent = flood_until_logged(srv, pub, "slow consumer: output would exceed");
    sr_release();
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_connected >= 1));
    assert_int_equal(CT_GET(&rec, rec.causes[0]), STUPID_P2P_CAUSE_SLOW_CONSUMER);
    /* The subscription came back with the connection. */
    publish(pub, sent);
    assert_true(CT_WAIT_FOR(&sr, CT_WAIT_MS, sr.n > 0 && sr.ev[sr.n - 1].seq == sent));

    pthread_mutex_lock(&sr.mu);
    int n = sr.n, bad = sr.bad, in_order = 1;
    for (int i = 0; i + 1 < n; i++)
        in_order &= sr.ev[i].kind == EV_MSG && sr.ev[i].seq == (uint32_t)i;
    pthread_mutex_unlock(&sr.mu);
    fprintf(stderr, "  %u messages sent; %d received before the BYE\n", sent, n - 1);
    assert_int_equal(bad, 0);
    assert_true(in_order);
    assert_true(n - 1 < (int)sent);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(sub, &st));
    assert_int_equal(st.reconnects, 1);
    assert_int_equal(st.gap_events, 0);
    assert_int_equal(st.missed_messages, 0);
    stupid_p2p_deinit(sub);
    stupid_p2p_deinit(pub);
    ct_rec_destroy(&rec);
}

/* ---- against a fake server --------------------------------------------------------- */

static void fast_options(stupid_p2p_options_t *o, struct ct_rec *rec, int drop)
{
    ct_options(o, rec, 0);
    o->heartbeat_interval_ms = 2000; /* the causes must be the frames, not silence */
    o->command_timeout_ms = 1000;
    o->backoff_initial_ms = 20;
    o->backoff_max_ms = 100;
    o->on_message = sr_on_message;
    if (drop) {
        o->slow_consumer = STUPID_P2P_SLOW_DROP;
        o->on_gap = sr_on_gap;
    }
}

/* What a fake sends after its first REGISTER reply: payloads, one frame
 * each; and, for every connection, the flags of the HELLOs it received. */
struct script {
    const uint8_t *payload[8];
    size_t len[8];
    int count;
    int refuse_drop;      /* answer a HELLO with DROP 88 04, as an older
                             v2 server does                              */
    pthread_mutex_t mu;
    int hellos;
    uint8_t hello_flags[16];
};

static struct script script;

static void script_reset(int refuse_drop)
{
    pthread_mutex_lock(&script.mu);
    script.count = 0;
    script.refuse_drop = refuse_drop;
    script.hellos = 0;
    pthread_mutex_unlock(&script.mu);
}

static void script_add(const uint8_t *payload, size_t len)
{
    script.payload[script.count] = payload;
    script.len[script.count] = len;
    script.count++;
}

static int script_hook(struct ct_fake *f, int conn, const struct p2p_request *req)
{
    if (req->cmd == P2P_CMD_HELLO) {
        pthread_mutex_lock(&script.mu);
        if (script.hellos < 16)
            script.hello_flags[script.hellos++] = req->flags;
        int refuse = script.refuse_drop && (req->flags & P2P_HELLO_FLAG_DROP) != 0;
        pthread_mutex_unlock(&script.mu);
        if (refuse) {
            uint8_t r[P2P_REPLY_SIZE];
            ct_fake_frame(f, conn, r, p2p_encode_reply(r, P2P_CMD_HELLO, P2P_STATUS_BAD_ARGUMENT));
            return 1;
        }
        return 0;
    }
    if (req->cmd != P2P_CMD_REGISTER || f->serial[conn] != 1)
        return 0;
    ct_fake_reply(f, conn, req->cmd);
    for (int i = 0; i < script.count; i++)
        ct_fake_frame(f, conn, script.payload[i], script.len[i]);
    return 1;
}

static void start_scripted(struct ct_fake *f, enum ct_fake_mode mode)
{
    ct_fake_defaults(f);
    f->hook = script_hook;
    ct_fake_start_cfg(f, mode, -1);
}

/* The first frame of message seq from "pub" (a DELIVER). */
static size_t deliver_payload(uint8_t *out, uint32_t seq)
{
    size_t n = p2p_encode_deliver_head(out, (const uint8_t *)"pub", 3);
    fill_message(out + n, seq);
    return n + MSG_SIZE;
}

/* GAPs named and for the others, between messages, with trailing bytes a
 * later version may add; counts that sum past UINT64_MAX stop there. */
static void test_gaps_in_stream_order_and_saturating(void **state)
{
    (void)state;
    static struct ct_fake f;
    static struct ct_rec rec;
    static uint8_t d0[P2P_ID_HEAD_MAX + MSG_SIZE], d1[P2P_ID_HEAD_MAX + MSG_SIZE];
    static uint8_t g_named[P2P_GAP_MAX + 2], g_others[P2P_GAP_MAX], g_huge[P2P_GAP_MAX];
    ct_rec_init(&rec);
    sr_reset(0);
    script_reset(0);
    size_t n0 = deliver_payload(d0, 0), n1 = deliver_payload(d1, 4);
    size_t ng = p2p_encode_gap(g_named, (const uint8_t *)"pub", 3, 2, 2 * MSG_SIZE);
    g_named[ng++] = 0xEE; /* ignored: what a later version may append */
    g_named[ng++] = 0xEE;
    size_t no = p2p_encode_gap(g_others, NULL, 0, 1, 7);
    size_t nh = p2p_encode_gap(g_huge, (const uint8_t *)"pub", 3, UINT32_MAX, UINT64_MAX);
    script_add(d0, n0);
    script_add(g_named, ng);
    script_add(g_others, no);
    script_add(d1, n1);
    script_add(g_huge, nh);
    script_add(g_huge, nh);
    start_scripted(&f, CT_FAKE_V2);
    stupid_p2p_options_t o;
    fast_options(&o, &rec, 1);
    int32_t h = ct_open_opts(f.port, &o);
    ct_ok(stupid_p2p_register(h, "me", 2));
    ct_barrier(h);

    pthread_mutex_lock(&sr.mu);
    int n = sr.n, bad = sr.bad;
    struct event ev[6];
    memcpy(ev, sr.ev, sizeof ev);
    pthread_mutex_unlock(&sr.mu);
    assert_int_equal(bad, 0);
    assert_int_equal(n, 6);
    assert_true(ev[0].kind == EV_MSG && ev[0].seq == 0);
    assert_true(ev[1].kind == EV_GAP && ev[1].seq == 2 && ev[1].bytes == 2 * MSG_SIZE && !ev[1].others);
    assert_string_equal(ev[1].pub, "pub");
    assert_true(ev[2].kind == EV_GAP && ev[2].seq == 1 && ev[2].bytes == 7 && ev[2].others);
    assert_true(ev[3].kind == EV_MSG && ev[3].seq == 4);
    assert_true(ev[4].kind == EV_GAP && ev[4].seq == UINT32_MAX && ev[4].bytes == UINT64_MAX);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(h, &st));
    assert_int_equal(st.gap_events, 4);
    assert_int_equal(st.missed_messages, 3 + 2 * (uint64_t)UINT32_MAX);
    assert_true(st.missed_bytes == UINT64_MAX);
    assert_int_equal(CT_GET(&rec, rec.n_disconnected), 0);
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
    ct_rec_destroy(&rec);
}

/* Each malformed GAP ends the connection as a protocol error, and none
 * reaches on_gap. */
static void test_malformed_gaps_are_protocol_errors(void **state)
{
    (void)state;
    static const struct {
        uint8_t bytes[24];
        size_t len;
        const char *what;
    } bad[] = {
        {{0x0f}, 1, "no id_len"},
        {{0x0f, 0x05, 'a', 'l', 'i', 'c', 'e'}, 7, "no counts"},
        {{0x0f, 0x05, 'a', 'l'}, 4, "an id overrunning the payload"},
        {{0x0f, 0x00, 0, 0, 0, 3, 0, 0, 0, 0, 0, 0, 1}, 13, "bytes one byte short"},
        {{0x0f, 0x03, 'p', 'u', 'b', 0, 0, 0, 3}, 9, "frames without bytes"},
    };
    for (size_t i = 0; i < TC_ARRAY_LEN(bad); i++) {
        static struct ct_fake f;
        static struct ct_rec rec;
        ct_rec_init(&rec);
        sr_reset(0);
        script_reset(0);
        script_add(bad[i].bytes, bad[i].len);
        start_scripted(&f, CT_FAKE_V2);
        stupid_p2p_options_t o;
        fast_options(&o, &rec, 1);
        int32_t h = ct_open_opts(f.port, &o);
        int32_t rc = stupid_p2p_register(h, "me", 2);
        int lost = CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_disconnected >= 1);
        stupid_p2p_cause_t cause = CT_GET(&rec, rec.causes[0]);
        int events = CT_GET(&sr, sr.n);
        fprintf(stderr, "  %s: register %d, disconnected %d, cause %d\n", bad[i].what, rc, lost, (int)cause);
        stupid_p2p_deinit(h);
        ct_fake_stop(&f);
        ct_rec_destroy(&rec);
        assert_true(lost);
        assert_int_equal(cause, STUPID_P2P_CAUSE_BAD_FRAME);
        assert_int_equal(events, 0);
    }
}

/* A GAP on a connection that did not ask for DROP is a protocol error. */
static void test_gap_without_drop_is_a_protocol_error(void **state)
{
    (void)state;
    static struct ct_fake f;
    static struct ct_rec rec;
    static uint8_t g[P2P_GAP_MAX];
    ct_rec_init(&rec);
    sr_reset(0);
    script_reset(0);
    script_add(g, p2p_encode_gap(g, (const uint8_t *)"pub", 3, 1, 1));
    start_scripted(&f, CT_FAKE_V2);
    stupid_p2p_options_t o;
    fast_options(&o, &rec, 0);
    o.on_gap = sr_on_gap; /* set, but DROP not asked for */
    int32_t h = ct_open_opts(f.port, &o);
    (void)stupid_p2p_register(h, "me", 2);
    assert_true(CT_WAIT_FOR(&rec, CT_WAIT_MS, rec.n_disconnected >= 1));
    assert_int_equal(CT_GET(&rec, rec.causes[0]), STUPID_P2P_CAUSE_BAD_FRAME);
    assert_int_equal(CT_GET(&sr, sr.n), 0);
    pthread_mutex_lock(&script.mu);
    assert_int_equal(script.hello_flags[0], 0);
    pthread_mutex_unlock(&script.mu);
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
    ct_rec_destroy(&rec);
}

static struct {
    pthread_mutex_t mu;
    int warned;
} logged = {PTHREAD_MUTEX_INITIALIZER, 0};

static void watch_log(int32_t h, stupid_p2p_log_level_t level, const char *msg, void *u)
{
    ct_on_log(h, level, msg, u);
    pthread_mutex_lock(&logged.mu);
    if (level == STUPID_P2P_LOG_WARNING && strstr(msg, "does not know the DROP policy") != NULL)
        logged.warned++;
    pthread_mutex_unlock(&logged.mu);
}

/* A server that does not know the flag: an older v2 server refuses the
 * HELLO that asks for it (88 04), which leaves the v2 session of the HELLO
 * before it; an original server ignores both. Either way the policy is
 * reported as not in force, and a warning logged. */
static void test_a_server_without_drop_is_reported(void **state)
{
    (void)state;
    static const struct {
        enum ct_fake_mode mode;
        int version;
    } servers[] = {{CT_FAKE_V2, 2}, {CT_FAKE_ORIGINAL, 1}};
    for (size_t i = 0; i < TC_ARRAY_LEN(servers); i++) {
        static struct ct_fake f;
        script_reset(servers[i].mode == CT_FAKE_V2); /* the original ignores HELLO */
        start_scripted(&f, servers[i].mode);
        pthread_mutex_lock(&logged.mu);
        logged.warned = 0;
        pthread_mutex_unlock(&logged.mu);
        stupid_p2p_options_t o;
        fast_options(&o, NULL, 1);
        o.on_log = watch_log;
        int32_t h = ct_open_opts(f.port, &o);
        stupid_p2p_stats_t st;
        ct_ok(stupid_p2p_get_stats(h, &st));
        stupid_p2p_deinit(h);
        ct_fake_stop(&f);
        assert_int_equal(st.protocol_version, servers[i].version);
        assert_int_equal(st.drop_in_force, 0);
        pthread_mutex_lock(&logged.mu);
        assert_int_equal(logged.warned, 1);
        pthread_mutex_unlock(&logged.mu);
        /* HELLO v2 without flags, then HELLO v2 DROP, in one write. */
        pthread_mutex_lock(&script.mu);
        int hellos = script.hellos;
        uint8_t f0 = script.hello_flags[0], f1 = script.hello_flags[1];
        pthread_mutex_unlock(&script.mu);
        assert_int_equal(hellos, 2);
        assert_int_equal(f0, 0);
        assert_int_equal(f1, P2P_HELLO_FLAG_DROP);
    }
}

/* ---- compatibility with programs built against the 0.3 header --------------------- */

/* An older options struct (up to token_len) gets the default policy: one
 * HELLO, without flags; a value out of range is a bad parameter. */
static void test_older_options_get_the_default_policy(void **state)
{
    (void)state;
    static struct ct_fake f;
    script_reset(0);
    start_scripted(&f, CT_FAKE_V2);
    stupid_p2p_options_t o;
    fast_options(&o, NULL, 1);
    o.struct_size = (uint32_t)offsetof(stupid_p2p_options_t, slow_consumer);
    o.slow_consumer = 77; /* garbage beyond the older struct */
    int32_t h = ct_open_opts(f.port, &o);
    stupid_p2p_stats_t st;
    ct_ok(stupid_p2p_get_stats(h, &st));
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
    assert_int_equal(st.drop_in_force, 0);
    pthread_mutex_lock(&script.mu);
    assert_int_equal(script.hellos, 1);
    assert_int_equal(script.hello_flags[0], 0);
    pthread_mutex_unlock(&script.mu);

    stupid_p2p_options_init(&o);
    assert_int_equal(o.slow_consumer, STUPID_P2P_SLOW_DISCONNECT);
    assert_null(o.on_gap);
    o.slow_consumer = 2;
    assert_int_equal(stupid_p2p_init_ex("127.0.0.1", 1, &o), STUPID_P2P_BAD_PARAM);
}

/* The function stupid_p2p_get_stats (what a 0.3 program calls) and
 * stupid_p2p_get_stats_ex with the 0.3 size write the 0.3 fields and not
 * a byte more; the macro fills everything. */
static void test_stats_fit_older_programs(void **state)
{
    (void)state;
    static struct ct_fake f;
    script_reset(0);
    start_scripted(&f, CT_FAKE_V2);
    stupid_p2p_options_t o;
    fast_options(&o, NULL, 1);
    int32_t h = ct_open_opts(f.port, &o);
    const size_t old = offsetof(stupid_p2p_stats_t, last_cause) + sizeof(stupid_p2p_cause_t);
    union {
        stupid_p2p_stats_t st;
        uint8_t bytes[sizeof(stupid_p2p_stats_t)];
    } u;
    int32_t (*fn)(int32_t, stupid_p2p_stats_t *) = stupid_p2p_get_stats; /* the function, not the macro */
    for (int pass = 0; pass < 2; pass++) {
        memset(&u, 0xAA, sizeof u);
        ct_ok(pass == 0 ? fn(h, &u.st) : stupid_p2p_get_stats_ex(h, &u.st, old));
        assert_int_equal(u.st.protocol_version, 2);
        assert_int_equal(u.st.max_frame, P2P_DEFAULT_MAX_FRAME);
        for (size_t i = old; i < sizeof u; i++)
            if (u.bytes[i] != 0xAA)
                fail_msg("pass %d: byte %zu of %zu written", pass, i, sizeof u);
    }
    assert_int_equal(stupid_p2p_get_stats_ex(h, &u.st, old - 1), STUPID_P2P_BAD_PARAM);
    memset(&u, 0xAA, sizeof u);
    ct_ok(stupid_p2p_get_stats(h, &u.st));
    assert_int_equal(u.st.drop_in_force, 1);
    assert_int_equal(u.st.gap_events, 0);
    assert_int_equal(u.st.missed_bytes, 0);
    stupid_p2p_deinit(h);
    ct_fake_stop(&f);
}

int main(void)
{
    pthread_mutex_init(&script.mu, NULL);
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST_ARGS(test_drop_reports_exactly_what_was_missed, small_cap),
        TC_SERVER_TEST_ARGS(test_without_drop_a_slow_consumer_is_disconnected, small_cap),
        cmocka_unit_test(test_gaps_in_stream_order_and_saturating),
        cmocka_unit_test(test_malformed_gaps_are_protocol_errors),
        cmocka_unit_test(test_gap_without_drop_is_a_protocol_error),
        cmocka_unit_test(test_a_server_without_drop_is_reported),
        cmocka_unit_test(test_older_options_get_the_default_policy),
        cmocka_unit_test(test_stats_fit_older_programs),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
