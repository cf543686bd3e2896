// nats_protocol.cpp - see nats_protocol.h.
#include "nats_protocol.h"

#include <cstring>

namespace {

bool is_blank(uint8_t c) { return c == ' ' || c == '\t'; }

uint8_t lower(uint8_t c) { return (c >= 'A' && c <= 'Z') ? static_cast<uint8_t>(c + 32) : c; }

// True when the first n bytes of a equal those of b, ignoring ASCII case.
bool equal_ci(const uint8_t* a, const char* b, size_t n) {
    for (size_t i = 0; i < n; ++i)
        if (lower(a[i]) != lower(static_cast<uint8_t>(b[i]))) return false;
    return true;
}

std::string_view view(const uint8_t* p, size_t n) {
    return std::string_view(reinterpret_cast<const char*>(p), n);
}

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(static_cast<uint8_t>(s.front()))) s.remove_prefix(1);
    while (!s.empty() && is_blank(static_cast<uint8_t>(s.back()))) s.remove_suffix(1);
    return s;
}

// Splits s at runs of blanks into at most `max` fields. Returns the count,
// or max + 1 when there are more.
size_t split_fields(std::string_view s, std::string_view* fields, size_t max) {
    size_t n = 0;
    size_t i = 0;
    while (i < s.size()) {
        while (i < s.size() && is_blank(static_cast<uint8_t>(s[i]))) ++i;
        if (i == s.size()) break;
        size_t start = i;
        while (i < s.size() && !is_blank(static_cast<uint8_t>(s[i]))) ++i;
        if (n == max) return max + 1;
        fields[n++] = s.substr(start, i - start);
    }
    return n;
}

enum class Decimal { ok, not_number, too_large };

// 1..20 decimal digits, no sign, at most `max`.
Decimal parse_decimal(std::string_view s, uint64_t max, uint64_t* out) {
    if (s.empty()) return Decimal::not_number;
    uint64_t v = 0;
    bool overflow = false;
    for (char ch : s) {
        if (ch < '0' || ch > '9') return Decimal::not_number;
        auto d = static_cast<uint64_t>(ch - '0');
        if (v > (UINT64_MAX - d) / 10) overflow = true;
        else v = v * 10 + d;
    }
    if (overflow || v > max) return Decimal::too_large;
    *out = v;
    return Decimal::ok;
}

// ---- JSON, for INFO --------------------------------------------------------

constexpr int kMaxJsonDepth = 32;

class Json {
   public:
    Json(const char* p, size_t len) : p_(p), end_(p + len) {}

    void skip_ws() {
        while (p_ < end_ && (*p_ == ' ' || *p_ == '\t' || *p_ == '\n' || *p_ == '\r')) ++p_;
    }
    bool eat(char c) {
        skip_ws();
        if (p_ < end_ && *p_ == c) {
            ++p_;
            return true;
        }
        return false;
    }
    bool at_end() {
        skip_ws();
        return p_ == end_;
    }
    char peek() {
        skip_ws();
        return p_ < end_ ? *p_ : '\0';
    }
    bool literal(const char* word) {
        size_t n = std::strlen(word);
        skip_ws();
        if (static_cast<size_t>(end_ - p_) < n || std::memcmp(p_, word, n) != 0) return false;
        p_ += n;
        return true;
    }

