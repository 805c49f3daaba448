#!/bin/sh
# SPDX-License-Identifier: MIT
#
# seeds-index.sh DIR - print the index of the code examples of the five
# seed documents in DIR, one line per example:
#
#   seed | block | lines | first line of its code
#
# block is N for the N-th ```python block of a file (counted from the top),
# "cell N" for the N-th "In [...]:" cell of asyncio-tutorial.md, and "-"
# for athreading.md's "Generator -> AsyncGenerator" section, which has no
# code but whose feature gets an example too.  lines counts the block's
# non-blank lines (a cell ends at the next heading, cell or blank line run
# of the notebook's output, so its count is only a fingerprint).  t/conformance/SEEDS is this
# script's output, committed, because the seeds are not distributed;
# t/manifest.sh compares the two when the seeds are at hand.
set -u
LC_ALL=C
export LC_ALL
dir=${1:?usage: seeds-index.sh SEEDS-DIR}

for f in agently-stage.md threaded-async.md async-tamer.md athreading.md; do
    [ -r "$dir/$f" ] || { echo "seeds-index.sh: no $dir/$f" >&2; exit 1; }
    awk -v seed="$f" '
        function flush() {
            if (n) printf "%s | %d | %d | %s\n", seed, n, lines, first
        }
        /^```python/ { flush(); n++; inb = 1; lines = 0; first = ""; next }
        inb && /^```/ { inb = 0; next }
        inb && /[^[:space:]]/ {
            lines++
            if (first == "") {
                first = $0
                sub(/^[[:space:]]+/, "", first); sub(/[[:space:]]+$/, "", first)
            }
        }
        END { flush() }
    ' "$dir/$f"
    if [ "$f" = athreading.md ]; then
        grep -q '^### Generator → AsyncGenerator' "$dir/$f" &&
            echo "athreading.md | - | 0 | (Generator → AsyncGenerator: no code)"
    fi
done
f=asyncio-tutorial.md
[ -r "$dir/$f" ] || { echo "seeds-index.sh: no $dir/$f" >&2; exit 1; }
awk -v seed="$f" '
    function flush() {
        if (n) printf "%s | cell %d | %d | %s\n", seed, n, lines, first
    }
    /^In \[[^]]*\]:/ { flush(); n++; inb = 1; lines = 0; first = ""; next }
    inb && /^[[:space:]]*$/ { blank++; if (blank >= 2) inb = 0; next }
    inb && /[^[:space:]]/ {
        blank = 0; lines++
        if (first == "") {
            first = $0
            sub(/^[[:space:]]+/, "", first); sub(/[[:space:]]+$/, "", first)
        }
    }
    END { flush() }
' "$dir/$f"
