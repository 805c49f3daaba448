#!/bin/sh
# SPDX-License-Identifier: MIT
# abi.sh - the library exports exactly the symbols listed in t/abi.expected
# (STYLE.md 1.7): the defined dynamic symbols of type T, D, B or R, by name,
# sorted.  After an intended API change, regenerate the list with
#   STAGE_ABI_UPDATE=1 make check TESTS=t/abi.sh
# and commit t/abi.expected together with the change.
set -u

srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
expected=$srcdir/t/abi.expected
lib=$builddir/lib/.libs/libstage.so
nm=${NM:-nm}

if ! test -f "$lib"; then
    echo "abi.sh: $lib not found (built with --disable-shared?); skipping"
    exit 77
fi

actual=abi.actual.$$
trap 'rm -f "$actual" "$actual.tmp"' EXIT
# $NM comes from libtool (e.g. "/usr/bin/nm -B"), so no quotes around it.
# _init and _fini come from the C runtime's crti.o, not from libstage:
# musl's toolchain leaves them visible (glibc's hides them).
$nm -D --defined-only "$lib" |
    awk 'NF >= 3 && $2 ~ /^[TDBR]$/ && $3 !~ /^_(init|fini)$/ {
        sub(/@.*/, "", $3); print $3 }' |
    LC_ALL=C sort -u >"$actual" || {
    echo "abi.sh: '$nm -D --defined-only $lib' failed"
    exit 1
}

# A coverage build links libgcov into the library, which exports __gcov_*
# and a few other helpers of its own: compare only the stage_ names then.
if grep -q '^__gcov_' "$actual"; then
    echo "abi.sh: coverage build (libgcov symbols exported); comparing stage_* only"
    grep '^stage_' "$actual" >"$actual.tmp" && mv "$actual.tmp" "$actual"
fi

if test "${STAGE_ABI_UPDATE:-0}" = 1; then
    cp "$actual" "$expected" || exit 1
    echo "abi.sh: wrote $expected ($(wc -l <"$expected") symbols)"
    exit 0
fi

if ! test -f "$expected"; then
    echo "abi.sh: $expected is missing."
    echo "abi.sh: generate it with: STAGE_ABI_UPDATE=1 make check TESTS=t/abi.sh"
    exit 1
fi

if ! diff -u "$expected" "$actual"; then
    echo "abi.sh: the exported symbols differ from t/abi.expected"
    echo "abi.sh: ('-' lines are expected but missing, '+' lines are new)."
    echo "abi.sh: if the change is intended: STAGE_ABI_UPDATE=1 make check TESTS=t/abi.sh"
    exit 1
fi

bad=$(grep -v -E "^stage_[A-Za-z0-9]" "$actual")
if test -n "$bad"; then
    echo "abi.sh: exported symbols outside the public stage_ namespace (stage__ is internal):"
    echo "$bad"
    exit 1
fi
echo "abi.sh: $(wc -l <"$actual") exported symbols, as expected"
