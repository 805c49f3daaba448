# SPDX-License-Identifier: MIT
# .ci/lib.sh - what the CI scripts share (.ci/run, .ci/debian, .ci/musl,
# .ci/aarch64).  Source it from bash at the top of the tree:
#     cd "$(dirname "$0")/.." && . .ci/lib.sh
# It sets top, JOBS, the two totals and the start time, and provides:
#   section TITLE          a banner with the wall time so far
#   note_pass WHAT         count one success that no test result accounts for
#   note_fail WHAT         count one such failure
#   count_results DIR LBL  add up the .trs/.log results of a test run in DIR
#   run_check DIR LBL SUITELOG MAKE-ARGS...   make a test target and count it
#   finish                 print the totals ("N passed, N failed") and exit
#   ci_apt_get ARGS...     apt-get -y ARGS, waiting for a busy dpkg lock
#   ci_apt_install PKG...  install the Debian packages that are missing
#   ci_vpath NAME          a source tree with ./configure and an empty build
#                          directory for an out-of-tree build: sets ci_src
#                          and ci_build
#   ci_configure_make NAME CONFIGURE-ARGS...
#                          an out-of-tree build in a fresh ci_build (ci_vpath)
#   ci_run_script NAME     run .ci/NAME and add its totals to ours
#   ci_script_start NAME   run .ci/NAME in the background, its output kept
#                          in $ci_logs/NAME.log
#   ci_script_wait NAME    wait for it, print its output, add its totals
#   ci_enable_arm64        dpkg --add-architecture arm64 (for check:arm64)
# Counting: a Check program contributes its checks (failures and errors
# count as failed), any other test (shell checks, examples) counts as one.
# The last line of a script is "N passed, N failed"; its exit status is
# non-zero if anything failed.

top=$(pwd)
export CI=${CI:-true}
JOBS=2
total_pass=0
total_fail=0
started=$(date +%s)

section() {
    printf '\n==== %s  [%s, +%ss] ====\n' "$*" "$(date -u +%H:%M:%S)" \
        "$(($(date +%s) - started))"
}

note_pass() {
    echo "CI: passed: $*"
    total_pass=$((total_pass + 1))
}

note_fail() {
    echo "CI: FAILED: $*"
    total_fail=$((total_fail + 1))
}

finish() {
    section "Summary"
    echo "CI: total time $(($(date +%s) - started))s"
    echo "${total_pass} passed, ${total_fail} failed"
    if test "$total_fail" -eq 0; then exit 0; else exit 1; fi
}

# ci_find_trs DIR: the test results (.trs) of the build in DIR, not those
# of the builds that live below it: distcheck's libstage-*/, and the
# background jobs' clones and build directories (_ci-tmp/, _build-*/),
# whose suites may be running at that very moment.
ci_find_trs() {
    find "$1" \( -path "$1/libstage-*" -o -path "$1/_ci-tmp" \
        -o -path "$1/_build-*" -o -path "$1/_ci-logs" \) -prune \
        -o -name '*.trs' -print
}

# count_results DIR LABEL: print and add up the results of the last test run
# whose .trs/.log files are in DIR.  Returns 1 if anything failed there.
count_results() {
    local dir=$1 label=$2 pass=0 fail=0 skip=0
    local trs log name result line checks f e bad
    echo "-- results: $label"
    while IFS= read -r trs; do
        log=${trs%.trs}.log
        name=${trs#"$dir"/}
        name=${name%.trs}
        result=$(sed -n 's/^:test-result: *//p' "$trs" | sort -u | tr '\n' ' ')
        result=${result% }
        bad=0
        local lines
        lines=$(grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' \
            "$log" 2>/dev/null || true)
        if test -n "$lines"; then
            while IFS= read -r line; do
                checks=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
                f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
                e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
                pass=$((pass + checks - f - e))
                fail=$((fail + f + e))
                bad=$((bad + f + e))
                printf '  %-6s %-28s %s\n' "$result" "$name" "$line"
            done <<<"$lines"
            # The program failed although every check passed (a crash or a
            # valgrind error outside the checks): count the program.
            case $result in
            PASS | XFAIL | SKIP) ;;
            *) if test $bad -eq 0; then
                   fail=$((fail + 1))
                   echo "         ($name failed outside its checks)"
               fi ;;
            esac
        else
            printf '  %-6s %s\n' "$result" "$name"
            case $result in
            PASS | XFAIL) pass=$((pass + 1)) ;;
            SKIP) skip=$((skip + 1)) ;;
            *) fail=$((fail + 1)) ;;
            esac
        fi
    done < <(ci_find_trs "$dir" | LC_ALL=C sort)
    echo "-- $label: $pass passed, $fail failed, $skip skipped"
    total_pass=$((total_pass + pass))
    total_fail=$((total_fail + fail))
    test $fail -eq 0
}

