#!/usr/bin/env bash
# bench.sh - the stupidP2P benchmark: runs the standard workloads against a
# freshly started ./p2pServer on 127.0.0.1 and prints the medians as a
# markdown table. BENCHMARKS.md explains the method and holds the figures.
#
# usage: scripts/bench.sh [mode...] [options]
# modes (any combination; none = the standard set):
#   --standard          the standard set with p2pBench, protocol v1 and v2
#                       (v2 with HELLO QUIET): fan-out 1->1 and 1->100 at 64 B
#                       and 1 KiB, 50 pairs at 64 B, ping-pong at 64 B,
#                       10,000 and 19,000 idle connections, connection rate
#   --compare           the standard set, plus the same workloads against
#                       Mosquitto, Redis and NATS (installed with apt-get when
#                       missing), the p2pServer again through the same
#                       generator as those (relaybench), and `direct`, one TCP
#                       hop without a relay; prints the table of issue 12
#   --callgrind         instructions per delivery: the server under valgrind
#                       --tool=callgrind for fan-out 1->100 64 B and 50 pairs
#                       64 B, 2,000,000 deliveries each, v1 and v2
#   --syscalls          what the server does per delivery in fan-out 1->1 64 B:
#                       syscall and context-switch counts from perf stat
#                       tracepoints (no hardware counters needed)
#   --all               all of the above
# options:
#   --reps N            repetitions per workload; the median is reported (3)
#   --duration SEC      sending time of each throughput/latency run (3)
#   --quick             a smoke run: --reps 1 --duration 1, 2,000 and 4,000
#                       idle connections, 2,000 connections for the rate
#   --proto LIST        v1, v2 or v1,v2 (default) for the p2pBench runs
#   --max-noise PCT     a run during which other processes used more than PCT %
#                       of a core is kept in results.txt marked noisy=1, left out
#                       of the table and repeated after a pause (default 30)
#   --noise-retries N   repeats of a noisy run; the last one counts (default 2)
#   --server PATH       the p2pServer to measure (default ./p2pServer, built
#                       here): compare two builds by running the script once
#                       for each
#   --out DIR           where results go (default: a new directory in /tmp)
#   --no-build          do not run make first
#   --table FILE        only print the tables of an earlier DIR/results.txt
#
# Output: progress on stderr; the tables on stdout and in DIR/tables.md; every
# result line in DIR/results.txt; server logs and profiles in DIR/.
#
# Everything runs on loopback. Each server is started here, on a free port
# picked at random in 20000-32767 (below the kernel's ephemeral range), and
# stopped by the pid this script started; nothing else is touched.
set -u -o pipefail

CALLER_DIR=$PWD
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT" || exit 2

REPS=3
DURATION=3
IDLE_CONNS=10000
IDLE_MAX_CONNS=19000
RATE_CONNS=10000
PROTOS="v1,v2"
MAX_NOISE=30
NOISE_RETRIES=2
OUT=""
SERVER_BIN=./p2pServer
BUILD=1
TABLE_ONLY=""
DO_STANDARD=0 DO_COMPARE=0 DO_CALLGRIND=0 DO_SYSCALLS=0
CALLGRIND_DELIVERIES=2000000

die() { echo "bench.sh: $*" >&2; exit 2; }
note() { echo "bench.sh: $*" >&2; }

