#!/bin/sh
# hard_nat.sh - a device behind a port-randomising NAT (MASQUERADE
# --random-fully) and one behind an easy NAT: TCP hole punching cannot
# work (the NAT gives the direct connection another port than the one the
# relay saw), the attempt fails within its window, and every message
# still arrives, once and in order, through the relay (py_hard_nat.sh:
# the same with the Python client as alice).
. "$(dirname "$0")/lib.sh"
nb_init hard_nat
nb_two_nats hard easy
nb_bob db --count 200 --seconds 60
before=$(nb_counter deliveries)
nb_alice da a --me alice --peer bob --direct auto --connect --job send --count 200 --interval-ms 5 \
    --wait-direct 9000
nb_received 200 40
grep -q "no direct path" "$NB_DIR/a.out" || nb_fail "a direct path through a port-randomising NAT?"
nb_wait_for "$NB_DIR/a.log" "not made" 15 || nb_fail "alice's attempt never ended"
after=$(nb_counter deliveries)
[ $((after - before)) -ge 200 ] || nb_fail "the relay delivered only $((after - before)) messages"
echo "ok: no direct path through a hard NAT; $((after - before)) deliveries through the relay$NB_ALICE_IS"
