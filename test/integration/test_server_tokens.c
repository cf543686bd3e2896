/*
 * test_server_tokens.c - p2pServer's token tools and --auth-file at start
 * (p2pServer(8), TOKENS and AUTH FILE), through pipes to the real binary:
 *
 *  - --gen-token prints 43 base64url characters and a newline, new ones
 *    every time; they are accepted by --hash-token;
 *  - --hash-token ID reads one line (with LF, CR LF, or a pipe that ends
 *    without a newline) and prints "ID VERIFIER" exactly as the
 *    specification computes it (the worked example of stupidp2p(7), and
 *    test/support/auth.c's independent encoder); an empty, over-long or
 *    spaced token exits 1, a bad ID exits 2; ids are escaped as in the file;
 *  - a token tool takes no PORT, --auth-required needs --auth-file;
 *  - a missing auth file, or one with a bad line, stops the server at start
 *    with exit 1 and a message naming the file (and the line); a file
 *    readable by others is a warning, not an error.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "auth.h"
#include "harness.h"

#define RUN_MS 10000

static const char k_alice_line[] =
    "alice p2p-scram-sha256$1mTZKgKpTz-d0xrS6OAeiR4wlgccmc9SLWX5jPN3uUU$"
    "S2I4cGln15oaQTeQe9rXB1xuxdR4E-SBCZG7oVWlzp4\n";

/* p2pServer with args and input; returns the exit status. */
static int run_tool(const char *const *args, const char *input, size_t len, char *out,
                    size_t out_cap, char *err, size_t err_cap)
{
    return tc_run_server_with_input(args, input, len, out, out_cap, err, err_cap, RUN_MS);
}

static int is_b64url(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_';
}

static void test_gen_token(void **state)
{
    (void)state;
    static const char *const args[] = {"--gen-token", NULL};
    char a[256], b[256], err[256];
    assert_int_equal(run_tool(args, NULL, 0, a, sizeof a, err, sizeof err), 0);
    assert_string_equal(err, "");
    assert_int_equal(strlen(a), 44);
    assert_int_equal(a[43], '\n');
    for (size_t i = 0; i < 43; i++)
        assert_true(is_b64url(a[i]));
    /* 32 bytes take 43 characters, the last of which carries 2 bits and 4
     * zero bits: one of A, E, I, ..., w (every 4th letter). */
    assert_non_null(strchr("AEIMQUYcgkosw048", a[42]));
    assert_int_equal(run_tool(args, NULL, 0, b, sizeof b, err, sizeof err), 0);
    assert_string_not_equal(a, b);

    /* The token goes into --hash-token as it comes out. */
    static const char *const hash[] = {"--hash-token", "dev", NULL};
    char line[512], want[512] = "";
    assert_int_equal(run_tool(hash, a, strlen(a), line, sizeof line, err, sizeof err), 0);
    a[43] = '\0';
    tc_auth_line(want, sizeof want, "dev", a, NULL);
    assert_string_equal(line, want);
}

/* The worked example of stupidp2p(7): its token gives its line, however
 * the line ends. */
static void test_hash_token_example(void **state)
{
    (void)state;
    static const char *const args[] = {"--hash-token", "alice", NULL};
    static const char *const inputs[] = {
        TC_TOKEN_A "\n",
        TC_TOKEN_A,                     /* a pipe that ends without a newline */
        TC_TOKEN_A "\r\n",
        TC_TOKEN_A "\nsecond line ignored\n",
    };
    for (size_t i = 0; i < TC_ARRAY_LEN(inputs); i++) {
        char out[512], err[512];
        assert_int_equal(run_tool(args, inputs[i], strlen(inputs[i]), out, sizeof out, err, sizeof err), 0);
        assert_string_equal(out, k_alice_line);
        assert_string_equal(err, "");
    }
    /* Independently: the support code's line for the same token. */
    char want[512] = "";
    tc_auth_line(want, sizeof want, "alice", TC_TOKEN_A, NULL);
    assert_string_equal(want, k_alice_line);
}

static void expect_token_refused(const char *input, size_t len, const char *why)
{
    static const char *const args[] = {"--hash-token", "dev", NULL};
    char out[512], err[512];
    int rc = run_tool(args, input, len, out, sizeof out, err, sizeof err);
    if (rc != 1 || out[0] != '\0' || strstr(err, why) == NULL)
        fail_msg("token of %zu bytes: exit %d, stdout '%s', stderr '%s' (wanted '%s')", len, rc, out, err,
                 why);
}

static void test_hash_token_refuses(void **state)
{
    (void)state;
    expect_token_refused("", 0, "no token");
    expect_token_refused("\n", 1, "no token");
    expect_token_refused("\r\n", 2, "no token");
    expect_token_refused("a b\n", 4, "printable ASCII without spaces");
    expect_token_refused("tab\there\n", 9, "printable ASCII without spaces");
    expect_token_refused("caf\xc3\xa9\n", 6, "printable ASCII without spaces");
    /* 256 bytes is the most; 257 is too long, with or without a newline,
     * and so is a long stream with no line end at all. */
    char big[5000];
    memset(big, 'k', sizeof big);
    expect_token_refused(big, 257, "longer than 256");
    big[257] = '\n';
    expect_token_refused(big, 258, "longer than 256");
    expect_token_refused(big, sizeof big, "longer than 256");
    static const char *const args[] = {"--hash-token", "dev", NULL};
    char out[512], err[512];
    big[256] = '\n';
    assert_int_equal(run_tool(args, big, 257, out, sizeof out, err, sizeof err), 0);
    assert_int_equal(strncmp(out, "dev p2p-scram-sha256$", 21), 0);
}

