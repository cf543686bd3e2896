/*
 * test_v2_presence.c - PRESENCE (stupidp2p(7), EVENTS): [0B][state][id_len]
 * [id] to v2 subscribers when an id comes online (register) and goes
 * offline (unregister, disconnect, idle timeout, registering a second id),
 * right after every v2 SUBSCRIBE (also to an offline id), offline then
 * online for a takeover, never for a repeated REGISTER, never to v1
 * subscribers, and after the last delivery from the connection that held
 * the id.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "harness.h"
#include "protocol.h"
#include "v2.h"

/* A v2 subscriber of "dev", already told it is offline. */
static int watcher(uint16_t port, const char *id)
{
    int w = tc_v2_connect(port);
    tc_v2_subscribe(w, id, P2P_PRESENCE_OFFLINE);
    return w;
}

/* A v2 connection registered as id; the watcher w has been told it is
 * online. */
static int online_device(uint16_t port, int w, const char *id)
{
    int dev = tc_v2_connect(port);
    tc_register(dev, id, P2P_STATUS_OK);
    tc_expect_presence(w, P2P_PRESENCE_ONLINE, id);
    return dev;
}

/* SUBSCRIBE to an offline id: 82 01, PRESENCE offline at once, then online
 * when it registers. SUBSCRIBE to an online id: PRESENCE online. */
static void test_presence_subscribe_reports_state(void **state)
{
    int w = tc_v2_connect(tc_port(state));
    tc_subscribe(w, "dev", P2P_STATUS_OK);
    static const uint8_t offline[] = {0x0b, 0x00, 0x03, 'd', 'e', 'v'};
    tc_expect_frame(w, offline, sizeof offline);
    tc_expect_nothing_pending(w);
    int dev = tc_connect(tc_port(state)); /* the device may be v1 */
    tc_register(dev, "dev", P2P_STATUS_OK);
    static const uint8_t online[] = {0x0b, 0x01, 0x03, 'd', 'e', 'v'};
    tc_expect_frame(w, online, sizeof online);
    int w2 = tc_v2_connect(tc_port(state));
    tc_subscribe(w2, "dev", P2P_STATUS_OK);
    tc_expect_frame(w2, online, sizeof online);
    tc_expect_nothing_pending(w2);
    tc_expect_nothing_pending(w);
    tc_close(w2);
    tc_close(w);
    tc_close(dev);
}

/* Online on REGISTER, offline on UNREGISTER, and again: the subscription
 * persists while the device comes and goes. */
static void test_presence_register_unregister(void **state)
{
    int w = watcher(tc_port(state), "dev");
    int dev = tc_v2_connect(tc_port(state));
    for (int round = 0; round < 3; round++) {
        tc_register(dev, "dev", P2P_STATUS_OK);
        tc_expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
        tc_unregister(dev);
        tc_expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    }
    tc_unregister(dev); /* holds nothing: no event */
    tc_expect_nothing_pending(w);
    tc_close(dev);
    tc_close(w);
}

/* Offline when the holder disconnects; online again from a new connection,
 * whose messages still reach the subscriber. */
static void test_presence_disconnect(void **state)
{
    int w = watcher(tc_port(state), "dev");
    int dev = online_device(tc_port(state), w, "dev");
    tc_close(dev);
    tc_expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    dev = tc_connect(tc_port(state));
    tc_register(dev, "dev", P2P_STATUS_OK);
    tc_expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    tc_send_data(dev, "back", 4, P2P_STATUS_OK);
    tc_expect_deliver_str(w, "dev", "back");
    tc_close(dev);
    tc_expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_close(w);
}

static const char *const idle_timeout_1[] = {"--idle-timeout", "1", NULL};

/* Offline when the holder is closed for idleness (--idle-timeout 1); the
 * watcher, kept busy with heartbeats, stays. */
