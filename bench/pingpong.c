/* SPDX-License-Identifier: MIT */
/*
 * pingpong.c - round trips between two sides, libstage futures beside a
 * pthread condvar ping-pong, libuv's uv_async_send and GLib's
 * GAsyncQueue (bench/README, "Peer benchmarks").
 *
 *   bench/pingpong [SCALE]    SCALE * 20,000 round trips per run, best of 3
 *
 * libstage: one fresh future per hop (the side that waits next makes a
 * future and hands it over as the value of the one the other side waits
 * on), between
 *   thread <-> thread        two plain threads;
 *   thread <-> coroutine     a coroutine on one thread's loop, a plain
 *                            thread on the other side;
 *   coroutine <-> coroutine  one coroutine on each of two threads' loops.
 * Each with both sides on one CPU (what `taskset -c 0` gives) and on two.
 * The alternatives run the same game on two threads with the same
 * placement: a mutex and two condition variables; two libuv loops poking
 * each other's uv_async_t; two GAsyncQueues.
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

#ifdef BENCH_HAVE_LIBUV
#include <uv.h>
#endif
#ifdef BENCH_HAVE_GLIB
#include <glib.h>
#endif

#define BENCH_PROG "bench/pingpong"
#define BENCH_WHAT_W 40
#define BENCH_CUSTOM_ROWS
#include "bench.h"
#include "peers.h"

/* A game: n round trips between side A (times them) and side B. */
struct game {
    long n;
    int place;
    int64_t ns;
    /* libstage */
    stage_future *first;
    /* pthreads */
    pthread_mutex_t m;
    pthread_cond_t c[2];
    int turn;
#ifdef BENCH_HAVE_LIBUV
    uv_loop_t loop[2];
    uv_async_t async[2];
    long count;
#endif
#ifdef BENCH_HAVE_GLIB
    GAsyncQueue *q[2];
#endif
};

/* ---- libstage: one future per hop ------------------------------------------- */

/* Side A: resolves `out` with a fresh future, waits for that one to be
 * resolved with B's next future, n times; then a NULL ends the game. */
static void *fut_a(void *arg)
{
    struct game *g = arg;
    pin_self(place_main(g->place));
    stage_future *out = g->first;
    int64_t t0 = stage_now();
    for (long i = 0; i < g->n; i++) {
        stage_future *back = stage_future_new();
        CHECK_PTR(back);
        CHECK(stage_future_resolve(out, stage_future_ref(back), NULL));
        stage_future_unref(out);
        void *v = NULL;
        CHECK(stage_future_get(back, STAGE_FOREVER, &v));
        stage_future_unref(back);
        out = v;
    }
    g->ns = stage_now() - t0;
    CHECK(stage_future_resolve(out, NULL, NULL));
    stage_future_unref(out);
    return NULL;
}

static void *fut_b(void *arg)
{
    struct game *g = arg;
    pin_self(place_peer(g->place));
    stage_future *in = g->first;
    for (;;) {
        void *v = NULL;
        CHECK(stage_future_get(in, STAGE_FOREVER, &v));
        stage_future_unref(in);
        if (!v)
            return NULL;
        stage_future *reply = v; /* A waits on it; our reference */
        in = stage_future_new();
        CHECK_PTR(in);
        CHECK(stage_future_resolve(reply, stage_future_ref(in), NULL));
        stage_future_unref(reply);
    }
}

/* Run fn as a coroutine on the calling thread's loop. */
static void *as_coro_a(void *arg)
{
    CHECK(stage_run(fut_a, arg, NULL, NULL));
    return NULL;
}

static void *as_coro_b(void *arg)
{
    CHECK(stage_run(fut_b, arg, NULL, NULL));
    return NULL;
}

enum { TT, TC, CC };