/* ID is written as in the auth file, and printed canonically. */
static void test_hash_token_ids(void **state)
{
    (void)state;
    static const struct {
        const char *arg;
        const char *printed;
    } ok[] = {
        {"a\\x20b", "a\\x20b"},          /* a space */
        {"\\x61lice", "alice"},          /* needless escape: printed plain */
        {"x\\x00\\xFFy", "x\\x00\\xffy"}, /* NUL and 0xff, lower-case hex */
        {"\\x2a", "\\x2a"},              /* the id "*" */
        {"*", "\\x2a"},
        {"h\\x23sh\\x2ccomma\\x5c", "h\\x23sh\\x2ccomma\\x5c"},
    };
    for (size_t i = 0; i < TC_ARRAY_LEN(ok); i++) {
        const char *args[] = {"--hash-token", ok[i].arg, NULL};
        char out[512], err[512], want[512] = "";
        assert_int_equal(run_tool(args, TC_TOKEN_B, strlen(TC_TOKEN_B), out, sizeof out, err, sizeof err), 0);
        tc_auth_line(want, sizeof want, ok[i].printed, TC_TOKEN_B, NULL);
        assert_string_equal(out, want);
    }
    char long_id[300];
    memset(long_id, 'i', 256);
    long_id[256] = '\0';
    const char *bad[] = {"", "a b", "a,b", "a#b", "a\\", "a\\x4", "a\\xZZ", "a\\y41", long_id};
    for (size_t i = 0; i < TC_ARRAY_LEN(bad); i++) {
        const char *args[] = {"--hash-token", bad[i], NULL};
        char out[512], err[512];
        int rc = run_tool(args, TC_TOKEN_B, strlen(TC_TOKEN_B), out, sizeof out, err, sizeof err);
        if (rc != 2 || out[0] != '\0' || strstr(err, "bad ID") == NULL)
            fail_msg("ID '%s': exit %d, stdout '%s', stderr '%s'", bad[i], rc, out, err);
    }
    long_id[255] = '\0';
    const char *args[] = {"--hash-token", long_id, NULL};
    char out[1024], err[512];
    assert_int_equal(run_tool(args, TC_TOKEN_B, strlen(TC_TOKEN_B), out, sizeof out, err, sizeof err), 0);
}

static void expect_exit(const char *const *args, int status, const char *in_stderr)
{
    char out[2048], err[2048];
    int rc = run_tool(args, NULL, 0, out, sizeof out, err, sizeof err);
    if (rc != status || strstr(err, in_stderr) == NULL)
        fail_msg("%s ...: exit %d (wanted %d), stderr '%s' (wanted '%s')", args[0], rc, status, err,
                 in_stderr);
}

static void test_tool_usage(void **state)
{
    (void)state;
    static const char *const port[] = {"--gen-token", "4040", NULL};
    expect_exit(port, 2, "takes no PORT");
    static const char *const both[] = {"--gen-token", "--hash-token", "x", NULL};
    expect_exit(both, 2, "exclude each other");
    static const char *const noid[] = {"--hash-token", NULL};
    expect_exit(noid, 2, "needs a value");
    static const char *const required[] = {"--auth-required", "4040", NULL};
    expect_exit(required, 2, "--auth-required needs --auth-file");
    static const char *const empty[] = {"--auth-file", "", "4040", NULL};
    expect_exit(empty, 2, "--auth-file needs a file name");
}

/* A server whose auth file cannot be used does not start. */
static void test_auth_file_errors_at_start(void **state)
{
    (void)state;
    char dir[512], path[600], text[2048] = "";
    tc_auth_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/auth", dir);

    const char *args[] = {"--bind", "127.0.0.1", "--auth-file", path, "1", NULL};
    expect_exit(args, 1, path); /* missing */

    tc_auth_line(text, sizeof text, "alice", TC_TOKEN_A, NULL);
    strcat(text, "# a comment\n\nbob p2p-scram-sha256$short$key\n");
    tc_write_file(path, text, 0600);
    char where[700];
    snprintf(where, sizeof where, "%s:4: bad verifier", path);
    expect_exit(args, 1, where);

    const char *dir_args[] = {"--bind", "127.0.0.1", "--auth-file", dir, "1", NULL};
    expect_exit(dir_args, 1, "not a regular file");
    unlink(path);
    rmdir(dir);
}

/* A good file starts the server; one that group or others may read is a
 * warning in the log. */
static void test_auth_file_mode_warning(void **state)
{
    (void)state;
    char dir[512], path[600], text[2048] = "";
    tc_auth_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/auth", dir);
    tc_auth_line(text, sizeof text, "alice", TC_TOKEN_A, NULL);

    tc_write_file(path, text, 0600);
    const char *args[] = {"--auth-file", path, NULL};
    struct p2p_server srv;
    tc_start_server(&srv, args);
    tc_wait_log(&srv, "auth file", 1);
    assert_int_equal(tc_log_count(&srv, "chmod"), 0);
    tc_stop_server(&srv);

    tc_write_file(path, text, 0644);
    tc_start_server(&srv, args);
    tc_wait_log(&srv, "may be read by group or others (mode 0644)", 1);
    int fd = tc_auth_connect(srv.port, "alice", TC_TOKEN_A);
    tc_close(fd);
    tc_stop_server(&srv);

    tc_write_file(path, text, 0660);
    tc_start_server(&srv, args);
    tc_wait_log(&srv, "may be written by group or others (mode 0660)", 1);
    tc_stop_server(&srv);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_gen_token),
        cmocka_unit_test(test_hash_token_example),
        cmocka_unit_test(test_hash_token_refuses),
        cmocka_unit_test(test_hash_token_ids),
        cmocka_unit_test(test_tool_usage),
        cmocka_unit_test(test_auth_file_errors_at_start),
        cmocka_unit_test(test_auth_file_mode_warning),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
