#!/bin/sh
# p2pclient_pipes.sh - p2pClient driven through pipes: two clients, lines
# in, "recv data: ..." lines out (and nothing else on standard output),
# a clean exit at the end of input and on "quit"; then --help, a usage
# error, a refused connection and a device that never comes online, each
# with its documented exit status.
set -u
: "${P2P_SERVER:?}" "${P2P_CLIENT:?}"
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d) || exit 1
. "$root/test/client/lib.sh"
trap cleanup EXIT INT TERM

start_server
mkfifo "$tmp/a.in" "$tmp/b.in" || fail "mkfifo"
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m alice -o bob -w 20 <"$tmp/a.in" >"$tmp/a.out" 2>"$tmp/a.err" &
a=$!
"$P2P_CLIENT" --server localhost --port "$port" --my-id bob --other-id alice -w 20 <"$tmp/b.in" >"$tmp/b.out" 2>"$tmp/b.err" &
b=$!
extra_pids="$a $b"
# Opening a FIFO for writing waits for its reader: the clients are up.
exec 3>"$tmp/a.in" 4>"$tmp/b.in"

wait_for "$tmp/a.err" "input and receive" 20 || fail "alice never got ready"
wait_for "$tmp/b.err" "input and receive" 20 || fail "bob never got ready"

printf 'hello bob\n\nsecond line, with spaces  \n' >&3
printf 'hi alice\r\n' >&4
wait_for "$tmp/b.out" "recv data: second line, with spaces  $" 10 || fail "bob did not receive"
wait_for "$tmp/a.out" "recv data: hi alice" 10 || fail "alice did not receive"

# End of input: alice exits cleanly (the original resent its last line
# forever).
exec 3>&-
wait_exit "$a" 10 || fail "alice did not exit at the end of its input"
[ "$exit_code" = 0 ] || fail "alice exited $exit_code"
# quit: bob exits cleanly, with input still open.
printf 'quit\n' >&4
wait_exit "$b" 10 || fail "bob did not exit on quit"
[ "$exit_code" = 0 ] || fail "bob exited $exit_code"
exec 4>&-

printf 'recv data: hello bob\nrecv data: second line, with spaces  \n' >"$tmp/b.expected"
printf 'recv data: hi alice\n' >"$tmp/a.expected"
diff "$tmp/b.expected" "$tmp/b.out" >"$tmp/diff.log" || fail "bob's standard output differs"
diff "$tmp/a.expected" "$tmp/a.out" >"$tmp/diff.log" || fail "alice's standard output differs"
grep -q "send data: hello bob" "$tmp/a.err" || fail "alice did not report her send"

# --help: usage on stdout, exit 0.
"$P2P_CLIENT" --help >"$tmp/help.out" 2>&1
[ $? = 0 ] || fail "--help did not exit 0"
grep -q "usage: " "$tmp/help.out" || fail "--help printed no usage"
# Usage errors: exit 2, with a message.
"$P2P_CLIENT" -s 127.0.0.1 -p 0 -m x -o y </dev/null >"$tmp/usage.out" 2>&1
[ $? = 2 ] || fail "-p 0 did not exit 2"
grep -q "bad port" "$tmp/usage.out" || fail "-p 0: no clear message"
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" </dev/null >"$tmp/usage.out" 2>&1
[ $? = 2 ] || fail "missing -m/-o did not exit 2"
# OTHER_ID never online: exit 4 after -w seconds.
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m lonely -o nobody -w 1 </dev/null >"$tmp/wait.out" 2>&1
[ $? = 4 ] || fail "waiting for an absent device did not exit 4"
# No server: exit 3.
stop_server
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m x -o y </dev/null >"$tmp/conn.out" 2>&1
[ $? = 3 ] || fail "no server: did not exit 3"
grep -q "cannot connect" "$tmp/conn.out" || fail "no server: no clear message"
echo "ok: p2pClient through pipes"
