/* SPDX-License-Identifier: MIT */
/*
 * pool.c - a million tiny tasks: stage_pool beside GLib's GThreadPool,
 * libuv's uv_queue_work and a pthread per task (bench/README, "Peer
 * benchmarks").
 *
 *   bench/pool [SCALE]    SCALE * 1,000,000 tasks per run, best of 3
 *
 * Every pool has 2 worker threads (UV_THREADPOOL_SIZE=2 for libuv).  The
 * task is one relaxed atomic add.  Submitted and awaited:
 *   libstage   stage_pool_submit with a future each, 1000 outstanding at a
 *              time (submit 1000, get 1000), and detached (no future; the
 *              last task resolves a barrier future that main waits on);
 *   GLib       g_thread_pool_push, then g_thread_pool_free(wait);
 *   libuv      uv_queue_work with an after-work callback on the loop, then
 *              uv_run until every callback ran;
 *   pthreads   pthread_create + pthread_join per task (SCALE * 10,000).
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <stage.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef BENCH_HAVE_LIBUV
#include <uv.h>
#endif
#ifdef BENCH_HAVE_GLIB
#include <glib.h>
#endif

#define BENCH_PROG "bench/pool"
#define BENCH_WHAT_W 38
#define BENCH_CUSTOM_ROWS
#include "bench.h"
#include "peers.h"

static atomic_long done;

static void *tiny(void *arg)
{
    atomic_fetch_add_explicit(&done, 1, memory_order_relaxed);
    return arg;
}

/* ---- libstage ---------------------------------------------------------------- */

static stage_pool *pool;

static double stage_futures(long n)
{
    enum { WINDOW = 1000 };
    stage_future *f[WINDOW];
    atomic_store(&done, 0);
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i += WINDOW) {
        long k = n - i < WINDOW ? n - i : WINDOW;
        for (long j = 0; j < k; j++)
            CHECK(stage_pool_submit(pool, tiny, NULL, NULL, &f[j]));
        for (long j = 0; j < k; j++) {
            CHECK(stage_future_wait(f[j], STAGE_FOREVER));
            stage_future_unref(f[j]);
        }
    }
    int64_t t1 = stage_now();
    if (atomic_load(&done) != n)
        exit(1);
    return (double)(t1 - t0) / (double)n;
}

static atomic_long left;
static stage_future *barrier;

static void *tiny_last(void *arg)
{
    tiny(arg);
    if (atomic_fetch_sub_explicit(&left, 1, memory_order_acq_rel) == 1)
        CHECK(stage_future_resolve(barrier, NULL, NULL));
    return NULL;
}

static double stage_detached(long n)
{
    atomic_store(&done, 0);
    atomic_store(&left, n);
    barrier = stage_future_new();
    CHECK_PTR(barrier);
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++)
        CHECK(stage_pool_submit(pool, tiny_last, NULL, NULL, NULL));
    CHECK(stage_future_wait(barrier, STAGE_FOREVER));
    int64_t t1 = stage_now();
    stage_future_unref(barrier);
    return (double)(t1 - t0) / (double)n;
}

/* ---- GLib: GThreadPool --------------------------------------------------------- */

#ifdef BENCH_HAVE_GLIB
static void g_task(gpointer data, gpointer user)
{
    (void)user;
    tiny(data);
}

static double glib_pool(long n)
{
    atomic_store(&done, 0);
    GThreadPool *gp = g_thread_pool_new(g_task, NULL, 2, TRUE, NULL);
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++)
        g_thread_pool_push(gp, &done, NULL); /* data must not be NULL */
    g_thread_pool_free(gp, FALSE, TRUE);
    int64_t t1 = stage_now();
    if (atomic_load(&done) != n)
        exit(1);
    return (double)(t1 - t0) / (double)n;
}
#endif

/* ---- libuv: uv_queue_work -------------------------------------------------------- */

#ifdef BENCH_HAVE_LIBUV
static void uv_task(uv_work_t *w) { tiny(w); }
static long uv_after;
static void uv_after_cb(uv_work_t *w, int status)
{
    (void)w;
    (void)status;
    uv_after++;
}

static double uv_pool(long n)
{
    atomic_store(&done, 0);
    uv_after = 0;
    uv_loop_t *loop = uv_default_loop();
    uv_work_t *w = malloc((size_t)n * sizeof *w);
    CHECK_PTR(w);
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++)
        CHECK(-uv_queue_work(loop, &w[i], uv_task, uv_after_cb));
    uv_run(loop, UV_RUN_DEFAULT);
    int64_t t1 = stage_now();
    free(w);
    if (uv_after != n)
        exit(1);
    return (double)(t1 - t0) / (double)n;
}
#endif

/* ---- pthreads: a thread per task ------------------------------------------------- */

static double thread_per_task(long n)
{
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++) {
        pthread_t th;
        CHECK(pthread_create(&th, NULL, tiny, NULL));
        CHECK(pthread_join(th, NULL));
    }
    return (double)(stage_now() - t0) / (double)n;
}

/* ---- Rows ------------------------------------------------------------------------- */

enum { L_FUT, L_DET, P_GLIB, P_UV, P_THREAD, NCONT };

static double run_contender(int c, long n)
{
    switch (c) {
    case L_FUT:
        return stage_futures(n);
    case L_DET:
        return stage_detached(n);
#ifdef BENCH_HAVE_GLIB
    case P_GLIB:
        return glib_pool(n);
#endif
#ifdef BENCH_HAVE_LIBUV
    case P_UV:
        return uv_pool(n);
#endif
    case P_THREAD:
        return thread_per_task(n / 100 > 10 ? n / 100 : 10);
    default:
        return -1;
    }
}

int main(int argc, char **argv)
{
    parse_scale(argc, argv);
    /* Before libuv's first use: 2 workers, like the others. */
    setenv("UV_THREADPOOL_SIZE", "2", 1);
    long n = iters(1000000, 1000);
    pool = stage_pool_new("bench", 2, 2, STAGE_FOREVER);
    CHECK_PTR(pool);
    char title[96];
    snprintf(title, sizeof title, "%s: %ld tiny tasks per run, best of %d",
             prog, n, REPS);
    peers_header(title, 0);
    double best[NCONT];
    for (int c = 0; c < NCONT; c++) {
        best[c] = -1;
        run_contender(c, n / 20 + 1);
    }
    for (int r = 0; r < REPS; r++)
        for (int c = 0; c < NCONT; c++) {
            double v = run_contender(c, n);
            if (v >= 0 && (best[c] < 0 || v < best[c]))
                best[c] = v;
        }
    static const char *const what[2] = {"pool, a future per task",
                                        "pool, detached tasks"};
    static const char *const alt[NCONT] = {
        [P_GLIB] = "GLib GThreadPool (2 threads)",
        [P_UV] = "libuv uv_queue_work (2 threads)",
        [P_THREAD] = "pthread_create+join per task"};
    for (int k = 0; k < 2; k++)
        for (int c = P_GLIB; c < NCONT; c++)
            if (best[c] > 0) {
                char id[8];
                snprintf(id, sizeof id, "1%c", 'a' + k * 3 + (c - P_GLIB));
                peer_row(id, what[k], "M tasks/s", 1e3 / best[L_FUT + k],
                         1e3 / best[c], alt[c]);
            }
    CHECK(stage_pool_close(pool, 0, STAGE_FOREVER));
    CHECK(stage_pool_free(pool));
    printf("\ntarget: at least 2x GThreadPool and ahead of uv_queue_work "
           "(issue 8)\n");
    return 0;
}
