#!/bin/sh
# py_hard_nat.sh - hard_nat.sh with the Python client behind the
# port-randomising NAT: its attempt fails within its window (reported as
# "not made"), and every one of its 200 messages still arrives at the C
# device, once and in order, through the relay.
. "$(dirname "$0")/lib.sh"
nb_init py_hard_nat
command -v "$NB_PYTHON" >/dev/null 2>&1 || nb_skip "py_hard_nat needs $NB_PYTHON"
nb_two_nats hard easy
nb_bob db --count 200 --seconds 60
before=$(nb_counter deliveries)
nb_pypeer da a --me alice --peer bob --direct auto --connect --job send --count 200 --interval-ms 5 \
    --wait-direct 9000
nb_received 200 40
grep -q "no direct path" "$NB_DIR/a.out" || nb_fail "a direct path through a port-randomising NAT?"
nb_wait_for "$NB_DIR/a.log" "not made" 15 || nb_fail "alice's attempt never ended"
after=$(nb_counter deliveries)
[ $((after - before)) -ge 200 ] || nb_fail "the relay delivered only $((after - before)) messages"
echo "ok: no direct path from Python through a hard NAT; $((after - before)) deliveries through the relay"
