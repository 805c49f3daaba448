#!/bin/sh
# SPDX-License-Identifier: MIT
# coverage.sh INFO MIN_LINES MIN_BRANCHES - print the line and branch
# coverage of lib/ from an lcov tracefile (made by make check-code-coverage)
# per file and in total; exit 1 when a total is under its minimum (percent).
set -u
info=$1 min_lines=$2 min_branches=$3
LCOV=${LCOV:-lcov}
if ! test -f "$info"; then
    echo "coverage.sh: $info is missing (configure --enable-code-coverage" \
         "CFLAGS='-O0 -g', outside /tmp, then make check-code-coverage)"
    exit 1
fi
rc="--rc lcov_branch_coverage=1"
# lcov 1.16 prints harmless perl "Subroutine ... redefined" warnings.
$LCOV $rc --list "$info" 2>&1 | grep -v 'Subroutine .* redefined'
summary=$($LCOV $rc --summary "$info" 2>&1 | grep -v 'Subroutine .* redefined')
echo "$summary"
lines=$(echo "$summary" | sed -n 's/.*lines\.*: *\([0-9.]*\)%.*/\1/p')
branches=$(echo "$summary" | sed -n 's/.*branches\.*: *\([0-9.]*\)%.*/\1/p')
echo "coverage of lib/: ${lines:-?}% of lines (minimum $min_lines%)," \
     "${branches:-?}% of branches (minimum $min_branches%)"
awk -v l="${lines:-0}" -v b="${branches:-0}" -v ml="$min_lines" \
    -v mb="$min_branches" 'BEGIN { exit !(l + 0 >= ml && b + 0 >= mb) }' || {
    echo "coverage.sh: below the minimum"
    exit 1
}
