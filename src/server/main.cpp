// main.cpp - p2pServer: parse the command line, run the server.
//
// Exit status: 0 after a graceful shutdown (SIGINT/SIGTERM) or --help and
// --version; 1 when the server cannot start or fails; 2 for a bad command
// line.
#include "log.h"
#include "options.h"
#include "server.h"

int main(int argc, char** argv) {
    ServerOptions options;
    switch (parse_options(argc, argv, &options)) {
        case ParseResult::exit_ok: return 0;
        case ParseResult::usage_error: return 2;
        case ParseResult::run: break;
    }
    log_set_level(options.log_level);
    Server server(options);
    if (!server.start()) return 1;
    return server.run();
}
