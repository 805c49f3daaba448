/* SPDX-License-Identifier: MIT */
/*
 * check_sleep.c - time: stage_now, stage_sleep on threads and in coroutines
 * (never early, 0 is a yield, negative sleeps until cancelled, NaN is
 * EINVAL), stage_yield on a thread and in coroutines, and the timer heap:
 * 10,000 coroutines sleeping random times all wake once, in deadline order.
 */
#include "common.h"

/* ---- stage_now ----------------------------------------------------------- */

START_TEST(test_now)
{
    int64_t prev = stage_now(), t;
    struct timespec ts;
    double mono;
    int i;

    ck_assert_int_gt(prev, 0);
    for (i = 0; i < 100000; i++) {
        t = stage_now();
        ck_assert_int_ge(t, prev);
        prev = t;
    }
    /* Same clock as CLOCK_MONOTONIC. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    t = stage_now();
    mono = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    ck_assert_double_ge(t_ns2s(t), mono);
    ck_assert_double_lt(t_ns2s(t) - mono, 0.1 * t_tol());
    /* It advances with real time. */
    ts.tv_sec = 0;
    ts.tv_nsec = 20 * 1000 * 1000;
    prev = stage_now();
    nanosleep(&ts, NULL);
    ck_assert_int_ge(stage_now() - prev, 20 * 1000 * 1000);
}
END_TEST

/* ---- stage_sleep on a thread ---------------------------------------------- */

START_TEST(test_sleep_thread)
{
    int64_t t0 = stage_now();
    double el;

    ck_assert_int_eq(stage_sleep(0.05), 0);
    el = t_ns2s(stage_now() - t0);
    ck_assert_int_ge(stage_now() - t0, t_s2ns(0.05));
    ck_assert_double_lt(el, 0.05 + 1.0 * t_tol());
    /* Sub-millisecond sleeps are not rounded down to nothing. */
    t0 = stage_now();
    ck_assert_int_eq(stage_sleep(0.0003), 0);
    ck_assert_int_ge(stage_now() - t0, t_s2ns(0.0003));
}
END_TEST

START_TEST(test_sleep_args)
{
    double t0 = t_time();

    ck_assert_int_eq(stage_sleep(0), 0);
    ck_assert_double_lt(t_time() - t0, 0.5 * t_tol());
    ck_assert_int_eq(stage_sleep(NAN), EINVAL);
    ck_assert_int_eq(stage_sleep(-NAN), EINVAL);
}
END_TEST

static void *sleep_task(void *arg)
{
    double *secs = arg;
    int64_t t0 = stage_now();
    int rc = stage_sleep(*secs);

    if (rc != 0)
        return stage_task_fail(rc, "stage_sleep: %d", rc);
    return (void *)(intptr_t)(stage_now() - t0);
}

START_TEST(test_sleep_thread_task)
{
    double secs = 0.05;
    stage_future *t = NULL;
    void *v = NULL;

    ck_assert_int_eq(stage_thread_spawn(sleep_task, &secs, NULL, &t), 0);
    ck_assert_int_eq(stage_future_get(t, 5.0 * t_tol(), &v), 0);
    ck_assert_int_ge((intptr_t)v, t_s2ns(0.05));
    stage_future_unref(t);
}
END_TEST

/* ---- stage_sleep in coroutines -------------------------------------------- */

START_TEST(test_sleep_coro)
{
    double secs = 0.05;
    stage_future *t = NULL;
    void *v = NULL;

    ck_assert_int_eq(stage_coro_spawn(NULL, sleep_task, &secs, NULL, 0, &t),
                     0);
    ck_assert_int_eq(stage_future_get(t, 5.0 * t_tol(), &v), 0);
    ck_assert_int_ge((intptr_t)v, t_s2ns(0.05));
    ck_assert_double_lt(t_ns2s((intptr_t)v), 0.05 + 1.0 * t_tol());
    stage_future_unref(t);
}
END_TEST

