/* SPDX-License-Identifier: MIT */
/*
 * stage.c - pools and Stages: task throughput and go/get round trips,
 * each beside a plain-pthreads baseline measured in the same run.
 *
 *   bench/stage [SCALE]       SCALE multiplies every iteration count
 *                             (default 1, or $BENCH_SCALE); 0.1 = quick run
 *
 * One table on stdout, in the form of bench/core: every figure is the best
 * of REPS timed runs (after one untimed warm-up run of a twentieth), the
 * libstage and baseline runs of a row alternate, and cs/op comes from
 * getrusage.  Iteration counts are fixed (times SCALE), not calibrated.
 * See bench/README.  Only the public API (stage.h) is used.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif

#include <stage.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_PROG "bench/stage"
#include "bench.h"

/* ---- 1. Pool throughput ------------------------------------------------- */

#define POOL_WORKERS 2

static stage_pool *pool;
static atomic_long sink; /* the tiny tasks' work */

/* The tiny task: one relaxed atomic add. */
static void *tiny(void *arg)
{
    atomic_fetch_add_explicit(&sink, 1, memory_order_relaxed);
    return arg;
}

/* 1a: submit n tasks with futures, then get every future. */
static double pool_futures(long n)
{
    stage_future **f = malloc((size_t)n * sizeof *f);
    CHECK_PTR(f);
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++)
        CHECK(stage_pool_submit(pool, tiny, NULL, NULL, &f[i]));
    for (long i = 0; i < n; i++) {
        CHECK(stage_future_get(f[i], STAGE_FOREVER, NULL));
        stage_future_unref(f[i]);
    }
    int64_t t1 = stage_now();
    free(f);
    return (double)(t1 - t0) / (double)n;
}

/* 1b: the same, but at most FBATCH futures outstanding: submit FBATCH,
 * get them all, repeat. */
#define FBATCH 1000

static double pool_futures_batched(long n)
{
    stage_future *f[FBATCH];
    int64_t t0 = stage_now();
    for (long b = 0; b < n; b += FBATCH) {
        long k = n - b < FBATCH ? n - b : FBATCH;
        for (long i = 0; i < k; i++)
            CHECK(stage_pool_submit(pool, tiny, NULL, NULL, &f[i]));
        for (long i = 0; i < k; i++) {
            CHECK(stage_future_get(f[i], STAGE_FOREVER, NULL));
            stage_future_unref(f[i]);
        }
    }
    return (double)(stage_now() - t0) / (double)n;
}

/* 1c: detached tasks; the last one to finish resolves a barrier future. */
struct detached {
    atomic_long left;
    stage_future *done;
};

static void *tiny_counted(void *arg)
{
    struct detached *d = arg;
    atomic_fetch_add_explicit(&sink, 1, memory_order_relaxed);
    if (atomic_fetch_sub_explicit(&d->left, 1, memory_order_acq_rel) == 1)
        CHECK(stage_future_resolve(d->done, NULL, NULL));
    return NULL;
}

static double pool_detached(long n)
{
    struct detached d;
    atomic_init(&d.left, n);
    d.done = stage_future_new();
    CHECK_PTR(d.done);
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++)
        CHECK(stage_pool_submit(pool, tiny_counted, &d, NULL, NULL));
    CHECK(stage_future_wait(d.done, STAGE_FOREVER));
    int64_t t1 = stage_now();
    stage_future_unref(d.done);
    return (double)(t1 - t0) / (double)n;
}

/* Baseline: a mutex + condvar work queue (a malloc'd node per task, like a
 * pool job) served by POOL_WORKERS threads started once; the submitter
 * waits on a second condvar until the done count reaches n. */
struct wnode {
    struct wnode *next;
    void *(*fn)(void *);
    void *arg;
};

static struct wq {
    pthread_mutex_t m;
    pthread_cond_t work, done;
    struct wnode *head, *tail;
    int idle;  /* workers waiting on `work` */
    int stop;
    long finished, target;
    pthread_t th[POOL_WORKERS];
} wq;

static void *wq_worker(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&wq.m);
    for (;;) {
        while (!wq.head && !wq.stop) {
            wq.idle++;
            pthread_cond_wait(&wq.work, &wq.m);
            wq.idle--;
        }
        if (!wq.head)
            break;
        struct wnode *j = wq.head;
        wq.head = j->next;
        if (!wq.head)
            wq.tail = NULL;
        pthread_mutex_unlock(&wq.m);
        j->fn(j->arg);
        free(j);
        pthread_mutex_lock(&wq.m);
        if (++wq.finished == wq.target)
            pthread_cond_signal(&wq.done);
    }
    pthread_mutex_unlock(&wq.m);
    return NULL;
}

static void wq_start(void)
{
    pthread_mutex_init(&wq.m, NULL);
    pthread_cond_init(&wq.work, NULL);
    pthread_cond_init(&wq.done, NULL);
    for (int i = 0; i < POOL_WORKERS; i++)
        CHECK(pthread_create(&wq.th[i], NULL, wq_worker, NULL));
}

