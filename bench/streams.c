/* SPDX-License-Identifier: MIT */
/*
 * streams.c - queues and tunnels: item throughput between threads and
 * coroutines, each beside a plain-pthreads baseline measured in the same
 * run.
 *
 *   bench/streams [SCALE]     SCALE multiplies every iteration count
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
#include <sched.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define BENCH_PROG "bench/streams"
#include "bench.h"

/* ---- 1. Queue throughput ------------------------------------------------ */

#define QCAP 1024

/* Items are (void *)(i + 1), i = 0 .. n-1; the consumer checks the order
 * and the count. */
struct qrun {
    stage_queue *q;
    long n;
    long got;
};

/* Producer: puts n items, then closes the queue (a plain thread, or a
 * coroutine). */
static void *q_producer(void *arg)
{
    struct qrun *r = arg;
    for (long i = 0; i < r->n; i++)
        CHECK(stage_queue_put(r->q, (void *)(intptr_t)(i + 1),
                              STAGE_FOREVER));
    CHECK(stage_queue_close(r->q));
    return NULL;
}

static void *q_producer_thread(void *arg)
{
    q_producer(arg);
    CHECK(stage_loop_free(stage_loop_current()));
    return NULL;
}

/* Consumer: gets until EPIPE (closed and drained). */
static void *q_consumer(void *arg)
{
    struct qrun *r = arg;
    void *item;
    int err;
    while ((err = stage_queue_get(r->q, &item, STAGE_FOREVER)) == 0) {
        if ((intptr_t)item != r->got + 1) {
            fprintf(stderr, "%s: queue: item %ld is %ld\n", prog, r->got + 1,
                    (long)(intptr_t)item);
            exit(1);
        }
        r->got++;
    }
    if (err != EPIPE)
        CHECK(err);
    return NULL;
}

static void q_check(struct qrun *r)
{
    if (r->got != r->n) {
        fprintf(stderr, "%s: queue: got %ld of %ld items\n", prog, r->got,
                r->n);
        exit(1);
    }
    stage_queue_unref(r->q);
}

static void q_init(struct qrun *r, long n)
{
    r->q = stage_queue_new(QCAP, NULL);
    CHECK_PTR(r->q);
    r->n = n;
    r->got = 0;
}

/* 1a: a pthread producer, main (a plain thread) consumes. */
static double queue_thread_thread(long n)
{
    struct qrun r;
    q_init(&r, n);
    pthread_t th;
    int64_t t0 = stage_now();
    CHECK(pthread_create(&th, NULL, q_producer_thread, &r));
    q_consumer(&r);
    int64_t t1 = stage_now();
    CHECK(pthread_join(th, NULL));
    q_check(&r);
    return (double)(t1 - t0) / (double)n;
}

/* 1b: a pthread producer, a coroutine consumer on main's loop (main waits
 * for the coroutine's future, so its loop runs the coroutine). */
static double queue_thread_coro(long n)
{
    struct qrun r;
    q_init(&r, n);
    pthread_t th;
    stage_future *f;
    int64_t t0 = stage_now();
    CHECK(stage_coro_spawn(NULL, q_consumer, &r, NULL, 0, &f));
    CHECK(pthread_create(&th, NULL, q_producer_thread, &r));
    CHECK(stage_future_wait(f, STAGE_FOREVER));
    int64_t t1 = stage_now();
    CHECK(stage_future_error(f));
    stage_future_unref(f);
    CHECK(pthread_join(th, NULL));
    q_check(&r);
    return (double)(t1 - t0) / (double)n;
}

/* 1c: producer and consumer both coroutines on main's loop. */
static double queue_coro_coro(long n)
{
    struct qrun r;
    q_init(&r, n);
    stage_loop *loop = stage_loop_current();
    CHECK_PTR(loop);
    int64_t t0 = stage_now();
    CHECK(stage_coro_spawn(loop, q_consumer, &r, NULL, 0, NULL));
    CHECK(stage_coro_spawn(loop, q_producer, &r, NULL, 0, NULL));
    CHECK(stage_loop_run(loop, NULL, STAGE_FOREVER));
    int64_t t1 = stage_now();
    q_check(&r);
    return (double)(t1 - t0) / (double)n;
}

