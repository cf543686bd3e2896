// log.h - timestamped, levelled log lines on stderr that never block the
// server and cannot be flooded.
//
// The format is
//   2026-11-25T16:20:01.123Z info  conn 7 [127.0.0.1:51234] registered "dev1"
// Messages are printf-style; the level filter is checked before formatting,
// so a disabled debug line costs one comparison.
//
// Never blocking (issue 10: 100,000 REGISTERs wrote 100,005 lines through a
// synchronous write(2), and a stderr that is not read stops the whole loop):
//  - log_open() gives the log its own non-blocking handle on stderr. A pipe,
//    FIFO or terminal is opened anew through /proc/self/fd/2 with
//    O_NONBLOCK: a new open file description, so the flag does not leak to
//    the other processes that share stderr (fcntl(2): O_NONBLOCK belongs to
//    the description). A socket is written with MSG_DONTWAIT; a regular
//    file as it is (it never makes a writer wait for a reader).
//  - A line goes out at once if the kernel takes it; otherwise it waits in
//    a buffer of kLogBufferBytes, which log_flush() (called by the server
//    after every loop iteration) writes out as the reader catches up. When
//    the buffer is full, lines are dropped and counted, and a line saying
//    how many follows once there is room.
//  - Every write is whole lines, at most PIPE_BUF bytes, so that lines from
//    processes sharing a pipe never interleave (pipe(7): such writes are
//    atomic).
//
// Never flooded: every use of a LOG_* macro is one kind of event, with its
// own allowance of kLogLinesPerSecond lines a second; the rest are counted,
// and once the second is over (at the kind's next line, or at log_tick())
// one line says how many lines like it were suppressed.
//
// Single-threaded (the server's loop thread).
#pragma once

#include <cstddef>
#include <cstdint>

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3 };

constexpr size_t kLogBufferBytes = 64 * 1024;
constexpr uint32_t kLogLinesPerSecond = 100;

void log_set_level(LogLevel level);
LogLevel log_level();
// Parses "error", "warn", "info" or "debug"; false if none of them.
bool log_parse_level(const char* text, LogLevel* out);

// Sets up the non-blocking handle on stderr (see above). Until it is
// called, lines are written to fd 2 as it is. Returns false, having logged
// why, if stderr can only be written blocking.
bool log_open();
// For tests: log to fd, which the caller has made non-blocking or not, as
// it wants to test; -1 goes back to fd 2 as it is. Clears the buffer and
// the counts.
void log_use_fd(int fd);
// Writes what the buffer holds, as far as the kernel takes it.
void log_flush();
// At exit: log_flush(), waiting at most timeout_ms for the reader.
void log_flush_before_exit(int timeout_ms);
// Writes the summaries of kinds whose second is over (the server's tick).
void log_tick();

// What the log could not write: lines dropped because the buffer was full,
// and lines suppressed by the rate limit (so far, in total).
struct LogCounts {
    uint64_t dropped;
    uint64_t suppressed;
    size_t buffered;  // bytes waiting in the buffer now
};
LogCounts log_counts();

// Renders arbitrary bytes (a device id) for a log line: printable ASCII as
// is, anything else and '"' and '\\' as \xNN, cut with "..." after 64 bytes.
// Writes into out (cap >= 5) and returns it; no id can forge a line.
const char* log_escape(const void* bytes, size_t len, char* out, size_t cap);
// Large enough for any escaped id.
constexpr size_t kLogEscapeCap = 64 * 4 + 8;

// One kind of log line: the state of its rate limit. Each LOG_* macro use
// has its own, static.
struct LogSite {
    const char* fmt = nullptr;
    LogSite* next_pending = nullptr;  // on the list of kinds with a summary due
    uint64_t window_start_ms = 0;
    uint64_t suppressed = 0;          // in the current window
    uint32_t lines = 0;               // written in the current window
    LogLevel level = LogLevel::info;
    bool pending = false;
};

// A line, unlimited (start-up and shutdown lines).
void log_write(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));
// A line of the kind `site`, within its rate limit.
void log_write_at(LogSite* site, LogLevel level, const char* fmt, ...)
    __attribute__((format(printf, 3, 4)));

#define LOG_AT(level, ...)                                \
    do {                                                  \
        if (log_level() >= (level)) {                     \
            static LogSite log_site_;                     \
            log_write_at(&log_site_, (level), __VA_ARGS__); \
        }                                                 \
    } while (0)
#define LOG_ERROR(...) LOG_AT(LogLevel::error, __VA_ARGS__)
#define LOG_WARN(...) LOG_AT(LogLevel::warn, __VA_ARGS__)
#define LOG_INFO(...) LOG_AT(LogLevel::info, __VA_ARGS__)
#define LOG_DEBUG(...) LOG_AT(LogLevel::debug, __VA_ARGS__)
