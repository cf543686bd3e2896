// auth_file.cpp - see auth_file.h.
#include "auth_file.h"

#include <fcntl.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "io.h"
#include "log.h"

namespace {

constexpr size_t kMaxUnlistedWarnings = 5;

// Reads the whole of fd (a regular file that had `expected` bytes at fstat)
// into a malloc'd buffer of *len bytes; nullptr with err set on failure.
// The buffer grows if the file did, but never past kAuthFileMaxBytes + 1:
// a file larger than the bound is refused, however it got there.
char* read_whole(int fd, const char* path, size_t expected, char* err, size_t err_cap,
                 size_t* len) {
    size_t cap = expected + 1;
    char* buf = static_cast<char*>(std::malloc(cap));
    size_t n = 0;
    while (buf != nullptr) {
        if (n == cap) {
            if (cap > kAuthFileMaxBytes) {
                std::snprintf(err, err_cap, "%s: larger than %zu bytes", path, kAuthFileMaxBytes);
                std::free(buf);
                return nullptr;
            }
            size_t bigger = cap * 2 < kAuthFileMaxBytes + 1 ? cap * 2 : kAuthFileMaxBytes + 1;
            char* grown = static_cast<char*>(std::realloc(buf, bigger));
            if (grown == nullptr) break;
            buf = grown;
            cap = bigger;
        }
        IoResult r = io_read(fd, buf + n, cap - n);
        if (r.status == IoStatus::ok) {
            n += r.bytes;
            continue;
        }
        if (r.status == IoStatus::eof) {
            *len = n;
            return buf;
        }
        std::snprintf(err, err_cap, "%s: read: %s", path,
                      r.status == IoStatus::error ? strerrordesc_np(r.err) : "would block");
        std::free(buf);
        return nullptr;
    }
    std::free(buf);
    std::snprintf(err, err_cap, "%s: out of memory", path);
    return nullptr;
}

}  // namespace

std::unique_ptr<AuthTable> load_auth_file(const char* path, const HashKey& key, char* err,
                                          size_t err_cap) {
    // O_NONBLOCK: opening a FIFO must not wait for a writer (it is then
    // refused as not a regular file).
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
    if (fd == -1) {
        std::snprintf(err, err_cap, "%s: %s", path, strerrordesc_np(errno));
        return nullptr;
    }
    struct stat st;
    if (fstat(fd, &st) == -1) {
        std::snprintf(err, err_cap, "%s: fstat: %s", path, strerrordesc_np(errno));
        io_close(fd);
        return nullptr;
    }
    if (!S_ISREG(st.st_mode)) {
        std::snprintf(err, err_cap, "%s: not a regular file", path);
        io_close(fd);
        return nullptr;
    }
    if (static_cast<uint64_t>(st.st_size) > kAuthFileMaxBytes) {
        std::snprintf(err, err_cap, "%s: larger than %zu bytes", path, kAuthFileMaxBytes);
        io_close(fd);
        return nullptr;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0)
        LOG_WARN("auth file %s may be %s by group or others (mode %04o): chmod go= it", path,
                 (st.st_mode & (S_IWGRP | S_IWOTH)) != 0 ? "written" : "read",
                 static_cast<unsigned>(st.st_mode & 07777));
    size_t len = 0;
    char* text = read_whole(fd, path, static_cast<size_t>(st.st_size), err, err_cap, &len);
    io_close(fd);
    if (text == nullptr) return nullptr;
    std::unique_ptr<AuthTable> table = AuthTable::parse(std::string_view(text, len), path, key, err, err_cap);
    std::free(text);
    if (!table) return nullptr;
    size_t unlisted = 0;
    table->for_each_unlisted_peer([&](const AuthEntry& e, std::string_view peer) {
        if (++unlisted > kMaxUnlistedWarnings) return;
        char p[kLogEscapeCap], d[kLogEscapeCap];
        LOG_WARN("auth file %s, line %u: peer \"%s\" of \"%s\" is not in the file: anyone may "
                 "register it (unless --auth-required)",
                 path, e.line, log_escape(peer.data(), peer.size(), p, sizeof p),
                 log_escape(e.id.data(), e.id.size(), d, sizeof d));
    });
    if (unlisted > kMaxUnlistedWarnings)
        LOG_WARN("auth file %s: %zu more peers are not in the file", path,
                 unlisted - kMaxUnlistedWarnings);
    return table;
}
