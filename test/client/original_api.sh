#!/bin/sh
# original_api.sh - a C program written against the ORIGINAL stupidP2P API
# (original/app.c) compiles and links with exactly
#     $CC app.c -Iinclude libstupidp2p.a -lpthread
# (no C++ runtime), and runs to completion against the server with the
# expected output. Sanitizer builds add -fsanitize=$SANITIZE: their
# library objects need the sanitizer runtime.
set -u
: "${P2P_SERVER:?}" "${P2P_LIB:?}"
CC=${CC:-cc}
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d) || exit 1
. "$root/test/client/lib.sh"
trap cleanup EXIT INT TERM

cp "$root/test/client/original/app.c" "$tmp/app.c"
ln -s "$root/include" "$tmp/include"
san=""
[ -n "${SANITIZE:-}" ] && san="-fsanitize=$SANITIZE"
(cd "$tmp" && $CC $san app.c -Iinclude "$P2P_LIB" -lpthread) >"$tmp/build.log" 2>&1 ||
    fail "the original-API program does not build: $CC app.c -Iinclude $P2P_LIB -lpthread"
[ -x "$tmp/a.out" ] || fail "no a.out"
if [ -z "$san" ] && command -v ldd >/dev/null 2>&1; then
    ldd "$tmp/a.out" | grep -q 'libstdc++' && fail "the program links libstdc++"
fi

start_server
"$tmp/a.out" 127.0.0.1 "$port" >"$tmp/app.out" 2>&1 &
app=$!
extra_pids=$app
wait_exit "$app" 30 || fail "the program did not finish"
[ "$exit_code" = 0 ] || fail "the program exited $exit_code"

x2000=$(printf '%2000s' '' | tr ' ' x)
cat >"$tmp/expected" <<END
init: ok
register ABCD: ok
check FFSS before it registers: ok
register FFSS: ok
check FFSS: ok
subscribe FFSS: ok
subscribe ABCD: ok
heart beat: ok
send 1: ok
send 2: ok
send 2000 bytes: ok
heart beat 1: ok
heart beat 2: ok
ABCD recv data: hello from FFSS (15 bytes)
FFSS recv data: hello from ABCD (15 bytes)
FFSS recv data: $x2000 (2000 bytes)
received: 1 2
unsubscribe: ok
unregister: ok
check ABCD after unregister: ok
done: 0 failures
END
diff "$tmp/expected" "$tmp/app.out" >"$tmp/diff.log" || fail "unexpected output (diff.log: expected vs got)"
stop_server
echo "ok: original-API program built with '$CC app.c -Iinclude libstupidp2p.a -lpthread' and ran"
