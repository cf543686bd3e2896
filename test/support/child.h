/*
 * child.h - fork(2) for a child process that must not outlive the test.
 *
 * Every program a test starts (the server, nats-server, p2pClient, the
 * token tools) is forked here, so that a test binary that crashes or is
 * killed by the runner's timeout leaves nothing running behind it.
 */
#ifndef TEST_CHILD_H
#define TEST_CHILD_H

#include <sys/types.h>

/* Flushes stdout and stderr (nothing buffered is written twice), then
 * forks. In the child, before returning 0: PR_SET_PDEATHSIG(SIGKILL), and
 * _exit(126) if the parent died before that took hold. Returns what fork
 * returns otherwise (-1 with errno set). In the child only
 * async-signal-safe calls may follow: the test may have threads. The
 * death signal goes with the thread that forked: fork from the test's
 * main thread. */
pid_t tc_fork_tied(void);

#endif