/* Ten coroutines sleeping 0.1 s each overlap: far less than 1 s in total. */
START_TEST(test_sleep_coros_overlap)
{
    double secs = 0.1;
    stage_future *t[10];
    double t0 = t_time(), el;
    int i;

    for (i = 0; i < 10; i++)
        ck_assert_int_eq(
            stage_coro_spawn(NULL, sleep_task, &secs, NULL, 0, &t[i]), 0);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 10.0 * t_tol()),
                     0);
    el = t_time() - t0;
    ck_assert_double_ge(el, 0.1);
    ck_assert_double_lt(el, 0.1 + 0.4 * t_tol());
    for (i = 0; i < 10; i++) {
        ck_assert_int_eq(stage_future_state(t[i]), STAGE_DONE);
        stage_future_unref(t[i]);
    }
}
END_TEST

/* Wake order follows the deadlines, not the spawn order.  Each coroutine
 * takes its deadline when it first runs, so the gaps between the sleeps
 * must exceed the skew between their starts: microseconds natively, but
 * once more than the 20 ms gap under qemu-user on a loaded machine (the
 * first run of a code path is translated), hence ten times the gaps when
 * the tests run slow (t_slow). */
typedef struct order {
    int log[8];
    int n;
} order;

typedef struct order_arg {
    order *o;
    int id;
    double secs;
} order_arg;

static void *order_body(void *arg)
{
    order_arg *a = arg;

    if (stage_sleep(a->secs) == 0)
        a->o->log[a->o->n++] = a->id;
    return NULL;
}

START_TEST(test_sleep_order)
{
    order o;
    double gap = t_slow() ? 0.2 : 0.02;
    order_arg a[3] = {{&o, 1, 3 * gap}, {&o, 2, gap}, {&o, 3, 2 * gap}};
    int i;

    memset(&o, 0, sizeof o);
    for (i = 0; i < 3; i++)
        ck_assert_int_eq(
            stage_coro_spawn(NULL, order_body, &a[i], NULL, 0, NULL), 0);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(o.n, 3);
    ck_assert_int_eq(o.log[0], 2);
    ck_assert_int_eq(o.log[1], 3);
    ck_assert_int_eq(o.log[2], 1);
}
END_TEST

/* stage_sleep(0) in a coroutine is a yield: the other coroutine runs. */
static void *zero_sleeper(void *arg)
{
    order_arg *a = arg;
    int i;

    for (i = 0; i < 2; i++) {
        a->o->log[a->o->n++] = a->id;
        if (stage_sleep(0) != 0)
            return NULL;
    }
    return NULL;
}

START_TEST(test_sleep_zero_yields)
{
    order o;
    order_arg a[2] = {{&o, 1, 0}, {&o, 2, 0}};

    memset(&o, 0, sizeof o);
    ck_assert_int_eq(stage_coro_spawn(NULL, zero_sleeper, &a[0], NULL, 0, NULL),
                     0);
    ck_assert_int_eq(stage_coro_spawn(NULL, zero_sleeper, &a[1], NULL, 0, NULL),
                     0);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(o.n, 4);
    ck_assert_int_eq(o.log[0], 1);
    ck_assert_int_eq(o.log[1], 2);
    ck_assert_int_eq(o.log[2], 1);
    ck_assert_int_eq(o.log[3], 2);
}
END_TEST

/* A negative sleep lasts until the task is cancelled. */
typedef struct forever {
    double secs;
    int rc;
} forever;

static void *forever_body(void *arg)
{
    forever *f = arg;

    f->rc = stage_sleep(f->secs);
    return NULL;
}

START_TEST(test_sleep_negative_until_cancelled)
{
    forever fc = {STAGE_FOREVER, -1}, fn = {-3.5, -1};
    stage_future *tc = NULL, *tn = NULL;

    ck_assert_int_eq(stage_coro_spawn(NULL, forever_body, &fc, NULL, 0, &tc),
                     0);
    ck_assert_int_eq(stage_coro_spawn(NULL, forever_body, &fn, NULL, 0, &tn),
                     0);
    /* Still asleep after a while. */
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 0.1),
                     ETIMEDOUT);
    ck_assert_int_eq(fc.rc, -1);
    ck_assert_int_eq(fn.rc, -1);
    ck_assert_int_eq(stage_future_cancel(tc), 0);
    ck_assert_int_eq(stage_future_cancel(tn), 0);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(fc.rc, ECANCELED);
    ck_assert_int_eq(fn.rc, ECANCELED);
    ck_assert_int_eq(stage_future_state(tc), STAGE_CANCELLED);
    ck_assert_int_eq(stage_future_state(tn), STAGE_CANCELLED);
    stage_future_unref(tc);
    stage_future_unref(tn);
}
END_TEST

