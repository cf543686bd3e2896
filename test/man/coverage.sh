#!/bin/sh
# coverage.sh - the man pages document every option: each long option that
# `p2pServer --help` or `p2pClient --help` lists has an item in p2pServer(8)
# or p2pClient(1); and p2pServer(8) names every metric family the server
# can serve (each m.family call in src/server). Prints what is missing and
# exits 1; 0 when complete.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
page=man/p2pServer.8

status=0
n_opt=0
# Every long option BINARY's --help lists has an .It item in PAGE. mdoc
# spells a dash in a word as \-; undo that to compare with plain names.
check_options() {
    binary=$1 opt_page=$2
    [ -x "$binary" ] || { echo "coverage.sh: $binary is not built" >&2; exit 1; }
    items=$(grep '^\.It ' "$opt_page" | sed 's/\\-/-/g')
    options=$("$binary" --help 2>&1 | grep -o -- '--[a-z][a-z-]*' | sort -u)
    [ -n "$options" ] || { echo "coverage.sh: $binary --help lists no options" >&2; exit 1; }
    for opt in $options; do
        name=${opt#--}
        n_opt=$((n_opt + 1))
        if ! printf '%s\n' "$items" | grep -q -- "Fl -$name\\( \\|\$\\)"; then
            echo "coverage.sh: $opt_page has no item for $binary's $opt" >&2
            status=1
        fi
    done
}
check_options ./p2pServer "$page"
check_options ./p2pClient man/p2pClient.1

text=$(sed 's/\\-/-/g; s/\\_/_/g' "$page")
families=$(grep -ho 'm\.family("[a-z0-9_]*"' src/server/*.cpp | sed 's/.*("//; s/"$//' | sort -u)
[ -n "$families" ] || { echo "coverage.sh: no metric families found in src/server" >&2; exit 1; }
for fam in $families; do
    if ! printf '%s\n' "$text" | grep -q -- "$fam"; then
        echo "coverage.sh: $page does not name the metric $fam" >&2
        status=1
    fi
done
n_fam=$(printf '%s\n' "$families" | wc -l)
[ $status = 0 ] && echo "ok   $n_opt options and $n_fam metric families documented"
exit $status
