// log.h - timestamped, levelled log lines on stderr.
//
// One line per event, written with a single write(2) so that lines from
// concurrent processes never interleave mid-line. The format is
//   2026-11-25T16:20:01.123Z info  conn 7 [127.0.0.1:51234] registered "dev1"
// Messages are printf-style; the level filter is checked before formatting,
// so a disabled debug line costs one comparison.
#pragma once

#include <cstddef>

enum class LogLevel { error = 0, warn = 1, info = 2, debug = 3 };

void log_set_level(LogLevel level);
LogLevel log_level();
// Parses "error", "warn", "info" or "debug"; false if none of them.
bool log_parse_level(const char* text, LogLevel* out);

// Renders arbitrary bytes (a device id) for a log line: printable ASCII as
// is, anything else and '"' and '\\' as \xNN, cut with "..." after 64 bytes.
// Writes into out (cap >= 5) and returns it; no id can forge a line.
const char* log_escape(const void* bytes, size_t len, char* out, size_t cap);
// Large enough for any escaped id.
constexpr size_t kLogEscapeCap = 64 * 4 + 8;

void log_write(LogLevel level, const char* fmt, ...) __attribute__((format(printf, 2, 3)));

#define LOG_ERROR(...) log_write(LogLevel::error, __VA_ARGS__)
#define LOG_WARN(...) log_write(LogLevel::warn, __VA_ARGS__)
#define LOG_INFO(...)                                                        \
    do {                                                                     \
        if (log_level() >= LogLevel::info) log_write(LogLevel::info, __VA_ARGS__); \
    } while (0)
#define LOG_DEBUG(...)                                                         \
    do {                                                                       \
        if (log_level() >= LogLevel::debug) log_write(LogLevel::debug, __VA_ARGS__); \
    } while (0)
