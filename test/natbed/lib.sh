# lib.sh - the NAT test bed, sourced by test/natbed/*.sh (not run itself).
#
# Each case builds its own network of namespaces (ip netns, veth pairs and
# bridges, all made inside the namespaces: the host's own namespace is
# never touched beyond creating and deleting the test's namespaces), runs
# p2pServer and test/natbed/natpeer (or pypeer.py, the Python client's
# device) in them, and removes everything when it ends, whatever the way
# (trap on EXIT, INT, TERM; every wait bounded):
#
#   pub (203.0.113.0/24, bridge br0): the relay at 203.0.113.1
#    |-- NAT ra 203.0.113.11 -- LAN 10.1.0.0/24 -- da 10.1.0.2 (+ others)
#    |-- NAT rb 203.0.113.12 -- LAN 10.2.0.0/24 -- db 10.2.0.2
#    `-- NAT rc 203.0.113.13 -- LAN 10.3.0.0/24 -- dc1 .2, dc2 .3
#
# A NAT is iptables MASQUERADE on its WAN side ("easy": Linux keeps the
# source port when it can; "hard": --random-fully, a new port per
# connection), forwards out everything from its LAN, and lets in only what
# belongs to a connection it has seen go out (conntrack ESTABLISHED); it
# drops anything else that comes to its WAN address, as home routers do,
# rather than answering with a RST.
#
# A case that cannot build this (not root, no ip or iptables, namespaces
# or netfilter unavailable) prints "SKIP: <reason>" and exits 77, which
# scripts/run-tests.sh lists with the reason.
set -u

NB_NAME=${NB_NAME:-natbed}
NB_ROOT=${NB_ROOT:-$(cd "$(dirname "$0")/../.." && pwd)}
NB_BUILD=${P2P_BUILD:-$NB_ROOT/build}
NB_SERVER=${P2P_SERVER:-$NB_ROOT/p2pServer}
NB_PEER=${P2P_NATPEER:-$NB_BUILD/test/natbed/natpeer}
NB_PYTHON=${PYTHON:-python3}
# Alice's device: natpeer, or with NB_ALICE=python the Python client's
# (pypeer.py): the py_*.sh wrappers run a case so (see nb_alice).
NB_ALICE=${NB_ALICE:-c}
NB_ALICE_IS=""          # for a case's closing line
[ "$NB_ALICE" = python ] && NB_ALICE_IS=" (alice: the Python client)"
NB_P="p2pnb$$"          # namespace prefix: unique per run
NB_DIR=$(mktemp -d "${TMPDIR:-/tmp}/natbed.XXXXXX")
NB_NS=""                # namespaces made, for the clean-up
NB_PIDS=""              # processes started, for the clean-up
NB_RELAY_PID=""
NB_PORT=4040

nb_skip() {
    echo "SKIP: $*"
    exit 77
}

