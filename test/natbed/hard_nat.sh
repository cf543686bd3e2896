#!/bin/sh
# hard_nat.sh - a device behind a port-randomising NAT (MASQUERADE
# --random-fully) and one behind an easy NAT: TCP hole punching cannot
# work (the NAT gives the direct connection another port than the one the
# relay saw), the attempt fails within its window, and every message
# still arrives, once and in order, through the relay.
. "$(dirname "$0")/lib.sh"
nb_init hard_nat
nb_public
nb_router ra 203.0.113.11 10.1.0 hard
nb_router rb 203.0.113.12 10.2.0 easy
nb_device da ra 10.1.0.2
nb_device db rb 10.2.0.2
nb_relay
nb_peer db b --me bob --peer alice --direct accept --job receive --count 200 --seconds 60
nb_wait_for "$NB_DIR/b.out" "registered" 10 || nb_fail "bob did not register"
before=$(nb_counter deliveries)
nb_peer da a --me alice --peer bob --direct auto --connect --job send --count 200 --interval-ms 5 \
    --wait-direct 9000
nb_wait_for "$NB_DIR/b.out" "complete 200|ERROR" 40 || nb_fail "bob did not get the 200 messages"
grep -q ERROR "$NB_DIR/b.out" && nb_fail "bob: $(grep ERROR "$NB_DIR/b.out")"
grep -q "no direct path" "$NB_DIR/a.out" || nb_fail "a direct path through a port-randomising NAT?"
nb_wait_for "$NB_DIR/a.log" "not made" 15 || nb_fail "alice's attempt never ended"
after=$(nb_counter deliveries)
[ $((after - before)) -ge 200 ] || nb_fail "the relay delivered only $((after - before)) messages"
echo "ok: no direct path through a hard NAT; $((after - before)) deliveries through the relay"
