# SPDX-License-Identifier: MIT
"""ctypes_binding.py - bind the built libstage from Python's standard ctypes.

A smoke test for bindings (run by t/ctypes.sh): no C compiler, only the
shared library and the rules of stage(7), BINDING FROM OTHER LANGUAGES.
It starts a Stage, runs three tasks and waits for their values:
  1. a C function from libc as the task (strdup on a pool thread), whose
     value is taken and freed with libc's free;
  2. a Python function as the task, on a pool thread (ctypes takes the
     GIL there), and its value read with stage_future_get;
  3. a Python function run as a coroutine on the Stage's loop thread,
     which puts items into a tunnel and closes it;
then reads the tunnel twice: with a reader, item by item, and with
stage_tunnel_collect.  Also checks that errors come back as errno values
(EINVAL, ETIMEDOUT) and that a constructor's NULL sets errno.

Usage: python3 t/ctypes_binding.py PATH/TO/libstage.so
(Not named ctypes.py: Python puts the script's folder first on sys.path,
and that name would hide the ctypes module.)
"""
import ctypes
import errno
import sys

from ctypes import (CFUNCTYPE, POINTER, byref, c_char_p, c_double, c_int,
                    c_size_t, c_uint, c_void_p)

STAGE_FOREVER = -1.0  # stage.h macros are not symbols: copy them
STAGE_DONE = 1        # enum stage_state: PENDING 0, DONE 1, ...
T_LONG = 10.0         # a generous timeout for things that take no time

# Callback types: every callback takes (or is) a plain C function pointer
# plus a void * the library hands back untouched.
TASK_FN = CFUNCTYPE(c_void_p, c_void_p)       # stage_task_fn
DESTROY_FN = CFUNCTYPE(None, c_void_p)        # stage_destroy_fn

checks = 0


def check(cond, what):
    global checks
    checks += 1
    if not cond:
        print("ctypes_binding.py: FAILED: " + what)
        sys.exit(1)
    print("ctypes_binding.py: ok: " + what)


def bind(path):
    # CDLL (not PyDLL): ctypes releases the GIL during every call, so a
    # Python thread blocked in stage_future_get lets the library's threads
    # run their Python callbacks.  use_errno: constructors report errors
    # through errno.
    lib = ctypes.CDLL(path, use_errno=True)
    proto = {
        # Opaque objects are void *: restype must say so (the default, int,
        # would truncate a 64-bit pointer).
        "stage_version": (c_uint, []),
        "stage_version_string": (c_char_p, []),
        "stage_new": (c_void_p, [c_char_p, c_size_t, c_uint]),
        "stage_go": (c_int, [c_void_p, TASK_FN, c_void_p, DESTROY_FN,
                             POINTER(c_void_p)]),
        "stage_go_coro": (c_int, [c_void_p, TASK_FN, c_void_p, DESTROY_FN,
                                  POINTER(c_void_p)]),
        "stage_close": (c_int, [c_void_p, c_double]),
        "stage_free": (c_int, [c_void_p]),
        "stage_future_wait": (c_int, [c_void_p, c_double]),
        "stage_future_get": (c_int, [c_void_p, c_double, POINTER(c_void_p)]),
        "stage_future_take": (c_int, [c_void_p, POINTER(c_void_p)]),
        "stage_future_state": (c_int, [c_void_p]),
        "stage_future_unref": (None, [c_void_p]),
        "stage_future_new": (c_void_p, []),
        "stage_queue_new": (c_void_p, [c_size_t, DESTROY_FN]),
        "stage_tunnel_new": (c_void_p, [c_double, c_size_t, DESTROY_FN]),
        "stage_tunnel_put": (c_int, [c_void_p, c_void_p]),
        "stage_tunnel_close": (c_int, [c_void_p]),
        "stage_tunnel_unref": (None, [c_void_p]),
        "stage_tunnel_reader_new": (c_void_p, [c_void_p, c_double]),
        "stage_tunnel_reader_free": (None, [c_void_p]),
        "stage_tunnel_next": (c_int, [c_void_p, POINTER(c_void_p)]),
        "stage_tunnel_collect": (c_int, [c_void_p, c_double,
                                         POINTER(POINTER(c_void_p)),
                                         POINTER(c_size_t)]),
        "stage_loop_current": (c_void_p, []),
        "stage_loop_free": (c_int, [c_void_p]),
    }
    for name, (restype, argtypes) in proto.items():
        fn = getattr(lib, name)
        fn.restype = restype
        fn.argtypes = argtypes
    return lib


