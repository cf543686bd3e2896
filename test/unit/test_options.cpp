// test_options.cpp - unit tests for src/server/options.{h,cpp}: the
// documented defaults (p2pServer(8)), every option's range at both ends and
// just beyond, the port given either way, and the rule that the output cap
// holds the largest frame the server can produce. The black-box test of the
// same command line through the real binary is test/integration/
// test_server_cli.c; this one checks the values that reach the server. The
// configuration file (--config) goes through the same table of options:
// precedence (defaults, file, command line), each kind of bad line named by
// file and line, flags, comments, options that belong on the command line
// only, and what a reload re-parses and which changes need a restart.
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>
#include <initializer_list>
#include <string>
#include <vector>

#include "options.h"
#include "protocol.h"

extern "C" {
#include <cmocka.h>
}

namespace {

// Parses {"p2pServer", args...} into *out (fresh defaults).
ParseResult parse(std::initializer_list<const char*> args, ServerOptions* out) {
    std::vector<std::string> store{"p2pServer"};
    for (const char* a : args) store.emplace_back(a);
    std::vector<char*> argv;
    for (std::string& s : store) argv.push_back(s.data());
    argv.push_back(nullptr);
    *out = ServerOptions{};
    return parse_options(static_cast<int>(store.size()), argv.data(), out);
}

void expect_ok(std::initializer_list<const char*> args, ServerOptions* out) {
    assert_int_equal(static_cast<int>(parse(args, out)), static_cast<int>(ParseResult::run));
}

void expect_usage(std::initializer_list<const char*> args) {
    ServerOptions o;
    assert_int_equal(static_cast<int>(parse(args, &o)), static_cast<int>(ParseResult::usage_error));
}

void test_defaults(void**) {
    ServerOptions o;
    expect_ok({"4040"}, &o);
    assert_int_equal(o.port, 4040);
    assert_true(o.bind_address.empty());
    assert_int_equal(o.idle_timeout_s, 300);
    assert_int_equal(o.max_frame, 65536);
    assert_int_equal(o.max_conns, 100000);
    assert_int_equal(o.max_output, 4u << 20);
    assert_int_equal(o.max_subs, 4096);
    assert_int_equal(static_cast<int>(o.log_level), static_cast<int>(LogLevel::info));
    assert_int_equal(o.max_devices, 1000000);
    assert_int_equal(o.frame_timeout_s, 30);
    // A quarter of physical memory, at most 1 GiB.
    long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    uint64_t quarter = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 4;
    assert_true(o.max_memory == (quarter < (1u << 30) ? quarter : uint64_t{1} << 30));
    assert_true(o.max_memory == default_max_memory());
}

// --max-memory (64-bit bytes), --max-devices, --frame-timeout.
void test_memory_options(void**) {
    ServerOptions o;
    expect_ok({"--max-memory", "1048576", "--max-devices", "1", "--frame-timeout", "0", "4040"},
              &o);
    assert_true(o.max_memory == 1048576);
    assert_int_equal(o.max_devices, 1);
    assert_int_equal(o.frame_timeout_s, 0);
    expect_ok({"--max-memory", "1099511627776", "--max-devices", "100000000", "--frame-timeout",
               "604800", "4040"},
              &o);
    assert_true(o.max_memory == uint64_t{1} << 40);
    assert_int_equal(o.max_devices, 100000000);
    assert_int_equal(o.frame_timeout_s, 604800);
    expect_ok({"--max-memory", "5000000000", "4040"}, &o);  // beyond 32 bits
    assert_true(o.max_memory == 5000000000ull);
    expect_usage({"--max-memory", "1048575", "4040"});
    expect_usage({"--max-memory", "1099511627777", "4040"});
    expect_usage({"--max-memory", "1G", "4040"});
    expect_usage({"--max-devices", "0", "4040"});
    expect_usage({"--max-devices", "100000001", "4040"});
    expect_usage({"--frame-timeout", "604801", "4040"});
    expect_usage({"--frame-timeout", "-1", "4040"});
}

void test_port(void**) {
    ServerOptions o;
    expect_ok({"1"}, &o);
    assert_int_equal(o.port, 1);
    expect_ok({"65535"}, &o);
    assert_int_equal(o.port, 65535);
    expect_ok({"--port", "4041"}, &o);
    assert_int_equal(o.port, 4041);
    expect_ok({"--bind", "127.0.0.1", "--port=4042"}, &o);
    assert_int_equal(o.port, 4042);
    assert_string_equal(o.bind_address.c_str(), "127.0.0.1");
    for (const char* bad : {"0", "65536", "-1", "+5", "40x", "", " 4040", "99999999999999999999"})
        expect_usage({bad});
    expect_usage({});                          // missing
    expect_usage({"4040", "4041"});            // two
    expect_usage({"--port", "4040", "4041"});  // both ways
    expect_usage({"--bind", "", "4040"});
}

void test_ranges(void**) {
    ServerOptions o;
    expect_ok({"--idle-timeout", "0", "--max-frame", "256", "--max-conns", "1", "--max-subs", "1",
               "4040"},
              &o);
    assert_int_equal(o.idle_timeout_s, 0);
    assert_int_equal(o.max_frame, 256);
    assert_int_equal(o.max_conns, 1);
    assert_int_equal(o.max_subs, 1);
    expect_ok({"--idle-timeout", "604800", "--max-frame", "16777216", "--max-conns", "10000000",
               "--max-subs", "1000000", "--max-output", "1073741824", "4040"},
              &o);
    assert_int_equal(o.idle_timeout_s, 604800);
    assert_int_equal(o.max_frame, 16u << 20);
    assert_int_equal(o.max_conns, 10000000);
    assert_int_equal(o.max_subs, 1000000);
    assert_int_equal(o.max_output, 1u << 30);
    expect_usage({"--idle-timeout", "604801", "4040"});
    expect_usage({"--max-frame", "255", "4040"});
    expect_usage({"--max-frame", "16777217", "4040"});
    expect_usage({"--max-conns", "0", "4040"});
    expect_usage({"--max-conns", "10000001", "4040"});
    expect_usage({"--max-subs", "0", "4040"});
    expect_usage({"--max-output", "1023", "4040"});
    expect_usage({"--max-output", "1073741825", "4040"});
    expect_usage({"--max-frame", "4040"});  // the value eaten, PORT missing
    expect_usage({"4040", "--max-frame"});  // no value
    expect_usage({"--no-such-option", "4040"});
}

void test_log_levels(void**) {
    ServerOptions o;
    const std::pair<const char*, LogLevel> levels[] = {{"error", LogLevel::error},
                                                       {"warn", LogLevel::warn},
                                                       {"warning", LogLevel::warn},
                                                       {"info", LogLevel::info},
                                                       {"debug", LogLevel::debug}};
    for (const auto& l : levels) {
        expect_ok({"--log-level", l.first, "4040"}, &o);
        assert_int_equal(static_cast<int>(o.log_level), static_cast<int>(l.second));
    }
    expect_usage({"--log-level", "verbose", "4040"});
    expect_usage({"--log-level", "INFO", "4040"});
}

// The output cap must hold the largest frame the server can send: raised
// silently when only --max-frame was given, an error when both were.
void test_output_cap_holds_a_frame(void**) {
    ServerOptions o;
    uint32_t largest = (16u << 20) + P2P_SERVER_FRAME_SLACK + P2P_FRAME_HEADER_SIZE;
    expect_ok({"--max-frame", "16777216", "4040"}, &o);
    assert_int_equal(o.max_output, largest);
    expect_ok({"--max-frame", "1000", "--max-output", "1260", "4040"}, &o);
    assert_int_equal(o.max_output, 1260);
    expect_usage({"--max-frame", "1000", "--max-output", "1259", "4040"});
    expect_usage({"--max-output", "4194304", "--max-frame", "16777216", "4040"});
}

// --auth-file, --auth-required, and the token tools, which need no PORT.
void test_auth_options(void**) {
    ServerOptions o;
    expect_ok({"4040"}, &o);
    assert_true(o.auth_file.empty());
    assert_false(o.auth_required);
    assert_int_equal(static_cast<int>(o.tool), static_cast<int>(ServerTool::none));
    expect_ok({"--auth-file", "/etc/p2p/auth", "--auth-required", "4040"}, &o);
    assert_string_equal(o.auth_file.c_str(), "/etc/p2p/auth");
    assert_true(o.auth_required);
    expect_usage({"--auth-required", "4040"});
    expect_usage({"--auth-file", "", "4040"});
    expect_usage({"--auth-file"});

    expect_ok({"--gen-token"}, &o);
    assert_int_equal(static_cast<int>(o.tool), static_cast<int>(ServerTool::gen_token));
    expect_ok({"--hash-token", "dev\\x20one"}, &o);
    assert_int_equal(static_cast<int>(o.tool), static_cast<int>(ServerTool::hash_token));
    assert_string_equal(o.hash_token_id.c_str(), "dev\\x20one");
    expect_usage({"--gen-token", "4040"});
    expect_usage({"--port", "4040", "--gen-token"});
    expect_usage({"--hash-token", "a", "4040"});
    expect_usage({"--gen-token", "--hash-token", "a"});
    expect_usage({"--hash-token"});
}

void test_help_and_version(void**) {
    ServerOptions o;
    assert_int_equal(static_cast<int>(parse({"--help"}, &o)), static_cast<int>(ParseResult::exit_ok));
    assert_int_equal(static_cast<int>(parse({"-h", "bad"}, &o)), static_cast<int>(ParseResult::exit_ok));
    assert_int_equal(static_cast<int>(parse({"--version"}, &o)), static_cast<int>(ParseResult::exit_ok));
    assert_int_equal(static_cast<int>(parse({"-V"}, &o)), static_cast<int>(ParseResult::exit_ok));
}


// A configuration file in a temporary directory, removed at the end.
struct ConfigFile {
    char dir[64] = "/tmp/p2p-options-XXXXXX";
    std::string path;
    explicit ConfigFile(const char* text) {
        assert_non_null(mkdtemp(dir));
        path = std::string(dir) + "/p2pServer.conf";
        write(text);
    }
    void write(const char* text) {
        FILE* f = fopen(path.c_str(), "w");
        assert_non_null(f);
        fputs(text, f);
        fclose(f);
    }
    ~ConfigFile() {
        unlink(path.c_str());
        rmdir(dir);
    }
};

// Parses like parse() and returns the message parse_options printed, by
// running it with stderr sent to a pipe.
std::string usage_message(std::initializer_list<const char*> args) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stderr);
    int saved = dup(2);
    dup2(fds[1], 2);
    ServerOptions o;
    ParseResult r = parse(args, &o);
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    close(fds[1]);
    char buf[1024];
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    assert_int_equal(static_cast<int>(r), static_cast<int>(ParseResult::usage_error));
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

