#!/bin/sh
# natbed-figures.sh - the figures of direct paths on the NAT test bed
# (test/natbed/lib.sh): not a test, nothing is asserted; run as root after
# `make tests`:
#
#   sh scripts/natbed-figures.sh [TRIALS]      (default 10)
#
#  - the success matrix: TRIALS attempts for each pair of NATs, easy/easy,
#    easy/hard, hard/hard, and two devices behind one NAT (same LAN), each
#    attempt by a fresh pair of devices (new ids, new relay connections);
#  - the time from connect_direct to a direct path (median, max), as the
#    device sees it, and the library's own count from the offer;
#  - round trip (200 echoes, median and 90th percentile) and throughput
#    (64 MiB in 8 KiB messages, until the receiver's acknowledgement) on a
#    direct path and through the relay, between two easy NATs.
# The NATs' WAN sides get 20 ms of delay each and the relay's side 30 ms
# (netem), so that the relay is a detour as it is on the Internet: a
# direct round trip is then about 40 ms, a relayed one about 100 ms. Without
# netem the figures are measured without added delay, and it says so.
set -u
NB_ROOT=$(cd "$(dirname "$0")/.." && pwd)
. "$NB_ROOT/test/natbed/lib.sh"
TRIALS=${1:-10}
nb_init figures

nb_public
nb_router ra 203.0.113.11 10.1.0 easy
nb_router rb 203.0.113.12 10.2.0 easy
nb_router rh 203.0.113.21 10.5.0 hard
nb_router rk 203.0.113.22 10.6.0 hard
nb_router rc 203.0.113.13 10.3.0 easy
nb_device da ra 10.1.0.2
nb_device db rb 10.2.0.2
nb_device dh rh 10.5.0.2
nb_device dk rk 10.6.0.2
nb_device dc1 rc 10.3.0.2
nb_device dc2 rc 10.3.0.3
delay="20 ms at each NAT, 30 ms at the relay"
for r in ra rb rh rk rc; do
    nb_delay $r 20 || { delay="none (netem unavailable)"; break; }
done
tc -n "${NB_P}pub" qdisc add dev br0 root netem delay 30ms 2>/dev/null || delay="none (netem unavailable)"
nb_relay

# trial KIND NS_A NS_B I: one attempt; prints "direct MS LIBMS" or "relay".
trial() {
    nb_peer "$3" "b$4" --me "bob$1$4" --peer "alice$1$4" --direct accept --job receive --count 1 --seconds 30
    rpid=$NB_LAST_PID
    nb_wait_for "$NB_DIR/b$4.out" "registered" 10 || { echo "error"; return; }
    nb_peer "$2" "a$4" --me "alice$1$4" --peer "bob$1$4" --direct auto --connect --job send --count 1 \
        --wait-direct 9000
    spid=$NB_LAST_PID
    nb_wait_for "$NB_DIR/a$4.out" "sent 1|ERROR" 30
    kill $spid $rpid 2>/dev/null
    ms=$(sed -n 's/.* direct after \([0-9]*\)/\1/p' "$NB_DIR/a$4.out")
    lib=$(sed -n 's/.*made in \([0-9]*\) ms.*/\1/p' "$NB_DIR/a$4.log" | head -n 1)
    if [ -n "$ms" ]; then echo "direct $ms ${lib:-?}"; else echo "relay"; fi
}

echo "NAT test bed figures: $TRIALS attempts a pair; added delay: $delay"
echo
printf '%-10s %-9s %-26s %s\n' "NATs" "direct" "to the path (median/max)" "library's count from the offer (median)"
for kind in easy_easy easy_hard hard_hard same_lan; do
    case $kind in
    easy_easy) a=da b=db ;;
    easy_hard) a=da b=dh ;;
    hard_hard) a=dh b=dk ;;
    same_lan) a=dc1 b=dc2 ;;
    esac
    ok=0
    : >"$NB_DIR/times" ; : >"$NB_DIR/libtimes"
    i=1
    while [ $i -le "$TRIALS" ]; do
        r=$(trial "$kind" $a $b "$kind$i")
        case $r in
        direct*) ok=$((ok + 1)); echo "$r" | cut -d' ' -f2 >>"$NB_DIR/times"; echo "$r" | cut -d' ' -f3 >>"$NB_DIR/libtimes" ;;
        esac
        i=$((i + 1))
    done
    med=$(sort -n "$NB_DIR/times" | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print "-"}')
    max=$(sort -n "$NB_DIR/times" | tail -n 1)
    lmed=$(sort -n "$NB_DIR/libtimes" | awk '{v[NR]=$1} END {if (NR) print v[int((NR+1)/2)]; else print "-"}')
    printf '%-10s %-9s %-26s %s\n' "$kind" "$ok/$TRIALS" "${med} / ${max:--} ms" "$lmed ms"
done

echo
echo "Between two easy NATs:"
printf '%-8s %-28s %s\n' "path" "round trip median / p90" "throughput (64 MiB, 8 KiB messages)"
for mode in auto off; do
    nb_peer db "rb-$mode" --me "bobr$mode" --peer "alicer$mode" --direct "$( [ $mode = auto ] && echo accept || echo off)" \
        --job receive --count 0 --seconds 120
    rp=$NB_LAST_PID
    nb_wait_for "$NB_DIR/rb-$mode.out" "registered" 10
    nb_peer da "ra-$mode" --me "alicer$mode" --peer "bobr$mode" --direct $mode --job rtt --count 200 --wait-direct 9000
    nb_wait_for "$NB_DIR/ra-$mode.out" " rtt |ERROR" 60
    rtt=$(sed -n 's/.* rtt \([0-9]*\) \([0-9]*\)/\1 \2/p' "$NB_DIR/ra-$mode.out")
    nb_peer da "ba-$mode" --me "alicer$mode" --peer "bobr$mode" --direct $mode --job bulk --bytes 67108864 \
        --size 8192 --wait-direct 9000
    nb_wait_for "$NB_DIR/ba-$mode.out" " bulk |ERROR" 120
    bulk=$(sed -n 's/.* bulk \([0-9]*\) \([0-9]*\)/\1 \2/p' "$NB_DIR/ba-$mode.out")
    kill $rp 2>/dev/null
    label=$([ $mode = auto ] && echo direct || echo relay)
    med=$(echo "$rtt" | awk '{printf "%d / %d us", $1, $2}')
    thr=$(echo "$bulk" | awk '{ if ($2 > 0) printf "%.1f MB/s (%d ms)", $1 / $2 / 1000, $2; else print "-" }')
    printf '%-8s %-28s %s\n' "$label" "$med" "$thr"
done
