// nats_protocol.h - the NATS client protocol, written by hand: a parser of
// what a NATS server sends (INFO, MSG, HMSG, PING, PONG, +OK, -ERR) and
// encoders of what a client sends (CONNECT, PUB, HPUB, SUB, UNSUB, PING,
// PONG), after https://docs.nats.io/reference/reference-protocols/nats-protocol
// and ADR-4 (headers). No I/O, no allocation, no logging: the link
// (nats_link.h) owns the socket and the buffers.
//
// Why by hand: the protocol is a dozen text verbs, and the server links
// nothing beyond libc. Why this parser shape: like picohttpparser, parse()
// looks at the bytes received so far, from the start of one operation, and
// either returns a whole operation (pointers into the caller's buffer, no
// copy), or says "incomplete" (and, once the control line of a MSG is known,
// how many bytes the whole operation needs, so the caller can size its
// buffer or decide to skip it), or says "error". The parser remembers how
// far it has already scanned the current control line, so bytes trickling
// in one at a time cost O(1) each, not a rescan of the line.
//
// Strictness, because a link that buffers garbage is a link that can be
// made to hold anything:
//  - the verb is recognised as it arrives: the first byte that cannot
//    continue any server verb is an error (an HTTP reply, a TLS handshake or
//    a client verb is refused after a byte or two, not buffered);
//  - control lines end in CRLF; other control characters, a bare CR or LF,
//    or a line longer than its limit (INFO may be longer than the others:
//    its connect_urls grow with the cluster) are errors;
//  - declared sizes are decimal, at most max_payload (from INFO), and the
//    payload must be followed by CRLF; HMSG headers must be a NATS/1.0
//    block that ends in an empty line;
//  - verbs are case-insensitive, as the protocol allows; fields are
//    separated by any run of spaces and tabs.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string_view>

// The server's own default for client control lines (max_control_line):
// a MSG line from the server repeats a subject and reply a client sent.
constexpr size_t kNatsMaxControlLine = 4096;
// An INFO line: a JSON object whose connect_urls list every server of the
// cluster (about 25 bytes each).
constexpr size_t kNatsMaxInfoLine = 64 * 1024;
// nats-server refuses a max_payload above 64 MiB; a larger one in INFO is
// clamped to this.
constexpr uint64_t kNatsMaxPayloadCeiling = 64u << 20;
// The payload limit when INFO gives none (the server's default).
constexpr uint64_t kNatsDefaultMaxPayload = 1u << 20;
// connect_urls kept from one INFO; the rest are counted and ignored.
constexpr size_t kNatsMaxConnectUrls = 32;
// Longest "host:port" kept from connect_urls ("[ipv6%zone]:port" fits).
constexpr size_t kNatsMaxUrlText = 80;

// What a client needs from INFO. Strings are NUL-terminated and cut to fit
// (they are only shown in logs), except connect_urls, whose overlong
// entries are dropped (a cut address would be a wrong one).
struct NatsInfo {
    char server_id[64] = "";
    char server_name[64] = "";
    char version[32] = "";
    char nonce[64] = "";  // present: the server wants a signed nonce (nkeys)
    uint64_t max_payload = kNatsDefaultMaxPayload;
    uint64_t client_id = 0;
    int64_t proto = 0;
    bool headers = false;
    bool auth_required = false;
    bool tls_required = false;
    bool ldm = false;  // lame duck mode: the server is about to go away
    size_t connect_url_count = 0;
    size_t connect_urls_dropped = 0;
    char connect_urls[kNatsMaxConnectUrls][kNatsMaxUrlText] = {};
};

// Parses the JSON object of an INFO line into *out (reset first). Unknown
// keys are skipped, whatever their value; a known key with a value of the
// wrong type, malformed JSON, or nesting deeper than 32 is an error.
// Returns false on error (*out is then unspecified).
bool nats_parse_info(const char* json, size_t len, NatsInfo* out);

enum class NatsOpType : uint8_t { info, msg, hmsg, ping, pong, ok, err };

// MSG or HMSG. Every pointer points into the buffer given to parse().
struct NatsMessage {
    std::string_view subject;
    std::string_view reply;     // empty when none
    std::string_view sid_text;  // as the server sent it
    uint64_t sid = 0;
    // HMSG: the whole header block, from "NATS/1.0" to the empty line
    // included; MSG: nullptr and 0.
    const uint8_t* headers = nullptr;
    size_t headers_len = 0;
    const uint8_t* payload = nullptr;
    size_t payload_len = 0;
    // HMSG: the status on the version line ("NATS/1.0 503" is "no
    // responders": a request published with a reply subject reached no
    // subscriber) and its description, if any; 0 and empty otherwise.
    int status = 0;
    std::string_view status_text;
};

