#!/bin/sh
# lib_symbols.sh - libstupidp2p.a defines no global symbol outside the
# public stupid_p2p_* API (and the shared p2p_* wire codec from
# src/common/codec.h, and the AUTH crypto: p2p_sha256*, p2p_hmac_sha256*,
# p2p_ct_equal, p2p_auth_*, and the direct paths' proof, p2p_direct_*): internal functions are static, so an
# application's own names cannot clash with the library's. Also checks that
# every function the header declares is defined.
set -u
: "${P2P_LIB:?}"
root=$(cd "$(dirname "$0")/../.." && pwd)
command -v nm >/dev/null 2>&1 || { echo "FAIL: nm not installed"; exit 1; }
defined=$(nm -g --defined-only "$P2P_LIB" 2>/dev/null | awk 'NF == 3 { print $3 }' | sort -u)
[ -n "$defined" ] || { echo "FAIL: no symbols in $P2P_LIB"; exit 1; }
bad=$(echo "$defined" | grep -v -E '^(stupid_p2p_[a-z0-9_]+|p2p_(frame|encode|request|message|put|get|direct|link)_[a-z0-9_]+)$' |
      grep -v -E '^(p2p_sha256(_[a-z0-9_]+)?|p2p_hmac_sha256(_[a-z0-9_]+)?|p2p_ct_equal|p2p_auth_[a-z0-9_]+)$')
# Sanitizer builds add their own module constructors and globals.
if [ -n "${SANITIZE:-}" ]; then
    bad=$(echo "$bad" | grep -v -E '^(__(asan|tsan|ubsan|sanitizer)|_GLOBAL__|\.)' )
fi
status=0
if [ -n "$bad" ]; then
    echo "FAIL: symbols outside the public API:"
    echo "$bad" | sed 's/^/    /'
    status=1
fi
declared=$(grep -o -E '\bstupid_p2p_[a-z0-9_]+\(' "$root/include/stupidp2p.h" | tr -d '(' | sort -u)
for f in $declared; do
    echo "$defined" | grep -q -x "$f" || { echo "FAIL: $f declared but not defined"; status=1; }
done
[ $status = 0 ] && echo "ok: $(echo "$defined" | wc -l) public symbols, nothing else"
exit $status
