#!/bin/sh
# cut_path.sh - the direct path between two easy NATs is cut mid-stream (a
# drop rule on alice's NAT for everything between the two public
# addresses, the relay's traffic untouched): alice falls back to the relay
# by herself within three keepalive intervals (500 ms here) and a second
# of slack, and bob receives every one of the 3000 messages exactly once,
# in order (what went unacknowledged on the dead path is sent again
# through the relay, duplicates dropped by sequence number).
. "$(dirname "$0")/lib.sh"
nb_init cut_path
nb_two_nats easy easy
KA=500
nb_bob db --keepalive $KA --count 3000 --seconds 90
nb_peer da a --me alice --peer bob --direct auto --connect --keepalive $KA --job send --count 3000 \
    --interval-ms 3 --wait-direct 15000
nb_wait_for "$NB_DIR/a.out" "direct after|no direct path" 20 || nb_fail "alice never decided"
grep -q "no direct path" "$NB_DIR/a.out" && nb_fail "no direct path to cut"
nb_wait_for "$NB_DIR/b.out" "got 500" 30 || nb_fail "bob did not get 500 messages"
cut=$(nb_now_ms)
nb_exec ra iptables -I FORWARD -d 203.0.113.12 -j DROP
nb_exec ra iptables -I FORWARD -s 203.0.113.12 -j DROP
nb_wait_for "$NB_DIR/a.out" "path relay" 20 || nb_fail "alice did not fall back"
fell=$(grep "path relay" "$NB_DIR/a.out" | head -n 1 | cut -d' ' -f1)
took=$((fell - cut))
[ $took -le $((3 * KA + 1000)) ] || nb_fail "alice fell back $took ms after the cut (bound $((3 * KA)) ms + 1 s)"
nb_received 3000 60
echo "ok: fell back $took ms after the cut; 3000 messages once each, in order"
