#!/bin/sh
# same_lan.sh - two devices behind one NAT connect over their LAN
# candidates (the listener on the other's LAN address), with no traversal:
# the path's far end is the other device's LAN address.
. "$(dirname "$0")/lib.sh"
nb_init same_lan
nb_public
nb_router rc 203.0.113.13 10.3.0 easy
nb_device dc1 rc 10.3.0.2
nb_device dc2 rc 10.3.0.3
nb_relay
nb_bob dc2 --count 100 --seconds 60
nb_peer dc1 a --me alice --peer bob --direct auto --connect --job send --count 100 --wait-direct 15000
nb_wait_for "$NB_DIR/a.out" "direct after|no direct path" 20 || nb_fail "alice never decided"
grep -q "no direct path" "$NB_DIR/a.out" && nb_fail "no direct path on one LAN"
nb_received 100 30
grep -q "over 10.3.0.3:" "$NB_DIR/a.log" || nb_fail "the path is not over bob's LAN address: $(grep 'made in' "$NB_DIR/a.log")"
echo "ok: direct path over the LAN"
