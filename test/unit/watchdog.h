// watchdog.h - a per-test alarm for unit tests whose code under test could
// block or spin (a loop that is not stopped, a write that is not
// non-blocking): if a test outlives its allowance, the binary says so on
// stderr and exits 3, which the runner reports as a failure, instead of
// hanging until the suite's timeout.
//
// Use as CMocka setup and teardown: cmocka_unit_test_setup_teardown(test,
// arm_watchdog, disarm_watchdog). Define WATCHDOG_SECONDS before including
// to change the allowance (default 20).
#pragma once

#include <signal.h>
#include <unistd.h>

#ifndef WATCHDOG_SECONDS
#define WATCHDOG_SECONDS 20
#endif

inline void watchdog_fired(int) {
    static const char msg[] = "watchdog: a test hung or blocked, aborting\n";
    ssize_t n = write(2, msg, sizeof msg - 1);
    (void)n;
    _exit(3);
}

inline int arm_watchdog(void**) {
    signal(SIGALRM, watchdog_fired);
    alarm(WATCHDOG_SECONDS);
    return 0;
}

inline int disarm_watchdog(void**) {
    alarm(0);
    return 0;
}
