/* SPDX-License-Identifier: MIT */
/*
 * check_loop.c - per-thread loops: stage_loop_current, stage_loop_run (until
 * a future, until empty, timeouts, inside a coroutine, EPERM/EINVAL/EDEADLK,
 * ECANCELED for a cancelled thread task), stage_loop_free (cancels blocked
 * coroutines, never starts unstarted ones, EPIPE for spawns meanwhile,
 * EPERM/EBUSY), stage_loop_count, and spawning onto another thread's loop.
 */
#include "common.h"

/* ---- Another thread with a running loop --------------------------------- */

/* A plain pthread that publishes its loop, then runs it until `stop`. */
typedef struct runner {
    stage_future *ready; /* resolved with the thread's loop */
    stage_future *stop;  /* the thread runs its loop until this settles */
    stage_loop *loop;
    pthread_t th;
    int run_rc, free_rc;
} runner;

static void *runner_main(void *arg)
{
    runner *r = arg;
    stage_loop *loop = stage_loop_current();

    stage_future_resolve(r->ready, loop, NULL);
    r->run_rc = stage_loop_run(loop, r->stop, STAGE_FOREVER);
    r->free_rc = stage_loop_free(loop);
    return NULL;
}

static void runner_start(runner *r)
{
    void *v = NULL;

    memset(r, 0, sizeof *r);
    r->ready = stage_future_new();
    r->stop = stage_future_new();
    r->run_rc = r->free_rc = -1;
    r->th = t_thread_start(runner_main, r);
    ck_assert_int_eq(stage_future_get(r->ready, 5.0 * t_tol(), &v), 0);
    ck_assert_ptr_nonnull(v);
    r->loop = v;
}

static void runner_stop(runner *r)
{
    ck_assert_int_eq(stage_future_resolve(r->stop, NULL, NULL), 0);
    t_thread_join(r->th);
    ck_assert_int_eq(r->run_rc, 0);
    ck_assert_int_eq(r->free_rc, 0);
    stage_future_unref(r->ready);
    stage_future_unref(r->stop);
}

/* ---- stage_loop_current ------------------------------------------------- */

static void *loop_of_thread(void *arg)
{
    stage_loop **out = arg;

    *out = stage_loop_current();
    return NULL;
}

START_TEST(test_current)
{
    stage_loop *a = stage_loop_current();
    runner r;

    ck_assert_ptr_nonnull(a);
    ck_assert_ptr_eq(stage_loop_current(), a);
    ck_assert_uint_eq(stage_loop_count(a), 0);
    ck_assert_uint_eq(stage_loop_count(NULL), 0);
    /* Another thread has a loop of its own (kept alive by its run). */
    runner_start(&r);
    ck_assert_ptr_ne(r.loop, a);
    runner_stop(&r);
    {
        stage_loop *b = NULL;

        t_thread_join(t_thread_start(loop_of_thread, &b));
        ck_assert_ptr_nonnull(b);
    }
}
END_TEST

/* ---- EINVAL / EPERM ------------------------------------------------------ */

START_TEST(test_run_free_errors)
{
    runner r;
    stage_future *f = stage_future_new();

    ck_assert_int_eq(stage_loop_run(NULL, NULL, 0), EINVAL);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, NAN), EINVAL);
    runner_start(&r);
    ck_assert_int_eq(stage_loop_run(r.loop, NULL, 0), EPERM);
    ck_assert_int_eq(stage_loop_run(r.loop, f, 0.01), EPERM);
    ck_assert_int_eq(stage_loop_free(r.loop), EPERM);
    runner_stop(&r);
    stage_future_unref(f);
}
END_TEST

/* stage_loop_free from a coroutine: EBUSY. */
static void *free_in_coro(void *arg)
{
    int *rc = arg;

    *rc = stage_loop_free(stage_loop_current());
    return NULL;
}

