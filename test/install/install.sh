#!/bin/sh
# install.sh - `make install` into a temporary DESTDIR puts every file where
# p2pServer(8) says, a C program builds against the installed copy with
#     $CC app.c $(pkg-config --cflags --libs --static stupidp2p)
# and runs against the installed p2pServer, and `make uninstall` then leaves
# nothing behind (only the directories install made). Sanitizer builds add
# -fsanitize=$SANITIZE: their library objects need the sanitizer runtime.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
tmp=$(mktemp -d) || exit 1
. "$root/test/client/lib.sh"
trap cleanup EXIT INT TERM
CC=${CC:-cc}
command -v pkg-config >/dev/null 2>&1 || fail "pkg-config is not installed"

dest="$tmp/root"
prefix=/usr/local
make_args="-C $root --no-print-directory DESTDIR=$dest PREFIX=$prefix"
[ -n "${SANITIZE:-}" ] && make_args="$make_args SANITIZE=$SANITIZE"
# shellcheck disable=SC2086
make $make_args install >"$tmp/install.log" 2>&1 || fail "make install failed (install.log)"

for f in bin/p2pServer bin/p2pClient lib/libstupidp2p.a include/stupidp2p.h include/stupidP2P.h \
         share/man/man8/p2pServer.8 share/man/man7/stupidp2p.7 share/man/man3/stupidp2p.3 \
         share/man/man1/p2pClient.1 lib/pkgconfig/stupidp2p.pc; do
    [ -f "$dest$prefix/$f" ] || fail "make install did not install $prefix/$f"
done
[ -x "$dest$prefix/bin/p2pServer" ] || fail "p2pServer is not executable"

# The .pc file names the installed paths; PKG_CONFIG_SYSROOT_DIR puts the
# DESTDIR in front of them, as a packager's staging area would.
export PKG_CONFIG_PATH="$dest$prefix/lib/pkgconfig" PKG_CONFIG_SYSROOT_DIR="$dest"
flags=$(pkg-config --cflags --libs --static stupidp2p) || fail "pkg-config does not know stupidp2p"
echo "$flags" | grep -q -- '-lpthread' || fail "pkg-config --static lacks -lpthread: $flags"
want_version=$(cat "$root/VERSION")
[ "$(pkg-config --modversion stupidp2p)" = "$want_version" ] || fail "stupidp2p.pc version is not $want_version"

cat >"$tmp/app.c" <<'END'
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <stupidp2p.h>

int main(int argc, char **argv)
{
    if (argc != 3)
        return 2;
    int32_t fd = stupid_p2p_init((const uint8_t *)argv[1], atoi(argv[2]));
    if (fd < 0) {
        printf("init: %s\n", stupid_p2p_strerror(fd));
        return 1;
    }
    int32_t reg = stupid_p2p_register_device(fd, (const uint8_t *)"installed");
    int32_t alive = stupid_p2p_check_device_alive(fd, (const uint8_t *)"installed");
    stupid_p2p_deinit(fd);
    printf("register: %s; alive: %s\n", stupid_p2p_strerror(reg), stupid_p2p_strerror(alive));
    return reg == STUPID_P2P_NO_ERROR && alive == STUPID_P2P_NO_ERROR ? 0 : 1;
}
END
san=""
[ -n "${SANITIZE:-}" ] && san="-fsanitize=$SANITIZE"
# shellcheck disable=SC2086
(cd "$tmp" && $CC $san app.c $flags -o app) >"$tmp/build.log" 2>&1 ||
    fail "a program does not build with: $CC app.c $flags"

P2P_SERVER="$dest$prefix/bin/p2pServer"
start_server
"$tmp/app" 127.0.0.1 "$port" >"$tmp/app.out" 2>&1 &
app=$!
extra_pids=$app
wait_exit "$app" 30 || fail "the program did not finish"
[ "$exit_code" = 0 ] || fail "the program against the installed copy exited $exit_code"
stop_server

# shellcheck disable=SC2086
make $make_args uninstall >"$tmp/uninstall.log" 2>&1 || fail "make uninstall failed"
left=$(find "$dest" -type f -o -type l)
[ -z "$left" ] || fail "make uninstall left: $left"
echo "ok: installed, built with pkg-config --static, ran, uninstalled without a trace"
