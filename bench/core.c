/* SPDX-License-Identifier: MIT */
/*
 * core.c - the foundation benchmark: libstage's core paths, each beside a
 * plain-pthreads baseline measured in the same run.
 *
 *   bench/core [SCALE]        SCALE multiplies every iteration count
 *                             (default 1, or $BENCH_SCALE); 0.1 = quick run
 *
 * One table on stdout.  Each timed figure first runs once, untimed, to
 * calibrate: its iteration count is then chosen so that one timed run lasts
 * about TARGET_NS * SCALE (so a slow path on a slow machine still finishes,
 * and a fast one is still measured over many iterations).  The figure is
 * the best of REPS timed runs, and its libstage runs alternate with its
 * baseline's runs, so a burst of load from elsewhere on the machine hits
 * both sides alike; the ratio column (libstage / baseline) is the number to
 * compare between runs and machines.  The memory rows (3x) are one pass of
 * SCALE * 100,000 coroutines.  See bench/README for what each row measures
 * and how to read it.  Only the public API (stage.h) is used.
 */
#ifdef HAVE_CONFIG_H
#include "config.h"
#endif
#ifndef _GNU_SOURCE
#define _GNU_SOURCE 1 /* sched_setaffinity, CPU_SET */
#endif

#include <stage.h>

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define BENCH_PROG "bench/core"
#define BENCH_WHAT_W 39
#define BENCH_VAL_W 9
#define BENCH_CUSTOM_ROWS
#include "bench.h"

/* ---- CPU pinning -------------------------------------------------------- */

/* Where the two sides of a ping-pong run.  ANY: wherever the scheduler
 * likes (the affinity the process started with).  SAME: main is pinned to
 * cpu_a before it starts the peer thread, which inherits the pin, so the
 * whole process shares one CPU.  SPLIT: main on cpu_a, the peer pins
 * itself to cpu_b first thing. */
enum { PIN_ANY, PIN_SAME, PIN_SPLIT };
static const char *const pin_name[] = {"any CPU", "1 CPU", "2 CPUs"};

static cpu_set_t orig_mask;
static int ncpus = 1;
static int cpu_a = -1, cpu_b = -1;

static void pin_init(void)
{
    CPU_ZERO(&orig_mask);
    if (sched_getaffinity(0, sizeof orig_mask, &orig_mask) != 0) {
        ncpus = 1;
        return;
    }
    ncpus = CPU_COUNT(&orig_mask);
    for (int c = 0; c < CPU_SETSIZE; c++) {
        if (!CPU_ISSET(c, &orig_mask))
            continue;
        if (cpu_a < 0)
            cpu_a = c;
        else if (cpu_b < 0)
            cpu_b = c;
    }
}

static void pin_to(int cpu)
{
    cpu_set_t s;
    CPU_ZERO(&s);
    CPU_SET(cpu, &s);
    /* pid 0: the calling thread (threads created later inherit it). */
    CHECK(sched_setaffinity(0, sizeof s, &s) == 0 ? 0 : errno);
}

static void pin_main(int mode)
{
    if (mode == PIN_ANY || cpu_a < 0)
        CHECK(sched_setaffinity(0, sizeof orig_mask, &orig_mask) == 0
                  ? 0
                  : errno);
    else
        pin_to(cpu_a);
}

static void pin_peer(int mode)
{
    if (mode == PIN_SPLIT && cpu_b >= 0)
        pin_to(cpu_b);
}

/* ---- /proc readings ----------------------------------------------------- */

/* Resident set size in bytes, from /proc/self/statm (field 2, pages). */
static long rss_bytes(void)
{
    long size = 0, resident = 0;
    FILE *f = fopen("/proc/self/statm", "re");
    if (!f)
        return -1;
    if (fscanf(f, "%ld %ld", &size, &resident) != 2)
        resident = -1;
    fclose(f);
    return resident < 0 ? -1 : resident * sysconf(_SC_PAGESIZE);
}