static void test_presence_idle_timeout(void **state)
{
    int w = tc_v2_connect_cfg(tc_port(state), 0, TC_DEFAULT_MAX_FRAME, 1);
    tc_v2_subscribe(w, "dev", P2P_PRESENCE_OFFLINE);
    int dev = tc_connect(tc_port(state));
    tc_register(dev, "dev", P2P_STATUS_OK);
    tc_expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    /* The watcher sends a HEARTBEAT every 300 ms or so to stay alive, and
     * otherwise waits for the PRESENCE, which must come within 1..2 s of
     * dev's last frame (bounded: 40 rounds). */
    static const uint8_t off[] = {0x0b, 0x00, 0x03, 'd', 'e', 'v'};
    uint8_t buf[64];
    int got = 0;
    for (int round = 0; round < 40 && !got; round++) {
        tc_send_cmd(w, P2P_CMD_HEARTBEAT, NULL, 0);
        ssize_t n = tc_recv_frame(w, buf, sizeof buf, TC_WAIT_MS);
        if (n == 2 && buf[0] == 0x87 && buf[1] == 0x01)
            n = tc_recv_frame(w, buf, sizeof buf, 300); /* -1: nothing yet */
        else
            tc_expect_reply(w, P2P_CMD_HEARTBEAT, P2P_STATUS_OK);
        if (n < 0)
            continue;
        if ((size_t)n != sizeof off || memcmp(buf, off, sizeof off) != 0) {
            tc_hexdump("received", buf, (size_t)n, 0, 64);
            tc_fail("watcher: expected PRESENCE offline \"dev\"");
        }
        got = 1;
    }
    if (!got)
        tc_fail("no PRESENCE offline within 40 rounds");
    tc_expect_closed(dev, TC_WAIT_MS, 0); /* v1: closed without a word */
    tc_close(dev);
    tc_close(w);
}

/* Registering a second id releases the first: offline for the old id, then
 * online for the new one. */
static void test_presence_second_id(void **state)
{
    int w = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(w, "one", P2P_PRESENCE_OFFLINE);
    tc_v2_subscribe(w, "two", P2P_PRESENCE_OFFLINE);
    int dev = tc_v2_connect(tc_port(state));
    tc_register(dev, "one", P2P_STATUS_OK);
    tc_expect_presence(w, P2P_PRESENCE_ONLINE, "one");
    tc_register(dev, "two", P2P_STATUS_OK);
    tc_expect_presence(w, P2P_PRESENCE_OFFLINE, "one");
    tc_expect_presence(w, P2P_PRESENCE_ONLINE, "two");
    tc_check_alive(w, "one", 0);
    tc_close(dev);
    tc_expect_presence(w, P2P_PRESENCE_OFFLINE, "two");
    tc_close(w);
}

/* Registering the id the connection already holds changes nothing. */
static void test_presence_same_id_again(void **state)
{
    int w = watcher(tc_port(state), "dev");
    int dev = online_device(tc_port(state), w, "dev");
    tc_register(dev, "dev", P2P_STATUS_OK);
    tc_expect_nothing_pending(dev);
    tc_expect_nothing_pending(w);
    tc_close(dev);
    tc_close(w);
}

/* A takeover is not silent: subscribers get PRESENCE offline then online
 * (a new holder, perhaps not the device they trusted), and then receive
 * from the new holder. */
static void test_presence_takeover_visible(void **state)
{
    int w = watcher(tc_port(state), "dev");
    int first = online_device(tc_port(state), w, "dev");
    int second = tc_connect(tc_port(state));
    tc_register(second, "dev", P2P_STATUS_OK);
    tc_expect_bye(first, P2P_BYE_TAKEN_OVER);
    tc_expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    tc_expect_nothing_pending(w);
    tc_send_data(second, "new", 3, P2P_STATUS_OK);
    tc_expect_deliver_str(w, "dev", "new");
    tc_close(first);
    tc_close(second);
    tc_expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_close(w);
}

/* v1 subscribers never get PRESENCE; unsubscribed and unregistered v2
 * connections stop getting it. */