while [ $# -gt 0 ]; do
    case "$1" in
        --standard) DO_STANDARD=1; shift ;;
        --compare) DO_COMPARE=1; shift ;;
        --callgrind) DO_CALLGRIND=1; shift ;;
        --syscalls) DO_SYSCALLS=1; shift ;;
        --all) DO_STANDARD=1; DO_COMPARE=1; DO_CALLGRIND=1; DO_SYSCALLS=1; shift ;;
        --reps) REPS=${2:-}; shift 2 ;;
        --duration) DURATION=${2:-}; shift 2 ;;
        --quick) REPS=1; DURATION=1; IDLE_CONNS=2000; IDLE_MAX_CONNS=4000; RATE_CONNS=2000; shift ;;
        --proto) PROTOS=${2:-}; shift 2 ;;
        --max-noise) MAX_NOISE=${2:-}; shift 2 ;;
        --noise-retries) NOISE_RETRIES=${2:-}; shift 2 ;;
        --out) OUT=${2:-}; shift 2 ;;
        --server) SERVER_BIN=${2:-}; shift 2
                  case "$SERVER_BIN" in /*) ;; *) SERVER_BIN=$CALLER_DIR/$SERVER_BIN ;; esac ;;
        --no-build) BUILD=0; shift ;;
        --table) TABLE_ONLY=${2:-}; shift 2 ;;
        -h|--help) sed -n '2,/^set -u/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown option $1 (see --help)" ;;
    esac
done
[[ "$REPS" =~ ^[1-9][0-9]*$ ]] || die "--reps wants a positive whole number"
[[ "$DURATION" =~ ^[0-9]+([.][0-9]+)?$ ]] || die "--duration wants seconds"
[[ "$MAX_NOISE" =~ ^[0-9]+$ ]] || die "--max-noise wants a whole percentage"
[[ "$NOISE_RETRIES" =~ ^[0-9]+$ ]] || die "--noise-retries wants a whole number"
[[ "$PROTOS" =~ ^(v1|v2)(,(v1|v2))?$ ]] || die "--proto wants v1, v2 or v1,v2"
if [ $((DO_STANDARD + DO_COMPARE + DO_CALLGRIND + DO_SYSCALLS)) = 0 ]; then DO_STANDARD=1; fi
[ "$DO_COMPARE" = 1 ] && DO_STANDARD=1   # the comparison includes our own rows

# ---- tables ---------------------------------------------------------------------
# One awk program reads results.txt (one line per run: our own keys sys=,
# key=, rep=, rc=, noisy=, then the generator's key=value line) and prints
# the markdown tables. Medians are over the verified runs (rc=0) that were
# not repeated for noise; a cell marked !N had N failed runs.
print_tables() {
    awk '
    function med(k,   n, i, j, t, a) {
        n = cnt[k]; if (n == 0) return "";
        for (i = 1; i <= n; i++) a[i] = vals[k, i] + 0;
        for (i = 2; i <= n; i++) { t = a[i]; for (j = i - 1; j >= 1 && a[j] > t; j--) a[j + 1] = a[j]; a[j + 1] = t; }
        return (n % 2) ? a[(n + 1) / 2] : (a[n / 2] + a[n / 2 + 1]) / 2;
    }
    function rate(v) {
        if (v == "") return "-";
        if (v >= 1e6) return sprintf("%.2f M", v / 1e6);
        if (v >= 1e4) return sprintf("%.0f k", v / 1e3);
        return sprintf("%.0f", v);
    }
    function bytes(v) { return v == "" ? "-" : sprintf("%.0f B", v); }
    function usec(v) { return v == "" ? "-" : sprintf("%.0f", v); }
    function bad(s, k) { return fails[s, k] > 0 ? " !" fails[s, k] : ""; }
    # cell: the formatted median of metric m of workload k for system s
    function cell(s, k, m, fmt,   v) {
        if (m == "p50p99") {
            if (med(s SUBSEP k SUBSEP "p50_us") == "") return "-" bad(s, k);
            return usec(med(s SUBSEP k SUBSEP "p50_us")) " / " usec(med(s SUBSEP k SUBSEP "p99_us")) " µs" bad(s, k);
        }
        v = med(s SUBSEP k SUBSEP m);
        if (fmt == "bytes") return bytes(v) bad(s, k);
        return rate(v) bad(s, k);
    }
    function commas(n,   s) { s = n ""; while (s ~ /[0-9][0-9][0-9][0-9]/) sub(/[0-9][0-9][0-9]($|,)/, ",&", s); return s; }
    function name_of(label) {
        sub(/N_IDLE/, idle_n == "" ? "?" : commas(idle_n), label);
        sub(/N_MAX/, max_n == "" ? "?" : commas(max_n), label);
        return label;
    }
    function val(s, k, m) { return (m == "p50p99") ? med(s SUBSEP k SUBSEP "p50_us") : med(s SUBSEP k SUBSEP m); }
    {
        delete f;
        for (i = 1; i <= NF; i++) { p = index($i, "="); if (p) { key = substr($i, 1, p - 1); if (!(key in f)) f[key] = substr($i, p + 1); } }
        s = f["sys"]; k = f["key"];
        if (s == "" || k == "") next;
        if (!(s in seen)) { seen[s] = 1; order[++nsys] = s; }
        if (f["rep"] + 0 > reps) reps = f["rep"] + 0;
        if (duration == "" && ("duration" in f)) duration = f["duration"] + 0;
        if (k == "idle" && ("conns" in f)) idle_n = f["conns"];
        if (k == "idle_max" && ("conns" in f)) max_n = f["conns"];
        if (f["noisy"] == "1") { noisy[s]++; next; }
        if (f["rc"] != "0") { fails[s, k]++; next; }
        n = split("deliveries_per_s p50_us p99_us rss_per_conn_bytes conns_per_s kernel_slab_per_socket_bytes tcp_buffer_per_socket_bytes srv_cpu_pct gen_cpu_pct other_cpu_pct", ms, " ");
        for (i = 1; i <= n; i++) if (ms[i] in f) { kk = s SUBSEP k SUBSEP ms[i]; vals[kk, ++cnt[kk]] = f[ms[i]]; }
    }
    END {
        nrow = split("fanout1_64|deliveries_per_s|fan-out 1 → 1, 64 B, deliveries/s|rate|hi;" \
                     "fanout1_1k|deliveries_per_s|fan-out 1 → 1, 1 KiB|rate|hi;" \
                     "fanout100_64|deliveries_per_s|fan-out 1 → 100, 64 B|rate|hi;" \
                     "fanout100_1k|deliveries_per_s|fan-out 1 → 100, 1 KiB|rate|hi;" \
                     "pairs50_64|deliveries_per_s|50 pairs, 64 B|rate|hi;" \
                     "pingpong_64|p50p99|ping-pong 64 B, p50 / p99|us|lo;" \
                     "idle|rss_per_conn_bytes|N_IDLE idle connections, server RSS per connection|bytes|lo;" \
                     "idle_max|rss_per_conn_bytes|N_MAX idle connections, server RSS per connection|bytes|lo;" \
                     "idle_max|kernel_slab_per_socket_bytes|N_MAX idle connections, kernel slab per socket|bytes|lo;" \
                     "connrate|conns_per_s|connections accepted + registered per second|rate|hi", rows, ";");
        # Our own systems (p2pBench) and the comparison ones (relaybench).
        ours = ""; peers = "";
        for (i = 1; i <= nsys; i++) {
            if (order[i] ~ /^p2pBench-/) ours = ours " " order[i];
            else peers = peers " " order[i];
        }
        no = split(ours, osv, " "); np = split(peers, psv, " ");
        label["p2pBench-v1"] = "p2pServer v1"; label["p2pBench-v2"] = "p2pServer v2 QUIET";
        label["direct"] = "one TCP hop, no relay"; label["mosquitto"] = "Mosquitto";
        label["redis"] = "Redis"; label["nats"] = "NATS"; label["relaybench-p2p"] = "p2pServer (v1)";
        if (no > 0) {
            printf "### p2pServer, p2pBench: median of %d run(s), %ss each\n\n", reps, duration;
            printf "| workload |"; for (i = 1; i <= no; i++) printf " %s |", label[osv[i]]; printf "\n|---|";
            for (i = 1; i <= no; i++) printf "---|"; printf "\n";
            for (r = 1; r <= nrow; r++) {
                split(rows[r], rr, "|");
                printf "| %s |", name_of(rr[3]);
                for (i = 1; i <= no; i++) printf " %s |", cell(osv[i], rr[1], rr[2], rr[4]);
                printf "\n";
            }
            printf "\nServer / generator CPU, %% of one core (2 cores = 200 %%), and other processes (noise):\n\n";
            printf "| workload |"; for (i = 1; i <= no; i++) printf " %s |", label[osv[i]]; printf "\n|---|";
            for (i = 1; i <= no; i++) printf "---|"; printf "\n";
            for (r = 1; r <= 6; r++) {
                split(rows[r], rr, "|"); printf "| %s |", rr[1];
                for (i = 1; i <= no; i++) {
                    b = osv[i] SUBSEP rr[1] SUBSEP;
                    printf " %s / %s / %s |", usec(med(b "srv_cpu_pct")), usec(med(b "gen_cpu_pct")), usec(med(b "other_cpu_pct"));
                }
                printf "\n";
            }
            printf "\n";
        }
        if (np > 0) {
            # The columns of issue 12; ours / best peer compares the p2pServer
            # with the peers through the same generator (relaybench).
            printf "### Against the peers: relaybench, median of %d run(s), %ss each\n\n", reps, duration;
            printf "| workload | one TCP hop, no relay | Mosquitto | Redis | NATS | p2pServer | ours / best peer | p2pServer v2 QUIET (p2pBench) |\n";
            printf "|---|---|---|---|---|---|---|---|\n";
            for (r = 1; r <= nrow; r++) {
                split(rows[r], rr, "|");
                if (rr[1] == "idle_max") continue;  # peers are measured at 10,000
                name = name_of(rr[3]);
                printf "| %s | %s | %s | %s | %s | %s |", name,
                    (rr[1] ~ /^(idle|connrate)/) ? "" : cell("direct", rr[1], rr[2], rr[4]),
                    cell("mosquitto", rr[1], rr[2], rr[4]), cell("redis", rr[1], rr[2], rr[4]),
                    cell("nats", rr[1], rr[2], rr[4]), cell("relaybench-p2p", rr[1], rr[2], rr[4]);
                best = ""; split("mosquitto redis nats", pe, " ");
                for (j = 1; j <= 3; j++) {
                    v = val(pe[j], rr[1], rr[2]); if (v == "") continue;
                    if (best == "" || (rr[5] == "hi" && v + 0 > best + 0) || (rr[5] == "lo" && v + 0 < best + 0)) best = v;
                }
                o = val("relaybench-p2p", rr[1], rr[2]);
                printf " %s |", (best != "" && o != "" && best + 0 > 0) ? sprintf("%.2f×", o / best) : "-";
                printf " %s |\n", cell("p2pBench-v2", rr[1], rr[2], rr[4]);
            }
            printf "\nServer CPU during the throughput runs, %% of one core (NATS may use both cores):\n\n";
            printf "| workload | Mosquitto | Redis | NATS | p2pServer |\n|---|---|---|---|---|\n";
            for (r = 1; r <= 5; r++) {
                split(rows[r], rr, "|"); printf "| %s |", rr[1];
                split("mosquitto redis nats relaybench-p2p", pe, " ");
                for (j = 1; j <= 4; j++) printf " %s |", usec(med(pe[j] SUBSEP rr[1] SUBSEP "srv_cpu_pct"));
                printf "\n";
            }
            printf "\nFor latency and memory rows ours / best peer below 1 is better.\n\n";
        }
        for (i = 1; i <= nsys; i++) if (noisy[order[i]]) printf "%s: %d run(s) repeated for noise.\n", order[i], noisy[order[i]];
        for (i = 1; i <= nsys; i++) for (r = 1; r <= nrow; r++) { split(rows[r], rr, "|"); if (fails[order[i], rr[1]]) printf "%s %s: %d run(s) failed verification (see results.txt).\n", order[i], rr[1], fails[order[i], rr[1]]; }
    }' "$RESULTS"
}

if [ -n "$TABLE_ONLY" ]; then
    [ -f "$TABLE_ONLY" ] || die "no such file: $TABLE_ONLY"
    RESULTS=$TABLE_ONLY
    print_tables
    exit 0
fi

OUT=${OUT:-$(mktemp -d -t "p2pbench-$(date +%Y%m%d-%H%M%S).XXXX")}
mkdir -p "$OUT/logs" || die "cannot create $OUT"
RESULTS="$OUT/results.txt"
: >"$RESULTS"
TMP=$(mktemp -d) || die "mktemp failed"

# ---- servers: started here, stopped by their pid ----------------------------------
SRV_PID=""
SRV_PORT=""
SRV_KIND=""
SRV_NAME=""
FRESH=0   # set while memory is measured: a repeated run gets a new server

stop_server() {
    [ -n "$SRV_PID" ] || return 0
    kill -TERM "$SRV_PID" 2>/dev/null
    local _
    for _ in $(seq 1 600); do   # valgrind takes a while to write its profile
        kill -0 "$SRV_PID" 2>/dev/null || break
        sleep 0.1
    done
    kill -0 "$SRV_PID" 2>/dev/null && kill -KILL "$SRV_PID" 2>/dev/null
    wait "$SRV_PID" 2>/dev/null
    SRV_PID=""
    SRV_PORT=""
}

cleanup() {
    stop_server
    rm -rf "$TMP"
}
trap cleanup EXIT
trap 'cleanup; exit 130' INT TERM

port_free() { ! ss -ltnH "( sport = :$1 )" 2>/dev/null | grep -q .; }

# Waits (bounded) until pid $1 itself listens on port $2.
wait_listening() {
    local pid=$1 port=$2 tenths=$3 _
    for _ in $(seq 1 "$tenths"); do
        ss -ltnpH "( sport = :$port )" 2>/dev/null | grep -q "pid=$pid," && return 0
        kill -0 "$pid" 2>/dev/null || return 1
        sleep 0.1
    done
    return 1
}

# start_server KIND NAME: KIND is p2p, callgrind, mosquitto, redis or nats.
# Sets SRV_PID and SRV_PORT. A port taken between the check and the bind
# makes the server exit: then another port is tried (5 attempts).
start_server() {
    local kind=$1 name=$2 log="$OUT/logs/$2.log" _ port tenths=100
    for _ in 1 2 3 4 5; do
        port=$((20000 + RANDOM % 12768))
        port_free "$port" || continue
        case "$kind" in
            p2p)
                "$SERVER_BIN" --bind 127.0.0.1 --log-level warn "$port" </dev/null >>"$log" 2>&1 &
                ;;
            callgrind)
                tenths=600
                valgrind --tool=callgrind --callgrind-out-file="$CG_FILE" \
                    "$SERVER_BIN" --bind 127.0.0.1 --log-level warn "$port" </dev/null >>"$log" 2>&1 &
                ;;
            mosquitto)
                # max_queued_messages: by default mosquitto silently drops QoS 0
                # messages for a subscriber with 1000 queued; raised so that
                # nothing is lost (as relaybench's anchors do).
                cat >"$TMP/mosquitto.conf" <<EOF
listener $port 127.0.0.1
allow_anonymous true
persistence false
max_queued_messages 100000000
max_connections -1
set_tcp_nodelay true
connection_messages false
log_dest stderr
log_type error
log_type warning
EOF
                "$MOSQUITTO" -c "$TMP/mosquitto.conf" </dev/null >>"$log" 2>&1 &
                ;;
            redis)
                # No persistence; the pub/sub output limit off (by default a
                # subscriber 32 MB behind is disconnected).
                redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no \
                    --client-output-buffer-limit 'pubsub 0 0 0' --maxclients 19900 \
                    --protected-mode no --daemonize no </dev/null >>"$log" 2>&1 &
                ;;
            nats)
                nats-server -a 127.0.0.1 -p "$port" </dev/null >>"$log" 2>&1 &
                ;;
            *) die "unknown server kind $kind" ;;
        esac
        SRV_PID=$!
        if wait_listening "$SRV_PID" "$port" "$tenths"; then
            SRV_PORT=$port
            SRV_KIND=$kind
            SRV_NAME=$name
            return 0
        fi
        note "$name did not come up on port $port; trying another"
        stop_server
    done
    note "$name would not start (see $log)"
    return 1
}

# ---- one run -------------------------------------------------------------------------
# run SYS KEY REP TOOL ARGS...: runs the generator against the current server
# and appends its line to results.txt. Noise guard: when other processes used
# more than MAX_NOISE % of a core during the run, it is run again after a
# pause (on a fresh server while memory is measured), up to NOISE_RETRIES
# times; the attempt with the least noise counts, the others stay in
# results.txt marked noisy=1.
run() {
    local sys=$1 key=$2 rep=$3 tool=$4; shift 4
    local bin=./p2pBench try line rc other best="" best_rc=0 best_other=0
    [ "$tool" = relaybench ] && bin=$RELAYBENCH
    for try in $(seq 0 "$NOISE_RETRIES"); do
        if [ "$try" -gt 0 ] && [ "$FRESH" = 1 ]; then
            stop_server
            start_server "$SRV_KIND" "$SRV_NAME" || break
        fi
        local -a extra=(--label "$sys" --timeout "$TIMEOUT")
        [ -n "$SRV_PID" ] && extra+=(--port "$SRV_PORT" --server-pid "$SRV_PID")
        line=$("$bin" "$@" "${extra[@]}" </dev/null 2>>"$OUT/logs/generator.stderr")
        rc=$?
        [ -n "$line" ] || line="status=no_output"
        other=$(grep -o 'other_cpu_pct=[0-9]*' <<<"$line" | cut -d= -f2)
        [ -n "$other" ] || other=0
        if [ -z "$best" ] || [ "$other" -lt "$best_other" ]; then
            [ -n "$best" ] && echo "sys=$sys key=$key rep=$rep rc=$best_rc noisy=1 tool=$tool $best" >>"$RESULTS"
            best=$line best_rc=$rc best_other=$other
        else
            echo "sys=$sys key=$key rep=$rep rc=$rc noisy=1 tool=$tool $line" >>"$RESULTS"
        fi
        [ "$other" -le "$MAX_NOISE" ] && break
        if [ "$try" -lt "$NOISE_RETRIES" ]; then
            note "  $sys $key #$rep: other processes used ${other}% of a core; again in 3 s"
            sleep 3
        fi
    done
    [ -n "$best" ] || return 1
    echo "sys=$sys key=$key rep=$rep rc=$best_rc noisy=0 tool=$tool $best" >>"$RESULTS"
    note "  $sys $key #$rep rc=$best_rc $(tr ' ' '\n' <<<"$best" | grep -E '^(status|deliveries_per_s|p50_us|p99_us|rss_per_conn_bytes|conns_per_s|srv_cpu_pct|gen_cpu_pct|other_cpu_pct|first_error)=' | tr '\n' ' ')"
}

# The workloads: key|arguments. Throughput and latency runs send for
# --duration seconds (message counts are only caps).
throughput_workloads() {
    cat <<EOF
fanout1_64|fanout --subs 1 --size 64 --msgs 100000000 --duration $DURATION
fanout1_1k|fanout --subs 1 --size 1024 --msgs 100000000 --duration $DURATION
fanout100_64|fanout --subs 100 --size 64 --msgs 10000000 --duration $DURATION
fanout100_1k|fanout --subs 100 --size 1024 --msgs 10000000 --duration $DURATION
pairs50_64|pairs --pairs 50 --size 64 --msgs 10000000 --duration $DURATION
pingpong_64|pingpong --size 64 --rounds 100000000 --duration $DURATION
EOF
}

# Connection workloads, key|arguments, for generator $1.
connection_workloads() {
    if [ "$1" = relaybench ]; then
        echo "idle|conns --conns $IDLE_CONNS --hold 1"
    else
        echo "idle|idle --conns $IDLE_CONNS --hold 1"
        echo "idle_max|idle --conns $IDLE_MAX_CONNS --hold 1"
        echo "connrate|connrate --conns $RATE_CONNS"
    fi
}

# The systems measured, each name|server kind (none: no server)|generator|
# the generator's protocol arguments.
SYSTEMS=()

# Every workload against every system, interleaved: repetition after
# repetition, and within one, system after system for each workload, so that
# the load other processes put on this shared machine falls on all systems
# alike and the ratios between them stay fair. Every run gets a fresh
# server: memory an earlier run freed would be reused and hide a
# connection's cost, and nothing one run left behind slows the next.
run_all() {
    local rep key args entry name kind tool pargs
    for rep in $(seq 1 "$REPS"); do
        note "== repetition $rep of $REPS (load $(cut -d' ' -f1-3 /proc/loadavg))"
        while IFS='|' read -r key args; do
            for entry in "${SYSTEMS[@]}"; do
                IFS='|' read -r name kind tool pargs <<<"$entry"
                if [ "$kind" != none ]; then start_server "$kind" "$name" || continue; fi
                # shellcheck disable=SC2086
                run "$name" "$key" "$rep" "$tool" $args $pargs
                stop_server
            done
        done < <(throughput_workloads)
        for entry in "${SYSTEMS[@]}"; do
            IFS='|' read -r name kind tool pargs <<<"$entry"
            [ "$kind" = none ] && continue   # direct: no server to hold connections
            while IFS='|' read -r key args; do
                start_server "$kind" "$name" || continue
                FRESH=1
                # shellcheck disable=SC2086
                run "$name" "$key" "$rep" "$tool" $args $pargs
                FRESH=0
                stop_server
            done < <(connection_workloads "$tool")
        done
    done
}

# relaybench's conns workload measures both RSS and the connection rate:
# its lines are filed under "connrate" too, for the table.
file_relaybench_rates() {
    awk '/ tool=relaybench / && / key=idle / { sub(/ key=idle /, " key=connrate "); print }' \
        "$RESULTS" >"$TMP/rates" && cat "$TMP/rates" >>"$RESULTS"
}

# ---- instructions per delivery (callgrind) -----------------------------------------
run_callgrind() {
    command -v valgrind >/dev/null || {
        note "installing valgrind"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq valgrind >&2 || die "apt-get install valgrind failed"
    }
    local table="$OUT/callgrind.md" per_msgs=$((CALLGRIND_DELIVERIES / 100)) proto name args
    {
        echo "### Instructions per delivery (valgrind --tool=callgrind, user space only)"
        echo
        echo "$CALLGRIND_DELIVERIES deliveries per run; the total includes server start-up and shutdown; the"
        echo "marginal figure subtracts a run of the same connections with one message."
        echo
        echo "| workload | protocol | instructions | per delivery | marginal per delivery |"
        echo "|---|---|---|---|---|"
    } >"$table"
    for proto in ${PROTOS//,/ }; do
        for name in fanout100_64 pairs50_64; do
            case "$name" in
                fanout100_64) args="fanout --subs 100 --size 64" ;;
                pairs50_64) args="pairs --pairs 50 --size 64" ;;
            esac
            local total=() deliveries=() m
            for m in 1 "$per_msgs"; do
                CG_FILE="$OUT/callgrind.$name.$proto.msgs$m.out"
                rm -f "$CG_FILE"
                start_server callgrind "callgrind-$name-$proto" || continue 2
                local line
                # shellcheck disable=SC2086
                line=$(./p2pBench $args --msgs "$m" --proto "$proto" --port "$SRV_PORT" \
                       --timeout 900 --idle 120 --label callgrind 2>>"$OUT/logs/generator.stderr")
                local rc=$?
                stop_server
                echo "sys=callgrind key=$name proto=$proto msgs=$m rc=$rc $line" >>"$OUT/callgrind.txt"
                [ "$rc" = 0 ] || { note "callgrind $name $proto: the run failed: $line"; continue 2; }
                total+=("$(awk '/^(summary|totals):/ { print $2; exit }' "$CG_FILE")")
                deliveries+=("$(grep -o ' deliveries=[0-9]*' <<<"$line" | cut -d= -f2)")
            done
            callgrind_annotate --inclusive=no "$CG_FILE" >"$OUT/annotate.$name.$proto.txt" 2>/dev/null
            callgrind_annotate --inclusive=yes "$CG_FILE" >"$OUT/annotate-inclusive.$name.$proto.txt" 2>/dev/null
            awk -v n="$name" -v p="$proto" -v t0="${total[0]}" -v t1="${total[1]}" \
                -v d0="${deliveries[0]}" -v d1="${deliveries[1]}" 'BEGIN {
                printf "| %s | %s | %.0f M | %.0f | %.0f |\n", n, p, t1 / 1e6, t1 / d1, (t1 - t0) / (d1 - d0) }' >>"$table"
            note "callgrind $name $proto: ${total[1]} instructions, ${deliveries[1]} deliveries"
        done
    done
    echo >>"$table"
    echo "Top functions (self): $OUT/annotate.*.txt" >>"$table"
}

# ---- what the server does per delivery (perf stat tracepoints) -------------------------
run_syscalls() {
    command -v perf >/dev/null || { note "perf not installed: --syscalls skipped"; return 0; }
    local table="$OUT/syscalls.md" proto msgs=2000000 events
    events=syscalls:sys_enter_epoll_wait,syscalls:sys_enter_readv,syscalls:sys_enter_sendmsg,raw_syscalls:sys_enter
    {
        echo "### Fan-out 1 → 1, 64 B: server syscalls and sleeps per 1,000 deliveries ($msgs messages)"
        echo
        echo "Counts from perf stat tracepoints on the server; \"slept\": its voluntary context switches."
        echo "One run per line: the rates and CPU shares are as noisy as the last column says."
        echo
        echo "| protocol, flow control | deliveries/s | server CPU | epoll_wait | of which slept | readv | sendmsg | all syscalls | other processes |"
        echo "|---|---|---|---|---|---|---|---|---|"
    } >"$table"
    local variant
    for variant in "v1|--window 1024 --inflight 1024" "v1|--window 16384 --inflight 16384" \
                   "v2|--inflight 1024" "v2|--inflight 16384"; do
        proto=${variant%%|*}
        local flow=${variant#*|}
        start_server p2p "syscalls" || return 1
        perf stat -x, -e "$events" -p "$SRV_PID" -o "$TMP/perf.txt" &
        local perf_pid=$!
        sleep 0.5   # perf attaches
        local line
        # shellcheck disable=SC2086
        line=$(./p2pBench fanout --subs 1 --size 64 --msgs "$msgs" --proto "$proto" $flow \
               --port "$SRV_PORT" --server-pid "$SRV_PID" --label syscalls 2>>"$OUT/logs/generator.stderr")
        kill -INT "$perf_pid" 2>/dev/null
        wait "$perf_pid" 2>/dev/null
        stop_server
        echo "sys=syscalls proto=$proto flow=${flow// /_} $line" >>"$OUT/syscalls.txt"
        cat "$TMP/perf.txt" >>"$OUT/syscalls.txt"
        awk -F, -v line="$line" -v proto="$proto" -v flow="$flow" '
            /sys_enter_epoll_wait/ { ew = $1 } /sys_enter_readv/ { rv = $1 } /sys_enter_sendmsg/ { sm = $1 }
            /raw_syscalls:sys_enter/ { all = $1 }
            END {
                n = split(line, kv, " ");
                for (i = 1; i <= n; i++) { p = index(kv[i], "="); f[substr(kv[i], 1, p - 1)] = substr(kv[i], p + 1) }
                d = f["deliveries"] / 1000;
                if (d <= 0) { printf "| %s %s | run failed | | | | | | | |\n", proto, flow; exit }
                printf "| %s %s | %.2f M | %s %% | %.2f | %.2f | %.2f | %.2f | %.2f | %s %% |\n", proto, flow,
                    f["deliveries_per_s"] / 1e6, f["srv_cpu_pct"], ew / d, f["srv_sleeps"] / d, rv / d, sm / d,
                    all / d, f["other_cpu_pct"]
            }' "$TMP/perf.txt" >>"$table"
    done
}

# ---- main ------------------------------------------------------------------------------
if [ "$BUILD" = 1 ]; then
    make -s -j2 all bench >&2 || die "make failed"
fi
if [ ! -x "$SERVER_BIN" ] || [ ! -x ./p2pBench ]; then
    die "$SERVER_BIN and ./p2pBench are needed (make bench)"
fi
TIMEOUT=$(awk -v d="$DURATION" 'BEGIN { printf "%d", d + 60 }')
note "results in $OUT (reps $REPS, ${DURATION} s per run)"

if [ "$DO_STANDARD" = 1 ]; then
    for proto in ${PROTOS//,/ }; do
        SYSTEMS+=("p2pBench-$proto|p2p|p2pBench|--proto $proto")
    done
fi

if [ "$DO_COMPARE" = 1 ]; then
    RB_SRC=${RELAYBENCH_SRC:-}
    for d in "$ROOT/../shared/tools/relaybench" "$ROOT/../../shared/tools/relaybench" /work/shared/tools/relaybench; do
        [ -z "$RB_SRC" ] && [ -f "$d/relaybench.cpp" ] && RB_SRC=$d
    done
    [ -n "$RB_SRC" ] || die "relaybench not found: set RELAYBENCH_SRC"
    # A private build: the shared folder may be read-only, and its code is
    # not ours to commit.
    cp -r "$RB_SRC/." "$TMP/relaybench" 2>/dev/null || { mkdir -p "$TMP/relaybench" && cp -r "$RB_SRC/." "$TMP/relaybench"; }
    chmod -R u+w "$TMP/relaybench"
    make -s -C "$TMP/relaybench" relaybench >&2 || die "building relaybench failed"
    RELAYBENCH=$TMP/relaybench/relaybench
    missing=()
    command -v mosquitto >/dev/null || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
    command -v redis-server >/dev/null || missing+=(redis-server)
    command -v nats-server >/dev/null || missing+=(nats-server)
    if [ ${#missing[@]} -gt 0 ]; then
        note "installing ${missing[*]}"
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >&2 || note "apt-get install failed"
    fi
    MOSQUITTO=$(command -v mosquitto || echo /usr/sbin/mosquitto)
    SYSTEMS+=("direct|none|relaybench|--proto direct")
    [ -x "$MOSQUITTO" ] && SYSTEMS+=("mosquitto|mosquitto|relaybench|--proto mqtt")
    command -v redis-server >/dev/null && SYSTEMS+=("redis|redis|relaybench|--proto resp")
    command -v nats-server >/dev/null && SYSTEMS+=("nats|nats|relaybench|--proto nats")
    SYSTEMS+=("relaybench-p2p|p2p|relaybench|--proto p2p")
fi
if [ ${#SYSTEMS[@]} -gt 0 ]; then
    run_all
    [ "$DO_COMPARE" = 1 ] && file_relaybench_rates
fi

{
    [ -s "$RESULTS" ] && print_tables
    [ "$DO_CALLGRIND" = 1 ] && { run_callgrind; cat "$OUT/callgrind.md"; echo; }
    [ "$DO_SYSCALLS" = 1 ] && { run_syscalls; cat "$OUT/syscalls.md"; echo; }
    echo "Server: $SERVER_BIN. Machine: $(nproc) cores, $(uname -r); commit $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo ' (modified)'); $(date -u +%Y-%m-%dT%H:%MZ)"
} | tee "$OUT/tables.md"
note "results: $RESULTS; tables: $OUT/tables.md; logs: $OUT/logs"
