#!/bin/sh
# static_runtime.sh - p2pServer carries its C++ runtime: ldd must list
# nothing beyond libc, libm, libpthread, the vDSO and the loader.
set -u
server=${P2P_SERVER:-./p2pServer}
[ -x "$server" ] || { echo "no server binary at $server"; exit 1; }
libs=$(ldd "$server") || { echo "ldd failed"; exit 1; }
echo "$libs"
extra=$(echo "$libs" | grep -v -E '^\s*(linux-vdso\.so|libc\.so|libm\.so|libpthread\.so|/lib64/ld-linux|/lib/ld-linux|ld-linux)' | grep -v -E '^\s*$')
# Sanitizer builds link their runtimes dynamically; only the plain build is held to this.
if [ -n "${SANITIZE:-}" ]; then
    echo "sanitizer build: not checked"
    exit 0
fi
if [ -n "$extra" ]; then
    echo "unexpected dynamic dependencies:"
    echo "$extra"
    exit 1
fi
echo "ok: only libc and the loader"