/* Baseline: a bounded ring of QCAP pointers, one mutex, two condvars
 * (not full, not empty), the textbook form: signal after every put and
 * every get (glibc makes a signal without waiters cheap). */
struct ring {
    pthread_mutex_t m;
    pthread_cond_t not_full, not_empty;
    void *buf[QCAP];
    size_t head, count;
    int closed;
    long n, got;
};

static void *ring_producer(void *arg)
{
    struct ring *r = arg;
    for (long i = 0; i < r->n; i++) {
        pthread_mutex_lock(&r->m);
        while (r->count == QCAP)
            pthread_cond_wait(&r->not_full, &r->m);
        r->buf[(r->head + r->count) % QCAP] = (void *)(intptr_t)(i + 1);
        r->count++;
        pthread_cond_signal(&r->not_empty);
        pthread_mutex_unlock(&r->m);
    }
    pthread_mutex_lock(&r->m);
    r->closed = 1;
    pthread_cond_broadcast(&r->not_empty);
    pthread_mutex_unlock(&r->m);
    return NULL;
}

static double plain_ring(long n)
{
    struct ring *r = calloc(1, sizeof *r);
    CHECK_PTR(r);
    pthread_mutex_init(&r->m, NULL);
    pthread_cond_init(&r->not_full, NULL);
    pthread_cond_init(&r->not_empty, NULL);
    r->n = n;
    pthread_t th;
    int64_t t0 = stage_now();
    CHECK(pthread_create(&th, NULL, ring_producer, r));
    for (;;) {
        pthread_mutex_lock(&r->m);
        while (r->count == 0 && !r->closed)
            pthread_cond_wait(&r->not_empty, &r->m);
        if (r->count == 0) {
            pthread_mutex_unlock(&r->m);
            break;
        }
        void *item = r->buf[r->head];
        r->head = (r->head + 1) % QCAP;
        r->count--;
        pthread_cond_signal(&r->not_full);
        pthread_mutex_unlock(&r->m);
        if ((intptr_t)item != r->got + 1) {
            fprintf(stderr, "%s: ring: bad item\n", prog);
            exit(1);
        }
        r->got++;
    }
    int64_t t1 = stage_now();
    CHECK(pthread_join(th, NULL));
    if (r->got != n) {
        fprintf(stderr, "%s: ring: got %ld of %ld\n", prog, r->got, n);
        exit(1);
    }
    pthread_cond_destroy(&r->not_full);
    pthread_cond_destroy(&r->not_empty);
    pthread_mutex_destroy(&r->m);
    free(r);
    return (double)(t1 - t0) / (double)n;
}

/* ---- 2. Tunnel throughput ----------------------------------------------- */

#define HISTORY 4096
#define MAXREADERS 8

/* A tunnel put never blocks, so an unpaced writer outruns its readers and
 * they miss items (EOVERFLOW).  To measure delivery rather than loss, the
 * writer paces itself: every PACE_EVERY puts it checks the slowest
 * reader's count and, while it is more than HISTORY/2 behind, yields the
 * CPU (sched_yield).  The baseline blocks its writer on a condvar under
 * the same rule. */
#define PACE_EVERY 64

struct tslot {
    _Alignas(64) atomic_long read; /* items this reader has read */
    long missed;
    stage_tunnel_reader *reader;
};

static struct trun {
    stage_tunnel *t;
    int nreaders;
    long n;
    struct tslot slot[MAXREADERS];
} tr;

static long t_min_read(void)
{
    long m = -1;
    for (int i = 0; i < tr.nreaders; i++) {
        long v = atomic_load_explicit(&tr.slot[i].read, memory_order_acquire);
        if (m < 0 || v < m)
            m = v;
    }
    return m;
}

