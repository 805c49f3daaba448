#!/bin/sh
# SPDX-License-Identifier: MIT
# readme.sh - every C code block of README is, verbatim, a file
# examples/readme_*.c (which make check builds and runs), and every such
# file appears in README.  Keeps the README's tour honest.
set -u
top_srcdir=${top_srcdir:-.}
tmp=$(mktemp -d) || exit 99
trap 'rm -rf "$tmp"' EXIT
awk -v dir="$tmp" '
    /^```c$/ { n++; f = dir "/block" n ".c"; inblock = 1; next }
    /^```$/  { inblock = 0; next }
    inblock  { print > f }
' "$top_srcdir/README"
fail=0
nblocks=$(ls "$tmp" | wc -l)
for b in "$tmp"/block*.c; do
    test -e "$b" || continue
    found=no
    for e in "$top_srcdir"/examples/readme_*.c; do
        if cmp -s "$b" "$e"; then found=yes; break; fi
    done
    if test $found = no; then
        echo "readme.sh: README block $(basename "$b") matches no examples/readme_*.c:"
        head -3 "$b"
        fail=1
    fi
done
for e in "$top_srcdir"/examples/readme_*.c; do
    ok=no
    for b in "$tmp"/block*.c; do
        if cmp -s "$b" "$e"; then ok=yes; break; fi
    done
    if test $ok = no; then
        echo "readme.sh: $(basename "$e") is not a README code block"
        fail=1
    fi
done
echo "readme.sh: $nblocks README code blocks checked"
exit $fail
