#!/bin/sh
# py_easy_easy.sh - easy_easy.sh with the Python client on alice's side: a
# Python device (pypeer.py) behind one port-preserving NAT and a C device
# (natpeer) behind another punch a direct path through both (TCP
# simultaneous open from their relay connections' ports), and the relay
# delivers none of the 200 messages the Python device then sends: its
# deliveries counter does not move, and all 200 arrive once each, in order.
. "$(dirname "$0")/lib.sh"
nb_init py_easy_easy
command -v "$NB_PYTHON" >/dev/null 2>&1 || nb_skip "py_easy_easy needs $NB_PYTHON"
nb_two_nats easy easy
nb_bob db --count 200 --seconds 60
nb_pypeer da a --me alice --peer bob --direct auto --connect --job send --count 200 --interval-ms 20 \
    --wait-direct 15000
nb_wait_for "$NB_DIR/a.out" "direct after|no direct path" 20 || nb_fail "alice never decided"
grep -q "no direct path" "$NB_DIR/a.out" && nb_fail "no direct path between two easy NATs"
before=$(nb_counter deliveries)
nb_received 200 30
after=$(nb_counter deliveries)
[ -n "$before" ] && [ "$before" = "$after" ] ||
    nb_fail "the relay delivered $before -> $after messages during the direct transfer"
# Through the NATs, not around them: the path's far end is bob's NAT.
grep -q "over 203.0.113.12:" "$NB_DIR/a.log" || nb_fail "the path does not go to bob's public address"
made=$(grep -o "direct after [0-9]*" "$NB_DIR/a.out" | cut -d' ' -f3)
echo "ok: Python to C, direct through two easy NATs in $made ms; relay deliveries stayed at $after"