static void *t_reader(void *arg)
{
    struct tslot *s = arg;
    void *item;
    long expect = 1;
    int err;
    while ((err = stage_tunnel_next(s->reader, &item)) == 0 ||
           err == EOVERFLOW) {
        if (err == EOVERFLOW) {
            s->missed += (long)stage_tunnel_reader_missed(s->reader);
            expect = -1; /* resynchronise on the next item */
            continue;
        }
        if (expect > 0 && (intptr_t)item != expect) {
            fprintf(stderr, "%s: tunnel: item %ld is %ld\n", prog, expect,
                    (long)(intptr_t)item);
            exit(1);
        }
        expect = (long)(intptr_t)item + 1;
        atomic_fetch_add_explicit(&s->read, 1, memory_order_release);
    }
    if (err != EPIPE)
        CHECK(err);
    CHECK(stage_loop_free(stage_loop_current()));
    return NULL;
}

static long tunnel_missed_total;

static double tunnel_run(long n, int nreaders)
{
    tr.t = stage_tunnel_new(STAGE_FOREVER, HISTORY, NULL);
    CHECK_PTR(tr.t);
    tr.nreaders = nreaders;
    tr.n = n;
    pthread_t th[MAXREADERS];
    for (int i = 0; i < nreaders; i++) {
        atomic_init(&tr.slot[i].read, 0);
        tr.slot[i].missed = 0;
        tr.slot[i].reader = stage_tunnel_reader_new(tr.t, STAGE_FOREVER);
        CHECK_PTR(tr.slot[i].reader);
    }
    int64_t t0 = stage_now();
    for (int i = 0; i < nreaders; i++)
        CHECK(pthread_create(&th[i], NULL, t_reader, &tr.slot[i]));
    for (long i = 0; i < n; i++) {
        if (i % PACE_EVERY == 0)
            while (i - t_min_read() > HISTORY / 2)
                sched_yield();
        CHECK(stage_tunnel_put(tr.t, (void *)(intptr_t)(i + 1)));
    }
    CHECK(stage_tunnel_close(tr.t));
    for (int i = 0; i < nreaders; i++)
        CHECK(pthread_join(th[i], NULL));
    int64_t t1 = stage_now();
    for (int i = 0; i < nreaders; i++) {
        long got = atomic_load(&tr.slot[i].read);
        if (got + tr.slot[i].missed != n) {
            fprintf(stderr, "%s: tunnel reader %d: %ld read + %ld missed "
                    "of %ld\n", prog, i, got, tr.slot[i].missed, n);
            exit(1);
        }
        tunnel_missed_total += tr.slot[i].missed;
        stage_tunnel_reader_free(tr.slot[i].reader);
    }
    stage_tunnel_unref(tr.t);
    return (double)(t1 - t0) / (double)n;
}

static double tunnel_1(long n) { return tunnel_run(n, 1); }
static double tunnel_8(long n) { return tunnel_run(n, 8); }

/* Baseline: a broadcast ring of HISTORY slots under one mutex.  The writer
 * waits on a condvar while the slowest reader is more than HISTORY/2
 * behind; readers wait on another condvar (broadcast by the writer, only
 * when some reader sleeps) and read one item per lock. */
static struct bring {
    pthread_mutex_t m;
    pthread_cond_t items, room;
    void *buf[HISTORY];
    long put;              /* items put */
    long pos[MAXREADERS];  /* items each reader has read */
    int nreaders, closed, readers_waiting, writer_waiting;
} br;

static long br_min(void)
{
    long m = br.pos[0];
    for (int i = 1; i < br.nreaders; i++)
        if (br.pos[i] < m)
            m = br.pos[i];
    return m;
}

static void *br_reader(void *arg)
{
    int me = (int)(intptr_t)arg;
    long expect = 1;
    pthread_mutex_lock(&br.m);
    for (;;) {
        while (br.pos[me] == br.put && !br.closed) {
            br.readers_waiting++;
            pthread_cond_wait(&br.items, &br.m);
            br.readers_waiting--;
        }
        if (br.pos[me] == br.put)
            break;
        void *item = br.buf[br.pos[me] % HISTORY];
        br.pos[me]++;
        if (br.writer_waiting && br.put - br_min() <= HISTORY / 2)
            pthread_cond_signal(&br.room);
        pthread_mutex_unlock(&br.m);
        if ((intptr_t)item != expect++) {
            fprintf(stderr, "%s: broadcast ring: bad item\n", prog);
            exit(1);
        }
        pthread_mutex_lock(&br.m);
    }
    pthread_mutex_unlock(&br.m);
    return NULL;
}

