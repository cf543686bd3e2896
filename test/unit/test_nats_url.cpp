// test_nats_url.cpp - unit tests for src/server/nats_url.{h,cpp}: nats://
// URLs parsed and checked, credentials (percent-decoded, user/pass or
// token) kept out of every error message and label, hosts resolved from
// numbers or from a hosts file written by the test (never DNS), and the
// host:port entries of INFO connect_urls.
#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include "nats_url.h"

// CMocka last: it defines fail() and friends as macros. Its 1.1 header has
// no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

namespace {

uint16_t port_of(const NatsServerAddress& a) {
    if (a.addr.ss_family == AF_INET) return ntohs(reinterpret_cast<const sockaddr_in*>(&a.addr)->sin_port);
    return ntohs(reinterpret_cast<const sockaddr_in6*>(&a.addr)->sin6_port);
}

std::string address_of(const NatsServerAddress& a) {
    char text[INET6_ADDRSTRLEN] = "";
    if (a.addr.ss_family == AF_INET)
        inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in*>(&a.addr)->sin_addr, text, sizeof text);
    else
        inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6*>(&a.addr)->sin6_addr, text, sizeof text);
    return text;
}

void test_parse_good_urls(void**) {
    NatsUrl u;
    const char* error = nullptr;
    assert_true(nats_parse_url("nats://127.0.0.1:4333", &u, &error));
    assert_string_equal(u.host.c_str(), "127.0.0.1");
    assert_int_equal(u.port, 4333);
    assert_true(u.credentials.user.empty() && u.credentials.pass.empty() && u.credentials.token.empty());

    assert_true(nats_parse_url("NATS://nats-1.example_a", &u, &error));  // scheme in any case
    assert_string_equal(u.host.c_str(), "nats-1.example_a");
    assert_int_equal(u.port, kNatsDefaultPort);

    assert_true(nats_parse_url("nats://[::1]:5/", &u, &error));
    assert_string_equal(u.host.c_str(), "::1");
    assert_int_equal(u.port, 5);

    // user:pass, percent-decoded; the last '@' ends them.
    assert_true(nats_parse_url("nats://al%69ce:p%40ss:w@rd@10.0.0.1:65535", &u, &error));
    assert_string_equal(u.credentials.user.c_str(), "alice");
    assert_string_equal(u.credentials.pass.c_str(), "p@ss:w@rd");
    assert_true(u.credentials.token.empty());
    assert_int_equal(u.port, 65535);

    // A user alone is a token; an empty password is a password.
    assert_true(nats_parse_url("nats://s3cr%2Ft@host", &u, &error));
    assert_string_equal(u.credentials.token.c_str(), "s3cr/t");
    assert_true(u.credentials.user.empty());
    assert_true(nats_parse_url("nats://bob:@host", &u, &error));
    assert_string_equal(u.credentials.user.c_str(), "bob");
    assert_string_equal(u.credentials.pass.c_str(), "");
    assert_true(u.credentials.token.empty());
}

void test_parse_bad_urls(void**) {
    const char* bad[] = {
        "", "127.0.0.1:4222", "tls://127.0.0.1:4222", "ws://h:1", "nats://", "nats://:4222",
        "nats://h:0", "nats://h:65536", "nats://h:12x", "nats://h:", "nats://h:123456",
        "nats://[::1", "nats://[::1]x", "nats://[nothex]:1", "nats://h/path", "nats://h?x=1",
        "nats://h#f", "nats://h o", "nats://@h", "nats://:pw@h", "nats://u:p%zz@h", "nats://u%00:p@h",
        "nats://u:p%4@h", "nats://h\xc3\xa9",
    };
    for (const char* text : bad) {
        NatsUrl u;
        const char* error = nullptr;
        if (nats_parse_url(text, &u, &error)) fail_msg("accepted '%s'", text);
        assert_non_null(error);
    }
}

void test_parse_list_errors_hide_credentials(void**) {
    std::vector<NatsUrl> urls;
    std::string error;
    assert_true(nats_parse_url_list(" nats://a:1 ,nats://u:secret@b:2,\tnats://c ", &urls, &error));
    assert_int_equal(urls.size(), 3);
    assert_string_equal(urls[1].credentials.pass.c_str(), "secret");
    assert_int_equal(urls[2].port, kNatsDefaultPort);

    assert_false(nats_parse_url_list("nats://a:1,nats://u:secret@b:99999", &urls, &error));
    assert_string_equal(error.c_str(), "URL 2 of 2: port not a number in 1..65535");
    assert_false(nats_parse_url_list("nats://a:1,,nats://b", &urls, &error));
    assert_string_equal(error.c_str(), "URL 2 of 3: empty");
    assert_false(nats_parse_url_list("tls://u:secret@a", &urls, &error));
    assert_true(error.find("secret") == std::string::npos);

    std::string many;
    for (size_t i = 0; i <= kNatsMaxServers; ++i) many += (i ? "," : "") + std::string("nats://h");
    assert_false(nats_parse_url_list(many, &urls, &error));
}