    // A string, decoded into out[0..cap) with a NUL (out may be nullptr to
    // skip it); *fits says whether all of it fitted.
    bool string(char* out, size_t cap, bool* fits) {
        if (!eat('"')) return false;
        size_t n = 0;
        bool all = true;
        auto put = [&](uint32_t byte) {
            if (out != nullptr && n + 1 < cap) out[n++] = static_cast<char>(byte);
            else all = false;
        };
        for (;;) {
            if (p_ == end_) return false;
            auto c = static_cast<uint8_t>(*p_++);
            if (c == '"') break;
            if (c < 0x20) return false;
            if (c != '\\') {
                put(c);
                continue;
            }
            if (p_ == end_) return false;
            char e = *p_++;
            switch (e) {
                case '"': put('"'); break;
                case '\\': put('\\'); break;
                case '/': put('/'); break;
                case 'b': put('\b'); break;
                case 'f': put('\f'); break;
                case 'n': put('\n'); break;
                case 'r': put('\r'); break;
                case 't': put('\t'); break;
                case 'u': {
                    uint32_t cp;
                    if (!hex4(&cp)) return false;
                    if (cp >= 0xDC00 && cp <= 0xDFFF) return false;  // lone low surrogate
                    if (cp >= 0xD800 && cp <= 0xDBFF) {
                        uint32_t low;
                        // "\uDC00".."\uDFFF" right after it, nothing between.
                        if (end_ - p_ < 2 || p_[0] != '\\' || p_[1] != 'u') return false;
                        p_ += 2;
                        if (!hex4(&low) || low < 0xDC00 || low > 0xDFFF) return false;
                        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
                    }
                    // UTF-8: all bytes of a code point or none, so a cut
                    // string stays valid.
                    uint8_t b[4];
                    size_t k;
                    if (cp < 0x80) {
                        b[0] = static_cast<uint8_t>(cp);
                        k = 1;
                    } else if (cp < 0x800) {
                        b[0] = static_cast<uint8_t>(0xC0 | (cp >> 6));
                        b[1] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
                        k = 2;
                    } else if (cp < 0x10000) {
                        b[0] = static_cast<uint8_t>(0xE0 | (cp >> 12));
                        b[1] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
                        b[2] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
                        k = 3;
                    } else {
                        b[0] = static_cast<uint8_t>(0xF0 | (cp >> 18));
                        b[1] = static_cast<uint8_t>(0x80 | ((cp >> 12) & 0x3F));
                        b[2] = static_cast<uint8_t>(0x80 | ((cp >> 6) & 0x3F));
                        b[3] = static_cast<uint8_t>(0x80 | (cp & 0x3F));
                        k = 4;
                    }
                    if (out != nullptr && n + k < cap) {
                        std::memcpy(out + n, b, k);
                        n += k;
                    } else {
                        all = false;
                    }
                    break;
                }
                default: return false;
            }
        }
        if (out != nullptr && cap > 0) out[n] = '\0';
        if (fits != nullptr) *fits = all;
        return true;
    }

    bool boolean(bool* v) {
        if (literal("true")) {
            *v = true;
            return true;
        }
        if (literal("false")) {
            *v = false;
            return true;
        }
        return false;
    }

    // An integer without fraction or exponent (what Go writes for ints).
    bool integer(int64_t* v) {
        skip_ws();
        bool negative = p_ < end_ && *p_ == '-';
        if (negative) ++p_;
        const char* start = p_;
        while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        uint64_t u;
        if (parse_decimal(std::string_view(start, static_cast<size_t>(p_ - start)), INT64_MAX,
                          &u) != Decimal::ok)
            return false;
        if (p_ < end_ && (*p_ == '.' || *p_ == 'e' || *p_ == 'E')) return false;
        *v = negative ? -static_cast<int64_t>(u) : static_cast<int64_t>(u);
        return true;
    }

    // Any JSON value, checked and skipped.
    bool skip_value(int depth) {
        if (depth > kMaxJsonDepth) return false;
        char c = peek();
        if (c == '"') return string(nullptr, 0, nullptr);
        if (c == '{') {
            eat('{');
            if (eat('}')) return true;
            do {
                if (!string(nullptr, 0, nullptr) || !eat(':') || !skip_value(depth + 1))
                    return false;
            } while (eat(','));
            return eat('}');
        }
        if (c == '[') {
            eat('[');
            if (eat(']')) return true;
            do {
                if (!skip_value(depth + 1)) return false;
            } while (eat(','));
            return eat(']');
        }
        if (c == 't' || c == 'f') {
            bool b;
            return boolean(&b);
        }
        if (c == 'n') return literal("null");
        return number();
    }