static double plain_broadcast(long n, int nreaders)
{
    memset(&br, 0, sizeof br);
    pthread_mutex_init(&br.m, NULL);
    pthread_cond_init(&br.items, NULL);
    pthread_cond_init(&br.room, NULL);
    br.nreaders = nreaders;
    pthread_t th[MAXREADERS];
    int64_t t0 = stage_now();
    for (int i = 0; i < nreaders; i++)
        CHECK(pthread_create(&th[i], NULL, br_reader, (void *)(intptr_t)i));
    for (long i = 0; i < n; i++) {
        pthread_mutex_lock(&br.m);
        while (br.put - br_min() > HISTORY / 2) {
            br.writer_waiting = 1;
            pthread_cond_wait(&br.room, &br.m);
            br.writer_waiting = 0;
        }
        br.buf[br.put % HISTORY] = (void *)(intptr_t)(i + 1);
        br.put++;
        if (br.readers_waiting)
            pthread_cond_broadcast(&br.items);
        pthread_mutex_unlock(&br.m);
    }
    pthread_mutex_lock(&br.m);
    br.closed = 1;
    pthread_cond_broadcast(&br.items);
    pthread_mutex_unlock(&br.m);
    for (int i = 0; i < nreaders; i++)
        CHECK(pthread_join(th[i], NULL));
    int64_t t1 = stage_now();
    pthread_cond_destroy(&br.items);
    pthread_cond_destroy(&br.room);
    pthread_mutex_destroy(&br.m);
    return (double)(t1 - t0) / (double)n;
}

static double plain_broadcast_1(long n) { return plain_broadcast(n, 1); }
static double plain_broadcast_8(long n) { return plain_broadcast(n, 8); }

/* ---- main -------------------------------------------------------------- */

int main(int argc, char **argv)
{
    parse_scale(argc, argv);
    char load[64];
    loadavg(load, sizeof load);
    printf("libstage %s queue/tunnel benchmark: scale %g, best of %d\n",
           stage_version_string(), scale, REPS);
    printf("load average at start: %s\n", load);
    print_header();
    int64_t start = stage_now();

    long nq = iters(10000000, 10000);
    long nt = iters(2000000, 10000);

    /* 1. Queues, capacity QCAP. */
    row("1a", "queue thread -> thread, cap 1024", "items/s", SHOW_RATE,
        queue_thread_thread, nq, plain_ring, nq,
        "mutex + 2 cond ring, thread -> thread");
    row("1b", "queue thread -> coroutine, cap 1024", "items/s", SHOW_RATE,
        queue_thread_coro, nq, plain_ring, nq,
        "mutex + 2 cond ring, thread -> thread");
    row("1c", "queue coroutine -> coroutine, 1 loop", "items/s", SHOW_RATE,
        queue_coro_coro, nq, plain_ring, nq,
        "mutex + 2 cond ring, thread -> thread");

    /* 2. Tunnels, history HISTORY, paced writer; rate per reader. */
    row("2a", "tunnel 1 writer, 1 reader thread", "items/s", SHOW_RATE,
        tunnel_1, nt, plain_broadcast_1, nt,
        "mutex + 2 cond broadcast ring, 1 reader");
    row("2b", "tunnel 1 writer, 8 reader threads", "items/s", SHOW_RATE,
        tunnel_8, nt, plain_broadcast_8, nt,
        "mutex + 2 cond broadcast ring, 8 readers");

    CHECK(stage_loop_free(stage_loop_current()));
    loadavg(load, sizeof load);
    printf("\n(%ld items per queue run, %ld per tunnel run; tunnel items "
           "missed in all runs: %ld)\n", nq, nt, tunnel_missed_total);
    printf("total %.1f s; load average at end: %s\n",
           (double)(stage_now() - start) / 1e9, load);
    return 0;
}
