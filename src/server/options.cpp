// options.cpp - see options.h.
//
// Every option is one row of kSpecs: its long name, whether it takes a
// value, where it may appear (command line, configuration file) and whether
// a reload may change it, and a function that checks a value and stores it.
// The command line (getopt_long, built from the table) and the
// configuration file ("name value" lines) go through the same rows, so an
// option is spelled, checked and documented once. Precedence: defaults,
// then the file, then the command line.
#include "options.h"

#include <getopt.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string_view>
#include <vector>

#include "cluster_wire.h"
#include "nats_url.h"
#include "protocol.h"

#ifndef P2P_VERSION
#error "P2P_VERSION (the project's version, from the file VERSION) is set by the Makefile"
#endif

namespace {

const char kUsage[] =
    "usage: p2pServer [options] PORT\n"
    "       p2pServer --config FILE [options] [PORT]\n"
    "       p2pServer --check-config [--config FILE] [options] [PORT]\n"
    "       p2pServer --gen-token\n"
    "       p2pServer --hash-token ID < TOKEN\n"
    "\n"
    "stupidP2P relay server: devices register an id, subscribe to other ids,\n"
    "and what a device sends is forwarded to its subscribers.\n"
    "\n"
    "  PORT, --port PORT     TCP port to listen on (1-65535)\n"
    "  --bind ADDR           listen on ADDR only (default: all interfaces,\n"
    "                        IPv4 and IPv6)\n"
    "  --idle-timeout SEC    close connections silent for SEC seconds\n"
    "                        (default 300, 0 = never)\n"
    "  --max-frame BYTES     largest frame payload a client may send\n"
    "                        (default 65536, 256-16777216)\n"
    "  --max-conns N         most simultaneous connections (default 100000,\n"
    "                        lowered to what the open-file limit allows)\n"
    "  --max-output BYTES    per-connection output buffer cap; a subscriber\n"
    "                        that falls further behind is disconnected\n"
    "                        (default 4194304)\n"
    "  --max-subs N          subscriptions per connection (default 4096)\n"
    "  --max-memory BYTES    all connection buffers and device entries\n"
    "                        together; past it the largest output buffers are\n"
    "                        cut first (default: a quarter of physical memory,\n"
    "                        at most 1073741824; 1048576-1099511627776)\n"
    "  --max-devices N       device ids held or subscribed to (default 1000000)\n"
    "  --frame-timeout SEC   close a connection whose begun frame is not\n"
    "                        complete within SEC seconds (default 30, 0 = never)\n"
    "  --log-level LEVEL     error, warn, info or debug (default info)\n"
    "  --log-format FORMAT   text (default) or json: one JSON object a line\n"
    "  --busy-poll USEC      poll for up to USEC microseconds before sleeping:\n"
    "                        lower latency for more CPU (default 0: never)\n"
    "  --metrics ADDR:PORT   serve Prometheus metrics (GET /metrics) and\n"
    "                        GET /healthz over HTTP on ADDR:PORT ([v6]:PORT)\n"
    "  --auth-file FILE      device tokens and who may reach whom (re-read on\n"
    "                        SIGHUP); listed ids can only be claimed by AUTH\n"
    "  --auth-required       every id must be in the auth file: REGISTER is\n"
    "                        refused (clients without AUTH cannot use the server)\n"
    "  --cluster URLS        join the relays that use the NATS cluster at URLS\n"
    "                        (nats://[USER:PASS@]HOST[:PORT], comma-separated;\n"
    "                        HOST numeric or in /etc/hosts): clients of every\n"
    "                        relay see one server\n"
    "  --node-name NAME      this relay's name in the cluster, unique among\n"
    "                        them ([A-Za-z0-9_-], at most 64; default\n"
    "                        HOSTNAME-PORT)\n"
    "  --config FILE         read options from FILE, one 'name value' a line\n"
    "                        (the command line overrides it; re-read on SIGHUP)\n"
    "  --check-config        check the configuration (and the auth file) and\n"
    "                        exit: 0 if it is good, 2 if not\n"
    "  --gen-token           print a new random device token and exit\n"
    "  --hash-token ID       read ID's token on standard input, print its auth\n"
    "                        file line and exit\n"
    "  -h, --help            print this help and exit\n"
    "  -V, --version         print the version and exit\n"
    "\n"
    "Protocol: man stupidp2p(7). Server: man p2pServer(8).\n";

constexpr uint64_t kMemoryFloor = 1u << 20;
constexpr uint64_t kMemoryCeiling = uint64_t{1} << 40;
constexpr uint64_t kDefaultMemoryCap = 1u << 30;
constexpr size_t kConfigMaxBytes = 1u << 20;

// Parses a whole decimal number in [lo, hi]; no sign, no trailing junk.
bool parse_u64(const char* text, uint64_t lo, uint64_t hi, uint64_t* out) {
    if (text == nullptr || *text < '0' || *text > '9') return false;
    errno = 0;
    char* end = nullptr;
    unsigned long long v = std::strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') return false;
    if (v < lo || v > hi) return false;
    *out = v;
    return true;
}

bool parse_u32(const char* text, uint32_t lo, uint32_t hi, uint32_t* out) {
    uint64_t v = 0;
    if (!parse_u64(text, lo, hi, &v)) return false;
    *out = static_cast<uint32_t>(v);
    return true;
}

// "host:port" or "[v6 address]:port", port 0..65535; host not empty.
bool parse_host_port(const char* text, std::string* host, uint16_t* port) {
    const char* colon = std::strrchr(text, ':');
    if (colon == nullptr || colon == text) return false;
    uint32_t p = 0;
    if (!parse_u32(colon + 1, 0, 65535, &p)) return false;
    std::string h(text, static_cast<size_t>(colon - text));
    if (h.front() == '[') {
        if (h.size() < 3 || h.back() != ']') return false;
        h = h.substr(1, h.size() - 2);
    } else if (h.find(':') != std::string::npos) {
        return false;  // an IPv6 address needs its brackets
    }
    *host = h;
    *port = static_cast<uint16_t>(p);
    return true;
}

// What parsing keeps beside the options themselves.
struct ParseState {
    std::string port_text;  // empty: no port given
    bool reading_file = false;          // applying the configuration file
    bool port_option = false;           // --port on the command line
    bool max_output_given = false;
    bool help = false;
    bool version = false;
};

// Stores a value; returns nullptr, or why the value is bad: a range in
// parentheses ("(seconds, 0-604800)") for "invalid --name 'value' (...)",
// or the end of a sentence that starts with the option's name ("needs an
// address"). Flags get value nullptr.
using ApplyFn = const char* (*)(const char* value, ServerOptions* o, ParseState* st);

enum Where : uint8_t {
    kAnywhere,        // command line and configuration file
    kCommandLine,     // command line only
};

struct Spec {
    const char* name;
    bool takes_value;
    Where where;
    bool reloadable;  // a reload (SIGHUP) puts a new value in force
    ApplyFn apply;
};

#define U32_OPTION(field, lo, hi, why)                                                  \
    [](const char* v, ServerOptions* o, ParseState*) -> const char* {                   \
        return parse_u32(v, lo, hi, &o->field) ? nullptr : why;                         \
    }

const Spec kSpecs[] = {
    {"port", true, kAnywhere, false,
     [](const char* v, ServerOptions*, ParseState* st) -> const char* {
         st->port_text = v;
         if (!st->reading_file) st->port_option = true;
         return st->port_text.empty() ? "needs a port number" : nullptr;
     }},
    {"bind", true, kAnywhere, false,
     [](const char* v, ServerOptions* o, ParseState*) -> const char* {
         if (*v == '\0') return "needs an address";
         o->bind_address = v;
         return nullptr;
     }},
    {"idle-timeout", true, kAnywhere, true,
     U32_OPTION(idle_timeout_s, 0, 7 * 24 * 3600, "(seconds, 0-604800)")},
    {"max-frame", true, kAnywhere, false, U32_OPTION(max_frame, 256, 16u << 20, "(bytes, 256-16777216)")},
    {"max-conns", true, kAnywhere, true,
     [](const char* v, ServerOptions* o, ParseState*) -> const char* {
         if (!parse_u32(v, 1, 10000000, &o->max_conns)) return "(1-10000000)";
         o->max_conns_given = true;
         return nullptr;
     }},
    {"max-output", true, kAnywhere, false,
     [](const char* v, ServerOptions* o, ParseState* st) -> const char* {
         if (!parse_u32(v, 1024, 1u << 30, &o->max_output)) return "(bytes, 1024-1073741824)";
         st->max_output_given = true;
         return nullptr;
     }},
    {"max-subs", true, kAnywhere, true, U32_OPTION(max_subs, 1, 1000000, "(1-1000000)")},
    {"max-memory", true, kAnywhere, false,
     [](const char* v, ServerOptions* o, ParseState*) -> const char* {
         return parse_u64(v, kMemoryFloor, kMemoryCeiling, &o->max_memory)
                    ? nullptr
                    : "(bytes, 1048576-1099511627776)";
     }},
    {"max-devices", true, kAnywhere, false, U32_OPTION(max_devices, 1, 100000000, "(1-100000000)")},
    {"frame-timeout", true, kAnywhere, true,
     U32_OPTION(frame_timeout_s, 0, 7 * 24 * 3600, "(seconds, 0-604800)")},
    {"log-level", true, kAnywhere, true,
     [](const char* v, ServerOptions* o, ParseState*) -> const char* {
         return log_parse_level(v, &o->log_level) ? nullptr : "(error, warn, info, debug)";
     }},
    {"log-format", true, kAnywhere, true,
     [](const char* v, ServerOptions* o, ParseState*) -> const char* {
         return log_parse_format(v, &o->log_format) ? nullptr : "(text, json)";
     }},
    {"busy-poll", true, kAnywhere, false, U32_OPTION(busy_poll_us, 0, 1000000, "(microseconds, 0-1000000)")},
    {"metrics", true, kAnywhere, false,
     [](const char* v, ServerOptions* o, ParseState*) -> const char* {
         if (!parse_host_port(v, &o->metrics_address, &o->metrics_port))
             return "(ADDR:PORT or [IPv6]:PORT, port 0-65535)";
         o->metrics = true;
         return nullptr;
     }},
    {"auth-file", true, kAnywhere, true,
     [](const char* v, ServerOptions* o, ParseState*) -> const char* {
         if (*v == '\0') return "needs a file name";
         o->auth_file = v;
         return nullptr;
     }},
    {"auth-required", false, kAnywhere, true,
     [](const char*, ServerOptions* o, ParseState*) -> const char* {
         o->auth_required = true;
         return nullptr;
     }},
    {"cluster", true, kAnywhere, false,
     [](const char* v, ServerOptions* o, ParseState*) -> const char* {
         // The message names a bad URL by its position, never by its text:
         // it may hold a password.
         std::vector<NatsUrl> urls;
         static std::string error;
         error.clear();
         if (!nats_parse_url_list(v, &urls, &error) || urls.empty()) {
             error = "is invalid: " + (error.empty() ? std::string("no URL") : error);
             return error.c_str();
         }
         o->cluster = v;
         return nullptr;
     }},
    {"node-name", true, kAnywhere, false,
     [](const char* v, ServerOptions* o, ParseState*) -> const char* {
         if (!cluster_node_name_valid(v)) return "(1-64 of A-Z a-z 0-9 _ -)";
         o->node_name = v;
         return nullptr;
     }},
    {"config", true, kCommandLine, false,
     [](const char* v, ServerOptions* o, ParseState*) -> const char* {
         if (*v == '\0') return "needs a file name";
         o->config_file = v;
         return nullptr;
     }},
    {"check-config", false, kCommandLine, false,
     [](const char*, ServerOptions* o, ParseState*) -> const char* {
         o->check_config = true;
         return nullptr;
     }},
    {"gen-token", false, kCommandLine, false,
     [](const char*, ServerOptions* o, ParseState*) -> const char* {
         if (o->tool != ServerTool::none) return "and --hash-token exclude each other";
         o->tool = ServerTool::gen_token;
         return nullptr;
     }},
    {"hash-token", true, kCommandLine, false,
     [](const char* v, ServerOptions* o, ParseState*) -> const char* {
         if (o->tool != ServerTool::none) return "and --gen-token exclude each other";
         o->tool = ServerTool::hash_token;
         o->hash_token_id = v;
         return nullptr;
     }},
    {"help", false, kCommandLine, false,
     [](const char*, ServerOptions*, ParseState* st) -> const char* {
         st->help = true;
         return nullptr;
     }},
    {"version", false, kCommandLine, false,
     [](const char*, ServerOptions*, ParseState* st) -> const char* {
         st->version = true;
         return nullptr;
     }},
};

#undef U32_OPTION

constexpr int kSpecCount = static_cast<int>(sizeof kSpecs / sizeof kSpecs[0]);
constexpr int kFirstCode = 256;  // getopt codes of kSpecs[i]: kFirstCode + i

const Spec* find_spec(std::string_view name) {
    for (const Spec& s : kSpecs)
        if (name == s.name) return &s;
    return nullptr;
}

// The message for a value apply() refused: "invalid --NAME 'VALUE' (range)"
// or "--NAME why" on the command line; "FILE:LINE: invalid NAME 'VALUE'
// (range)" or "FILE:LINE: NAME why" in a configuration file (where: empty
// for the command line).
void describe_bad_value(std::string* err, const char* where, const Spec& s, const char* value,
                        const char* why) {
    std::string name = where[0] ? std::string(where) + ": " : std::string();
    std::string option = (where[0] ? "" : "--") + std::string(s.name);
    if (why[0] == '(')
        *err = name + "invalid " + option + " '" + std::string(value ? value : "").substr(0, 200) +
               "' " + why;
    else
        *err = name + option + " " + why;
}

// Strips blanks at both ends.
std::string_view trim(std::string_view s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
    while (!s.empty() && (s.back() == ' ' || s.back() == '\t' || s.back() == '\r'))
        s.remove_suffix(1);
    return s;
}

// Applies a configuration file's lines: "name value", "name" alone for a
// flag (or "name yes|no"), blank lines and lines starting with '#'.
bool apply_config_file(const std::string& path, ServerOptions* o, ParseState* st,
                       std::string* err) {
    FILE* f = std::fopen(path.c_str(), "re");
    if (f == nullptr) {
        *err = path + ": " + strerrordesc_np(errno);
        return false;
    }
    std::string text;
    char buf[4096];
    size_t n;
    while ((n = std::fread(buf, 1, sizeof buf, f)) > 0) {
        text.append(buf, n);
        if (text.size() > kConfigMaxBytes) break;
    }
    bool read_error = std::ferror(f) != 0;
    std::fclose(f);
    if (read_error) {
        *err = path + ": read error";
        return false;
    }
    if (text.size() > kConfigMaxBytes) {
        *err = path + ": larger than 1 MiB";
        return false;
    }
    size_t line_no = 0;
    std::string_view rest(text);
    while (!rest.empty()) {
        size_t eol = rest.find('\n');
        std::string_view line = trim(rest.substr(0, eol));
        rest.remove_prefix(eol == std::string_view::npos ? rest.size() : eol + 1);
        ++line_no;
        char where[512];
        std::snprintf(where, sizeof where, "%s:%zu", path.c_str(), line_no);
        if (line.empty() || line.front() == '#') continue;
        size_t gap = line.find_first_of(" \t");
        std::string_view name = line.substr(0, gap);
        std::string_view value = gap == std::string_view::npos ? "" : trim(line.substr(gap));
        const Spec* s = find_spec(name);
        if (s == nullptr) {
            *err = std::string(where) + ": unknown option '" + std::string(name) + "'";
            return false;
        }
        if (s->where != kAnywhere) {
            *err = std::string(where) + ": '" + std::string(name) +
                   "' belongs on the command line, not in a configuration file";
            return false;
        }
        std::string arg_text(value);
        const char* arg = nullptr;
        if (s->takes_value) {
            if (value.empty()) {
                *err = std::string(where) + ": '" + std::string(name) + "' needs a value";
                return false;
            }
            arg = arg_text.c_str();
        } else if (!value.empty()) {
            if (value == "no" || value == "off" || value == "false") continue;  // the default
            if (value != "yes" && value != "on" && value != "true") {
                *err = std::string(where) + ": '" + std::string(name) +
                       "' takes no value, or yes/no";
                return false;
            }
        }
        if (const char* why = s->apply(arg, o, st)) {
            describe_bad_value(err, where, *s, arg, why);
            return false;
        }
    }
    return true;
}

// The whole parse: defaults, the configuration file named on the command
// line, then the command line. On failure *err says why (one line).
ParseResult parse(int argc, char** argv, ServerOptions* out, ParseState* st, std::string* err) {
    struct option longopts[kSpecCount + 1];
    for (int i = 0; i < kSpecCount; ++i)
        longopts[i] = {kSpecs[i].name, kSpecs[i].takes_value ? required_argument : no_argument,
                       nullptr, kFirstCode + i};
    longopts[kSpecCount] = {nullptr, 0, nullptr, 0};
    opterr = 0;  // we make our own messages

    // First pass: only --config, so that the command line can override it.
    optind = 0;  // 0, not 1: GNU getopt then also forgets a previous scan's state
    for (;;) {
        int c = getopt_long(argc, argv, ":hV", longopts, nullptr);
        if (c == -1) break;
        if (c >= kFirstCode && std::strcmp(kSpecs[c - kFirstCode].name, "config") == 0)
            kSpecs[c - kFirstCode].apply(optarg, out, st);
    }
    st->reading_file = true;
    if (!out->config_file.empty() && !apply_config_file(out->config_file, out, st, err))
        return ParseResult::usage_error;
    st->reading_file = false;

    optind = 0;  // 0, not 1: GNU getopt then also forgets a previous scan's state
    for (;;) {
        int c = getopt_long(argc, argv, ":hV", longopts, nullptr);
        if (c == -1) break;
        if (c == 'h' || c == 'V') {
            (c == 'h' ? st->help : st->version) = true;
            continue;
        }
        if (c == ':') {
            *err = std::string("option '") + argv[optind - 1] + "' needs a value";
            return ParseResult::usage_error;
        }
        if (c < kFirstCode || c >= kFirstCode + kSpecCount) {
            *err = std::string("unknown option '") + argv[optind - 1] + "'";
            return ParseResult::usage_error;
        }
        const Spec& s = kSpecs[c - kFirstCode];
        if (const char* why = s.apply(optarg, out, st)) {
            describe_bad_value(err, "", s, optarg, why);
            return ParseResult::usage_error;
        }
        if (st->help || st->version) return ParseResult::exit_ok;
    }
    if (st->help || st->version) return ParseResult::exit_ok;
    if (out->tool != ServerTool::none) {
        // A tool, not a server: nothing to listen on.
        if (optind < argc || !st->port_text.empty()) {
            *err = std::string("a token tool takes no PORT ('") +
                   (optind < argc ? argv[optind] : st->port_text.c_str()) + "')";
            return ParseResult::usage_error;
        }
        return ParseResult::run;
    }
    if (out->auth_required && out->auth_file.empty()) {
        *err = "--auth-required needs --auth-file";
        return ParseResult::usage_error;
    }
    if (!out->node_name.empty() && out->cluster.empty()) {
        *err = "--node-name needs --cluster";
        return ParseResult::usage_error;
    }
    if (optind < argc) {
        if (optind + 1 < argc || st->port_option) {
            *err = std::string("unexpected argument '") + argv[argc - 1] + "'";
            return ParseResult::usage_error;
        }
        st->port_text = argv[optind];  // overrides a port from the file
    }
    if (st->port_text.empty()) {
        *err = "missing PORT";
        return ParseResult::usage_error;
    }
    uint32_t port = 0;
    if (!parse_u32(st->port_text.c_str(), 1, 65535, &port)) {
        *err = std::string("invalid port '") + st->port_text + "' (1-65535)";
        return ParseResult::usage_error;
    }
    out->port = static_cast<uint16_t>(port);
    if (out->max_memory == 0) out->max_memory = default_max_memory();
    // The output cap must hold the largest frame the server can produce.
    uint32_t largest = out->max_frame + P2P_SERVER_FRAME_SLACK + P2P_FRAME_HEADER_SIZE;
    if (out->max_output < largest && !st->max_output_given) out->max_output = largest;
    if (out->max_output < largest) {
        *err = "--max-output must hold the largest frame: at least " + std::to_string(largest) +
               " bytes";
        return ParseResult::usage_error;
    }
    return ParseResult::run;
}

}  // namespace

