#!/bin/sh
# p2pclient_token.sh - p2pClient --token-file through pipes, against a
# server with an auth file whose verifiers p2pServer --hash-token made: two
# clients authenticate (one token file ending in CR LF, one readable by
# others: a warning, not an error) and exchange lines; a wrong token is
# refused (exit 1, "not authorized"); a missing, empty or malformed token
# file is a usage error (exit 2) before connecting; a server without an
# auth file cannot authenticate (exit 1, said so). No token ever appears
# on the clients' output or error.
set -u
: "${P2P_SERVER:?}" "${P2P_CLIENT:?}"
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d) || exit 1
. "$root/test/client/lib.sh"
trap cleanup EXIT INT TERM

token_a=AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8
token_b=ICEiIyQlJicoKSorLC0uLzAxMjM0NTY3ODk6Ozw9Pj8
umask 077
printf '%s\n' "$token_a" | "$P2P_SERVER" --hash-token alice >"$tmp/auth" || fail "--hash-token alice"
printf '%s\n' "$token_b" | "$P2P_SERVER" --hash-token bob >>"$tmp/auth" || fail "--hash-token bob"
printf '%s\nthe second line is not read\n' "$token_a" >"$tmp/alice.token"
printf '%s\r\n' "$token_b" >"$tmp/bob.token"
chmod 644 "$tmp/alice.token"

start_server --auth-file "$tmp/auth"
mkfifo "$tmp/a.in" "$tmp/b.in" || fail "mkfifo"
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m alice -o bob -w 20 --token-file "$tmp/alice.token" \
    <"$tmp/a.in" >"$tmp/a.out" 2>"$tmp/a.err" &
a=$!
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m bob -o alice -w 20 --token-file "$tmp/bob.token" \
    <"$tmp/b.in" >"$tmp/b.out" 2>"$tmp/b.err" &
b=$!
extra_pids="$a $b"
exec 3>"$tmp/a.in" 4>"$tmp/b.in"
wait_for "$tmp/a.err" "input and receive" 20 || fail "alice never got ready"
wait_for "$tmp/b.err" "input and receive" 20 || fail "bob never got ready"
grep -q "warning: token file $tmp/alice.token is readable by others" "$tmp/a.err" ||
    fail "no warning about a token file others may read"
grep -q "warning" "$tmp/b.err" && fail "a warning about a private token file"
printf 'hello bob\n' >&3
printf 'hi alice\n' >&4
wait_for "$tmp/b.out" "recv data: hello bob" 10 || fail "bob did not receive"
wait_for "$tmp/a.out" "recv data: hi alice" 10 || fail "alice did not receive"
exec 3>&- 4>&-
wait_exit "$a" 10 || fail "alice did not exit at the end of its input"
[ "$exit_code" = 0 ] || fail "alice exited $exit_code"
wait_exit "$b" 10 || fail "bob did not exit at the end of its input"
[ "$exit_code" = 0 ] || fail "bob exited $exit_code"
[ "$(grep -c 'authenticated as "alice"' "$server_log")" = 1 ] || fail "alice did not authenticate once"
[ "$(grep -c 'authenticated as "bob"' "$server_log")" = 1 ] || fail "bob did not authenticate once"

# A wrong token: refused once, exit 1.
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m alice -o bob -w 1 --token-file "$tmp/bob.token" \
    </dev/null >"$tmp/wrong.out" 2>"$tmp/wrong.err"
[ $? = 1 ] || fail "a wrong token did not exit 1"
grep -q "register alice: not authorized" "$tmp/wrong.err" || fail "a wrong token: no clear message"
[ "$(grep -c 'AUTH as "alice" failed' "$server_log")" = 1 ] || fail "the wrong token was not tried exactly once"

# Token files that cannot be used: exit 2, before connecting.
: >"$tmp/empty.token"
printf '\nsecond\n' >"$tmp/blank.token"
printf 'two words\n' >"$tmp/space.token"
head -c 257 /dev/zero | tr '\0' x >"$tmp/long.token"
for f in missing empty blank space long; do
    "$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m alice -o bob --token-file "$tmp/$f.token" \
        </dev/null >"$tmp/$f.out" 2>"$tmp/$f.err"
    [ $? = 2 ] || fail "token file '$f' did not exit 2"
    grep -q "token file $tmp/$f.token" "$tmp/$f.err" || fail "token file '$f': no message naming it"
done
grep -q "No such file" "$tmp/missing.err" || fail "a missing token file: errno's words missing"
grep -q "is empty" "$tmp/empty.err" || fail "an empty token file: not said so"
[ "$(grep -c 'AUTH as' "$server_log")" = 1 ] || fail "a bad token file reached the server"

# A server without an auth file cannot authenticate: exit 1, said so, and
# no REGISTER in place of the AUTH (nobody holds alice there).
stop_server
start_server
"$P2P_CLIENT" -s 127.0.0.1 -p "$port" -m alice -o bob -w 1 --token-file "$tmp/alice.token" \
    </dev/null >"$tmp/noauth.out" 2>"$tmp/noauth.err"
[ $? = 1 ] || fail "a server without an auth file: did not exit 1"
grep -q "register alice: this server cannot authenticate" "$tmp/noauth.err" ||
    fail "a server without an auth file: no clear message"
grep -q 'registered "alice"\|as "alice"' "$server_log" && fail "alice was registered without AUTH"

for f in "$tmp"/*.out "$tmp"/*.err; do
    grep -q -e "$token_a" -e "$token_b" "$f" && fail "a token was printed in $(basename "$f")"
done
echo "ok: p2pClient --token-file through pipes"
