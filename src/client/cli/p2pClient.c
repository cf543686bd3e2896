/*
 * p2pClient - the stupidP2P terminal client (see p2pClient(1)).
 *
 *   p2pClient -s HOST -p PORT -m MY_ID -o OTHER_ID [-w SECONDS]
 *             [--token-file FILE] [--drop] [--direct]
 *
 * Registers MY_ID, waits until OTHER_ID is online, subscribes to it, then
 * sends every line of standard input and prints every message received as
 * "recv data: ..." on standard output. `quit` or the end of the input ends
 * it cleanly. Progress and errors go to standard error, so that standard
 * output carries nothing but received data and the client works in pipes.
 *
 * Against a v2 server it subscribes first and wakes on the PRESENCE event
 * that tells it OTHER_ID came online; against an original (v1) server it
 * asks once a second, as the original client did.
 *
 * Received bytes are printed as text only where they are printable:
 * control bytes, bytes that are not UTF-8 and the Unicode controls that
 * can rearrange or break a terminal line are written as \xNN (and a
 * backslash as \\), so that a peer can neither drive the terminal nor
 * forge a line. A lost connection is one line on standard error, with its
 * cause, however many attempts the reconnection takes.
 *
 * With --token-file, MY_ID is claimed with AUTH (stupidp2p(7)): the token
 * is the file's first line; it is handed to the library, which keeps only
 * keys derived from it, and wiped here at once. It is never printed.
 *
 * With --drop, the server is asked to drop messages rather than disconnect
 * this client when it falls behind (stupidp2p(7), SLOW CONSUMERS): each GAP
 * event it sends once the client has caught up is one line on standard
 * output, "missed N messages (B bytes) from ID", among the received data,
 * where the missing messages would have been. A server that does not know
 * the policy is said so on standard error, at every connection.
 *
 * With --direct, lines go to OTHER_ID alone (SEND_TO) instead of to every
 * subscriber, and the library tries for a direct path to it (stupidp2p(3),
 * Direct paths); each change of path is a line on standard error.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "stupidp2p.h"

#define EXIT_USAGE 2
#define EXIT_CONNECT 3
#define EXIT_WAIT 4
#define TOKEN_MAX 256 /* stupidp2p(7), Tokens */

static const char *progname = "p2pClient";

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cond;
    int other_online;      /* PRESENCE said so */
    const char *other_id;
} g = {PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, 0, NULL};

/* The connection episode, seen from on_state (which runs on the library's
 * thread only, one call at a time). */
static struct {
    int lost;              /* a loss was reported; waiting for CONNECTED */
    unsigned attempts;     /* failed reconnect attempts in this episode  */
    int drop;              /* --drop: check the policy at every connection */
} episode;

static void usage(FILE *f)
{
    fprintf(f,
            "usage: %s -s HOST -p PORT -m MY_ID -o OTHER_ID [-w SECONDS] [--token-file FILE]\n"
            "                 [--drop] [--direct]\n"
            "       %s --help\n"
            "\n"
            "Connects to a stupidP2P server, registers MY_ID, waits for OTHER_ID to be\n"
            "online and subscribes to it. Every line read from standard input is then\n"
            "sent; every message received is printed as \"recv data: ...\" on standard\n"
            "output. \"quit\" or the end of the input exits.\n"
            "\n"
            "  -s, --server HOST     server host name or address (IPv4 or IPv6)\n"
            "  -p, --port PORT       server port (1-65535)\n"
            "  -m, --my-id ID        this device's id (1-255 bytes)\n"
            "  -o, --other-id ID     the device to talk to (1-255 bytes, not MY_ID)\n"
            "  -w, --wait SECONDS    how long to wait for OTHER_ID (default 30)\n"
            "      --token-file FILE claim MY_ID with AUTH, with the token on FILE's first\n"
            "                        line (keep the file private: chmod 600)\n"
            "      --drop            when this client falls behind, let the server drop\n"
            "                        messages rather than disconnect it; each gap is a line\n"
            "                        \"missed N messages (B bytes) from ID\" on standard output\n"
            "      --direct          send lines to OTHER_ID alone, on a direct connection\n"
            "                        through the NATs when one can be made\n"
            "  -h, --help            print this help and exit\n"
            "\n"
            "Exit status: 0 done, 1 the server refused a command, 2 usage error,\n"
            "3 cannot connect, 4 OTHER_ID did not come online in time.\n",
            progname, progname);
}