/* Page-table memory in bytes (VmPTE of /proc/self/status): not part of
 * the RSS, but memory that every touched stack page costs too. */
static long pte_bytes(void)
{
    char line[256];
    long kb = -1;
    FILE *f = fopen("/proc/self/status", "re");
    if (!f)
        return -1;
    while (fgets(line, sizeof line, f))
        if (sscanf(line, "VmPTE: %ld kB", &kb) == 1)
            break;
    fclose(f);
    return kb < 0 ? -1 : kb * 1024;
}

/* ---- The table ---------------------------------------------------------- */

/* A measurement: runs n units of work in `mode`, returns ns per unit. */
typedef double (*bench_fn)(long n, int mode);

/* Wall time one timed run aims at, in ns (scaled by SCALE). */
#define TARGET_NS 150e6

/* An iteration count that makes one run of fn last about TARGET_NS * scale:
 * one untimed calibration run of ncal units (which also warms up caches and
 * the loop's stack cache), then extrapolate. */
static long calibrate(bench_fn fn, long ncal, int mode)
{
    double per = fn(ncal, mode);
    double n = TARGET_NS * scale / (per > 1 ? per : 1);
    if (n < 10)
        n = 10;
    if (n > 1e9)
        n = 1e9;
    return (long)n;
}

static void run_once(bench_fn fn, long n, int mode, struct best *b)
{
    long c0 = csw();
    double v = fn(n, mode);
    best_add(b, v, c0, n);
}

/* Best of REPS for both sides, alternating libstage and baseline runs.
 * div converts ns per unit into the unit shown (1: ns, 1000: us); ncal is
 * the calibration run's size for each side. */
static void row(const char *id, const char *what, const char *unit,
                double div, bench_fn lib, long lcal, int lmode, bench_fn base,
                long bcal, int bmode, const char *basewhat)
{
    struct best bl = {-1, -1}, bb = {-1, -1};
    long nl = calibrate(lib, lcal, lmode);
    long nb = base ? calibrate(base, bcal, bmode) : 0;
    for (int r = 0; r < REPS; r++) {
        run_once(lib, nl, lmode, &bl);
        if (base)
            run_once(base, nb, bmode, &bb);
    }
    print_row(id, what, unit, bl.ns / div, base ? bb.ns / div : -1, bl.cs,
              base ? bb.cs : -1, basewhat);
}

/* ---- Baseline: pthread mutex + condvar ping-pong ------------------------ */

struct plain {
    pthread_mutex_t m;
    pthread_cond_t c[2];
    int turn; /* 1: the peer's move; 0: main's */
    long rounds;
    int mode;
};

static void *plain_peer(void *arg)
{
    struct plain *p = arg;
    pin_peer(p->mode);
    pthread_mutex_lock(&p->m);
    for (long i = 0; i < p->rounds; i++) {
        while (p->turn != 1)
            pthread_cond_wait(&p->c[1], &p->m);
        p->turn = 0;
        pthread_cond_signal(&p->c[0]);
    }
    pthread_mutex_unlock(&p->m);
    return NULL;
}

/* ns per round trip (two hand-offs); the first rounds warm up, untimed. */
static double plain_rt(long n, int mode)
{
    enum { WARM = 10 };
    struct plain p;
    pthread_mutex_init(&p.m, NULL);
    pthread_cond_init(&p.c[0], NULL);
    pthread_cond_init(&p.c[1], NULL);
    p.turn = 0;
    p.rounds = n + WARM;
    p.mode = mode;
    pin_main(mode);
    pthread_t th;
    CHECK(pthread_create(&th, NULL, plain_peer, &p));
    int64_t t0 = 0;
    pthread_mutex_lock(&p.m);
    for (long i = 0; i < n + WARM; i++) {
        if (i == WARM)
            t0 = stage_now();
        p.turn = 1;
        pthread_cond_signal(&p.c[1]);
        while (p.turn != 0)
            pthread_cond_wait(&p.c[0], &p.m);
    }
    int64_t t1 = stage_now();
    pthread_mutex_unlock(&p.m);
    CHECK(pthread_join(th, NULL));
    pin_main(PIN_ANY);
    pthread_cond_destroy(&p.c[0]);
    pthread_cond_destroy(&p.c[1]);
    pthread_mutex_destroy(&p.m);
    return (double)(t1 - t0) / (double)n;
}

