/*
 * test_v2_gap.c - the drop policy (stupidp2p(7), HELLO flag DROP and the
 * GAP event): a v2 subscriber that asked for it is not disconnected when
 * its output passes --max-output; deliveries for it are dropped whole until
 * it has caught up, and it is then told, in GAP events placed where the
 * missing deliveries would have been, how many messages and data bytes it
 * missed from each publisher (16 named, the rest together). Replies are
 * never dropped. Without the flag, or in a v1 session, a slow consumer is
 * still cut off.
 *
 * The subscriber stops reading (a small receive buffer) while publishers
 * send far more than the kernel and --max-output 131072 can hold, then
 * reads everything back: whole DELIVERs in order, then the GAPs, whose
 * counts must make up exactly for what did not arrive.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "codec.h"
#include "harness.h"
#include "protocol.h"
#include "stress.h"
#include "v2.h"

#define MSG_SIZE 16384
#define FLOOD 600 /* 9.6 MB: beyond any socket buffers and the cap */
#define PUBLISHERS 20
#define HEARTBEATS 1000

static const char *const cap_128k[] = {"--max-output", "131072", NULL};

/* A v2 session with the drop policy and a small receive buffer. */
static int connect_dropping(uint16_t port, uint8_t version)
{
    int fd = tc_connect_buffers(port, 4096, 0);
    uint8_t hello[] = {version, P2P_HELLO_FLAG_DROP};
    tc_send_cmd(fd, P2P_CMD_HELLO, hello, sizeof hello);
    uint8_t want[11] = {0x88, 0x01, version};
    tc_put_u32(want + 3, TC_DEFAULT_MAX_FRAME);
    tc_put_u32(want + 7, TC_DEFAULT_IDLE);
    tc_expect_frame(fd, want, sizeof want);
    return fd;
}

static void fill_message(uint8_t *msg, int publisher, int seq)
{
    memset(msg, 'a' + publisher, MSG_SIZE);
    tc_put_u32(msg, (uint32_t)seq);
}

/* Reads the next frame of fd into a parsed message (buf must hold it). */
static void next_message(int fd, uint8_t *buf, size_t cap, struct p2p_message *m)
{
    ssize_t n = tc_recv_frame(fd, buf, cap, TC_WAIT_MS);
    if (n <= 0)
        tc_fail("subscriber: connection ended or silent");
    if (p2p_message_parse(buf, (size_t)n, m) != P2P_PARSE_OK)
        tc_fail("subscriber: malformed frame %02x of %zd bytes", buf[0], n);
}

/* What a subscriber has been told: deliveries and GAPs, per publisher. A
 * delivery may follow a hole (the drops of one episode) only if the GAPs
 * just before it reported that many messages of its publisher: every
 * DELIVER before a GAP was queued before the first drop it reports, every
 * DELIVER after it after the last. */
struct account {
    int next[PUBLISHERS]; /* the next message expected from publisher i */
    int owed[PUBLISHERS]; /* reported missing and not yet skipped over */
    long others;          /* reported missing, publishers not named */
    long dropped;         /* everything GAPs reported */
    int episodes;         /* groups of GAP events */
    int named_in_last;    /* publishers named by the last group */
    int others_in_last;   /* whether it had the others' aggregate */
    int in_group;         /* the previous frame was a GAP */
};

/* Reads frames until the replies to `heartbeats` heartbeats have been seen
 * and every one of sent[i] messages of the n publishers (ids "p0", "p1",
 * ...) is accounted for, delivered or reported missing. */