   private:
    bool hex4(uint32_t* v) {
        if (end_ - p_ < 4) return false;
        uint32_t r = 0;
        for (int i = 0; i < 4; ++i) {
            char c = *p_++;
            uint32_t d;
            if (c >= '0' && c <= '9') d = static_cast<uint32_t>(c - '0');
            else if (c >= 'a' && c <= 'f') d = static_cast<uint32_t>(c - 'a' + 10);
            else if (c >= 'A' && c <= 'F') d = static_cast<uint32_t>(c - 'A' + 10);
            else return false;
            r = r * 16 + d;
        }
        *v = r;
        return true;
    }

    // -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
    bool number() {
        skip_ws();
        if (p_ < end_ && *p_ == '-') ++p_;
        if (p_ == end_ || *p_ < '0' || *p_ > '9') return false;
        if (*p_ == '0') ++p_;
        else digits();
        if (p_ < end_ && *p_ == '.') {
            ++p_;
            if (!digits()) return false;
        }
        if (p_ < end_ && (*p_ == 'e' || *p_ == 'E')) {
            ++p_;
            if (p_ < end_ && (*p_ == '+' || *p_ == '-')) ++p_;
            if (!digits()) return false;
        }
        return true;
    }
    bool digits() {
        const char* start = p_;
        while (p_ < end_ && *p_ >= '0' && *p_ <= '9') ++p_;
        return p_ > start;
    }

    const char* p_;
    const char* end_;
};

// One key of INFO. null for any known key means "absent".
bool info_field(Json& j, const char* key, NatsInfo* info) {
    if (j.peek() == 'n') return j.literal("null");
    struct Text {
        const char* key;
        char* out;
        size_t cap;
    };
    const Text texts[] = {{"server_id", info->server_id, sizeof info->server_id},
                          {"server_name", info->server_name, sizeof info->server_name},
                          {"version", info->version, sizeof info->version},
                          {"nonce", info->nonce, sizeof info->nonce}};
    for (const Text& t : texts)
        if (std::strcmp(key, t.key) == 0) return j.string(t.out, t.cap, nullptr);
    struct Flag {
        const char* key;
        bool* out;
    };
    const Flag flags[] = {{"headers", &info->headers},
                          {"auth_required", &info->auth_required},
                          {"tls_required", &info->tls_required},
                          {"ldm", &info->ldm}};
    for (const Flag& f : flags)
        if (std::strcmp(key, f.key) == 0) return j.boolean(f.out);
    int64_t n;
    if (std::strcmp(key, "max_payload") == 0) {
        if (!j.integer(&n) || n < 0) return false;
        info->max_payload = static_cast<uint64_t>(n);
        return true;
    }
    if (std::strcmp(key, "client_id") == 0) {
        if (!j.integer(&n) || n < 0) return false;
        info->client_id = static_cast<uint64_t>(n);
        return true;
    }
    if (std::strcmp(key, "proto") == 0) return j.integer(&info->proto);
    if (std::strcmp(key, "connect_urls") == 0) {
        info->connect_url_count = 0;
        info->connect_urls_dropped = 0;
        if (!j.eat('[')) return false;
        if (j.eat(']')) return true;
        do {
            char url[kNatsMaxUrlText];
            bool fits = false;
            if (!j.string(url, sizeof url, &fits)) return false;
            if (fits && url[0] != '\0' && info->connect_url_count < kNatsMaxConnectUrls)
                std::memcpy(info->connect_urls[info->connect_url_count++], url, sizeof url);
            else
                ++info->connect_urls_dropped;
        } while (j.eat(','));
        return j.eat(']');
    }
    return j.skip_value(1);
}

// ---- -ERR ------------------------------------------------------------------

struct ErrorPattern {
    const char* prefix;  // lowercase
    NatsServerError kind;
};

