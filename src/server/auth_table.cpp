// auth_table.cpp - see auth_table.h.
#include "auth_table.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <new>

#include "auth_proof.h"
#include "base64url.h"
#include "log.h"

namespace {

constexpr size_t kKeyText = base64url_length(P2P_SHA256_SIZE);  // 43

bool is_blank(char c) { return c == ' ' || c == '\t' || c == '\r'; }

// Bytes an id may hold unescaped in the file.
bool plain_id_byte(unsigned char c) {
    return c > 0x20 && c < 0x7f && c != '#' && c != ',' && c != '\\';
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// Grows a malloc'd array of trivially copyable T to hold need elements.
template <class T>
bool reserve(T*& array, size_t& cap, size_t need) {
    if (need <= cap) return true;
    size_t n = cap != 0 ? cap : 64;
    while (n < need) n *= 2;
    void* grown = std::realloc(array, n * sizeof(T));
    if (grown == nullptr) return false;
    array = static_cast<T*>(grown);
    cap = n;
    return true;
}

}  // namespace

// ---- ids and verifiers ---------------------------------------------------------

size_t auth_id_unescape(std::string_view text, uint8_t* out, const char** why) {
    size_t n = 0;
    for (size_t i = 0; i < text.size(); ++i) {
        if (n == P2P_ID_MAX) {
            *why = "id longer than 255 bytes";
            return 0;
        }
        auto c = static_cast<unsigned char>(text[i]);
        if (c == '\\') {
            int hi = -1, lo = -1;
            if (i + 3 < text.size() && text[i + 1] == 'x') {
                hi = hex_digit(text[i + 2]);
                lo = hex_digit(text[i + 3]);
            }
            if (hi < 0 || lo < 0) {
                *why = "a backslash must start \\xNN (two hex digits)";
                return 0;
            }
            out[n++] = static_cast<uint8_t>(hi * 16 + lo);
            i += 3;
            continue;
        }
        if (!plain_id_byte(c)) {
            *why = "ids must write spaces, control bytes, bytes above 0x7e, '#', ',' and '\\' as \\xNN";
            return 0;
        }
        out[n++] = c;
    }
    if (n == 0) *why = "empty id";
    return n;
}

size_t auth_id_escape(std::string_view id, char* out) {
    static const char hex[] = "0123456789abcdef";
    size_t o = 0;
    bool lone_star = id == "*";
    for (char ch : id) {
        auto c = static_cast<unsigned char>(ch);
        if (plain_id_byte(c) && !lone_star) {
            out[o++] = ch;
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return o;
}

void auth_verifier_from_token(const void* token, size_t len, AuthVerifier* out) {
    p2p_auth_keys keys;
    p2p_auth_keys_from_token(token, len, &keys);
    std::memcpy(out->stored_key, keys.stored_key, sizeof out->stored_key);
    std::memcpy(out->server_key, keys.server_key, sizeof out->server_key);
    explicit_bzero(&keys, sizeof keys);
}

bool auth_verifier_parse(std::string_view text, AuthVerifier* out) {
    constexpr size_t scheme = sizeof kVerifierScheme - 1;
    if (text.size() != scheme + 1 + kKeyText + 1 + kKeyText) return false;
    if (text.substr(0, scheme) != kVerifierScheme || text[scheme] != '$' ||
        text[scheme + 1 + kKeyText] != '$')
        return false;
    return base64url_decode(text.data() + scheme + 1, kKeyText, out->stored_key,
                            sizeof out->stored_key) &&
           base64url_decode(text.data() + scheme + 2 + kKeyText, kKeyText, out->server_key,
                            sizeof out->server_key);
}

void auth_verifier_format(const AuthVerifier& verifier, char* out) {
    constexpr size_t scheme = sizeof kVerifierScheme - 1;
    std::memcpy(out, kVerifierScheme, scheme);
    out[scheme] = '$';
    base64url_encode(verifier.stored_key, sizeof verifier.stored_key, out + scheme + 1);
    out[scheme + 1 + kKeyText] = '$';
    base64url_encode(verifier.server_key, sizeof verifier.server_key, out + scheme + 2 + kKeyText);
}

// ---- the table ---------------------------------------------------------------------

AuthTable::~AuthTable() {
    std::free(arena_);
    std::free(entries_);
    std::free(peers_);
}

size_t AuthTable::memory_bytes() const {
    return sizeof *this + arena_cap_ + entry_cap_ * sizeof(AuthEntry) +
           peer_cap_ * sizeof(uint32_t) + index_.capacity() * (sizeof(uint64_t) + sizeof(void*));
}

std::string_view AuthTable::peer_at_offset(uint32_t off) const {
    const uint8_t* p = arena_ + off;
    return std::string_view(reinterpret_cast<const char*>(p + 1), p[0]);
}

bool AuthTable::allows(const AuthEntry& entry, std::string_view caller) const {
    if (entry.any_peer) return true;
    if (caller.empty()) return false;
    const uint32_t* first = peers_ + entry.peers_begin;
    const uint32_t* last = first + entry.peers_count;
    const uint32_t* at = std::lower_bound(
        first, last, caller, [this](uint32_t off, std::string_view id) { return peer_at_offset(off) < id; });
    return at != last && peer_at_offset(*at) == caller;
}

// One pass over the text, line by line, filling a table.
class AuthTable::Parser {
   public:
    Parser(AuthTable& table, const char* name, char* err, size_t err_cap)
        : t_(table), name_(name), err_(err), err_cap_(err_cap) {}

    bool run(std::string_view text) {
        t_.arena_cap_ = text.size() + 1;
        t_.arena_ = static_cast<uint8_t*>(std::malloc(t_.arena_cap_));
        if (t_.arena_ == nullptr) return fail_file("out of memory");
        size_t pos = 0;
        while (pos < text.size()) {
            size_t end = text.find('\n', pos);
            if (end == std::string_view::npos) end = text.size();
            if (++line_ > kAuthFileMaxLines) return fail_file("more than 1000000 lines");
            if (end - pos > kAuthFileMaxLine) return fail("line longer than 65536 bytes");
            if (!parse_line(text.substr(pos, end - pos))) return false;
            pos = end + 1;
        }
        return compact() && index();
    }

   private:
    bool fail(const char* what) {
        std::snprintf(err_, err_cap_, "%s:%u: %s", name_, line_, what);
        return false;
    }
    bool fail_file(const char* what) {
        std::snprintf(err_, err_cap_, "%s: %s", name_, what);
        return false;
    }

    // Splits the line (comment cut off) into at most 3 fields.
    bool parse_line(std::string_view line) {
        size_t hash = line.find('#');
        if (hash != std::string_view::npos) line = line.substr(0, hash);
        std::string_view fields[3];
        size_t count = 0;
        size_t i = 0;
        while (true) {
            while (i < line.size() && is_blank(line[i])) ++i;
            if (i == line.size()) break;
            size_t start = i;
            while (i < line.size() && !is_blank(line[i])) ++i;
            if (count == 3) return fail("too many fields (expected ID VERIFIER [PEERS])");
            fields[count++] = line.substr(start, i - start);
        }
        if (count == 0) return true;
        if (count == 1) return fail("missing verifier (expected ID VERIFIER [PEERS])");
        if (!reserve(t_.entries_, t_.entry_cap_, t_.entry_count_ + 1))
            return fail_file("out of memory");
        AuthEntry& e = t_.entries_[t_.entry_count_];
        e = AuthEntry{};
        e.line = line_;
        uint32_t id_off;
        if (!store_id(fields[0], "id", &id_off)) return false;
        e.id = std::string_view(reinterpret_cast<const char*>(t_.arena_ + id_off + 1),
                                t_.arena_[id_off]);
        if (!auth_verifier_parse(fields[1], &e.verifier))
            return fail(
                "bad verifier (expected p2p-scram-sha256$STOREDKEY$SERVERKEY as printed by "
                "p2pServer --hash-token)");
        if (!parse_peers(count == 3 ? fields[2] : std::string_view("*"), &e)) return false;
        ++t_.entry_count_;
        return true;
    }

    bool parse_peers(std::string_view list, AuthEntry* e) {
        e->peers_begin = static_cast<uint32_t>(t_.peer_count_);
        if (list == "*") {
            e->any_peer = true;
            return true;
        }
        size_t pos = 0;
        while (true) {
            size_t comma = list.find(',', pos);
            std::string_view one = list.substr(pos, comma == std::string_view::npos ? list.npos : comma - pos);
            if (one.empty()) return fail("empty id in PEERS (ids separated by single commas)");
            if (one == "*") return fail("\"*\" stands alone in PEERS (the id \"*\" is written \\x2a)");
            uint32_t off;
            if (!store_id(one, "peer id", &off)) return false;
            if (!reserve(t_.peers_, t_.peer_cap_, t_.peer_count_ + 1)) return fail_file("out of memory");
            t_.peers_[t_.peer_count_++] = off;
            if (comma == std::string_view::npos) break;
            pos = comma + 1;
        }
        e->peers_count = static_cast<uint32_t>(t_.peer_count_ - e->peers_begin);
        uint32_t* first = t_.peers_ + e->peers_begin;
        const AuthTable& t = t_;
        std::sort(first, first + e->peers_count, [&t](uint32_t a, uint32_t b) {
            return t.peer_at_offset(a) < t.peer_at_offset(b);
        });
        return true;
    }

    // Unescapes an id into the arena as [len][bytes]; *off is where.
    bool store_id(std::string_view text, const char* what, uint32_t* off) {
        uint8_t id[P2P_ID_MAX];
        const char* why = nullptr;
        size_t n = auth_id_unescape(text, id, &why);
        if (n == 0) {
            char msg[160];
            std::snprintf(msg, sizeof msg, "bad %s: %s", what, why);
            return fail(msg);
        }
        // Each id's text is at least n bytes plus a separator (or the end
        // of the text), so the arena of text size + 1 always has room.
        if (t_.arena_used_ + 1 + n > t_.arena_cap_) return fail_file("internal error: arena full");
        *off = static_cast<uint32_t>(t_.arena_used_);
        t_.arena_[t_.arena_used_] = static_cast<uint8_t>(n);
        std::memcpy(t_.arena_ + t_.arena_used_ + 1, id, n);
        t_.arena_used_ += 1 + n;
        return true;
    }

    // Gives back what the parse reserved and did not use: the arena was as
    // large as the text (the verifiers it holds do not stay there), the
    // arrays grew by doubling. The arena moves, so the ids are rebased.
    bool compact() {
        auto* exact = static_cast<uint8_t*>(std::malloc(t_.arena_used_ != 0 ? t_.arena_used_ : 1));
        if (exact == nullptr) return fail_file("out of memory");
        if (t_.arena_used_ != 0) std::memcpy(exact, t_.arena_, t_.arena_used_);
        for (size_t i = 0; i < t_.entry_count_; ++i) {
            AuthEntry& e = t_.entries_[i];
            size_t off = static_cast<size_t>(reinterpret_cast<const uint8_t*>(e.id.data()) - t_.arena_);
            e.id = std::string_view(reinterpret_cast<const char*>(exact + off), e.id.size());
        }
        std::free(t_.arena_);
        t_.arena_ = exact;
        t_.arena_cap_ = t_.arena_used_;
        shrink(t_.entries_, t_.entry_cap_, t_.entry_count_);
        shrink(t_.peers_, t_.peer_cap_, t_.peer_count_);
        return true;
    }

    // Shrinks a malloc'd array to count elements; keeps it as it is if the
    // allocator cannot.
    template <class T>
    static void shrink(T*& array, size_t& cap, size_t count) {
        if (count == 0 || count == cap) return;
        void* smaller = std::realloc(array, count * sizeof(T));
        if (smaller == nullptr) return;
        array = static_cast<T*>(smaller);
        cap = count;
    }

    // Puts every entry in the id index, refusing duplicates.
    bool index() {
        for (size_t i = 0; i < t_.entry_count_; ++i) {
            AuthEntry* e = &t_.entries_[i];
            if (const AuthEntry* first = t_.index_.find(e->id)) {
                char id[kLogEscapeCap];
                log_escape(e->id.data(), e->id.size(), id, sizeof id);
                line_ = e->line;
                char msg[kLogEscapeCap + 64];
                std::snprintf(msg, sizeof msg, "\"%s\" is listed twice (first on line %u)", id,
                              first->line);
                return fail(msg);
            }
            if (!t_.index_.insert(e)) return fail_file("out of memory");
        }
        return true;
    }

    AuthTable& t_;
    const char* name_;
    char* err_;
    size_t err_cap_;
    unsigned line_ = 0;
};

std::unique_ptr<AuthTable> AuthTable::parse(std::string_view text, const char* name,
                                            const HashKey& key, char* err, size_t err_cap) {
    std::unique_ptr<AuthTable> table(new (std::nothrow) AuthTable(key));
    if (!table) {
        std::snprintf(err, err_cap, "%s: out of memory", name);
        return nullptr;
    }
    if (text.size() > kAuthFileMaxBytes) {
        std::snprintf(err, err_cap, "%s: larger than %zu bytes", name, kAuthFileMaxBytes);
        return nullptr;
    }
    Parser parser(*table, name, err, err_cap);
    if (!parser.run(text)) return nullptr;
    return table;
}
