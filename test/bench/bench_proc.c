/* bench_proc.c - see bench_proc.h. */
#include "bench_proc.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Bound on the lines read from any one /proc file. */
#define PROC_MAX_LINES 4096

static double clock_ticks(void)
{
    long t = sysconf(_SC_CLK_TCK);
    return t > 0 ? (double)t : 100.0;
}

/* The value after "key" on a line that starts with it, e.g. "VmRSS:". */
static int line_value(const char *line, const char *key, unsigned long long *out)
{
    size_t n = strlen(key);
    if (strncmp(line, key, n) != 0)
        return 0;
    *out = strtoull(line + n, NULL, 10);
    return 1;
}

/* Opens /proc/PID/name for reading; NULL when it cannot. */
static FILE *open_proc(pid_t pid, const char *name)
{
    char path[64];
    snprintf(path, sizeof path, "/proc/%d/%s", (int)pid, name);
    return fopen(path, "r");
}

static int read_stat_cpu(pid_t pid, double *cpu_s)
{
    FILE *f = open_proc(pid, "stat");
    if (f == NULL)
        return -1;
    char line[1024];
    char *got = fgets(line, sizeof line, f);
    fclose(f);
    if (got == NULL)
        return -1;
    /* The command name may hold spaces and parentheses: fields are
     * counted from the last ')'. Field 3 (state) follows it; utime and
     * stime are fields 14 and 15 (proc(5)). */
    char *p = strrchr(line, ')');
    if (p == NULL)
        return -1;
    p += 1;
    unsigned long long utime = 0, stime = 0;
    for (int field = 3; field <= 15; ++field) {
        while (*p == ' ')
            ++p;
        if (*p == '\0' || *p == '\n')
            return -1;
        char *end = p;
        while (*end != ' ' && *end != '\0' && *end != '\n')
            ++end;
        if (field == 14)
            utime = strtoull(p, NULL, 10);
        if (field == 15)
            stime = strtoull(p, NULL, 10);
        p = end;
    }
    *cpu_s = (double)(utime + stime) / clock_ticks();
    return 0;
}

int bench_proc_read(pid_t pid, struct bench_proc *out)
{
    memset(out, 0, sizeof *out);
    if (pid <= 0 || read_stat_cpu(pid, &out->cpu_s) != 0)
        return -1;
    FILE *f = open_proc(pid, "status");
    if (f == NULL)
        return -1;
    char line[256];
    int found = 0;
    for (int i = 0; i < PROC_MAX_LINES && fgets(line, sizeof line, f) != NULL; ++i) {
        unsigned long long v;
        if (line_value(line, "VmRSS:", &v)) {
            out->rss_kb = (long)v;
            found = 1;
        } else if (line_value(line, "VmHWM:", &v)) {
            out->hwm_kb = (long)v;
        } else if (line_value(line, "voluntary_ctxt_switches:", &v)) {
            out->sleeps = v;
        } else if (line_value(line, "nonvoluntary_ctxt_switches:", &v)) {
            out->preempted = v;
        }
    }
    fclose(f);
    if (!found)
        return -1;
    f = open_proc(pid, "io");
    if (f != NULL) {
        for (int i = 0; i < PROC_MAX_LINES && fgets(line, sizeof line, f) != NULL; ++i) {
            unsigned long long v;
            if (line_value(line, "syscr:", &v)) {
                out->read_calls = v;
                out->have_io = 1;
            }
        }
        fclose(f);
    }
    return 0;
}

double bench_self_cpu_s(void)
{
    struct rusage ru;
    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

double bench_machine_busy_s(void)
{
    FILE *f = fopen("/proc/stat", "r");
    if (f == NULL)
        return -1;
    unsigned long long v[8] = {0};
    int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3],
                   &v[4], &v[5], &v[6], &v[7]);
    fclose(f);
    if (n != 8)
        return -1;
    /* user nice system idle iowait irq softirq steal: idle and iowait are
     * not busy. */
    unsigned long long busy = v[0] + v[1] + v[2] + v[5] + v[6] + v[7];
    return (double)busy / clock_ticks();
}

double bench_loadavg1(void)
{
    FILE *f = fopen("/proc/loadavg", "r");
    if (f == NULL)
        return -1;
    double l = -1;
    if (fscanf(f, "%lf", &l) != 1)
        l = -1;
    fclose(f);
    return l;
}

/* Sum of num_objs x objsize over every cache in /proc/slabinfo (2.1). */
static int read_slabinfo(uint64_t *bytes)
{
    FILE *f = fopen("/proc/slabinfo", "r");
    if (f == NULL)
        return -1;
    char line[512];
    uint64_t total = 0;
    int caches = 0;
    for (int i = 0; i < PROC_MAX_LINES * 4 && fgets(line, sizeof line, f) != NULL; ++i) {
        if (line[0] == '#' || strncmp(line, "slabinfo", 8) == 0)
            continue;
        char name[128];
        unsigned long long active, num, size;
        if (sscanf(line, "%127s %llu %llu %llu", name, &active, &num, &size) == 4) {
            total += (uint64_t)num * size;
            ++caches;
        }
    }
    fclose(f);
    if (caches == 0)
        return -1;
    *bytes = total;
    return 0;
}

static int read_meminfo_slab(uint64_t *bytes)
{
    FILE *f = fopen("/proc/meminfo", "r");
    if (f == NULL)
        return -1;
    char line[256];
    int found = -1;
    for (int i = 0; i < PROC_MAX_LINES && fgets(line, sizeof line, f) != NULL; ++i) {
        unsigned long long kb;
        if (line_value(line, "Slab:", &kb)) {
            *bytes = (uint64_t)kb * 1024u;
            found = 0;
            break;
        }
    }
    fclose(f);
    return found;
}

int bench_kmem_read(struct bench_kmem *out)
{
    memset(out, 0, sizeof *out);
    FILE *f = fopen("/proc/net/sockstat", "r");
    if (f == NULL)
        return -1;
    char line[256];
    int found = 0;
    for (int i = 0; i < PROC_MAX_LINES && fgets(line, sizeof line, f) != NULL; ++i) {
        /* "TCP: inuse N orphan N tw N alloc N mem N" */
        const char *p = strstr(line, "TCP: inuse ");
        if (p != line)
            continue;
        const char *mem = strstr(line, " mem ");
        out->tcp_inuse = strtol(line + strlen("TCP: inuse "), NULL, 10);
        out->tcp_mem_pages = mem != NULL ? strtol(mem + 5, NULL, 10) : 0;
        found = 1;
        break;
    }
    fclose(f);
    if (!found)
        return -1;
    if (read_slabinfo(&out->slab_bytes) == 0)
        out->slab_from_slabinfo = 1;
    else if (read_meminfo_slab(&out->slab_bytes) != 0)
        out->slab_bytes = 0;
    return 0;
}