/* The length of the well-formed UTF-8 sequence of 2 to 4 bytes at p (n
 * bytes available) that encodes a printable character, or 0. Refused: bad
 * or overlong sequences, surrogates, code points above U+10FFFF, the C1
 * controls (U+0080..U+009F, which some terminals obey), and the format
 * characters that reorder or split a line (bidirectional marks, embeddings,
 * overrides and isolates; line and paragraph separators). */
static size_t utf8_printable(const uint8_t *p, size_t n)
{
    size_t len;
    uint32_t cp;
    if (p[0] >= 0xC2 && p[0] <= 0xDF) {
        len = 2;
        cp = p[0] & 0x1Fu;
    } else if ((p[0] & 0xF0) == 0xE0) {
        len = 3;
        cp = p[0] & 0x0Fu;
    } else if (p[0] >= 0xF0 && p[0] <= 0xF4) {
        len = 4;
        cp = p[0] & 0x07u;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xC0) != 0x80)
            return 0;
        cp = cp << 6 | (p[i] & 0x3Fu);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) ||
        (cp >= 0xD800 && cp <= 0xDFFF) || cp <= 0x9F || cp == 0x061C || cp == 0x200E || cp == 0x200F ||
        (cp >= 0x2028 && cp <= 0x202E) || (cp >= 0x2066 && cp <= 0x2069))
        return 0;
    return len;
}

/* Writes data[0..len) to f as a terminal may show it (see the top of the
 * file): printable ASCII and printable UTF-8 as they are, a backslash
 * doubled, every other byte as \xNN. */
static void put_escaped(FILE *f, const uint8_t *data, size_t len)
{
    for (size_t i = 0; i < len;) {
        uint8_t c = data[i];
        size_t u;
        if (c == '\\') {
            fputs("\\\\", f);
            i++;
        } else if (c >= 0x20 && c < 0x7F) {
            putc(c, f);
            i++;
        } else if (c >= 0x80 && (u = utf8_printable(data + i, len - i)) > 0) {
            fwrite(data + i, 1, u, f);
            i += u;
        } else {
            fprintf(f, "\\x%02x", c);
            i++;
        }
    }
}

static void on_message(int32_t handle, const uint8_t *sender, size_t sender_len, const uint8_t *data,
                       size_t len, void *user)
{
    (void)handle;
    (void)sender;
    (void)sender_len;
    (void)user;
    flockfile(stdout);
    fputs("recv data: ", stdout);
    put_escaped(stdout, data, len);
    putc('\n', stdout);
    fflush(stdout);
    funlockfile(stdout);
}

/* One line per GAP event, on standard output where the missing messages
 * would have been (the library calls on_gap in stream order with
 * on_message). */
static void on_gap(int32_t handle, const uint8_t *publisher, size_t publisher_len, uint32_t frames, uint64_t bytes,
                   void *user)
{
    (void)handle;
    (void)user;
    flockfile(stdout);
    fprintf(stdout, "missed %lu message%s (%llu bytes) from ", (unsigned long)frames, frames == 1 ? "" : "s",
            (unsigned long long)bytes);
    if (publisher != NULL)
        put_escaped(stdout, publisher, publisher_len);
    else
        fputs("other devices", stdout);
    putc('\n', stdout);
    fflush(stdout);
    funlockfile(stdout);
}

/* With --drop: says on standard error when the connection does not have
 * the DROP policy (the server does not know it). Any thread, callbacks
 * included. */