const ErrorPattern kErrorPatterns[] = {
    {"unknown protocol operation", NatsServerError::unknown_operation},
    {"attempted to connect to route port", NatsServerError::route_port},
    {"authorization violation", NatsServerError::authorization_violation},
    {"authorization timeout", NatsServerError::authorization_timeout},
    {"authentication timeout", NatsServerError::authorization_timeout},
    {"user authentication expired", NatsServerError::user_authentication_expired},
    {"account authentication expired", NatsServerError::account_authentication_expired},
    {"user authentication revoked", NatsServerError::authentication_revoked},
    {"invalid client protocol", NatsServerError::invalid_client_protocol},
    {"no responders requires headers support", NatsServerError::no_responders_requires_headers},
    {"maximum control line exceeded", NatsServerError::max_control_line},
    {"maximum connections exceeded", NatsServerError::max_connections},
    {"maximum account active connections exceeded", NatsServerError::max_account_connections},
    {"maximum payload", NatsServerError::max_payload},
    {"secure connection - tls required", NatsServerError::tls_required},
    {"stale connection", NatsServerError::stale_connection},
    {"slow consumer", NatsServerError::slow_consumer},
    {"parser error", NatsServerError::parser_error},
    {"failed account registration", NatsServerError::account_registration},
    {"connection throttling is active", NatsServerError::throttled},
    {"invalid subject", NatsServerError::invalid_subject},
    {"invalid publish subject", NatsServerError::invalid_publish_subject},
    {"invalid subscription", NatsServerError::invalid_subscription},
    {"permissions violation", NatsServerError::permissions_violation},
    {"maximum subscriptions exceeded", NatsServerError::max_subscriptions},
};

// ---- encoders ----------------------------------------------------------------

// Appends to out[0..cap); `ok` turns false for good at the first overflow.
class Writer {
   public:
    Writer(char* out, size_t cap) : out_(out), cap_(cap) {}
    void put(std::string_view s) {
        if (!ok_ || s.size() > cap_ - len_) {
            ok_ = false;
            return;
        }
        std::memcpy(out_ + len_, s.data(), s.size());
        len_ += s.size();
    }
    void put_uint(uint64_t v) {
        char digits[20];
        size_t n = 0;
        do {
            digits[sizeof digits - 1 - n++] = static_cast<char>('0' + v % 10);
            v /= 10;
        } while (v != 0);
        put(std::string_view(digits + sizeof digits - n, n));
    }
    // A JSON string: quote, backslash and control characters escaped.
    void put_json(const char* s) {
        static const char hex[] = "0123456789abcdef";
        put("\"");
        for (; *s != '\0'; ++s) {
            auto c = static_cast<uint8_t>(*s);
            if (c == '"' || c == '\\') {
                char esc[2] = {'\\', static_cast<char>(c)};
                put(std::string_view(esc, 2));
            } else if (c < 0x20 || c == 0x7f) {
                char esc[6] = {'\\', 'u', '0', '0', hex[c >> 4], hex[c & 15]};
                put(std::string_view(esc, 6));
            } else {
                put(std::string_view(s, 1));
            }
        }
        put("\"");
    }
    void put_json_field(const char* name, const char* value) {
        if (value == nullptr) return;
        put(",\"");
        put(name);
        put("\":");
        put_json(value);
    }
    size_t result() const { return ok_ ? len_ : 0; }

   private:
    char* out_;
    size_t cap_;
    size_t len_ = 0;
    bool ok_ = true;
};

// A queue group name: one field of printable ASCII.
bool queue_valid(std::string_view q) {
    if (q.empty()) return false;
    for (char ch : q) {
        auto c = static_cast<uint8_t>(ch);
        if (c <= 0x20 || c >= 0x7f) return false;
    }
    return true;
}

size_t encode_publish_line(char* out, size_t cap, std::string_view verb, std::string_view subject,
                           std::string_view reply, const size_t* sizes, size_t size_count) {
    if (!nats_subject_valid(subject, false)) return 0;
    if (!reply.empty() && !nats_subject_valid(reply, false)) return 0;
    Writer w(out, cap);
    w.put(verb);
    w.put(" ");
    w.put(subject);
    if (!reply.empty()) {
        w.put(" ");
        w.put(reply);
    }
    for (size_t i = 0; i < size_count; ++i) {
        w.put(" ");
        w.put_uint(sizes[i]);
    }
    w.put("\r\n");
    return w.result();
}

constexpr std::string_view kHeaderVersion = "NATS/1.0";
constexpr size_t kMinHeaderBlock = 12;  // "NATS/1.0\r\n\r\n"

