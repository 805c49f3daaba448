#!/bin/sh
# SPDX-License-Identifier: MIT
# gen-symbols.sh - write debian/libstage0.symbols from t/abi.expected.
#
#   sh debian/gen-symbols.sh           rewrite the symbols file
#   sh debian/gen-symbols.sh --check   exit 1 (and show the diff) if the
#                                      file is not what a rewrite would give
#
# t/abi.expected (kept exact by t/abi.sh) is the list of exported symbols.
# A symbol already in the symbols file keeps its version (the first
# release that had it); a new one gets the package version of
# configure.ac's AC_INIT, so run this in the same commit that adds
# functions (after `STAGE_ABI_UPDATE=1 make check TESTS=t/abi.sh`).  A
# symbol that disappeared is dropped with a warning: removing a symbol
# breaks the ABI and needs a new SONAME (configure.ac's libtool numbers).
# The package build (dh_makeshlibs -c4) fails on any difference between
# this file and the library.
set -eu

cd "$(dirname "$0")/.."
abi=t/abi.expected
out=debian/libstage0.symbols

version=$(sed -n 's/^AC_INIT(\[libstage\], *\[\([^]]*\)\].*/\1/p' configure.ac)
cur=$(sed -n 's/^STAGE_LT_CURRENT=\([0-9]*\)$/\1/p' configure.ac)
age=$(sed -n 's/^STAGE_LT_AGE=\([0-9]*\)$/\1/p' configure.ac)
if test -z "$version" || test -z "$cur" || test -z "$age"; then
    echo "gen-symbols.sh: cannot read AC_INIT or the libtool numbers in configure.ac" >&2
    exit 1
fi
soname=libstage.so.$((cur - age))
package=libstage$((cur - age))

tmp=$(mktemp)
trap 'rm -f "$tmp"' EXIT
{
    echo "$soname $package #MINVER#"
    echo "* Build-Depends-Package: libstage-dev"
    # The old file first (on stdin: it may not exist yet), then the list.
    { test -f "$out" && cat "$out"; } | awk -v new="$version" '
        FILENAME == "-" { if ($1 ~ /@Base$/) { sub(/@Base$/, "", $1); v[$1] = $2 }
                          next }
        { seen[$1] = 1
          printf " %s@Base %s\n", $1, ($1 in v) ? v[$1] : new }
        END { for (s in v) if (!(s in seen))
                  printf "gen-symbols.sh: warning: %s is gone (ABI break: bump the SONAME)\n", s > "/dev/stderr" }
    ' - "$abi"
} >"$tmp"

if test "${1:-}" = --check; then
    if diff -u "$out" "$tmp"; then
        echo "gen-symbols.sh: $out matches $abi ($(grep -c '@Base' "$out") symbols)"
        exit 0
    fi
    echo "gen-symbols.sh: $out is out of date: run sh debian/gen-symbols.sh" >&2
    exit 1
fi
cp "$tmp" "$out"
echo "gen-symbols.sh: wrote $out ($(grep -c '@Base' "$out") symbols, new ones at $version)"
