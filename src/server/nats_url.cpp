// nats_url.cpp - see nats_url.h.
#include "nats_url.h"

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cstdio>
#include <cstring>

namespace {

// The hosts file is read up to this much: /etc/hosts is small, and a huge
// or endless file must not stall start-up.
constexpr size_t kMaxHostsFile = 1u << 20;

bool is_blank(char c) { return c == ' ' || c == '\t'; }

std::string_view trim(std::string_view s) {
    while (!s.empty() && is_blank(s.front())) s.remove_prefix(1);
    while (!s.empty() && is_blank(s.back())) s.remove_suffix(1);
    return s;
}

char lower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

bool equal_ci(std::string_view a, std::string_view b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
        if (lower(a[i]) != lower(b[i])) return false;
    return true;
}

int hex_digit(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// RFC 3986 percent-decoding; false on a bad escape or a NUL.
bool percent_decode(std::string_view in, std::string* out) {
    out->clear();
    for (size_t i = 0; i < in.size(); ++i) {
        char c = in[i];
        if (c == '%') {
            if (i + 2 >= in.size()) return false;
            int hi = hex_digit(in[i + 1]);
            int lo = hex_digit(in[i + 2]);
            if (hi < 0 || lo < 0) return false;
            c = static_cast<char>(hi << 4 | lo);
            i += 2;
        }
        if (c == '\0') return false;
        out->push_back(c);
    }
    return true;
}

bool parse_port(std::string_view s, uint16_t* port) {
    if (s.empty() || s.size() > 5) return false;
    unsigned v = 0;
    for (char c : s) {
        if (c < '0' || c > '9') return false;
        v = v * 10 + static_cast<unsigned>(c - '0');
    }
    if (v == 0 || v > 65535) return false;
    *port = static_cast<uint16_t>(v);
    return true;
}

// host[:port] or [v6][:port]; *bracketed tells which. The host is returned
// without brackets.
bool split_host_port(std::string_view s, std::string_view* host, uint16_t* port, bool* bracketed,
                     const char** error) {
    *bracketed = false;
    std::string_view rest;
    if (!s.empty() && s.front() == '[') {
        size_t close = s.find(']');
        if (close == std::string_view::npos) {
            *error = "unclosed '[' in host";
            return false;
        }
        *host = s.substr(1, close - 1);
        rest = s.substr(close + 1);
        *bracketed = true;
        if (!rest.empty() && rest.front() != ':') {
            *error = "junk after ']'";
            return false;
        }
    } else {
        size_t colon = s.find(':');
        *host = s.substr(0, colon);
        rest = colon == std::string_view::npos ? std::string_view() : s.substr(colon);
    }
    if (host->empty()) {
        *error = "no host";
        return false;
    }
    if (!rest.empty() && !parse_port(rest.substr(1), port)) {
        *error = "port not a number in 1..65535";
        return false;
    }
    return true;
}

// A name: letters, digits, '-', '_' and '.'.
bool name_valid(std::string_view host) {
    for (char c : host) {
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '-' || c == '_' || c == '.';
        if (!ok) return false;
    }
    return true;
}

// A numeric address into *out (the port set); false if host is not one.
bool numeric_address(const std::string& host, uint16_t port, NatsServerAddress* out) {
    struct sockaddr_in in4 = {};
    struct sockaddr_in6 in6 = {};
    if (inet_pton(AF_INET, host.c_str(), &in4.sin_addr) == 1) {
        in4.sin_family = AF_INET;
        in4.sin_port = htons(port);
        std::memcpy(&out->addr, &in4, sizeof in4);
        out->addr_len = sizeof in4;
        return true;
    }
    if (inet_pton(AF_INET6, host.c_str(), &in6.sin6_addr) == 1) {
        in6.sin6_family = AF_INET6;
        in6.sin6_port = htons(port);
        std::memcpy(&out->addr, &in6, sizeof in6);
        out->addr_len = sizeof in6;
        return true;
    }
    return false;
}

std::string label_of(const std::string& host, uint16_t port) {
    bool v6 = host.find(':') != std::string::npos;
    return (v6 ? "[" + host + "]" : host) + ":" + std::to_string(port);
}

// Every address that hosts_path lists for name (case-insensitive, aliases
// included), in file order. False if the file cannot be read.
bool hosts_lookup(const char* hosts_path, std::string_view name, std::vector<std::string>* found) {
    FILE* f = std::fopen(hosts_path, "re");
    if (f == nullptr) return false;
    std::string text;
    char chunk[4096];
    size_t n;
    while (text.size() < kMaxHostsFile && (n = std::fread(chunk, 1, sizeof chunk, f)) > 0)
        text.append(chunk, n);
    std::fclose(f);
    size_t pos = 0;
    while (pos < text.size()) {
        size_t eol = text.find('\n', pos);
        if (eol == std::string::npos) eol = text.size();
        std::string_view line(text.data() + pos, eol - pos);
        pos = eol + 1;
        size_t hash = line.find('#');
        if (hash != std::string_view::npos) line = line.substr(0, hash);
        std::string_view fields[16];
        size_t count = 0;
        size_t i = 0;
        while (i < line.size() && count < 16) {
            while (i < line.size() && (is_blank(line[i]) || line[i] == '\r')) ++i;
            size_t start = i;
            while (i < line.size() && !is_blank(line[i]) && line[i] != '\r') ++i;
            if (i > start) fields[count++] = line.substr(start, i - start);
        }
        for (size_t k = 1; k < count; ++k) {
            if (equal_ci(fields[k], name)) {
                std::string address(fields[0]);
                bool seen = false;
                for (const std::string& a : *found) seen = seen || a == address;
                if (!seen) found->push_back(address);
                break;
            }
        }
    }
    return true;
}

}  // namespace

bool nats_parse_url(std::string_view text, NatsUrl* out, const char** error) {
    *out = NatsUrl();
    constexpr std::string_view kScheme = "nats://";
    size_t sep = text.find("://");
    if (sep == std::string_view::npos) {
        *error = "not a URL (nats://host:port)";
        return false;
    }
    if (!equal_ci(text.substr(0, sep + 3), kScheme)) {
        *error = "only nats:// is supported (no TLS)";
        return false;
    }
    std::string_view rest = text.substr(kScheme.size());
    if (!rest.empty() && rest.back() == '/') rest.remove_suffix(1);
    if (rest.find_first_of("/?#") != std::string_view::npos) {
        *error = "a path, query or fragment has no meaning here";
        return false;
    }
    size_t at = rest.rfind('@');
    if (at != std::string_view::npos) {
        std::string_view userinfo = rest.substr(0, at);
        rest = rest.substr(at + 1);
        size_t colon = userinfo.find(':');
        std::string user, pass;
        if (!percent_decode(userinfo.substr(0, colon), &user) ||
            (colon != std::string_view::npos && !percent_decode(userinfo.substr(colon + 1), &pass))) {
            *error = "bad %-escape in the credentials";
            return false;
        }
        if (user.empty()) {
            *error = "credentials without a user name";
            return false;
        }
        if (colon == std::string_view::npos) out->credentials.token = user;
        else {
            out->credentials.user = user;
            out->credentials.pass = pass;
        }
    }
    std::string_view host;
    bool bracketed;
    if (!split_host_port(rest, &host, &out->port, &bracketed, error)) return false;
    out->host = std::string(host);
    NatsServerAddress probe;
    if (bracketed) {
        struct in6_addr a;
        if (inet_pton(AF_INET6, out->host.c_str(), &a) != 1) {
            *error = "not an IPv6 address in [...]";
            return false;
        }
    } else if (!numeric_address(out->host, out->port, &probe) && !name_valid(host)) {
        *error = "host is neither an address nor a name";
        return false;
    }
    return true;
}

bool nats_parse_url_list(std::string_view text, std::vector<NatsUrl>* out, std::string* error) {
    out->clear();
    size_t total = 1;
    for (char c : text) total += c == ',';
    size_t start = 0;
    for (size_t index = 1;; ++index) {
        size_t comma = text.find(',', start);
        std::string_view entry =
            trim(text.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
        std::string where = "URL " + std::to_string(index) + " of " + std::to_string(total) + ": ";
        if (index > kNatsMaxServers) {
            *error = "more than " + std::to_string(kNatsMaxServers) + " URLs";
            return false;
        }
        if (entry.empty()) {
            *error = where + "empty";
            return false;
        }
        NatsUrl url;
        const char* why = nullptr;
        if (!nats_parse_url(entry, &url, &why)) {
            *error = where + why;
            return false;
        }
        out->push_back(url);
        if (comma == std::string_view::npos) return true;
        start = comma + 1;
    }
}

bool nats_resolve(const NatsUrl& url, const char* hosts_path, std::vector<NatsServerAddress>* out,
                  std::string* error) {
    NatsServerAddress a;
    a.credentials = url.credentials;
    if (numeric_address(url.host, url.port, &a)) {
        a.label = label_of(url.host, url.port);
        out->push_back(a);
        return true;
    }
    std::vector<std::string> found;
    if (!hosts_lookup(hosts_path, url.host, &found)) {
        *error = "host " + url.host + " is not an address, and " + hosts_path +
                 " cannot be read to look it up (DNS is not used)";
        return false;
    }
    size_t before = out->size();
    for (const std::string& address : found) {
        if (!numeric_address(address, url.port, &a)) continue;
        a.label = url.host + ":" + std::to_string(url.port);
        out->push_back(a);
    }
    if (out->size() == before) {
        *error = "host " + url.host + " is not an address and not in " + hosts_path +
                 " (DNS is not used)";
        return false;
    }
    return true;
}

bool nats_servers_from_list(std::string_view text, const char* hosts_path,
                            std::vector<NatsServerAddress>* out, std::string* error) {
    std::vector<NatsUrl> urls;
    if (!nats_parse_url_list(text, &urls, error)) return false;
    out->clear();
    for (const NatsUrl& url : urls)
        if (!nats_resolve(url, hosts_path, out, error)) return false;
    if (out->size() > kNatsMaxServers) {
        *error = "the URLs give more than " + std::to_string(kNatsMaxServers) + " addresses";
        return false;
    }
    return true;
}

bool nats_parse_host_port(std::string_view text, NatsServerAddress* out) {
    std::string_view host;
    uint16_t port = 0;
    bool bracketed;
    const char* error;
    if (text.empty() || !split_host_port(text, &host, &port, &bracketed, &error) || port == 0)
        return false;
    std::string h(host);
    if (!numeric_address(h, port, out)) return false;
    out->label = label_of(h, port);
    return true;
}

bool nats_same_address(const NatsServerAddress& a, const NatsServerAddress& b) {
    return a.addr_len == b.addr_len && std::memcmp(&a.addr, &b.addr, a.addr_len) == 0;
}