// Checks an HMSG header block and reads the status from its version line.
bool parse_header_block(const uint8_t* block, size_t len, NatsMessage* msg) {
    if (len < kMinHeaderBlock || std::memcmp(block, kHeaderVersion.data(), kHeaderVersion.size()) != 0)
        return false;
    if (std::memcmp(block + len - 4, "\r\n\r\n", 4) != 0) return false;
    std::string_view all = view(block, len);
    size_t eol = all.find("\r\n");  // found: the block ends in CRLFCRLF
    std::string_view rest = all.substr(kHeaderVersion.size(), eol - kHeaderVersion.size());
    if (rest.empty()) return true;
    if (!is_blank(static_cast<uint8_t>(rest[0]))) return false;  // "NATS/1.0x"
    rest = trim(rest);
    if (rest.empty()) return true;
    if (rest.size() < 3) return false;
    uint64_t code;
    if (parse_decimal(rest.substr(0, 3), 999, &code) != Decimal::ok) return false;
    if (rest.size() > 3 && !is_blank(static_cast<uint8_t>(rest[3]))) return false;
    msg->status = static_cast<int>(code);
    msg->status_text = trim(rest.substr(3));
    return true;
}

}  // namespace

bool nats_parse_info(const char* json, size_t len, NatsInfo* out) {
    *out = NatsInfo();
    Json j(json, len);
    if (!j.eat('{')) return false;
    if (!j.eat('}')) {
        do {
            char key[32];
            bool fits = false;
            if (!j.string(key, sizeof key, &fits) || !j.eat(':')) return false;
            if (!fits) key[0] = '\0';  // longer than any key we read: skipped
            if (!info_field(j, key, out)) return false;
        } while (j.eat(','));
        if (!j.eat('}')) return false;
    }
    return j.at_end();
}

NatsServerError nats_classify_error(std::string_view text) {
    for (const ErrorPattern& p : kErrorPatterns) {
        size_t n = std::strlen(p.prefix);
        if (text.size() >= n && equal_ci(reinterpret_cast<const uint8_t*>(text.data()), p.prefix, n))
            return p.kind;
    }
    return NatsServerError::other;
}

bool nats_error_closes(NatsServerError e) {
    switch (e) {
        case NatsServerError::invalid_subject:
        case NatsServerError::invalid_publish_subject:
        case NatsServerError::invalid_subscription:
        case NatsServerError::permissions_violation:
        case NatsServerError::max_subscriptions:
            return false;
        default:
            return true;
    }
}

const char* nats_server_error_name(NatsServerError e) {
    switch (e) {
        case NatsServerError::unknown_operation: return "unknown_operation";
        case NatsServerError::route_port: return "route_port";
        case NatsServerError::authorization_violation: return "authorization_violation";
        case NatsServerError::authorization_timeout: return "authorization_timeout";
        case NatsServerError::user_authentication_expired: return "user_authentication_expired";
        case NatsServerError::account_authentication_expired: return "account_authentication_expired";
        case NatsServerError::authentication_revoked: return "authentication_revoked";
        case NatsServerError::invalid_client_protocol: return "invalid_client_protocol";
        case NatsServerError::no_responders_requires_headers: return "no_responders_requires_headers";
        case NatsServerError::max_control_line: return "max_control_line";
        case NatsServerError::max_connections: return "max_connections";
        case NatsServerError::max_account_connections: return "max_account_connections";
        case NatsServerError::max_payload: return "max_payload";
        case NatsServerError::tls_required: return "tls_required";
        case NatsServerError::stale_connection: return "stale_connection";
        case NatsServerError::slow_consumer: return "slow_consumer";
        case NatsServerError::parser_error: return "parser_error";
        case NatsServerError::account_registration: return "account_registration";
        case NatsServerError::throttled: return "throttled";
        case NatsServerError::invalid_subject: return "invalid_subject";
        case NatsServerError::invalid_publish_subject: return "invalid_publish_subject";
        case NatsServerError::invalid_subscription: return "invalid_subscription";
        case NatsServerError::permissions_violation: return "permissions_violation";
        case NatsServerError::max_subscriptions: return "max_subscriptions";
        case NatsServerError::other: return "other";
    }
    return "?";
}

