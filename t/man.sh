#!/bin/sh
# SPDX-License-Identifier: MIT
# man.sh - every exported symbol is documented, and every page lints clean
# (STYLE.md 1.8 and 2.7).  Checks:
#   1. each exported stage_* symbol has man/<symbol>.3 (a ".so man3/x.3"
#      stub counts) and is named in the NAME or SYNOPSIS section of some
#      man/*.3 page;
#   2. each stub's target page exists;
#   3. each page is listed in man/pages.am (otherwise it is not installed);
#   4. each page passes `mandoc -Tlint -W warning` (messages of level
#      WARNING, ERROR or UNSUPP fail; STYLE and BASE notes do not), when
#      mandoc is installed;
#   5. `groff -t -man -ww -z` prints nothing, when groff is installed;
#   6. stage(7)'s SEE ALSO, the guide to the pages by module, names every
#      man3 page.
set -u

srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
mandir=$srcdir/man
lib=$builddir/lib/.libs/libstage.so
nm=${NM:-nm}
fail=0

err() {
    echo "man.sh: $*"
    fail=1
}

# The exported symbols: from the built library, or else from t/abi.expected.
if test -f "$lib"; then
    syms=$($nm -D --defined-only "$lib" |
        awk 'NF >= 3 && $2 ~ /^[TDBR]$/ { sub(/@.*/, "", $3); print $3 }' |
        grep '^stage_' | LC_ALL=C sort -u)
elif test -f "$srcdir/t/abi.expected"; then
    syms=$(grep '^stage_' "$srcdir/t/abi.expected")
else
    echo "man.sh: neither $lib nor $srcdir/t/abi.expected exists"
    exit 1
fi
if test -z "$syms"; then
    echo "man.sh: no exported stage_* symbols found"
    exit 1
fi

# Sort the pages into real pages and .so stubs.
pages=
stubs=
for f in "$mandir"/*.3 "$mandir"/*.7; do
    test -f "$f" || continue
    if grep -q '^\.so ' "$f"; then
        stubs="$stubs $f"
    else
        pages="$pages $f"
    fi
done

# 2. Stub targets exist (".so man3/stage_x.3" installs next to its target).
for f in $stubs; do
    target=$(sed -n 's/^\.so  *//p' "$f" | head -n 1)
    test -f "$mandir/${target##*/}" ||
        err "${f##*/}: .so target $target has no page man/${target##*/}"
done

# 3. Every page is installed.
for f in $pages $stubs; do
    base=${f##*/}
    grep -q "man/$base\\([^A-Za-z0-9_.]\\|\$\\)" "$mandir/pages.am" ||
        err "man/$base is not listed in man/pages.am"
done

# 1. Every symbol has its page and is named in some NAME or SYNOPSIS.
names=man-names.$$
trap 'rm -f "$names" man-lint.$$' EXIT
: >"$names"
for f in $pages; do
    case $f in *.3) ;; *) continue ;; esac
    awk '/^\.SH/ { keep = ($0 ~ /^\.SH[ \t]+"?(NAME|SYNOPSIS)"?[ \t]*$/); next }
         keep' "$f"
done | sed 's/\\f[BIRP1-4]//g; s/\\f(..//g; s/\\f\[[^]]*\]//g; s/\\-/-/g' \
    >"$names"
n=0
for sym in $syms; do
    n=$((n + 1))
    test -f "$mandir/$sym.3" || err "$sym: no page man/$sym.3"
    grep -qw "$sym" "$names" ||
        err "$sym: not named in the NAME or SYNOPSIS of any man/*.3 page"
done

# 6. The guide in stage(7).
guide=$(sed -n '/^\.SH SEE ALSO/,$p' "$mandir/stage.7")
for f in "$mandir"/*.3; do
    page=${f##*/}
    page=${page%.3}
    printf '%s\n' "$guide" | grep -q "^\.BR $page (3)" ||
        err "$page(3) is not in stage(7)'s SEE ALSO (the guide by module)"
done

# 4. and 5. Linters.
lint=man-lint.$$
if command -v mandoc >/dev/null 2>&1; then
    for f in $pages; do
        mandoc -Tlint -W warning "$f" >"$lint" 2>&1
        st=$?
        if test $st -ge 2 || test -s "$lint"; then
            err "mandoc -Tlint -W warning ${f##*/} (exit $st):"
            cat "$lint"
        fi
    done
else
    echo "man.sh: mandoc not installed; skipping mandoc -Tlint"
fi
if command -v groff >/dev/null 2>&1; then
    for f in $pages; do
        LC_ALL=C groff -t -man -ww -z "$f" >"$lint" 2>&1
        if test $? -ne 0 || test -s "$lint"; then
            err "groff -t -man -ww -z ${f##*/}:"
            cat "$lint"
        fi
    done
else
    echo "man.sh: groff not installed; skipping groff -ww"
fi

npages=$(echo $pages | wc -w)
nstubs=$(echo $stubs | wc -w)
if test $fail -ne 0; then
    echo "man.sh: FAILED ($n symbols, $npages pages, $nstubs stubs)"
    exit 1
fi
echo "man.sh: $n symbols documented; $npages pages and $nstubs stubs lint clean"