static double plain_handoff(long n, int mode) { return plain_rt(n, mode) / 2; }

/* ---- 1. Context switch: stage_yield between two coroutines -------------- */

static void *yielder(void *arg)
{
    long n = *(long *)arg;
    for (long i = 0; i < n; i++)
        CHECK(stage_yield());
    return NULL;
}

/* ns per stage_yield (n per coroutine, 2n in all). */
static double yield_switch(long n, int mode)
{
    (void)mode;
    stage_loop *loop = stage_loop_current();
    CHECK_PTR(loop);
    int64_t t0 = stage_now();
    CHECK(stage_coro_spawn(loop, yielder, &n, NULL, 0, NULL));
    CHECK(stage_coro_spawn(loop, yielder, &n, NULL, 0, NULL));
    CHECK(stage_loop_run(loop, NULL, STAGE_FOREVER));
    int64_t t1 = stage_now();
    return (double)(t1 - t0) / (double)(2 * n);
}

/* ---- 2. Spawn, run, reclaim --------------------------------------------- */

static void *noop(void *arg) { return arg; }

/* Spawn one detached coroutine, run the loop until it is gone; repeat. */
static double spawn_seq(long n, int mode)
{
    (void)mode;
    stage_loop *loop = stage_loop_current();
    CHECK_PTR(loop);
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++) {
        CHECK(stage_coro_spawn(loop, noop, NULL, NULL, 0, NULL));
        CHECK(stage_loop_run(loop, NULL, STAGE_FOREVER));
    }
    return (double)(stage_now() - t0) / (double)n;
}

#define BATCH 100

/* Spawn BATCH detached coroutines, then run the loop; repeat. */
static double spawn_batch(long n, int mode)
{
    (void)mode;
    stage_loop *loop = stage_loop_current();
    CHECK_PTR(loop);
    long batches = (n + BATCH - 1) / BATCH;
    int64_t t0 = stage_now();
    for (long b = 0; b < batches; b++) {
        for (int i = 0; i < BATCH; i++)
            CHECK(stage_coro_spawn(loop, noop, NULL, NULL, 0, NULL));
        CHECK(stage_loop_run(loop, NULL, STAGE_FOREVER));
    }
    return (double)(stage_now() - t0) / (double)(batches * BATCH);
}

static double pthread_seq(long n, int mode)
{
    (void)mode;
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++) {
        pthread_t th;
        CHECK(pthread_create(&th, NULL, noop, NULL));
        CHECK(pthread_join(th, NULL));
    }
    return (double)(stage_now() - t0) / (double)n;
}

static double pthread_batch(long n, int mode)
{
    (void)mode;
    long batches = (n + BATCH - 1) / BATCH;
    pthread_t th[BATCH];
    int64_t t0 = stage_now();
    for (long b = 0; b < batches; b++) {
        for (int i = 0; i < BATCH; i++)
            CHECK(pthread_create(&th[i], NULL, noop, NULL));
        for (int i = 0; i < BATCH; i++)
            CHECK(pthread_join(th[i], NULL));
    }
    return (double)(stage_now() - t0) / (double)(batches * BATCH);
}

/* stage_thread_spawn + wait for its future, one at a time. */
static double thread_task_seq(long n, int mode)
{
    (void)mode;
    int64_t t0 = stage_now();
    for (long i = 0; i < n; i++) {
        stage_future *f;
        CHECK(stage_thread_spawn(noop, NULL, NULL, &f));
        CHECK(stage_future_wait(f, STAGE_FOREVER));
        stage_future_unref(f);
    }
    return (double)(stage_now() - t0) / (double)n;
}

