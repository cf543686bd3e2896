#!/bin/sh
# lint.sh - lints every man page in man/ and checks that man(1) renders it.
#
# Usage: lint.sh [PAGE...]   (default: every man/*.[1-9])
#
# For each page, mandoc -Tlint -Wwarning (when mandoc is installed) and
# groff -ww -z with the macro package the page uses (mdoc or man) must
# print nothing and succeed, and `man -l` must render it with exit status 0
# and nothing on standard error. Prints one line per page; exits 1 if any
# page failed (after checking them all).
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1

status=0
pages=${*:-$(ls man/*.[1-9] 2>/dev/null)}
if [ -z "$pages" ]; then
    echo "lint.sh: no man pages in man/" >&2
    exit 1
fi
# groff and man are required, mandoc is used when present. As root with
# apt-get, missing tools are installed (as scripts/ensure-test-deps.sh does
# for CMocka); otherwise we stop with the command to run.
missing=""
command -v groff >/dev/null 2>&1 || missing="$missing groff-base"
command -v man >/dev/null 2>&1 || missing="$missing man-db"
command -v mandoc >/dev/null 2>&1 || missing="$missing mandoc"
if [ -n "$missing" ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "lint.sh: installing$missing with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q $missing >/dev/null 2>&1 ||
        { apt-get update -q >/dev/null 2>&1; apt-get install -y -q $missing >/dev/null 2>&1; }
fi
for tool in groff man; do
    if ! command -v $tool >/dev/null 2>&1; then
        echo "lint.sh: $tool is not installed. Run:" >&2
        echo "    sudo apt-get install groff-base man-db" >&2
        exit 1
    fi
done
command -v mandoc >/dev/null 2>&1 || echo "lint.sh: mandoc not installed: linting with groff only" >&2

tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM

# check NAME OUTPUT_FILE RC: fails the page if the tool failed or spoke.
check() {
    if [ "$3" != 0 ] || [ -s "$2" ]; then
        echo "FAIL $page: $1 (exit $3)"
        sed 's/^/    /' "$2"
        ok=0
    fi
}

for page in $pages; do
    ok=1
    if grep -q '^\.Dd' "$page"; then macros=-mdoc; else macros=-man; fi

    if command -v mandoc >/dev/null 2>&1; then
        mandoc -Tlint -Wwarning "$page" >"$tmp/out" 2>&1
        check "mandoc -Tlint -Wwarning" "$tmp/out" $?
    fi

    groff -ww -z "$macros" "$page" >"$tmp/out" 2>&1
    check "groff -ww -z $macros" "$tmp/out" $?

    MANWIDTH=80 man -l "$page" >"$tmp/rendered" 2>"$tmp/out"
    check "man -l" "$tmp/out" $?
    if [ ! -s "$tmp/rendered" ]; then
        echo "FAIL $page: man -l rendered nothing"
        ok=0
    fi

    if [ "$ok" = 1 ]; then echo "ok   $page"; else status=1; fi
done
exit $status
