#!/bin/sh
# easy_easy.sh - two devices, each behind its own port-preserving NAT
# (MASQUERADE), punch a direct path through both (TCP simultaneous open from
# their relay connections' ports, after the rendezvous through the relay),
# and afterwards the relay delivers none of their send_to traffic: its
# deliveries counter does not move while 200 messages go across, and all
# 200 arrive once each, in order. See lib.sh for the network (and
# py_easy_easy.sh for the case with the Python client as alice).
. "$(dirname "$0")/lib.sh"
nb_init easy_easy
nb_two_nats easy easy
nb_bob db --count 200 --seconds 60
# alice waits for the path before she sends (--wait-direct), so that the
# counter is read after the switch and before the first of the 200.
nb_alice da a --me alice --peer bob --direct auto --connect --job send --count 200 --interval-ms 20 \
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
echo "ok: direct path through two easy NATs in $made ms; relay deliveries stayed at $after$NB_ALICE_IS"
