#!/bin/sh
# ensure-test-deps.sh - makes sure what `make test` needs is on the machine.
#
# CMocka (Debian: libcmocka-dev) is required. mandoc, used to lint the man
# pages, is optional (groff is used without it) but installed where we can.
# As root with apt-get, missing packages are installed; otherwise we stop
# with the exact command to run.
set -u

missing=""
pkg-config --exists cmocka 2>/dev/null || missing="libcmocka-dev"
command -v pkg-config >/dev/null 2>&1 || missing="pkg-config libcmocka-dev"
optional=""
command -v mandoc >/dev/null 2>&1 || optional="mandoc"

[ -z "$missing$optional" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-deps: installing $missing $optional with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q $missing $optional >/dev/null 2>&1; then
        apt-get update -q >/dev/null 2>&1
        apt-get install -y -q $missing $optional >/dev/null 2>&1 ||
            apt-get install -y -q $missing >/dev/null 2>&1
    fi
    if pkg-config --exists cmocka 2>/dev/null; then
        exit 0
    fi
fi

if [ -n "$missing" ]; then
    echo "make test needs CMocka, which is not installed. Run:" >&2
    echo "    sudo apt-get install $missing" >&2
    exit 1
fi
exit 0
