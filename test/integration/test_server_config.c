/*
 * test_server_config.c - the configuration file (--config), --check-config
 * and reloading by SIGHUP, through the real binary: good and bad files give
 * exit 0 and 2 with the file and line named; a reload puts new limits and
 * the log level in force without dropping a connection, says which changes
 * need a restart, and keeps the running configuration when the new file is
 * bad; the command line keeps overriding the file across reloads.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "harness.h"
#include "protocol.h"
#include "v2.h"

/* Runs p2pServer with args; returns the status, stdout and stderr. */
static int run(const char *const *args, char *out, size_t out_cap, char *err, size_t err_cap)
{
    return tc_run_server_with_input(args, "", 0, out, out_cap, err, err_cap, 10000);
}

static void test_check_config(void **state)
{
    (void)state;
    char dir[512], path[600], auth[600], out[2048], err[2048];
    tc_auth_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/p2pServer.conf", dir);
    snprintf(auth, sizeof auth, "%s/auth", dir);

    tc_write_file(path, "# a relay\nport 4040\nmax-conns 100\nidle-timeout 60\n", 0600);
    const char *good[] = {"--config", path, "--check-config", NULL};
    assert_int_equal(run(good, out, sizeof out, err, sizeof err), 0);
    assert_non_null(strstr(out, "is good"));

    tc_write_file(path, "port 4040\nmax-conns 100\nmax-cons 5\n", 0600);
    assert_int_equal(run(good, out, sizeof out, err, sizeof err), 2);
    char want[700];
    snprintf(want, sizeof want, "%s:3: unknown option 'max-cons'", path);
    if (strstr(err, want) == NULL)
        fail_msg("expected '%s' on stderr, got: %s", want, err);

    /* The auth file is checked too, as the server would read it. */
    char text[1200];
    snprintf(text, sizeof text, "port 4040\nauth-file %s\n", auth);
    tc_write_file(path, text, 0600);
    tc_write_file(auth, "dev1 not-a-verifier\n", 0600);
    assert_int_equal(run(good, out, sizeof out, err, sizeof err), 2);
    snprintf(want, sizeof want, "%s:1", auth);
    if (strstr(err, want) == NULL)
        fail_msg("expected the auth file's line on stderr, got: %s", err);
    /* A good file, and a server started from the configuration serves. */
    text[0] = '\0';
    tc_auth_line(text, sizeof text, "dev1", "token-1", NULL);
    tc_write_file(auth, text, 0600);
    assert_int_equal(run(good, out, sizeof out, err, sizeof err), 0);
    unlink(path);
    unlink(auth);
    rmdir(dir);
}

/* A reload: new limits and log level in force, the connection kept. */
static void test_reload(void **state)
{
    (void)state;
    char dir[512], path[600];
    tc_auth_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/p2pServer.conf", dir);
    tc_write_file(path, "max-subs 1\nlog-level warn\nidle-timeout 120\n", 0600);
    struct p2p_server s;
    /* The command line's idle timeout overrides the file, now and later. */
    const char *args[] = {"--config", path, "--idle-timeout", "200", NULL};
    tc_start_server(&s, args);

    int a = tc_v2_connect_cfg(s.port, 0, TC_DEFAULT_MAX_FRAME, 200);
    tc_register(a, "quiet-device", 1);
    tc_v2_subscribe(a, "x", P2P_PRESENCE_OFFLINE);
    tc_subscribe(a, "y", P2P_STATUS_LIMIT); /* max-subs 1 */
    assert_int_equal(tc_log_count(&s, "registered \"quiet-device\""), 0); /* warn level */

    tc_write_file(path, "max-subs 3\nlog-level info\nidle-timeout 120\nmax-frame 4096\n", 0600);
    assert_int_equal(kill(s.pid, SIGHUP), 0);
    tc_wait_log(&s, "reload: idle timeout 200 s", 1);
    tc_wait_log(&s, "reload: max-frame changed: it needs a restart; ignored", 1);
    tc_v2_subscribe(a, "y", P2P_PRESENCE_OFFLINE); /* the same connection, now allowed */
    int b = tc_v2_connect_cfg(s.port, 0, TC_DEFAULT_MAX_FRAME, 200); /* max-frame unchanged */
    tc_register(b, "loud-device", 1);
    tc_wait_log(&s, "registered \"loud-device\"", 1); /* info level now */

    /* A bad file: the running configuration stays. */
    tc_write_file(path, "max-subs 1\nnonsense here\n", 0600);
    assert_int_equal(kill(s.pid, SIGHUP), 0);
    tc_wait_log(&s, ":2: unknown option 'nonsense'; the running configuration stays", 1);
    tc_v2_subscribe(a, "z", P2P_PRESENCE_OFFLINE); /* max-subs is still 3 */
    assert_true(tc_is_open(a));
    assert_true(tc_is_open(b));
    tc_close(a);
    tc_close(b);
    tc_stop_server(&s);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_config),
        cmocka_unit_test(test_reload),
    };
    return cmocka_run_group_tests_name("p2pServer configuration file", tests, NULL, NULL);
}
