#!/bin/sh
# SPDX-License-Identifier: MIT
# headers.sh - include/stage.h is self-contained: it compiles on its own,
# twice in a row (include guard), as strict C11, and as C++ when a C++
# compiler is installed; there, its declarations have C linkage (extern
# "C": the object refers to stage_version, not a mangled C++ name).
set -u

srcdir=${top_srcdir:-.}
cc=${CC:-cc}
cxx=${CXX:-g++}
fail=0
src=headers-test.$$
trap 'rm -f "$src.c" "$src.cc" "$src.o"' EXIT

printf '#include <stage.h>\n#include <stage.h>\nint main(void) { return stage_version() == 0; }\n' >"$src.c"
cp "$src.c" "$src.cc"

# $CC may carry options (e.g. "gcc -std=gnu11"), so no quotes around it.
if $cc -std=c11 -pedantic -Wall -Wextra -Wstrict-prototypes \
    -Wmissing-prototypes -Werror -I"$srcdir/include" -fsyntax-only "$src.c"
then
    echo "headers.sh: stage.h compiles alone as C11 ($cc)"
else
    echo "headers.sh: stage.h does not compile alone as C11 ($cc)"
    fail=1
fi

if command -v "${cxx%% *}" >/dev/null 2>&1; then
    if $cxx -std=c++11 -pedantic -Wall -Wextra -Werror \
        -I"$srcdir/include" -fsyntax-only "$src.cc"
    then
        echo "headers.sh: stage.h compiles alone as C++11 ($cxx)"
        if $cxx -Wall -I"$srcdir/include" -c -o "$src.o" "$src.cc" &&
            nm -u "$src.o" | grep -q ' stage_version$'
        then
            echo "headers.sh: stage.h gives C++ code C linkage"
        else
            echo "headers.sh: C++ code does not refer to stage_version with C linkage:"
            nm -u "$src.o"
            fail=1
        fi
    else
        echo "headers.sh: stage.h does not compile alone as C++11 ($cxx)"
        fail=1
    fi
else
    echo "headers.sh: no C++ compiler ($cxx); skipping the C++ check"
fi
exit $fail