uint64_t default_max_memory() {
    long pages = sysconf(_SC_PHYS_PAGES);
    long page = sysconf(_SC_PAGESIZE);
    if (pages <= 0 || page <= 0) return kDefaultMemoryCap;
    uint64_t quarter = static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) / 4;
    if (quarter > kDefaultMemoryCap) return kDefaultMemoryCap;
    return quarter < kMemoryFloor ? kMemoryFloor : quarter;
}

ParseResult parse_options(int argc, char** argv, ServerOptions* out) {
    ParseState st;
    std::string err;
    ParseResult r = parse(argc, argv, out, &st, &err);
    if (r == ParseResult::usage_error) {
        std::fprintf(stderr, "p2pServer: %s\nTry 'p2pServer --help' for more information.\n",
                     err.c_str());
        return r;
    }
    if (st.help) {
        std::fputs(kUsage, stdout);
        return ParseResult::exit_ok;
    }
    if (st.version) {
        std::printf("p2pServer %s (stupidP2P protocol v1, v2)\n", P2P_VERSION);
        return ParseResult::exit_ok;
    }
    out->argv.assign(argv, argv + argc);
    return r;
}

bool reparse_options(const ServerOptions& running, ServerOptions* next, std::string* err) {
    std::vector<char*> argv;
    std::vector<std::string> copy = running.argv;
    for (std::string& a : copy) argv.push_back(a.data());
    argv.push_back(nullptr);
    ParseState st;
    *next = ServerOptions{};
    ParseResult r = parse(static_cast<int>(copy.size()), argv.data(), next, &st, err);
    next->argv = running.argv;
    return r == ParseResult::run;
}

std::vector<std::string> options_needing_restart(const ServerOptions& a, const ServerOptions& b) {
    std::vector<std::string> changed;
    auto differ = [&](const char* name, bool d) {
        const Spec* s = find_spec(name);
        if (d && s != nullptr && !s->reloadable) changed.emplace_back(name);
    };
    differ("port", a.port != b.port);
    differ("bind", a.bind_address != b.bind_address);
    differ("max-frame", a.max_frame != b.max_frame);
    differ("max-output", a.max_output != b.max_output);
    differ("max-memory", a.max_memory != b.max_memory);
    differ("max-devices", a.max_devices != b.max_devices);
    differ("busy-poll", a.busy_poll_us != b.busy_poll_us);
    differ("cluster", a.cluster != b.cluster);
    differ("node-name", a.node_name != b.node_name);
    differ("metrics", a.metrics != b.metrics || a.metrics_address != b.metrics_address ||
                          a.metrics_port != b.metrics_port);
    return changed;
}
