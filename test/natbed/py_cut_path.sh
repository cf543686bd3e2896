#!/bin/sh
# py_cut_path.sh - cut_path.sh with the Python client receiving: a C device
# (natpeer) sends 3000 numbered messages to a Python device (pypeer.py)
# over a direct path through two easy NATs, and the path is cut mid-stream
# (a drop rule on alice's NAT for everything between the two public
# addresses); both fall back to the relay by themselves, and the Python
# device receives every message exactly once, in order.
. "$(dirname "$0")/lib.sh"
nb_init py_cut_path
command -v "$NB_PYTHON" >/dev/null 2>&1 || nb_skip "py_cut_path needs $NB_PYTHON"
nb_two_nats easy easy
KA=500
nb_pypeer db b --me bob --peer alice --direct accept --job receive --keepalive $KA --count 3000 --seconds 90
nb_wait_for "$NB_DIR/b.out" "registered" 10 || nb_fail "bob did not register"
nb_peer da a --me alice --peer bob --direct auto --connect --keepalive $KA --job send --count 3000 \
    --interval-ms 3 --wait-direct 15000
nb_wait_for "$NB_DIR/a.out" "direct after|no direct path" 20 || nb_fail "alice never decided"
grep -q "no direct path" "$NB_DIR/a.out" && nb_fail "no direct path to cut"
nb_wait_for "$NB_DIR/b.out" "path direct" 10 || nb_fail "the Python device never saw the path"
nb_wait_for "$NB_DIR/b.out" "got 500" 30 || nb_fail "bob did not get 500 messages"
nb_exec ra iptables -I FORWARD -d 203.0.113.12 -j DROP
nb_exec ra iptables -I FORWARD -s 203.0.113.12 -j DROP
nb_wait_for "$NB_DIR/a.out" "path relay" 20 || nb_fail "alice did not fall back"
nb_wait_for "$NB_DIR/b.out" "path relay" 20 || nb_fail "the Python device did not fall back"
nb_received 3000 60
echo "ok: C to Python, cut mid-stream: 3000 messages once each, in order"