static void read_account(int fd, int n, const int *sent, int heartbeats, struct account *a)
{
    memset(a, 0, sizeof *a);
    size_t cap = MSG_SIZE + 300;
    uint8_t *buf = tc_xmalloc(cap);
    uint8_t *want = tc_xmalloc(MSG_SIZE);
    int replies = 0;
    for (;;) {
        long missing = 0;
        for (int i = 0; i < n; i++)
            missing += sent[i] - a->next[i] - a->owed[i];
        if (replies == heartbeats && missing == a->others)
            break;
        struct p2p_message m;
        next_message(fd, buf, cap, &m);
        int gap = m.kind == P2P_MSG_GAP;
        if (gap && !a->in_group) {
            a->episodes++;
            a->named_in_last = a->others_in_last = 0;
        }
        a->in_group = gap;
        if (m.kind == P2P_MSG_REPLY && m.cmd == P2P_CMD_HEARTBEAT) {
            if (++replies > heartbeats)
                tc_fail("more heartbeat replies than heartbeats");
            continue;
        }
        int i = m.id_len >= 2 && m.id[0] == 'p' ? atoi((const char *)m.id + 1) : -1;
        if (gap) {
            if (m.gap_bytes != (uint64_t)m.gap_frames * MSG_SIZE)
                tc_fail("GAP of %u frames reports %llu bytes", m.gap_frames,
                        (unsigned long long)m.gap_bytes);
            a->dropped += m.gap_frames;
            if (m.id_len == 0) {
                a->others += m.gap_frames;
                a->others_in_last = 1;
            } else if (i >= 0 && i < n) {
                a->owed[i] += (int)m.gap_frames;
                a->named_in_last++;
            } else {
                tc_fail("GAP for an unknown publisher");
            }
            continue;
        }
        if (m.kind != P2P_MSG_DELIVER || i < 0 || i >= n)
            tc_fail("unexpected frame %02x", buf[0]);
        int seq = (int)p2p_get_be32(m.data);
        fill_message(want, i, seq);
        if (m.data_len != MSG_SIZE || memcmp(m.data, want, MSG_SIZE) != 0)
            tc_fail("DELIVER of message %d of p%d is not whole", seq, i);
        /* The named drops are exactly the hole, unless some were reported
         * among the others. */
        int expected = a->next[i] + a->owed[i];
        if (seq < expected || (seq > expected && a->others == 0))
            tc_fail("p%d: message %d after %d, with %d reported missing", i, seq, a->next[i] - 1,
                    a->owed[i]);
        a->next[i] = seq + 1;
        a->owed[i] = 0;
    }
    free(want);
    free(buf);
}

/* One publisher floods; the subscriber, still not reading, sends a
 * thousand heartbeats. It gets deliveries whole and in order, every reply
 * (replies are never dropped, and deliveries leave room for them), and
 * GAPs accounting exactly for what did not arrive; then deliveries resume. */
static void test_gap_after_drops(void **state)
{
    uint16_t port = tc_port(state);
    int sub = connect_dropping(port, 2);
    tc_v2_subscribe(sub, "p0", P2P_PRESENCE_OFFLINE);
    int pub = tc_v2_connect(port);
    tc_register(pub, "p0", P2P_STATUS_OK);
    tc_expect_presence(sub, P2P_PRESENCE_ONLINE, "p0");

    uint8_t *msg = tc_xmalloc(MSG_SIZE);
    for (int seq = 0; seq < FLOOD; seq++) {
        fill_message(msg, 0, seq);
        tc_send_data(pub, msg, MSG_SIZE, P2P_STATUS_OK);
    }
    static const uint8_t hb[] = {0, 0, 0, 1, P2P_CMD_HEARTBEAT};
    for (int i = 0; i < HEARTBEATS; i++)
        tc_send_raw(sub, hb, sizeof hb);
    int sent[1] = {FLOOD};
    struct account a;
    read_account(sub, 1, sent, HEARTBEATS, &a);
    fprintf(stderr, "%d messages of %d bytes: %ld reported missing in %d GAP episode(s)\n", FLOOD,
            MSG_SIZE, a.dropped, a.episodes);
    if (a.dropped == 0)
        tc_fail("nothing was dropped");
    assert_int_equal(a.others, 0);

    /* Caught up: deliveries resume. */
    fill_message(msg, 0, FLOOD);
    tc_send_data(pub, msg, MSG_SIZE, P2P_STATUS_OK);
    tc_expect_deliver(sub, "p0", 2, msg, MSG_SIZE);
    tc_expect_nothing_pending(sub);
    free(msg);
    tc_close(pub);
    tc_close(sub);
}