static void check_drop(int32_t handle)
{
    stupid_p2p_stats_t st;
    if (stupid_p2p_get_stats(handle, &st) == STUPID_P2P_NO_ERROR && !st.drop_in_force)
        fprintf(stderr, "%s: this server does not support --drop: if this client falls behind, it is disconnected\n",
                progname);
}

static void on_presence(int32_t handle, const uint8_t *id, size_t id_len, int online, void *user)
{
    (void)handle;
    (void)user;
    pthread_mutex_lock(&g.mu);
    if (id_len == strlen(g.other_id) && memcmp(id, g.other_id, id_len) == 0) {
        g.other_online = online;
        pthread_cond_broadcast(&g.cond);
    }
    pthread_mutex_unlock(&g.mu);
    flockfile(stderr);
    fputs("device:", stderr);
    put_escaped(stderr, id, id_len);
    fprintf(stderr, " is %s\n", online ? "online" : "offline");
    funlockfile(stderr);
}

static const char *cause_text(stupid_p2p_cause_t c)
{
    switch (c) {
    case STUPID_P2P_CAUSE_TAKEN_OVER: return "another connection registered this id";
    case STUPID_P2P_CAUSE_IDLE_TIMEOUT: return "idle timeout";
    case STUPID_P2P_CAUSE_SLOW_CONSUMER: return "too slow reading";
    case STUPID_P2P_CAUSE_SERVER_SHUTDOWN: return "server shutting down";
    case STUPID_P2P_CAUSE_PROTOCOL_ERROR: return "protocol error";
    case STUPID_P2P_CAUSE_NOT_AUTHORIZED: return "not authorized";
    case STUPID_P2P_CAUSE_LIMIT: return "server limit reached";
    case STUPID_P2P_CAUSE_EOF: return "closed by the server";
    case STUPID_P2P_CAUSE_IO_ERROR: return "socket error";
    case STUPID_P2P_CAUSE_HEARTBEAT_LOST: return "server not answering";
    case STUPID_P2P_CAUSE_BAD_FRAME: return "bad data from the server";
    case STUPID_P2P_CAUSE_CONNECT_FAILED: return "cannot connect";
    case STUPID_P2P_CAUSE_ID_LOST: return "another device holds this id";
    default: return "unknown cause";
    }
}

/* With --direct: a line on standard error at every change of path. */
static void on_path(int32_t handle, const uint8_t *peer, size_t len, stupid_p2p_path_t path, void *user)
{
    (void)handle, (void)user;
    flockfile(stderr);
    fputs("path to ", stderr);
    put_escaped(stderr, peer, len);
    fputs(path == STUPID_P2P_PATH_DIRECT ? ": direct\n" : ": relay\n", stderr);
    funlockfile(stderr);
}

/* One line when a connection is lost, with its cause, and one when it is
 * back: the failed attempts in between are counted, not printed. */
static void on_state(int32_t handle, stupid_p2p_state_t state, stupid_p2p_cause_t cause, void *user)
{
    (void)user;
    if (state == STUPID_P2P_STATE_DISCONNECTED) {
        if (episode.lost) {
            episode.attempts++;
            return;
        }
        episode.lost = 1;
        episode.attempts = 0;
        fprintf(stderr, "%s: connection lost (%s), reconnecting\n", progname, cause_text(cause));
    } else if (state == STUPID_P2P_STATE_CONNECTED) {
        if (episode.lost) {
            episode.lost = 0;
            if (episode.attempts > 0)
                fprintf(stderr, "%s: reconnected after %u failed attempt(s)\n", progname, episode.attempts);
            else
                fprintf(stderr, "%s: reconnected\n", progname);
        }
        if (cause == STUPID_P2P_CAUSE_ID_LOST)
            fprintf(stderr, "%s: another device keeps taking this id: it is no longer registered\n",
                    progname);
        else if (cause == STUPID_P2P_CAUSE_NOT_AUTHORIZED)
            fprintf(stderr, "%s: this id could not be authenticated again: it is no longer registered\n",
                    progname);
        if (episode.drop)
            check_drop(handle);
    }
}