const char* nats_parse_error_name(NatsParseError e) {
    switch (e) {
        case NatsParseError::none: return "none";
        case NatsParseError::unknown_operation: return "unknown operation";
        case NatsParseError::line_too_long: return "control line too long";
        case NatsParseError::bad_line: return "control character in control line";
        case NatsParseError::bad_arguments: return "bad arguments";
        case NatsParseError::payload_too_large: return "payload above max_payload";
        case NatsParseError::bad_payload_end: return "payload not followed by CRLF";
        case NatsParseError::bad_headers: return "bad header block";
        case NatsParseError::bad_info: return "bad INFO";
    }
    return "?";
}

// ---- the parser ------------------------------------------------------------

namespace {

enum class Args : uint8_t { none, optional, required };

struct Verb {
    const char* name;
    size_t len;
    NatsOpType type;
    Args args;
};

const Verb kVerbs[] = {
    {"INFO", 4, NatsOpType::info, Args::required}, {"MSG", 3, NatsOpType::msg, Args::required},
    {"HMSG", 4, NatsOpType::hmsg, Args::required}, {"PING", 4, NatsOpType::ping, Args::none},
    {"PONG", 4, NatsOpType::pong, Args::none},     {"+OK", 3, NatsOpType::ok, Args::none},
    {"-ERR", 4, NatsOpType::err, Args::optional},
};

NatsParseResult incomplete(size_t needed, size_t message_bytes) {
    return {NatsParseStatus::incomplete, 0, needed, message_bytes, NatsParseError::none};
}

}  // namespace

void NatsParser::reset() {
    limits_ = initial_limits_;
    scanned_ = 0;
    info_ = NatsInfo();
}

NatsParseResult NatsParser::refuse(NatsParseError e) {
    scanned_ = 0;
    return {NatsParseStatus::error, 0, 0, 0, e};
}

