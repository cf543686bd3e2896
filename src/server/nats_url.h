// nats_url.h - the NATS servers a link may use: nats:// URLs parsed and
// checked, and their hosts turned into socket addresses once, at start.
//
// URL form: nats://[user[:pass]@]host[:port], several separated by commas.
// host is an IPv4 address, an IPv6 address in brackets, or a name; port
// defaults to 4222. user and pass may be percent-encoded (a password with
// '@' or ':' in it). A user without a password is a token (as the NATS
// clients read it): nats://s3cret@host sends auth_token. Only nats:// is
// accepted: the link speaks no TLS.
//
// Resolution happens once, before the event loop runs, and never asks DNS:
// a numeric address is taken as it is, a name is looked up in the hosts
// file (/etc/hosts), every address it has there becoming one server of the
// rotation. A name that is in neither is an error at start, not a blocked
// loop later. The addresses the cluster advertises (INFO connect_urls) are
// numeric and are parsed with nats_parse_host_port().
//
// Credentials never appear in an error message or a label: messages name
// the URL by its position in the list, labels are "host:port".
#pragma once

#include <sys/socket.h>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

constexpr uint16_t kNatsDefaultPort = 4222;
// Servers in one link's rotation, configured and discovered together.
constexpr size_t kNatsMaxServers = 32;

struct NatsCredentials {
    std::string user;
    std::string pass;
    std::string token;
};

struct NatsUrl {
    std::string host;  // as written, without brackets
    uint16_t port = kNatsDefaultPort;
    NatsCredentials credentials;
};

// One address of the rotation.
struct NatsServerAddress {
    struct sockaddr_storage addr = {};
    socklen_t addr_len = 0;
    std::string label;  // "host:port" for logs: no credentials
    NatsCredentials credentials;
    bool discovered = false;  // from INFO connect_urls, not configured
};

// Parses one URL. False with *error set (a static string) when malformed.
bool nats_parse_url(std::string_view text, NatsUrl* out, const char** error);

// Parses a comma-separated list (blanks around entries ignored) of at most
// kNatsMaxServers URLs. False with *error ("URL 2 of 3: ...") otherwise.
bool nats_parse_url_list(std::string_view text, std::vector<NatsUrl>* out, std::string* error);

// Appends the addresses of url to *out: one for a numeric host, one per
// address listed for a name in hosts_path (a file in /etc/hosts format,
// read once here). False with *error when there is none.
bool nats_resolve(const NatsUrl& url, const char* hosts_path, std::vector<NatsServerAddress>* out,
                  std::string* error);

// Parses and resolves a whole list (the --cluster argument): false with
// *error if any URL is malformed or unresolvable, or the list yields more
// than kNatsMaxServers addresses.
bool nats_servers_from_list(std::string_view text, const char* hosts_path,
                            std::vector<NatsServerAddress>* out, std::string* error);

// "1.2.3.4:4222" or "[::1]:4222" (a connect_urls entry; numeric only) into
// *out's address and label. False otherwise.
bool nats_parse_host_port(std::string_view text, NatsServerAddress* out);

// Same family, address and port.
bool nats_same_address(const NatsServerAddress& a, const NatsServerAddress& b);
