// test_nats_protocol.cpp - unit tests for src/server/nats_protocol.{h,cpp}:
// the parser of what a NATS server sends, the INFO reader, the -ERR
// classification, the encoders of what a client sends, and the id tokens.
//
// Streams are fed whole, split at every offset and byte by byte (STYLE.md
// practice 19), the way the link feeds them: bytes are appended to a
// buffer, whole operations consumed from its front. Each feeding must give
// the same transcript of operations, byte-exact. The parser is handed a heap
// block of exactly the bytes it may read, so that ASan catches a read past
// the end. Malformed input must be an error, found as early as the bytes
// allow (garbage after a byte or two, an oversize MSG at its control line,
// not after its payload).
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "nats_protocol.h"

// CMocka last: it defines fail() and friends as macros. Its 1.1 header has
// no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

namespace {

std::string escaped(std::string_view s) {
    std::string out;
    for (char ch : s) {
        auto c = static_cast<uint8_t>(ch);
        if (c >= 0x20 && c < 0x7f && c != '\\') {
            out += ch;
        } else {
            char b[8];
            std::snprintf(b, sizeof b, "\\x%02x", c);
            out += b;
        }
    }
    return out;
}

std::string describe(const NatsOp& op, const NatsParser& parser) {
    char line[256];
    switch (op.type) {
        case NatsOpType::info: {
            const NatsInfo& i = parser.info();
            std::snprintf(line, sizeof line, "INFO id=%s max_payload=%llu headers=%d urls=%zu",
                          i.server_id, static_cast<unsigned long long>(i.max_payload), i.headers ? 1 : 0,
                          i.connect_url_count);
            return line;
        }
        case NatsOpType::msg:
        case NatsOpType::hmsg: {
            const NatsMessage& m = op.msg;
            std::string s = op.type == NatsOpType::msg ? "MSG " : "HMSG ";
            s += std::string(m.subject) + " sid=" + std::to_string(m.sid) + " reply=" + std::string(m.reply);
            if (op.type == NatsOpType::hmsg) {
                s += " status=" + std::to_string(m.status) + " text=" + std::string(m.status_text);
                s += " headers=" + escaped(std::string_view(reinterpret_cast<const char*>(m.headers),
                                                            m.headers_len));
            }
            s += " payload=" +
                 escaped(std::string_view(reinterpret_cast<const char*>(m.payload), m.payload_len));
            return s;
        }
        case NatsOpType::ping: return "PING";
        case NatsOpType::pong: return "PONG";
        case NatsOpType::ok: return "OK";
        case NatsOpType::err:
            return std::string("ERR ") + nats_server_error_name(op.error) + " '" +
                   std::string(op.error_text) + "'";
    }
    return "?";
}

// Feeds `stream` in chunks of the given sizes (the last chunk takes the
// rest) to a fresh parser, the way the link does. Returns the transcript:
// one line per operation, then "ERROR <name>" at an error or "INCOMPLETE
// <bytes>" when bytes are left over. *fed_at_error: bytes fed when the
// error came.
std::string feed(const std::string& stream, const std::vector<size_t>& chunks,
                 NatsParser::Limits limits = {}, size_t* fed_at_error = nullptr) {
    NatsParser parser(limits);
    std::string buffer;
    std::string out;
    size_t fed = 0;
    size_t chunk = 0;
    while (fed < stream.size()) {
        size_t n = chunk < chunks.size() ? chunks[chunk++] : stream.size() - fed;
        if (n > stream.size() - fed) n = stream.size() - fed;
        buffer.append(stream, fed, n);
        fed += n;
        for (;;) {
            if (buffer.empty()) break;
            // Exactly the bytes the parser may read, on the heap.
            std::vector<uint8_t> exact(buffer.begin(), buffer.end());
            NatsOp op;
            NatsParseResult r = parser.parse(exact.data(), exact.size(), &op);
            if (r.status == NatsParseStatus::error) {
                if (fed_at_error != nullptr) *fed_at_error = fed;
                return out + "ERROR " + nats_parse_error_name(r.error) + "\n";
            }
            if (r.status == NatsParseStatus::incomplete) break;
            assert_true(r.consumed > 0 && r.consumed <= exact.size());
            out += describe(op, parser) + "\n";
            buffer.erase(0, r.consumed);
        }
    }
    if (!buffer.empty()) out += "INCOMPLETE " + std::to_string(buffer.size()) + "\n";
    return out;
}

// Whole, split at every offset, and byte by byte: all must give `expected`.
void expect_every_feeding(const std::string& stream, const std::string& expected,
                          NatsParser::Limits limits = {}) {
    assert_string_equal(feed(stream, {}, limits).c_str(), expected.c_str());
    for (size_t k = 1; k < stream.size(); ++k) {
        std::string got = feed(stream, {k}, limits);
        if (got != expected) fail_msg("split at %zu:\n%s\nexpected:\n%s", k, got.c_str(), expected.c_str());
    }
    std::vector<size_t> ones(stream.size(), 1);
    assert_string_equal(feed(stream, ones, limits).c_str(), expected.c_str());
}

std::string msg_line(const char* verb, const std::string& rest) { return std::string(verb) + rest; }

// ---- the parser, good streams ---------------------------------------------

void test_every_verb_whole_split_bytewise(void**) {
    std::string payload_with_crlf("a\r\nMSG x 1 1\r\n\x00\xff", 16);
    std::string stream =
        // as nats-server 2.9 writes it: a blank before the CRLF
        "INFO {\"server_id\":\"NABC\",\"version\":\"2.9.10\",\"max_payload\":1048576,"
        "\"headers\":true,\"connect_urls\":[\"127.0.0.1:4222\",\"[::1]:4223\"]} \r\n"
        "PING\r\n"
        "PONG\r\n"
        "+OK\r\n"
        "MSG foo.bar 9 11\r\nHello World\r\n"
        "MSG foo.bar 9 INBOX.34 11\r\nHello World\r\n"
        "MSG empty 1 0\r\n\r\n" +
        msg_line("MSG bin 2 16\r\n", payload_with_crlf) + "\r\n" +
        // case-insensitive verbs, tabs and runs of blanks between fields
        "msg\tlow.case  3 \t r.1   2\r\nok\r\n"
        "ping\r\n"
        "Pong  \r\n"
        "HMSG FOO.BAR 9 34 45\r\nNATS/1.0\r\nFoodGroup: vegetable\r\n\r\nHello World\r\n"
        "HMSG FOO.BAR 9 INBOX.69 34 45\r\nNATS/1.0\r\nFoodGroup: vegetable\r\n\r\nHello World\r\n"
        // no responders, as 2.9 sends it and as later servers do
        "HMSG _INBOX.a 5 16 16\r\nNATS/1.0 503\r\n\r\n\r\n"
        "HMSG _INBOX.a 5 38 38\r\nNATS/1.0 503\r\nNats-Subject: sp.own\r\n\r\n\r\n"
        "hmsg s 6 38 40\r\nNATS/1.0 408 Request Timeout\r\nA: b\r\n\r\nxy\r\n"
        "-ERR 'Stale Connection'\r\n"
        "-err 'Permissions Violation for Publish to \"sp.x\"'\r\n"
        "info {} \r\n";
    std::string expected =
        "INFO id=NABC max_payload=1048576 headers=1 urls=2\n"
        "PING\nPONG\nOK\n"
        "MSG foo.bar sid=9 reply= payload=Hello World\n"
        "MSG foo.bar sid=9 reply=INBOX.34 payload=Hello World\n"
        "MSG empty sid=1 reply= payload=\n"
        "MSG bin sid=2 reply= payload=a\\x0d\\x0aMSG x 1 1\\x0d\\x0a\\x00\\xff\n"
        "MSG low.case sid=3 reply=r.1 payload=ok\n"
        "PING\nPONG\n"
        "HMSG FOO.BAR sid=9 reply= status=0 text= headers=NATS/1.0\\x0d\\x0aFoodGroup: "
        "vegetable\\x0d\\x0a\\x0d\\x0a payload=Hello World\n"
        "HMSG FOO.BAR sid=9 reply=INBOX.69 status=0 text= headers=NATS/1.0\\x0d\\x0aFoodGroup: "
        "vegetable\\x0d\\x0a\\x0d\\x0a payload=Hello World\n"
        "HMSG _INBOX.a sid=5 reply= status=503 text= headers=NATS/1.0 503\\x0d\\x0a\\x0d\\x0a payload=\n"
        "HMSG _INBOX.a sid=5 reply= status=503 text= headers=NATS/1.0 503\\x0d\\x0aNats-Subject: "
        "sp.own\\x0d\\x0a\\x0d\\x0a payload=\n"
        "HMSG s sid=6 reply= status=408 text=Request Timeout headers=NATS/1.0 408 Request "
        "Timeout\\x0d\\x0aA: b\\x0d\\x0a\\x0d\\x0a payload=xy\n"
        "ERR stale_connection 'Stale Connection'\n"
        "ERR permissions_violation 'Permissions Violation for Publish to \"sp.x\"'\n"
        "INFO id= max_payload=1048576 headers=0 urls=0\n";
    expect_every_feeding(stream, expected);
}

void test_incomplete_reports_needed_size(void**) {
    NatsParser parser;
    NatsOp op;
    std::string s = "MSG a 1 100\r\n" + std::string(10, 'x');
    NatsParseResult r = parser.parse(reinterpret_cast<const uint8_t*>(s.data()), s.size(), &op);
    assert_int_equal(r.status, NatsParseStatus::incomplete);
    assert_int_equal(r.needed, 13 + 100 + 2);
    assert_int_equal(r.message_bytes, 100);
    std::string h = "HMSG a 1 12 30\r\nNATS/1.0\r\n";
    NatsParser hp;
    r = hp.parse(reinterpret_cast<const uint8_t*>(h.data()), h.size(), &op);
    assert_int_equal(r.status, NatsParseStatus::incomplete);
    assert_int_equal(r.needed, 16 + 30 + 2);
    assert_int_equal(r.message_bytes, 30);
    // Before the control line is complete the size is not known yet.
    NatsParser fresh;
    r = fresh.parse(reinterpret_cast<const uint8_t*>(s.data()), 8, &op);
    assert_int_equal(r.status, NatsParseStatus::incomplete);
    assert_int_equal(r.needed, 0);
    // Nothing at all is incomplete, not an error.
    r = fresh.parse(reinterpret_cast<const uint8_t*>(s.data()), 0, &op);
    assert_int_equal(r.status, NatsParseStatus::incomplete);
}

void test_info_sets_max_payload_for_what_follows(void**) {
    // In one buffer: the INFO's limit already applies to the next MSG.
    std::string ok = "INFO {\"max_payload\":10}\r\nMSG a 1 10\r\n0123456789\r\n";
    expect_every_feeding(ok, "INFO id= max_payload=10 headers=0 urls=0\nMSG a sid=1 reply= payload=0123456789\n");
    std::string over = "INFO {\"max_payload\":10}\r\nMSG a 1 11\r\n01234567890\r\n";
    expect_every_feeding(over, "INFO id= max_payload=10 headers=0 urls=0\nERROR payload above max_payload\n");
    std::string hover = "INFO {\"max_payload\":20}\r\nHMSG a 1 12 21\r\nNATS/1.0\r\n\r\n123456789\r\n";
    expect_every_feeding(hover, "INFO id= max_payload=20 headers=0 urls=0\nERROR payload above max_payload\n");

    // Clamped to the ceiling; 0 means the default; reset() forgets it.
    NatsParser parser;
    NatsOp op;
    std::string huge = "INFO {\"max_payload\":1099511627776}\r\n";
    NatsParseResult r = parser.parse(reinterpret_cast<const uint8_t*>(huge.data()), huge.size(), &op);
    assert_int_equal(r.status, NatsParseStatus::op);
    assert_int_equal(parser.limits().max_payload, kNatsMaxPayloadCeiling);
    std::string zero = "INFO {\"max_payload\":0}\r\n";
    r = parser.parse(reinterpret_cast<const uint8_t*>(zero.data()), zero.size(), &op);
    assert_int_equal(parser.limits().max_payload, kNatsDefaultMaxPayload);
    NatsParser::Limits small;
    small.max_payload = 5;
    NatsParser limited(small);
    r = limited.parse(reinterpret_cast<const uint8_t*>(huge.data()), huge.size(), &op);
    assert_int_equal(limited.limits().max_payload, kNatsMaxPayloadCeiling);
    limited.reset();
    assert_int_equal(limited.limits().max_payload, 5);
    assert_string_equal(limited.info().server_id, "");
}

void test_limits_at_the_edge(void**) {
    NatsParser::Limits l;
    l.max_control_line = 16;
    l.max_info_line = 40;
    l.max_payload = 4;
    // "MSG abcdef 1 4" is 14 bytes: under 16. Exactly 16 is allowed.
    expect_every_feeding("MSG abcdef 1 4\r\nabcd\r\n", "MSG abcdef sid=1 reply= payload=abcd\n", l);
    expect_every_feeding("MSG abcdefgh 1 4\r\nabcd\r\n", "MSG abcdefgh sid=1 reply= payload=abcd\n", l);
    expect_every_feeding("MSG abcdefghi 1 4\r\nabcd\r\n", "ERROR control line too long\n", l);
    // INFO has its own, longer limit (40 here).
    std::string info = "INFO {\"server_id\":\"0123456789012345678\"}";  // 40 bytes
    assert_int_equal(info.size(), 40);
    expect_every_feeding(info + "\r\n", "INFO id=0123456789012345678 max_payload=1048576 headers=0 urls=0\n", l);
    expect_every_feeding("INFO {\"server_id\":\"01234567890123456789\"}\r\n", "ERROR control line too long\n", l);
}

// ---- the parser, bad streams -----------------------------------------------

struct BadCase {
    const char* name;
    std::string stream;
    const char* error;
};

void test_malformed_input_is_an_error(void**) {
    NatsParser::Limits l;  // 4096 / 64 KiB / 1 MiB
    const BadCase cases[] = {
        {"http reply", "HTTP/1.1 200 OK\r\n", "unknown operation"},
        {"tls handshake", std::string("\x16\x03\x01\x02\x00", 5), "unknown operation"},
        {"client verb PUB", "PUB foo 1\r\nx\r\n", "unknown operation"},
        {"client verb SUB", "SUB foo 1\r\n", "unknown operation"},
        {"client verb CONNECT", "CONNECT {}\r\n", "unknown operation"},
        {"leading blank", " PING\r\n", "unknown operation"},
        {"leading CRLF", "\r\nPING\r\n", "unknown operation"},
        {"verb run on", "PINGX\r\n", "unknown operation"},
        {"MSG run on", "MSGS a 1 1\r\nx\r\n", "unknown operation"},
        {"+OK run on", "+OKAY\r\n", "unknown operation"},
        {"ping with argument", "PING now\r\n", "bad arguments"},
        {"+OK with argument", "+OK 1\r\n", "bad arguments"},
        {"bare LF", "PING\n", "unknown operation"},
        {"bare LF in line", "MSG a 1 1\nx\r\n", "control character in control line"},
        {"CR without LF", "PING\r\rPONG\r\n", "control character in control line"},
        {"NUL in line", std::string("MSG a\0 1 1\r\nx\r\n", 15), "control character in control line"},
        {"DEL in line", "MSG a\x7f 1 1\r\nx\r\n", "control character in control line"},
        {"INFO without json", "INFO\r\n", "bad arguments"},
        {"INFO blank", "INFO   \r\n", "bad arguments"},
        {"INFO not an object", "INFO []\r\n", "bad INFO"},
        {"INFO unterminated", "INFO {\"a\":1\r\n", "bad INFO"},
        {"INFO trailing garbage", "INFO {} x\r\n", "bad INFO"},
        {"INFO wrong type", "INFO {\"max_payload\":\"big\"}\r\n", "bad INFO"},
        {"INFO negative size", "INFO {\"max_payload\":-1}\r\n", "bad INFO"},
        {"INFO fraction", "INFO {\"max_payload\":1.5}\r\n", "bad INFO"},
        {"INFO bool as int", "INFO {\"headers\":1}\r\n", "bad INFO"},
        {"INFO urls not strings", "INFO {\"connect_urls\":[1]}\r\n", "bad INFO"},
        {"INFO raw control char", "INFO {\"server_id\":\"a\tb\"}\r\n", "bad INFO"},
        {"INFO bad escape", "INFO {\"server_id\":\"a\\qb\"}\r\n", "bad INFO"},
        {"INFO lone surrogate", "INFO {\"server_id\":\"\\udc00\"}\r\n", "bad INFO"},
        {"INFO too deep", "INFO {\"x\":" + std::string(40, '[') + std::string(40, ']') + "}\r\n", "bad INFO"},
        {"MSG too few fields", "MSG a 1\r\n", "bad arguments"},
        {"MSG too many fields", "MSG a 1 r x 1\r\nx\r\n", "bad arguments"},
        {"MSG sid not a number", "MSG a b 1\r\nx\r\n", "bad arguments"},
        {"MSG sid overflows", "MSG a 18446744073709551616 1\r\nx\r\n", "bad arguments"},
        {"MSG negative size", "MSG a 1 -1\r\n", "bad arguments"},
        {"MSG size with letters", "MSG a 1 1x\r\nx\r\n", "bad arguments"},
        {"MSG size above max_payload", "MSG a 1 1048577\r\n", "payload above max_payload"},
        {"MSG size overflows", "MSG a 1 99999999999999999999999\r\n", "payload above max_payload"},
        {"MSG payload too long", "MSG a 1 3\r\nabcd\r\n", "payload not followed by CRLF"},
        {"MSG payload too short", "MSG a 1 3\r\nab\r\n\r\n", "payload not followed by CRLF"},
        {"HMSG one size", "HMSG a 1 12\r\nNATS/1.0\r\n\r\n\r\n", "bad arguments"},
        {"HMSG headers above total", "HMSG a 1 20 12\r\nNATS/1.0\r\n\r\n\r\n", "bad arguments"},
        {"HMSG headers too short", "HMSG a 1 5 5\r\nNATS/\r\n", "bad header block"},
        {"HMSG not NATS/1.0", "HMSG a 1 12 12\r\nHTTP/1.0\r\n\r\n\r\n", "bad header block"},
        {"HMSG no empty line", "HMSG a 1 15 15\r\nNATS/1.0\r\nA:b\r\n\r\n", "bad header block"},
        {"HMSG version run on", "HMSG a 1 13 13\r\nNATS/1.0x\r\n\r\n\r\n", "bad header block"},
        {"HMSG status not digits", "HMSG a 1 16 16\r\nNATS/1.0 5x3\r\n\r\n\r\n", "bad header block"},
        {"HMSG status run on", "HMSG a 1 17 17\r\nNATS/1.0 5034\r\n\r\n\r\n", "bad header block"},
        {"control line too long", "MSG " + std::string(5000, 'a') + " 1 1\r\nx\r\n", "control line too long"},
        {"INFO too long", "INFO {\"x\":\"" + std::string(70000, 'a') + "\"}\r\n", "control line too long"},
    };
    for (const BadCase& c : cases) {
        std::string expected = std::string("ERROR ") + c.error + "\n";
        std::string got = feed(c.stream, {}, l);
        if (got != expected) fail_msg("%s: got %s", c.name, got.c_str());
        // Byte by byte too (the long ones only whole and in halves: each
        // call copies the buffer).
        if (c.stream.size() < 1000) {
            std::vector<size_t> ones(c.stream.size(), 1);
            got = feed(c.stream, ones, l);
        } else {
            got = feed(c.stream, {c.stream.size() / 2}, l);
        }
        if (got != expected) fail_msg("%s (split): got %s", c.name, got.c_str());
    }
}

// Garbage is refused as soon as a byte cannot continue a verb, and an
// oversize MSG at its control line: none of it is buffered.
void test_errors_come_early(void**) {
    struct Early {
        std::string stream;
        size_t at_most;
    };
    const Early cases[] = {
        {"HTTP/1.1 200 OK\r\n", 2},
        {std::string("\x16\x03\x01", 3), 1},
        {"GET / HTTP/1.1\r\n", 1},
        {"PUB a 1\r\n", 2},
        {"MSG a 1 1048577\r\n" + std::string(2000, 'x'), 17},
        {"MSG " + std::string(8000, 'a'), 4097},
        {"PINGPONG\r\n", 5},
    };
    for (const Early& c : cases) {
        size_t at = 0;
        std::vector<size_t> ones(c.stream.size(), 1);
        std::string got = feed(c.stream, ones, {}, &at);
        assert_true(got.rfind("ERROR ", 0) == 0);
        if (at > c.at_most) fail_msg("%s: error after %zu bytes, expected at most %zu", escaped(c.stream.substr(0, 20)).c_str(), at, c.at_most);
    }
}

// ---- -ERR ------------------------------------------------------------------

void test_every_server_error(void**) {
    struct ErrCase {
        const char* text;
        NatsServerError kind;
        bool closes;
    };
    const ErrCase cases[] = {
        {"'Unknown Protocol Operation'", NatsServerError::unknown_operation, true},
        {"'Attempted To Connect To Route Port'", NatsServerError::route_port, true},
        {"'attempted to connect to route port'", NatsServerError::route_port, true},
        {"'Authorization Violation'", NatsServerError::authorization_violation, true},
        {"'Authorization Timeout'", NatsServerError::authorization_timeout, true},
        {"'Authentication Timeout'", NatsServerError::authorization_timeout, true},
        {"'User Authentication Expired'", NatsServerError::user_authentication_expired, true},
        {"'Account Authentication Expired'", NatsServerError::account_authentication_expired, true},
        {"'User Authentication Revoked'", NatsServerError::authentication_revoked, true},
        {"'Invalid Client Protocol'", NatsServerError::invalid_client_protocol, true},
        {"'invalid client protocol'", NatsServerError::invalid_client_protocol, true},
        {"'no responders requires headers support'", NatsServerError::no_responders_requires_headers, true},
        {"'Maximum Control Line Exceeded'", NatsServerError::max_control_line, true},
        {"'maximum control line exceeded: State 0, max_control_line 4096, Buffer len 5000 (snip: "
         "\"PUB aaaa\"...)'",
         NatsServerError::max_control_line, true},
        {"'Maximum Connections Exceeded'", NatsServerError::max_connections, true},
        {"'maximum connections exceeded'", NatsServerError::max_connections, true},
        {"'maximum account active connections exceeded'", NatsServerError::max_account_connections, true},
        {"'Maximum Payload Violation'", NatsServerError::max_payload, true},
        {"'Secure Connection - TLS Required'", NatsServerError::tls_required, true},
        {"'Stale Connection'", NatsServerError::stale_connection, true},
        {"'Slow Consumer'", NatsServerError::slow_consumer, true},
        {"'Parser Error'", NatsServerError::parser_error, true},
        {"'Failed Account Registration'", NatsServerError::account_registration, true},
        {"'Connection throttling is active. Please try again later.'", NatsServerError::throttled, true},
        {"'Invalid Subject'", NatsServerError::invalid_subject, false},
        {"'Invalid Publish Subject'", NatsServerError::invalid_publish_subject, false},
        {"'Invalid Subscription'", NatsServerError::invalid_subscription, false},
        {"'Permissions Violation for Subscription to \"sp.d.>\"'", NatsServerError::permissions_violation, false},
        {"'Permissions Violation for Subscription to \"a\" using queue \"q\" (sid \"4\")'",
         NatsServerError::permissions_violation, false},
        {"'Permissions Violation for Publish to \"sp.to.00\"'", NatsServerError::permissions_violation, false},
        {"'Permissions Violation for Publish with Reply of \"_INBOX.x\"'", NatsServerError::permissions_violation,
         false},
        {"'maximum subscriptions exceeded'", NatsServerError::max_subscriptions, false},
        {"'Something New'", NatsServerError::other, true},
        {"unquoted text", NatsServerError::other, true},
        {"", NatsServerError::other, true},
    };
    for (const ErrCase& c : cases) {
        std::string text = c.text;
        std::string stream = text.empty() ? "-ERR\r\n" : "-ERR " + text + "\r\n";
        std::string inner = text.size() >= 2 && text.front() == '\'' ? text.substr(1, text.size() - 2) : text;
        std::string expected = std::string("ERR ") + nats_server_error_name(c.kind) + " '" + inner + "'\n";
        expect_every_feeding(stream, expected);
        assert_int_equal(nats_error_closes(c.kind), c.closes);
    }
}

// ---- INFO -------------------------------------------------------------------

void test_info_fields(void**) {
    std::string urls;
    for (int i = 0; i < 40; ++i) urls += (i ? "," : "") + std::string("\"10.0.0.") + std::to_string(i) + ":4222\"";
    std::string json =
        "{ \"server_id\" : \"NB6AXRRBHF23T67JM545XTFWI6FSADYADEEAAJSDD3QZPQSVHI4MHLUR\",\n"
        "  \"server_name\":\"caf\\u00e9 \\ud83d\\ude00\", \"version\":\"2.9.10\", \"proto\":1,"
        "  \"go\":\"go1.19.8\", \"host\":\"0.0.0.0\", \"port\":4222, \"headers\":true,"
        "  \"auth_required\":true, \"tls_required\":false, \"tls_available\":true,"
        "  \"max_payload\":65536, \"client_id\":42, \"client_ip\":\"127.0.0.1\","
        "  \"nonce\":\"abc\\\"def\", \"ldm\":true, \"cluster\":\"t\", \"domain\":null,"
        "  \"jetstream\":{\"a\":[1,2.5e3,-0.5,{\"b\":null}],\"c\":\"\\/\"},"
        "  \"connect_urls\":[" + urls + "]}";
    NatsInfo info;
    assert_true(nats_parse_info(json.data(), json.size(), &info));
    assert_string_equal(info.server_id, "NB6AXRRBHF23T67JM545XTFWI6FSADYADEEAAJSDD3QZPQSVHI4MHLUR");
    assert_string_equal(info.server_name, "caf\xc3\xa9 \xf0\x9f\x98\x80");
    assert_string_equal(info.version, "2.9.10");
    assert_string_equal(info.nonce, "abc\"def");
    assert_int_equal(info.proto, 1);
    assert_true(info.headers);
    assert_true(info.auth_required);
    assert_false(info.tls_required);
    assert_true(info.ldm);
    assert_int_equal(info.max_payload, 65536);
    assert_int_equal(info.client_id, 42);
    assert_int_equal(info.connect_url_count, kNatsMaxConnectUrls);
    assert_int_equal(info.connect_urls_dropped, 40 - kNatsMaxConnectUrls);
    assert_string_equal(info.connect_urls[0], "10.0.0.0:4222");
    assert_string_equal(info.connect_urls[31], "10.0.0.31:4222");

    // A URL too long to be an address is dropped, not cut; an overlong
    // informational string is cut on a character boundary.
    std::string long_url = "{\"connect_urls\":[\"" + std::string(100, '1') + "\",\"[::1]:4222\"],"
                           "\"server_id\":\"" + std::string(100, 'x') + "\","
                           "\"server_name\":\"" + std::string(62, 'y') + "\\u00e9\"}";
    assert_true(nats_parse_info(long_url.data(), long_url.size(), &info));
    assert_int_equal(info.connect_url_count, 1);
    assert_int_equal(info.connect_urls_dropped, 1);
    assert_string_equal(info.connect_urls[0], "[::1]:4222");
    assert_int_equal(std::strlen(info.server_id), sizeof info.server_id - 1);
    assert_string_equal(info.server_name, std::string(62, 'y').c_str());  // é did not fit whole

    // Defaults, null as absent, an empty object.
    const char* empty = "{}";
    assert_true(nats_parse_info(empty, 2, &info));
    assert_int_equal(info.max_payload, kNatsDefaultMaxPayload);
    assert_false(info.headers);
    const char* nulls = "{\"headers\":null,\"max_payload\":null,\"connect_urls\":null}";
    assert_true(nats_parse_info(nulls, std::strlen(nulls), &info));
    assert_int_equal(info.max_payload, kNatsDefaultMaxPayload);

    const char* bad[] = {"", "{", "{\"a\"}", "{\"a\":}", "{\"a\":1,}", "{,}", "{\"a\":01}",
                         "{\"a\":tru}", "{\"a\":[1,]}", "{\"a\":\"x}", "{} {}", "{\"a\":1e}",
                         "{\"a\":\"\\u12\"}", "{\"a\":\"\\ud800x\"}", "{\"client_id\":-3}"};
    for (const char* b : bad)
        if (nats_parse_info(b, std::strlen(b), &info)) fail_msg("accepted %s", b);
}

// ---- encoders ----------------------------------------------------------------

// Every encoder gives 0 for every buffer smaller than its output.
template <class Encode>
void expect_exact(Encode encode, const std::string& expected) {
    char out[1024];
    size_t n = encode(out, sizeof out);
    assert_int_equal(n, expected.size());
    assert_memory_equal(out, expected.data(), n);
    for (size_t cap = 0; cap < expected.size(); ++cap) {
        std::vector<char> small(cap + 1);
        if (encode(small.data(), cap) != 0) fail_msg("cap %zu accepted for %s", cap, expected.c_str());
    }
}

void test_encode_connect(void**) {
    NatsConnectOptions o;
    o.version = "1.2.3";
    expect_exact([&](char* out, size_t cap) { return nats_encode_connect(out, cap, o); },
                 "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\"headers\":true,"
                 "\"no_responders\":true,\"protocol\":1,\"echo\":false,\"lang\":\"cpp\",\"version\":\"1.2.3\"}\r\n");
    o.name = "relay \"a\"";
    o.user = "u\\1";
    o.pass = "p\x01\n:@";
    o.echo = true;
    expect_exact([&](char* out, size_t cap) { return nats_encode_connect(out, cap, o); },
                 "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\"headers\":true,"
                 "\"no_responders\":true,\"protocol\":1,\"echo\":true,\"lang\":\"cpp\",\"version\":\"1.2.3\","
                 "\"name\":\"relay \\\"a\\\"\",\"user\":\"u\\\\1\",\"pass\":\"p\\u0001\\u000a:@\"}\r\n");
    NatsConnectOptions t;
    t.version = "1";
    t.auth_token = "s3cr\xc3\xa9t";
    expect_exact([&](char* out, size_t cap) { return nats_encode_connect(out, cap, t); },
                 "CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,\"headers\":true,"
                 "\"no_responders\":true,\"protocol\":1,\"echo\":false,\"lang\":\"cpp\",\"version\":\"1\","
                 "\"auth_token\":\"s3cr\xc3\xa9t\"}\r\n");
}

void test_encode_pub_hpub_sub_unsub(void**) {
    expect_exact([](char* o, size_t c) { return nats_encode_pub(o, c, "FOO", "", 11); }, "PUB FOO 11\r\n");
    expect_exact([](char* o, size_t c) { return nats_encode_pub(o, c, "FRONT.DOOR", "INBOX.22", 11); },
                 "PUB FRONT.DOOR INBOX.22 11\r\n");
    expect_exact([](char* o, size_t c) { return nats_encode_pub(o, c, "NOTIFY", "", 0); }, "PUB NOTIFY 0\r\n");
    expect_exact([](char* o, size_t c) { return nats_encode_hpub(o, c, "FOO", "", 22, 11); }, "HPUB FOO 22 33\r\n");
    expect_exact([](char* o, size_t c) { return nats_encode_hpub(o, c, "FRONT.DOOR", "INBOX.22", 45, 11); },
                 "HPUB FRONT.DOOR INBOX.22 45 56\r\n");
    expect_exact([](char* o, size_t c) { return nats_encode_sub(o, c, "FOO", "", 1); }, "SUB FOO 1\r\n");
    expect_exact([](char* o, size_t c) { return nats_encode_sub(o, c, "BAR", "G1", 44); }, "SUB BAR G1 44\r\n");
    expect_exact([](char* o, size_t c) { return nats_encode_sub(o, c, "sp.d.*", "", 18446744073709551615ull); },
                 "SUB sp.d.* 18446744073709551615\r\n");
    expect_exact([](char* o, size_t c) { return nats_encode_sub(o, c, "sp.>", "", 0); }, "SUB sp.> 0\r\n");
    expect_exact([](char* o, size_t c) { return nats_encode_unsub(o, c, 1, 0); }, "UNSUB 1\r\n");
    expect_exact([](char* o, size_t c) { return nats_encode_unsub(o, c, 1, 5); }, "UNSUB 1 5\r\n");

    char out[256];
    const char* bad_publish[] = {"", ".", "a.", ".a", "a..b", "a b", "a\tb", "a.*", "a.>", "*", ">",
                                 "a*b", "a>b", "caf\xc3\xa9", "a\x01"};
    for (const char* s : bad_publish) {
        if (nats_encode_pub(out, sizeof out, s, "", 1) != 0) fail_msg("PUB accepted subject '%s'", s);
        if (nats_encode_pub(out, sizeof out, "ok", s, 1) != 0 && s[0] != '\0')
            fail_msg("PUB accepted reply '%s'", s);
        if (nats_encode_hpub(out, sizeof out, s, "", 12, 1) != 0) fail_msg("HPUB accepted subject '%s'", s);
    }
    assert_int_equal(nats_encode_hpub(out, sizeof out, "a", "", 11, 1), 0);  // below an empty block
    const char* bad_sub[] = {"", "a.>.b", "a>", ">.a", "a..*", "a *"};
    for (const char* s : bad_sub)
        if (nats_encode_sub(out, sizeof out, s, "", 1) != 0) fail_msg("SUB accepted subject '%s'", s);
    assert_int_equal(nats_encode_sub(out, sizeof out, "a", "q 1", 1), 0);
    assert_int_equal(nats_encode_sub(out, sizeof out, "a", "q\x01", 1), 0);
    assert_true(nats_subject_valid("a.*.c", true));
    assert_true(nats_subject_valid(">", true));
    assert_false(nats_subject_valid("a.*.c", false));
}

void test_headers_encode_and_lookup(void**) {
    const NatsHeader h[] = {{"Bar", "Baz"}, {"Nats-Msg-Id", "  x 1  "}, {"Bar", "second"}};
    char block[256];
    size_t n = nats_encode_headers(block, sizeof block, h, 3);
    std::string expected = "NATS/1.0\r\nBar: Baz\r\nNats-Msg-Id:   x 1  \r\nBar: second\r\n\r\n";
    assert_int_equal(n, expected.size());
    assert_memory_equal(block, expected.data(), n);
    expect_exact([&](char* o, size_t c) { return nats_encode_headers(o, c, h, 3); }, expected);
    expect_exact([&](char* o, size_t c) { return nats_encode_headers(o, c, h, 0); }, "NATS/1.0\r\n\r\n");
    const NatsHeader bad[] = {{"", "x"}, {"A B", "x"}, {"A:B", "x"}, {"A", "x\r\ny: z"}, {"A", "x\n"}};
    for (const NatsHeader& b : bad) assert_int_equal(nats_encode_headers(block, sizeof block, &b, 1), 0);

    // What an HPUB would carry, delivered as HMSG and read back.
    std::string stream = "HMSG s 1 " + std::to_string(n) + " " + std::to_string(n + 2) + "\r\n" +
                         std::string(block, n) + "hi\r\n";
    NatsParser parser;
    NatsOp op;
    NatsParseResult r = parser.parse(reinterpret_cast<const uint8_t*>(stream.data()), stream.size(), &op);
    assert_int_equal(r.status, NatsParseStatus::op);
    std::string_view v;
    assert_true(nats_header_value(op.msg.headers, op.msg.headers_len, "Bar", &v));
    assert_true(v == "Baz");
    assert_true(nats_header_value(op.msg.headers, op.msg.headers_len, "Nats-Msg-Id", &v));
    assert_true(v == "x 1");
    assert_false(nats_header_value(op.msg.headers, op.msg.headers_len, "bar", &v));  // case-sensitive
    assert_false(nats_header_value(op.msg.headers, op.msg.headers_len, "Missing", &v));
    assert_true(std::string_view(reinterpret_cast<const char*>(op.msg.payload), op.msg.payload_len) == "hi");
}

// ---- tokens -------------------------------------------------------------------

void test_id_tokens(void**) {
    uint8_t all[256];
    for (int i = 0; i < 256; ++i) all[i] = static_cast<uint8_t>(i);
    char token[512];
    size_t n = nats_token_encode(all, sizeof all, token, sizeof token);
    assert_int_equal(n, 512);
    assert_memory_equal(token, "000102030405060708090a0b0c0d0e0f10", 34);
    assert_memory_equal(token + 500, "fafbfcfdfeff", 12);
    // A token is a valid subject token.
    std::string subject = "sp.d." + std::string(token, n);
    assert_true(nats_subject_valid(subject, false));
    uint8_t back[256];
    assert_int_equal(nats_token_decode(std::string_view(token, n), back, sizeof back), 256);
    assert_memory_equal(back, all, 256);

    assert_int_equal(nats_token_encode("dev\0", 4, token, sizeof token), 8);
    assert_memory_equal(token, "64657600", 8);
    assert_int_equal(nats_token_encode("a", 0, token, sizeof token), 0);
    assert_int_equal(nats_token_encode("abc", 3, token, 5), 0);
    assert_int_equal(nats_token_encode("abc", 3, token, 6), 6);

    assert_int_equal(nats_token_decode("", back, sizeof back), 0);
    assert_int_equal(nats_token_decode("abc", back, sizeof back), 0);
    assert_int_equal(nats_token_decode("AB", back, sizeof back), 0);  // one id, one token
    assert_int_equal(nats_token_decode("0g", back, sizeof back), 0);
    assert_int_equal(nats_token_decode("0102", back, 1), 0);
    assert_int_equal(nats_token_decode("0102", back, 2), 2);
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_verb_whole_split_bytewise),
        cmocka_unit_test(test_incomplete_reports_needed_size),
        cmocka_unit_test(test_info_sets_max_payload_for_what_follows),
        cmocka_unit_test(test_limits_at_the_edge),
        cmocka_unit_test(test_malformed_input_is_an_error),
        cmocka_unit_test(test_errors_come_early),
        cmocka_unit_test(test_every_server_error),
        cmocka_unit_test(test_info_fields),
        cmocka_unit_test(test_encode_connect),
        cmocka_unit_test(test_encode_pub_hpub_sub_unsub),
        cmocka_unit_test(test_headers_encode_and_lookup),
        cmocka_unit_test(test_id_tokens),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