START_TEST(test_free_in_coroutine_ebusy)
{
    int rc = -1;
    stage_future *t = NULL;

    ck_assert_int_eq(stage_coro_spawn(NULL, free_in_coro, &rc, NULL, 0, &t),
                     0);
    ck_assert_int_eq(stage_future_wait(t, 5.0 * t_tol()), 0);
    ck_assert_int_eq(rc, EBUSY);
    ck_assert_int_eq(stage_future_state(t), STAGE_DONE);
    stage_future_unref(t);
}
END_TEST

/* ---- stage_loop_run ------------------------------------------------------ */

typedef struct steps {
    int n;      /* steps taken so far (all coroutines) */
    int done;   /* coroutines finished */
} steps;

static void *stepper(void *arg)
{
    steps *s = arg;
    int i;

    for (i = 0; i < 3; i++) {
        s->n++;
        if (i == 1)
            stage_sleep(0.01);
        else
            stage_yield();
    }
    s->done++;
    return NULL;
}

START_TEST(test_run_until_empty)
{
    stage_loop *loop = stage_loop_current();
    steps s = {0, 0};
    int i;

    /* An empty loop returns at once. */
    ck_assert_int_eq(stage_loop_run(loop, NULL, STAGE_FOREVER), 0);
    ck_assert_int_eq(stage_loop_run(loop, NULL, 0), 0);
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(stage_coro_spawn(loop, stepper, &s, NULL, 0, NULL),
                         0);
    ck_assert_uint_eq(stage_loop_count(loop), 3);
    ck_assert_int_eq(stage_loop_run(loop, NULL, STAGE_FOREVER), 0);
    ck_assert_int_eq(s.n, 9);
    ck_assert_int_eq(s.done, 3);
    ck_assert_uint_eq(stage_loop_count(loop), 0);
}
END_TEST

static void *resolve_later(void *arg)
{
    stage_future *f = arg;

    stage_sleep(0.02);
    stage_future_resolve(f, NULL, NULL);
    return NULL;
}

static void *sleep_long(void *arg)
{
    int *rc = arg;

    *rc = stage_sleep(10.0);
    return NULL;
}