/* Main's sleep runs main's coroutines, and still lasts its full time. */
typedef struct during {
    int64_t woke;
    int rc;
} during;

static void *during_body(void *arg)
{
    during *d = arg;

    d->rc = stage_sleep(0.02);
    d->woke = stage_now();
    return NULL;
}

START_TEST(test_main_sleep_runs_coroutines)
{
    during d = {0, -1};
    int64_t t0, t1;

    ck_assert_int_eq(stage_coro_spawn(NULL, during_body, &d, NULL, 0, NULL), 0);
    t0 = stage_now();
    ck_assert_int_eq(stage_sleep(0.1), 0);
    t1 = stage_now();
    ck_assert_int_ge(t1 - t0, t_s2ns(0.1));
    ck_assert_int_eq(d.rc, 0);
    ck_assert_int_ge(d.woke - t0, t_s2ns(0.02));
    ck_assert_int_le(d.woke, t1);
    ck_assert_uint_eq(stage_loop_count(stage_loop_current()), 0);
}
END_TEST

/* ---- stage_yield ------------------------------------------------------------ */

typedef struct spin {
    int count;
    int rc;
} spin;

static void *spinner(void *arg)
{
    spin *s = arg;

    for (;;) {
        s->count++;
        s->rc = stage_yield();
        if (s->rc != 0)
            return NULL;
    }
}

/* On a thread, stage_yield runs the ready coroutines once, without
 * blocking: a coroutine that yields forever does not keep it. */
START_TEST(test_yield_thread)
{
    spin s = {0, -1};
    stage_future *t = NULL;

    ck_assert_int_eq(stage_yield(), 0); /* nothing to run: returns */
    ck_assert_int_eq(stage_coro_spawn(NULL, spinner, &s, NULL, 0, &t), 0);
    ck_assert_int_eq(s.count, 0);
    ck_assert_int_eq(stage_yield(), 0);
    ck_assert_int_eq(s.count, 1);
    ck_assert_int_eq(stage_yield(), 0);
    ck_assert_int_eq(s.count, 2);
    ck_assert_int_eq(stage_future_cancel(t), 0);
    ck_assert_int_eq(stage_future_wait(t, 5.0 * t_tol()), 0);
    ck_assert_int_eq(s.rc, ECANCELED);
    ck_assert_int_eq(stage_future_state(t), STAGE_CANCELLED);
    stage_future_unref(t);
}
END_TEST

/* A lone coroutine's yield comes straight back. */
static void *lone_yielder(void *arg)
{
    int *rc = arg;
    int i;

    *rc = 0;
    for (i = 0; i < 1000 && *rc == 0; i++)
        *rc = stage_yield();
    return NULL;
}

START_TEST(test_yield_lone_coroutine)
{
    int rc = -1;
    stage_future *t = NULL;

    ck_assert_int_eq(stage_coro_spawn(NULL, lone_yielder, &rc, NULL, 0, &t),
                     0);
    ck_assert_int_eq(stage_future_wait(t, 5.0 * t_tol()), 0);
    ck_assert_int_eq(rc, 0);
    stage_future_unref(t);
}
END_TEST

/* ---- 10,000 sleepers ---------------------------------------------------- */

#define NSLEEP 10000

typedef struct sleeper {
    double secs;      /* requested sleep */
    int64_t before;   /* stage_now() right before stage_sleep */
    int64_t deadline; /* before + the requested nanoseconds (rounded down) */
    int64_t woke;     /* stage_now() right after */
    int before_ev;    /* index of `before` in the event log */
    int wakes;
    int rc;
} sleeper;

/* Everything runs on the main thread: plain globals are enough. */
static sleeper S[NSLEEP];
static int wake_order[NSLEEP];
static int nwoke;
static int64_t ev[2 * NSLEEP]; /* every stage_now() reading, in order */
static int nev;

