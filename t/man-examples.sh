#!/bin/sh
# SPDX-License-Identifier: MIT
#
# man-examples.sh - compile and run the example program of every man page.
#
# The program of a page is the text of the .EX/.EE blocks of its EXAMPLES
# section, joined in order.  The few roff escapes that the pages use in
# code are undone (\e \- \& \(aq \(dq \(ga \(ha \(ti \(rs \\); any other
# escape, or a request line inside a block, fails the page, so the pages stay
# simple.  Each program is compiled with
#   ${CC:-cc} -std=c11 -Wall -Wextra -Werror -I$top_srcdir/include
# linked with the built library, run with a 20 s limit, and must exit 0.
# Pages that are only a ".so" line are skipped.
#
# Environment: top_srcdir, top_builddir (default .), CC, CFLAGS_EXTRA;
# STAGE_SKIP_MAN_EXAMPLES=1 skips the check (exit 77): the CI's secondary
# builds (sanitizers, emulated AArch64) leave this documentation check to
# the main build, where it costs a tenth of the time.
# Exit status: 0 all passed, 1 some failed, 77 skipped, 99 hard error
# (automake).

set -u
if [ -n "${STAGE_SKIP_MAN_EXAMPLES:-}" ]; then
    echo "man-examples.sh: SKIP: STAGE_SKIP_MAN_EXAMPLES is set (the main build runs this check)"
    exit 77
fi
LC_ALL=C
export LC_ALL

top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
CC=${CC:-cc}
TIMEOUT=${MAN_EXAMPLES_TIMEOUT:-20}

tmp=$(mktemp -d "${TMPDIR:-/tmp}/man-examples.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' 0
trap 'exit 99' 1 2 15

# How to link: the shared library in lib/.libs, else the .la through libtool.
libdir=$top_builddir/lib/.libs
if [ -f "$libdir/libstage.so" ]; then
    abs_libdir=$(cd "$libdir" && pwd) || exit 99
    link() { # output source
        $CC -std=c11 -Wall -Wextra -Werror -pthread ${CFLAGS_EXTRA:-} \
            -I"$top_srcdir/include" -o "$1" "$2" \
            -L"$abs_libdir" -Wl,-rpath,"$abs_libdir" -lstage
    }
    run() { "$@"; }
elif [ -f "$top_builddir/lib/libstage.la" ] && [ -x "$top_builddir/libtool" ]; then
    link() {
        "$top_builddir/libtool" --quiet --tag=CC --mode=link \
            $CC -std=c11 -Wall -Wextra -Werror -pthread ${CFLAGS_EXTRA:-} \
            -I"$top_srcdir/include" -o "$1" "$2" \
            "$top_builddir/lib/libstage.la"
    }
    run() { "$top_builddir/libtool" --mode=execute "$@"; }
else
    echo "man-examples.sh: libstage is not built in $top_builddir/lib" >&2
    exit 99
fi

if command -v timeout >/dev/null 2>&1; then
    limit="timeout $TIMEOUT"
else
    limit=
fi

# extract PAGE > C: print the program of PAGE, un-escaped; fail if a block
# holds something this script does not understand.
extract() {
    awk '
        function unescape(s,    out, c, n, name, i) {
            out = ""
            i = 1
            while (i <= length(s)) {
                c = substr(s, i, 1)
                if (c != "\\") { out = out c; i++; continue }
                n = substr(s, i + 1, 1)
                if (n == "e" || n == "\\") { out = out "\\"; i += 2 }
                else if (n == "-") { out = out "-"; i += 2 }
                else if (n == "&") { i += 2 }
                else if (n == "(") {
                    name = substr(s, i + 2, 2)
                    if (name == "aq") out = out "\047"
                    else if (name == "dq") out = out "\""
                    else if (name == "ga") out = out "`"
                    else if (name == "ha") out = out "^"
                    else if (name == "ti") out = out "~"
                    else if (name == "rs") out = out "\\"
                    else { bad = "escape \\(" name; return out }
                    i += 4
                }
                else { bad = "escape \\" n; return out }
            }
            return out
        }
        /^\.SH/ { inex = ($0 ~ /^\.SH "?EXAMPLES"?[ \t]*$/); next }
        !inex { next }
        /^\.EX/ { if (inblock) { bad = "nested .EX"; exit } inblock = 1; blocks++; next }
        /^\.EE/ { inblock = 0; next }
        !inblock { next }
        /^[.\047]/ { bad = "request inside .EX: " $0; exit }
        {
            line = unescape($0)
            if (bad != "") exit
            print line
        }
        END {
            if (bad != "") { print FILENAME ":" NR ": " bad > "/dev/stderr"; exit 1 }
            if (inblock) { print FILENAME ": .EX without .EE" > "/dev/stderr"; exit 1 }
            if (blocks == 0) { print FILENAME ": no .EX block in EXAMPLES" > "/dev/stderr"; exit 1 }
        }
    ' "$1"
}

pass=0
fail=0
for page in "$top_srcdir"/man/*.3 "$top_srcdir"/man/stage.7; do
    [ -f "$page" ] || continue
    # A stub is a single ".so" line.
    if head -n 1 "$page" | grep -q '^\.so '; then
        continue
    fi
    name=$(basename "$page")
    src=$tmp/$name.c
    exe=$tmp/$name.exe
    if ! extract "$page" > "$src"; then
        echo "FAIL: $name: cannot extract the example"
        fail=$((fail + 1))
        continue
    fi
    if ! link "$exe" "$src" > "$tmp/$name.log" 2>&1; then
        echo "FAIL: $name: the example does not compile:"
        sed 's/^/    /' "$tmp/$name.log"
        fail=$((fail + 1))
        continue
    fi
    run $limit "$exe" > "$tmp/$name.out" 2>&1
    status=$?
    if [ "$status" -ne 0 ]; then
        if [ "$status" -eq 124 ]; then
            echo "FAIL: $name: the example timed out after $TIMEOUT s:"
        else
            echo "FAIL: $name: the example exited with status $status:"
        fi
        sed 's/^/    /' "$tmp/$name.out"
        fail=$((fail + 1))
        continue
    fi
    echo "PASS: $name"
    pass=$((pass + 1))
done

echo "man-examples: $pass passed, $fail failed"
if [ "$pass" -eq 0 ] && [ "$fail" -eq 0 ]; then
    echo "man-examples.sh: no page found in $top_srcdir/man" >&2
    exit 99
fi
[ "$fail" -eq 0 ]
