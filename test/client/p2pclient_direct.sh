#!/bin/sh
# p2pclient_direct.sh - p2pClient --direct: two clients on 127.0.0.1 make a
# direct path (each says "path to ...: direct" on standard error), and the
# lines each sends then reach the other through it; the relay delivers
# none of them (its deliveries counter, logged on SIGUSR1, stays put).
set -u
: "${P2P_SERVER:?}" "${P2P_CLIENT:?}"
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d) || exit 1
. "$root/test/client/lib.sh"
trap cleanup EXIT INT TERM

start_server
mkfifo "$tmp/a.in" "$tmp/b.in" || fail "mkfifo"
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m alice -o bob -w 20 --direct <"$tmp/a.in" >"$tmp/a.out" 2>"$tmp/a.err" &
a=$!
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m bob -o alice -w 20 --direct <"$tmp/b.in" >"$tmp/b.out" 2>"$tmp/b.err" &
b=$!
extra_pids="$a $b"
exec 3>"$tmp/a.in" 4>"$tmp/b.in"
wait_for "$tmp/a.err" "path to bob: direct" 20 || fail "alice never got a direct path"
wait_for "$tmp/b.err" "path to alice: direct" 20 || fail "bob never got a direct path"

# The relay's deliveries counter, from a fresh SIGUSR1 line (bounded wait).
counters() {
    n=$(grep -c "counters:" "$server_log")
    kill -USR1 "$server_pid"
    _i=0
    while [ "$(grep -c "counters:" "$server_log")" -le "$n" ] && [ $_i -lt 250 ]; do
        sleep 0.02
        _i=$((_i + 1))
    done
    grep "counters:" "$server_log" | tail -n 1 | tr ' ' '\n' | sed -n 's/^deliveries=//p'
}
before=$(counters)
printf 'hello bob\nsecond\n' >&3
printf 'hi alice\n' >&4
wait_for "$tmp/b.out" "recv data: second" 10 || fail "bob did not receive"
wait_for "$tmp/a.out" "recv data: hi alice" 10 || fail "alice did not receive"
after=$(counters)
[ -n "$before" ] && [ "$before" = "$after" ] || fail "the relay delivered $before -> $after messages"
printf 'quit\n' >&3
printf 'quit\n' >&4
wait_exit "$a" 10 || fail "alice did not exit"
wait_exit "$b" 10 || fail "bob did not exit"
exec 3>&- 4>&-
printf 'recv data: hello bob\nrecv data: second\n' | diff - "$tmp/b.out" >/dev/null || fail "bob's output differs"
echo "ok: p2pClient --direct"
