/*
 * bench_proc.h - what p2pBench reads about the machine and the server under
 * test from /proc: the server's CPU time, memory, sleeps and read calls,
 * the generator's own CPU, the whole machine's busy time (to tell noise
 * from other processes), and the kernel's memory for sockets.
 *
 * Every reader is bounded (a fixed number of lines) and returns -1 when
 * the file is missing or unreadable; callers then leave the figure out of
 * the result line rather than print a made-up one.
 */
#ifndef P2P_BENCH_PROC_H
#define P2P_BENCH_PROC_H

#include <stdint.h>
#include <sys/types.h>

/* One reading of a process. */
struct bench_proc {
    double cpu_s;          /* utime + stime of all threads, /proc/PID/stat  */
    long rss_kb;           /* VmRSS, /proc/PID/status                        */
    long hwm_kb;           /* VmHWM (peak RSS)                               */
    uint64_t sleeps;       /* voluntary_ctxt_switches: each time it blocked,
                              for this server a wait in epoll_wait            */
    uint64_t preempted;    /* nonvoluntary_ctxt_switches                     */
    int have_io;           /* /proc/PID/io was readable                      */
    uint64_t read_calls;   /* syscr: read-family calls (readv included;
                              recvmsg and sendmsg are not counted there)     */
};

/* Reads /proc/PID/{stat,status,io}. 0, or -1 when the process is gone or
 * stat/status cannot be read (io is optional: have_io). */
int bench_proc_read(pid_t pid, struct bench_proc *out);

/* CPU seconds this process has used (getrusage). */
double bench_self_cpu_s(void);

/* Busy CPU seconds of the whole machine, all cores (user, nice, system,
 * irq, softirq, steal from /proc/stat); -1 when unreadable. */
double bench_machine_busy_s(void);

/* 1-minute load average; -1 when unreadable. */
double bench_loadavg1(void);

/* The kernel's memory for sockets, machine-wide. */
struct bench_kmem {
    long tcp_inuse;        /* /proc/net/sockstat TCP inuse                   */
    long tcp_mem_pages;    /* TCP mem: pages charged to socket buffers       */
    uint64_t slab_bytes;   /* all slab objects: /proc/slabinfo num_objs x
                              objsize where readable (root), else the Slab:
                              line of /proc/meminfo                          */
    int slab_from_slabinfo;
};

/* 0, or -1 when /proc/net/sockstat cannot be read or has no TCP line. */
int bench_kmem_read(struct bench_kmem *out);

#endif /* P2P_BENCH_PROC_H */
