#!/bin/sh
# coverage.sh - p2pServer(8) documents everything the server offers: every
# option that `p2pServer --help` lists has an item in OPTIONS, and every
# metric family the server can serve (each m.family call in src/server) is
# named in the page. Prints what is missing and exits 1; 0 when complete.
set -u

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root" || exit 1
page=man/p2pServer.8
[ -x ./p2pServer ] || { echo "coverage.sh: ./p2pServer is not built" >&2; exit 1; }

status=0
# mdoc spells a dash in a word as \-; undo that to compare with plain names.
items=$(grep '^\.It ' "$page" | sed 's/\\-/-/g')
options=$(./p2pServer --help | grep -o -- '--[a-z][a-z-]*' | sort -u)
[ -n "$options" ] || { echo "coverage.sh: --help lists no options" >&2; exit 1; }
for opt in $options; do
    name=${opt#--}
    if ! printf '%s\n' "$items" | grep -q -- "Fl -$name\\( \\|\$\\)"; then
        echo "coverage.sh: $page has no item for $opt" >&2
        status=1
    fi
done

text=$(sed 's/\\-/-/g; s/\\_/_/g' "$page")
families=$(grep -ho 'm\.family("[a-z0-9_]*"' src/server/*.cpp | sed 's/.*("//; s/"$//' | sort -u)
[ -n "$families" ] || { echo "coverage.sh: no metric families found in src/server" >&2; exit 1; }
for fam in $families; do
    if ! printf '%s\n' "$text" | grep -q -- "$fam"; then
        echo "coverage.sh: $page does not name the metric $fam" >&2
        status=1
    fi
done
n_opt=$(printf '%s\n' "$options" | wc -l)
n_fam=$(printf '%s\n' "$families" | wc -l)
[ $status = 0 ] && echo "ok   $n_opt options and $n_fam metric families documented"
exit $status
