/* SPDX-License-Identifier: MIT */
/*
 * common-int.h - what every file of the library includes first.
 *
 * config.h, the public header with STAGE_BUILDING set (so STAGE_API exports
 * the symbol), an assert that stays on in coverage builds (which define
 * NDEBUG), and small helpers shared by all modules.
 */
#ifndef STAGE_COMMON_INT_H
#define STAGE_COMMON_INT_H

#include "config.h"

#ifndef STAGE_BUILDING
#define STAGE_BUILDING 1
#endif
#include "stage.h"

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

/* Thread-locals of a shared library default to the general-dynamic model, a
 * call per access.  The library's few thread-locals fit the static TLS
 * surplus that glibc and musl keep even for dlopen()ed libraries. */
#if defined(__GNUC__) && !defined(STAGE_NO_TLS_MODEL)
#define STAGE__TLS_MODEL __attribute__((tls_model("initial-exec")))
#else
#define STAGE__TLS_MODEL
#endif

#define stage__likely(x) __builtin_expect(!!(x), 1)
#define stage__unlikely(x) __builtin_expect(!!(x), 0)

#define stage__container_of(ptr, type, member)                                \
    ((type *)(void *)((char *)(ptr) - offsetof(type, member)))

/* Internal invariants.  Always on: a broken invariant in a concurrency
 * library is better reported at once than as a corrupted heap later. */
#define stage__assert(x)                                                      \
    do {                                                                      \
        if (stage__unlikely(!(x)))                                            \
            stage__panic(__FILE__, __LINE__, #x);                             \
    } while (0)

_Noreturn void stage__panic(const char *file, int line, const char *what);

/* Relative timeout in seconds -> absolute CLOCK_MONOTONIC deadline in ns.
 * -1 means "no deadline".  Returns EINVAL for NaN. */
int stage__deadline(double timeout, int64_t *deadline);
/* Back to a relative timeout for a call that takes one, when a loop waits
 * several times for one deadline: STAGE_FOREVER for -1, else the seconds
 * left, 0 once it passed (a last look). */
double stage__time_left(int64_t deadline);

/* Initialise a mutex that two threads take in turn at a high rate: a
 * stream primitive's (a queue between a producer and a consumer).
 * Adaptive where the C library has it (glibc): a thread that finds it
 * taken spins for a bounded moment (glibc's adaptive spin count, then the
 * usual futex sleep) instead of sleeping in the kernel at once.  The
 * critical sections are a few dozen instructions, so the holder is usually
 * done by then: bench/queue measured 4.6 -> 9.8 M items/s between two
 * threads.  The spin is bounded, so a thread sharing one CPU with the
 * holder soon sleeps as before (bench/queue under taskset -c 0:
 * unchanged).  A pool's job list measured no better with it (there the
 * wake-ups of sleeping workers cost most).  Returns pthread_mutex_init's
 * result. */
static inline int stage__mutex_init_hot(pthread_mutex_t *m)
{
#if HAVE_DECL_PTHREAD_MUTEX_ADAPTIVE_NP
    pthread_mutexattr_t attr;
    int err = pthread_mutexattr_init(&attr);
    if (err)
        return err;
    pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ADAPTIVE_NP);
    err = pthread_mutex_init(m, &attr);
    pthread_mutexattr_destroy(&attr);
    return err;
#else
    return pthread_mutex_init(m, NULL);
#endif
}

#endif
