/* SPDX-License-Identifier: MIT */
/*
 * common.h - helpers shared by the Check programs of the core runtime.
 *
 *   - t_time(): CLOCK_MONOTONIC in seconds (independent of the library, so
 *     the library's clock can be checked against it);
 *   - t_tol(): a tolerance factor for every time bound.  1 normally; wider
 *     under valgrind (RUNNING_ON_VALGRIND when <valgrind/valgrind.h> exists)
 *     or when STAGE_TEST_SLOW is set (a number > 1 is used as the factor);
 *   - counted values: a value whose destructor counts how often it ran, to
 *     check that a destructor ran exactly once (or never);
 *   - plain pthread helpers that die loudly on failure;
 *   - t_tcase(): a test case whose checked teardown frees the main thread's
 *     loop and lets the test's detached threads finish exiting, so that
 *     every test ends valgrind-clean (STYLE.md 2.4);
 *   - T_MAIN(): the suite runner main.
 *
 * Rules the tests follow: no ck_assert off the main thread or inside a
 * coroutine body (in CK_FORK=no mode Check longjmps, which is undefined from
 * another thread or stack); bodies record what they saw and the test asserts
 * afterwards.  Threads and coroutines are ordered with the library's own
 * futures or with pthread barriers, never with "sleep and hope"; time checks
 * are only order and generous ratios, scaled by t_tol().
 */
#ifndef STAGE_T_COMMON_H
#define STAGE_T_COMMON_H

#ifdef HAVE_CONFIG_H
#include "config.h" /* AC_USE_SYSTEM_EXTENSIONS: _GNU_SOURCE and friends */
#elif !defined(_GNU_SOURCE)
#define _GNU_SOURCE 1 /* pthread barriers, pipe2, rlimits under -std=c11 */
#endif

#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <stage.h>

#if defined(HAVE_VALGRIND_VALGRIND_H)
#include <valgrind/valgrind.h>
#define T_HAVE_VALGRIND 1
#elif defined(__has_include)
#if __has_include(<valgrind/valgrind.h>)
#include <valgrind/valgrind.h>
#define T_HAVE_VALGRIND 1
#endif
#endif

/* ---- Time --------------------------------------------------------------- */

