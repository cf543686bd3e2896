// token_tools.cpp - see token_tools.h.
#include "token_tools.h"

#include <poll.h>
#include <unistd.h>

#include <cstdint>
#include <cstdio>
#include <cstring>
#include <string_view>

#include "auth_proof.h"
#include "auth_table.h"
#include "base64url.h"
#include "io.h"
#include "os_random.h"

namespace {

constexpr size_t kTokenBytes = 32;

// Writes text to standard output and flushes it; false (with a message) if
// that fails, say to a closed pipe or a full disk.
bool print_line(const char* text) {
    if (std::fputs(text, stdout) == EOF || std::fflush(stdout) == EOF) {
        std::fprintf(stderr, "p2pServer: cannot write to standard output: %s\n",
                     strerrordesc_np(errno));
        return false;
    }
    return true;
}

// Reads the first line of standard input into buf (cap bytes): up to the
// first '\n' or the end of input, whichever comes first, without the '\n'
// and a '\r' before it. Returns its length; -1 when the line does not fit
// (it is then longer than cap - 1 bytes); -2 when reading fails (a message
// is printed).
ssize_t read_first_line(char* buf, size_t cap) {
    size_t n = 0;
    for (;;) {
        char* newline = static_cast<char*>(std::memchr(buf, '\n', n));
        if (newline != nullptr) {
            n = static_cast<size_t>(newline - buf);
            break;
        }
        if (n == cap) return -1;
        IoResult r = io_read(STDIN_FILENO, buf + n, cap - n);
        if (r.status == IoStatus::ok) {
            n += r.bytes;
            continue;
        }
        if (r.status == IoStatus::eof) break;
        if (r.status == IoStatus::would_block) {
            // A non-blocking descriptor inherited from the caller: wait.
            struct pollfd p = {STDIN_FILENO, POLLIN, 0};
            if (poll(&p, 1, -1) != -1 || errno == EINTR) continue;
            r.err = errno;
        }
        std::fprintf(stderr, "p2pServer: cannot read standard input: %s\n", strerrordesc_np(r.err));
        return -2;
    }
    if (n != 0 && buf[n - 1] == '\r') --n;
    return static_cast<ssize_t>(n);
}

}  // namespace

int gen_token_main() {
    uint8_t bytes[kTokenBytes];
    if (!os_random(bytes, sizeof bytes)) {
        std::fprintf(stderr, "p2pServer: getrandom: %s\n", strerrordesc_np(errno));
        return 1;
    }
    char line[base64url_length(kTokenBytes) + 2];
    base64url_encode(bytes, sizeof bytes, line);
    std::strcat(line, "\n");
    bool ok = print_line(line);
    explicit_bzero(bytes, sizeof bytes);
    explicit_bzero(line, sizeof line);
    return ok ? 0 : 1;
}

int hash_token_main(const char* id_text) {
    uint8_t id[P2P_ID_MAX];
    const char* why = nullptr;
    size_t id_len = auth_id_unescape(id_text, id, &why);
    if (id_len == 0) {
        std::fprintf(stderr, "p2pServer: --hash-token: bad ID '%s': %s\n", id_text, why);
        return 2;
    }
    // The token, its line end, and one byte to tell an over-long line.
    char token[P2P_TOKEN_MAX + 3];
    ssize_t n = read_first_line(token, sizeof token);
    int status = 1;
    if (n == -2) {
        // message printed
    } else if (n == -1 || static_cast<size_t>(n) > P2P_TOKEN_MAX) {
        std::fprintf(stderr, "p2pServer: --hash-token: the token is longer than %u bytes\n",
                     P2P_TOKEN_MAX);
    } else if (n == 0) {
        std::fprintf(stderr, "p2pServer: --hash-token: no token on standard input\n");
    } else {
        bool printable = true;
        for (ssize_t i = 0; i < n; ++i)
            printable = printable && token[i] > 0x20 && token[i] < 0x7f;
        if (!printable) {
            std::fprintf(stderr,
                         "p2pServer: --hash-token: a token is printable ASCII without spaces\n");
        } else {
            AuthVerifier v;
            auth_verifier_from_token(token, static_cast<size_t>(n), &v);
            char line[kEscapedIdMax + kVerifierTextMax + 2];
            size_t o = auth_id_escape(std::string_view(reinterpret_cast<char*>(id), id_len), line);
            line[o++] = ' ';
            auth_verifier_format(v, line + o);
            std::strcat(line, "\n");
            status = print_line(line) ? 0 : 1;
        }
    }
    explicit_bzero(token, sizeof token);
    return status;
}
