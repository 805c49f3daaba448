#!/bin/sh
# SPDX-License-Identifier: MIT
#
# manifest.sh - the conformance suite is complete and cannot be fooled:
#   - every seed example listed in t/conformance/SEEDS has a row in
#     t/conformance/MANIFEST (a row's block field is N, N-M, cell N,
#     cell N-M or -);
#   - every ```c block of README has a row (seed "README", block N);
#   - every row names an example whose source examples/<program>.c exists,
#     names its seed block in a comment within its first 15 lines, and is
#     built and run by make (listed in examples/examples.am), and names an
#     expected-output file that exists and is not empty;
#   - when the seed documents are at hand (STAGE_SEEDS, or ../shared/seeds
#     beside the source tree), SEEDS is what t/seeds-index.sh makes of them.
# t/conformance.sh runs the rows; this script checks the coverage.
set -u
LC_ALL=C
export LC_ALL
top_srcdir=${top_srcdir:-.}
dir=$top_srcdir/t/conformance
tmp=$(mktemp -d "${TMPDIR:-/tmp}/manifest.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' 0
trap 'exit 99' 1 2 15
fail=0
bad() { echo "FAIL $*"; fail=$((fail + 1)); }

rows() {
    sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' \
        -e 's/[[:space:]]*|[[:space:]]*/|/g' \
        -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$1"
}
rows "$dir/MANIFEST" >"$tmp/manifest" || exit 99
rows "$dir/SEEDS" >"$tmp/seeds" || exit 99

# covers SEED BLOCK: 0 if a MANIFEST row covers that seed block.
covers() {
    awk -F'|' -v seed="$1" -v want="$2" '
        function num(s) { sub(/^cell /, "", s); return s + 0 }
        $1 != seed { next }
        {
            b = $2
            if (want == "-" || b == "-") { if (b == want) found = 1; next }
            if ((want ~ /^cell /) != (b ~ /^cell /)) next
            w = num(want); sub(/^cell /, "", b)
            n = split(b, r, "-")
            lo = r[1] + 0; hi = (n > 1 ? r[2] : r[1]) + 0
            if (w >= lo && w <= hi) found = 1
        }
        END { exit found ? 0 : 1 }
    ' "$tmp/manifest"
}

nseeds=0
while IFS='|' read -r seed block lines first; do
    nseeds=$((nseeds + 1))
    covers "$seed" "$block" || bad "$seed block $block ($first) has no MANIFEST row"
done <"$tmp/seeds"

# README code blocks.
nreadme=$(grep -c '^```c$' "$top_srcdir/README")
i=1
while [ "$i" -le "$nreadme" ]; do
    covers README "$i" || bad "README code block $i has no MANIFEST row"
    i=$((i + 1))
done

# Every row: its example and expected output.
nrows=0
while IFS='|' read -r seed block heading program expected duration notes; do
    nrows=$((nrows + 1))
    src=$top_srcdir/examples/$program.c
    if [ ! -r "$src" ]; then
        bad "$seed block $block: no $src"
        continue
    fi
    if ! sed -n 1,15p "$src" | grep -qF "${seed%.md}"; then
        bad "$seed block $block: $src does not name ${seed%.md} in its first 15 lines"
    fi
    if ! grep -Eq "examples/$program([[:space:]\\\\]|\$)" "$top_srcdir/examples/examples.am"; then
        bad "$seed block $block: examples/$program is not in examples/examples.am"
    fi
    if [ ! -s "$dir/$expected" ]; then
        bad "$seed block $block: no expected output $dir/$expected"
    fi
done <"$tmp/manifest"

# SEEDS against the seeds themselves.
seeds=${STAGE_SEEDS:-$top_srcdir/../shared/seeds}
if [ -r "$seeds/agently-stage.md" ]; then
    if sh "$top_srcdir/t/seeds-index.sh" "$seeds" >"$tmp/index" &&
        rows "$tmp/index" | cmp -s - "$tmp/seeds"; then
        echo "manifest.sh: t/conformance/SEEDS matches the seeds in $seeds"
    else
        bad "t/conformance/SEEDS differs from t/seeds-index.sh $seeds:"
        rows "$tmp/index" | diff "$tmp/seeds" - | sed -n 1,20p
    fi
else
    echo "manifest.sh: seed documents not found (STAGE_SEEDS); SEEDS taken as is"
fi

echo "manifest.sh: $nseeds seed examples, $nreadme README blocks, $nrows rows; $fail problems"
[ "$fail" -eq 0 ]