static void *sleeper_body(void *arg)
{
    int i = (int)(intptr_t)arg;
    sleeper *s = &S[i];
    int rc;

    s->before_ev = nev;
    s->before = ev[nev++] = stage_now();
    s->deadline = s->before + t_s2ns(s->secs);
    rc = stage_sleep(s->secs);
    s->woke = ev[nev++] = stage_now();
    s->rc = rc;
    s->wakes++;
    wake_order[nwoke++] = i;
    return NULL;
}

START_TEST(test_10k_sleepers)
{
    unsigned int seed = 12345;
    int64_t maxd = INT64_MIN;
    int i, j, maxi = -1;

    nwoke = nev = 0;
    for (i = 0; i < NSLEEP; i++) {
        memset(&S[i], 0, sizeof S[i]);
        S[i].rc = -1;
        /* 1 us .. 200 ms; never 0 (that would be a yield, not a timer). */
        S[i].secs = (double)(1 + rand_r(&seed) % 200000) / 1e6;
        ck_assert_int_eq(stage_coro_spawn(NULL, sleeper_body,
                                          (void *)(intptr_t)i, NULL,
                                          64 * 1024, NULL),
                         0);
    }
    ck_assert_uint_eq(stage_loop_count(stage_loop_current()), NSLEEP);
    ck_assert_int_eq(
        stage_loop_run(stage_loop_current(), NULL, 20.0 * t_tol()), 0);
    ck_assert_int_eq(nwoke, NSLEEP);
    ck_assert_int_eq(nev, 2 * NSLEEP);
    for (i = 0; i < NSLEEP; i++) {
        ck_assert_int_eq(S[i].wakes, 1);
        ck_assert_int_eq(S[i].rc, 0);
        /* Never early. */
        ck_assert_msg(S[i].woke >= S[i].deadline,
                      "sleeper %d woke %lld ns early", i,
                      (long long)(S[i].deadline - S[i].woke));
    }
    /* Deadline order.  The library reads the clock itself inside
     * stage_sleep, a little after `before` and before anything else runs on
     * the loop, i.e. before the next event in the log.  So its deadline D
     * lies in [deadline, deadline + slack] with slack = next event - before
     * (+1 ns for rounding).  Waking j after i requires D_i <= D_j (ties
     * allowed), hence deadline_i <= deadline_j + slack_j. */
    for (j = 0; j < NSLEEP; j++) {
        sleeper *s = &S[wake_order[j]];
        int64_t slack = ev[s->before_ev + 1] - s->before + 1;

        ck_assert_msg(maxd <= s->deadline + slack,
                      "wake #%d: sleeper %d (%.6f s) woke after sleeper %d "
                      "(%.6f s) whose deadline is %lld ns later (slack %lld "
                      "ns)",
                      j, wake_order[j], s->secs, maxi, S[maxi].secs,
                      (long long)(maxd - s->deadline), (long long)slack);
        if (s->deadline > maxd) {
            maxd = s->deadline;
            maxi = wake_order[j];
        }
    }
}
END_TEST

static Suite *sleep_suite(void)
{
    Suite *s = suite_create("sleep");
    TCase *tc;

    tc = t_tcase(s, "now", 5);
    tcase_add_test(tc, test_now);

    tc = t_tcase(s, "sleep", 10);
    tcase_add_test(tc, test_sleep_thread);
    tcase_add_test(tc, test_sleep_args);
    tcase_add_test(tc, test_sleep_thread_task);
    tcase_add_test(tc, test_sleep_coro);
    tcase_add_test(tc, test_sleep_coros_overlap);
    tcase_add_test(tc, test_sleep_order);
    tcase_add_test(tc, test_sleep_zero_yields);
    tcase_add_test(tc, test_sleep_negative_until_cancelled);
    tcase_add_test(tc, test_main_sleep_runs_coroutines);

    tc = t_tcase(s, "yield", 5);
    tcase_add_test(tc, test_yield_thread);
    tcase_add_test(tc, test_yield_lone_coroutine);

    tc = t_tcase(s, "timers", 30);
    tcase_add_test(tc, test_10k_sleepers);
    return s;
}

T_MAIN(sleep_suite)