void expect_message(std::initializer_list<const char*> args, const std::string& want) {
    std::string got = usage_message(args);
    if (got.find(want) == std::string::npos)
        fail_msg("expected a message with \"%s\", got: %s", want.c_str(), got.c_str());
}

void test_config_file(void**) {
    ConfigFile cf(
        "# the relay on the LAN\n"
        "\n"
        "   port 4041\n"
        "bind 127.0.0.1   \n"
        "max-conns 50000\n"
        "\tidle-timeout\t60\n"
        "auth-file /etc/stupidp2p/auth # not a comment: part of the value\n"
        "auth-required\n"
        "log-format json\r\n");
    ServerOptions o;
    expect_ok({"--config", cf.path.c_str()}, &o);
    assert_int_equal(o.port, 4041);
    assert_string_equal(o.bind_address.c_str(), "127.0.0.1");
    assert_int_equal(o.max_conns, 50000);
    assert_true(o.max_conns_given);
    assert_int_equal(o.idle_timeout_s, 60);
    assert_string_equal(o.auth_file.c_str(), "/etc/stupidp2p/auth # not a comment: part of the value");
    assert_true(o.auth_required);
    assert_int_equal(static_cast<int>(o.log_format), static_cast<int>(LogFormat::json));
    assert_string_equal(o.config_file.c_str(), cf.path.c_str());

    // The command line overrides the file, the port either way.
    expect_ok({"--config", cf.path.c_str(), "--idle-timeout", "5", "4042"}, &o);
    assert_int_equal(o.idle_timeout_s, 5);
    assert_int_equal(o.port, 4042);
    expect_ok({"--max-conns", "7", "--config", cf.path.c_str(), "--port", "4043"}, &o);
    assert_int_equal(o.max_conns, 7);
    assert_int_equal(o.port, 4043);

    // Flags take yes/no.
    cf.write("port 1\nauth-file /x\nauth-required no\n");
    expect_ok({"--config", cf.path.c_str()}, &o);
    assert_false(o.auth_required);
    cf.write("port 1\nauth-file /x\nauth-required yes\n");
    expect_ok({"--config", cf.path.c_str()}, &o);
    assert_true(o.auth_required);
}

