/*
 * p2pBench - the stupidP2P load generator. It drives a p2pServer that is
 * already running on this machine (loopback only) with one workload, checks
 * every delivery, and prints ONE line of key=value pairs on stdout:
 *
 *   fanout    1 publisher -> N subscribers of it
 *   pairs     P pairs of devices, each subscribed to its partner, both send
 *   pingpong  A sends, B echoes, A times each round trip
 *   idle      open C connections (register + one subscription each), hold
 *             them, and measure what they cost the server and the kernel
 *   connrate  open C connections (register each) as fast as the server
 *             takes them
 *
 * each in protocol v1 (the original: every SEND acknowledged) or v2 (HELLO
 * first; by default with the QUIET flag, so sends are not acknowledged).
 *
 * Design
 *   - One thread, one epoll loop, non-blocking TCP_NODELAY sockets: the
 *     machine has 2 cores, one for the server, one for this.
 *   - Every frame written and read goes through the project's codec
 *     (src/common/codec.h): frame headers, HELLO, REGISTER, SUBSCRIBE,
 *     HEARTBEAT, SEND, SEND_TO, and p2p_message_parse for what comes back.
 *   - Batching: a publisher queues up to PUMP_BUDGET messages per loop turn
 *     and everything queued for a socket in one turn leaves in one send();
 *     receivers read READ_CHUNK bytes at a time and parse in place.
 *   - Flow control, so that no run asks the server to buffer without bound:
 *     a publisher has at most --window sends unacknowledged (when sends are
 *     acknowledged), runs at most --inflight messages ahead of its
 *     receivers on average (measured end to end, so a protocol without acks
 *     gains nothing), and stops queueing while OUT_CAP bytes are unsent.
 *   - Verification: every payload carries [u32 source][u64 sequence] (see
 *     bench_seq.h); each receiver checks it gets 0, 1, 2, ... from its
 *     source, from the right sender id (v2), in the frame format of its
 *     session version. Any loss, duplicate, reorder, error or disconnect
 *     makes the exit status non-zero.
 *   - Bounds: --timeout for the whole run, --idle for a stretch without
 *     progress, an iteration cap on the loop, at most MAX_SOCKETS sockets
 *     (the machine allows 20,000 descriptors per process).
 *
 * Definitions follow relaybench (../shared/tools/relaybench) so that its
 * figures and ours compare: deliveries/s = deliveries / (first send ->
 * last delivery); RSS per connection = (VmRSS after setup - before) /
 * connections; connections/s = connections / (first connect -> last
 * REGISTER reply); CPU in % of one core.
 *
 * The result line: the run's parameters, then status (ok, failed,
 * timeout, stalled, setup_failed, refused, interrupted), and
 *   fanout, pairs   deliveries, expected, deliveries_per_s, pub_msgs_per_s,
 *                   MBps, acks, ack_fail (when sends are acknowledged)
 *   pingpong        samples, p50_us, p90_us, p99_us, p999_us, max_us,
 *                   mean_us, rounds_per_s
 *   checks          lost, unsent, reordered, bad_payload, unexpected,
 *                   disconnects, errors, first_error
 *   idle, connrate  conns_ok, conns_per_s, connect_s; idle adds subs_ok,
 *                   alive, rss_before_kb, rss_after_kb, rss_per_conn_bytes,
 *                   tcp_sockets_added, kernel_slab_per_socket_bytes,
 *                   tcp_buffer_per_socket_bytes
 *   resources       gen_cpu_pct, and with --server-pid srv_cpu_pct,
 *                   srv_rss_kb, srv_hwm_kb, srv_sleeps (times the server
 *                   blocked: voluntary context switches), srv_preempted,
 *                   srv_read_calls, deliveries_per_srv_sleep; then
 *                   machine_cpu_pct, other_cpu_pct (noise) and load1
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include "bench_conn.h"
#include "bench_proc.h"
#include "bench_seq.h"
#include "codec.h"

/* ---- bounds and tunables -------------------------------------------------- */

#define READ_CHUNK (256u * 1024u)      /* bytes per recv()                   */
#define READS_PER_EVENT 16             /* recv() calls per readiness event   */
#define PUMP_BUDGET 1024u              /* messages a publisher queues a turn */
#define OUT_CAP (1024u * 1024u)        /* stop queueing past this many bytes */
#define MAX_EVENTS 1024
#define MAX_SOCKETS 19000u             /* descriptors: 20,000 per process    */
#define MAX_LOOP_ITERS 4000000000ull   /* besides the time bounds            */
#define SLICE_MS 20                    /* longest epoll wait                 */
#define MAX_SIZE (P2P_DEFAULT_MAX_FRAME - 2u - 16u) /* fits SEND_TO to our ids */
#define ID_CAP 24
#define ERROR_CAP 192

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double secs(uint64_t ns) { return (double)ns / 1e9; }
static uint64_t ns_of(double s) { return (uint64_t)(s * 1e9); }

/* ---- options ---------------------------------------------------------------- */

enum workload { W_FANOUT, W_PAIRS, W_PINGPONG, W_IDLE, W_CONNRATE };

static const char *const workload_names[] = {"fanout", "pairs", "pingpong", "idle", "connrate"};

struct options {
    enum workload workload;
    const char *host;
    uint16_t port;
    int version;           /* 1 or 2                                      */
    int quiet;             /* v2: HELLO with QUIET                        */
    int send_to;           /* pairs, pingpong: SEND_TO instead of SEND    */
    uint32_t subs, pairs, conns, burst;
    uint64_t msgs, rounds, warmup;
    int warmup_given;
    size_t size;
    uint64_t window, inflight;
    double duration, timeout, idle, hold;
    pid_t server_pid;
    const char *label;
    int verbose;
};

static const char usage_text[] =
    "usage: p2pBench WORKLOAD --port N [options]\n"
    "\n"
    "Drives a stupidP2P server on this machine and prints one line of\n"
    "key=value results; exit status 0 only if every message arrived exactly\n"
    "once and in order and nothing failed.\n"
    "\n"
    "WORKLOAD\n"
    "  fanout    --subs N --msgs M --size S    1 publisher -> N subscribers\n"
    "  pairs     --pairs P --msgs M --size S   P pairs, each sends M to its partner\n"
    "  pingpong  --rounds R --size S [--warmup W]  round trip A -> B -> A\n"
    "            (W unmeasured rounds first: default min(1000, R/10); with\n"
    "            --duration warmup also ends after a tenth of it)\n"
    "  idle      --conns C [--hold SEC] [--burst B]  C registered connections,\n"
    "            each subscribed to a partner; server RSS and kernel memory\n"
    "            per connection (needs --server-pid for RSS)\n"
    "  connrate  --conns C [--burst B]         connect + register C connections\n"
    "options\n"
    "  --host H          127.0.0.1 (default), localhost or ::1; nothing else\n"
    "  --port N          the server's port (required)\n"
    "  --proto v1|v2     protocol version (default v1); v2 sends HELLO first\n"
    "  --no-quiet        v2 without the QUIET flag: sends are acknowledged\n"
    "  --send-to         pairs, pingpong: SEND_TO the partner instead of SEND\n"
    "                    to subscribers\n"
    "  --window W        most unacknowledged sends per publisher (default 1024)\n"
    "  --inflight F      most messages a publisher runs ahead of its receivers,\n"
    "                    on average per receiver (default 1024; 0 = no bound:\n"
    "                    with v2 QUIET the server then buffers until its\n"
    "                    output cap and drops a slow subscriber)\n"
    "  --duration SEC    stop sending after SEC s; --msgs/--rounds become caps\n"
    "  --timeout SEC     bound on the whole run (default 30)\n"
    "  --idle SEC        give up after SEC s without progress (default 5)\n"
    "  --burst B         connections being set up at once (default 256)\n"
    "  --server-pid PID  read the server's CPU, memory and wake-ups from /proc\n"
    "  --label NAME      printed as server=NAME (default p2pServer)\n"
    "  --verbose         progress on stderr\n";