/* ---- 4. Future round trips ---------------------------------------------- */

/*
 * One fresh future per hop.  The side that will wait for the next hop
 * creates its future G with two references (its own, and one for the
 * peer) and hands G over as the value of the future the peer waits on.
 * The peer resolves G with the next future, and so on; a NULL value ends
 * the game.  Per round trip: 2 futures made and freed, 2 resolves, 2 waits.
 */
struct pp {
    stage_future *f0; /* side A resolves it, side B waits on it */
    long rounds;
    int mode;        /* pinning of the peer thread, if any */
    int64_t ns;      /* measured by side A */
};

enum { PP_WARM = 10 };

static void *pp_a(void *arg)
{
    struct pp *p = arg;
    stage_future *out = p->f0; /* the peer waits on it; our reference */
    int64_t t0 = 0;
    for (long i = 0; i < p->rounds + PP_WARM; i++) {
        if (i == PP_WARM)
            t0 = stage_now();
        stage_future *g = stage_future_new();
        CHECK_PTR(g);
        stage_future_ref(g); /* the peer's reference */
        CHECK(stage_future_resolve(out, g, NULL));
        stage_future_unref(out);
        void *v = NULL;
        CHECK(stage_future_get(g, STAGE_FOREVER, &v));
        stage_future_unref(g);
        out = v;
        CHECK_PTR(out);
    }
    p->ns = stage_now() - t0;
    CHECK(stage_future_resolve(out, NULL, NULL)); /* game over */
    stage_future_unref(out);
    return NULL;
}

static void *pp_b(void *arg)
{
    struct pp *p = arg;
    pin_peer(p->mode);
    stage_future *mine = p->f0; /* our reference */
    for (;;) {
        void *v = NULL;
        CHECK(stage_future_get(mine, STAGE_FOREVER, &v));
        stage_future_unref(mine);
        if (!v)
            break;
        stage_future *peer = v; /* peer waits on it; now our reference */
        mine = stage_future_new();
        CHECK_PTR(mine);
        stage_future_ref(mine);
        CHECK(stage_future_resolve(peer, mine, NULL));
        stage_future_unref(peer);
    }
    return NULL;
}

static void pp_init(struct pp *p, long n, int mode)
{
    p->f0 = stage_future_new();
    CHECK_PTR(p->f0);
    stage_future_ref(p->f0); /* A's and B's */
    p->rounds = n;
    p->mode = mode;
    p->ns = 0;
}

/* main (plain thread) <-> a stage_thread_spawn task. */
static double fut_thread_thread(long n, int mode)
{
    struct pp p;
    pp_init(&p, n, mode);
    pin_main(mode);
    stage_future *tb;
    CHECK(stage_thread_spawn(pp_b, &p, NULL, &tb));
    pp_a(&p);
    CHECK(stage_future_wait(tb, STAGE_FOREVER));
    CHECK(stage_future_error(tb));
    stage_future_unref(tb);
    pin_main(PIN_ANY);
    return (double)p.ns / (double)n;
}

/* A coroutine on main's loop <-> a stage_thread_spawn task. */
static double fut_coro_thread(long n, int mode)
{
    struct pp p;
    pp_init(&p, n, mode);
    pin_main(mode);
    stage_future *ta, *tb;
    CHECK(stage_coro_spawn(NULL, pp_a, &p, NULL, 0, &ta));
    CHECK(stage_thread_spawn(pp_b, &p, NULL, &tb));
    CHECK(stage_future_wait(ta, STAGE_FOREVER)); /* main's loop runs A */
    CHECK(stage_future_wait(tb, STAGE_FOREVER));
    CHECK(stage_future_error(ta));
    CHECK(stage_future_error(tb));
    stage_future_unref(ta);
    stage_future_unref(tb);
    pin_main(PIN_ANY);
    return (double)p.ns / (double)n;
}