# show_suite_log FILE: automake's test-suite log holds the logs of the
# tests that failed; print it (bounded) so the CI log explains the failure.
show_suite_log() {
    if test -f "$1"; then
        echo "-- $1 (first 400 lines)"
        head -n 400 "$1"
    fi
}

# run_check DIR LABEL SUITELOG MAKE-ARGS...: run a test target in DIR and
# count its results.  A make that fails with no failed test (say, a test
# program that does not compile) counts as one failure.
run_check() {
    local dir=$1 label=$2 suitelog=$3 st=0 counted=0
    shift 3
    ci_find_trs "$dir" | while IFS= read -r trs; do rm -f "$trs"; done
    (cd "$dir" && make "$@") || st=$?
    count_results "$dir" "$label" || { counted=1; show_suite_log "$dir/$suitelog"; }
    if test $st -ne 0 && test $counted -eq 0; then
        note_fail "$label: make $* exited $st, but no test failed"
    fi
}

# ci_apt_get ARGS...: apt-get -y ARGS, retried: other jobs on the machine
# may hold the dpkg lock (apt waits up to 5 minutes for it) or the lists
# lock.  Runs `apt-get update` first, once per script.  Root only.
ci_apt_updated=no
ci_apt_get() {
    local try
    if test "$(id -u)" -ne 0; then
        echo "CI: apt-get $* needs root"
        return 1
    fi
    for try in 1 2 3 4 5 6 7 8 9 10; do
        if test $ci_apt_updated = no &&
           apt-get -q -o DPkg::Lock::Timeout=300 update; then
            ci_apt_updated=yes
        fi
        if test $ci_apt_updated = yes &&
           DEBIAN_FRONTEND=noninteractive apt-get -q -y \
               -o DPkg::Lock::Timeout=300 "$@"; then
            return 0
        fi
        echo "CI: apt-get failed (try $try of 10; is another apt running?)"
        sleep 15
    done
    return 1
}

# ci_apt_install PKG...: install the packages that are missing (names may
# carry an architecture, e.g. check:arm64).  Returns non-zero on failure.
ci_apt_install() {
    local p status missing=""
    for p in "$@"; do
        status=$(dpkg-query -W -f='${Status}' "$p" 2>/dev/null || true)
        case $status in
        *" installed") ;;
        *) missing="$missing $p" ;;
        esac
    done
    if test -z "$missing"; then
        echo "CI: installed already: $*"
        return 0
    fi
    echo "CI: installing:$missing"
    # shellcheck disable=SC2086 # one word per package
    ci_apt_get install --no-install-recommends $missing
}

# STAGE_SKIP_MAN_EXAMPLES for the secondary builds (sanitizers, coverage,
# musl, AArch64): t/man-examples.sh, a documentation check that compiles
# every man page's example, is left to the main build unless
# STAGE_CI_FULL=1 (.ci/nightly).
ci_skip_man=1
test "${STAGE_CI_FULL:-0}" = 1 && ci_skip_man=

# The packages every build needs (quickstart installs the same and more).
ci_build_packages="build-essential autoconf automake libtool autoconf-archive
pkgconf mandoc groff-base git"

# ci_vpath NAME: set ci_src to a source tree with ./configure that accepts
# an out-of-tree build (the top of the tree, or a clone of its HEAD in
# /tmp when the top is configured in place), and ci_build to a fresh empty
# directory $ci_src/_build-NAME (ignored by git).
ci_vpath() {
    ci_src=$top
    if test -f "$top/config.status"; then
        ci_src=$(mktemp -d "${TMPDIR:-/tmp}/stage-ci-$1.XXXXXX")/libstage
        echo "CI: the tree is configured in place: building a clone of HEAD in $ci_src"
        git clone -q "$top" "$ci_src" || return 1
    fi
    if ! test -x "$ci_src/configure"; then
        (cd "$ci_src" && ./autogen.sh) || return 1
    fi
    ci_build=$ci_src/_build-$1
    rm -rf "$ci_build"
    mkdir -p "$ci_build"
}