NatsParseResult NatsParser::parse(const uint8_t* buf, size_t len, NatsOp* op) {
    // The verb, recognised byte by byte: a prefix that no verb has is an
    // error at once. A verb is complete when a blank or CR follows it.
    const Verb* verb = nullptr;
    bool could_be = false;
    for (const Verb& v : kVerbs) {
        size_t k = len < v.len ? len : v.len;
        if (!equal_ci(buf, v.name, k)) continue;
        if (len <= v.len) {
            could_be = true;
            continue;
        }
        uint8_t next = buf[v.len];
        if (is_blank(next) || next == '\r') {
            verb = &v;
            break;
        }
    }
    if (verb == nullptr) return could_be ? incomplete(0, 0) : refuse(NatsParseError::unknown_operation);

    // The control line, scanned once however the bytes arrive.
    size_t limit = verb->type == NatsOpType::info ? limits_.max_info_line : limits_.max_control_line;
    size_t i = scanned_ > verb->len ? scanned_ : verb->len;
    for (; i < len; ++i) {
        uint8_t c = buf[i];
        if (c == '\r') break;
        if ((c < 0x20 && c != '\t') || c == 0x7f) return refuse(NatsParseError::bad_line);
        if (i >= limit) return refuse(NatsParseError::line_too_long);
    }
    scanned_ = i;
    if (i + 1 >= len) return incomplete(0, 0);  // no CR yet, or CR without its LF yet
    if (buf[i + 1] != '\n') return refuse(NatsParseError::bad_line);
    size_t line_end = i;
    size_t body = i + 2;
    std::string_view args = view(buf + verb->len, line_end - verb->len);

    *op = NatsOp();
    op->type = verb->type;
    switch (verb->type) {
        case NatsOpType::ping:
        case NatsOpType::pong:
        case NatsOpType::ok:
            if (!trim(args).empty()) return refuse(NatsParseError::bad_arguments);
            break;
        case NatsOpType::err: {
            std::string_view text = trim(args);
            if (text.size() >= 2 && text.front() == '\'' && text.back() == '\'')
                text = text.substr(1, text.size() - 2);
            op->error_text = text;
            op->error = nats_classify_error(text);
            break;
        }
        case NatsOpType::info: {
            std::string_view json = trim(args);
            if (json.empty()) return refuse(NatsParseError::bad_arguments);
            if (!nats_parse_info(json.data(), json.size(), &info_)) return refuse(NatsParseError::bad_info);
            uint64_t max = info_.max_payload == 0 ? kNatsDefaultMaxPayload : info_.max_payload;
            limits_.max_payload = max < kNatsMaxPayloadCeiling ? max : kNatsMaxPayloadCeiling;
            break;
        }
        case NatsOpType::msg:
        case NatsOpType::hmsg: {
            // MSG subject sid [reply] size; HMSG subject sid [reply] hsize tsize
            bool with_headers = verb->type == NatsOpType::hmsg;
            std::string_view f[5];
            size_t n = split_fields(args, f, 5);
            size_t sizes = with_headers ? 2 : 1;
            if (n != 2 + sizes && n != 3 + sizes) return refuse(NatsParseError::bad_arguments);
            NatsMessage& m = op->msg;
            m.subject = f[0];
            m.sid_text = f[1];
            if (parse_decimal(f[1], UINT64_MAX, &m.sid) != Decimal::ok)
                return refuse(NatsParseError::bad_arguments);
            if (n == 3 + sizes) m.reply = f[2];
            uint64_t size[2] = {0, 0};
            for (size_t k = 0; k < sizes; ++k) {
                Decimal d = parse_decimal(f[n - sizes + k], limits_.max_payload, &size[k]);
                if (d == Decimal::not_number) return refuse(NatsParseError::bad_arguments);
                if (d == Decimal::too_large) return refuse(NatsParseError::payload_too_large);
            }
            uint64_t total = size[sizes - 1];
            uint64_t header_bytes = with_headers ? size[0] : 0;
            if (header_bytes > total) return refuse(NatsParseError::bad_arguments);
            if (with_headers && header_bytes < kMinHeaderBlock) return refuse(NatsParseError::bad_headers);
            size_t needed = body + static_cast<size_t>(total) + 2;
            if (len < needed) return incomplete(needed, static_cast<size_t>(total));
            if (buf[needed - 2] != '\r' || buf[needed - 1] != '\n')
                return refuse(NatsParseError::bad_payload_end);
            if (with_headers) {
                m.headers = buf + body;
                m.headers_len = static_cast<size_t>(header_bytes);
                if (!parse_header_block(m.headers, m.headers_len, &m))
                    return refuse(NatsParseError::bad_headers);
            }
            m.payload = buf + body + header_bytes;
            m.payload_len = static_cast<size_t>(total - header_bytes);
            body = needed;
            break;
        }
    }
    scanned_ = 0;
    return {NatsParseStatus::op, body, 0, 0, NatsParseError::none};
}

// ---- encoders ----------------------------------------------------------------

size_t nats_encode_connect(char* out, size_t cap, const NatsConnectOptions& o) {
    Writer w(out, cap);
    w.put("CONNECT {\"verbose\":false,\"pedantic\":false,\"tls_required\":false,"
          "\"headers\":true,\"no_responders\":true,\"protocol\":1,\"echo\":");
    w.put(o.echo ? "true" : "false");
    w.put_json_field("lang", o.lang);
    w.put_json_field("version", o.version);
    w.put_json_field("name", o.name);
    w.put_json_field("user", o.user);
    w.put_json_field("pass", o.pass);
    w.put_json_field("auth_token", o.auth_token);
    w.put("}\r\n");
    return w.result();
}

size_t nats_encode_pub(char* out, size_t cap, std::string_view subject, std::string_view reply,
                       size_t payload_len) {
    return encode_publish_line(out, cap, "PUB", subject, reply, &payload_len, 1);
}

size_t nats_encode_hpub(char* out, size_t cap, std::string_view subject, std::string_view reply,
                        size_t headers_len, size_t payload_len) {
    if (headers_len < kMinHeaderBlock || payload_len > SIZE_MAX - headers_len) return 0;
    size_t sizes[2] = {headers_len, headers_len + payload_len};
    return encode_publish_line(out, cap, "HPUB", subject, reply, sizes, 2);
}