// Every -ERR the server sends to clients (nats-server's client.go,
// server.go and parser.go, and the protocol documentation), matched on the
// start of the message, case-insensitively (servers have capitalised them
// differently over the years).
enum class NatsServerError : uint8_t {
    unknown_operation,          // 'Unknown Protocol Operation'
    route_port,                 // 'Attempted To Connect To Route Port'
    authorization_violation,    // 'Authorization Violation'
    authorization_timeout,      // 'Authorization Timeout', 'Authentication Timeout'
    user_authentication_expired,     // 'User Authentication Expired'
    account_authentication_expired,  // 'Account Authentication Expired'
    authentication_revoked,     // 'User Authentication Revoked'
    invalid_client_protocol,    // 'Invalid Client Protocol'
    no_responders_requires_headers,  // 'No Responders Requires Headers Support'
    max_control_line,           // 'Maximum Control Line Exceeded...'
    max_connections,            // 'Maximum Connections Exceeded'
    max_account_connections,    // 'Maximum Account Active Connections Exceeded'
    max_payload,                // 'Maximum Payload Violation'
    tls_required,               // 'Secure Connection - TLS Required'
    stale_connection,           // 'Stale Connection'
    slow_consumer,              // 'Slow Consumer'
    parser_error,               // 'Parser Error'
    account_registration,       // 'Failed Account Registration'
    throttled,                  // 'Connection throttling is active...'
    // The connection stays open after these:
    invalid_subject,            // 'Invalid Subject'
    invalid_publish_subject,    // 'Invalid Publish Subject'
    invalid_subscription,       // 'Invalid Subscription'
    permissions_violation,      // 'Permissions Violation for ...'
    max_subscriptions,          // 'Maximum Subscriptions Exceeded'
    other,                      // anything else
};

NatsServerError nats_classify_error(std::string_view text);
// True when the server closes the connection after this error (and for
// `other`: an error we do not know is taken as the end of the connection).
bool nats_error_closes(NatsServerError e);
const char* nats_server_error_name(NatsServerError e);

struct NatsOp {
    NatsOpType type = NatsOpType::ping;
    NatsMessage msg;                // msg, hmsg
    NatsServerError error = NatsServerError::other;  // err
    std::string_view error_text;    // err: the message, without its quotes
    // info: NatsParser::info() holds the INFO just parsed.
};

enum class NatsParseError : uint8_t {
    none,
    unknown_operation,  // not a verb a server sends
    line_too_long,      // no CRLF within the control-line limit
    bad_line,           // a control character, or a CR without LF
    bad_arguments,      // wrong number or form of fields
    payload_too_large,  // a declared size above max_payload
    bad_payload_end,    // the payload is not followed by CRLF
    bad_headers,        // HMSG headers not a NATS/1.0 block
    bad_info,           // INFO is not a valid JSON object of the right types
};
const char* nats_parse_error_name(NatsParseError e);

enum class NatsParseStatus : uint8_t { op, incomplete, error };

struct NatsParseResult {
    NatsParseStatus status;
    size_t consumed;       // op: bytes of the operation (drop them before the next call)
    size_t needed;         // incomplete: the operation's whole size once known, else 0
    size_t message_bytes;  // incomplete, needed known: the message's header and payload bytes
    NatsParseError error;  // error
};

class NatsParser {
   public:
    struct Limits {
        size_t max_control_line = kNatsMaxControlLine;
        size_t max_info_line = kNatsMaxInfoLine;
        // Until an INFO says otherwise. INFO sets it (clamped to
        // kNatsMaxPayloadCeiling), so a MSG that follows in the same
        // buffer is already held to the server's value.
        uint64_t max_payload = kNatsDefaultMaxPayload;
    };

    NatsParser() = default;
    explicit NatsParser(const Limits& limits) : initial_limits_(limits), limits_(limits) {}

    // Parses one operation from the start of buf[0..len). Between calls the
    // caller may only append to the buffer (the bytes already seen must stay
    // where they are, or be consumed: after an `op` result, the next call
    // starts at the byte after it). On `op`, *op is filled in, pointing into
    // buf. After an `error` the stream is unusable: reset() before reuse.
    NatsParseResult parse(const uint8_t* buf, size_t len, NatsOp* op);