static void on_log(int32_t handle, stupid_p2p_log_level_t level, const char *msg, void *user)
{
    (void)handle;
    (void)level;
    (void)user;
    fprintf(stderr, "%s: %s\n", progname, msg);
}

static int parse_int(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

/* Reads the token from path into buf (TOKEN_MAX + 2 bytes): the file's
 * first line, without its LF or CR LF, which must be a token (1 to 256
 * bytes of printable ASCII without spaces). A file that group or others
 * may read is a warning. Returns the token's length, or 0 after saying on
 * standard error what is wrong (the token itself is never printed). */
static size_t read_token_file(const char *path, char *buf)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
    if (fd == -1) {
        fprintf(stderr, "%s: token file %s: %s\n", progname, path, strerror(errno));
        return 0;
    }
    struct stat st;
    if (fstat(fd, &st) == 0 && (st.st_mode & (S_IRGRP | S_IROTH)) != 0)
        fprintf(stderr, "%s: warning: token file %s is readable by %s; chmod 600 it\n", progname, path,
                (st.st_mode & S_IROTH) != 0 ? "others" : "its group");
    /* Up to the first LF, reading at most TOKEN_MAX + 2 bytes (a token and
     * CR LF): a longer first line is not a token. */
    size_t n = 0, cap = TOKEN_MAX + 2;
    char *nl = NULL;
    while (n < cap && nl == NULL) {
        ssize_t r = read(fd, buf + n, cap - n);
        if (r == -1 && errno == EINTR)
            continue;
        if (r == -1) {
            fprintf(stderr, "%s: token file %s: %s\n", progname, path, strerror(errno));
            close(fd);
            explicit_bzero(buf, cap);
            return 0;
        }
        if (r == 0)
            break;
        nl = memchr(buf + n, '\n', (size_t)r);
        n += (size_t)r;
    }
    close(fd);
    size_t len = nl != NULL ? (size_t)(nl - buf) : n;
    if (len > 0 && buf[len - 1] == '\r' && nl != NULL)
        len--;
    const char *problem = NULL;
    if (len == 0)
        problem = n == 0 ? "is empty" : "has an empty first line";
    else if (len > TOKEN_MAX)
        problem = "has a first line longer than a token (256 bytes)";
    for (size_t i = 0; problem == NULL && i < len; i++)
        if ((unsigned char)buf[i] < 0x21 || (unsigned char)buf[i] > 0x7e)
            problem = "holds a space, a control or a non-ASCII byte in its first line: not a token";
    if (problem != NULL) {
        fprintf(stderr, "%s: token file %s %s\n", progname, path, problem);
        explicit_bzero(buf, cap);
        return 0;
    }
    return len;
}

/* Waits until other is online, up to wait_s seconds. v2: subscribed
 * already, woken by PRESENCE; v1: asks once a second. Returns 0 or -1. */