void test_resolve_numbers_and_hosts_file(void**) {
    char path[] = "/tmp/test_nats_url-hosts-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    const char hosts[] =
        "# a comment\n"
        "127.0.0.1\tlocalhost\n"
        "::1 localhost ip6-localhost   # trailing comment\n"
        "10.1.2.3 nats-a NATS-ALIAS\r\n"
        "10.1.2.4 nats-b\n"
        "10.1.2.5 nats-a\n"
        "10.1.2.3 nats-a\n"  // the same address again: once
        "not-an-address nats-c\n";
    assert_int_equal(write(fd, hosts, sizeof hosts - 1), static_cast<ssize_t>(sizeof hosts - 1));
    close(fd);

    std::vector<NatsServerAddress> out;
    std::string error;
    assert_true(nats_servers_from_list("nats://u:pw@192.0.2.7:4001,nats://[2001:db8::1]:4002,"
                                       "nats://nats-a:4003,nats://nats-alias,nats://LOCALHOST:4004",
                                       path, &out, &error));
    assert_int_equal(out.size(), 1 + 1 + 2 + 1 + 2);
    assert_string_equal(address_of(out[0]).c_str(), "192.0.2.7");
    assert_int_equal(port_of(out[0]), 4001);
    assert_string_equal(out[0].label.c_str(), "192.0.2.7:4001");  // no credentials
    assert_string_equal(out[0].credentials.user.c_str(), "u");
    assert_string_equal(out[1].label.c_str(), "[2001:db8::1]:4002");
    assert_int_equal(out[1].addr.ss_family, AF_INET6);
    assert_string_equal(address_of(out[2]).c_str(), "10.1.2.3");
    assert_string_equal(address_of(out[3]).c_str(), "10.1.2.5");
    assert_string_equal(out[2].label.c_str(), "nats-a:4003");
    assert_string_equal(address_of(out[4]).c_str(), "10.1.2.3");  // by its alias
    assert_int_equal(port_of(out[4]), kNatsDefaultPort);
    assert_string_equal(address_of(out[5]).c_str(), "127.0.0.1");
    assert_string_equal(address_of(out[6]).c_str(), "::1");
    assert_false(out[0].discovered);

    // Not numeric, not in the file: an error at start, naming the host only.
    assert_false(nats_servers_from_list("nats://u:pw@nats-c:1", path, &out, &error));
    assert_true(error.find("nats-c") != std::string::npos);
    assert_true(error.find("DNS is not used") != std::string::npos);
    assert_true(error.find("pw") == std::string::npos);
    assert_false(nats_servers_from_list("nats://nats-a", "/nonexistent/hosts", &out, &error));
    unlink(path);
}

void test_connect_urls_entries(void**) {
    NatsServerAddress a, b;
    assert_true(nats_parse_host_port("127.0.0.1:4222", &a));
    assert_string_equal(a.label.c_str(), "127.0.0.1:4222");
    assert_int_equal(port_of(a), 4222);
    assert_true(nats_parse_host_port("[::1]:4223", &b));
    assert_string_equal(b.label.c_str(), "[::1]:4223");
    assert_false(nats_same_address(a, b));
    NatsServerAddress c;
    assert_true(nats_parse_host_port("127.0.0.1:4222", &c));
    assert_true(nats_same_address(a, c));
    assert_true(nats_parse_host_port("127.0.0.1:4223", &c));
    assert_false(nats_same_address(a, c));
    // Names (no DNS after start), missing ports, junk: refused.
    for (const char* bad : {"nats-a:4222", "127.0.0.1", "127.0.0.1:", "127.0.0.1:0", ":4222", "", "[::1]",
                            "1.2.3.4:5:6", "nats://1.2.3.4:5"})
        if (nats_parse_host_port(bad, &c)) fail_msg("accepted '%s'", bad);
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_good_urls),
        cmocka_unit_test(test_parse_bad_urls),
        cmocka_unit_test(test_parse_list_errors_hide_credentials),
        cmocka_unit_test(test_resolve_numbers_and_hosts_file),
        cmocka_unit_test(test_connect_urls_entries),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
