#!/bin/sh
# p2pclient_pipes.sh - p2pClient driven through pipes: two clients, lines
# in, "recv data: ..." lines out (and nothing else on standard output),
# a clean exit at the end of input and on "quit"; received bytes that are
# not printable text escaped (\xNN), never raw; then --help, usage errors
# (a device chatting with itself among them, refused before connecting), a
# refused connection (said so, with errno's words) and a device that never
# comes online, each with its documented exit status.
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
# Terminal escapes, a tab, a backslash, a C1 control (U+009B), a bidi
# override (U+202E) and a byte that is not UTF-8 come out as \xNN; UTF-8
# text (e-acute, a check mark) passes.
printf 'esc \033[31mred\033[0m caf\303\251 \342\234\223 back\\slash tab\there c1\302\233 bidi\342\200\256 bad\377\n' >&3
printf 'hi alice\r\n' >&4
wait_for "$tmp/b.out" "recv data: esc" 10 || fail "bob did not receive"
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
printf 'recv data: esc \\x1b[31mred\\x1b[0m caf\303\251 \342\234\223 back\\\\slash tab\\x09here c1\\xc2\\x9b bidi\\xe2\\x80\\xae bad\\xff\n' >>"$tmp/b.expected"
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
# A device cannot chat with itself: a usage error, before connecting (the
# server would refuse the subscription, exit 1).
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m same -o same </dev/null >"$tmp/usage.out" 2>&1
[ $? = 2 ] || fail "-m same -o same did not exit 2"
grep -q "cannot chat with itself" "$tmp/usage.out" || fail "-m same -o same: no clear message"
# OTHER_ID never online: exit 4 after -w seconds.
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m lonely -o nobody -w 1 </dev/null >"$tmp/wait.out" 2>&1
[ $? = 4 ] || fail "waiting for an absent device did not exit 4"
# No server: exit 3.
stop_server
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m x -o y </dev/null >"$tmp/conn.out" 2>&1
[ $? = 3 ] || fail "no server: did not exit 3"
grep -q "cannot connect to 127.0.0.1 port $port: connection refused" "$tmp/conn.out" ||
    fail "no server: the message does not say the connection was refused"
echo "ok: p2pClient through pipes"