/* Two coroutines on main's loop. */
static double fut_coro_coro(long n, int mode)
{
    (void)mode;
    struct pp p;
    pp_init(&p, n, PIN_ANY);
    stage_loop *loop = stage_loop_current();
    CHECK_PTR(loop);
    CHECK(stage_coro_spawn(loop, pp_a, &p, NULL, 0, NULL));
    CHECK(stage_coro_spawn(loop, pp_b, &p, NULL, 0, NULL));
    CHECK(stage_loop_run(loop, NULL, STAGE_FOREVER));
    return (double)p.ns / (double)n;
}

/* ---- 3. Memory: many suspended coroutines ------------------------------- */

struct park {
    stage_future *gate;
    long parked;    /* coroutines that reached their wait */
    long woken;     /* gate waits that returned 0 */
    long cancelled; /* waits that returned ECANCELED */
};

/* Even coroutines sleep an hour (a timer), odd ones wait on the gate future
 * with an hour's timeout (a timer and a place on the future's list). */
static void *parker(void *arg)
{
    struct park *pk = arg;
    long i = pk->parked++;
    int err = (i & 1) ? stage_future_wait(pk->gate, 3600.0)
                      : stage_sleep(3600.0);
    if (err == 0 && (i & 1))
        pk->woken++;
    else if (err == ECANCELED)
        pk->cancelled++;
    else {
        fprintf(stderr, "bench/core: parked coroutine %ld: %s\n", i,
                strerror(err));
        exit(1);
    }
    return NULL;
}

struct pthr_park {
    pthread_mutex_t m;
    pthread_cond_t c, cmain;
    long parked;
    int go;
};

static void *pthr_parker(void *arg)
{
    struct pthr_park *pp = arg;
    pthread_mutex_lock(&pp->m);
    pp->parked++;
    pthread_cond_signal(&pp->cmain);
    while (!pp->go)
        pthread_cond_wait(&pp->c, &pp->m);
    pthread_mutex_unlock(&pp->m);
    return NULL;
}

