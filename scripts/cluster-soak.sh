#!/bin/sh
# cluster-soak.sh [SECONDS] [PUBLISHERS SUBSCRIBERS CHURNERS] - the
# cross-relay soak (test/soak/cluster_soak.c): three p2pServer relays built
# with AddressSanitizer, UndefinedBehaviorSanitizer and LeakSanitizer, over
# a three-server NATS cluster, for SECONDS (default 180) of publishers that
# move between relays, steady subscribers on every relay that check every
# message arrives exactly once and in order, and churners that take ids
# over across relays. It ends with one line per subscriber and
#   cluster soak: N sent, N delivered, 0 lost, 0 duplicated, 0 reordered, ...
# and passes only if nothing was lost, duplicated or reordered, the relays'
# views of each other emptied when the clients left, every relay exited 0
# (LeakSanitizer reports make that fail) and no sanitizer said anything.
# Needs nats-server (scripts/ensure-test-deps.sh); without it, exit 77.
# CI runs a short one.
set -u
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root" || exit 1
seconds=${1:-180}
pubs=${2:-6}
subs=${3:-9}
churners=${4:-30}
san=address,undefined
build=build/san-address-undefined
make --no-print-directory SANITIZE=$san "$build/p2pServer" "$build/test/soak/cluster_soak" \
    >/dev/null || { echo "cluster soak: build failed"; exit 1; }
logs=$(mktemp -d) || exit 1
trap 'rm -rf "$logs"' EXIT INT TERM

export ASAN_OPTIONS=detect_leaks=1:exitcode=23
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
P2P_SERVER="$root/$build/p2pServer" P2P_BUILD="$logs" \
    "$build/test/soak/cluster_soak" --seconds "$seconds" --publishers "$pubs" \
    --subscribers "$subs" --churners "$churners"
status=$?
[ $status = 77 ] && exit 77
if grep -E -l 'ERROR: (Address|Leak)Sanitizer|runtime error:' "$logs"/test-logs/servers/p2pServer-* \
    >/dev/null 2>&1; then
    echo "cluster soak: FAILED: a sanitizer report:"
    grep -E -h -A 30 'ERROR: (Address|Leak)Sanitizer|runtime error:' \
        "$logs"/test-logs/servers/p2pServer-* | head -60
    status=1
fi
exit $status
