// options.h - the server's command line.
//
//   p2pServer [options] PORT
//
// Every value is range-checked here; main() never sees a bad one. The
// defaults are the documented ones (man/p2pServer.8).
#pragma once

#include <cstdint>
#include <string>

#include "log.h"

struct ServerOptions {
    uint16_t port = 0;
    std::string bind_address;             // empty: all interfaces, v4 and v6
    uint32_t idle_timeout_s = 300;        // 0: never
    uint32_t max_frame = 65536;           // largest payload a client may send
    uint32_t max_conns = 100000;
    bool max_conns_given = false;         // --max-conns on the command line
    uint32_t max_output = 4u << 20;       // per-connection pending output cap
    uint32_t max_subs = 4096;             // subscriptions per connection
    LogLevel log_level = LogLevel::info;
    // --metrics ADDR:PORT: the HTTP endpoint for /metrics and /healthz.
    bool metrics = false;
    std::string metrics_address;
    uint16_t metrics_port = 0;            // 0: any free port (logged)
};

enum class ParseResult { run, exit_ok, usage_error };

// Parses argv. On usage_error a one-line reason has been printed to stderr
// (plus a hint to --help); on exit_ok, --help or --version was printed to
// stdout.
ParseResult parse_options(int argc, char** argv, ServerOptions* out);
