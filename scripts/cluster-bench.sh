#!/bin/sh
# cluster-bench.sh [REPS] [DURATION] - throughput across relays, beside NATS
# alone, on this machine, one workload after the other (nothing is
# asserted: the figures are for reading). Workloads, 64-byte messages:
#   fanout  one publisher, 100 subscribers of it
#   pairs   50 pairs, each client subscribed to its partner, both sending
# Systems:
#   nats          one nats-server, relaybench --proto nats (NATS alone, to
#                 its own clients)
#   cross-relay   three relays over a three-server NATS cluster, publishers
#                 on relay 0 and their subscribers on relay 1
#                 (test/cluster/cluster_bench.c)
#   one relay     one p2pServer without a cluster, relaybench --proto p2p,
#                 and cluster_bench --single (the same server, to show the
#                 two generators agree)
# Each run publishes for DURATION seconds (default 3); REPS runs (default
# 3) of each, the median shown, with the CPU (% of one core) of every
# process. relaybench is built in a temporary directory from
# $RELAYBENCH_DIR (default ../shared/tools/relaybench beside the checkout);
# without it the relaybench rows are skipped. Needs nats-server.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
reps=${1:-3}
duration=${2:-3}
rb_src=${RELAYBENCH_DIR:-$root/../shared/tools/relaybench}
nats=$(command -v nats-server || { [ -x /usr/sbin/nats-server ] && echo /usr/sbin/nats-server; })
[ -n "$nats" ] || { echo "SKIP: nats-server is not installed"; exit 77; }
make --no-print-directory p2pServer build/test/cluster/cluster_bench >/dev/null ||
    { echo "cluster-bench: build failed"; exit 1; }
tmp=$(mktemp -d) || exit 1
pids=""
cleanup() {
    for p in $pids; do kill "$p" 2>/dev/null; done
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

rb=""
if [ -f "$rb_src/Makefile" ]; then
    cp -r "$rb_src/." "$tmp/relaybench" && make -C "$tmp/relaybench" >/dev/null 2>&1 &&
        rb="$tmp/relaybench/relaybench"
fi
[ -n "$rb" ] || echo "cluster-bench: no relaybench in $rb_src (set RELAYBENCH_DIR): its rows are skipped"

listening() {
    hex=$(printf '%04X' "$1")
    grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A" /proc/net/tcp
}
# start_server NAME CMD...: runs CMD PORT on a free port; sets port, pid.
start_server() {
    name=$1
    shift
    for try in 1 2 3 4 5; do
        port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 ))
        "$@" "$port" >"$tmp/$name.log" 2>&1 &
        pid=$!
        i=0
        while [ $i -lt 250 ] && ! listening "$port"; do
            kill -0 "$pid" 2>/dev/null || break
            sleep 0.02
            i=$((i + 1))
        done
        if listening "$port"; then
            pids="$pids $pid"
            return 0
        fi
        kill "$pid" 2>/dev/null
        wait "$pid" 2>/dev/null
    done
    echo "cluster-bench: $name did not start"
    exit 1
}
stop_server() {
    kill "$1" 2>/dev/null
    wait "$1" 2>/dev/null
}
# exec: the background job's pid is the server's (its CPU, its kill).
nats_port_arg() { exec "$nats" -a 127.0.0.1 -p "$1"; }
relay_port_arg() { exec ./p2pServer --bind 127.0.0.1 --log-level warn --max-subs 100000 "$1"; }

# field KEY LINE: the value of KEY=... in a key=value line.
field() { echo "$2" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
# median of the numbers on stdin.
median() { sort -n | awk '{ v[NR] = $1 } END { if (NR) print v[int((NR + 1) / 2)]; else print "-" }'; }

out="$tmp/results"
: >"$out"
run() { # SYSTEM WORKLOAD COMMAND...: REPS runs, lines into $out
    sys=$1
    wl=$2
    shift 2
    r=0
    while [ $r -lt "$reps" ]; do
        line=$("$@" 2>>"$tmp/errors")
        echo "$sys $wl $line" >>"$out"
        r=$((r + 1))
    done
}

for wl in fanout pairs; do
    if [ $wl = fanout ]; then rbargs="fanout --subs 100"; cbargs="fanout --subs 100"
    else rbargs="pairs --pairs 50"; cbargs="pairs --pairs 50"; fi
    if [ -n "$rb" ]; then
        start_server nats nats_port_arg
        run nats $wl "$rb" $rbargs --proto nats --port "$port" --msgs 100000000 --size 64 \
            --duration "$duration" --server-pid "$pid"
        stop_server "$pid"
        start_server relay relay_port_arg
        run relay-relaybench $wl "$rb" $rbargs --proto p2p --port "$port" --msgs 100000000 \
            --size 64 --duration "$duration" --server-pid "$pid"
        stop_server "$pid"
    fi
    P2P_SERVER="$root/p2pServer" P2P_BUILD="$tmp" \
        run relay-cluster_bench $wl build/test/cluster/cluster_bench $cbargs --single --size 64 \
        --duration "$duration"
    P2P_SERVER="$root/p2pServer" P2P_BUILD="$tmp" \
        run cross-relay $wl build/test/cluster/cluster_bench $cbargs --size 64 --duration "$duration"
done

printf '\n%-22s %-7s %14s %6s  %s\n' system workload "deliveries/s" lost "cpu % (median)"
for wl in fanout pairs; do
    for sys in nats relay-relaybench relay-cluster_bench cross-relay; do
        lines=$(grep "^$sys $wl " "$out")
        [ -n "$lines" ] || continue
        rate=$(echo "$lines" | while read -r l; do field deliveries_per_s "$l"; done | median)
        lost=$(echo "$lines" | while read -r l; do field lost "$l"; done | sort -n | tail -n 1)
        cpu=""
        for k in srv_cpu_pct gen_cpu_pct cpu_relay cpu_relay0 cpu_relay1 cpu_nats0 cpu_nats1 \
                 cpu_generator other_cpu_pct; do
            v=$(echo "$lines" | while read -r l; do field $k "$l"; done | median)
            [ -n "$v" ] && [ "$v" != "-" ] && cpu="$cpu $k=$v"
        done
        printf '%-22s %-7s %14s %6s %s\n' "$sys" "$wl" "$rate" "$lost" "$cpu"
    done
    n=$(grep "^nats $wl " "$out" | while read -r l; do field deliveries_per_s "$l"; done | median)
    x=$(grep "^cross-relay $wl " "$out" | while read -r l; do field deliveries_per_s "$l"; done |
        median)
    if [ -n "$n" ] && [ "$n" != "-" ] && [ -n "$x" ] && [ "$x" != "-" ]; then
        echo "$n $x" | awk -v w=$wl '{ printf "%s: cross-relay / NATS alone = %.2f\n", w, $2 / $1 }'
    fi
done
echo
echo "raw lines:"
cat "$out"
[ -s "$tmp/errors" ] && { echo "stderr:"; cat "$tmp/errors"; }
exit 0
