/* SPDX-License-Identifier: MIT */
/*
 * queue.c - one producer, one consumer: stage_queue beside a pthread
 * bounded ring and GLib's GAsyncQueue (bench/README, "Peer benchmarks").
 *
 *   bench/queue [SCALE]    SCALE * 10,000,000 items per run, best of 3
 *
 * The producer is a thread; the consumer is another thread, or (libstage
 * only) a coroutine on main's loop.  Capacity 1024 for stage_queue and the
 * pthread ring (a mutex and two condition variables, signalled only when a
 * side sleeps); GAsyncQueue has no capacity (it never blocks a producer).
 * Items are the pointers 1 .. N and the consumer checks their order.
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
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef BENCH_HAVE_GLIB
#include <glib.h>
#endif

#define BENCH_PROG "bench/queue"
#define BENCH_WHAT_W 40
#define BENCH_CUSTOM_ROWS
#include "bench.h"
#include "peers.h"

#define CAP 1024

struct run {
    long n;
    stage_queue *q;
#ifdef BENCH_HAVE_GLIB
    GAsyncQueue *gq;
#endif
    /* pthread ring */
    pthread_mutex_t m;
    pthread_cond_t not_full, not_empty;
    void *ring[CAP];
    size_t head, count;
    int wait_full, wait_empty;
};

static void check_item(void *v, long i)
{
    if ((intptr_t)v != i + 1) {
        fprintf(stderr, "%s: item %ld is %p\n", prog, i, v);
        exit(1);
    }
}

/* ---- libstage ---------------------------------------------------------------- */

static void *stage_producer(void *arg)
{
    struct run *r = arg;
    for (long i = 1; i <= r->n; i++)
        CHECK(stage_queue_put(r->q, (void *)(intptr_t)i, STAGE_FOREVER));
    CHECK(stage_queue_close(r->q));
    return NULL;
}

static void *stage_consumer(void *arg)
{
    struct run *r = arg;
    void *v;
    long i = 0;
    int err;
    while ((err = stage_queue_get(r->q, &v, STAGE_FOREVER)) == 0)
        check_item(v, i++);
    if (err != EPIPE || i != r->n)
        exit(1);
    return NULL;
}

/* coro: the consumer is a coroutine of main's loop. */
static double stage_run_(long n, int coro)
{
    struct run r = {.n = n};
    r.q = stage_queue_new(CAP, NULL);
    CHECK_PTR(r.q);
    stage_future *p;
    int64_t t0 = stage_now();
    CHECK(stage_thread_spawn(stage_producer, &r, NULL, &p));
    if (coro)
        CHECK(stage_run(stage_consumer, &r, NULL, NULL));
    else
        stage_consumer(&r);
    int64_t t1 = stage_now();
    CHECK(stage_future_wait(p, STAGE_FOREVER));
    stage_future_unref(p);
    stage_queue_unref(r.q);
    return (double)(t1 - t0) / (double)n;
}

/* ---- pthreads: bounded ring ---------------------------------------------------- */

/* One lock per item on each side, as stage_queue does. */
static void *ring_producer(void *arg)
{
    struct run *r = arg;
    for (long i = 1; i <= r->n + 1; i++) { /* n + 1: NULL ends it */
        pthread_mutex_lock(&r->m);
        while (r->count == CAP) {
            r->wait_full = 1;
            pthread_cond_wait(&r->not_full, &r->m);
        }
        r->ring[(r->head + r->count++) % CAP] =
            i <= r->n ? (void *)(intptr_t)i : NULL;
        if (r->wait_empty) {
            r->wait_empty = 0;
            pthread_cond_signal(&r->not_empty);
        }
        pthread_mutex_unlock(&r->m);
    }
    return NULL;
}

static double ring_run(long n)
{
    struct run r = {.n = n};
    pthread_mutex_init(&r.m, NULL);
    pthread_cond_init(&r.not_full, NULL);
    pthread_cond_init(&r.not_empty, NULL);
    pthread_t th;
    int64_t t0 = stage_now();
    CHECK(pthread_create(&th, NULL, ring_producer, &r));
    for (long i = 0;; i++) {
        pthread_mutex_lock(&r.m);
        while (r.count == 0) {
            r.wait_empty = 1;
            pthread_cond_wait(&r.not_empty, &r.m);
        }
        void *v = r.ring[r.head];
        r.head = (r.head + 1) % CAP;
        r.count--;
        if (r.wait_full) {
            r.wait_full = 0;
            pthread_cond_signal(&r.not_full);
        }
        pthread_mutex_unlock(&r.m);
        if (!v)
            break;
        check_item(v, i);
    }
    int64_t t1 = stage_now();
    CHECK(pthread_join(th, NULL));
    pthread_cond_destroy(&r.not_full);
    pthread_cond_destroy(&r.not_empty);
    pthread_mutex_destroy(&r.m);
    return (double)(t1 - t0) / (double)n;
}

/* ---- GLib: GAsyncQueue ---------------------------------------------------------- */

#ifdef BENCH_HAVE_GLIB
static int end_marker;

static void *gq_producer(void *arg)
{
    struct run *r = arg;
    for (long i = 1; i <= r->n; i++)
        g_async_queue_push(r->gq, (void *)(intptr_t)i);
    g_async_queue_push(r->gq, &end_marker); /* GAsyncQueue refuses NULL */
    return NULL;
}

static double gq_run(long n)
{
    struct run r = {.n = n};
    r.gq = g_async_queue_new();
    pthread_t th;
    int64_t t0 = stage_now();
    CHECK(pthread_create(&th, NULL, gq_producer, &r));
    for (long i = 0;; i++) {
        void *v = g_async_queue_pop(r.gq);
        if (v == &end_marker)
            break;
        check_item(v, i);
    }
    int64_t t1 = stage_now();
    CHECK(pthread_join(th, NULL));
    g_async_queue_unref(r.gq);
    return (double)(t1 - t0) / (double)n;
}
#endif

/* ---- Rows ------------------------------------------------------------------------- */

enum { L_TT, L_TC, P_RING, P_GQ, NCONT };

static double run_contender(int c, long n)
{
    switch (c) {
    case L_TT:
        return stage_run_(n, 0);
    case L_TC:
        return stage_run_(n, 1);
    case P_RING:
        return ring_run(n);
#ifdef BENCH_HAVE_GLIB
    case P_GQ:
        return gq_run(n);
#endif
    default:
        return -1;
    }
}

int main(int argc, char **argv)
{
    parse_scale(argc, argv);
    long n = iters(10000000, 1000);
    char title[96];
    snprintf(title, sizeof title, "%s: %ld items per run, best of %d", prog,
             n, REPS);
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
    static const char *const what[2] = {"queue thread->thread",
                                        "queue thread->coroutine"};
    static const char *const alt[NCONT] = {
        [P_RING] = "pthread bounded ring (mutex+2 condvars)",
        [P_GQ] = "GLib GAsyncQueue (unbounded)"};
    for (int k = 0; k < 2; k++)
        for (int c = P_RING; c < NCONT; c++)
            if (best[c] > 0) {
                char id[8];
                snprintf(id, sizeof id, "1%c", 'a' + k * 2 + (c - P_RING));
                /* Rates: ratio = libstage rate / alternative rate. */
                peer_row(id, what[k], "M items/s", 1e3 / best[L_TT + k],
                         1e3 / best[c], alt[c]);
            }
    printf("\ntarget: at least 2x GAsyncQueue (issue 8)\n");
    return 0;
}