    // Forgets any partial operation and the last INFO (a new connection);
    // limits return to those given at construction.
    void reset();
    // Forgets the partial operation it was scanning (its caller is skipping
    // it whole); the INFO and the limits stay.
    void forget_partial() { scanned_ = 0; }

    const NatsInfo& info() const { return info_; }
    const Limits& limits() const { return limits_; }

   private:
    NatsParseResult refuse(NatsParseError e);

    Limits initial_limits_ = Limits();
    Limits limits_ = Limits();
    size_t scanned_ = 0;  // bytes of the current control line checked so far
    NatsInfo info_;
};

// ---- encoders ----------------------------------------------------------------
// Each writes into out[0..cap) and returns the bytes written (no NUL), or 0
// when an argument is invalid or out is too small; nothing is sent then.

struct NatsConnectOptions {
    const char* name = nullptr;     // nullptr: omitted
    const char* lang = "cpp";
    const char* version = "";
    const char* user = nullptr;     // user and pass, or auth_token, or none
    const char* pass = nullptr;
    const char* auth_token = nullptr;
    bool echo = false;  // false: our own publishes are not sent back to our subscriptions
};

// CONNECT {...}\r\n with verbose and pedantic false, headers and
// no_responders true, protocol 1, and the options above; strings are JSON
// escaped (quote, backslash and control characters; other bytes as given).
size_t nats_encode_connect(char* out, size_t cap, const NatsConnectOptions& options);

// The control line of PUB (subject [reply] #bytes\r\n) or HPUB (subject
// [reply] #header-bytes #total-bytes\r\n); the caller sends the headers,
// the payload and "\r\n" after it. subject and reply must be valid
// publish subjects (no wildcard); headers_len must be at least 12 (an
// empty NATS/1.0 block).
size_t nats_encode_pub(char* out, size_t cap, std::string_view subject, std::string_view reply,
                       size_t payload_len);
size_t nats_encode_hpub(char* out, size_t cap, std::string_view subject, std::string_view reply,
                        size_t headers_len, size_t payload_len);

// SUB subject [queue] sid\r\n. subject may hold wildcards (* and > as whole
// tokens, > last); queue, when not empty, is one field without spaces.
size_t nats_encode_sub(char* out, size_t cap, std::string_view subject, std::string_view queue,
                       uint64_t sid);
// UNSUB sid [max_msgs]\r\n; max_msgs 0 means none (unsubscribe now).
size_t nats_encode_unsub(char* out, size_t cap, uint64_t sid, uint64_t max_msgs);

constexpr std::string_view kNatsPing = "PING\r\n";
constexpr std::string_view kNatsPong = "PONG\r\n";

struct NatsHeader {
    std::string_view name;   // printable ASCII without ':' or space, not empty
    std::string_view value;  // no CR or LF
};
// A header block for HPUB: "NATS/1.0\r\n" then "name: value\r\n" for each,
// then "\r\n".
size_t nats_encode_headers(char* out, size_t cap, const NatsHeader* headers, size_t count);

// The value of the first header named exactly `name` (headers are
// case-preserving and, per ADR-4, matched case-sensitively) in a block as
// NatsMessage::headers gives it, leading and trailing blanks removed.
bool nats_header_value(const uint8_t* block, size_t len, std::string_view name,
                       std::string_view* value);

// A subject: non-empty tokens of printable ASCII other than space,
// separated by single dots. With wildcards, a token may be "*", and the
// last may be ">"; without, neither may appear as a token.
bool nats_subject_valid(std::string_view subject, bool wildcards);

// ---- ids in subjects -------------------------------------------------------
// Device ids are arbitrary bytes; a subject token cannot hold a dot, a
// space, a control byte or a wildcard, and subjects are case-sensitive. An
// id becomes one token as lowercase hexadecimal, two characters a byte:
// "dev\x00" is "64657600". Lowercase only, so that one id has exactly one
// token (the decoder refuses uppercase).

// Writes 2*len characters; returns that, or 0 if len is 0 or cap too small.
size_t nats_token_encode(const void* bytes, size_t len, char* out, size_t cap);
// Decodes a token made by nats_token_encode into out[0..cap); returns the
// byte count, or 0 for an empty, odd-length or non-lowercase-hex token, or
// one that does not fit.
size_t nats_token_decode(std::string_view token, uint8_t* out, size_t cap);