static int wait_for_other(int32_t h, const char *other, long wait_s, int v2)
{
    struct timespec end;
    clock_gettime(CLOCK_REALTIME, &end);
    end.tv_sec += wait_s;
    fprintf(stderr, "checking device%s alive: \n", other);
    for (int attempt = 1;; attempt++) {
        int32_t r = stupid_p2p_check_alive(h, other, strlen(other));
        if (r == 1) {
            fprintf(stderr, "device:%s is alive\n", other);
            return 0;
        }
        if (r < 0 && r != STUPID_P2P_RESTARTING && r != STUPID_P2P_TIMEOUT && r != STUPID_P2P_NET_ERROR) {
            fprintf(stderr, "%s: check alive: %s\n", progname, stupid_p2p_strerror(r));
            return -1;
        }
        struct timespec now, next;
        clock_gettime(CLOCK_REALTIME, &now);
        if (now.tv_sec > end.tv_sec || (now.tv_sec == end.tv_sec && now.tv_nsec >= end.tv_nsec))
            return -1;
        fprintf(stderr, "device:%s is not alive, try again %d\n", other, attempt);
        next = now;
        next.tv_sec += 1;
        if (next.tv_sec > end.tv_sec || (next.tv_sec == end.tv_sec && next.tv_nsec > end.tv_nsec))
            next = end;
        pthread_mutex_lock(&g.mu);
        while (!(v2 && g.other_online)) {
            if (pthread_cond_timedwait(&g.cond, &g.mu, &next) == ETIMEDOUT)
                break;
        }
        pthread_mutex_unlock(&g.mu);
    }
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"server", required_argument, NULL, 's'}, {"port", required_argument, NULL, 'p'},
        {"my-id", required_argument, NULL, 'm'},  {"other-id", required_argument, NULL, 'o'},
        {"wait", required_argument, NULL, 'w'},   {"help", no_argument, NULL, 'h'},
        {"token-file", required_argument, NULL, 'T'}, {"drop", no_argument, NULL, 'D'},
        {"direct", no_argument, NULL, 'X'},
        {NULL, 0, NULL, 0}};
    const char *host = NULL, *my_id = NULL, *other = NULL, *token_file = NULL;
    long port = 0, wait_s = 30;
    int ch, direct = 0;
    while ((ch = getopt_long(argc, argv, "s:p:m:o:w:h", longopts, NULL)) != -1) {
        switch (ch) {
        case 's': host = optarg; break;
        case 'm': my_id = optarg; break;
        case 'o': other = optarg; break;
        case 'p':
            if (parse_int(optarg, 1, 65535, &port) != 0) {
                fprintf(stderr, "%s: bad port '%s' (expected 1-65535)\n", progname, optarg);
                return EXIT_USAGE;
            }
            break;
        case 'w':
            if (parse_int(optarg, 0, 86400, &wait_s) != 0) {
                fprintf(stderr, "%s: bad wait '%s' (expected 0-86400 seconds)\n", progname, optarg);
                return EXIT_USAGE;
            }
            break;
        case 'T': token_file = optarg; break;
        case 'D': episode.drop = 1; break;
        case 'X': direct = 1; break;
        case 'h': usage(stdout); return 0;
        default: usage(stderr); return EXIT_USAGE;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "%s: unexpected argument '%s'\n", progname, argv[optind]);
        usage(stderr);
        return EXIT_USAGE;
    }
    if (host == NULL || port == 0 || my_id == NULL || other == NULL) {
        fprintf(stderr, "%s: -s, -p, -m and -o are all required\n", progname);
        usage(stderr);
        return EXIT_USAGE;
    }
    size_t ml = strlen(my_id), ol = strlen(other);
    if (ml < 1 || ml > 255 || ol < 1 || ol > 255) {
        fprintf(stderr, "%s: ids must be 1 to 255 bytes\n", progname);
        return EXIT_USAGE;
    }
    if (ml == ol && memcmp(my_id, other, ml) == 0) {
        fprintf(stderr, "%s: -m and -o name the same device: a device cannot chat with itself\n", progname);
        return EXIT_USAGE;
    }
    g.other_id = other;

    stupid_p2p_options_t opt;
    stupid_p2p_options_init(&opt);
    char token[TOKEN_MAX + 2];
    if (token_file != NULL) {
        opt.token_len = read_token_file(token_file, token);
        if (opt.token_len == 0)
            return EXIT_USAGE;
        opt.token = token;
    }
    opt.on_message = on_message;
    if (episode.drop) {
        opt.slow_consumer = STUPID_P2P_SLOW_DROP;
        opt.on_gap = on_gap;
    }
    opt.on_presence = on_presence;
    opt.on_state = on_state;
    opt.on_log = on_log;
    if (direct) {
        opt.direct = STUPID_P2P_DIRECT_AUTO;
        opt.on_path = on_path;
    }
    /* Connection losses are on_state's one line each; the library's own
     * warnings about them would repeat it. Errors still show. */
    opt.log_level = STUPID_P2P_LOG_ERROR;
    int32_t h = stupid_p2p_init_ex(host, (int32_t)port, &opt);
    explicit_bzero(token, sizeof token); /* the library keeps derived keys only */
    if (h < 0) {
        const char *why = stupid_p2p_connect_error(0);
        if (why == NULL)
            why = h == STUPID_P2P_BAD_PARAM ? "unknown host or bad address" : stupid_p2p_strerror(h);
        fprintf(stderr, "%s: cannot connect to %s port %ld: %s\n", progname, host, port, why);
        return EXIT_CONNECT;
    }
    if (episode.drop)
        check_drop(h);

    int status = 0;
    int subscribed = 0;
    int32_t r = stupid_p2p_register(h, my_id, ml);
    if (r != STUPID_P2P_NO_ERROR) {
        const char *why = stupid_p2p_strerror(r);
        if (token_file != NULL && r == STUPID_P2P_NOT_AUTHORIZED)
            why = "not authorized: the server refused the token";
        else if (token_file != NULL && r == STUPID_P2P_UNSUPPORTED)
            why = "this server cannot authenticate (it speaks only protocol v1, or has no auth file)";
        fprintf(stderr, "%s: register %s: %s\n", progname, my_id, why);
        status = 1;
        goto out;
    }
    fprintf(stderr, "register device:%s success \n", my_id);

    stupid_p2p_stats_t st;
    int v2 = stupid_p2p_get_stats(h, &st) == STUPID_P2P_NO_ERROR && st.protocol_version >= 2;
    if (v2) {
        /* v2 accepts a subscription to an offline device and then tells us
         * when it comes online. */
        r = stupid_p2p_subscribe(h, other, ol);
        if (r != STUPID_P2P_NO_ERROR) {
            fprintf(stderr, "%s: subscribe %s: %s\n", progname, other, stupid_p2p_strerror(r));
            status = 1;
            goto out;
        }
        subscribed = 1;
    }
    if (wait_for_other(h, other, wait_s, v2) != 0) {
        fprintf(stderr, "%s: device %s did not come online within %ld s\n", progname, other, wait_s);
        status = EXIT_WAIT;
        goto out;
    }
    if (!subscribed) {
        r = stupid_p2p_subscribe(h, other, ol);
        if (r != STUPID_P2P_NO_ERROR) {
            fprintf(stderr, "%s: subscribe %s: %s\n", progname, other, stupid_p2p_strerror(r));
            status = 1;
            goto out;
        }
        subscribed = 1;
    }
    fprintf(stderr, "subscribe device:%s success\n", other);
    if (direct) {
        r = stupid_p2p_connect_direct(h, other, ol);
        if (r != STUPID_P2P_NO_ERROR)
            fprintf(stderr, "%s: no direct path to %s: %s; using the relay\n", progname, other,
                    stupid_p2p_strerror(r));
    }
    fprintf(stderr, "input and receive(input 'quit' to quit): \n");

    char *line = NULL;
    size_t cap = 0;
    ssize_t n;
    while ((n = getline(&line, &cap, stdin)) != -1) {
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (strcmp(line, "quit") == 0)
            break;
        if (n == 0)
            continue;
        r = direct ? stupid_p2p_send_to(h, other, ol, line, (size_t)n) : stupid_p2p_send(h, line, (size_t)n);
        if (r != STUPID_P2P_NO_ERROR) {
            fprintf(stderr, "%s: send failed: %s\n", progname, stupid_p2p_strerror(r));
        } else {
            flockfile(stderr);
            fputs("send data: ", stderr);
            put_escaped(stderr, (const uint8_t *)line, (size_t)n);
            putc('\n', stderr);
            funlockfile(stderr);
        }
    }
    if (ferror(stdin))
        fprintf(stderr, "%s: reading standard input: %s\n", progname, strerror(errno));
    free(line);

out:
    if (subscribed && stupid_p2p_unsubscribe(h, other, ol) == STUPID_P2P_NO_ERROR)
        fprintf(stderr, "unsubscribe device:%s success\n", other);
    if (stupid_p2p_unregister(h) == STUPID_P2P_NO_ERROR)
        fprintf(stderr, "unregister device%s success\n", my_id);
    stupid_p2p_deinit(h);
    return status;
}
