/* SPDX-License-Identifier: MIT */
/*
 * timers.c - many concurrent timers, libstage beside libuv and GLib.
 * Built twice (bench/README, "Peer benchmarks"):
 *
 *   bench/sleepers [SCALE]  SCALE * 100,000 coroutines each stage_sleep
 *                           10 ms at once, against as many uv_timer_t and
 *                           g_timeout_add timers of 10 ms;
 *   bench/timers [SCALE]    SCALE * 1,000,000 timers with random deadlines
 *                           within 1 s (the same random delays for every
 *                           side).
 *
 * Each side runs in a forked child; the figures are the wall time from the
 * first arm until the last timer fired, and the child's peak RSS (VmHWM)
 * above what it had before arming.  A libstage timer is a coroutine blocked
 * in stage_sleep (its stack, its record, a heap slot); a libuv or GLib
 * timer is a small struct and a callback.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1
#endif

#include <stage.h>

#include <errno.h>
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

#ifdef BENCH_SLEEPERS
#define BENCH_PROG "bench/sleepers"
#define BASE_N 100000
#else
#define BENCH_PROG "bench/timers"
#define BASE_N 1000000
#endif
#define BENCH_WHAT_W 36
#define BENCH_CUSTOM_ROWS
#include "bench.h"
#include "peers.h"

/* Delays in ms, the same for every side. */
static int *delay_ms;

static void make_delays(long n)
{
    delay_ms = malloc((size_t)n * sizeof *delay_ms);
    CHECK_PTR(delay_ms);
#ifndef BENCH_SLEEPERS
    uint64_t s = 0x9E3779B97F4A7C15ULL;
#endif
    for (long i = 0; i < n; i++) {
#ifdef BENCH_SLEEPERS
        delay_ms[i] = 10;
#else
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        delay_ms[i] = (int)(s % 1000);
#endif
    }
}

/* Figures: v[0] wall seconds, v[1] peak RSS growth in bytes. */

/* ---- libstage: one coroutine per timer ------------------------------------ */

static long fired;

static void *sleeper(void *arg)
{
    CHECK(stage_sleep((double)(intptr_t)arg / 1000.0));
    fired++;
    return NULL;
}

static struct figures lib_side(long n)
{
    stage_loop *loop = stage_loop_current();
    CHECK_PTR(loop);
    long rss0 = status_bytes("VmHWM");
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++)
        CHECK(stage_coro_spawn(loop, sleeper, (void *)(intptr_t)delay_ms[i],
                               NULL, 0, NULL));
    CHECK(stage_loop_run(loop, NULL, STAGE_FOREVER));
    int64_t t1 = stage_now();
    if (fired != n)
        exit(1);
    struct figures r = {{(double)(t1 - t0) / 1e9,
                         (double)(status_bytes("VmHWM") - rss0), 0, 0}};
    return r;
}

/* ---- libuv: uv_timer_t ------------------------------------------------------ */

#ifdef BENCH_HAVE_LIBUV
static void uv_fired(uv_timer_t *t)
{
    (void)t;
    fired++;
}

static struct figures uv_side(long n)
{
    uv_loop_t *loop = uv_default_loop();
    uv_timer_t *t = malloc((size_t)n * sizeof *t);
    CHECK_PTR(t);
    long rss0 = status_bytes("VmHWM");
    int64_t t0 = stage_now();
    uv_update_time(loop);
    for (long i = 0; i < n; i++) {
        uv_timer_init(loop, &t[i]);
        uv_timer_start(&t[i], uv_fired, (uint64_t)delay_ms[i], 0);
    }
    uv_run(loop, UV_RUN_DEFAULT);
    int64_t t1 = stage_now();
    if (fired != n)
        exit(1);
    struct figures r = {{(double)(t1 - t0) / 1e9,
                         (double)(status_bytes("VmHWM") - rss0), 0, 0}};
    return r;
}
#endif

/* ---- GLib: g_timeout_add in a GMainLoop -------------------------------------- */

#ifdef BENCH_HAVE_GLIB
static long g_want;
static GMainLoop *g_loop;

static gboolean g_fired(gpointer data)
{
    (void)data;
    if (++fired == g_want)
        g_main_loop_quit(g_loop);
    return G_SOURCE_REMOVE;
}

static struct figures glib_side(long n)
{
    g_loop = g_main_loop_new(NULL, FALSE);
    g_want = n;
    long rss0 = status_bytes("VmHWM");
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++)
        g_timeout_add((guint)delay_ms[i], g_fired, NULL);
    g_main_loop_run(g_loop);
    int64_t t1 = stage_now();
    if (fired != n)
        exit(1);
    struct figures r = {{(double)(t1 - t0) / 1e9,
                         (double)(status_bytes("VmHWM") - rss0), 0, 0}};
    return r;
}
#endif

int main(int argc, char **argv)
{
    parse_scale(argc, argv);
    long n = iters(BASE_N, 100);
    make_delays(n);
    char title[128];
#ifdef BENCH_SLEEPERS
    snprintf(title, sizeof title,
             "%s: %ld concurrent sleepers of 10 ms", prog, n);
#else
    snprintf(title, sizeof title,
             "%s: %ld timers, random deadlines within 1 s", prog, n);
#endif
    peers_header(title, 1);
    struct figures lib = in_child(lib_side, n);
    char what[64];
    int rows = 0;
    (void)rows;
#ifdef BENCH_HAVE_LIBUV
    struct figures uv = in_child(uv_side, n);
    snprintf(what, sizeof what, "%ld timers: wall time", n);
    peer_row("1a", what, "s", lib.v[0], uv.v[0], "libuv uv_timer_t");
    rows++;
#endif
#ifdef BENCH_HAVE_GLIB
    struct figures gl = in_child(glib_side, n);
    snprintf(what, sizeof what, "%ld timers: wall time", n);
    peer_row("1b", what, "s", lib.v[0], gl.v[0], "GLib g_timeout_add");
    rows++;
#endif
#ifdef BENCH_HAVE_LIBUV
    peer_row("2a", "peak RSS growth per timer", "bytes", lib.v[1] / n,
             uv.v[1] / n, "libuv uv_timer_t");
#endif
#ifdef BENCH_HAVE_GLIB
    peer_row("2b", "peak RSS growth per timer", "bytes", lib.v[1] / n,
             gl.v[1] / n, "GLib g_timeout_add");
#endif
    printf("\nlibstage: %.3f s, peak RSS +%.1f MiB (%ld coroutines, "
           "default stacks)\n", lib.v[0], lib.v[1] / 1048576.0, n);
#ifdef BENCH_SLEEPERS
    printf("target: within 2x libuv's wall time (issue 8)\n");
#else
    printf("target: faster than GLib and libuv (issue 8)\n");
#endif
    free(delay_ms);
    return 0;
}