def main():
    if len(sys.argv) != 2:
        print(__doc__)
        return 2
    lib = bind(sys.argv[1])
    libc = ctypes.CDLL(None)  # the process's own C library
    libc.free.argtypes = [c_void_p]
    libc.free.restype = None

    version = lib.stage_version_string().decode()
    check(lib.stage_version() != 0 and version != "",
          "libstage %s loaded" % version)

    st = lib.stage_new(b"ctypes", 2, 0)
    check(st is not None, "stage_new returned a Stage")

    # 1. A C function as the task: strdup(arg) on a pool thread.  Its value
    # is a malloc'd string: result_destroy is libc's free, unless we take it.
    strdup = ctypes.cast(libc.strdup, TASK_FN)
    c_free = ctypes.cast(libc.free, DESTROY_FN)
    text = ctypes.create_string_buffer(b"hello from C")  # retained: keep it
    fut = c_void_p()
    rc = lib.stage_go(st, strdup, ctypes.cast(text, c_void_p), c_free,
                      byref(fut))
    check(rc == 0 and fut.value is not None, "stage_go(strdup) started")
    value = c_void_p()
    check(lib.stage_future_get(fut, T_LONG, byref(value)) == 0,
          "stage_future_get on the C task returned 0")
    check(ctypes.string_at(value) == b"hello from C",
          "the C task returned a copy of its argument")
    taken = c_void_p()
    check(lib.stage_future_take(fut, byref(taken)) == 0
          and taken.value == value.value, "stage_future_take handed it over")
    libc.free(taken)  # ours now: the future no longer destroys it
    lib.stage_future_unref(fut)

    # 2. A Python function on a pool thread: ctypes acquires the GIL there.
    # The CFUNCTYPE object must outlive every call the library may make.
    seen = []

    @TASK_FN
    def add_one(arg):
        seen.append(arg)
        return (arg or 0) + 1

    fut = c_void_p()
    check(lib.stage_go(st, add_one, 41, DESTROY_FN(), byref(fut)) == 0,
          "stage_go(Python function) started")
    check(lib.stage_future_get(fut, T_LONG, byref(value)) == 0
          and value.value == 42, "the Python task returned 42")
    check(lib.stage_future_state(fut) == STAGE_DONE and seen == [41],
          "the response is DONE and the task ran once")
    lib.stage_future_unref(fut)

    # 3. A Python coroutine on the loop thread feeds a tunnel.  It calls
    # nothing that may suspend (see stage(7): the interpreter's thread state
    # is per thread, and all the Stage's coroutines share one thread).
    tunnel = lib.stage_tunnel_new(STAGE_FOREVER, 0, DESTROY_FN())
    check(tunnel is not None, "stage_tunnel_new returned a tunnel")
    reader = lib.stage_tunnel_reader_new(tunnel, STAGE_FOREVER)
    check(reader is not None, "stage_tunnel_reader_new returned a reader")

    @TASK_FN
    def producer(arg):
        for k in (1, 2, 3):
            if lib.stage_tunnel_put(arg, k) != 0:
                return None
        lib.stage_tunnel_close(arg)
        return 7

    fut = c_void_p()
    check(lib.stage_go_coro(st, producer, tunnel, DESTROY_FN(),
                            byref(fut)) == 0, "stage_go_coro started")
    got = []
    item = c_void_p()
    while True:
        rc = lib.stage_tunnel_next(reader, byref(item))
        if rc != 0:
            break
        got.append(item.value)
    check(got == [1, 2, 3] and rc == errno.EPIPE,
          "the reader got 1 2 3, then EPIPE (got %r, %s)"
          % (got, errno.errorcode.get(rc, rc)))
    lib.stage_tunnel_reader_free(reader)
    items = POINTER(c_void_p)()
    count = c_size_t()
    rc = lib.stage_tunnel_collect(tunnel, STAGE_FOREVER, byref(items),
                                  byref(count))
    check(rc == 0 and [items[i] for i in range(count.value)] == [1, 2, 3],
          "stage_tunnel_collect returned [1, 2, 3]")
    libc.free(items)  # the array is ours, the items are the tunnel's
    check(lib.stage_future_get(fut, T_LONG, byref(value)) == 0
          and value.value == 7, "the coroutine returned 7")
    lib.stage_future_unref(fut)
    lib.stage_tunnel_unref(tunnel)

    # Errors are returned as errno values; constructors set errno.
    check(lib.stage_go(None, add_one, None, DESTROY_FN(), None)
          == errno.EINVAL, "stage_go(NULL Stage) returned EINVAL")
    pending = lib.stage_future_new()
    check(lib.stage_future_wait(pending, 0.01) == errno.ETIMEDOUT,
          "waiting on a pending future timed out with ETIMEDOUT")
    lib.stage_future_unref(pending)
    ctypes.set_errno(0)
    check(lib.stage_queue_new(0, DESTROY_FN()) is None
          and ctypes.get_errno() == errno.EINVAL,
          "stage_queue_new(0) returned NULL with errno EINVAL")

    check(lib.stage_close(st, T_LONG) == 0, "stage_close returned 0")
    check(lib.stage_free(st) == 0, "stage_free returned 0")
    # The waits above gave this thread a loop: free it (stage(7)).
    check(lib.stage_loop_free(lib.stage_loop_current()) == 0,
          "stage_loop_free returned 0")
    print("ctypes_binding.py: %d checks passed" % checks)
    return 0


if __name__ == "__main__":
    sys.exit(main())