static void usage_error(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void usage_error(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("p2pBench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputs("\nTry 'p2pBench --help'.\n", stderr);
    va_end(ap);
    exit(2);
}

static uint64_t parse_u64(const char *flag, const char *v, uint64_t lo, uint64_t hi)
{
    char *end = NULL;
    errno = 0;
    unsigned long long x = strtoull(v, &end, 10);
    if (v[0] < '0' || v[0] > '9' || errno != 0 || *end != '\0' || x < lo || x > hi)
        usage_error("%s wants a whole number in %" PRIu64 "..%" PRIu64 ", not '%s'", flag, lo, hi,
                    v);
    return x;
}

static double parse_secs(const char *flag, const char *v)
{
    char *end = NULL;
    errno = 0;
    double d = strtod(v, &end);
    if (errno != 0 || end == v || *end != '\0' || !(d >= 0 && d <= 86400))
        usage_error("%s wants seconds (0-86400), not '%s'", flag, v);
    return d;
}

static void parse_options(int argc, char **argv, struct options *o)
{
    memset(o, 0, sizeof *o);
    o->host = "127.0.0.1";
    o->version = 1;
    o->quiet = 1;
    o->subs = 1;
    o->pairs = 1;
    o->conns = 1000;
    o->burst = 256;
    o->msgs = 100000;
    o->rounds = 10000;
    o->size = 64;
    o->window = 1024;
    o->inflight = 1024;
    o->timeout = 30;
    o->idle = 5;
    o->hold = 1;
    o->label = "p2pServer";
    if (argc < 2)
        usage_error("a workload is required");
    if (strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        fputs(usage_text, stdout);
        exit(0);
    }
    size_t w = 0;
    while (w < sizeof workload_names / sizeof workload_names[0] &&
           strcmp(argv[1], workload_names[w]) != 0)
        ++w;
    if (w == sizeof workload_names / sizeof workload_names[0])
        usage_error("unknown workload '%s'", argv[1]);
    o->workload = (enum workload)w;
    int have_port = 0;
    for (int i = 2; i < argc; ++i) {
        const char *f = argv[i];
        if (strcmp(f, "--verbose") == 0) {
            o->verbose = 1;
            continue;
        }
        if (strcmp(f, "--no-quiet") == 0) {
            o->quiet = 0;
            continue;
        }
        if (strcmp(f, "--send-to") == 0) {
            o->send_to = 1;
            continue;
        }
        if (i + 1 >= argc)
            usage_error("%s needs a value", f);
        const char *v = argv[++i];
        if (strcmp(f, "--host") == 0) {
            o->host = v;
        } else if (strcmp(f, "--port") == 0) {
            o->port = (uint16_t)parse_u64(f, v, 1, 65535);
            have_port = 1;
        } else if (strcmp(f, "--proto") == 0) {
            if (strcmp(v, "v1") == 0)
                o->version = 1;
            else if (strcmp(v, "v2") == 0)
                o->version = 2;
            else
                usage_error("--proto is v1 or v2, not '%s'", v);
        } else if (strcmp(f, "--subs") == 0) {
            o->subs = (uint32_t)parse_u64(f, v, 1, MAX_SOCKETS - 1);
        } else if (strcmp(f, "--pairs") == 0) {
            o->pairs = (uint32_t)parse_u64(f, v, 1, MAX_SOCKETS / 2);
        } else if (strcmp(f, "--conns") == 0) {
            o->conns = (uint32_t)parse_u64(f, v, 1, MAX_SOCKETS);
        } else if (strcmp(f, "--burst") == 0) {
            o->burst = (uint32_t)parse_u64(f, v, 1, MAX_SOCKETS);
        } else if (strcmp(f, "--msgs") == 0) {
            o->msgs = parse_u64(f, v, 1, UINT64_C(1) << 40);
        } else if (strcmp(f, "--rounds") == 0) {
            o->rounds = parse_u64(f, v, 1, UINT64_C(1) << 40);
        } else if (strcmp(f, "--warmup") == 0) {
            o->warmup = parse_u64(f, v, 0, UINT64_C(1) << 40);
            o->warmup_given = 1;
        } else if (strcmp(f, "--size") == 0) {
            o->size = (size_t)parse_u64(f, v, BENCH_PAYLOAD_HEADER, MAX_SIZE);
        } else if (strcmp(f, "--window") == 0) {
            o->window = parse_u64(f, v, 1, UINT64_C(1) << 30);
        } else if (strcmp(f, "--inflight") == 0) {
            o->inflight = parse_u64(f, v, 0, UINT64_C(1) << 30);
        } else if (strcmp(f, "--duration") == 0) {
            o->duration = parse_secs(f, v);
        } else if (strcmp(f, "--timeout") == 0) {
            o->timeout = parse_secs(f, v);
        } else if (strcmp(f, "--idle") == 0) {
            o->idle = parse_secs(f, v);
        } else if (strcmp(f, "--hold") == 0) {
            o->hold = parse_secs(f, v);
        } else if (strcmp(f, "--server-pid") == 0) {
            o->server_pid = (pid_t)parse_u64(f, v, 1, 1u << 30);
        } else if (strcmp(f, "--label") == 0) {
            if (v[0] == '\0' || strpbrk(v, " \t\n=") != NULL)
                usage_error("--label must be one word without '='");
            o->label = v;
        } else {
            usage_error("unknown option %s", f);
        }
    }
    /* Loopback only: this tool must never send traffic to another host. */
    if (strcmp(o->host, "127.0.0.1") != 0 && strcmp(o->host, "localhost") != 0 &&
        strcmp(o->host, "::1") != 0)
        usage_error("refusing host '%s': only 127.0.0.1, localhost or ::1", o->host);
    if (!have_port)
        usage_error("--port is required");
    if (o->timeout <= 0)
        usage_error("--timeout must be above 0");
    if (o->send_to && o->workload != W_PAIRS && o->workload != W_PINGPONG)
        usage_error("--send-to applies to pairs and pingpong");
    if (!o->warmup_given)
        o->warmup = o->rounds / 10 < 1000 ? o->rounds / 10 : 1000;
    if (o->version == 1)
        o->quiet = 0; /* QUIET has no effect in v1 (stupidp2p(7)) */
}

/* ---- the engine --------------------------------------------------------------- */

enum client_state {
    C_NEW,          /* not connected yet                                 */
    C_CONNECTING,   /* connect in progress                               */
    C_READY,        /* connected; a setup step may be outstanding        */
    C_DEAD          /* closed; never reused                              */
};

/* One device: one connection to the server. */
struct client {
    uint32_t idx;
    char id[ID_CAP];
    uint8_t id_len;
    enum client_state st;
    struct bench_conn conn;
    /* setup: one request (or a pipelined few) and its replies */
    int in_step;
    int in_connect_step;   /* the step is connect + HELLO + REGISTER       */
    int step_failed;
    uint32_t awaiting;     /* replies still expected for the step          */
    int dirty;             /* queued in the flush list                     */
    /* as a sender */
    int publisher;
    int32_t target;        /* SEND_TO: the client addressed; else -1       */
    uint64_t nsubs;        /* receivers of each message                    */
    uint64_t to_send, sent, acked, delivered, t_done;
    /* as a receiver */
    int32_t source;        /* the client it hears from; -1: none           */
    struct bench_seq seq;
};

enum phase { PH_CONNECT, PH_SUBSCRIBE, PH_RUN, PH_HOLD, PH_PROBE };

enum until { UNTIL_CONNECTED, UNTIL_ANSWERED, UNTIL_TRAFFIC_DONE, UNTIL_TIME };

enum outcome { DONE, TIMED_OUT, STALLED, INTERRUPTED, LOOP_FAILED };

struct bench {
    const struct options *o;
    int epfd;
    struct sockaddr_storage addr;
    socklen_t addr_len;
    struct client *clients;
    uint32_t nclients;
    uint32_t *publishers;          /* indexes of the sending clients        */
    uint32_t npublishers;
    struct client **dirty;         /* clients with output queued this turn  */
    uint32_t ndirty;
    uint8_t *scratch;
    uint32_t max_payload;          /* largest frame payload we accept       */
    uint8_t *filler;               /* o->size bytes: a payload's template   */
    int acks;                      /* sends are acknowledged                */
    enum phase phase;
    uint64_t now, last_progress;
    int busy;                      /* a publisher stopped on its budget     */
    uint32_t next_connect, in_setup;
    uint32_t pending;              /* setup steps not yet answered          */
    uint64_t step_ok, step_fail;
    /* results */
    uint64_t expected, delivered, expected_acks, acks_got, ack_fail;
    uint64_t bad_payload, unexpected, disconnects, errors;
    uint64_t server_refused, local_refused;
    uint64_t t_run0, last_delivery;
    int send_stopped;
    char first_error[ERROR_CAP];
    /* pingpong */
    uint64_t ping_sent_at;
    uint64_t *rtts;
    size_t nrtts, rtt_cap;
};

static void vlog(const struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void vlog(const struct bench *b, const char *fmt, ...)
{
    if (!b->o->verbose)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs("p2pBench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
}

static void note_error(struct bench *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Counts an error; the first one is reported as first_error. */
static void note_error(struct bench *b, const char *fmt, ...)
{
    ++b->errors;
    if (b->first_error[0] != '\0')
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->first_error, sizeof b->first_error, fmt, ap);
    va_end(ap);
    vlog(b, "first error: %s", b->first_error);
}

static int acks_expected(const struct options *o)
{
    return o->version == 1 || !o->quiet;
}

/* ---- setup steps ------------------------------------------------------------ */

static void begin_step(struct bench *b, struct client *c, uint32_t replies, int connect_step)
{
    c->in_step = 1;
    c->in_connect_step = connect_step;
    c->step_failed = 0;
    c->awaiting = replies;
    ++b->pending;
    if (connect_step)
        ++b->in_setup;
}

/* Ends the client's outstanding step, once. */
static void end_step(struct bench *b, struct client *c, int ok)
{
    if (!c->in_step)
        return;
    c->in_step = 0;
    c->awaiting = 0;
    --b->pending;
    if (c->in_connect_step)
        --b->in_setup;
    c->in_connect_step = 0;
    if (ok)
        ++b->step_ok;
    else
        ++b->step_fail;
    b->last_progress = b->now;
}

static void kill_client(struct bench *b, struct client *c, int server_side, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Closes a client for good: an error of the run, counted as a refusal when
 * it happens during setup and as a disconnect afterwards. */
static void kill_client(struct bench *b, struct client *c, int server_side, const char *fmt, ...)
{
    if (c->st == C_DEAD)
        return;
    int setup = c->in_step && (b->phase == PH_CONNECT || b->phase == PH_SUBSCRIBE);
    end_step(b, c, 0);
    bench_conn_abort(&c->conn);
    c->st = C_DEAD;
    if (setup) {
        if (server_side)
            ++b->server_refused;
        else
            ++b->local_refused;
    } else {
        ++b->disconnects;
    }
    char why[160];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why, sizeof why, fmt, ap);
    va_end(ap);
    note_error(b, "%s: %s", c->id, why);
}

static void mark_dirty(struct bench *b, struct client *c)
{
    if (!c->dirty) {
        c->dirty = 1;
        b->dirty[b->ndirty++] = c;
    }
}

/* Largest amount a connection may have queued: a publisher stops at
 * OUT_CAP, so one more frame always fits. */
static size_t out_max(const struct bench *b)
{
    return OUT_CAP + (size_t)b->max_payload + 2 * P2P_FRAME_HEADER_SIZE;
}

/* Queues one request frame (payload built by a codec encoder). */
static int queue_frame(struct bench *b, struct client *c, const uint8_t *payload, size_t len)
{
    uint8_t *w = bench_buf_reserve(&c->conn.out, P2P_FRAME_HEADER_SIZE + len, out_max(b));
    if (w == NULL) {
        kill_client(b, c, 0, "cannot queue a request (output full or out of memory)");
        return -1;
    }
    p2p_frame_header_encode(w, (uint32_t)len);
    memcpy(w + P2P_FRAME_HEADER_SIZE, payload, len);
    bench_buf_commit(&c->conn.out, P2P_FRAME_HEADER_SIZE + len);
    mark_dirty(b, c);
    return 0;
}

static int queue_id_command(struct bench *b, struct client *c, uint8_t cmd, const struct client *who)
{
    uint8_t payload[P2P_ID_COMMAND_MAX];
    size_t n = p2p_encode_id_command(payload, cmd, (const uint8_t *)who->id, who->id_len);
    return queue_frame(b, c, payload, n);
}

static void finish_connect(struct bench *b, struct client *c)
{
    int e = bench_conn_connect_error(&c->conn);
    if (e != 0) {
        kill_client(b, c, e == ECONNREFUSED || e == ECONNRESET, "connect: %s", strerror(e));
        return;
    }
    c->st = C_READY;
    b->last_progress = b->now;
    /* HELLO and REGISTER go together: the server answers in order, and the
     * REGISTER is handled under the version the HELLO granted. */
    uint32_t replies = 1;
    if (b->o->version == 2) {
        uint8_t hello[P2P_HELLO_SIZE];
        size_t n = p2p_encode_hello(hello, P2P_VERSION_2, b->o->quiet ? P2P_HELLO_FLAG_QUIET : 0);
        if (queue_frame(b, c, hello, n) != 0)
            return;
        ++replies;
    }
    if (queue_id_command(b, c, P2P_CMD_REGISTER, c) != 0)
        return;
    c->awaiting = replies;
}

static void start_connect(struct bench *b, struct client *c)
{
    begin_step(b, c, 0, 1);
    c->st = C_CONNECTING;
    int err = 0;
    enum bench_io r = bench_conn_connect(&c->conn, b->epfd, (const struct sockaddr *)&b->addr,
                                         b->addr_len, c, &err);
    if (r == BENCH_IO_ERROR) {
        kill_client(b, c, err == ECONNREFUSED, "connect: %s", strerror(err));
        return;
    }
    if (r == BENCH_IO_OK)
        finish_connect(b, c);
}

/* ---- output --------------------------------------------------------------------- */

static void flush_client(struct bench *b, struct client *c)
{
    if (c->st != C_READY)
        return;
    int err = 0;
    enum bench_io r = bench_conn_flush(&c->conn, &err);
    if (r == BENCH_IO_ERROR) {
        kill_client(b, c, 1, "send: %s", strerror(err));
        return;
    }
    uint32_t want = EPOLLIN | (r == BENCH_IO_AGAIN ? (uint32_t)EPOLLOUT : 0u);
    int e = bench_conn_watch(&c->conn, b->epfd, want, c);
    if (e != 0) {
        kill_client(b, c, 0, "epoll_ctl: %s", strerror(e));
        return;
    }
    /* Without acks a publisher is done when its last byte left for the
     * kernel. */
    if (r == BENCH_IO_OK && !b->acks && c->publisher && c->to_send != 0 &&
        c->sent == c->to_send && c->t_done == 0)
        c->t_done = now_ns();
}

static void flush_dirty(struct bench *b)
{
    /* Flushing queues nothing new, so one pass empties the list. */
    for (uint32_t i = 0; i < b->ndirty; ++i) {
        struct client *c = b->dirty[i];
        c->dirty = 0;
        flush_client(b, c);
    }
    b->ndirty = 0;
}

/* Queues the client's next n messages (sequences c->sent on) in one
 * reservation of its output queue. 0, or -1 when the queue cannot take
 * them (the client is closed). */
static int publish(struct bench *b, struct client *c, uint64_t n)
{
    const struct client *t = c->target >= 0 ? &b->clients[c->target] : NULL;
    size_t head_len = t != NULL ? 2u + t->id_len : 1u;
    size_t size = b->o->size;
    size_t frame = P2P_FRAME_HEADER_SIZE + head_len + size;
    uint8_t *w = bench_buf_reserve(&c->conn.out, (size_t)n * frame, out_max(b));
    if (w == NULL) {
        kill_client(b, c, 0, "cannot queue a message (output full or out of memory)");
        return -1;
    }
    for (uint64_t i = 0; i < n; ++i, w += frame) {
        p2p_frame_header_encode(w, (uint32_t)(head_len + size));
        uint8_t *head = w + P2P_FRAME_HEADER_SIZE;
        if (t != NULL)
            p2p_encode_send_to_head(head, (const uint8_t *)t->id, t->id_len);
        else
            p2p_encode_send_head(head);
        uint8_t *payload = head + head_len;
        memcpy(payload, b->filler, size);
        bench_payload_stamp(payload, c->idx, c->sent++);
    }
    bench_buf_commit(&c->conn.out, (size_t)n * frame);
    mark_dirty(b, c);
    return 0;
}

static uint64_t min_u64(uint64_t a, uint64_t x) { return a < x ? a : x; }

/* Queues as many messages as the windows allow, at most PUMP_BUDGET: while
 * fewer than --window are unacknowledged, the publisher is fewer than
 * --inflight messages ahead of its receivers on average, and fewer than
 * OUT_CAP bytes wait in its queue (each checked before every message). */
static void pump(struct bench *b, struct client *c)
{
    const struct options *o = b->o;
    if (c->st != C_READY || c->sent >= c->to_send)
        return; /* a message counted as sent must be able to leave */
    uint64_t n = c->to_send - c->sent;
    if (b->acks) {
        uint64_t unacked = c->sent - c->acked;
        n = unacked >= o->window ? 0 : min_u64(n, o->window - unacked);
    }
    if (o->inflight != 0 && c->nsubs != 0) {
        uint64_t ahead = c->sent * c->nsubs - c->delivered, limit = o->inflight * c->nsubs;
        n = ahead >= limit ? 0 : min_u64(n, (limit - ahead + c->nsubs - 1) / c->nsubs);
    }
    size_t queued = bench_buf_len(&c->conn.out);
    size_t frame = P2P_FRAME_HEADER_SIZE + (c->target >= 0 ? 2u + b->clients[c->target].id_len : 1u) +
                   o->size;
    n = queued >= OUT_CAP ? 0 : min_u64(n, (OUT_CAP - queued + frame - 1) / frame);
    if (n > PUMP_BUDGET) {
        n = PUMP_BUDGET;
        b->busy = 1; /* more is allowed: come back without sleeping */
    }
    if (n != 0)
        publish(b, c, n);
}

/* ---- input -------------------------------------------------------------------- */

static void record_rtt(struct bench *b, uint64_t rtt)
{
    if (b->nrtts == b->rtt_cap) {
        size_t cap = b->rtt_cap != 0 ? b->rtt_cap * 2 : 4096;
        if (cap > b->o->rounds)
            cap = (size_t)b->o->rounds;
        if (cap <= b->nrtts)
            return; /* every measured round already has its sample */
        uint64_t *p = realloc(b->rtts, cap * sizeof *p);
        if (p == NULL) {
            note_error(b, "out of memory for latency samples");
            return;
        }
        b->rtts = p;
        b->rtt_cap = cap;
    }
    b->rtts[b->nrtts++] = rtt;
}

/* Pingpong: B echoes at once; A times the echo and sends the next ping. */
static void pingpong_step(struct bench *b, struct client *c)
{
    if (c->idx == 1) {
        if (c->sent < c->to_send && publish(b, c, 1) == 0)
            flush_client(b, c);
        return;
    }
    uint64_t t = now_ns();
    /* Warmup ends after --warmup rounds or, with --duration, after a tenth
     * of it (so a slow server still yields samples). */
    int warm = c->seq.received > b->o->warmup ||
               (b->o->duration > 0 && t - b->t_run0 > ns_of(b->o->duration / 10));
    if (warm)
        record_rtt(b, t - b->ping_sent_at);
    if (c->sent < c->to_send) {
        b->ping_sent_at = now_ns();
        if (publish(b, c, 1) == 0)
            flush_client(b, c);
    }
}

static void on_delivery(struct bench *b, struct client *c, const struct p2p_message *m)
{
    if (c->source < 0) {
        ++b->bad_payload;
        note_error(b, "%s: a delivery, but it listens to nobody", c->id);
        return;
    }
    struct client *src = &b->clients[c->source];
    /* A v1 session gets 03 + data; a v2 session a DELIVER naming the
     * sender. */
    if (b->o->version == 2) {
        if (m->kind != P2P_MSG_DELIVER || m->id_len != src->id_len ||
            memcmp(m->id, src->id, src->id_len) != 0) {
            ++b->bad_payload;
            note_error(b, "%s: delivery not a DELIVER from %s", c->id, src->id);
            return;
        }
    } else if (m->kind != P2P_MSG_V1_DELIVERY) {
        ++b->bad_payload;
        note_error(b, "%s: a v2 DELIVER in a v1 session", c->id);
        return;
    }
    uint32_t from;
    uint64_t seq;
    if (m->data_len != b->o->size || bench_payload_read(m->data, m->data_len, &from, &seq) != 0 ||
        from != src->idx || seq >= src->sent) {
        ++b->bad_payload;
        note_error(b, "%s: a delivery of %zu bytes that %s did not send", c->id, m->data_len,
                   src->id);
        return;
    }
    enum bench_seq_verdict v = bench_seq_accept(&c->seq, seq);
    if (v != BENCH_SEQ_IN_ORDER)
        note_error(b, "%s: got sequence %" PRIu64 " from %s (%s)", c->id, seq, src->id,
                   v == BENCH_SEQ_GAP ? "some skipped" : "a duplicate or late one");
    ++src->delivered;
    ++b->delivered;
    b->last_delivery = b->last_progress = b->now;
    if (b->o->workload == W_PINGPONG)
        pingpong_step(b, c);
}

static void on_reply(struct bench *b, struct client *c, const struct p2p_message *m)
{
    if (c->in_step && c->awaiting != 0) {
        int ok = m->status == P2P_STATUS_OK;
        if (m->cmd == P2P_CMD_HELLO)
            ok = ok && m->has_hello_grant && m->version == P2P_VERSION_2;
        if (!ok) {
            c->step_failed = 1;
            note_error(b, "%s: request 0x%02x refused (status %u)", c->id, m->cmd, m->status);
        }
        if (--c->awaiting == 0)
            end_step(b, c, !c->step_failed);
        return;
    }
    if (m->cmd == P2P_CMD_SEND || m->cmd == P2P_CMD_SEND_TO) {
        if (m->status != P2P_STATUS_OK) {
            ++b->ack_fail;
            note_error(b, "%s: send refused (status %u)", c->id, m->status);
        }
        if (!b->acks) {
            if (m->status == P2P_STATUS_OK) {
                ++b->unexpected;
                note_error(b, "%s: a send acknowledged in a QUIET session", c->id);
            }
            return;
        }
        ++c->acked;
        ++b->acks_got;
        b->last_progress = b->now;
        if (c->acked == c->to_send)
            c->t_done = b->now;
        return;
    }
    ++b->unexpected;
    note_error(b, "%s: unexpected reply 0x%02x %u", c->id, m->cmd | P2P_REPLY_BIT, m->status);
}

struct frame_ctx {
    struct bench *b;
    struct client *c;
};

static int on_frame(void *ctx, const uint8_t *payload, uint32_t len)
{
    struct frame_ctx *fc = ctx;
    struct bench *b = fc->b;
    struct client *c = fc->c;
    struct p2p_message m;
    if (p2p_message_parse(payload, len, &m) != P2P_PARSE_OK) {
        kill_client(b, c, 1, "malformed frame 0x%02x from the server", payload[0]);
        return -1;
    }
    switch (m.kind) {
    case P2P_MSG_REPLY:
        on_reply(b, c, &m);
        break;
    case P2P_MSG_V1_DELIVERY:
    case P2P_MSG_DELIVER:
        on_delivery(b, c, &m);
        break;
    case P2P_MSG_PRESENCE:
        break; /* v2: after each SUBSCRIBE, and as peers come and go */
    case P2P_MSG_BYE:
        kill_client(b, c, 1, "BYE reason %u: %.*s", m.reason, (int)m.data_len,
                    (const char *)m.data);
        return -1;
    case P2P_MSG_UNKNOWN:
    default: /* and any event this tool never asks for */
        ++b->unexpected;
        note_error(b, "%s: unexpected frame 0x%02x", c->id, m.cmd);
        break;
    }
    return c->st == C_DEAD ? -1 : 0;
}

static void handle_read(struct bench *b, struct client *c)
{
    for (int k = 0; k < READS_PER_EVENT && c->st == C_READY; ++k) {
        b->now = now_ns();
        struct frame_ctx fc = {b, c};
        size_t got = 0;
        int err = 0;
        enum bench_io r = bench_conn_read(&c->conn, b->scratch, READ_CHUNK, b->max_payload,
                                          on_frame, &fc, &got, &err);
        if (c->st != C_READY)
            return;
        switch (r) {
        case BENCH_IO_OK:
            if (got < READ_CHUNK)
                return; /* drained */
            break;
        case BENCH_IO_AGAIN:
            return;
        case BENCH_IO_EOF:
            kill_client(b, c, 1, "connection closed by the server");
            return;
        case BENCH_IO_ERROR:
            kill_client(b, c, 1, "recv: %s", strerror(err));
            return;
        case BENCH_IO_BAD_FRAME:
            kill_client(b, c, 1, "an empty or oversize frame from the server");
            return;
        }
    }
}

/* ---- the loop --------------------------------------------------------------------- */

/* --duration is over: what has been sent is the whole run; what is in
 * flight is still awaited and verified. */
static void stop_sending(struct bench *b)
{
    b->send_stopped = 1;
    if (b->o->workload == W_PINGPONG) {
        /* B still echoes every ping A has sent. */
        b->clients[0].to_send = b->clients[0].sent;
        b->clients[1].to_send = b->clients[0].sent;
    }
    b->expected = b->expected_acks = 0;
    for (uint32_t i = 0; i < b->npublishers; ++i) {
        struct client *c = &b->clients[b->publishers[i]];
        if (b->o->workload != W_PINGPONG)
            c->to_send = c->sent;
        b->expected += c->to_send * c->nsubs;
        if (b->acks)
            b->expected_acks += c->to_send;
        if (c->t_done == 0 && (b->acks ? c->acked == c->to_send : bench_buf_len(&c->conn.out) == 0))
            c->t_done = b->now;
    }
    vlog(b, "duration reached: %" PRIu64 " deliveries expected", b->expected);
}

static void tick(struct bench *b)
{
    b->busy = 0;
    if (b->phase == PH_CONNECT) {
        while (b->in_setup < b->o->burst && b->next_connect < b->nclients)
            start_connect(b, &b->clients[b->next_connect++]);
    } else if (b->phase == PH_RUN) {
        if (b->o->duration > 0 && !b->send_stopped && b->now - b->t_run0 >= ns_of(b->o->duration))
            stop_sending(b);
        if (b->o->workload != W_PINGPONG)
            for (uint32_t i = 0; i < b->npublishers; ++i)
                pump(b, &b->clients[b->publishers[i]]);
    }
}

static int poll_once(struct bench *b, int timeout_ms)
{
    struct epoll_event events[MAX_EVENTS];
    int n = epoll_wait(b->epfd, events, MAX_EVENTS, timeout_ms);
    if (n == -1) {
        if (errno == EINTR)
            return 0; /* the caller looks at g_stop and the clock */
        note_error(b, "epoll_wait: %s", strerror(errno));
        return -1;
    }
    b->now = now_ns();
    for (int i = 0; i < n; ++i) {
        struct client *c = events[i].data.ptr;
        uint32_t e = events[i].events;
        if (c->st == C_DEAD)
            continue; /* closed earlier in this batch */
        if (c->st == C_CONNECTING) {
            if (e & (EPOLLOUT | EPOLLERR | EPOLLHUP))
                finish_connect(b, c);
            continue;
        }
        if (e & (EPOLLIN | EPOLLHUP | EPOLLERR))
            handle_read(b, c);
        if (c->st == C_READY && (e & EPOLLOUT))
            flush_client(b, c);
    }
    return 0;
}

static int reached(const struct bench *b, enum until u)
{
    switch (u) {
    case UNTIL_CONNECTED:
        return b->next_connect == b->nclients && b->pending == 0;
    case UNTIL_ANSWERED:
        return b->pending == 0;
    case UNTIL_TRAFFIC_DONE:
        return b->delivered >= b->expected && b->acks_got >= b->expected_acks;
    case UNTIL_TIME:
        return 0;
    }
    return 0;
}

/* Runs the loop until `u` holds (DONE), the deadline passes (TIMED_OUT; for
 * UNTIL_TIME that is the goal), nothing progresses for --idle seconds
 * (STALLED), a signal comes (INTERRUPTED) or epoll fails. */
static enum outcome run_until(struct bench *b, enum until u, uint64_t deadline)
{
    uint64_t idle_ns = ns_of(b->o->idle);
    b->now = now_ns();
    b->last_progress = b->now;
    for (uint64_t iter = 0; iter < MAX_LOOP_ITERS; ++iter) {
        b->now = now_ns();
        if (reached(b, u))
            return DONE;
        if (g_stop)
            return INTERRUPTED;
        if (b->now >= deadline)
            return TIMED_OUT;
        if (u != UNTIL_TIME && idle_ns != 0 && b->now - b->last_progress > idle_ns)
            return STALLED;
        tick(b);
        flush_dirty(b);
        uint64_t left_ms = (deadline - b->now) / 1000000u + 1;
        int wait_ms = b->busy ? 0 : (int)(left_ms < SLICE_MS ? left_ms : SLICE_MS);
        if (poll_once(b, wait_ms) != 0)
            return LOOP_FAILED;
        flush_dirty(b);
    }
    return TIMED_OUT;
}

static const char *outcome_status(enum outcome r)
{
    switch (r) {
    case DONE: return "ok";
    case TIMED_OUT: return "timeout";
    case STALLED: return "stalled";
    case INTERRUPTED: return "interrupted";
    case LOOP_FAILED: return "failed";
    }
    return "failed";
}

/* ---- topology ------------------------------------------------------------------ */

static int add_client(struct bench *b, int publisher, int32_t source, uint64_t to_send)
{
    static int pid;
    if (pid == 0)
        pid = (int)getpid();
    struct client *c = &b->clients[b->nclients];
    memset(c, 0, sizeof *c);
    c->idx = b->nclients++;
    /* Ids unique to this process, so that runs sharing a server never take
     * over each other's devices. */
    int n = snprintf(c->id, sizeof c->id, "b%d-%u", pid, c->idx);
    if (n <= 0 || (size_t)n >= sizeof c->id)
        return -1;
    c->id_len = (uint8_t)n;
    c->conn.fd = -1;
    c->publisher = publisher;
    c->source = source;
    c->target = -1;
    c->to_send = to_send;
    return 0;
}

static int build_topology(struct bench *b)
{
    const struct options *o = b->o;
    uint32_t count = 0;
    switch (o->workload) {
    case W_FANOUT: count = 1 + o->subs; break;
    case W_PAIRS: count = 2 * o->pairs; break;
    case W_PINGPONG: count = 2; break;
    case W_IDLE:
    case W_CONNRATE: count = o->conns; break;
    }
    b->clients = calloc(count, sizeof *b->clients);
    b->publishers = calloc(count, sizeof *b->publishers);
    b->dirty = calloc(count, sizeof *b->dirty);
    if (b->clients == NULL || b->publishers == NULL || b->dirty == NULL)
        return -1;
    int r = 0;
    switch (o->workload) {
    case W_FANOUT:
        r |= add_client(b, 1, -1, o->msgs);
        for (uint32_t i = 0; i < o->subs; ++i)
            r |= add_client(b, 0, 0, 0);
        break;
    case W_PAIRS:
        for (uint32_t i = 0; i < o->pairs; ++i) {
            r |= add_client(b, 1, (int32_t)(2 * i + 1), o->msgs);
            r |= add_client(b, 1, (int32_t)(2 * i), o->msgs);
        }
        break;
    case W_PINGPONG:
        r |= add_client(b, 1, 1, o->rounds + o->warmup); /* A: pings, times */
        r |= add_client(b, 1, 0, o->rounds + o->warmup); /* B: echoes */
        break;
    case W_IDLE:
        /* Each connection also subscribes to a partner (2k <-> 2k+1), as
         * a deployed device would; the subscription is part of its cost. */
        for (uint32_t i = 0; i < o->conns; ++i) {
            int32_t partner = (int32_t)(i ^ 1u);
            if ((uint32_t)partner >= o->conns)
                partner = o->conns > 1 ? (int32_t)i - 1 : -1;
            r |= add_client(b, 0, partner, 0);
        }
        break;
    case W_CONNRATE:
        for (uint32_t i = 0; i < o->conns; ++i)
            r |= add_client(b, 0, -1, 0);
        break;
    }
    if (r != 0)
        return -1;
    for (uint32_t i = 0; i < b->nclients; ++i) {
        struct client *c = &b->clients[i];
        if (c->source >= 0 && o->workload != W_IDLE)
            ++b->clients[c->source].nsubs;
        if (c->publisher) {
            b->publishers[b->npublishers++] = i;
            if (o->send_to)
                c->target = c->source; /* pairs and pingpong: the partner */
        }
    }
    return 0;
}

static int resolve_target(struct bench *b)
{
    memset(&b->addr, 0, sizeof b->addr);
    if (strcmp(b->o->host, "::1") == 0) {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)&b->addr;
        a->sin6_family = AF_INET6;
        a->sin6_port = htons(b->o->port);
        a->sin6_addr = in6addr_loopback;
        b->addr_len = sizeof *a;
    } else {
        struct sockaddr_in *a = (struct sockaddr_in *)&b->addr;
        a->sin_family = AF_INET;
        a->sin_port = htons(b->o->port);
        a->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        b->addr_len = sizeof *a;
    }
    return 0;
}

/* Raises the soft open-file limit to what `need` descriptors take, if the
 * hard limit allows; returns the soft limit in force. */
static rlim_t raise_nofile(rlim_t need)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur >= need)
        return rl.rlim_cur;
    rl.rlim_cur = rl.rlim_max < need ? rl.rlim_max : need;
    if (setrlimit(RLIMIT_NOFILE, &rl) != 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    return rl.rlim_cur;
}

/* ---- the result line ------------------------------------------------------------- */

struct line {
    char text[8192];
    size_t len;
};

static void kv(struct line *l, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static void kv(struct line *l, const char *key, const char *fmt, ...)
{
    if (l->len >= sizeof l->text - 1)
        return;
    int n = snprintf(l->text + l->len, sizeof l->text - l->len, "%s%s=", l->len ? " " : "", key);
    if (n < 0)
        return;
    l->len = l->len + (size_t)n < sizeof l->text ? l->len + (size_t)n : sizeof l->text - 1;
    va_list ap;
    va_start(ap, fmt);
    n = vsnprintf(l->text + l->len, sizeof l->text - l->len, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    l->len = l->len + (size_t)n < sizeof l->text ? l->len + (size_t)n : sizeof l->text - 1;
}

static void kv_u(struct line *l, const char *key, uint64_t v) { kv(l, key, "%" PRIu64, v); }
static void kv_f(struct line *l, const char *key, double v, int prec) { kv(l, key, "%.*f", prec, v); }

/* first_error without spaces or '=', so the line stays key=value pairs. */
static void kv_error(struct line *l, const char *error)
{
    char e[ERROR_CAP];
    size_t i = 0;
    for (; error[i] != '\0' && i < sizeof e - 1; ++i) {
        char ch = error[i];
        e[i] = (ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '=') ? '_' : ch;
    }
    e[i] = '\0';
    kv(l, "first_error", "%s", e);
}

static int cmp_u64(const void *pa, const void *pb)
{
    uint64_t a = *(const uint64_t *)pa, bb = *(const uint64_t *)pb;
    return a < bb ? -1 : a > bb;
}

/* Nearest-rank percentile of sorted samples; q in thousandths. */
static uint64_t percentile(const uint64_t *v, size_t n, uint64_t q_milli)
{
    if (n == 0)
        return 0;
    uint64_t rank = (q_milli * n + 999) / 1000; /* ceil(q * n) */
    return v[rank == 0 ? 0 : (size_t)rank - 1];
}

static double us(uint64_t ns) { return (double)ns / 1000.0; }

/* Process readings around a stretch of the run, for CPU shares. */
struct window {
    uint64_t t0, t1;
    double gen0, gen1, busy0, busy1;
    struct bench_proc srv0, srv1;
    int srv_ok;
};

static void window_open(struct window *w, pid_t pid)
{
    memset(w, 0, sizeof *w);
    w->srv_ok = pid > 0 && bench_proc_read(pid, &w->srv0) == 0;
    w->gen0 = bench_self_cpu_s();
    w->busy0 = bench_machine_busy_s();
    w->t0 = now_ns();
}

static void window_close(struct window *w, pid_t pid)
{
    w->t1 = now_ns();
    w->gen1 = bench_self_cpu_s();
    w->busy1 = bench_machine_busy_s();
    w->srv_ok = w->srv_ok && bench_proc_read(pid, &w->srv1) == 0;
}

/* CPU in % of one core (this machine has 2: 200 % is all of it), the
 * server's wake-ups, and what other processes used meanwhile (noise). */
static void report_cpu(struct line *l, const struct window *w, uint64_t deliveries)
{
    double wall = secs(w->t1 - w->t0);
    if (wall < 0.1)
        return; /* shares of very short stretches are noise */
    double gen = 100.0 * (w->gen1 - w->gen0) / wall;
    double srv = 0;
    kv_f(l, "gen_cpu_pct", gen, 0);
    if (w->srv_ok) {
        srv = 100.0 * (w->srv1.cpu_s - w->srv0.cpu_s) / wall;
        kv_f(l, "srv_cpu_pct", srv, 0);
        kv(l, "srv_rss_kb", "%ld", w->srv1.rss_kb);
        kv(l, "srv_hwm_kb", "%ld", w->srv1.hwm_kb);
        uint64_t sleeps = w->srv1.sleeps - w->srv0.sleeps;
        kv_u(l, "srv_sleeps", sleeps);
        kv_u(l, "srv_preempted", w->srv1.preempted - w->srv0.preempted);
        if (w->srv0.have_io && w->srv1.have_io)
            kv_u(l, "srv_read_calls", w->srv1.read_calls - w->srv0.read_calls);
        if (deliveries != 0 && sleeps != 0)
            kv_f(l, "deliveries_per_srv_sleep", (double)deliveries / (double)sleeps, 1);
    }
    if (w->busy0 >= 0 && w->busy1 >= 0) {
        double machine = 100.0 * (w->busy1 - w->busy0) / wall;
        kv_f(l, "machine_cpu_pct", machine, 0);
        if (w->srv_ok) {
            double other = machine - gen - srv;
            kv_f(l, "other_cpu_pct", other > 0 ? other : 0, 0);
        }
    }
}

/* ---- the run ---------------------------------------------------------------------- */

static int engine_init(struct bench *b, const struct options *o)
{
    memset(b, 0, sizeof *b);
    b->epfd = -1;
    b->o = o;
    b->acks = acks_expected(o);
    /* Frames from the server: a delivery is the data plus at most 2 + 255
     * id bytes; replies and events are smaller. Anything longer is a bug. */
    b->max_payload = (uint32_t)o->size + P2P_SERVER_FRAME_SLACK + 2u;
    b->scratch = malloc(READ_CHUNK + (size_t)b->max_payload + P2P_FRAME_HEADER_SIZE);
    b->filler = malloc(o->size);
    if (b->scratch == NULL || b->filler == NULL)
        return -1;
    for (size_t i = 0; i < o->size; ++i)
        b->filler[i] = (uint8_t)('a' + i % 26);
    b->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (b->epfd == -1)
        return -1;
    resolve_target(b);
    return build_topology(b);
}

static void engine_close(struct bench *b)
{
    for (uint32_t i = 0; i < b->nclients; ++i)
        bench_conn_abort(&b->clients[i].conn);
    if (b->epfd != -1)
        close(b->epfd);
    free(b->clients);
    free(b->publishers);
    free(b->dirty);
    free(b->scratch);
    free(b->filler);
    free(b->rtts);
}

static void report_head(struct line *l, const struct options *o)
{
    kv(l, "server", "%s", o->label);
    kv(l, "bench", "p2pBench");
    kv(l, "proto", "v%d", o->version);
    kv(l, "quiet", "%d", o->quiet);
    kv(l, "workload", "%s", workload_names[o->workload]);
}

/* Connect (+ HELLO) + REGISTER for every client, o->burst at a time. */
static enum outcome setup_connections(struct bench *b, uint64_t deadline)
{
    b->phase = PH_CONNECT;
    b->step_ok = b->step_fail = 0;
    return run_until(b, UNTIL_CONNECTED, deadline);
}

/* SUBSCRIBE for every receiver that hears from a source through it. */
static enum outcome setup_subscriptions(struct bench *b, uint64_t deadline)
{
    b->phase = PH_SUBSCRIBE;
    b->step_ok = b->step_fail = 0;
    for (uint32_t i = 0; i < b->nclients; ++i) {
        struct client *c = &b->clients[i];
        if (c->source < 0 || c->st != C_READY || b->clients[c->source].target == (int32_t)i)
            continue; /* SEND_TO reaches its target without a subscription */
        begin_step(b, c, 1, 0);
        queue_id_command(b, c, P2P_CMD_SUBSCRIBE, &b->clients[c->source]);
    }
    return run_until(b, UNTIL_ANSWERED, deadline);
}

static int finish(struct line *l, struct bench *b, const char *status, int ok)
{
    if (b->first_error[0] != '\0')
        kv_error(l, b->first_error);
    /* status goes right after the workload's parameters: patch it in. */
    char *slot = strstr(l->text, " status=?");
    if (slot != NULL) {
        char tail[sizeof l->text];
        snprintf(tail, sizeof tail, "%s", slot + strlen(" status=?"));
        snprintf(slot, sizeof l->text - (size_t)(slot - l->text), " status=%s%s", status, tail);
    }
    printf("%s\n", l->text);
    fflush(stdout);
    return ok ? 0 : 1;
}

static int run_connections(struct bench *b)
{
    const struct options *o = b->o;
    struct line l = {.len = 0};
    report_head(&l, o);
    kv_u(&l, "conns", o->conns);
    kv_u(&l, "burst", o->burst);
    kv(&l, "status", "?");

    double load1 = bench_loadavg1();
    struct bench_proc srv0, srv1;
    int srv_ok = o->server_pid > 0 && bench_proc_read(o->server_pid, &srv0) == 0;
    struct bench_kmem k0, k1;
    int kmem_ok = o->workload == W_IDLE && bench_kmem_read(&k0) == 0;
    struct window w;
    window_open(&w, o->server_pid);
    uint64_t deadline = now_ns() + ns_of(o->timeout);

    uint64_t t0 = now_ns();
    enum outcome r = setup_connections(b, deadline);
    uint64_t t1 = now_ns();
    uint64_t conns_ok = b->step_ok;
    int setup_ok = r == DONE && b->step_fail == 0 && conns_ok == o->conns;
    kv_u(&l, "conns_ok", conns_ok);
    kv_f(&l, "conns_per_s", (double)conns_ok / (secs(t1 - t0) > 1e-9 ? secs(t1 - t0) : 1e-9), 0);
    kv_f(&l, "connect_s", secs(t1 - t0), 3);

    if (o->workload == W_IDLE) {
        uint64_t subs_ok = 0, alive = 0;
        if (r == DONE) {
            r = setup_subscriptions(b, deadline);
            subs_ok = b->step_ok;
            if (b->step_fail != 0)
                setup_ok = 0;
        }
        uint64_t t2 = now_ns();
        srv_ok = srv_ok && bench_proc_read(o->server_pid, &srv1) == 0;
        kmem_ok = kmem_ok && bench_kmem_read(&k1) == 0;
        /* Hold, then ask every connection once whether it is still there. */
        if (r == DONE) {
            b->phase = PH_HOLD;
            uint64_t hold_end = now_ns() + ns_of(o->hold);
            enum outcome h = run_until(b, UNTIL_TIME, hold_end < deadline ? hold_end : deadline);
            if (h == INTERRUPTED || h == LOOP_FAILED)
                r = h;
        }
        if (r == DONE) {
            b->phase = PH_PROBE;
            b->step_ok = b->step_fail = 0;
            for (uint32_t i = 0; i < b->nclients; ++i) {
                struct client *c = &b->clients[i];
                if (c->st != C_READY)
                    continue;
                begin_step(b, c, 1, 0);
                uint8_t hb[1];
                queue_frame(b, c, hb, p2p_encode_id_command(hb, P2P_CMD_HEARTBEAT, NULL, 0));
            }
            r = run_until(b, UNTIL_ANSWERED, deadline);
            alive = b->step_ok;
        }
        kv_u(&l, "subs_ok", subs_ok);
        kv_f(&l, "subscribe_s", secs(t2 - t1), 3);
        kv_u(&l, "alive", alive);
        if (alive < conns_ok)
            setup_ok = 0;
        if (srv_ok) {
            kv(&l, "rss_before_kb", "%ld", srv0.rss_kb);
            kv(&l, "rss_after_kb", "%ld", srv1.rss_kb);
            double per = conns_ok != 0 ? (double)(srv1.rss_kb - srv0.rss_kb) * 1024.0 / (double)conns_ok : 0;
            kv_f(&l, "rss_per_conn_bytes", per, 0);
            kv(&l, "srv_hwm_kb", "%ld", srv1.hwm_kb);
        }
        if (kmem_ok) {
            /* Both ends of each connection are sockets of this kernel: the
             * figures are per socket, not per connection. */
            long sockets = k1.tcp_inuse - k0.tcp_inuse;
            kv(&l, "tcp_sockets_added", "%ld", sockets);
            if (sockets > 0) {
                double slab = ((double)k1.slab_bytes - (double)k0.slab_bytes) / (double)sockets;
                kv_f(&l, "kernel_slab_per_socket_bytes", slab, 0);
                kv(&l, "kernel_slab_source", "%s", k1.slab_from_slabinfo ? "slabinfo" : "meminfo");
                kv_f(&l, "tcp_buffer_per_socket_bytes",
                     (double)(k1.tcp_mem_pages - k0.tcp_mem_pages) * (double)sysconf(_SC_PAGESIZE) /
                         (double)sockets, 0);
            }
        }
    }
    window_close(&w, o->server_pid);
    kv_u(&l, "server_refused", b->server_refused);
    kv_u(&l, "local_refused", b->local_refused);
    kv_u(&l, "disconnects", b->disconnects);
    kv_u(&l, "errors", b->errors);
    report_cpu(&l, &w, 0);
    kv_f(&l, "load1", load1, 2);
    const char *status = outcome_status(r);
    if (r == DONE && !setup_ok)
        status = "refused";
    int ok = r == DONE && setup_ok && b->errors == 0;
    if (r == DONE && !ok && setup_ok)
        status = "failed";
    return finish(&l, b, status, ok);
}

static int run_traffic(struct bench *b)
{
    const struct options *o = b->o;
    struct line l = {.len = 0};
    report_head(&l, o);
    switch (o->workload) {
    case W_FANOUT:
        kv_u(&l, "subs", o->subs);
        kv_u(&l, "msgs", o->msgs);
        break;
    case W_PAIRS:
        kv_u(&l, "pairs", o->pairs);
        kv_u(&l, "msgs", o->msgs);
        break;
    default:
        kv_u(&l, "rounds", o->rounds);
        kv_u(&l, "warmup", o->warmup);
        break;
    }
    kv_u(&l, "size", o->size);
    kv(&l, "send_to", "%d", o->send_to);
    if (o->duration > 0)
        kv_f(&l, "duration", o->duration, 1);
    if (o->workload != W_PINGPONG) {
        if (b->acks)
            kv_u(&l, "window", o->window);
        kv_u(&l, "inflight", o->inflight);
    }
    kv(&l, "status", "?");

    double load1 = bench_loadavg1();
    uint64_t deadline = now_ns() + ns_of(o->timeout);
    enum outcome r = setup_connections(b, deadline);
    int setup_ok = b->step_fail == 0;
    if (r == DONE) {
        r = setup_subscriptions(b, deadline);
        setup_ok = setup_ok && b->step_fail == 0;
    }

    b->phase = PH_RUN;
    for (uint32_t i = 0; i < b->npublishers; ++i) {
        struct client *c = &b->clients[b->publishers[i]];
        b->expected += c->to_send * c->nsubs;
        if (b->acks)
            b->expected_acks += c->to_send;
    }
    struct window w;
    window_open(&w, o->server_pid);
    b->t_run0 = now_ns();
    if (r == DONE && setup_ok) {
        if (o->workload == W_PINGPONG) {
            struct client *a = &b->clients[0];
            b->ping_sent_at = now_ns();
            if (publish(b, a, 1) == 0)
                flush_client(b, a);
        }
        r = run_until(b, UNTIL_TRAFFIC_DONE, deadline);
    }
    window_close(&w, o->server_pid);
    uint64_t t_end = w.t1;

    uint64_t sent_deliveries = 0, sent = 0, lost = 0, disorder = 0, t_pub_done = b->t_run0;
    for (uint32_t i = 0; i < b->npublishers; ++i) {
        const struct client *c = &b->clients[b->publishers[i]];
        sent_deliveries += c->sent * c->nsubs;
        sent += c->sent;
        uint64_t done = c->t_done != 0 ? c->t_done : t_end; /* ended early: the end */
        if (done > t_pub_done)
            t_pub_done = done;
    }
    for (uint32_t i = 0; i < b->nclients; ++i) {
        const struct client *c = &b->clients[i];
        if (c->source < 0)
            continue;
        lost += bench_seq_missing(&c->seq, b->clients[c->source].sent);
        disorder += bench_seq_disorder(&c->seq);
    }
    double wall = secs(t_end - b->t_run0);
    uint64_t span_end = b->last_delivery > b->t_run0 ? b->last_delivery : t_end;
    double span = secs(span_end - b->t_run0);
    if (span < 1e-9)
        span = 1e-9;

    kv_f(&l, "wall_s", wall, 3);
    kv_u(&l, "deliveries", b->delivered);
    kv_u(&l, "expected", b->expected);
    if (o->workload == W_PINGPONG) {
        qsort(b->rtts, b->nrtts, sizeof *b->rtts, cmp_u64);
        uint64_t sum = 0;
        for (size_t i = 0; i < b->nrtts; ++i)
            sum += b->rtts[i];
        kv_u(&l, "samples", b->nrtts);
        kv_f(&l, "p50_us", us(percentile(b->rtts, b->nrtts, 500)), 1);
        kv_f(&l, "p90_us", us(percentile(b->rtts, b->nrtts, 900)), 1);
        kv_f(&l, "p99_us", us(percentile(b->rtts, b->nrtts, 990)), 1);
        kv_f(&l, "p999_us", us(percentile(b->rtts, b->nrtts, 999)), 1);
        kv_f(&l, "max_us", us(b->nrtts ? b->rtts[b->nrtts - 1] : 0), 1);
        kv_f(&l, "mean_us", us(b->nrtts ? sum / b->nrtts : 0), 1);
        kv_f(&l, "rounds_per_s", (double)b->clients[0].seq.received / span, 0);
    } else {
        double pub_span = secs(t_pub_done - b->t_run0);
        kv_f(&l, "deliveries_per_s", (double)b->delivered / span, 0);
        kv_f(&l, "pub_msgs_per_s", (double)sent / (pub_span > 1e-9 ? pub_span : 1e-9), 0);
        kv_f(&l, "MBps", (double)b->delivered * (double)o->size / span / 1e6, 1);
    }
    if (b->acks) {
        kv_u(&l, "acks", b->acks_got);
        kv_u(&l, "ack_fail", b->ack_fail);
    }
    kv_u(&l, "lost", lost);
    kv_u(&l, "unsent", b->expected > sent_deliveries ? b->expected - sent_deliveries : 0);
    kv_u(&l, "reordered", disorder);
    kv_u(&l, "bad_payload", b->bad_payload);
    kv_u(&l, "unexpected", b->unexpected);
    kv_u(&l, "disconnects", b->disconnects);
    kv_u(&l, "errors", b->errors);
    report_cpu(&l, &w, b->delivered);
    kv_f(&l, "load1", load1, 2);

    const char *status = outcome_status(r);
    if (r == DONE && !setup_ok)
        status = "setup_failed";
    int ok = r == DONE && setup_ok && lost == 0 && disorder == 0 && b->errors == 0 &&
             b->bad_payload == 0 && b->delivered == b->expected;
    if (r == DONE && setup_ok && !ok)
        status = "failed";
    return finish(&l, b, status, ok);
}

int main(int argc, char **argv)
{
    struct options o;
    parse_options(argc, argv, &o);

    /* SIGPIPE ignored besides MSG_NOSIGNAL; SIGINT/SIGTERM end the run
     * early with the results so far (status=interrupted). */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_IGN;
    int sig_failed = sigaction(SIGPIPE, &sa, NULL) != 0;
    sa.sa_handler = on_signal;
    sig_failed |= sigaction(SIGINT, &sa, NULL) != 0;
    sig_failed |= sigaction(SIGTERM, &sa, NULL) != 0;
    if (sig_failed) {
        fprintf(stderr, "p2pBench: sigaction: %s\n", strerror(errno));
        return 2;
    }

    struct bench b;
    if (engine_init(&b, &o) != 0) {
        fprintf(stderr, "p2pBench: cannot set up: %s\n", strerror(errno));
        engine_close(&b);
        return 2;
    }
    /* One descriptor per connection, plus epoll and stdio. */
    rlim_t need = (rlim_t)b.nclients + 16;
    rlim_t have = raise_nofile(need);
    if (have < need) {
        fprintf(stderr, "p2pBench: %u connections need %llu descriptors; the limit is %llu\n",
                b.nclients, (unsigned long long)need, (unsigned long long)have);
        engine_close(&b);
        return 2;
    }
    vlog(&b, "%s, %u clients, %s port %u", workload_names[o.workload], b.nclients, o.host,
         (unsigned)o.port);
    int rc = (o.workload == W_IDLE || o.workload == W_CONNRATE) ? run_connections(&b)
                                                                 : run_traffic(&b);
    engine_close(&b);
    return rc;
}