START_TEST(test_run_until_future)
{
    stage_loop *loop = stage_loop_current();
    stage_future *f = stage_future_new();
    stage_future *done = stage_future_new();
    int rc = -1;

    ck_assert_int_eq(stage_coro_spawn(loop, resolve_later, f, NULL, 0, NULL),
                     0);
    ck_assert_int_eq(stage_coro_spawn(loop, sleep_long, &rc, NULL, 0, NULL), 0);
    ck_assert_int_eq(stage_loop_run(loop, f, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_state(f), STAGE_DONE);
    /* The sleeper is still live; run returned because `f` settled. */
    ck_assert_uint_eq(stage_loop_count(loop), 1);
    ck_assert_int_eq(rc, -1);
    /* A settled `until` returns at once, in any state. */
    ck_assert_int_eq(stage_loop_run(loop, f, 0), 0);
    ck_assert_int_eq(stage_future_cancel(done), 0);
    ck_assert_int_eq(stage_loop_run(loop, done, STAGE_FOREVER), 0);
    stage_future_unref(done);
    done = stage_future_new();
    ck_assert_int_eq(stage_future_fail(done, EIO, "x"), 0);
    ck_assert_int_eq(stage_loop_run(loop, done, STAGE_FOREVER), 0);
    /* Freeing the loop cancels the sleeper (rc lives on this stack). */
    ck_assert_int_eq(stage_loop_free(loop), 0);
    ck_assert_int_eq(rc, ECANCELED);
    stage_future_unref(done);
    stage_future_unref(f);
}
END_TEST

START_TEST(test_run_timeout)
{
    stage_loop *loop = stage_loop_current();
    stage_future *f = stage_future_new();
    int rc = -1;
    double t0, el;

    ck_assert_int_eq(stage_coro_spawn(loop, sleep_long, &rc, NULL, 0, NULL), 0);
    t0 = t_time();
    ck_assert_int_eq(stage_loop_run(loop, NULL, 0.05), ETIMEDOUT);
    el = t_time() - t0;
    ck_assert_double_ge(el, 0.05);
    ck_assert_double_lt(el, 0.05 + 1.0 * t_tol());
    ck_assert_int_eq(stage_loop_run(loop, NULL, 0), ETIMEDOUT);
    t0 = t_time();
    ck_assert_int_eq(stage_loop_run(loop, f, 0.05), ETIMEDOUT);
    ck_assert_double_ge(t_time() - t0, 0.05);
    ck_assert_int_eq(stage_loop_run(loop, f, 0), ETIMEDOUT);
    ck_assert_int_eq(stage_future_state(f), STAGE_PENDING);
    ck_assert_uint_eq(stage_loop_count(loop), 1);
    ck_assert_int_eq(rc, -1);
    ck_assert_int_eq(stage_loop_free(loop), 0);
    ck_assert_int_eq(rc, ECANCELED);
    stage_future_unref(f);
}
END_TEST

/* A loop with no coroutines, sleeping in poll, is woken by another thread
 * settling `until`. */
static void *resolve_from_thread(void *arg)
{
    stage_future *f = arg;

    stage_sleep(0.02);
    stage_future_resolve(f, NULL, NULL);
    return NULL;
}

START_TEST(test_run_until_thread_resolves)
{
    stage_future *f = stage_future_new();
    stage_future *th = NULL;

    ck_assert_int_eq(stage_thread_spawn(resolve_from_thread, f, NULL, &th), 0);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), f, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(stage_future_state(f), STAGE_DONE);
    ck_assert_int_eq(stage_future_wait(th, 5.0 * t_tol()), 0);
    stage_future_unref(th);
    stage_future_unref(f);
}
END_TEST

/* stage_loop_run inside a coroutine. */
typedef struct inrun {
    stage_future *other;
    stage_future *never;
    int null_rc, other_rc, timeout_rc;
} inrun;

static void *run_in_coro(void *arg)
{
    inrun *r = arg;

    r->null_rc = stage_loop_run(stage_loop_current(), NULL, 1.0);
    r->timeout_rc = stage_loop_run(stage_loop_current(), r->never, 0.02);
    r->other_rc = stage_loop_run(stage_loop_current(), r->other,
                                 STAGE_FOREVER);
    return NULL;
}

START_TEST(test_run_in_coroutine)
{
    inrun r;
    stage_future *t = NULL;

    r.other = stage_future_new();
    r.never = stage_future_new();
    r.null_rc = r.other_rc = r.timeout_rc = -1;
    ck_assert_int_eq(stage_coro_spawn(NULL, run_in_coro, &r, NULL, 0, &t), 0);
    ck_assert_int_eq(
        stage_coro_spawn(NULL, resolve_later, r.other, NULL, 0, NULL), 0);
    ck_assert_int_eq(
        stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()), 0);
    ck_assert_int_eq(r.null_rc, EDEADLK);
    ck_assert_int_eq(r.timeout_rc, ETIMEDOUT);
    ck_assert_int_eq(r.other_rc, 0);
    ck_assert_int_eq(stage_future_state(t), STAGE_DONE);
    stage_future_unref(t);
    stage_future_unref(r.other);
    stage_future_unref(r.never);
}
END_TEST

/* A thread task running its loop is cancelled: ECANCELED. */
typedef struct runcancel {
    stage_future *started;
    stage_future *never;
    int rc;
} runcancel;

static void *run_cancel_body(void *arg)
{
    runcancel *r = arg;

    stage_future_resolve(r->started, NULL, NULL);
    r->rc = stage_loop_run(stage_loop_current(), r->never, STAGE_FOREVER);
    return NULL;
}

