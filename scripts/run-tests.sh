#!/bin/sh
# run-tests.sh - runs the test suite and prints one closing line,
# "N passed, N failed, N skipped", counting individual test cases, after
# the list of skipped cases with the reason each gave (a "SKIP: ..." line
# before CMocka's "[  SKIPPED ]", or unittest's "skipped '...'").
#
# Usage: run-tests.sh TEST_BINARY...
# Also runs every executable test/*/*.sh script (one case each; exit 77
# with a "SKIP: reason" line means it cannot run here) and the
# Python unittest suite in test/python. Each binary or script gets its own
# process, log file (build/.../test-logs/NAME.log) and a timeout, and up to
# P2P_TEST_JOBS (default 4) run at once: integration tests use ephemeral
# ports and are safe to run in parallel.
set -u

root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
build=${P2P_BUILD:-$root/build}
logs="$build/test-logs"
rm -rf "$logs"
mkdir -p "$logs"
jobs=${P2P_TEST_JOBS:-4}
limit=${P2P_TEST_TIMEOUT:-300}

# Everything to run, one per line.
list="$logs/list"
: >"$list"
for t in "$@"; do echo "$t" >>"$list"; done
for s in test/*/*.sh; do
    [ -x "$s" ] && echo "$root/$s" >>"$list"
done
if [ -d test/python ] && ls test/python/test_*.py >/dev/null 2>&1; then
    echo "$root/scripts/run-python-tests.sh" >>"$list"
fi

xargs -P "$jobs" -n 1 sh "$root/scripts/run-one-test.sh" "$logs" "$limit" <"$list"

passed=0
failed=0
skipped=0
failures=""
skips="$logs/skipped"
: >"$skips"
for log in "$logs"/*.log; do
    [ -f "$log" ] || continue
    rc=$(cat "$log.rc" 2>/dev/null || echo 99)
    name=$(basename "$log" .log)
    # cmocka: "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s), listed below:"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    # cmocka: "[  SKIPPED ] N test(s), listed below:"; each skipped case
    # as "[  SKIPPED ] name", its reason on a "SKIP:" line before it.
    s=$(sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    if [ -n "$s" ]; then
        awk -v t="$name" '/^SKIP: / { why = substr($0, 7) }
            /^\[  SKIPPED \] [A-Za-z_]/ && !seen[$4]++ { print "  " t ": " $4 " (" why ")"; why = "" }' \
            "$log" >>"$skips"
    fi
    # unittest: "Ran N tests" then "OK", "OK (skipped=s)" or
    # "FAILED (failures=a, errors=b, skipped=s)"; -v names each skip.
    if [ -z "$p" ] && grep -q '^Ran [0-9]* test' "$log"; then
        n=$(sed -n 's/^Ran \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
        summary=$(sed -n 's/^\(OK\|FAILED\) (\(.*\))/\2/p' "$log" | tail -n 1)
        bad=$(echo "$summary" | tr ',' '\n' |
              sed -n 's/.*\(failures\|errors\)=\([0-9]*\).*/\2/p' | awk '{s+=$1} END {print s+0}')
        s=$(echo "$summary" | tr ',' '\n' | sed -n 's/.*skipped=\([0-9]*\).*/\1/p')
        [ -z "$s" ] && s=0
        p=$((n - bad - s)); f=$bad
        sed -n "s/^\(test[A-Za-z0-9_]*\) (\(.*\)) \.\.\. skipped '\(.*\)'\$/  $name: \2.\1 (\3)/p" \
            "$log" >>"$skips"
    fi
    [ -z "$s" ] && s=0
    [ -z "$p" ] && p=0
    [ -z "$f" ] && f=0
    if [ "$rc" = 77 ] && [ "$p" = 0 ] && [ "$f" = 0 ]; then
        # A script that cannot run here (exit 77, as automake's tests do),
        # with its reason on a "SKIP:" line.
        s=1
        rc=0
        why=$(sed -n 's/^SKIP: //p' "$log" | tail -n 1)
        echo "  $name (${why:-no reason given})" >>"$skips"
    fi
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        # crashed, timed out, or a script that failed: one failure at least
        f=1
    fi
    if [ "$p" = 0 ] && [ "$f" = 0 ] && [ "$s" = 0 ]; then
        p=1   # a script case that passed
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    skipped=$((skipped + s))
    if [ "$f" != 0 ]; then
        failures="$failures $name"
        echo "FAIL $name (exit $rc): $log"
        tail -n 30 "$log" | sed 's/^/    /'
    else
        if [ "$s" = 0 ]; then echo "ok   $name ($p)"; else echo "ok   $name ($p, $s skipped)"; fi
    fi
done

echo
if [ -s "$skips" ]; then
    echo "skipped, with the reason each test gave:"
    cat "$skips"
fi
if [ -n "$failures" ]; then
    echo "failed:$failures"
fi
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
