/*
 * test_v2_floods.c - what one client can make the server send to others
 * is bounded (issue 10, finding 4; stupidp2p(7), PRESENCE; p2pServer(8),
 * LIMITS):
 *
 *  - An id toggled by REGISTER/UNREGISTER 1,000 times (12 KB in) made the
 *    server send 2,001 PRESENCE frames to each of its subscribers (4 MB to
 *    200 of them). Presence changes are now damped per id: a few a second,
 *    the rest coalesced, and every subscriber ends with the final state.
 *  - Two connections fighting over one id by registering it in turn: after
 *    10 takeovers in 10 seconds the next REGISTER of it is refused (81 07,
 *    81 00 in v1), the holder keeps it, and the fight is logged once.
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
#include "v2.h"

#define SUBSCRIBERS 200
#define TOGGLES 1000
/* The presence frames a subscriber may see for the flood: a few a second,
 * for a flood that takes well under a second (2,001 without damping). */
#define MAX_PRESENCE 40
/* Takeovers of one id allowed in 10 s (p2pServer(8), LIMITS). */
#define TAKEOVERS 10

/* Reads frames up to the reply to a HEARTBEAT sent now; every other frame
 * must be a PRESENCE of "flap", whose states are appended to seen. Returns
 * the state of the last one, or -1 if there was none. */
static int presence_until_heartbeat(int fd, char *seen, size_t cap)
{
    static const uint8_t hb[] = {P2P_CMD_HEARTBEAT};
    tc_send_frame(fd, hb, 1);
    int last = -1;
    for (;;) {
        uint8_t buf[64];
        ssize_t n = tc_recv_frame(fd, buf, sizeof buf, TC_WAIT_MS);
        if (n == 2 && buf[0] == 0x87 && buf[1] == 0x01)
            return last;
        if (n != 7 || memcmp(buf, "\x0b", 1) != 0 || memcmp(buf + 2, "\x04" "flap", 5) != 0)
            tc_fail("expected PRESENCE of \"flap\" or 87 01, got %zd bytes", n);
        last = buf[1];
        size_t len = strlen(seen);
        if (len + 1 < cap) {
            seen[len] = (char)('0' + last);
            seen[len + 1] = '\0';
        }
    }
}

static void test_flapping_id_is_damped(void **state)
{
    uint16_t port = tc_port(state);
    int *subs = tc_xmalloc(SUBSCRIBERS * sizeof(int));
    for (int i = 0; i < SUBSCRIBERS; i++) {
        subs[i] = tc_v2_connect(port);
        tc_v2_subscribe(subs[i], "flap", P2P_PRESENCE_OFFLINE);
    }
    /* 1,000 times REGISTER "flap" and UNREGISTER, then REGISTER: sent at
     * once, as a flooding client would. */
    static const uint8_t reg[] = {0, 0, 0, 5, P2P_CMD_REGISTER, 'f', 'l', 'a', 'p'};
    static const uint8_t unreg[] = {0, 0, 0, 1, P2P_CMD_UNREGISTER};
    size_t pair = sizeof reg + sizeof unreg;
    uint8_t *flood = tc_xmalloc(TOGGLES * pair + sizeof reg);
    for (int i = 0; i < TOGGLES; i++) {
        memcpy(flood + i * pair, reg, sizeof reg);
        memcpy(flood + i * pair + sizeof reg, unreg, sizeof unreg);
    }
    memcpy(flood + TOGGLES * pair, reg, sizeof reg);
    int f = tc_connect(port);
    tc_send_raw(f, flood, TOGGLES * pair + sizeof reg);
    for (int i = 0; i < TOGGLES; i++) {
        tc_expect_reply(f, P2P_CMD_REGISTER, P2P_STATUS_OK);
        tc_expect_reply(f, P2P_CMD_UNREGISTER, P2P_STATUS_OK);
    }
    tc_expect_reply(f, P2P_CMD_REGISTER, P2P_STATUS_OK);

    /* Every subscriber ends with "online", told in few frames. */
    size_t most = 0, total = 0;
    for (int i = 0; i < SUBSCRIBERS; i++) {
        char seen[MAX_PRESENCE * 4 + 8] = "";
        int last = presence_until_heartbeat(subs[i], seen, sizeof seen);
        if (last != P2P_PRESENCE_ONLINE) {
            /* Held back: the final state comes when the id's window ends. */
            tc_expect_presence(subs[i], P2P_PRESENCE_ONLINE, "flap");
            strcat(seen, "1");
            if (presence_until_heartbeat(subs[i], seen, sizeof seen) != -1)
                tc_fail("subscriber %d: PRESENCE after the final state: %s", i, seen);
        }
        size_t count = strlen(seen);
        if (count > MAX_PRESENCE)
            tc_fail("subscriber %d received %zu PRESENCE frames (%s...)", i, count, seen);
        if (i == 0)
            fprintf(stderr, "%d toggles: subscriber 0 saw states %s\n", TOGGLES, seen);
        most = count > most ? count : most;
        total += count;
    }
    fprintf(stderr,
            "%d toggles (%zu bytes in): %zu PRESENCE frames to %d subscribers (%zu bytes), at most "
            "%zu each\n",
            TOGGLES, TOGGLES * pair + sizeof reg, total, SUBSCRIBERS, total * 11, most);
    tc_check_alive(f, "flap", P2P_STATUS_OK);
    free(flood);
    for (int i = 0; i < SUBSCRIBERS; i++)
        tc_close(subs[i]);
    free(subs);
    tc_close(f);
}

