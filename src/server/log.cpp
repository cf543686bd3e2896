// log.cpp - see log.h.
#include "log.h"

#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdarg>
#include <cstdio>
#include <cstring>
#include <ctime>

namespace {

constexpr size_t kLineMax = 2048;  // below PIPE_BUF: one write a line (the SIGUSR1 counters line is the longest)
constexpr uint64_t kWindowMs = 1000;

LogLevel g_level = LogLevel::info;

// Where lines go, and how.
int g_fd = STDERR_FILENO;
bool g_send = false;    // a socket: send(MSG_DONTWAIT)
bool g_owned = false;   // g_fd is ours to close

// Lines waiting for the reader: [g_start, g_end) of g_buf.
char g_buf[kLogBufferBytes];
size_t g_start = 0;
size_t g_end = 0;
uint64_t g_dropped = 0;        // since the last note about it
uint64_t g_dropped_total = 0;
uint64_t g_suppressed_total = 0;
LogSite* g_pending = nullptr;  // kinds with a summary due

const char* level_name(LogLevel level) {
    switch (level) {
        case LogLevel::error: return "error";
        case LogLevel::warn: return "warn ";
        case LogLevel::info: return "info ";
        case LogLevel::debug: return "debug";
    }
    return "?";
}

uint64_t coarse_ms() {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
    return static_cast<uint64_t>(ts.tv_sec) * 1000u + static_cast<uint64_t>(ts.tv_nsec) / 1000000u;
}

// One write of n bytes; the bytes written, 0 when the reader is full, -1
// when the log cannot be written at all (the reader has gone).
ssize_t write_some(const char* p, size_t n) {
    for (;;) {
        ssize_t w = g_send ? send(g_fd, p, n, MSG_DONTWAIT | MSG_NOSIGNAL) : write(g_fd, p, n);
        if (w >= 0) return w;
        if (errno == EINTR) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
        return -1;
    }
}

// Writes whole lines from the buffer, PIPE_BUF bytes at most at a time,
// until the reader is full or the buffer empty.
void flush_buffer() {
    while (g_start < g_end) {
        size_t n = g_end - g_start;
        if (n > PIPE_BUF) {
            // Up to the last line end within PIPE_BUF (lines are shorter).
            n = PIPE_BUF;
            while (n > 0 && g_buf[g_start + n - 1] != '\n') --n;
            if (n == 0) n = PIPE_BUF;
        }
        ssize_t w = write_some(g_buf + g_start, n);
        if (w == 0) return;
        if (w < 0) {
            g_start = g_end;  // nobody to read it: give up on what is buffered
            break;
        }
        g_start += static_cast<size_t>(w);
    }
    g_start = g_end = 0;
}

// Puts n bytes (whole lines) into the buffer; false if they do not fit.
bool buffer_line(const char* line, size_t n) {
    if (kLogBufferBytes - g_end < n && g_start != 0) {
        std::memmove(g_buf, g_buf + g_start, g_end - g_start);
        g_end -= g_start;
        g_start = 0;
    }
    if (kLogBufferBytes - g_end < n) return false;
    std::memcpy(g_buf + g_end, line, n);
    g_end += n;
    return true;
}

// Formats the timestamp and level into line; returns the bytes used.
size_t line_prefix(char* line, size_t cap, LogLevel level) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    struct tm tm;
    gmtime_r(&ts.tv_sec, &tm);
    size_t n = strftime(line, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    int m = snprintf(line + n, cap - n, ".%03ldZ %s ", ts.tv_nsec / 1000000L, level_name(level));
    if (m > 0) n += static_cast<size_t>(m);
    return n;
}

void emit_formatted(LogLevel level, const char* fmt, va_list ap);

void emit(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
void emit(LogLevel level, const char* fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    emit_formatted(level, fmt, ap);
    va_end(ap);
}

// Formats one line and hands it to the buffer (or drops it, counted).
void emit_formatted(LogLevel level, const char* fmt, va_list ap) {
    char line[kLineMax];
    size_t n = line_prefix(line, sizeof line, level);
    int m = vsnprintf(line + n, sizeof line - n, fmt, ap);
    if (m > 0) n += static_cast<size_t>(m);
    if (n >= sizeof line - 1) n = sizeof line - 2;  // truncated: keep the newline
    line[n++] = '\n';
    if (g_dropped != 0) {
        // Say what was lost first, once there is room for it and this line.
        char note[128];
        size_t k = line_prefix(note, sizeof note, LogLevel::warn);
        int q = snprintf(note + k, sizeof note - k,
                         "log: %llu lines dropped: standard error was not being read\n",
                         static_cast<unsigned long long>(g_dropped));
        if (q > 0) k += static_cast<size_t>(q);
        if (k > sizeof note) k = sizeof note;
        flush_buffer();
        if (kLogBufferBytes - (g_end - g_start) >= k + n && buffer_line(note, k)) g_dropped = 0;
    }
    if (g_dropped != 0 || !buffer_line(line, n)) {
        flush_buffer();
        if (g_dropped != 0 || !buffer_line(line, n)) {
            ++g_dropped;
            ++g_dropped_total;
            return;
        }
    }
    flush_buffer();
}

// Ends a kind's window: the summary of what it suppressed, if anything.
void end_window(LogSite* site, uint64_t now) {
    if (site->suppressed != 0) {
        emit(site->level, "log: %llu more lines like \"%s\" suppressed in %llu ms",
             static_cast<unsigned long long>(site->suppressed), site->fmt,
             static_cast<unsigned long long>(now - site->window_start_ms));
    }
    site->window_start_ms = now;
    site->lines = 0;
    site->suppressed = 0;
}

void unlink_pending(LogSite* site) {
    for (LogSite** p = &g_pending; *p != nullptr; p = &(*p)->next_pending) {
        if (*p == site) {
            *p = site->next_pending;
            break;
        }
    }
    site->next_pending = nullptr;
    site->pending = false;
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

bool log_open() {
    struct stat st;
    if (fstat(STDERR_FILENO, &st) == -1) return false;  // no stderr: writes fail, dropped
    if (S_ISSOCK(st.st_mode)) {
        g_send = true;
        return true;
    }
    if (!S_ISFIFO(st.st_mode) && !S_ISCHR(st.st_mode)) return true;  // a file
    int fd = open("/proc/self/fd/2", O_WRONLY | O_NONBLOCK | O_CLOEXEC | O_NOCTTY);
    if (fd == -1) {
        int err = errno;
        log_write(LogLevel::warn, "log: cannot reopen standard error non-blocking (%s): a reader "
                  "that stops reading will stop the server", strerrordesc_np(err));
        return false;
    }
    g_fd = fd;
    g_owned = true;
    return true;
}

void log_use_fd(int fd) {
    if (g_owned) close(g_fd);
    g_owned = false;
    g_send = false;
    g_fd = fd == -1 ? STDERR_FILENO : fd;
    g_start = g_end = 0;
    g_dropped = g_dropped_total = g_suppressed_total = 0;
    while (g_pending != nullptr) unlink_pending(g_pending);
}

void log_flush() {
    if (g_start != g_end) flush_buffer();
}

namespace {

// Summaries of kinds whose window is over, or of every kind (at exit).
void write_summaries(bool all) {
    uint64_t now = coarse_ms();
    LogSite* site = g_pending;
    while (site != nullptr) {
        LogSite* next = site->next_pending;
        if (all || now - site->window_start_ms >= kWindowMs) {
            unlink_pending(site);
            end_window(site, now);
        }
        site = next;
    }
}

}  // namespace

void log_flush_before_exit(int timeout_ms) {
    write_summaries(true);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        log_flush();
        if (g_start == g_end) return;
        struct timespec t;
        clock_gettime(CLOCK_MONOTONIC, &t);
        long spent = (t.tv_sec - t0.tv_sec) * 1000L + (t.tv_nsec - t0.tv_nsec) / 1000000L;
        if (spent >= timeout_ms) return;
        struct pollfd p = {g_fd, POLLOUT, 0};
        if (poll(&p, 1, static_cast<int>(timeout_ms - spent)) <= 0) return;
    }
}

void log_tick() { write_summaries(false); }

LogCounts log_counts() {
    return LogCounts{g_dropped_total, g_suppressed_total, g_end - g_start};
}

void log_write(LogLevel level, const char* fmt, ...) {
    if (level > g_level) return;
    int saved_errno = errno;
    va_list ap;
    va_start(ap, fmt);
    emit_formatted(level, fmt, ap);
    va_end(ap);
    errno = saved_errno;
}

void log_write_at(LogSite* site, LogLevel level, const char* fmt, ...) {
    if (level > g_level) return;
    int saved_errno = errno;
    uint64_t now = coarse_ms();
    if (site->fmt == nullptr) {
        site->fmt = fmt;
        site->level = level;
        site->window_start_ms = now;
    }
    if (now - site->window_start_ms >= kWindowMs) {
        if (site->pending) unlink_pending(site);
        end_window(site, now);
    }
    if (site->lines >= kLogLinesPerSecond) {
        ++site->suppressed;
        ++g_suppressed_total;
        if (!site->pending) {
            site->pending = true;
            site->next_pending = g_pending;
            g_pending = site;
        }
        errno = saved_errno;
        return;
    }
    ++site->lines;
    va_list ap;
    va_start(ap, fmt);
    emit_formatted(level, fmt, ap);
    va_end(ap);
    errno = saved_errno;
}