static double fut_game(long n, int place, int kind)
{
    struct game g = {.n = n, .place = place};
    g.first = stage_future_new();
    CHECK_PTR(g.first);
    stage_future_ref(g.first); /* one for each side */
    stage_future *tb, *ta = NULL;
    CHECK(stage_thread_spawn(kind == CC ? as_coro_b : fut_b, &g, NULL, &tb));
    if (kind == TT)
        fut_a(&g);
    else if (kind == TC)
        as_coro_a(&g);
    else
        CHECK(stage_thread_spawn(as_coro_a, &g, NULL, &ta));
    if (ta) {
        CHECK(stage_future_wait(ta, STAGE_FOREVER));
        stage_future_unref(ta);
    }
    CHECK(stage_future_wait(tb, STAGE_FOREVER));
    stage_future_unref(tb);
    pin_self(-1);
    return (double)g.ns / (double)n;
}

/* ---- pthreads: mutex + two condition variables ------------------------------ */

static void *cv_b(void *arg)
{
    struct game *g = arg;
    pin_self(place_peer(g->place));
    pthread_mutex_lock(&g->m);
    for (long i = 0; i < g->n; i++) {
        while (g->turn != 1)
            pthread_cond_wait(&g->c[1], &g->m);
        g->turn = 0;
        pthread_cond_signal(&g->c[0]);
    }
    pthread_mutex_unlock(&g->m);
    return NULL;
}

static double cv_game(long n, int place)
{
    struct game g = {.n = n, .place = place};
    pthread_mutex_init(&g.m, NULL);
    pthread_cond_init(&g.c[0], NULL);
    pthread_cond_init(&g.c[1], NULL);
    pin_self(place_main(place));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, cv_b, &g));
    pthread_mutex_lock(&g.m);
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++) {
        g.turn = 1;
        pthread_cond_signal(&g.c[1]);
        while (g.turn != 0)
            pthread_cond_wait(&g.c[0], &g.m);
    }
    int64_t t1 = stage_now();
    pthread_mutex_unlock(&g.m);
    CHECK(pthread_join(th, NULL));
    pin_self(-1);
    pthread_cond_destroy(&g.c[0]);
    pthread_cond_destroy(&g.c[1]);
    pthread_mutex_destroy(&g.m);
    return (double)(t1 - t0) / (double)n;
}

/* ---- libuv: two loops poking each other's uv_async_t ------------------------- */

#ifdef BENCH_HAVE_LIBUV
/* A's async fired: B answered; send again or stop both loops. */
static void uv_a_cb(uv_async_t *h)
{
    struct game *g = h->data;
    if (++g->count == g->n) {
        uv_close((uv_handle_t *)&g->async[0], NULL);
        uv_async_send(&g->async[1]); /* B sees count == n and closes */
        return;
    }
    uv_async_send(&g->async[1]);
}

static void uv_b_cb(uv_async_t *h)
{
    struct game *g = h->data;
    if (g->count == g->n) {
        uv_close((uv_handle_t *)&g->async[1], NULL);
        return;
    }
    uv_async_send(&g->async[0]);
}

static void *uv_b(void *arg)
{
    struct game *g = arg;
    pin_self(place_peer(g->place));
    uv_run(&g->loop[1], UV_RUN_DEFAULT);
    return NULL;
}

static double uv_game(long n, int place)
{
    struct game g = {.n = n, .place = place};
    uv_loop_init(&g.loop[0]);
    uv_loop_init(&g.loop[1]);
    uv_async_init(&g.loop[0], &g.async[0], uv_a_cb);
    uv_async_init(&g.loop[1], &g.async[1], uv_b_cb);
    g.async[0].data = g.async[1].data = &g;
    pin_self(place_main(place));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, uv_b, &g));
    int64_t t0 = stage_now();
    uv_async_send(&g.async[1]);
    uv_run(&g.loop[0], UV_RUN_DEFAULT);
    int64_t t1 = stage_now();
    CHECK(pthread_join(th, NULL));
    pin_self(-1);
    uv_loop_close(&g.loop[0]);
    uv_loop_close(&g.loop[1]);
    return (double)(t1 - t0) / (double)n;
}
#endif

