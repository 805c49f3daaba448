/* SPDX-License-Identifier: MIT */
/*
 * check_threads.c - futures, queues, events and pools between plain
 * threads only: no coroutine anywhere, so no stack switching, which is what
 * lets `make check-helgrind` run this program under helgrind (helgrind and
 * DRD do not understand user-level stack switches; STYLE.md 1.5).  It also
 * runs in `make check`.
 *
 *   ping-pong      two threads hand a fresh future back and forth;
 *   fan-in         many threads resolve futures one thread waits for;
 *   queue          producers and consumers on a small bounded queue;
 *   event          waiters woken by one set, then cleared;
 *   pool           submit from several threads, get from them;
 *   thread tasks   stage_thread_spawn and cancellation of a blocked one.
 */
#include "common.h"

/* Fewer rounds under valgrind (helgrind is ~100x slower). */
static int rounds(int n)
{
    return t_on_valgrind() ? n / 20 + 1 : n;
}

/* ---- Ping-pong ---------------------------------------------------------- */

/* Each side waits for a future whose value is the next future to resolve
 * (holding a reference to it, dropped with the value). */
static void unref_future(void *f)
{
    stage_future_unref(f);
}

typedef struct pp {
    stage_future *first;
    int n;
} pp;

static void *pp_peer(void *arg)
{
    pp *p = arg;
    stage_future *f = stage_future_ref(p->first);

    for (int i = 0; i < p->n; i++) {
        void *next = NULL;
        stage_future *mine;

        if (stage_future_get(f, STAGE_FOREVER, &next) != 0)
            break;
        mine = stage_future_new();
        /* next: the future the other side waits on; hand it ours. */
        stage_future_resolve(next, stage_future_ref(mine), unref_future);
        stage_future_unref(f);
        f = mine;
    }
    stage_future_unref(f);
    return NULL;
}

START_TEST(test_ping_pong)
{
    pp p = {stage_future_new(), rounds(2000)};
    pthread_t th = t_thread_start(pp_peer, &p);
    stage_future *wait_on = stage_future_new();
    void *mine = NULL;
    int i;

    /* Hand the peer the future we wait on next. */
    ck_assert_int_eq(stage_future_resolve(p.first, stage_future_ref(wait_on),
                                          unref_future),
                     0);
    for (i = 0; i < p.n; i++) {
        stage_future *next = stage_future_new();

        ck_assert_int_eq(stage_future_get(wait_on, 10.0 * t_tol(), &mine),
                         0);
        ck_assert_int_eq(
            stage_future_resolve(mine, stage_future_ref(next), unref_future),
            0);
        stage_future_unref(wait_on);
        wait_on = next;
    }
    t_thread_join(th);
    stage_future_unref(wait_on);
    stage_future_unref(p.first);
}
END_TEST

/* ---- Fan-in ------------------------------------------------------------- */

#define FAN 8

static void *resolve_it(void *arg)
{
    stage_future *f = arg;

    stage_future_resolve(f, f, NULL);
    stage_future_unref(f);
    return NULL;
}

START_TEST(test_fan_in)
{
    for (int r = 0; r < rounds(100); r++) {
        stage_future *f[FAN];
        pthread_t th[FAN];
        int i;

        for (i = 0; i < FAN; i++) {
            f[i] = stage_future_new();
            th[i] = t_thread_start(resolve_it, stage_future_ref(f[i]));
        }
        for (i = 0; i < FAN; i++) {
            void *v = NULL;

            ck_assert_int_eq(stage_future_get(f[i], 10.0 * t_tol(), &v), 0);
            ck_assert_ptr_eq(v, f[i]);
        }
        for (i = 0; i < FAN; i++) {
            t_thread_join(th[i]);
            stage_future_unref(f[i]);
        }
    }
}
END_TEST

/* ---- Queue -------------------------------------------------------------- */

#define QN 4

typedef struct qctx {
    stage_queue *q;
    int n;          /* items per producer */
    atomic_long sum;
} qctx;

static void *q_put(void *arg)
{
    qctx *c = arg;

    for (intptr_t i = 1; i <= c->n; i++)
        if (stage_queue_put(c->q, (void *)i, STAGE_FOREVER) != 0)
            break;
    return NULL;
}

static void *q_get(void *arg)
{
    qctx *c = arg;
    void *v;

    while (stage_queue_get(c->q, &v, STAGE_FOREVER) == 0)
        atomic_fetch_add(&c->sum, (long)(intptr_t)v);
    return NULL;
}

START_TEST(test_queue_mpmc)
{
    qctx c = {stage_queue_new(4, NULL), rounds(5000), 0};
    pthread_t p[QN], g[QN];
    long want;
    int i;

    for (i = 0; i < QN; i++) {
        p[i] = t_thread_start(q_put, &c);
        g[i] = t_thread_start(q_get, &c);
    }
    for (i = 0; i < QN; i++)
        t_thread_join(p[i]);
    ck_assert_int_eq(stage_queue_close(c.q), 0);
    for (i = 0; i < QN; i++)
        t_thread_join(g[i]);
    want = (long)QN * c.n * (c.n + 1) / 2;
    ck_assert_int_eq(atomic_load(&c.sum), want);
    stage_queue_unref(c.q);
}
END_TEST

