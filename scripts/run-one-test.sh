#!/bin/sh
# run-one-test.sh LOGDIR SECONDS PROGRAM - runs one test program under a
# timeout, its output in LOGDIR/NAME.log and its exit code in NAME.log.rc.
set -u
logs=$1 limit=$2 prog=$3
name=$(echo "$prog" | sed 's|.*/build/[^/]*/test/||; s|.*/build/test/||; s|.*/test/||; s|.*/scripts/||; s|/|_|g')
timeout -k 5 "$limit" "$prog" >"$logs/$name.log" 2>&1
echo $? >"$logs/$name.log.rc"
