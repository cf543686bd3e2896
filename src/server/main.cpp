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
    log_open();
    // Ring buffers are freed when they empty, so that idle connections cost
    // no buffer memory, and allocated again on the next burst. glibc would
    // give such memory back to the kernel at once (heap trimming, or mmap for
    // blocks over 128 KiB) and fault it in again on the next touch: measured
    // at a third of the server's time relaying 1 KiB messages. Keep freed
    // heap for reuse, up to 64 MiB or a quarter of --max-memory, and serve
    // blocks below 256 KiB from the heap: the rings of connections that
    // keep up (output is written once it grows by 64 KiB within an
    // iteration, and an input ring holds one frame of the default 64 KiB
    // at most, so their rings stay below that). Larger rings belong to
    // consumers that fall behind; they are mapped and unmapped whole, so
    // that freeing them, above all when the memory limit evicts them, gives
    // the memory back at once instead of leaving holes in the heap: resident
    // memory then stays close to what --max-memory counts. Fixed values also
    // turn off glibc's adaptive threshold, so behaviour does not drift with
    // history.
    uint64_t keep = options.max_memory / 4 < (64u << 20) ? options.max_memory / 4 : 64u << 20;
    if (mallopt(M_TRIM_THRESHOLD, static_cast<int>(keep)) == 0 ||
        mallopt(M_MMAP_THRESHOLD, 256 << 10) == 0)
        LOG_INFO("this allocator ignores mallopt (a sanitizer build?): buffer reuse may fault");
    int status = 1;
    {
        Server server(options);
        if (server.start()) status = server.run();
    }
    log_flush_before_exit(1000);
    return status;
}
