// options.cpp - see options.h.
#include "options.h"

#include <getopt.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "cluster_wire.h"
#include "nats_url.h"
#include "protocol.h"

#ifndef P2P_VERSION
#error "P2P_VERSION (the project's version, from the file VERSION) is set by the Makefile"
#endif

namespace {

const char kUsage[] =
    "usage: p2pServer [options] PORT\n"
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
    "  --gen-token           print a new random device token and exit\n"
    "  --hash-token ID       read ID's token on standard input, print its auth\n"
    "                        file line and exit\n"
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

constexpr uint64_t kMemoryFloor = 1u << 20;
constexpr uint64_t kMemoryCeiling = uint64_t{1} << 40;
constexpr uint64_t kDefaultMemoryCap = 1u << 30;

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
    enum {
        kBind = 256,
        kIdle,
        kMaxFrame,
        kMaxConns,
        kMaxOutput,
        kMaxSubs,
        kLogLevel,
        kPort,
        kMaxMemory,
        kMaxDevices,
        kFrameTimeout,
        kMetrics,
        kAuthFile,
        kAuthRequired,
        kGenToken,
        kHashToken,
        kCluster,
        kNodeName
    };
    static const struct option longopts[] = {
        {"bind", required_argument, nullptr, kBind},
        {"idle-timeout", required_argument, nullptr, kIdle},
        {"max-frame", required_argument, nullptr, kMaxFrame},
        {"max-conns", required_argument, nullptr, kMaxConns},
        {"max-output", required_argument, nullptr, kMaxOutput},
        {"max-subs", required_argument, nullptr, kMaxSubs},
        {"max-memory", required_argument, nullptr, kMaxMemory},
        {"max-devices", required_argument, nullptr, kMaxDevices},
        {"frame-timeout", required_argument, nullptr, kFrameTimeout},
        {"log-level", required_argument, nullptr, kLogLevel},
        {"port", required_argument, nullptr, kPort},
        {"metrics", required_argument, nullptr, kMetrics},
        {"auth-file", required_argument, nullptr, kAuthFile},
        {"auth-required", no_argument, nullptr, kAuthRequired},
        {"gen-token", no_argument, nullptr, kGenToken},
        {"hash-token", required_argument, nullptr, kHashToken},
        {"cluster", required_argument, nullptr, kCluster},
        {"node-name", required_argument, nullptr, kNodeName},
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
            case kMaxMemory:
                if (!parse_u64(optarg, kMemoryFloor, kMemoryCeiling, &out->max_memory)) {
                    usage_error("invalid --max-memory '%s' (bytes, 1048576-1099511627776)", optarg);
                    return ParseResult::usage_error;
                }
                break;
            case kMaxDevices:
                if (!parse_u32(optarg, 1, 100000000, &v)) {
                    usage_error("invalid --max-devices '%s' (1-100000000)", optarg);
                    return ParseResult::usage_error;
                }
                out->max_devices = v;
                break;
            case kFrameTimeout:
                if (!parse_u32(optarg, 0, 7 * 24 * 3600, &v)) {
                    usage_error("invalid --frame-timeout '%s' (seconds, 0-604800)", optarg);
                    return ParseResult::usage_error;
                }
                out->frame_timeout_s = v;
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
            case kAuthFile:
                if (*optarg == '\0') {
                    usage_error("--auth-file needs a file name%s", "");
                    return ParseResult::usage_error;
                }
                out->auth_file = optarg;
                break;
            case kAuthRequired: out->auth_required = true; break;
            case kCluster: {
                // The message names a bad URL by its position, never by its
                // text: it may hold a password.
                std::vector<NatsUrl> urls;
                std::string error;
                if (!nats_parse_url_list(optarg, &urls, &error) || urls.empty()) {
                    usage_error("invalid --cluster: %s",
                                error.empty() ? "no URL" : error.c_str());
                    return ParseResult::usage_error;
                }
                out->cluster = optarg;
                break;
            }
            case kNodeName:
                if (!cluster_node_name_valid(optarg)) {
                    usage_error("invalid --node-name '%s' (1-64 of A-Z a-z 0-9 _ -)", optarg);
                    return ParseResult::usage_error;
                }
                out->node_name = optarg;
                break;
            case kGenToken:
            case kHashToken:
                if (out->tool != ServerTool::none) {
                    usage_error("--gen-token and --hash-token exclude each other%s", "");
                    return ParseResult::usage_error;
                }
                out->tool = c == kGenToken ? ServerTool::gen_token : ServerTool::hash_token;
                if (c == kHashToken) out->hash_token_id = optarg;
                break;
            case ':':
                usage_error("option '%s' needs a value", argv[optind - 1]);
                return ParseResult::usage_error;
            default:
                usage_error("unknown option '%s'", argv[optind - 1]);
                return ParseResult::usage_error;
        }
    }
    if (out->tool != ServerTool::none) {
        // A tool, not a server: nothing to listen on.
        if (optind < argc || port_text != nullptr) {
            usage_error("a token tool takes no PORT ('%s')",
                        optind < argc ? argv[optind] : port_text);
            return ParseResult::usage_error;
        }
        return ParseResult::run;
    }
    if (!out->node_name.empty() && out->cluster.empty()) {
        usage_error("--node-name needs --cluster%s", "");
        return ParseResult::usage_error;
    }
    if (out->auth_required && out->auth_file.empty()) {
        usage_error("--auth-required needs --auth-file%s", "");
        return ParseResult::usage_error;
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
    if (out->max_memory == 0) out->max_memory = default_max_memory();
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