/* Twenty publishers dropping in one episode: its GAPs name 16 of them, in
 * the order their drops began, and report the rest together (id_len 0). */
static void test_gap_names_sixteen_publishers(void **state)
{
    uint16_t port = tc_port(state);
    int sub = connect_dropping(port, 2);
    int pubs[PUBLISHERS], sent[PUBLISHERS] = {0};
    char id[8];
    for (int i = 0; i < PUBLISHERS; i++) {
        snprintf(id, sizeof id, "p%d", i);
        pubs[i] = tc_v2_connect(port);
        tc_register(pubs[i], id, P2P_STATUS_OK);
        tc_v2_subscribe(sub, id, P2P_PRESENCE_ONLINE);
    }
    uint8_t *msg = tc_xmalloc(MSG_SIZE);
    /* p0 fills every buffer on the way; then all the others, in turns. */
    for (; sent[0] < FLOOD; sent[0]++) {
        fill_message(msg, 0, sent[0]);
        tc_send_data(pubs[0], msg, MSG_SIZE, P2P_STATUS_OK);
    }
    for (int round = 0; round < 5; round++) {
        for (int i = 1; i < PUBLISHERS; i++) {
            fill_message(msg, i, sent[i]++);
            tc_send_data(pubs[i], msg, MSG_SIZE, P2P_STATUS_OK);
        }
    }
    static const uint8_t hb[] = {0, 0, 0, 1, P2P_CMD_HEARTBEAT};
    tc_send_raw(sub, hb, sizeof hb);
    struct account a;
    read_account(sub, PUBLISHERS, sent, 1, &a);
    fprintf(stderr, "%d publishers: %ld reported missing in %d episode(s), the last naming %d%s\n",
            PUBLISHERS, a.dropped, a.episodes, a.named_in_last,
            a.others_in_last ? " and the others" : "");
    if (a.named_in_last != (int)P2P_GAP_NAMED_MAX || !a.others_in_last)
        tc_fail("the last episode named %d publishers, %s the others' aggregate", a.named_in_last,
                a.others_in_last ? "with" : "without");
    tc_expect_nothing_pending(sub);
    free(msg);
    for (int i = 0; i < PUBLISHERS; i++)
        tc_close(pubs[i]);
    tc_close(sub);
}

/* DROP has an effect in v2 sessions only: a v1 session that set it is cut
 * off as before. */
static void test_drop_flag_ignored_in_v1(void **state)
{
    uint16_t port = tc_port(state);
    int sub = connect_dropping(port, 1);
    int pub = tc_v2_connect(port);
    tc_register(pub, "pub", P2P_STATUS_OK);
    tc_subscribe(sub, "pub", P2P_STATUS_OK);
    int watch = tc_v2_connect(port);
    tc_register(sub, "sub", P2P_STATUS_OK);
    tc_v2_subscribe(watch, "sub", P2P_PRESENCE_ONLINE);
    uint8_t *msg = tc_xmalloc(MSG_SIZE);
    for (int seq = 0; seq < FLOOD; seq++) {
        fill_message(msg, 0, seq);
        tc_send_data(pub, msg, MSG_SIZE, P2P_STATUS_OK);
    }
    tc_expect_presence(watch, P2P_PRESENCE_OFFLINE, "sub"); /* cut off */
    free(msg);
    tc_close(watch);
    tc_close(pub);
    tc_close(sub);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST_ARGS(test_gap_after_drops, cap_128k),
        TC_SERVER_TEST_ARGS(test_gap_names_sixteen_publishers, cap_128k),
        TC_SERVER_TEST_ARGS(test_drop_flag_ignored_in_v1, cap_128k),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