void test_config_file_errors(void**) {
    ConfigFile cf("port 4040\n");
    struct Case {
        const char* text;
        const char* message;  // after "FILE:"
    } cases[] = {
        {"port 4040\nmax-conns\n", ":2: 'max-conns' needs a value"},
        {"# ok\nmax-cons 5\n", ":2: unknown option 'max-cons'"},
        {"max-frame 255\n", ":1: invalid max-frame '255' (bytes, 256-16777216)"},
        {"log-level loud\n", ":1: invalid log-level 'loud' (error, warn, info, debug)"},
        {"auth-required maybe\n", ":1: 'auth-required' takes no value, or yes/no"},
        {"gen-token\n", ":1: 'gen-token' belongs on the command line"},
        {"config /other\n", ":1: 'config' belongs on the command line"},
        {"help\n", ":1: 'help' belongs on the command line"},
        {"bind \n", ":1: 'bind' needs a value"},
    };
    for (const Case& c : cases) {
        cf.write(c.text);
        expect_message({"--config", cf.path.c_str(), "4040"}, cf.path + c.message);
    }
    expect_message({"--config", "/nonexistent/p2p.conf", "4040"},
                   "/nonexistent/p2p.conf: No such file or directory");
    // A file over 1 MiB is refused, not read whole.
    std::string big(1100000, '#');
    cf.write(big.c_str());
    expect_message({"--config", cf.path.c_str(), "4040"}, "larger than 1 MiB");
    // The command line's own checks still apply over a good file.
    cf.write("max-frame 100000\nmax-output 2000\n");
    expect_message({"--config", cf.path.c_str(), "4040"}, "--max-output must hold the largest frame");
}

