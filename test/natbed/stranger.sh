#!/bin/sh
# stranger.sh - while alice tries for a direct path (behind a hard NAT,
# so that the attempt lasts its whole window), a stranger on her LAN
# connects to the port she listens on for the attempt and sends a proof
# it cannot have made (it does not hold the attempt's secret): alice sends
# her own proof, then closes the connection, logs it, and the messages to
# bob still arrive through the relay.
. "$(dirname "$0")/lib.sh"
nb_init stranger
command -v python3 >/dev/null 2>&1 || nb_skip "stranger needs python3 for the stranger's side"
nb_public
nb_router ra 203.0.113.11 10.1.0 hard
nb_router rb 203.0.113.12 10.2.0 easy
nb_device da ra 10.1.0.2
nb_device dx ra 10.1.0.9
nb_device db rb 10.2.0.2
nb_relay
nb_bob db --count 50 --seconds 60
nb_peer da a --me alice --peer bob --direct auto --connect --job send --count 50 --wait-direct 8000
nb_wait_for "$NB_DIR/a.log" "offering a direct path" 20 || nb_fail "alice made no offer"
port=$(sed -n 's/.*offering a direct path.*port \([0-9]*\).*/\1/p' "$NB_DIR/a.log" | head -n 1)
[ -n "$port" ] && [ "$port" != 0 ] || nb_fail "no listening port in alice's log"
# The stranger: connect, read alice's proof (38 bytes + header), send a
# made-up one, and expect the end of the connection.
nb_exec dx python3 - "$port" >"$NB_DIR/stranger.log" 2>&1 <<'PY' || nb_fail "stranger: $(cat "$NB_DIR/stranger.log")"
import socket, struct, sys
s = socket.create_connection(("10.1.0.2", int(sys.argv[1])), timeout=10)
got = b""
while len(got) < 42:
    chunk = s.recv(42 - len(got))
    if not chunk:
        sys.exit("closed before alice's proof")
    got += chunk
assert got[:5] == b"\x00\x00\x00\x26\x01", got[:5]
s.sendall(struct.pack(">I", 38) + bytes([1, 2]) + got[6:10] + b"\x11" * 32)
s.settimeout(10)
rest = s.recv(100)
if rest != b"":
    sys.exit("alice answered a bad proof with %r" % rest)
print("closed")
PY
nb_wait_for "$NB_DIR/a.log" "failed its proof" 10 || nb_fail "alice did not log the failed proof"
nb_received 50 40
echo "ok: the stranger's proof failed and its connection was closed"
