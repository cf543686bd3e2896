#!/bin/sh
# soak.sh [SECONDS] [CLIENTS] - a soak of p2pServer under AddressSanitizer,
# UndefinedBehaviorSanitizer and LeakSanitizer: test/soak/soak.c drives
# CLIENTS clients (default 2000) for SECONDS (default 60) against one server
# on 127.0.0.1 (publishers, steady subscribers that check every message
# arrives exactly once and in order, and churners that connect, register,
# take ids over, subscribe, send, stop reading and die mid-frame). Then it
# checks that the server's descriptors and resident memory are back near
# where they were before the load, that it shuts down cleanly (exit 0), and
# that no sanitizer said anything. Exit 0 only if all of that holds. CI runs
# a short one.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
seconds=${1:-60}
clients=${2:-2000}
san=address,undefined
build=build/san-address-undefined
make --no-print-directory SANITIZE=$san "$build/p2pServer" "$build/test/soak/soak" >/dev/null ||
    { echo "soak: build failed"; exit 1; }
tmp=$(mktemp -d) || exit 1
server_pid=""
cleanup() {
    [ -n "$server_pid" ] && kill -9 "$server_pid" 2>/dev/null
    rm -rf "$tmp"
}
trap cleanup EXIT INT TERM

rss_kb() { awk '/^VmRSS:/ { print $2 }' "/proc/$1/status"; }
# listening PORT: a LISTEN socket on 127.0.0.1:PORT in /proc/net/tcp.
listening() {
    hex=$(printf '%04X' "$1")
    grep -q "^ *[0-9]*: 0100007F:$hex 00000000:0000 0A" /proc/net/tcp
}

# A small quarantine, so that freed memory shows up as freed; leaks are
# reported at exit, and any report makes the exit status non-zero.
export ASAN_OPTIONS=detect_leaks=1:quarantine_size_mb=16:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
for try in 1 2 3 4 5; do
    port=$(( 20000 + $(od -An -N2 -tu2 /dev/urandom | tr -d ' ') % 40000 ))
    "$build/p2pServer" --bind 127.0.0.1 --log-level warn "$port" 2>"$tmp/server.log" &
    server_pid=$!
    i=0
    while [ $i -lt 500 ] && ! listening "$port"; do
        kill -0 "$server_pid" 2>/dev/null || break
        sleep 0.02
        i=$((i + 1))
    done
    listening "$port" && break
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
    server_pid=""
done
[ -n "$server_pid" ] || { echo "soak: the server did not start"; cat "$tmp/server.log"; exit 1; }
rss_before=$(rss_kb "$server_pid")

"$build/test/soak/soak" --port "$port" --seconds "$seconds" --clients "$clients" \
    --pid "$server_pid" >"$tmp/soak.out" 2>"$tmp/soak.err"
soak_rc=$?
cat "$tmp/soak.out"
[ -s "$tmp/soak.err" ] && sed 's/^/  /' "$tmp/soak.err" | tail -n 20

rss_after=$(rss_kb "$server_pid")
echo "soak: server RSS ${rss_before} KiB before the load, ${rss_after} KiB after it"
kill -TERM "$server_pid"
wait "$server_pid"
server_rc=$?
server_pid=""
status=0
[ "$soak_rc" = 0 ] || { echo "soak: FAILED: the load's checks (exit $soak_rc)"; status=1; }
[ "$server_rc" = 0 ] || { echo "soak: FAILED: the server exited $server_rc"; status=1; }
# Back near the baseline: within 64 MiB (the allocator keeps freed memory
# for reuse, ASan a 16 MiB quarantine).
[ "$rss_after" -le $((rss_before + 65536)) ] ||
    { echo "soak: FAILED: resident memory stayed $((rss_after - rss_before)) KiB up"; status=1; }
if grep -E -q 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$tmp/server.log"; then
    echo "soak: FAILED: a sanitizer report:"
    grep -E -A 30 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$tmp/server.log" | head -60
    status=1
fi
[ $status = 0 ] && echo "soak: passed"
exit $status