static void wq_stop(void)
{
    pthread_mutex_lock(&wq.m);
    wq.stop = 1;
    pthread_cond_broadcast(&wq.work);
    pthread_mutex_unlock(&wq.m);
    for (int i = 0; i < POOL_WORKERS; i++)
        CHECK(pthread_join(wq.th[i], NULL));
    pthread_cond_destroy(&wq.work);
    pthread_cond_destroy(&wq.done);
    pthread_mutex_destroy(&wq.m);
}

static double plain_queue(long n)
{
    pthread_mutex_lock(&wq.m);
    wq.finished = 0;
    wq.target = n;
    pthread_mutex_unlock(&wq.m);
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++) {
        struct wnode *j = malloc(sizeof *j);
        CHECK_PTR(j);
        j->next = NULL;
        j->fn = tiny;
        j->arg = NULL;
        pthread_mutex_lock(&wq.m);
        if (wq.tail)
            wq.tail->next = j;
        else
            wq.head = j;
        wq.tail = j;
        if (wq.idle)
            pthread_cond_signal(&wq.work);
        pthread_mutex_unlock(&wq.m);
    }
    pthread_mutex_lock(&wq.m);
    while (wq.finished < n)
        pthread_cond_wait(&wq.done, &wq.m);
    pthread_mutex_unlock(&wq.m);
    return (double)(stage_now() - t0) / (double)n;
}

/* Baseline: one thread per task, created and joined one at a time. */
static double pthread_seq(long n)
{
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++) {
        pthread_t th;
        CHECK(pthread_create(&th, NULL, tiny, NULL));
        CHECK(pthread_join(th, NULL));
    }
    return (double)(stage_now() - t0) / (double)n;
}

/* ---- 2. Stage go + get round trips -------------------------------------- */

static stage *st;

static double go_rt(long n)
{
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++) {
        stage_future *f;
        CHECK(stage_go(st, tiny, NULL, NULL, &f));
        CHECK(stage_future_get(f, STAGE_FOREVER, NULL));
        stage_future_unref(f);
    }
    return (double)(stage_now() - t0) / (double)n;
}

static double go_coro_rt(long n)
{
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++) {
        stage_future *f;
        CHECK(stage_go_coro(st, tiny, NULL, NULL, &f));
        CHECK(stage_future_get(f, STAGE_FOREVER, NULL));
        stage_future_unref(f);
    }
    return (double)(stage_now() - t0) / (double)n;
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    parse_scale(argc, argv);
    char load[64];
    loadavg(load, sizeof load);
    printf("libstage %s pool/Stage benchmark: scale %g, %d workers, "
           "best of %d\n",
           stage_version_string(), scale, POOL_WORKERS, REPS);
    printf("load average at start: %s\n", load);
    print_header();
    int64_t start = stage_now();

    pool = stage_pool_new("bench", POOL_WORKERS, POOL_WORKERS,
                          STAGE_FOREVER);
    CHECK_PTR(pool);
    wq_start();
    long ntasks = iters(1000000, 1000);
    long nthreads = iters(10000, 100);

    /* 1. Pool throughput. */
    row("1a", "pool submit+get, futures", "tasks/s", SHOW_RATE,
        pool_futures, ntasks, plain_queue, ntasks,
        "mutex+cond work queue, 2 threads");
    row("1b", "pool submit+get, futures, 1000 at a time", "tasks/s",
        SHOW_RATE, pool_futures_batched, ntasks, plain_queue, ntasks,
        "mutex+cond work queue, 2 threads");
    row("1c", "pool submit detached, barrier future", "tasks/s", SHOW_RATE,
        pool_detached, ntasks, plain_queue, ntasks,
        "mutex+cond work queue, 2 threads");
    row("1d", "pool submit detached, per task", "us/task", SHOW_US,
        pool_detached, ntasks, pthread_seq, nthreads,
        "pthread_create + join per task");

    CHECK(stage_pool_close(pool, 0, STAGE_FOREVER));
    CHECK(stage_pool_free(pool));
    wq_stop();

    /* 2. Stage go + get round trips. */
    st = stage_new("bench", POOL_WORKERS, 0);
    CHECK_PTR(st);
    long nrt = iters(20000, 200);
    long nthreads_rt = iters(5000, 50);
    row("2a", "stage_go + future_get (pool task)", "us/RT", SHOW_US, go_rt,
        nrt, pthread_seq, nthreads_rt, "pthread_create + join");
    row("2b", "stage_go_coro + future_get (coroutine)", "us/RT", SHOW_US,
        go_coro_rt, nrt, pthread_seq, nthreads_rt, "pthread_create + join");
    CHECK(stage_free(st));

    CHECK(stage_loop_free(stage_loop_current()));
    loadavg(load, sizeof load);
    printf("\n(%ld tasks per pool run, %ld per pthread run; %ld round trips "
           "per go run, %ld per pthread run)\n", ntasks, nthreads, nrt,
           nthreads_rt);
    printf("total %.1f s; load average at end: %s\n",
           (double)(stage_now() - start) / 1e9, load);
    return 0;
}