static void test_presence_only_to_v2_subscribers(void **state)
{
    int dev = tc_connect(tc_port(state));
    tc_register(dev, "dev", P2P_STATUS_OK);
    int v1 = tc_connect(tc_port(state));
    tc_subscribe(v1, "dev", P2P_STATUS_OK);
    tc_expect_nothing_pending(v1); /* no PRESENCE after 82 01 */
    int unsub = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(unsub, "dev", P2P_PRESENCE_ONLINE);
    tc_unsubscribe(unsub, "dev");
    int unreg = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(unreg, "dev", P2P_PRESENCE_ONLINE);
    tc_unregister(unreg);
    int w = tc_v2_connect(tc_port(state));
    tc_v2_subscribe(w, "dev", P2P_PRESENCE_ONLINE);
    tc_unregister(dev);
    tc_expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_register(dev, "dev", P2P_STATUS_OK);
    tc_expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    tc_expect_nothing_pending(v1);
    tc_expect_nothing_pending(unsub);
    tc_expect_nothing_pending(unreg);
    tc_close(dev);
    tc_expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_expect_nothing_pending(v1);
    tc_close(v1);
    tc_close(unsub);
    tc_close(unreg);
    tc_close(w);
}

/* PRESENCE offline follows every delivery from the connection that held
 * the id; a subscriber of two devices gets each device's events. */
static void test_presence_after_last_delivery(void **state)
{
    int w = watcher(tc_port(state), "dev");
    int dev = tc_v2_connect_flags(tc_port(state), P2P_HELLO_FLAG_QUIET);
    tc_register(dev, "dev", P2P_STATUS_OK);
    tc_expect_presence(w, P2P_PRESENCE_ONLINE, "dev");
    /* SENDs and the close in one burst; QUIET so no reply is pending. */
    static const uint8_t burst[] = {
        0, 0, 0, 2, 0x03, 'a', 0, 0, 0, 2, 0x03, 'b', 0, 0, 0, 2, 0x03, 'c',
    };
    tc_send_raw(dev, burst, sizeof burst);
    tc_close(dev);
    tc_expect_deliver_str(w, "dev", "a");
    tc_expect_deliver_str(w, "dev", "b");
    tc_expect_deliver_str(w, "dev", "c");
    tc_expect_presence(w, P2P_PRESENCE_OFFLINE, "dev");
    tc_close(w);
}

/* A connection subscribed to an id that it then registers is never told
 * about its own id: no PRESENCE online when it registers it, none offline
 * when it releases it (by a second REGISTER or by UNREGISTER). Other
 * subscribers are told both. (Regression: the offline event used to reach
 * the releasing connection itself.) */
static void test_presence_not_sent_about_own_id(void **state)
{
    int self = watcher(tc_port(state), "X");
    int other = watcher(tc_port(state), "X");
    tc_register(self, "X", P2P_STATUS_OK);
    tc_expect_nothing_pending(self);
    tc_expect_presence(other, P2P_PRESENCE_ONLINE, "X");
    tc_register(self, "Y", P2P_STATUS_OK); /* releases X */
    tc_expect_nothing_pending(self);
    tc_expect_presence(other, P2P_PRESENCE_OFFLINE, "X");
    tc_register(self, "X", P2P_STATUS_OK);
    tc_expect_presence(other, P2P_PRESENCE_ONLINE, "X");
    tc_unregister(self);
    tc_expect_nothing_pending(self);
    tc_expect_presence(other, P2P_PRESENCE_OFFLINE, "X");
    tc_expect_nothing_pending(other);
    tc_close(self);
    tc_close(other);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST(test_presence_subscribe_reports_state),
        TC_SERVER_TEST(test_presence_register_unregister),
        TC_SERVER_TEST(test_presence_disconnect),
        TC_SERVER_TEST_ARGS(test_presence_idle_timeout, idle_timeout_1),
        TC_SERVER_TEST(test_presence_second_id),
        TC_SERVER_TEST(test_presence_same_id_again),
        TC_SERVER_TEST(test_presence_takeover_visible),
        TC_SERVER_TEST(test_presence_only_to_v2_subscribers),
        TC_SERVER_TEST(test_presence_after_last_delivery),
        TC_SERVER_TEST(test_presence_not_sent_about_own_id),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