static void memory(void)
{
    long n = iters(100000, 1000);
    long n1 = n / 10;
    long k = iters(1000, 50);

    /* Baseline first, while the process is small: k plain pthreads
     * (default attributes), each blocked on a condition variable. */
    struct pthr_park tp;
    pthread_mutex_init(&tp.m, NULL);
    pthread_cond_init(&tp.c, NULL);
    pthread_cond_init(&tp.cmain, NULL);
    tp.parked = 0;
    tp.go = 0;
    pthread_t *th = malloc((size_t)k * sizeof *th);
    CHECK_PTR(th);
    long trss0 = rss_bytes(), tpte0 = pte_bytes(), tcs0 = csw();
    int64_t t0 = stage_now();
    for (long i = 0; i < k; i++)
        CHECK(pthread_create(&th[i], NULL, pthr_parker, &tp));
    pthread_mutex_lock(&tp.m);
    while (tp.parked < k)
        pthread_cond_wait(&tp.cmain, &tp.m);
    pthread_mutex_unlock(&tp.m);
    int64_t t1 = stage_now();
    long trss1 = rss_bytes(), tpte1 = pte_bytes(), tcs1 = csw();
    pthread_mutex_lock(&tp.m);
    tp.go = 1;
    pthread_cond_broadcast(&tp.c);
    pthread_mutex_unlock(&tp.m);
    for (long i = 0; i < k; i++)
        CHECK(pthread_join(th[i], NULL));
    int64_t t2 = stage_now();
    long tcs2 = csw();
    free(th);
    pthread_cond_destroy(&tp.c);
    pthread_cond_destroy(&tp.cmain);
    pthread_mutex_destroy(&tp.m);

    /* A fresh loop, so that no stack comes from the cache of the earlier
     * rows (those pages are resident already). */
    CHECK(stage_loop_free(stage_loop_current()));
    stage_loop *loop = stage_loop_current();
    CHECK_PTR(loop);
    struct park pk = {0};
    pk.gate = stage_future_new();
    CHECK_PTR(pk.gate);

    long rss0 = rss_bytes(), pte0 = pte_bytes(), cs0 = csw();
    int64_t c0 = stage_now();
    for (long i = 0; i < n1; i++)
        CHECK(stage_coro_spawn(loop, parker, &pk, NULL, 0, NULL));
    CHECK(stage_yield()); /* one pass: each runs to its wait */
    long rss1 = rss_bytes();
    int64_t c1 = stage_now();
    for (long i = n1; i < n; i++)
        CHECK(stage_coro_spawn(loop, parker, &pk, NULL, 0, NULL));
    CHECK(stage_yield());
    int64_t c2 = stage_now();
    long rss2 = rss_bytes(), pte2 = pte_bytes(), cs2 = csw();
    if (pk.parked != n || stage_loop_count(loop) != (size_t)n) {
        fprintf(stderr, "bench/core: %ld of %ld coroutines parked, %zu live\n",
                pk.parked, n, stage_loop_count(loop));
        exit(1);
    }
    /* Tear down: resolve the gate (half of them finish), then free the
     * loop (cancels the sleepers). */
    CHECK(stage_future_resolve(pk.gate, NULL, NULL));
    CHECK(stage_yield());
    CHECK(stage_loop_free(loop));
    int64_t c3 = stage_now();
    long cs3 = csw();
    stage_future_unref(pk.gate);
    if (pk.woken != n / 2 || pk.cancelled != n - n / 2) {
        fprintf(stderr, "bench/core: teardown: %ld woken, %ld cancelled\n",
                pk.woken, pk.cancelled);
        exit(1);
    }

    char what[64];
    snprintf(what, sizeof what, "RSS per suspended coro, %ld alive", n);
    char base[64];
    snprintf(base, sizeof base, "RSS per blocked pthread, %ld alive", k);
    print_row("3a", what, "bytes", (double)(rss2 - rss0) / (double)n,
              (double)(trss1 - trss0) / (double)k, -1, -1, base);
    snprintf(what, sizeof what, "  of which the first %ld", n1);
    print_row("3b", what, "bytes", (double)(rss1 - rss0) / (double)n1, -1,
              -1, -1, "(guarded stacks: see README)");
    snprintf(what, sizeof what, "  and the other %ld", n - n1);
    print_row("3c", what, "bytes",
              (double)(rss2 - rss1) / (double)(n - n1), -1, -1, -1,
              "(most of these carry a canary instead)");
    print_row("3d", "page tables (VmPTE) per coroutine", "bytes",
              (double)(pte2 - pte0) / (double)n,
              (double)(tpte1 - tpte0) / (double)k, -1, -1,
              "VmPTE per blocked pthread");
    print_row("3e", "spawn + run to the wait, per coro", "us",
              (double)(c2 - c0) / (double)n / 1000,
              (double)(t1 - t0) / (double)k / 1000,
              (double)(cs2 - cs0) / (double)n,
              (double)(tcs1 - tcs0) / (double)k,
              "pthread_create until blocked");
    print_row("3f", "wake/cancel + reclaim, per coro", "us",
              (double)(c3 - c2) / (double)n / 1000,
              (double)(t2 - t1) / (double)k / 1000,
              (double)(cs3 - cs2) / (double)n,
              (double)(tcs2 - tcs1) / (double)k,
              "broadcast + pthread_join");
    printf("    (%ld coroutines: %.2f s to spawn and park (first %ld: "
           "%.1f us each, the rest: %.1f us each), %.2f s to tear down; "
           "RSS %+.1f MiB)\n",
           n, (double)(c2 - c0) / 1e9, n1,
           (double)(c1 - c0) / (double)n1 / 1000,
           (double)(c2 - c1) / (double)(n - n1) / 1000,
           (double)(c3 - c2) / 1e9, (double)(rss2 - rss0) / (1024.0 * 1024.0));
    fflush(stdout);
}

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    parse_scale(argc, argv);
    pin_init();
    char load[64];
    loadavg(load, sizeof load);
    const char *ctx = "?";
