#!/bin/sh
# SPDX-License-Identifier: MIT
#
# conformance.sh - run every story of t/conformance/MANIFEST and check that
# the example retells its seed block: same output, about the same time.
#
# For each row: runs $top_builddir/examples/<program> with
# STAGE_TIME_SCALE=$scale (default 0.1; STAGE_CONFORMANCE_SCALE overrides)
# and checks that
#   - it exits 0 within STAGE_CONFORMANCE_TIMEOUT seconds (default 60),
#   - it writes nothing on stderr,
#   - its output matches t/conformance/<expected> line for line (a line
#     "~ RE" matches an output line that RE, a POSIX extended regular
#     expression, matches as a whole; any other line must be equal),
#   - its wall time, divided by the scale, is within the row's bounds
#     (duration D: [0.8 D, 1.6 D], or D@LO-HI: [LO D, HI D]).  The upper
#     bound gets an absolute slack of STAGE_CONFORMANCE_SLACK seconds
#     (default 0.4) of real time, for process and thread start on a loaded
#     machine, and a run that fails only its timing is run again, up to
#     STAGE_CONFORMANCE_TRIES runs in all (default 3).  So at scale 0.1 the
#     upper bound catches only gross delays and hangs (the lower bound, a
#     skipped sleep); the expected outputs check the order in which things
#     overlap.  At scale 1 the bounds are tight.
# A libtool wrapper is resolved first (libtool --mode=execute), so that the
# wrapper's own start-up, which takes tenths of a second on a busy machine,
# is not timed.  Timing is skipped under check-valgrind (VALGRIND set), when
# STAGE_CONFORMANCE_NO_TIMING is set, or when date(1) has no %N.
#
# Prints one line per row and "conformance: N passed, N failed".
# Environment: top_srcdir, top_builddir (default .).  Works in a vpath
# build: files are read from $top_srcdir, programs run from $top_builddir.
# Exit status: 0 all passed, 1 some failed, 99 hard error (automake).

set -u
LC_ALL=C
export LC_ALL

top_srcdir=${top_srcdir:-.}
top_builddir=${top_builddir:-.}
dir=$top_srcdir/t/conformance
manifest=$dir/MANIFEST
scale=${STAGE_CONFORMANCE_SCALE:-0.1}
limit=${STAGE_CONFORMANCE_TIMEOUT:-60}
slack=${STAGE_CONFORMANCE_SLACK:-0.4}
tries=${STAGE_CONFORMANCE_TRIES:-3}

if [ ! -r "$manifest" ]; then
    echo "conformance.sh: cannot read $manifest"
    exit 99
fi
case $scale in
    *[!0-9.]* | "" | . | *.*.*)
        echo "conformance.sh: bad STAGE_CONFORMANCE_SCALE '$scale'"
        exit 99 ;;
esac

tmp=$(mktemp -d "${TMPDIR:-/tmp}/conformance.XXXXXX") || exit 99
trap 'rm -rf "$tmp"' 0
trap 'exit 99' 1 2 15

# Timing: nanoseconds from date(1), if it has %N.
timing=yes
reason=
if [ -n "${VALGRIND:-}" ]; then
    timing=no reason="under valgrind"
elif [ -n "${STAGE_CONFORMANCE_NO_TIMING:-}" ]; then
    timing=no reason="STAGE_CONFORMANCE_NO_TIMING"
else
    case $(date +%s%N) in
        *[!0-9]* | "") timing=no reason="date has no %N" ;;
    esac
fi
now_ns() { date +%s%N; }

# A time limit, if coreutils' timeout(1) is there.
if command -v timeout >/dev/null 2>&1; then
    limiter="timeout $limit"
else
    limiter=
fi

# The program a libtool wrapper runs, and the library path it sets.
libtool=$top_builddir/libtool
lt_var=
if [ -x "$libtool" ]; then
    lt_var=$(sed -n 's/^shlibpath_var=//p' "$libtool" | sed -n 1p)
fi
# resolve PROG: sets `real` (the program to run) and `libpath` (for lt_var).
resolve() {
    real=$1 libpath=
    [ -n "$lt_var" ] || return 0
    "$libtool" --mode=execute sh -c \
        'printf "%s\n" "$1"; eval "printf \"%s\\n\" \"\${$2-}\""' \
        sh "$1" "$lt_var" >"$tmp/resolve" 2>/dev/null </dev/null || return 0
    r=$(sed -n 1p "$tmp/resolve")
    p=$(sed -n 2p "$tmp/resolve")
    if [ -n "$r" ] && [ -f "$r" ] && [ -x "$r" ]; then
        real=$r libpath=$p
    fi
}
run_real() (
    STAGE_TIME_SCALE=$scale
    export STAGE_TIME_SCALE
    if [ -n "$libpath" ]; then
        eval "$lt_var=\$libpath; export $lt_var"
    fi
    exec $limiter "$real"
)