START_TEST(test_run_cancelled_thread_task)
{
    runcancel r;
    stage_future *t = NULL;
    double t0;

    r.started = stage_future_new();
    r.never = stage_future_new();
    r.rc = -1;
    ck_assert_int_eq(stage_thread_spawn(run_cancel_body, &r, NULL, &t), 0);
    ck_assert_int_eq(stage_future_wait(r.started, 5.0 * t_tol()), 0);
    t0 = t_time();
    ck_assert_int_eq(stage_future_cancel(t), 0);
    ck_assert_int_eq(stage_future_wait(t, 5.0 * t_tol()), 0);
    ck_assert_double_lt(t_time() - t0, 0.5 * t_tol());
    ck_assert_int_eq(r.rc, ECANCELED);
    ck_assert_int_eq(stage_future_state(t), STAGE_CANCELLED);
    ck_assert_int_eq(stage_future_state(r.never), STAGE_PENDING);
    stage_future_unref(t);
    stage_future_unref(r.started);
    stage_future_unref(r.never);
}
END_TEST

/* ---- Main's coroutines run while main blocks ---------------------------- */

START_TEST(test_coro_runs_while_main_waits)
{
    stage_future *f = stage_future_new();
    double t0;

    ck_assert_int_eq(stage_coro_spawn(NULL, resolve_later, f, NULL, 0, NULL),
                     0);
    t0 = t_time();
    ck_assert_int_eq(stage_future_wait(f, STAGE_FOREVER), 0);
    ck_assert_double_ge(t_time() - t0, 0.02);
    ck_assert_int_eq(stage_future_state(f), STAGE_DONE);
    ck_assert_uint_eq(stage_loop_count(stage_loop_current()), 0);
    stage_future_unref(f);
}
END_TEST

/* ---- stage_loop_free ---------------------------------------------------- */

typedef struct freeing {
    stage_loop *loop;
    stage_future *never;
    int wait_rc, sleep_rc, yield_rc, spawn_rc;
    int cancelled_seen;
    atomic_int unstarted_ran;
    atomic_int spawned_ran;
} freeing;

static void *free_waiter(void *arg)
{
    freeing *s = arg;

    s->wait_rc = stage_future_wait(s->never, STAGE_FOREVER);
    s->cancelled_seen = stage_task_cancelled();
    return NULL;
}

static void *free_spawned(void *arg)
{
    freeing *s = arg;

    atomic_fetch_add(&s->spawned_ran, 1);
    return NULL;
}

static void *free_sleeper(void *arg)
{
    freeing *s = arg;

    s->sleep_rc = stage_sleep(STAGE_FOREVER);
    /* The loop is being freed: spawning onto it fails with EPIPE. */
    s->spawn_rc = stage_coro_spawn(s->loop, free_spawned, s, NULL, 0, NULL);
    return NULL;
}

static void *free_yielder(void *arg)
{
    freeing *s = arg;

    while ((s->yield_rc = stage_yield()) == 0)
        ;
    return NULL;
}

static void *free_unstarted(void *arg)
{
    freeing *s = arg;

    atomic_fetch_add(&s->unstarted_ran, 1);
    return NULL;
}