size_t nats_encode_sub(char* out, size_t cap, std::string_view subject, std::string_view queue,
                       uint64_t sid) {
    if (!nats_subject_valid(subject, true)) return 0;
    if (!queue.empty() && !queue_valid(queue)) return 0;
    Writer w(out, cap);
    w.put("SUB ");
    w.put(subject);
    if (!queue.empty()) {
        w.put(" ");
        w.put(queue);
    }
    w.put(" ");
    w.put_uint(sid);
    w.put("\r\n");
    return w.result();
}

size_t nats_encode_unsub(char* out, size_t cap, uint64_t sid, uint64_t max_msgs) {
    Writer w(out, cap);
    w.put("UNSUB ");
    w.put_uint(sid);
    if (max_msgs != 0) {
        w.put(" ");
        w.put_uint(max_msgs);
    }
    w.put("\r\n");
    return w.result();
}

size_t nats_encode_headers(char* out, size_t cap, const NatsHeader* headers, size_t count) {
    Writer w(out, cap);
    w.put(kHeaderVersion);
    w.put("\r\n");
    for (size_t i = 0; i < count; ++i) {
        const NatsHeader& h = headers[i];
        if (h.name.empty()) return 0;
        for (char ch : h.name) {
            auto c = static_cast<uint8_t>(ch);
            if (c <= 0x20 || c >= 0x7f || c == ':') return 0;
        }
        for (char ch : h.value)
            if (ch == '\r' || ch == '\n') return 0;
        w.put(h.name);
        w.put(": ");
        w.put(h.value);
        w.put("\r\n");
    }
    w.put("\r\n");
    return w.result();
}

bool nats_header_value(const uint8_t* block, size_t len, std::string_view name,
                       std::string_view* value) {
    std::string_view all = view(block, len);
    size_t pos = all.find("\r\n");  // past the version line
    while (pos != std::string_view::npos) {
        pos += 2;
        size_t eol = all.find("\r\n", pos);
        if (eol == std::string_view::npos || eol == pos) return false;  // end of block
        std::string_view line = all.substr(pos, eol - pos);
        size_t colon = line.find(':');
        if (colon != std::string_view::npos && line.substr(0, colon) == name) {
            *value = trim(line.substr(colon + 1));
            return true;
        }
        pos = eol;
    }
    return false;
}

bool nats_subject_valid(std::string_view subject, bool wildcards) {
    if (subject.empty()) return false;
    size_t start = 0;
    for (;;) {
        size_t dot = subject.find('.', start);
        size_t end = dot == std::string_view::npos ? subject.size() : dot;
        std::string_view token = subject.substr(start, end - start);
        if (token.empty()) return false;
        bool last = dot == std::string_view::npos;
        if (token == "*" || token == ">") {
            if (!wildcards || (token == ">" && !last)) return false;
        } else {
            for (char ch : token) {
                auto c = static_cast<uint8_t>(ch);
                if (c <= 0x20 || c >= 0x7f || c == '*' || c == '>') return false;
            }
        }
        if (last) return true;
        start = dot + 1;
    }
}

size_t nats_token_encode(const void* bytes, size_t len, char* out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    if (len == 0 || len > cap / 2) return 0;
    const auto* p = static_cast<const uint8_t*>(bytes);
    for (size_t i = 0; i < len; ++i) {
        out[2 * i] = hex[p[i] >> 4];
        out[2 * i + 1] = hex[p[i] & 15];
    }
    return 2 * len;
}

size_t nats_token_decode(std::string_view token, uint8_t* out, size_t cap) {
    if (token.empty() || token.size() % 2 != 0 || token.size() / 2 > cap) return 0;
    auto nibble = [](char c) -> int {
        if (c >= '0' && c <= '9') return c - '0';
        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
        return -1;
    };
    for (size_t i = 0; i < token.size(); i += 2) {
        int hi = nibble(token[i]);
        int lo = nibble(token[i + 1]);
        if (hi < 0 || lo < 0) return 0;
        out[i / 2] = static_cast<uint8_t>(hi << 4 | lo);
    }
    return token.size() / 2;
}
