/*
 * test_p2pclient_gap.c - p2pClient --drop (p2pClient(1)): a terminal that
 * does not keep up no longer costs the connection; each GAP is one line
 * "missed N messages (B bytes) from ID" on standard output, where the
 * missing messages would have been, the id escaped as messages are.
 *
 * p2pClient ($P2P_CLIENT) runs with its standard output on a pipe that the
 * test stops reading: once the pipe is full, p2pClient's message callback
 * blocks in its write, the library stops reading the socket, and the
 * server (--max-output 131072, $P2P_SERVER) starts dropping, which its log
 * says. The publisher, a library handle holding the id "pub" + ESC, sends
 * a few more numbered 16 KiB messages; then the test reads everything:
 * every message up to the drop point in order, a line whose count is
 * exactly what did not arrive, then the later messages in order.
 *
 * Against a server that does not know the policy (here an original one,
 * played by the fake of client_util.h), --drop is said to be not in force.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth.h" /* tc_log_count */
#include "client_util.h"
#include "p2pclient_child.h"

#define MSG_SIZE 16384
#define FLOOD_MAX 4000
#define EXTRA 20
#define LATER 10

static const char *const small_cap[] = {"--max-output", "131072", NULL};

static const char pub_id[] = "pub\x1b";          /* ESC: printed escaped */
static const char pub_printed[] = "pub\\x1b";

/* Message seq: its number in six digits, a space, then a letter. */
static void fill_message(char *msg, uint32_t seq)
{
    memset(msg, 'a' + (int)(seq % 26), MSG_SIZE);
    char digits[8];
    snprintf(digits, sizeof digits, "%06u ", seq);
    memcpy(msg, digits, 7);
}

static void publish(int32_t pub, uint32_t seq)
{
    static char msg[MSG_SIZE];
    fill_message(msg, seq);
    ct_ok(stupid_p2p_send(pub, msg, MSG_SIZE));
}

/* The lines p2pClient printed, read from its standard output. */
struct reader {
    char *buf;
    size_t len, cap;
    uint32_t next;        /* the next message number expected          */
    uint32_t messages;    /* "recv data" lines                          */
    uint32_t missed;      /* messages that "missed" lines reported       */
    int gaps;             /* "missed" lines                             */
    uint32_t after_last_gap; /* messages since the last "missed" line   */
};

/* Checks one line: a message numbered next (whole), or a "missed" line,
 * which moves next past the hole it reports. */
static void check_line(struct reader *r, const char *line, size_t len)
{
    static char want[MSG_SIZE];
    static const char recv[] = "recv data: ";
    if (len == sizeof recv - 1 + MSG_SIZE && memcmp(line, recv, sizeof recv - 1) == 0) {
        fill_message(want, r->next);
        if (memcmp(line + sizeof recv - 1, want, MSG_SIZE) != 0)
            fail_msg("message %u expected; got \"%.20s...\"", r->next, line + sizeof recv - 1);
        r->next++;
        r->messages++;
        r->after_last_gap++;
        return;
    }
    unsigned frames = 0;
    unsigned long long bytes = 0;
    int at = -1;
    char text[256];
    snprintf(text, sizeof text, "%.*s", (int)(len < 255 ? len : 255), line);
    if (sscanf(text, "missed %u message%*[s] (%llu bytes) from %n", &frames, &bytes, &at) != 2 || at < 0 ||
        strcmp(text + at, pub_printed) != 0 || frames == 0 || bytes != (unsigned long long)frames * MSG_SIZE ||
        strstr(text, frames == 1 ? "1 message (" : " messages (") == NULL)
        fail_msg("unexpected line \"%s\"", text);
    fprintf(stderr, "  after message %u: %s\n", r->next - 1, text);
    r->next += frames;
    r->missed += frames;
    r->gaps++;
    r->after_last_gap = 0;
}

/* Reads p2pClient's standard output until messages up to total are
 * accounted for (bounded). */
