#!/bin/sh
# service.sh - scripts/p2pServer.service passes `systemd-analyze verify`,
# with ExecStart pointed at the binary this build made (verify checks that
# it exists), and has what p2pServer(8) promises: Type=notify, a reload by
# SIGHUP, restart on failure, a raised open-file limit and the hardening.
# Skipped (exit 77) where systemd-analyze is not installed.
set -u
root=$(cd "$(dirname "$0")/../.." && pwd)
unit="$root/scripts/p2pServer.service"
: "${P2P_SERVER:=$root/p2pServer}"
for want in 'Type=notify' 'ExecReload=/bin/kill -HUP $MAINPID' 'Restart=on-failure' \
            'LimitNOFILE=1048576' 'DynamicUser=yes' 'ProtectSystem=strict' 'ProtectHome=yes' \
            'NoNewPrivileges=yes' 'PrivateTmp=yes' \
            'RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX' 'SystemCallFilter=@system-service'; do
    grep -qxF "$want" "$unit" || { echo "FAIL: $unit lacks '$want'"; exit 1; }
done
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "SKIP: systemd-analyze is not installed (Debian package systemd)"
    exit 77
fi
tmp=$(mktemp -d) || exit 1
trap 'rm -rf "$tmp"' EXIT INT TERM
sed "s|^ExecStart=/usr/local/bin/p2pServer|ExecStart=$P2P_SERVER|" "$unit" >"$tmp/p2pServer.service"
# verify runs man(1) on each Documentation= page: give it this tree's pages.
for page in "$root"/man/*.[0-9]; do
    section=${page##*.}
    mkdir -p "$tmp/man/man$section"
    ln -s "$page" "$tmp/man/man$section/"
done
export MANPATH="$tmp/man"
if ! systemd-analyze verify "$tmp/p2pServer.service" >"$tmp/verify.log" 2>&1; then
    echo "FAIL: systemd-analyze verify:"
    cat "$tmp/verify.log"
    exit 1
fi
# verify also warns without failing; the unit must be clean.
if grep -v -e '^$' "$tmp/verify.log" | grep -q .; then
    echo "FAIL: systemd-analyze verify says:"
    cat "$tmp/verify.log"
    exit 1
fi
echo "ok: systemd-analyze verify is silent on the unit"