START_TEST(test_free_cancels)
{
    freeing s;
    stage_future *tw = NULL, *ts = NULL, *ty = NULL, *tu = NULL;
    stage_loop *loop;
    int ran = 0;

    memset(&s, 0, sizeof s);
    s.loop = stage_loop_current();
    s.never = stage_future_new();
    s.wait_rc = s.sleep_rc = s.yield_rc = s.spawn_rc = -1;
    s.cancelled_seen = -1;
    atomic_init(&s.unstarted_ran, 0);
    atomic_init(&s.spawned_ran, 0);
    ck_assert_int_eq(stage_coro_spawn(NULL, free_waiter, &s, NULL, 0, &tw), 0);
    ck_assert_int_eq(stage_coro_spawn(NULL, free_sleeper, &s, NULL, 0, &ts), 0);
    ck_assert_int_eq(stage_coro_spawn(NULL, free_yielder, &s, NULL, 0, &ty), 0);
    ck_assert_int_eq(stage_yield(), 0); /* all three start and block */
    ck_assert_int_eq(
        stage_coro_spawn(NULL, free_unstarted, &s, NULL, 0, &tu), 0);
    ck_assert_uint_eq(stage_loop_count(s.loop), 4);
    ck_assert_int_eq(stage_loop_free(s.loop), 0);
    ck_assert_int_eq(s.wait_rc, ECANCELED);
    ck_assert_int_eq(s.cancelled_seen, 1);
    ck_assert_int_eq(s.sleep_rc, ECANCELED);
    ck_assert_int_eq(s.yield_rc, ECANCELED);
    ck_assert_int_eq(atomic_load(&s.spawned_ran), 0);
    ck_assert_int_eq(atomic_load(&s.unstarted_ran), 0);
    ck_assert_int_eq(stage_future_state(tw), STAGE_CANCELLED);
    ck_assert_int_eq(stage_future_state(ts), STAGE_CANCELLED);
    ck_assert_int_eq(stage_future_state(ty), STAGE_CANCELLED);
    ck_assert_int_eq(stage_future_state(tu), STAGE_CANCELLED);
    ck_assert_int_eq(stage_future_state(s.never), STAGE_PENDING);
    /* stage_loop_current() makes a fresh loop, which works. */
    loop = stage_loop_current();
    ck_assert_ptr_nonnull(loop);
    ck_assert_uint_eq(stage_loop_count(loop), 0);
    ck_assert_int_eq(stage_coro_spawn(NULL, free_spawned, &s, NULL, 0, NULL),
                     0);
    ck_assert_int_eq(stage_loop_run(loop, NULL, 5.0 * t_tol()), 0);
    ran = atomic_load(&s.spawned_ran);
    ck_assert_int_eq(ran, 1);
    /* Spec: spawning onto a loop that is being freed fails with EPIPE. */
    ck_assert_int_eq(s.spawn_rc, EPIPE);
    stage_future_unref(tw);
    stage_future_unref(ts);
    stage_future_unref(ty);
    stage_future_unref(tu);
    stage_future_unref(s.never);
}
END_TEST

/* Freeing an idle loop, twice in a row through stage_loop_current(). */
START_TEST(test_free_idle)
{
    ck_assert_int_eq(stage_loop_free(stage_loop_current()), 0);
    ck_assert_int_eq(stage_loop_free(stage_loop_current()), 0);
    ck_assert_ptr_nonnull(stage_loop_current());
}
END_TEST

/* ---- Spawning on another thread's loop ---------------------------------- */

/* Another thread frees its loop; while that loop is closing (its cancelled
 * coroutine holds it open without blocking), main spawns onto it: EPIPE. */
typedef struct closing {
    stage_future *loop_ready; /* resolved with the thread's loop */
    stage_future *closing;    /* resolved by the coroutine once cancelled */
    atomic_int release;       /* set by main after its spawn attempt */
    int wait_rc, free_rc;
} closing;

static void *closing_coro(void *arg)
{
    closing *c = arg;
    stage_future *never = stage_future_new();
    struct timespec ts = {0, 100 * 1000};

    c->wait_rc = stage_future_wait(never, STAGE_FOREVER);
    stage_future_unref(never);
    stage_future_resolve(c->closing, NULL, NULL);
    /* Cleanup during cancellation may not block: spin on plain sleeps. */
    while (!atomic_load(&c->release))
        nanosleep(&ts, NULL);
    return NULL;
}

static void *noop_body(void *arg)
{
    return arg;
}

