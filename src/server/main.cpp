// main.cpp - p2pServer: parse the command line, run the server.
//
// Exit status: 0 after a graceful shutdown (SIGINT/SIGTERM) or --help and
// --version; 1 when the server cannot start or fails; 2 for a bad command
// line. --gen-token and --hash-token run a tool instead (token_tools.h).
#include <malloc.h>

#include "log.h"
#include "options.h"
#include "server.h"
#include "token_tools.h"

int main(int argc, char** argv) {
    ServerOptions options;
    switch (parse_options(argc, argv, &options)) {
        case ParseResult::exit_ok: return 0;
        case ParseResult::usage_error: return 2;
        case ParseResult::run: break;
    }
    if (options.tool == ServerTool::gen_token) return gen_token_main();
    if (options.tool == ServerTool::hash_token) return hash_token_main(options.hash_token_id.c_str());
    log_set_level(options.log_level);
    // Ring buffers are freed when they empty, so that idle connections cost
    // no buffer memory, and allocated again on the next burst. glibc would
    // give such memory back to the kernel at once (heap trimming, or mmap for
    // blocks over 128 KiB) and fault it in again on the next touch: measured
    // at a third of the server's time relaying 1 KiB messages. Keep up to
    // 64 MiB of freed heap for reuse, and serve blocks up to 4 MiB (output
    // rings under load) from the heap. Fixed values also turn off glibc's
    // adaptive threshold, so memory behaviour does not drift with history.
    if (mallopt(M_TRIM_THRESHOLD, 64 << 20) == 0 || mallopt(M_MMAP_THRESHOLD, 4 << 20) == 0)
        LOG_INFO("this allocator ignores mallopt (a sanitizer build?): buffer reuse may fault");
    Server server(options);
    if (!server.start()) return 1;
    return server.run();
}
