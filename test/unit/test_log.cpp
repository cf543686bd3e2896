// test_log.cpp - unit tests for src/server/log.{h,cpp}: the log never
// blocks and cannot be flooded (issue 10, finding 4).
//
//  - Written to a pipe nobody reads, lines fill the pipe, then the buffer,
//    then are dropped and counted; no call blocks. Once the reader comes
//    back and log_flush() runs, what arrives is whole lines, followed by a
//    line saying how many were dropped.
//  - Each LOG_* use is a kind with its own allowance per second; the rest
//    are counted, and summarised in one line.
//  - log_open() reopens a pipe on stderr non-blocking without setting
//    O_NONBLOCK on the description other processes share.
// A watchdog alarm ends the binary if a call blocks.
#include <fcntl.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <string>

#include "log.h"
#include "watchdog.h"

// CMocka last: it defines fail() and friends as macros. Its 1.1 header has
// no extern "C" of its own.
extern "C" {
#include <cmocka.h>
}

namespace {

int back_to_stderr(void** state) {
    log_use_fd(-1);
    return disarm_watchdog(state);
}

// A pipe of `size` bytes whose write end is non-blocking (as log_open()
// makes it), its read end too.
struct Pipe {
    int r = -1, w = -1;
    explicit Pipe(int size) {
        int fds[2];
        assert_int_equal(pipe2(fds, O_CLOEXEC | O_NONBLOCK), 0);
        r = fds[0];
        w = fds[1];
        assert_true(fcntl(w, F_SETPIPE_SZ, size) >= size);
    }
    ~Pipe() {
        close(r);
        close(w);
    }
    // Everything readable now, flushing the log between reads, until
    // neither has anything more.
    std::string drain() {
        std::string out;
        char buf[4096];
        for (int rounds = 0; rounds < 100000; ++rounds) {
            ssize_t n = read(r, buf, sizeof buf);
            if (n > 0) {
                out.append(buf, static_cast<size_t>(n));
                continue;
            }
            log_flush();
            if (log_counts().buffered == 0) {
                n = read(r, buf, sizeof buf);
                if (n <= 0) break;
                out.append(buf, static_cast<size_t>(n));
            }
        }
        return out;
    }
};

size_t count(const std::string& text, const char* what) {
    size_t n = 0;
    for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
    return n;
}

// Every line whole: a timestamp at its start, a newline at its end.
void expect_whole_lines(const std::string& text) {
    assert_true(!text.empty() && text.back() == '\n');
    for (size_t at = 0; at < text.size();) {
        size_t end = text.find('\n', at);
        std::string line = text.substr(at, end - at);
        if (line.size() < 25 || line[4] != '-' || line[10] != 'T' || line[23] != 'Z')
            assert_string_equal(line.c_str(), "a whole line");
        at = end + 1;
    }
}

void test_unread_pipe_never_blocks(void**) {
    Pipe p(4096);
    log_use_fd(p.w);
    const int lines = 5000;  // about 400 KB: far beyond pipe and buffer
    for (int i = 0; i < lines; ++i) log_write(LogLevel::info, "line %d of the flood", i);
    LogCounts c = log_counts();
    assert_true(c.dropped > 0);
    assert_true(c.buffered <= kLogBufferBytes);
    uint64_t dropped = c.dropped;
    std::string first = p.drain();
    // One more line: the note about the drops goes first.
    log_write(LogLevel::info, "after the reader came back");
    std::string rest = p.drain();
    std::string all = first + rest;
    expect_whole_lines(all);
    assert_int_equal(count(all, " of the flood\n") + dropped, lines);
    std::string note = "log: " + std::to_string(dropped) + " lines dropped";
    assert_true(rest.find(note) != std::string::npos);
    assert_true(rest.find(note) < rest.find("after the reader came back"));
    assert_int_equal(log_counts().buffered, 0);
}

void test_rate_limit_per_kind(void**) {
    Pipe p(1 << 20);
    log_use_fd(p.w);
    for (int i = 0; i < 1000; ++i) LOG_INFO("flooding kind %d", i);
    for (int i = 0; i < 3; ++i) LOG_WARN("another kind %d", i);
    assert_int_equal(log_counts().suppressed, 1000 - kLogLinesPerSecond);
    log_flush_before_exit(0);  // writes the summaries due, even early
    std::string text = p.drain();
    expect_whole_lines(text);
    assert_int_equal(count(text, "flooding kind "), kLogLinesPerSecond + 1);  // + the summary
    assert_int_equal(count(text, "another kind "), 3);
    std::string summary = "log: " + std::to_string(1000 - kLogLinesPerSecond) +
                          " more lines like \"flooding kind %d\" suppressed";
    assert_true(text.find(summary) != std::string::npos);
}

// log_open() on a pipe: its own description, non-blocking; fd 2's stays
// blocking for whoever else writes to it.
void test_open_leaves_stderr_blocking(void**) {
    int fds[2];
    assert_int_equal(pipe2(fds, O_CLOEXEC), 0);
    int saved = dup(STDERR_FILENO);
    assert_true(saved >= 0);
    assert_true(dup2(fds[1], STDERR_FILENO) == STDERR_FILENO);
    bool opened = log_open();
    int flags = fcntl(STDERR_FILENO, F_GETFL);
    log_write(LogLevel::info, "through the reopened pipe");
    log_flush();
    assert_true(dup2(saved, STDERR_FILENO) == STDERR_FILENO);
    close(saved);
    log_use_fd(-1);
    close(fds[1]);
    char buf[256] = {};
    ssize_t n = read(fds[0], buf, sizeof buf - 1);
    close(fds[0]);
    assert_true(opened);
    assert_true(flags != -1 && (flags & O_NONBLOCK) == 0);
    assert_true(n > 0 && std::strstr(buf, "through the reopened pipe\n") != nullptr);
}

}  // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unread_pipe_never_blocks, arm_watchdog, back_to_stderr),
        cmocka_unit_test_setup_teardown(test_rate_limit_per_kind, arm_watchdog, back_to_stderr),
        cmocka_unit_test_setup_teardown(test_open_leaves_stderr_blocking, arm_watchdog,
                                        back_to_stderr),
    };
    return cmocka_run_group_tests(tests, nullptr, nullptr);
}