#if defined(STAGE_CTX_ASM)
    ctx = "asm";
#elif defined(STAGE_CTX_UCONTEXT)
    ctx = "ucontext";
#endif
    printf("libstage %s core benchmark: context %s, scale %g, %d CPU%s, "
           "best of %d\n",
           stage_version_string(), ctx, scale, ncpus, ncpus == 1 ? "" : "s",
           REPS);
    printf("load average at start: %s\n", load);
    printf("ratio = libstage / baseline (below 1: libstage is cheaper)\n\n");
    print_columns();

    int64_t start = stage_now();

    /* 1. Context switch. */
    row("1a", "stage_yield, 2 coroutines, 1 loop", "ns/switch", 1,
        yield_switch, 10000, PIN_ANY, plain_handoff, 50, PIN_ANY,
        "mutex+cond ping-pong, any CPU, per hand-off");
    if (ncpus > 1)
        row("1b", "stage_yield, 2 coroutines, 1 loop", "ns/switch", 1,
            yield_switch, 10000, PIN_ANY, plain_handoff, 50, PIN_SAME,
            "mutex+cond ping-pong, 1 CPU, per hand-off");

    /* 2. Spawn, run, reclaim. */
    row("2a", "coro spawn+run+reclaim, one at a time", "ns/task", 1,
        spawn_seq, 2000, PIN_ANY, pthread_seq, 50, PIN_ANY,
        "pthread_create + pthread_join");
    row("2b", "coro spawn+run+reclaim, batches of 100", "ns/task", 1,
        spawn_batch, 2000, PIN_ANY, pthread_batch, 100, PIN_ANY,
        "100 pthread_create, then 100 pthread_join");
    row("2c", "stage_thread_spawn + future wait", "ns/task", 1,
        thread_task_seq, 50, PIN_ANY, pthread_seq, 50, PIN_ANY,
        "pthread_create + pthread_join");

    /* 4. Future round trips, before 3 so that the big teardown of 3 does
     * not disturb them. */
    for (int mode = PIN_ANY; mode <= PIN_SPLIT; mode++) {
        if (mode != PIN_ANY && ncpus < 2)
            continue; /* one CPU: "any" is already "1 CPU" */
        char what[64], base[64];
        snprintf(base, sizeof base, "mutex+cond ping-pong, %s",
                 pin_name[mode]);
        snprintf(what, sizeof what, "future RT thread<->thread, %s",
                 pin_name[mode]);
        row(mode == PIN_ANY ? "4a" : mode == PIN_SAME ? "4c" : "4e", what,
            "us/RT", 1000, fut_thread_thread, 20, mode, plain_rt, 20, mode,
            base);
        snprintf(what, sizeof what, "future RT coro<->thread, %s",
                 pin_name[mode]);
        row(mode == PIN_ANY ? "4b" : mode == PIN_SAME ? "4d" : "4f", what,
            "us/RT", 1000, fut_coro_thread, 20, mode, plain_rt, 20, mode,
            base);
    }
    row("4g", "future RT coro<->coro, 1 loop", "us/RT", 1000, fut_coro_coro,
        2000, PIN_ANY, plain_rt, 20, ncpus > 1 ? PIN_SAME : PIN_ANY,
        "mutex+cond ping-pong, 1 CPU");

    /* 3. Memory, one pass (page faults are slow on VMs). */
    memory();

    CHECK(stage_loop_free(stage_loop_current()));
    loadavg(load, sizeof load);
    printf("\ntotal %.1f s; load average at end: %s\n",
           (double)(stage_now() - start) / 1e9, load);
    return 0;
}