/* ---- GLib: two GAsyncQueues --------------------------------------------------- */

#ifdef BENCH_HAVE_GLIB
static void *gq_b(void *arg)
{
    struct game *g = arg;
    pin_self(place_peer(g->place));
    for (long i = 0; i < g->n; i++)
        g_async_queue_push(g->q[1], g_async_queue_pop(g->q[0]));
    return NULL;
}

static double gq_game(long n, int place)
{
    struct game g = {.n = n, .place = place};
    g.q[0] = g_async_queue_new();
    g.q[1] = g_async_queue_new();
    pin_self(place_main(place));
    pthread_t th;
    CHECK(pthread_create(&th, NULL, gq_b, &g));
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++) {
        g_async_queue_push(g.q[0], &g);
        g_async_queue_pop(g.q[1]);
    }
    int64_t t1 = stage_now();
    CHECK(pthread_join(th, NULL));
    pin_self(-1);
    g_async_queue_unref(g.q[0]);
    g_async_queue_unref(g.q[1]);
    return (double)(t1 - t0) / (double)n;
}
#endif

/* ---- Rows ----------------------------------------------------------------------- */

/* Best of REPS of each contender, alternating them run by run. */
enum { F_TT, F_TC, F_CC, P_CV, P_UV, P_GQ, NCONT };

static double run_contender(int c, long n, int place)
{
    switch (c) {
    case F_TT:
        return fut_game(n, place, TT);
    case F_TC:
        return fut_game(n, place, TC);
    case F_CC:
        return fut_game(n, place, CC);
    case P_CV:
        return cv_game(n, place);
#ifdef BENCH_HAVE_LIBUV
    case P_UV:
        return uv_game(n, place);
#endif
#ifdef BENCH_HAVE_GLIB
    case P_GQ:
        return gq_game(n, place);
#endif
    default:
        return -1;
    }
}

int main(int argc, char **argv)
{
    parse_scale(argc, argv);
    pin_init();
    long n = iters(20000, 100);
    char title[96];
    snprintf(title, sizeof title, "%s: %ld round trips per run, best of %d",
             prog, n, REPS);
    peers_header(title, 1);
    static const char *const alt_name[NCONT] = {
        [P_CV] = "pthread mutex+condvar ping-pong",
        [P_UV] = "libuv uv_async_send ping-pong",
        [P_GQ] = "GLib GAsyncQueue ping-pong"};
    static const char *const lib_name[3] = {"thread<->thread",
                                            "thread<->coroutine",
                                            "coroutine<->coroutine"};
    for (int place = 0; place < NPLACE; place++) {
        if (place == TWO_CPUS && cpu_b < 0)
            break;
        double best[NCONT];
        for (int c = 0; c < NCONT; c++) {
            best[c] = -1;
            run_contender(c, n / 20 + 1, place); /* warm-up */
        }
        for (int r = 0; r < REPS; r++)
            for (int c = 0; c < NCONT; c++) {
                double v = run_contender(c, n, place);
                if (v >= 0 && (best[c] < 0 || v < best[c]))
                    best[c] = v;
            }
        for (int k = 0; k < 3; k++)
            for (int c = P_CV; c < NCONT; c++) {
                if (best[c] < 0)
                    continue;
                char id[8], what[64];
                snprintf(id, sizeof id, "%d%c", place + 1,
                         'a' + k * 3 + (c - P_CV));
                snprintf(what, sizeof what, "future %s, %s", lib_name[k],
                         place_name[place]);
                peer_row(id, what, "us", best[F_TT + k] / 1000,
                         best[c] / 1000, alt_name[c]);
            }
    }
    printf("\ntarget: thread<->coroutine no slower than the condvar "
           "ping-pong, on 1 CPU and on 2, and ahead of libuv and GLib "
           "(issue 8)\n");
    return 0;
}