// A reload parses the same command line with the file as it is now.
void test_reparse_and_restart_options(void**) {
    ConfigFile cf("port 4040\nmax-subs 10\nbind 127.0.0.1\n");
    ServerOptions running;
    expect_ok({"--config", cf.path.c_str(), "--idle-timeout", "9"}, &running);
    cf.write("port 4040\nmax-subs 20\nbind 0.0.0.0\nidle-timeout 100\nmax-memory 2097152\n");
    ServerOptions next;
    std::string err;
    assert_true(reparse_options(running, &next, &err));
    assert_int_equal(next.max_subs, 20);
    assert_int_equal(next.idle_timeout_s, 9);  // the command line still wins
    std::vector<std::string> restart = options_needing_restart(running, next);
    assert_int_equal(restart.size(), 2);
    assert_string_equal(restart[0].c_str(), "bind");
    assert_string_equal(restart[1].c_str(), "max-memory");
    cf.write("port 4040\nmax-subs many\n");
    assert_false(reparse_options(running, &next, &err));
    assert_true(err.find(":2: invalid max-subs 'many'") != std::string::npos);
}

}  // namespace

// --cluster URLS and --node-name NAME: checked here (the URLs' form),
// resolved at start; a bad URL is named by its place in the list, never
// by its text (it may hold a password).
void test_cluster_options(void**) {
    ServerOptions o;
    expect_ok({"4040"}, &o);
    assert_true(o.cluster.empty() && o.node_name.empty());
    expect_ok({"--cluster", "nats://127.0.0.1:4222", "4040"}, &o);
    assert_string_equal(o.cluster.c_str(), "nats://127.0.0.1:4222");
    expect_ok({"--cluster", "nats://u:p@10.0.0.1,nats://[::1]:5", "--node-name", "relay_1-a", "4040"},
              &o);
    assert_string_equal(o.node_name.c_str(), "relay_1-a");
    for (const char* bad : {"", "127.0.0.1:4222", "tls://127.0.0.1", "nats://", "nats://h:0",
                            "nats://h:65536", "nats://a,,nats://b"})
        expect_usage({"--cluster", bad, "4040"});
    const std::string too_long(65, 'n');
    for (const char* bad : {"", "a.b", "a b", "*", too_long.c_str()})
        expect_usage({"--cluster", "nats://127.0.0.1", "--node-name", bad, "4040"});
    expect_usage({"--node-name", "r1", "4040"});  // needs --cluster

    // The message names the URL by its place, not its text.
    std::fflush(stderr);
    char path[] = "/tmp/test_options-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd != -1);
    int saved = dup(STDERR_FILENO);
    assert_true(saved != -1 && dup2(fd, STDERR_FILENO) != -1);
    expect_usage({"--cluster", "nats://u:s3cr3t@127.0.0.1:4222,nats://u:s3cr3t@bad host", "4040"});
    std::fflush(stderr);
    dup2(saved, STDERR_FILENO);
    close(saved);
    char text[1024] = "";
    ssize_t n = pread(fd, text, sizeof text - 1, 0);
    close(fd);
    unlink(path);
    assert_true(n > 0);
    text[n] = '\0';
    assert_non_null(std::strstr(text, "URL 2 of 2"));
    assert_null(std::strstr(text, "s3cr3t"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_port),
        cmocka_unit_test(test_ranges),
        cmocka_unit_test(test_memory_options),
        cmocka_unit_test(test_log_levels),
        cmocka_unit_test(test_output_cap_holds_a_frame),
        cmocka_unit_test(test_auth_options),
        cmocka_unit_test(test_config_file),
        cmocka_unit_test(test_config_file_errors),
        cmocka_unit_test(test_reparse_and_restart_options),
        cmocka_unit_test(test_cluster_options),
        cmocka_unit_test(test_help_and_version),  // last: getopt keeps the state of its early exit
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
