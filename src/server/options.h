// options.h - the server's command line and configuration file.
//
//   p2pServer [options] PORT
//   p2pServer --config FILE [options] [PORT]
//   p2pServer --check-config [--config FILE] [options] [PORT]
//   p2pServer --gen-token
//   p2pServer --hash-token ID
//
// A configuration file holds one option a line, "name value" with the long
// option's name ("max-conns 50000"; a flag alone, or "name yes|no"), blank
// lines and lines whose first non-blank character is '#'. The command line
// overrides the file. An unknown or malformed line is an error naming the
// file and the line.
//
// Every value is range-checked here; main() never sees a bad one. The
// defaults are the documented ones (man/p2pServer.8).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "log.h"

// Instead of serving: a token tool (token_tools.h), then exit.
enum class ServerTool { none, gen_token, hash_token };

struct ServerOptions {
    uint16_t port = 0;
    std::string bind_address;             // empty: all interfaces, v4 and v6
    uint32_t idle_timeout_s = 300;        // 0: never
    uint32_t max_frame = 65536;           // largest payload a client may send
    uint32_t max_conns = 100000;
    bool max_conns_given = false;         // --max-conns on the command line
    uint32_t max_output = 4u << 20;       // per-connection pending output cap
    uint32_t max_subs = 4096;             // subscriptions per connection
    uint64_t max_memory = 0;              // all buffers and devices; 0 until parsed:
                                          // a quarter of RAM, at most 1 GiB
    uint32_t max_devices = 1000000;       // device ids held or subscribed to
    uint32_t frame_timeout_s = 30;        // a begun frame must end within; 0: never
    LogLevel log_level = LogLevel::info;
    // --metrics ADDR:PORT: the HTTP endpoint for /metrics and /healthz.
    bool metrics = false;
    std::string metrics_address;
    uint16_t metrics_port = 0;            // 0: any free port (logged)
    std::string auth_file;                // --auth-file; empty: no authentication
    bool auth_required = false;           // --auth-required: every id needs AUTH
    // --cluster URLS: the NATS servers of a cluster of relays (cluster.h);
    // empty: this relay runs alone. Checked here, resolved at start.
    std::string cluster;
    std::string node_name;                // --node-name; empty: HOSTNAME-PORT
    ServerTool tool = ServerTool::none;   // --gen-token, --hash-token ID
    std::string hash_token_id;            // --hash-token's ID, as written
    LogFormat log_format = LogFormat::text;
    uint32_t busy_poll_us = 0;            // --busy-poll: spin before sleeping; 0: never
    std::string config_file;              // --config; empty: none
    bool check_config = false;            // --check-config: validate and exit
    std::vector<std::string> argv;        // the command line, for reloads
};

enum class ParseResult { run, exit_ok, usage_error };

// --max-memory's default: a quarter of physical memory, at most 1 GiB (at
// least the option's minimum).
uint64_t default_max_memory();

// Parses argv. On usage_error a one-line reason has been printed to stderr
// (plus a hint to --help); on exit_ok, --help or --version was printed to
// stdout. With run, out->tool says whether to serve (a port is set) or to
// run a token tool (no port).
ParseResult parse_options(int argc, char** argv, ServerOptions* out);

// For a reload (SIGHUP): parses the running server's command line again,
// with its configuration file as it is now, into *next. False with the
// reason in *err (nothing printed) when it is no longer valid.
bool reparse_options(const ServerOptions& running, ServerOptions* next, std::string* err);

// The options whose value differs between a and b but that a reload cannot
// put in force (they need a restart), by name.
std::vector<std::string> options_needing_restart(const ServerOptions& a, const ServerOptions& b);
