#!/bin/sh
# SPDX-License-Identifier: MIT
# fault-sweep.sh - the resource-failure sweep (issue 8; t/fault_sweep.c
# says what it checks).  Runs t/fault_sweep under the t/failalloc.c
# interposer:
#   1. the N-th call fails, N = 1, 2, ... (memory, stack mappings, threads);
#   2. every call from the N-th on fails (a process out of memory for good);
#   3. the wake-up fd under a low RLIMIT_NOFILE (EMFILE);
#   4. with STAGE_SWEEP_VALGRIND=1 and valgrind installed: a few N of (1)
#      under memcheck as well (invalid reads and frees after a failure).
# Skipped (77) in sanitizer builds: their runtimes must come first in the
# process and cannot share it with an LD_PRELOAD interposer.
set -u
top_builddir=${top_builddir:-.}
so=$top_builddir/t/.libs/libfailalloc.so
prog=$top_builddir/t/fault_sweep
if grep -q '^#define STAGE_[AT]SAN 1' "$top_builddir/config.h" 2>/dev/null; then
    echo "fault-sweep: sanitizer build: skipped"
    exit 77
fi
if ! test -f "$so"; then
    echo "fault-sweep: $so is missing: skipped"
    exit 77
fi
so=$(cd "$(dirname "$so")" && pwd)/libfailalloc.so
# With shared libraries, $prog is libtool's wrapper script: LD_PRELOAD must
# reach the program only, not the shell that runs the wrapper (an
# interposer built for another C library, musl's, cannot load into the
# shell at all).  So run the real program, with the library path that the
# wrapper would give it.
real=$prog
libpath=${LD_LIBRARY_PATH:-}
if test "$(head -c 2 "$prog")" = "#!" && test -f "$top_builddir/t/.libs/fault_sweep"; then
    real=$top_builddir/t/.libs/fault_sweep
    libpath=$(cd "$top_builddir/lib/.libs" && pwd)${libpath:+:$libpath}
fi
status=0
run() {
    echo "== fault_sweep $*"
    LD_LIBRARY_PATH=$libpath LD_PRELOAD=$so FAILALLOC_LEAKCHECK=1 "$real" "$@"
    rc=$?
    test $rc -eq 0 || status=1
    return $rc
}
start=$(date +%s)
run -m once
run -m after
run -e
# Under valgrind, memcheck's own allocator takes most calls before the
# interposer sees them (about 40 of some 240 are counted), and its leak
# accounting is memcheck's: so only small N, and no interposer leak check.
if test "${STAGE_SWEEP_VALGRIND:-0}" != 0 && command -v valgrind >/dev/null; then
    for n in 1 5 11 23 37; do
        echo "== fault_sweep -n $n under valgrind"
        LD_PRELOAD=$so FAILALLOC_LEAKCHECK=0 ${LIBTOOL:-$top_builddir/libtool} \
            --mode=execute valgrind -q --error-exitcode=3 --leak-check=full \
            --errors-for-leak-kinds=definite "$prog" -n $n || status=1
    done
fi
echo "fault-sweep: $(( $(date +%s) - start )) s"
exit $status