static void *closing_thread(void *arg)
{
    closing *c = arg;
    stage_loop *loop = stage_loop_current();

    if (stage_coro_spawn(loop, closing_coro, c, NULL, 0, NULL) != 0)
        return NULL;
    stage_yield(); /* it starts and blocks */
    stage_future_resolve(c->loop_ready, loop, NULL);
    c->free_rc = stage_loop_free(loop);
    return NULL;
}

START_TEST(test_spawn_on_closing_loop)
{
    closing c;
    pthread_t th;
    void *loop = NULL;
    stage_future *t = NULL;
    int rc;

    memset(&c, 0, sizeof c);
    c.loop_ready = stage_future_new();
    c.closing = stage_future_new();
    atomic_init(&c.release, 0);
    c.wait_rc = c.free_rc = -1;
    th = t_thread_start(closing_thread, &c);
    ck_assert_int_eq(stage_future_get(c.loop_ready, 5.0 * t_tol(), &loop), 0);
    ck_assert_int_eq(stage_future_wait(c.closing, 5.0 * t_tol()), 0);
    rc = stage_coro_spawn(loop, noop_body, NULL, NULL, 0, &t);
    atomic_store(&c.release, 1);
    t_thread_join(th);
    if (rc == 0)
        stage_future_unref(t);
    ck_assert_int_eq(c.wait_rc, ECANCELED);
    ck_assert_int_eq(c.free_rc, 0);
    ck_assert_int_eq(rc, EPIPE);
    stage_future_unref(c.loop_ready);
    stage_future_unref(c.closing);
}
END_TEST

/* A spawn from another thread still waiting in the loop's inbox when the
 * loop is freed: its coroutine is made cancelled and never runs, so a
 * coroutine meant to keep the loop open must have started before anyone
 * relies on it (the stress suite's guardian once did not). */
typedef struct queued {
    pthread_barrier_t published, spawned;
    stage_loop *loop;
    atomic_int ran;
    int free_rc;
} queued;

static void *queued_body(void *arg)
{
    queued *q = arg;

    atomic_fetch_add(&q->ran, 1);
    return NULL;
}

static void *queued_thread(void *arg)
{
    queued *q = arg;

    q->loop = stage_loop_current();
    /* Plain barriers: this thread does not run its loop meanwhile. */
    pthread_barrier_wait(&q->published);
    pthread_barrier_wait(&q->spawned);
    q->free_rc = stage_loop_free(q->loop);
    return NULL;
}

START_TEST(test_free_queued_remote_spawn)
{
    queued q;
    pthread_t th;
    stage_future *t = NULL;

    memset(&q, 0, sizeof q);
    atomic_init(&q.ran, 0);
    q.free_rc = -1;
    ck_assert_int_eq(pthread_barrier_init(&q.published, NULL, 2), 0);
    ck_assert_int_eq(pthread_barrier_init(&q.spawned, NULL, 2), 0);
    th = t_thread_start(queued_thread, &q);
    pthread_barrier_wait(&q.published);
    ck_assert_int_eq(stage_coro_spawn(q.loop, queued_body, &q, NULL, 0, &t),
                     0);
    pthread_barrier_wait(&q.spawned);
    t_thread_join(th);
    ck_assert_int_eq(q.free_rc, 0);
    ck_assert_int_eq(atomic_load(&q.ran), 0);
    ck_assert_int_eq(stage_future_state(t), STAGE_CANCELLED);
    stage_future_unref(t);
    pthread_barrier_destroy(&q.published);
    pthread_barrier_destroy(&q.spawned);
}
END_TEST

typedef struct remote {
    pthread_t thread;
    stage_loop *loop;
    int slept_rc;
} remote;

static void *remote_body(void *arg)
{
    remote *r = arg;

    r->thread = pthread_self();
    r->loop = stage_loop_current();
    r->slept_rc = stage_sleep(0.001);
    return (void *)r;
}