nb_fail() {
    echo "FAIL: $*"
    for f in "$NB_DIR"/*.log; do
        [ -f "$f" ] || continue
        echo "---- $(basename "$f")"
        tail -n 40 "$f"
    done
    exit 1
}

nb_cleanup() {
    for pid in $NB_PIDS; do
        kill "$pid" 2>/dev/null
    done
    for pid in $NB_PIDS; do
        # bounded: a process that ignores TERM gets KILL after a second
        n=0
        while kill -0 "$pid" 2>/dev/null && [ $n -lt 20 ]; do
            sleep 0.05
            n=$((n + 1))
        done
        kill -9 "$pid" 2>/dev/null
    done
    for ns in $NB_NS; do
        ip netns del "$ns" 2>/dev/null
    done
    rm -rf "$NB_DIR"
}

# Checks that this machine can run the bed; skips (77) with the reason.
nb_init() {
    NB_NAME=$1
    [ "$(id -u)" = 0 ] || nb_skip "$NB_NAME needs root to create network namespaces"
    command -v ip >/dev/null 2>&1 || nb_skip "$NB_NAME needs ip (iproute2): apt-get install iproute2"
    command -v iptables >/dev/null 2>&1 || nb_skip "$NB_NAME needs iptables: apt-get install iptables"
    [ -x "$NB_SERVER" ] || nb_skip "$NB_NAME: no p2pServer at $NB_SERVER (run make)"
    [ -x "$NB_PEER" ] || nb_skip "$NB_NAME: no natpeer at $NB_PEER (run make tests)"
    [ "$NB_ALICE" != python ] || command -v "$NB_PYTHON" >/dev/null 2>&1 ||
        nb_skip "$NB_NAME with the Python client needs $NB_PYTHON"
    trap nb_cleanup EXIT
    trap 'exit 1' INT TERM
    ip netns add "${NB_P}probe" 2>/dev/null || nb_skip "$NB_NAME: cannot create a network namespace here"
    NB_NS="${NB_P}probe"
    ip netns exec "${NB_P}probe" iptables -t nat -A POSTROUTING -j MASQUERADE 2>/dev/null ||
        nb_skip "$NB_NAME: iptables NAT does not work in a namespace here (no netfilter?)"
    ip netns del "${NB_P}probe"
    NB_NS=""
}

# nb_ns NAME: a namespace with its loopback up.
nb_ns() {
    ip netns add "$NB_P$1" || nb_fail "ip netns add $NB_P$1"
    NB_NS="$NB_NS $NB_P$1"
    ip -n "$NB_P$1" link set lo up
}

nb_exec() {
    ns=$1
    shift
    ip netns exec "$NB_P$ns" "$@"
}

# The public network: a bridge with the relay's address.
nb_public() {
    nb_ns pub
    ip -n "${NB_P}pub" link add br0 type bridge
    ip -n "${NB_P}pub" addr add 203.0.113.1/24 dev br0
    ip -n "${NB_P}pub" link set br0 up
}

# nb_router NAME WAN_IP LAN_PREFIX easy|hard: a NAT between pub and its own
# LAN bridge (LAN_PREFIX.1/24).
nb_router() {
    name=$1 wan=$2 lan=$3 kind=$4
    nb_ns "$name"
    ip -n "$NB_P$name" link add wan0 type veth peer name "w-$name" netns "${NB_P}pub" ||
        nb_fail "veth for $name"
    ip -n "${NB_P}pub" link set "w-$name" master br0 up
    ip -n "$NB_P$name" addr add "$wan/24" dev wan0
    ip -n "$NB_P$name" link set wan0 up
    ip -n "$NB_P$name" link add br0 type bridge
    ip -n "$NB_P$name" addr add "$lan.1/24" dev br0
    ip -n "$NB_P$name" link set br0 up
    nb_exec "$name" sysctl -qw net.ipv4.ip_forward=1
    random=""
    [ "$kind" = hard ] && random="--random-fully"
    nb_exec "$name" iptables -t nat -A POSTROUTING -o wan0 -j MASQUERADE $random || nb_fail "MASQUERADE in $name"
    nb_exec "$name" iptables -P FORWARD DROP
    nb_exec "$name" iptables -A FORWARD -i br0 -o wan0 -j ACCEPT
    # A switch between the LAN's devices: where br_netfilter hands bridged
    # frames to iptables, they must pass too.
    nb_exec "$name" iptables -A FORWARD -i br0 -o br0 -j ACCEPT
    nb_exec "$name" iptables -A FORWARD -i wan0 -o br0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    nb_exec "$name" iptables -A INPUT -i wan0 -m conntrack --ctstate ESTABLISHED,RELATED -j ACCEPT
    nb_exec "$name" iptables -A INPUT -i wan0 -j DROP
}

# nb_device NAME ROUTER IP: a device on the router's LAN.
nb_device() {
    name=$1 router=$2 ip4=$3
    nb_ns "$name"
    ip -n "$NB_P$name" link add eth0 type veth peer name "l-$name" netns "$NB_P$router" ||
        nb_fail "veth for $name"
    ip -n "$NB_P$router" link set "l-$name" master br0 up
    ip -n "$NB_P$name" addr add "$ip4/24" dev eth0
    ip -n "$NB_P$name" link set eth0 up
    gw=$(echo "$ip4" | sed 's/\.[0-9]*$/.1/')
    ip -n "$NB_P$name" route add default via "$gw"
}

# nb_delay ROUTER MS: adds MS of delay to what leaves the router's WAN side
# (netem); returns 1 when netem is not available.
nb_delay() {
    ip -n "$NB_P$1" link set wan0 up
    tc -n "$NB_P$1" qdisc add dev wan0 root netem delay "${2}ms" 2>/dev/null
}

# The relay in pub, its log in relay.log; waits until it listens.
nb_relay() {
    ip netns exec "${NB_P}pub" "$NB_SERVER" --bind 203.0.113.1 --log-level debug "$NB_PORT" \
        >"$NB_DIR/relay.log" 2>&1 &
    NB_RELAY_PID=$!
    NB_PIDS="$NB_PIDS $NB_RELAY_PID"
    nb_wait_for "$NB_DIR/relay.log" "listening" 10 || nb_fail "the relay did not start"
}

# nb_peer NS NAME ARGS...: natpeer in NS, stdout in NAME.out, stderr in
# NAME.log; sets NB_LAST_PID.
nb_peer() {
    ns=$1 name=$2
    shift 2
    ip netns exec "$NB_P$ns" "$NB_PEER" --server 203.0.113.1 --port "$NB_PORT" "$@" \
        >"$NB_DIR/$name.out" 2>"$NB_DIR/$name.log" &
    NB_LAST_PID=$!
    NB_PIDS="$NB_PIDS $NB_LAST_PID"
}

# nb_pypeer NS NAME ARGS...: the Python client's device (pypeer.py, the
# same options and output lines as natpeer) in NS, stdout in NAME.out,
# stderr in NAME.log; sets NB_LAST_PID.
nb_pypeer() {
    ns=$1 name=$2
    shift 2
    ip netns exec "$NB_P$ns" env PYTHONPATH="$NB_ROOT/src/client/python" "$NB_PYTHON" \
        "$NB_ROOT/test/natbed/pypeer.py" --server 203.0.113.1 --port "$NB_PORT" "$@" \
        >"$NB_DIR/$name.out" 2>"$NB_DIR/$name.log" &
    NB_LAST_PID=$!
    NB_PIDS="$NB_PIDS $NB_LAST_PID"
}

# nb_alice NS NAME ARGS...: alice's device, natpeer or (NB_ALICE=python)
# pypeer.py, as nb_peer and nb_pypeer run them.
nb_alice() {
    if [ "$NB_ALICE" = python ]; then
        nb_pypeer "$@"
    else
        nb_peer "$@"
    fi
}

# nb_two_nats KIND_A KIND_B: pub and the relay, alice's device da behind
# NAT ra (KIND_A: easy or hard), bob's db behind rb (KIND_B).
nb_two_nats() {
    nb_public
    nb_router ra 203.0.113.11 10.1.0 "$1"
    nb_router rb 203.0.113.12 10.2.0 "$2"
    nb_device da ra 10.1.0.2
    nb_device db rb 10.2.0.2
    nb_relay
}

# nb_bob NS ARGS...: bob, receiving from alice in NS (job receive, output
# b.out, log b.log), registered before this returns.
nb_bob() {
    ns=$1
    shift
    nb_peer "$ns" b --me bob --peer alice --direct accept --job receive "$@"
    nb_wait_for "$NB_DIR/b.out" "registered" 10 || nb_fail "bob did not register"
}

# nb_received N SECONDS: bob got all N messages, once each and in order.
nb_received() {
    nb_wait_for "$NB_DIR/b.out" "complete $1|ERROR" "$2" || nb_fail "bob did not get the $1 messages"
    grep -q ERROR "$NB_DIR/b.out" && nb_fail "bob: $(grep ERROR "$NB_DIR/b.out")"
    return 0
}

# nb_wait_for FILE PATTERN SECONDS: 0 once a line matches (grep -E), 1 when
# the time is up.
nb_wait_for() {
    end=$(( $(date +%s) + $3 ))
    while [ "$(date +%s)" -le "$end" ]; do
        grep -Eq "$2" "$1" 2>/dev/null && return 0
        sleep 0.05
    done
    return 1
}

# nb_counter NAME: the relay's counter NAME (as its SIGUSR1 line writes
# it, e.g. deliveries), fresh.
nb_counter() {
    before=$(grep -c "counters:" "$NB_DIR/relay.log")
    kill -USR1 "$NB_RELAY_PID"
    n=0
    while [ "$(grep -c "counters:" "$NB_DIR/relay.log")" -le "$before" ] && [ $n -lt 200 ]; do
        sleep 0.02
        n=$((n + 1))
    done
    grep "counters:" "$NB_DIR/relay.log" | tail -n 1 | tr ' ' '\n' | sed -n "s/^$1=//p"
}

nb_now_ms() {
    date +%s%3N
}
