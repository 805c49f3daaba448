#!/bin/sh
# SPDX-License-Identifier: MIT
# ctypes.sh - the binding smoke test: Python's standard ctypes loads the
# built lib/.libs/libstage.so, with no C compiler, and drives a Stage, C
# and Python tasks and a tunnel (t/ctypes_binding.py; the rules it follows
# are in stage(7), BINDING FROM OTHER LANGUAGES).
# Skipped (exit 77), with the reason, when python3 is missing, when there
# is no shared library (configure --disable-shared), or when the library
# was built for another machine or C library than python3 runs on (a
# cross or musl build), or in a sanitizer build (the sanitizer runtime
# must be the first library of the process, and python3 is not linked with
# it).
set -u

srcdir=${top_srcdir:-.}
builddir=${top_builddir:-.}
lib=$builddir/lib/.libs/libstage.so

if ! command -v python3 >/dev/null 2>&1; then
    echo "ctypes.sh: SKIP: python3 is not installed (Debian: apt-get install python3)"
    exit 77
fi
if grep -q '^#define STAGE_[AT]SAN 1' "$builddir/config.h" 2>/dev/null; then
    echo "ctypes.sh: SKIP: sanitizer build (its runtime must be loaded first; python3 does not load it)"
    exit 77
fi
if ! test -f "$lib"; then
    echo "ctypes.sh: SKIP: $lib not found (built with --disable-shared?)"
    exit 77
fi

# The library must be loadable by this python3: same CPU, same C library.
# readelf reads any ELF file; without it, just try.
if command -v readelf >/dev/null 2>&1; then
    py=$(python3 -c 'import os, sys; print(os.path.realpath(sys.executable))')
    machine() { readelf -h "$1" 2>/dev/null | sed -n 's/^ *Machine: *//p'; }
    libc() { readelf -d "$1" 2>/dev/null | sed -n 's/.*Shared library: \[\(libc\.so[^]]*\)\].*/\1/p'; }
    if test "$(machine "$lib")" != "$(machine "$py")"; then
        echo "ctypes.sh: SKIP: $lib is built for $(machine "$lib"), python3 runs on $(machine "$py")"
        exit 77
    fi
    if test -n "$(libc "$py")" && test "$(libc "$lib")" != "$(libc "$py")"; then
        echo "ctypes.sh: SKIP: $lib needs $(libc "$lib"), python3 uses $(libc "$py")"
        exit 77
    fi
fi

exec python3 "$srcdir/t/ctypes_binding.py" "$lib"