/* ---- Event -------------------------------------------------------------- */

typedef struct ectx {
    stage_event *e;
    pthread_barrier_t b;
    int rc[FAN];
    void *payload[FAN];
    atomic_int idx;
} ectx;

static void *e_wait(void *arg)
{
    ectx *c = arg;
    int i = atomic_fetch_add(&c->idx, 1);

    pthread_barrier_wait(&c->b);
    c->rc[i] = stage_event_wait(c->e, 10.0 * t_tol(), &c->payload[i]);
    return NULL;
}

START_TEST(test_event_broadcast)
{
    static ectx c;
    pthread_t th[FAN];
    int i;

    memset(&c, 0, sizeof c);
    c.e = stage_event_new();
    pthread_barrier_init(&c.b, NULL, FAN + 1);
    for (i = 0; i < FAN; i++)
        th[i] = t_thread_start(e_wait, &c);
    pthread_barrier_wait(&c.b);
    ck_assert_int_eq(stage_event_set(c.e, &c), 0);
    for (i = 0; i < FAN; i++)
        t_thread_join(th[i]);
    ck_assert_int_eq(stage_event_clear(c.e), 0);
    for (i = 0; i < FAN; i++) {
        ck_assert_int_eq(c.rc[i], 0);
        ck_assert_ptr_eq(c.payload[i], &c);
    }
    pthread_barrier_destroy(&c.b);
    stage_event_unref(c.e);
}
END_TEST

/* ---- Pool --------------------------------------------------------------- */

static void *inc(void *arg)
{
    return (void *)((intptr_t)arg + 1);
}

typedef struct pctx {
    stage_pool *pool;
    int n;
    int bad;
} pctx;

static void *submitter(void *arg)
{
    pctx *c = arg;

    for (intptr_t i = 0; i < c->n; i++) {
        stage_future *f = NULL;
        void *v = NULL;

        if (stage_pool_submit(c->pool, inc, (void *)i, NULL, &f) != 0 ||
            stage_future_get(f, STAGE_FOREVER, &v) != 0 ||
            (intptr_t)v != i + 1)
            c->bad++;
        stage_future_unref(f);
    }
    return NULL;
}

START_TEST(test_pool_submitters)
{
    stage_pool *pool = stage_pool_new("threads", 0, 3, 0.05);
    pctx c[3];
    pthread_t th[3];
    int i;

    ck_assert_ptr_nonnull(pool);
    for (i = 0; i < 3; i++) {
        c[i] = (pctx){pool, rounds(2000), 0};
        th[i] = t_thread_start(submitter, &c[i]);
    }
    for (i = 0; i < 3; i++) {
        t_thread_join(th[i]);
        ck_assert_int_eq(c[i].bad, 0);
    }
    ck_assert_int_eq(stage_pool_close(pool, 0, STAGE_FOREVER), 0);
    ck_assert_int_eq(stage_pool_free(pool), 0);
}
END_TEST

/* ---- Thread tasks -------------------------------------------------------- */

static void *block_until_cancelled(void *arg)
{
    stage_future *never = stage_future_new();
    int rc;

    stage_future_resolve(arg, NULL, NULL); /* about to block */
    rc = stage_future_wait(never, STAGE_FOREVER);
    stage_future_unref(never);
    return (void *)(intptr_t)rc;
}

START_TEST(test_thread_cancel)
{
    for (int r = 0; r < rounds(100); r++) {
        stage_future *about = stage_future_new(), *t = NULL;

        ck_assert_int_eq(
            stage_thread_spawn(block_until_cancelled, about, NULL, &t), 0);
        ck_assert_int_eq(stage_future_wait(about, 10.0 * t_tol()), 0);
        ck_assert_int_eq(stage_future_cancel(t), 0);
        ck_assert_int_eq(stage_future_wait(t, 10.0 * t_tol()), 0);
        ck_assert_int_eq(stage_future_state(t), STAGE_CANCELLED);
        stage_future_unref(t);
        stage_future_unref(about);
    }
}
END_TEST

static Suite *threads_suite(void)
{
    Suite *s = suite_create("threads");
    TCase *tc = t_tcase(s, "futures", 60);

    tcase_add_test(tc, test_ping_pong);
    tcase_add_test(tc, test_fan_in);
    tc = t_tcase(s, "streams", 60);
    tcase_add_test(tc, test_queue_mpmc);
    tcase_add_test(tc, test_event_broadcast);
    tc = t_tcase(s, "pool", 60);
    tcase_add_test(tc, test_pool_submitters);
    tcase_add_test(tc, test_thread_cancel);
    return s;
}

T_MAIN(threads_suite)