# compare EXPECTED ACTUAL: 0 if they match; else prints the first mismatch.
compare() {
    n=0
    while IFS= read -r want <&3; do
        n=$((n + 1))
        if ! IFS= read -r got <&4; then
            echo "    line $n: expected \"$want\", got end of output"
            return 1
        fi
        case $want in
            "~ "*)
                re=${want#"~ "}
                if ! printf '%s\n' "$got" | grep -Eq -- "^($re)\$"; then
                    echo "    line $n: \"$got\" does not match /$re/"
                    return 1
                fi ;;
            *)
                if [ "x$got" != "x$want" ]; then
                    echo "    line $n: expected \"$want\", got \"$got\""
                    return 1
                fi ;;
        esac
    done 3<"$1" 4<"$2"
    extra=$(sed -n "$((n + 1))p" "$2")
    if [ "$(wc -l <"$2")" -gt "$n" ]; then
        echo "    line $((n + 1)): unexpected \"$extra\""
        return 1
    fi
    return 0
}

# check_time SECONDS_NS DURATION: prints the verdict; 0 if within bounds.
check_time() {
    awk -v ns="$1" -v spec="$2" -v scale="$scale" -v slack="$slack" '
    BEGIN {
        lo = 0.8; hi = 1.6; d = spec
        if (index(spec, "@")) {
            split(spec, a, "@"); d = a[1]
            split(a[2], b, "-"); lo = b[1]; hi = b[2]
        }
        real = ns / 1e9
        t = real / scale
        min = lo * d * scale; max = hi * d * scale + slack
        ok = real >= min && real <= max
        printf "%.3f s at scale %s = %.2f s (story %s s, %.1fx-%.1fx)",
            real, scale, t, d, lo, hi
        if (!ok)
            printf ": outside [%.3f, %.3f] s", min, max
        exit ok ? 0 : 1
    }'
}

passed=0 failed=0
# Rows, trimmed, fields joined by "|".
sed -e '/^[[:space:]]*#/d' -e '/^[[:space:]]*$/d' \
    -e 's/[[:space:]]*|[[:space:]]*/|/g' \
    -e 's/^[[:space:]]*//' -e 's/[[:space:]]*$//' "$manifest" >"$tmp/rows"

# shellcheck disable=SC2034 # heading and notes are for people
while IFS='|' read -r seed block heading program expected duration notes; do
    what="$seed block $block ($program)"
    prog=$top_builddir/examples/$program
    exp=$dir/$expected

    case $duration in
        - | [0-9]* | .[0-9]*) ;;
        *) duration= ;;
    esac
    if [ -z "$duration" ] || [ ! -r "$exp" ] || [ ! -x "$prog" ]; then
        echo "FAIL $what: bad row, or missing $exp or $prog"
        failed=$((failed + 1))
        continue
    fi

    resolve "$prog"
    # A run whose only fault is its time is tried again (up to $tries runs
    # in all): a loaded machine can stall any process for a moment.
    attempt=1
    while :; do
        ok=yes details=
        t0=$(now_ns)
        run_real >"$tmp/out" 2>"$tmp/err" </dev/null
        rc=$?
        t1=$(now_ns)

        if [ $rc -ne 0 ]; then
            ok=no details="$details
    exit status $rc"
        fi
        if [ -s "$tmp/err" ]; then
            ok=no details="$details
    stderr: $(sed -n 1,5p "$tmp/err")"
        fi
        if ! mismatch=$(compare "$exp" "$tmp/out"); then
            ok=no details="$details
$mismatch"
        fi
        [ $ok = yes ] || break
        if [ "$duration" = "-" ]; then
            timed="not timed"
        elif [ $timing = no ]; then
            timed="timing skipped ($reason)"
        elif ! timed=$(check_time $((t1 - t0)) "$duration"); then
            ok=no
        fi
        if [ $attempt -gt 1 ]; then
            timed="$timed (run $attempt of $tries)"
        fi
        if [ $ok = yes ] || [ "$attempt" -ge "$tries" ]; then
            break
        fi
        attempt=$((attempt + 1))
    done
    [ -z "$details" ] || timed="run failed"

    if [ $ok = yes ]; then
        echo "PASS $what: $timed"
        passed=$((passed + 1))
    else
        echo "FAIL $what: $timed$details"
        echo "    output was:"
        sed 's/^/    | /' "$tmp/out"
        failed=$((failed + 1))
    fi
done <"$tmp/rows"

echo "conformance: $passed passed, $failed failed"
[ $failed -eq 0 ] || exit 1
[ $passed -gt 0 ] || exit 99
exit 0