/* CLOCK_MONOTONIC in seconds. */
static inline double t_time(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Non-zero when running under valgrind. */
static inline int t_on_valgrind(void)
{
#ifdef T_HAVE_VALGRIND
    return RUNNING_ON_VALGRIND ? 1 : 0;
#else
    return 0;
#endif
}

/* Non-zero under a user-mode emulator (qemu-user), which .ci/aarch64
 * announces with STAGE_TEST_EMULATOR=qemu-aarch64: like valgrind, qemu-user
 * runs posix_spawn's vfork-style clone as a fork, so some kernel-visible
 * details differ (a failed exec is the child's exit 127, not an error of
 * the spawn). */
static inline int t_on_emulator(void)
{
    const char *e = getenv("STAGE_TEST_EMULATOR");

    return e != NULL && *e != '\0';
}

/* Non-zero when time bounds must be widened and stress loops scaled down:
 * under valgrind, or when STAGE_TEST_SLOW is set (an emulator such as
 * qemu-user, where every first run of a code path is translated, or a
 * loaded machine). */
static inline int t_slow(void)
{
    const char *e = getenv("STAGE_TEST_SLOW");

    return t_on_valgrind() || (e != NULL && *e != '\0' && strcmp(e, "0"));
}

/* Factor applied to every upper time bound. */
static inline double t_tol(void)
{
    const char *e = getenv("STAGE_TEST_SLOW");

    if (e != NULL && *e != '\0' && strcmp(e, "0")) {
        double f = strtod(e, NULL);

        if (f > 1.0)
            return f;
        return 30.0;
    }
    return t_on_valgrind() ? 30.0 : 1.0;
}

/* Nanoseconds in `s` seconds, rounded down: the least a sleep of `s` may
 * last, whichever way the library rounds the conversion. */
static inline int64_t t_s2ns(double s)
{
    return (int64_t)floor(s * 1e9);
}

/* Seconds between two stage_now() readings. */
static inline double t_ns2s(int64_t ns)
{
    return (double)ns / 1e9;
}

/* ---- Counted values ----------------------------------------------------- */

/* A heap value whose destructor counts its runs in *freed. */
typedef struct t_val {
    atomic_int *freed; /* incremented by t_val_free (may be NULL) */
    intptr_t id;       /* whatever the test wants to check */
} t_val;

static inline t_val *t_val_new(atomic_int *freed, intptr_t id)
{
    t_val *v = malloc(sizeof *v);

    ck_assert_ptr_nonnull(v);
    v->freed = freed;
    v->id = id;
    return v;
}

/* stage_destroy_fn for t_val. */
static inline void t_val_free(void *p)
{
    t_val *v = p;

    if (v->freed != NULL)
        atomic_fetch_add(v->freed, 1);
    free(v);
}

/* Wait (bounded) until *count reaches `want`; returns the final count.  For
 * destructors that run on another thread when that thread drops the last
 * reference (a thread task's own reference goes as it ends, possibly just
 * after its waiters were woken): a condition wait, not an ordering guess. */
static inline int t_wait_count(atomic_int *count, int want, double timeout)
{
    double deadline = t_time() + timeout * t_tol();
    struct timespec ts = {0, 200 * 1000};

    while (atomic_load(count) < want && t_time() < deadline)
        nanosleep(&ts, NULL);
    return atomic_load(count);
}

/* ---- Threads ------------------------------------------------------------ */

static inline pthread_t t_thread_start(void *(*fn)(void *), void *arg)
{
    pthread_t th;
    int rc = pthread_create(&th, NULL, fn, arg);

    ck_assert_int_eq(rc, 0);
    return th;
}

static inline void *t_thread_join(pthread_t th)
{
    void *ret = NULL;

    ck_assert_int_eq(pthread_join(th, &ret), 0);
    return ret;
}

/* A future resolved with no value and no destructor: a one-shot latch. */
static inline void t_latch_open(stage_future *f)
{
    int rc = stage_future_resolve(f, NULL, NULL);

    (void)rc;
}

/* ---- Check plumbing ----------------------------------------------------- */

/* Entries of a directory but . and .., or -1 when it cannot be read. */
static inline int t_dir_count(const char *path)
{
    DIR *d = opendir(path);
    struct dirent *e;
    int n = 0;

    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    return n;
}

/* Threads of this process (Linux /proc), or -1 when unknown. */
static inline int t_thread_count(void)
{
    return t_dir_count("/proc/self/task");
}

/* The thread count once it has fallen to `expected`, waiting at most
 * `secs` for it: a thread that was joined, or that settled its future as
 * its last act, may still be listed in /proc/self/task for a moment (the
 * kernel ends a join when it clears the thread's tid, before it drops the
 * task).  A condition wait on the count, not a guess. */
static inline int t_threads_settle(int expected, double secs)
{
    struct timespec ts = {0, 500 * 1000};
    double deadline = t_time() + secs;

    while (t_thread_count() > expected && t_time() < deadline)
        nanosleep(&ts, NULL);
    return t_thread_count();
}

/* Open fds of this process (Linux /proc), or -1 when unknown.  (The count
 * includes the one opendir uses, every time alike.) */
static inline int t_fd_count(void)
{
    return t_dir_count("/proc/self/fd");
}

/* Threads alive when the test started (set by the setup fixture). */
static int t_threads_at_start = -1;

static inline void t_setup(void)
{
    t_threads_at_start = t_thread_count();
}

/* Every test ends by freeing the main thread's loop (valgrind-clean exit);
 * tests that free it themselves get a fresh one here, freed again.
 *
 * Then it waits (bounded) for the threads the test started to be gone.  A
 * stage_thread_spawn thread is detached and settles its future as its last
 * act, but still has to return and exit after that; if the process exits
 * first (Check's child exits right after the teardown), memcheck reports
 * that thread's TLS block (allocate_dtv, from pthread_create) as "possibly
 * lost".  This is a condition wait on the thread count, not a guess. */
static inline void t_teardown(void)
{
    stage_loop *loop = stage_loop_current();

    ck_assert_ptr_nonnull(loop);
    ck_assert_int_eq(stage_loop_free(loop), 0);
    /* Only memcheck needs it; sanitizer runtimes start threads of their
     * own, which would keep the count above the baseline. */
    if (t_threads_at_start < 0 || !t_on_valgrind())
        return;
    t_threads_settle(t_threads_at_start, 5.0 * t_tol());
}

/* Check timeout in seconds for a test case of nominal length `secs`: widened
 * by t_tol() unless CK_TIMEOUT_MULTIPLIER already does it. */
static inline double t_timeout(double secs)
{
    if (getenv("CK_TIMEOUT_MULTIPLIER") != NULL)
        return secs;
    return secs * t_tol();
}

/* A new test case with the loop-freeing teardown and a timeout. */
static inline TCase *t_tcase(Suite *s, const char *name, double secs)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, t_setup, t_teardown);
    tcase_set_timeout(tc, t_timeout(secs));
    suite_add_tcase(s, tc);
    return tc;
}

/* The main of every Check program: run the suite, exit status = failures. */
#define T_MAIN(suite_fn)                                                      \
    int main(void)                                                            \
    {                                                                         \
        SRunner *t_sr = srunner_create(suite_fn());                           \
        int t_failed;                                                         \
                                                                              \
        srunner_run_all(t_sr, CK_ENV);                                        \
        t_failed = srunner_ntests_failed(t_sr);                               \
        srunner_free(t_sr);                                                   \
        return t_failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;                   \
    }

#endif /* STAGE_T_COMMON_H */