START_TEST(test_spawn_on_other_loop)
{
    enum { N = 100 };
    static remote rs[N];
    stage_future *t[N];
    runner r;
    int i;

    runner_start(&r);
    for (i = 0; i < N; i++) {
        memset(&rs[i], 0, sizeof rs[i]);
        rs[i].slept_rc = -1;
        ck_assert_int_eq(
            stage_coro_spawn(r.loop, remote_body, &rs[i], NULL, 0, &t[i]), 0);
    }
    /* Main's own loop is untouched. */
    ck_assert_uint_eq(stage_loop_count(stage_loop_current()), 0);
    for (i = 0; i < N; i++) {
        void *v = NULL;

        ck_assert_int_eq(stage_future_get(t[i], 5.0 * t_tol(), &v), 0);
        ck_assert_ptr_eq(v, &rs[i]);
        ck_assert(pthread_equal(rs[i].thread, r.th));
        ck_assert_ptr_eq(rs[i].loop, r.loop);
        ck_assert_int_eq(rs[i].slept_rc, 0);
        stage_future_unref(t[i]);
    }
    runner_stop(&r);
}
END_TEST

/* A thread's timed wait ends at its deadline even while its loop always
 * has a ready coroutine (one that keeps yielding); timeout 0 runs one
 * batch and says ETIMEDOUT. */
static void *spin_body(void *arg)
{
    atomic_int *turns = arg;

    while (stage_yield() == 0)
        atomic_fetch_add(turns, 1);
    return NULL;
}

START_TEST(test_deadline_busy_loop)
{
    stage_future *latch = stage_future_new(), *spin;
    atomic_int turns;
    double t0, dt;

    atomic_init(&turns, 0);
    ck_assert_ptr_nonnull(latch);
    ck_assert_int_eq(stage_coro_spawn(NULL, spin_body, &turns, NULL, 0,
                                      &spin),
                     0);
    ck_assert_int_eq(stage_future_wait(latch, 0), ETIMEDOUT);
    ck_assert_int_eq(atomic_load(&turns), 0); /* one batch: its first turn */
    t0 = t_time();
    ck_assert_int_eq(stage_future_wait(latch, 0.05), ETIMEDOUT);
    dt = t_time() - t0;
    ck_assert_double_ge(dt, 0.05);
    ck_assert_double_lt(dt, 2.0 * t_tol());
    ck_assert_int_gt(atomic_load(&turns), 0);
    ck_assert_int_eq(stage_future_cancel(spin), 0);
    ck_assert_int_eq(stage_future_wait(spin, 5.0 * t_tol()), 0);
    stage_future_unref(spin);
    stage_future_unref(latch);
}
END_TEST

static Suite *loop_suite(void)
{
    Suite *s = suite_create("loop");
    TCase *tc;

    tc = t_tcase(s, "current", 5);
    tcase_add_test(tc, test_current);
    tcase_add_test(tc, test_run_free_errors);
    tcase_add_test(tc, test_free_in_coroutine_ebusy);

    tc = t_tcase(s, "run", 10);
    tcase_add_test(tc, test_run_until_empty);
    tcase_add_test(tc, test_run_until_future);
    tcase_add_test(tc, test_run_timeout);
    tcase_add_test(tc, test_run_until_thread_resolves);
    tcase_add_test(tc, test_run_in_coroutine);
    tcase_add_test(tc, test_run_cancelled_thread_task);
    tcase_add_test(tc, test_coro_runs_while_main_waits);
    tcase_add_test(tc, test_deadline_busy_loop);

    tc = t_tcase(s, "free", 10);
    tcase_add_test(tc, test_free_cancels);
    tcase_add_test(tc, test_free_idle);

    tc = t_tcase(s, "remote", 10);
    tcase_add_test(tc, test_spawn_on_other_loop);
    tcase_add_test(tc, test_spawn_on_closing_loop);
    tcase_add_test(tc, test_free_queued_remote_spawn);
    return s;
}

T_MAIN(loop_suite)
