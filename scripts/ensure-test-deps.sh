#!/bin/sh
# ensure-test-deps.sh - makes sure what `make test` needs is on the machine.
#
# CMocka (Debian: libcmocka-dev) is required. mandoc, used to lint the man
# pages, is optional (groff is used without it) but installed where we can.
# nats-server (Debian: nats-server) runs the NATS link's and the cluster's
# tests against real servers, and stunnel (Debian: stunnel4) with the
# openssl command (Debian: openssl) the Python client's TLS tests
# (test/python/test_tls.py); they are optional too: without them those tests
# skip, saying why. As root with apt-get, missing packages are installed
# (each optional one on its own, so that one the archive lacks does not stop
# the others); otherwise we stop with the exact command to run when CMocka
# is missing, and print it for the optional ones. iptables and iproute2 (ip,
# tc) build the NAT test bed (test/natbed/); without them, or without root,
# its cases skip by name.
set -u

# Debian installs nats-server in /usr/sbin, which a user's PATH may lack;
# P2P_NATS_SERVER names another binary (test/support/nats_cluster.c).
have_nats_server() {
    [ -n "${P2P_NATS_SERVER:-}" ] || command -v nats-server >/dev/null 2>&1 ||
        [ -x /usr/sbin/nats-server ] || [ -x /usr/local/sbin/nats-server ]
}

missing=""
pkg-config --exists cmocka 2>/dev/null || missing="libcmocka-dev"
command -v pkg-config >/dev/null 2>&1 || missing="pkg-config libcmocka-dev"
optional=""
command -v mandoc >/dev/null 2>&1 || optional="mandoc"
have_nats_server || optional="$optional nats-server"
# Debian's stunnel4 installs /usr/bin/stunnel4 and /usr/bin/stunnel.
command -v stunnel4 >/dev/null 2>&1 || command -v stunnel >/dev/null 2>&1 ||
    optional="$optional stunnel4"
command -v openssl >/dev/null 2>&1 || optional="$optional openssl"
command -v iptables >/dev/null 2>&1 || [ -x /usr/sbin/iptables ] || optional="$optional iptables"
command -v ip >/dev/null 2>&1 || [ -x /usr/sbin/ip ] || optional="$optional iproute2"

[ -z "$missing$optional" ] && exit 0

if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "ensure-test-deps: installing $missing $optional with apt-get" >&2
    export DEBIAN_FRONTEND=noninteractive
    if ! apt-get install -y -q $missing $optional >/dev/null 2>&1; then
        apt-get update -q >/dev/null 2>&1
        [ -z "$missing" ] || apt-get install -y -q $missing >/dev/null 2>&1
        for package in $optional; do
            apt-get install -y -q "$package" >/dev/null 2>&1
        done
    fi
fi

if ! have_nats_server; then
    echo "make test: nats-server is not installed, so the NATS link's and the cluster's tests will be skipped." >&2
    echo "    To run them: sudo apt-get install nats-server" >&2
fi
if ! { command -v stunnel4 || command -v stunnel; } >/dev/null 2>&1 ||
    ! command -v openssl >/dev/null 2>&1; then
    echo "make test: stunnel or openssl is not installed, so the Python client's TLS tests will be skipped." >&2
    echo "    To run them: sudo apt-get install stunnel4 openssl" >&2
fi
if ! { command -v iptables || [ -x /usr/sbin/iptables ]; } >/dev/null 2>&1 ||
    ! { command -v ip || [ -x /usr/sbin/ip ]; } >/dev/null 2>&1; then
    echo "make test: iptables or iproute2 is not installed, so the NAT test bed (test/natbed) will be skipped." >&2
    echo "    To run it (as root): apt-get install iptables iproute2" >&2
fi
if ! pkg-config --exists cmocka 2>/dev/null; then
    echo "make test needs CMocka, which is not installed. Run:" >&2
    echo "    sudo apt-get install $missing" >&2
    exit 1
fi
exit 0
