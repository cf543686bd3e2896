// options.cpp - see options.h.
#include "options.h"

#include <getopt.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "protocol.h"

#ifndef P2P_VERSION
#error "P2P_VERSION (the project's version, from the file VERSION) is set by the Makefile"
#endif

namespace {

const char kUsage[] =
    "usage: p2pServer [options] PORT\n"
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
    "  --log-level LEVEL     error, warn, info or debug (default info)\n"
    "  --metrics ADDR:PORT   serve Prometheus metrics (GET /metrics) and\n"
    "                        GET /healthz over HTTP on ADDR:PORT ([v6]:PORT)\n"
    "  -h, --help            print this help and exit\n"
    "  -V, --version         print the version and exit\n"
    "\n"
    "Protocol: man stupidp2p(7). Server: man p2pServer(8).\n";

void usage_error(const char* fmt, const char* arg) {
    std::fputs("p2pServer: ", stderr);
    std::fprintf(stderr, fmt, arg);
    std::fputs("\nTry 'p2pServer --help' for more information.\n", stderr);
}

// Parses a whole decimal number in [lo, hi]; no sign, no trailing junk.
bool parse_u32(const char* text, uint32_t lo, uint32_t hi, uint32_t* out) {
    if (text == nullptr || *text < '0' || *text > '9') return false;
    errno = 0;
    char* end = nullptr;
    unsigned long long v = std::strtoull(text, &end, 10);
    if (errno != 0 || end == text || *end != '\0') return false;
    if (v < lo || v > hi) return false;
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

}  // namespace

ParseResult parse_options(int argc, char** argv, ServerOptions* out) {
    enum {
        kBind = 256,
        kIdle,
        kMaxFrame,
        kMaxConns,
        kMaxOutput,
        kMaxSubs,
        kLogLevel,
        kPort,
        kMetrics
    };
    static const struct option longopts[] = {
        {"bind", required_argument, nullptr, kBind},
        {"idle-timeout", required_argument, nullptr, kIdle},
        {"max-frame", required_argument, nullptr, kMaxFrame},
        {"max-conns", required_argument, nullptr, kMaxConns},
        {"max-output", required_argument, nullptr, kMaxOutput},
        {"max-subs", required_argument, nullptr, kMaxSubs},
        {"log-level", required_argument, nullptr, kLogLevel},
        {"port", required_argument, nullptr, kPort},
        {"metrics", required_argument, nullptr, kMetrics},
        {"help", no_argument, nullptr, 'h'},
        {"version", no_argument, nullptr, 'V'},
        {nullptr, 0, nullptr, 0}};

    const char* port_text = nullptr;
    bool max_output_given = false;
    opterr = 0;  // we print our own messages
    optind = 1;
    for (;;) {
        int c = getopt_long(argc, argv, ":hV", longopts, nullptr);
        if (c == -1) break;
        uint32_t v = 0;
        switch (c) {
            case 'h':
                std::fputs(kUsage, stdout);
                return ParseResult::exit_ok;
            case 'V':
                std::printf("p2pServer %s (stupidP2P protocol v1, v2)\n", P2P_VERSION);
                return ParseResult::exit_ok;
            case kBind:
                if (*optarg == '\0') {
                    usage_error("--bind needs an address%s", "");
                    return ParseResult::usage_error;
                }
                out->bind_address = optarg;
                break;
            case kIdle:
                if (!parse_u32(optarg, 0, 7 * 24 * 3600, &v)) {
                    usage_error("invalid --idle-timeout '%s' (seconds, 0-604800)", optarg);
                    return ParseResult::usage_error;
                }
                out->idle_timeout_s = v;
                break;
            case kMaxFrame:
                if (!parse_u32(optarg, 256, 16u << 20, &v)) {
                    usage_error("invalid --max-frame '%s' (bytes, 256-16777216)", optarg);
                    return ParseResult::usage_error;
                }
                out->max_frame = v;
                break;
            case kMaxConns:
                if (!parse_u32(optarg, 1, 10000000, &v)) {
                    usage_error("invalid --max-conns '%s' (1-10000000)", optarg);
                    return ParseResult::usage_error;
                }
                out->max_conns = v;
                out->max_conns_given = true;
                break;
            case kMaxOutput:
                if (!parse_u32(optarg, 1024, 1u << 30, &v)) {
                    usage_error("invalid --max-output '%s' (bytes, 1024-1073741824)", optarg);
                    return ParseResult::usage_error;
                }
                out->max_output = v;
                max_output_given = true;
                break;
            case kMaxSubs:
                if (!parse_u32(optarg, 1, 1000000, &v)) {
                    usage_error("invalid --max-subs '%s' (1-1000000)", optarg);
                    return ParseResult::usage_error;
                }
                out->max_subs = v;
                break;
            case kLogLevel:
                if (!log_parse_level(optarg, &out->log_level)) {
                    usage_error("invalid --log-level '%s' (error, warn, info, debug)", optarg);
                    return ParseResult::usage_error;
                }
                break;
            case kPort:
                port_text = optarg;
                break;
            case kMetrics:
                if (!parse_host_port(optarg, &out->metrics_address, &out->metrics_port)) {
                    usage_error("invalid --metrics '%s' (ADDR:PORT or [IPv6]:PORT, port 0-65535)",
                                optarg);
                    return ParseResult::usage_error;
                }
                out->metrics = true;
                break;
            case ':':
                usage_error("option '%s' needs a value", argv[optind - 1]);
                return ParseResult::usage_error;
            default:
                usage_error("unknown option '%s'", argv[optind - 1]);
                return ParseResult::usage_error;
        }
    }
    if (optind < argc) {
        if (port_text != nullptr || optind + 1 < argc) {
            usage_error("unexpected argument '%s'", argv[argc - 1]);
            return ParseResult::usage_error;
        }
        port_text = argv[optind];
    }
    if (port_text == nullptr) {
        usage_error("missing PORT%s", "");
        return ParseResult::usage_error;
    }
    uint32_t port = 0;
    if (!parse_u32(port_text, 1, 65535, &port)) {
        usage_error("invalid port '%s' (1-65535)", port_text);
        return ParseResult::usage_error;
    }
    out->port = static_cast<uint16_t>(port);
    // The output cap must hold the largest frame the server can produce.
    uint32_t largest = out->max_frame + P2P_SERVER_FRAME_SLACK + P2P_FRAME_HEADER_SIZE;
    if (out->max_output < largest && !max_output_given) out->max_output = largest;
    if (out->max_output < largest) {
        char need[32];
        std::snprintf(need, sizeof need, "%u", largest);
        usage_error("--max-output must hold the largest frame: at least %s bytes", need);
        return ParseResult::usage_error;
    }
    return ParseResult::run;
}
