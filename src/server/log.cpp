// log.cpp - see log.h.
#include "log.h"

#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace {

LogLevel g_level = LogLevel::info;

const char* level_name(LogLevel level) {
    switch (level) {
        case LogLevel::error: return "error";
        case LogLevel::warn: return "warn ";
        case LogLevel::info: return "info ";
        case LogLevel::debug: return "debug";
    }
    return "?";
}

}  // namespace

void log_set_level(LogLevel level) { g_level = level; }
LogLevel log_level() { return g_level; }

bool log_parse_level(const char* text, LogLevel* out) {
    static const struct {
        const char* name;
        LogLevel level;
    } names[] = {{"error", LogLevel::error},
                 {"warn", LogLevel::warn},
                 {"warning", LogLevel::warn},
                 {"info", LogLevel::info},
                 {"debug", LogLevel::debug}};
    for (const auto& n : names) {
        if (std::strcmp(text, n.name) == 0) {
            *out = n.level;
            return true;
        }
    }
    return false;
}

const char* log_escape(const void* bytes, size_t len, char* out, size_t cap) {
    static const char hex[] = "0123456789abcdef";
    const auto* p = static_cast<const unsigned char*>(bytes);
    size_t o = 0;
    for (size_t i = 0; i < len && o + 5 < cap; ++i) {
        if (i == 64) {
            out[o++] = '.';
            out[o++] = '.';
            out[o++] = '.';
            break;
        }
        unsigned char c = p[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
            out[o++] = static_cast<char>(c);
        } else {
            out[o++] = '\\';
            out[o++] = 'x';
            out[o++] = hex[c >> 4];
            out[o++] = hex[c & 15];
        }
    }
    out[o] = '\0';
    return out;
}

void log_write(LogLevel level, const char* fmt, ...) {
    if (level > g_level) return;
    int saved_errno = errno;
    char line[1024];
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, sizeof line, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(line + n, sizeof line - n, ".%03ldZ %s ", ts.tv_nsec / 1000000L,
                     level_name(level));
    if (m > 0) n += static_cast<size_t>(m);
    va_list ap;
    va_start(ap, fmt);
    m = vsnprintf(line + n, sizeof line - n, fmt, ap);
    va_end(ap);
    if (m > 0) n += static_cast<size_t>(m);
    if (n >= sizeof line - 1) n = sizeof line - 2;  // truncated: keep the newline
    line[n++] = '\n';
    // Best effort: a log line that cannot be written is not worth dying for,
    // but a short write is finished.
    size_t off = 0;
    while (off < n) {
        ssize_t w = write(STDERR_FILENO, line + off, n - off);
        if (w == -1) {
            if (errno == EINTR) continue;
            break;
        }
        off += static_cast<size_t>(w);
    }
    errno = saved_errno;
}
