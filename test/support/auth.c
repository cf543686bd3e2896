/*
 * auth.c - see auth.h.
 *
 * The verifier line is computed here from the specification's formulas
 * (through auth_proof.h) and written in base64url by a small encoder of
 * our own, rather than asked of p2pServer --hash-token: the tests of the
 * server then compare two independent paths to the same line.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include "auth.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "auth_proof.h"
#include "child.h"
#include "protocol.h"

static int64_t auth_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void auth_nap_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
    }
}

/* ---- auth files ------------------------------------------------------------ */

static void b64url(const uint8_t *p, size_t n, char *out)
{
    static const char abc[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = acc << 8 | p[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = abc[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = abc[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

void tc_auth_line(char *out, size_t cap, const char *id, const char *token, const char *peers)
{
    struct p2p_auth_keys keys;
    p2p_auth_keys_from_token(token, strlen(token), &keys);
    char stored[64], server[64];
    b64url(keys.stored_key, 32, stored);
    b64url(keys.server_key, 32, server);
    size_t used = strlen(out);
    int n = snprintf(out + used, cap - used, "%s p2p-scram-sha256$%s$%s%s%s\n", id, stored, server,
                     peers != NULL ? " " : "", peers != NULL ? peers : "");
    if (n < 0 || (size_t)n >= cap - used)
        tc_fail("tc_auth_line: %zu bytes are not enough", cap);
}

void tc_auth_dir(char *out, size_t cap)
{
    const char *build = getenv("P2P_BUILD");
    if (build != NULL && build[0] != '\0') {
        char parent[400];
        snprintf(parent, sizeof parent, "%s/test-logs", build);
        mkdir(parent, 0777);
        snprintf(parent, sizeof parent, "%s/test-logs/auth", build);
        if (mkdir(parent, 0700) == 0 || errno == EEXIST) {
            snprintf(out, cap, "%s/XXXXXX", parent);
            if (mkdtemp(out) != NULL)
                return;
        }
    }
    snprintf(out, cap, "/tmp/p2p-auth-test-XXXXXX");
    if (mkdtemp(out) == NULL)
        tc_fail("mkdtemp %s: %s", out, strerror(errno));
}

void tc_write_file(const char *path, const char *text, mode_t mode)
{
    char tmp[600];
    snprintf(tmp, sizeof tmp, "%s.new", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd == -1)
        tc_fail("open %s: %s", tmp, strerror(errno));
    if (fchmod(fd, mode) == -1)
        tc_fail("fchmod %s: %s", tmp, strerror(errno));
    size_t len = strlen(text), off = 0;
    while (off < len) {
        ssize_t w = write(fd, text + off, len - off);
        if (w == -1 && errno == EINTR)
            continue;
        if (w <= 0)
            tc_fail("write %s: %s", tmp, strerror(errno));
        off += (size_t)w;
    }
    if (close(fd) == -1 || rename(tmp, path) == -1)
        tc_fail("writing %s: %s", path, strerror(errno));
}

void tc_auth_server_start(struct tc_auth_server *a, const char *text, const char *const *extra_args)
{
    tc_auth_dir(a->dir, sizeof a->dir);
    snprintf(a->path, sizeof a->path, "%s/auth", a->dir);
    tc_write_file(a->path, text, 0600);
    const char *args[12] = {"--auth-file", a->path};
    size_t n = 2;
    for (size_t i = 0; extra_args != NULL && extra_args[i] != NULL; i++) {
        if (n == 10)
            tc_fail("tc_auth_server_start: too many arguments");
        args[n++] = extra_args[i];
    }
    args[n] = NULL;
    tc_start_server(&a->srv, args);
}

void tc_auth_server_stop(struct tc_auth_server *a)
{
    tc_stop_server(&a->srv);
    unlink(a->path);
    rmdir(a->dir);
}

/* ---- the client's side of AUTH ---------------------------------------------- */

/* Reads one frame into buf; fails the test on EOF or timeout. */
static size_t recv_reply(int fd, uint8_t *buf, size_t cap)
{
    ssize_t n = tc_recv_frame(fd, buf, cap, TC_WAIT_MS);
    if (n < 2)
        tc_fail("fd %d: no AUTH reply (got %zd)", fd, n);
    if (buf[0] != (P2P_CMD_AUTH | P2P_REPLY_BIT)) {
        tc_hexdump("received", buf, (size_t)n, 0, 64);
        tc_fail("fd %d: expected an AUTH reply", fd);
    }
    return (size_t)n;
}

int tc_auth_bytes(int fd, const void *id, size_t id_len, const char *token, struct tc_auth_exchange *ex)
{
    struct tc_auth_exchange local;
    if (ex == NULL)
        ex = &local;
    memset(ex, 0, sizeof *ex);
    uint8_t client_nonce[P2P_AUTH_NONCE_SIZE];
    if (getrandom(client_nonce, sizeof client_nonce, 0) != (ssize_t)sizeof client_nonce)
        tc_fail("getrandom: %s", strerror(errno));
    ex->start_len = p2p_encode_auth_start(ex->start, id, id_len, client_nonce);
    tc_send_frame(fd, ex->start, ex->start_len);
    uint8_t buf[64];
    ex->challenge_len = recv_reply(fd, buf, sizeof buf);
    memcpy(ex->challenge, buf, ex->challenge_len < sizeof ex->challenge ? ex->challenge_len : sizeof ex->challenge);
    struct p2p_message m;
    if (p2p_message_parse(buf, ex->challenge_len, &m) != P2P_PARSE_OK)
        tc_fail("fd %d: malformed AUTH challenge", fd);
    if (m.status != P2P_STATUS_OK)
        return m.status;
    if (m.step != P2P_AUTH_STEP_START)
        tc_fail("fd %d: challenge for step %u", fd, m.step);

    struct p2p_auth_keys keys;
    p2p_auth_keys_from_token(token, strlen(token), &keys);
    uint8_t msg[P2P_AUTH_MESSAGE_MAX], proof[P2P_AUTH_PROOF_SIZE];
    size_t msg_len = p2p_auth_message(msg, id, id_len, client_nonce, m.data);
    p2p_auth_client_proof(keys.client_key, keys.stored_key, msg, msg_len, proof);
    p2p_encode_auth_proof(ex->proof, proof);
    tc_send_frame(fd, ex->proof, sizeof ex->proof);

    ex->result_len = recv_reply(fd, buf, sizeof buf);
    memcpy(ex->result, buf, ex->result_len < sizeof ex->result ? ex->result_len : sizeof ex->result);
    if (p2p_message_parse(buf, ex->result_len, &m) != P2P_PARSE_OK)
        tc_fail("fd %d: malformed AUTH result", fd);
    if (m.status == P2P_STATUS_OK) {
        if (m.step != P2P_AUTH_STEP_PROOF)
            tc_fail("fd %d: AUTH success for step %u", fd, m.step);
        if (!p2p_auth_server_signature_valid(keys.server_key, msg, msg_len, m.data))
            tc_fail("fd %d: the server's signature is wrong", fd);
    } else if (ex->result_len != 2) {
        tc_fail("fd %d: an AUTH failure is 2 bytes, got %zu", fd, ex->result_len);
    }
    return m.status;
}

int tc_auth(int fd, const char *id, const char *token, struct tc_auth_exchange *ex)
{
    return tc_auth_bytes(fd, id, strlen(id), token, ex);
}

void tc_expect_auth(int fd, const char *id, const char *token, uint8_t status)
{
    int got = tc_auth(fd, id, token, NULL);
    if (got != status)
        tc_fail("fd %d: AUTH as \"%s\": status %d, expected %u", fd, id, got, status);
}

int tc_auth_connect(uint16_t port, const char *id, const char *token)
{
    int fd = tc_connect(port);
    uint8_t hello[] = {2, 0};
    tc_send_cmd(fd, P2P_CMD_HELLO, hello, sizeof hello);
    uint8_t buf[64];
    ssize_t n = tc_recv_frame(fd, buf, sizeof buf, TC_WAIT_MS);
    if (n != P2P_HELLO_REPLY_SIZE || buf[0] != 0x88 || buf[1] != 1 || buf[2] != 2)
        tc_fail("fd %d: no v2 HELLO reply", fd);
    tc_expect_auth(fd, id, token, P2P_STATUS_OK);
    return fd;
}

/* ---- the server's log --------------------------------------------------------- */

int tc_log_count(const struct p2p_server *server, const char *needle)
{
    FILE *f = fopen(server->log_path, "r");
    if (f == NULL)
        tc_fail("open %s: %s", server->log_path, strerror(errno));
    int count = 0;
    char line[4096];
    while (fgets(line, sizeof line, f) != NULL)
        if (strstr(line, needle) != NULL)
            count++;
    fclose(f);
    return count;
}

void tc_wait_log(const struct p2p_server *server, const char *needle, int n)
{
    int64_t deadline = auth_now_ms() + TC_WAIT_MS;
    while (tc_log_count(server, needle) < n) {
        if (auth_now_ms() > deadline)
            tc_fail("server log: \"%s\" not seen %d times within %d ms", needle, n, TC_WAIT_MS);
        auth_nap_ms(10);
    }
}

/* The last line of each reload (server_reload.cpp). */
#define RELOAD_OK "subscriptions cancelled"
#define RELOAD_KEPT "keeping the auth file in force"

void tc_reload(const struct p2p_server *server, int expect_ok)
{
    int ok = tc_log_count(server, RELOAD_OK), kept = tc_log_count(server, RELOAD_KEPT);
    if (kill(server->pid, SIGHUP) == -1)
        tc_fail("kill SIGHUP: %s", strerror(errno));
    int64_t deadline = auth_now_ms() + TC_WAIT_MS;
    for (;;) {
        int ok_now = tc_log_count(server, RELOAD_OK), kept_now = tc_log_count(server, RELOAD_KEPT);
        if (ok_now > ok || kept_now > kept) {
            if ((ok_now > ok) != (expect_ok != 0))
                tc_fail("reload %s, expected it to %s", ok_now > ok ? "succeeded" : "failed",
                        expect_ok ? "succeed" : "fail");
            return;
        }
        if (auth_now_ms() > deadline)
            tc_fail("no reload seen in the server log within %d ms", TC_WAIT_MS);
        auth_nap_ms(10);
    }
}

/* ---- running a tool ------------------------------------------------------------- */

int tc_run_with_input(const char *const *argv, const void *input, size_t len, char *out, size_t out_cap,
                      char *err, size_t err_cap, int timeout_ms)
{
    int in[2], o[2], e[2];
    if (pipe2(in, O_CLOEXEC) == -1 || pipe2(o, O_CLOEXEC) == -1 || pipe2(e, O_CLOEXEC) == -1)
        tc_fail("pipe2: %s", strerror(errno));
    pid_t pid = tc_fork_tied();
    if (pid == -1)
        tc_fail("fork: %s", strerror(errno));
    if (pid == 0) {
        if (dup2(in[0], STDIN_FILENO) == -1 || dup2(o[1], STDOUT_FILENO) == -1 ||
            dup2(e[1], STDERR_FILENO) == -1)
            _exit(126);
        signal(SIGPIPE, SIG_DFL);
        execvp(argv[0], (char *const *)argv);
        _exit(127);
    }
    close(in[0]);
    close(o[1]);
    close(e[1]);
    /* Our end of the input must not raise SIGPIPE if the tool stops reading. */
    struct sigaction ign = {.sa_handler = SIG_IGN}, old;
    sigaction(SIGPIPE, &ign, &old);

    size_t sent = 0, got_out = 0, got_err = 0;
    int fds_open = 2, timed_out = 0;
    int wfd = in[1];
    if (len == 0) {
        close(wfd);
        wfd = -1;
    }
    int64_t deadline = auth_now_ms() + timeout_ms;
    while (fds_open > 0) {
        int64_t left = deadline - auth_now_ms();
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        struct pollfd p[3] = {{o[0], POLLIN, 0}, {e[0], POLLIN, 0}, {wfd, POLLOUT, 0}};
        if (poll(p, 3, (int)left) == -1) {
            if (errno == EINTR)
                continue;
            tc_fail("poll: %s", strerror(errno));
        }
        if (wfd != -1 && (p[2].revents & (POLLOUT | POLLERR | POLLHUP))) {
            ssize_t w = write(wfd, (const char *)input + sent, len - sent);
            if (w > 0)
                sent += (size_t)w;
            if (w == -1 || sent == len) {
                close(wfd);
                wfd = -1;
            }
        }
        for (int k = 0; k < 2; k++) {
            if (!(p[k].revents & (POLLIN | POLLHUP | POLLERR)) || p[k].fd == -1)
                continue;
            char buf[4096];
            ssize_t n = read(p[k].fd, buf, sizeof buf);
            if (n == -1 && errno == EINTR)
                continue;
            if (n <= 0) {
                close(k == 0 ? o[0] : e[0]);
                if (k == 0)
                    o[0] = -1;
                else
                    e[0] = -1;
                fds_open--;
                continue;
            }
            char *dst = k == 0 ? out : err;
            size_t cap = k == 0 ? out_cap : err_cap;
            size_t *used = k == 0 ? &got_out : &got_err;
            size_t take = *used + (size_t)n < cap - 1 ? (size_t)n : cap - 1 - *used;
            memcpy(dst + *used, buf, take);
            *used += take;
        }
    }
    out[got_out] = '\0';
    err[got_err] = '\0';
    if (wfd != -1)
        close(wfd);
    if (o[0] != -1)
        close(o[0]);
    if (e[0] != -1)
        close(e[0]);
    sigaction(SIGPIPE, &old, NULL);
    /* Its output is closed; it has exited or is about to. */
    if (timed_out)
        kill(pid, SIGKILL);
    int status = 0;
    for (;;) {
        pid_t r = waitpid(pid, &status, timed_out ? 0 : WNOHANG);
        if (r == pid)
            break;
        if (r == -1 && errno != EINTR)
            tc_fail("waitpid: %s", strerror(errno));
        if (r == 0 && auth_now_ms() > deadline) {
            kill(pid, SIGKILL);
            timed_out = 1;
        } else if (r == 0) {
            auth_nap_ms(5);
        }
    }
    if (timed_out || !WIFEXITED(status))
        return -1;
    return WEXITSTATUS(status);
}

int tc_run_server_with_input(const char *const *args, const void *input, size_t len, char *out,
                             size_t out_cap, char *err, size_t err_cap, int timeout_ms)
{
    const char *argv[16];
    size_t n = 0;
    argv[n++] = p2p_server_path();
    for (size_t i = 0; args[i] != NULL && n < 15; i++)
        argv[n++] = args[i];
    argv[n] = NULL;
    return tc_run_with_input(argv, input, len, out, out_cap, err, err_cap, timeout_ms);
}
