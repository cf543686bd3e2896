#!/bin/sh
# run-tests.sh - runs the test suite and prints one closing line,
# "N passed, N failed", counting individual test cases.
#
# Usage: run-tests.sh TEST_BINARY...
# Also runs every executable test/*/*.sh script (one case each) and the
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
failures=""
for log in "$logs"/*.log; do
    [ -f "$log" ] || continue
    rc=$(cat "$log.rc" 2>/dev/null || echo 99)
    name=$(basename "$log" .log)
    # cmocka: "[  PASSED  ] N test(s)." and "[  FAILED  ] N test(s), listed below:"
    p=$(sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    f=$(sed -n 's/^\[  FAILED  \] \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
    # unittest: "Ran N tests" then "OK" or "FAILED (failures=a, errors=b)"
    if [ -z "$p" ] && grep -q '^Ran [0-9]* test' "$log"; then
        n=$(sed -n 's/^Ran \([0-9]*\) test.*/\1/p' "$log" | tail -n 1)
        bad=$(sed -n 's/^FAILED (\(.*\))/\1/p' "$log" | tr ',' '\n' |
              sed -n 's/.*\(failures\|errors\)=\([0-9]*\).*/\2/p' | awk '{s+=$1} END {print s+0}')
        p=$((n - bad)); f=$bad
    fi
    [ -z "$p" ] && p=0
    [ -z "$f" ] && f=0
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        # crashed, timed out, or a script that failed: one failure at least
        f=1
    fi
    if [ "$p" = 0 ] && [ "$f" = 0 ]; then
        p=1   # a script case that passed
    fi
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" != 0 ]; then
        failures="$failures $name"
        echo "FAIL $name (exit $rc): $log"
        tail -n 30 "$log" | sed 's/^/    /'
    else
        echo "ok   $name ($p)"
    fi
done

echo
if [ -n "$failures" ]; then
    echo "failed:$failures"
fi
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