static void read_until(struct reader *r, int fd, uint32_t total)
{
    int64_t until = ct_now_ms() + 3 * CT_WAIT_MS;
    while (r->next < total) {
        if (r->cap - r->len < 65536) {
            r->cap = r->cap ? 2 * r->cap : 1u << 20;
            r->buf = realloc(r->buf, r->cap);
            assert_non_null(r->buf);
        }
        struct pollfd p = {.fd = fd, .events = POLLIN, .revents = 0};
        int left = (int)(until - ct_now_ms());
        if (left <= 0 || poll(&p, 1, left) != 1)
            fail_msg("%u of %u messages accounted for", r->next, total);
        ssize_t n = read(fd, r->buf + r->len, r->cap - r->len);
        if (n <= 0)
            fail_msg("p2pClient's standard output ended after %u of %u messages", r->next, total);
        r->len += (size_t)n;
        size_t start = 0;
        char *nl;
        while ((nl = memchr(r->buf + start, '\n', r->len - start)) != NULL) {
            check_line(r, r->buf + start, (size_t)(nl - (r->buf + start)));
            start = (size_t)(nl - r->buf) + 1;
        }
        memmove(r->buf, r->buf + start, r->len - start);
        r->len -= start;
    }
}

static void test_drop_prints_each_gap_in_place(void **state)
{
    struct p2p_server *srv = *state;
    int32_t pub = ct_open(srv->port, NULL, 0);
    ct_ok(stupid_p2p_register(pub, pub_id, strlen(pub_id)));
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)srv->port);
    const char *argv[] = {"p2pClient", "-s", "127.0.0.1", "-p", port, "-m", "sub", "-o", pub_id, "--drop", NULL};
    static struct child c;
    spawn_client(&c, argv, 1);
    wait_err(&c, "input and receive", CT_WAIT_MS);

    /* Nobody reads p2pClient's output: it stops reading too. */
    uint32_t sent = 0;
    while (tc_log_count(srv, "dropping deliveries until it catches up") == 0) {
        if (sent >= FLOOD_MAX)
            fail_msg("%u messages sent; the server never dropped any", sent);
        for (uint32_t end = sent + 16; sent < end; sent++)
            publish(pub, sent);
    }
    for (uint32_t end = sent + EXTRA; sent < end; sent++)
        publish(pub, sent);
    static struct reader r;
    memset(&r, 0, sizeof r);
    read_until(&r, c.out, sent);
    for (uint32_t end = sent + LATER; sent < end; sent++)
        publish(pub, sent);
    read_until(&r, c.out, sent);
    fprintf(stderr, "  %u messages sent: %u printed, %u reported missing in %d line(s)\n", sent, r.messages,
            r.missed, r.gaps);
    assert_int_equal(r.next, sent);
    assert_true(r.gaps >= 1);
    assert_true(r.missed >= EXTRA);
    assert_true(r.after_last_gap >= LATER);
    free(r.buf);

    static char err[65536];
    quit_and_read_err(&c, err, sizeof err);
    close(c.out);
    assert_null(strstr(err, "connection lost"));
    assert_null(strstr(err, "does not support --drop"));
    stupid_p2p_deinit(pub);
}

static void test_drop_not_in_force_is_said(void **state)
{
    (void)state;
    static struct ct_fake f;
    ct_fake_start(&f, CT_FAKE_ORIGINAL, -1);
    char port[8];
    snprintf(port, sizeof port, "%u", (unsigned)f.port);
    const char *argv[] = {"p2pClient", "-s", "127.0.0.1", "-p", port, "-m", "sub", "-o", "pub", "--drop", NULL};
    static struct child c;
    spawn_client(&c, argv, 0);
    wait_err(&c, "input and receive", CT_WAIT_MS);
    static char err[65536];
    quit_and_read_err(&c, err, sizeof err);
    ct_fake_stop(&f);
    fprintf(stderr, "---- p2pClient's stderr ----\n%s----\n", err);
    assert_non_null(
        strstr(err, "p2pClient: this server does not support --drop: if this client falls behind, it is disconnected\n"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        TC_SERVER_TEST_ARGS(test_drop_prints_each_gap_in_place, small_cap),
        cmocka_unit_test(test_drop_not_in_force_is_said),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