# ci_configure_make NAME CONFIGURE-ARGS...: configure (with the arguments)
# and make an out-of-tree build in ci_build (see ci_vpath).  A failure is
# counted, and the function returns non-zero.
ci_configure_make() {
    local name=$1
    shift
    ci_vpath "$name" || { note_fail "a source tree for $name"; return 1; }
    if ! (cd "$ci_build" && "$ci_src"/configure "$@"); then
        note_fail "configure ($name: $*)"
        tail -n 60 "$ci_build/config.log" 2>/dev/null
        return 1
    fi
    (cd "$ci_build" && make -j"$JOBS") || { note_fail "make ($name)"; return 1; }
}

# ci_script_count NAME FILE STATUS: add the counts of the last
# "N passed, N failed" line in FILE (the output of .ci/NAME, which exited
# with STATUS) to ours.  A script that printed no such line, or exited
# non-zero without counting a failure, counts as one failure.
ci_script_count() {
    local name=$1 file=$2 st=$3 line p f
    line=$(grep -E '^[0-9]+ passed, [0-9]+ failed$' "$file" | tail -n 1)
    if test -z "$line"; then
        note_fail ".ci/$name printed no total (exit status $st)"
        return
    fi
    p=${line%% passed*}
    f=${line#*passed, }
    f=${f%% failed*}
    echo "CI: .ci/$name: $p passed, $f failed"
    total_pass=$((total_pass + p))
    total_fail=$((total_fail + f))
    if test "$st" -ne 0 && test "$f" -eq 0; then
        note_fail ".ci/$name exited $st"
    fi
}

# ci_run_script NAME: run .ci/NAME, show its output, and add its totals.
ci_run_script() {
    local name=$1 out st=0
    out=$(mktemp)
    bash "$top/.ci/$name" </dev/null 2>&1 | tee "$out"
    st=${PIPESTATUS[0]}
    ci_script_count "$name" "$out" "$st"
    rm -f "$out"
}

# Background scripts: their output goes to $ci_logs/NAME.log (so that it
# does not interleave with ours) and is printed, whole, by ci_script_wait.
ci_logs=$top/_ci-logs
ci_script_start() {
    local name=$1
    mkdir -p "$ci_logs"
    echo "CI: .ci/$name runs in the background (output: $ci_logs/$name.log)"
    bash "$top/.ci/$name" </dev/null >"$ci_logs/$name.log" 2>&1 &
    eval "ci_pid_$name=\$!"
}

ci_script_wait() {
    local name=$1 pid st=0
    eval "pid=\${ci_pid_$name:-}"
    if test -z "$pid"; then
        note_fail ".ci/$name was not started"
        return
    fi
    wait "$pid" || st=$?
    section ".ci/$name (it ran in the background; its output follows)"
    cat "$ci_logs/$name.log"
    ci_script_count "$name" "$ci_logs/$name.log" "$st"
}

# ci_enable_arm64: let dpkg install arm64 packages (check:arm64 for
# .ci/aarch64); the next ci_apt_get runs apt-get update again.
ci_enable_arm64() {
    if ! dpkg --print-foreign-architectures | grep -qx arm64; then
        echo "CI: dpkg --add-architecture arm64"
        dpkg --add-architecture arm64 && ci_apt_updated=no
    fi
}

# The packages of each script beyond ci_build_packages, so that .ci/run can
# install everything in one apt-get call before its scripts run side by
# side (they would queue for the dpkg lock).
ci_packages_aarch64="gcc-aarch64-linux-gnu libc6-dev-arm64-cross qemu-user check:arm64"
ci_packages_musl="musl-tools dpkg-dev"
ci_packages_debian="dpkg-dev debhelper lintian check python3"
ci_packages_tests="check valgrind lcov clang python3"
# libuv and GLib: the benchmarks' peers (bench/README); never linked into
# libstage.
ci_packages_bench="libuv1-dev libglib2.0-dev"
