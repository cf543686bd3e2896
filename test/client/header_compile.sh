#!/bin/sh
# header_compile.sh - include/stupidp2p.h compiles alone, as C99 and C11
# and as C++ (98, 11, 20), with -Wall -Wextra -pedantic -Werror, with and
# without the legacy _log macro; and its constants keep the original's
# values in C and in C++.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
CC=${CC:-cc}
CXX=${CXX:-c++}
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
status=0

cat >"$tmp/alone.c" <<'END'
#include "stupidp2p.h"
END
cat >"$tmp/values.c" <<'END'
#include "stupidp2p.h"
/* Compile-time checks that work in C99 and C++98 alike. */
typedef char check_commond[(uint32_t)STUPID_P2P_ERROR_COMMOND == 0x80000001u ? 1 : -1];
typedef char check_bad_param[(uint32_t)STUPID_P2P_BAD_PARAM == 0x80000002u ? 1 : -1];
typedef char check_memory[(uint32_t)STUPID_P2P_MEMORY_ERROR == 0x80000003u ? 1 : -1];
typedef char check_restarting[(uint32_t)STUPID_P2P_RESTARTING == 0x80000004u ? 1 : -1];
typedef char check_net[(uint32_t)STUPID_P2P_NET_ERROR == 0x80000005u ? 1 : -1];
typedef char check_alias[STUPID_P2P_ERROR_COMMAND == STUPID_P2P_ERROR_COMMOND ? 1 : -1];
typedef char check_negative[STUPID_P2P_ERROR_COMMOND < 0 ? 1 : -1];
#if !defined(__cplusplus) || __cplusplus >= 201103L
#define HAVE_LOG 1
#endif
int use(void);
int use(void)
{
    int32_t (*f)(const uint8_t *, const int32_t) = stupid_p2p_init;
    recv_data_buf_t *(*g)(const int32_t) = stupid_p2p_recv_data;
    int32_t ret = STUPID_P2P_NO_ERROR;
    if (ret == STUPID_P2P_ERROR_COMMOND) /* no sign-compare warning */
        ret = 1;
#ifdef HAVE_LOG
    _log("%d\n", (int)ret);
#endif
    return f != 0 && g != 0;
}
END

run() {
    if ! "$@" >"$tmp/out" 2>&1; then
        echo "FAIL: $*"
        sed 's/^/    /' "$tmp/out"
        status=1
    else
        echo "ok:   $*"
    fi
}

for std in c99 c11; do
    for f in alone values; do
        run $CC -std=$std -Wall -Wextra -pedantic -Werror -I"$root/include" -fsyntax-only -x c "$tmp/$f.c"
    done
    run $CC -std=$std -Wall -Wextra -pedantic -Werror -DSTUPID_P2P_NO_LEGACY_LOG -I"$root/include" -fsyntax-only -x c "$tmp/alone.c"
done
if command -v "$CXX" >/dev/null 2>&1; then
    for std in c++98 c++11 c++20; do
        for f in alone values; do
            run "$CXX" -std=$std -Wall -Wextra -pedantic -Werror -I"$root/include" -fsyntax-only -x c++ "$tmp/$f.c"
        done
    done
else
    echo "FAIL: no C++ compiler ($CXX)"
    status=1
fi
# The legacy macro can be switched off and the name is then free.
cat >"$tmp/nolog.c" <<'END'
#define STUPID_P2P_NO_LEGACY_LOG
#include "stupidp2p.h"
static int _log(int x) { return x; }
int f(void);
int f(void) { return _log(1); }
END
run $CC -std=c99 -Wall -Wextra -Werror -I"$root/include" -fsyntax-only -x c "$tmp/nolog.c"
exit $status