/* Lines of the server's log containing text. */
static int log_lines_with(void **state, const char *text)
{
    FILE *fp = fopen(((struct p2p_server *)*state)->log_path, "r");
    if (fp == NULL)
        tc_fail("cannot read the server log");
    char line[1024];
    int count = 0;
    while (fgets(line, sizeof line, fp) != NULL)
        count += strstr(line, text) != NULL;
    fclose(fp);
    return count;
}

static void test_takeover_fight_refused(void **state)
{
    uint16_t port = tc_port(state);
    int watch = tc_v2_connect(port);
    tc_v2_subscribe(watch, "x", P2P_PRESENCE_OFFLINE);
    int holder = tc_v2_connect(port);
    tc_register(holder, "x", P2P_STATUS_OK);
    tc_expect_presence(watch, P2P_PRESENCE_ONLINE, "x");
    /* Ten takeovers, each by a new connection (a fighting client that is
     * taken over reconnects): allowed. */
    for (int i = 0; i < TAKEOVERS; i++) {
        int next = tc_v2_connect(port);
        tc_register(next, "x", P2P_STATUS_OK);
        tc_expect_bye(holder, P2P_BYE_TAKEN_OVER);
        tc_expect_presence(watch, P2P_PRESENCE_OFFLINE, "x"); /* a takeover is told */
        tc_expect_presence(watch, P2P_PRESENCE_ONLINE, "x");
        tc_close(holder);
        holder = next;
    }
    /* The next ones: refused, in either version. */
    int v2 = tc_v2_connect(port);
    tc_register(v2, "mine", P2P_STATUS_OK);
    tc_register(v2, "x", P2P_STATUS_LIMIT);
    tc_check_alive(v2, "mine", P2P_STATUS_OK); /* it kept its own id */
    int v1 = tc_connect(port);
    for (int i = 0; i < 3; i++)
        tc_register(v1, "x", P2P_STATUS_FAILURE);
    /* The holder keeps the id and its connection; refusals tell nobody. */
    tc_expect_nothing_pending(holder);
    tc_check_alive(watch, "x", P2P_STATUS_OK);
    tc_expect_nothing_pending(watch);
    int lines = log_lines_with(state, "takeover fight over \"x\"");
    if (lines != 1)
        tc_fail("the fight was logged %d times, not once", lines);
    tc_close(v1);
    tc_close(v2);
    tc_close(holder);
    tc_close(watch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_flapping_id_is_damped),
        TC_SERVER_TEST(test_takeover_fight_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
