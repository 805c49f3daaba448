/* SPDX-License-Identifier: MIT */
/*
 * check_gather.c - stage_future_gather and stage_future_wait_any: values
 * in argument order, the first failure in time (and its index), the rest
 * cancelled on request and waited for, timeouts (which cancel nothing),
 * the caller's own cancellation, plain futures settled from other threads,
 * coroutines on the caller's loop, calls from threads and coroutines, and
 * failures collected by gather not reported again by their Stage.
 */
#include "stages.h"

/* ---- Bodies ------------------------------------------------------------- */

/* Waits for its gate, then returns t_val(id) or fails with err. */
typedef struct step {
    stage_future *gate; /* NULL: sleep `sleep` seconds instead */
    double sleep;
    int err;
    intptr_t id;
    atomic_int freed;
    int rc;
    stage_future *started; /* opened on entry when not NULL */
} step;

static void step_init(step *s, stage_future *gate, double sleep, int err,
                      intptr_t id)
{
    s->gate = gate;
    s->sleep = sleep;
    s->err = err;
    s->id = id;
    atomic_init(&s->freed, 0);
    s->rc = -1;
    s->started = NULL;
}

static void *step_body(void *arg)
{
    step *s = arg;

    if (s->started)
        t_latch_open(s->started);
    s->rc = s->gate ? stage_future_wait(s->gate, 60.0 * t_tol())
                    : stage_sleep(s->sleep);
    if (s->err)
        return stage_task_fail(s->err, "step %d", (int)s->id);
    return t_val_new(&s->freed, s->id);
}

static stage_future *spawn(step *s)
{
    stage_future *f = NULL;

    ck_assert_int_eq(stage_coro_spawn(NULL, step_body, s, t_val_free, 0, &f),
                     0);
    return f;
}

static intptr_t id_of(void *v)
{
    return v ? ((t_val *)v)->id : -1;
}

/* ---- Argument checks ---------------------------------------------------- */

START_TEST(test_einval)
{
    stage_future *f = t_latch(), *set[2] = {f, NULL};
    size_t i = 99;

    ck_assert_int_eq(stage_future_gather(NULL, 1, 0, 0, NULL, NULL), EINVAL);
    ck_assert_int_eq(stage_future_gather(set, 2, 0, 0, NULL, NULL), EINVAL);
    ck_assert_int_eq(stage_future_gather(set, 1, 0x2u, 0, NULL, NULL),
                     EINVAL);
    ck_assert_int_eq(stage_future_gather(set, 1, 0, NAN, NULL, NULL), EINVAL);
    ck_assert_int_eq(stage_future_wait_any(NULL, 1, 0, &i), EINVAL);
    ck_assert_int_eq(stage_future_wait_any(set, 0, 0, &i), EINVAL);
    ck_assert_int_eq(stage_future_wait_any(set, 2, 0, &i), EINVAL);
    ck_assert_int_eq(stage_future_wait_any(set, 1, NAN, &i), EINVAL);
    ck_assert_uint_eq(i, 99);
    /* Nothing to wait for: at once. */
    ck_assert_int_eq(stage_future_gather(NULL, 0, 0, STAGE_FOREVER, NULL, &i),
                     0);
    ck_assert_uint_eq(i, 0);
    stage_future_unref(f);
}
END_TEST

/* ---- Gather ------------------------------------------------------------- */

/* Values in argument order, whatever the order of completion; the time is
 * the longest, not the sum. */
START_TEST(test_gather_values)
{
    step s[3];
    stage_future *f[3];
    void *v[3];
    size_t failed = 99;
    double t0 = t_time(), dt;
    int i;

    step_init(&s[0], NULL, 0.3, 0, 10);
    step_init(&s[1], NULL, 0.1, 0, 11);
    step_init(&s[2], NULL, 0.2, 0, 12);
    for (i = 0; i < 3; i++)
        f[i] = spawn(&s[i]);
    ck_assert_int_eq(stage_future_gather(f, 3, 0, T_LONG, v, &failed), 0);
    dt = t_time() - t0;
    ck_assert_uint_eq(failed, 3);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(stage_future_state(f[i]), STAGE_DONE);
        ck_assert_int_eq(id_of(v[i]), 10 + i);
    }
    ck_assert_double_ge(dt, 0.3);
    ck_assert_double_lt(dt, 0.55 * t_tol());
    /* Settled already: at once, the same answer. */
    ck_assert_int_eq(stage_future_gather(f, 3, 0, 0, v, &failed), 0);
    ck_assert_int_eq(id_of(v[1]), 11);
    for (i = 0; i < 3; i++) {
        stage_future_unref(f[i]);
        ck_assert_int_eq(atomic_load(&s[i].freed), 1);
    }
}
END_TEST

/* The first failure in time is returned, with its index; without the
 * cancel flag the others run to their end. */
START_TEST(test_gather_first_failure)
{
    stage_future *gate0 = t_latch(), *gate1 = t_latch(), *gate2 = t_latch();
    step s[3];
    stage_future *f[3];
    void *v[3];
    size_t failed = 99;

    step_init(&s[0], gate0, 0, EPERM, 0);
    step_init(&s[1], gate1, 0, EIO, 1);
    step_init(&s[2], gate2, 0, 0, 2);
    f[0] = spawn(&s[0]);
    f[1] = spawn(&s[1]);
    f[2] = spawn(&s[2]);
    /* f[1] fails; f[0] and f[2] are still pending. */
    t_latch_open(gate1);
    t_done(f[1]);
    ck_assert_int_eq(stage_future_gather(f, 3, 0, 0.01, v, &failed), EIO);
    ck_assert_uint_eq(failed, 1); /* a failure beats the timeout */
    ck_assert_int_eq(stage_future_state(f[0]), STAGE_PENDING);
    ck_assert_int_eq(stage_future_state(f[2]), STAGE_PENDING);
    /* f[0] fails too: both failed before the call, so argument order. */
    t_latch_open(gate0);
    t_done(f[0]);
    t_latch_open(gate2);
    ck_assert_int_eq(stage_future_gather(f, 3, 0, T_LONG, v, &failed), EPERM);
    ck_assert_uint_eq(failed, 0); /* settled before: argument order */
    ck_assert_ptr_null(v[0]);
    ck_assert_ptr_null(v[1]);
    ck_assert_int_eq(id_of(v[2]), 2);
    stage_future_unref(f[0]);
    stage_future_unref(f[1]);
    stage_future_unref(f[2]);
    stage_future_unref(gate0);
    stage_future_unref(gate1);
    stage_future_unref(gate2);
}
END_TEST

/* The first to fail while gather waits, in time order. */
static void *fail_later(void *arg)
{
    stage_future *gate = arg;

    stage_sleep(0.05);
    stage_future_resolve(gate, NULL, NULL);
    return NULL;
}

START_TEST(test_gather_time_order)
{
    stage_future *gate = t_latch(), *opener;
    step s[2];
    stage_future *f[2];
    size_t failed = 99;

    step_init(&s[0], gate, 0, EPERM, 0);   /* fails after the gate */
    step_init(&s[1], NULL, 0.01, EIO, 1);  /* fails first */
    f[0] = spawn(&s[0]);
    f[1] = spawn(&s[1]);
    ck_assert_int_eq(stage_coro_spawn(NULL, fail_later, gate, NULL, 0,
                                      &opener),
                     0);
    ck_assert_int_eq(stage_future_gather(f, 2, 0, T_LONG, NULL, &failed),
                     EIO);
    ck_assert_uint_eq(failed, 1);
    ck_assert_int_eq(stage_future_state(f[0]), STAGE_FAILED);
    t_done(opener);
    stage_future_unref(opener);
    stage_future_unref(f[0]);
    stage_future_unref(f[1]);
    stage_future_unref(gate);
}
END_TEST

/* STAGE_GATHER_CANCEL: the first failure cancels the others, and gather
 * waits for them. */
START_TEST(test_gather_cancel)
{
    stage *st = stage_new("gather", 4, 0);
    step s[3];
    stage_future *f[3];
    void *v[3];
    size_t failed = 99;
    int i;

    ck_assert_ptr_nonnull(st);
    step_init(&s[0], NULL, 60.0, 0, 0);
    step_init(&s[1], NULL, 0.01, EIO, 1);
    step_init(&s[2], NULL, 60.0, 0, 2);
    s[0].started = t_latch();
    s[2].started = t_latch();
    ck_assert_int_eq(stage_go(st, step_body, &s[0], t_val_free, &f[0]), 0);
    ck_assert_int_eq(stage_go_coro(st, step_body, &s[2], t_val_free, &f[2]),
                     0);
    t_done(s[0].started);
    t_done(s[2].started);
    f[1] = spawn(&s[1]);
    ck_assert_int_eq(stage_future_gather(f, 3, STAGE_GATHER_CANCEL, T_LONG, v,
                                         &failed),
                     EIO);
    ck_assert_uint_eq(failed, 1);
    for (i = 0; i < 3; i += 2) {
        ck_assert_int_eq(stage_future_state(f[i]), STAGE_CANCELLED);
        ck_assert_int_eq(s[i].rc, ECANCELED);
        ck_assert_ptr_null(v[i]);
    }
    for (i = 0; i < 3; i++)
        stage_future_unref(f[i]);
    ck_assert_int_eq(stage_free(st), 0);
    ck_assert_int_eq(atomic_load(&s[0].freed), 1);
    ck_assert_int_eq(atomic_load(&s[2].freed), 1);
    stage_future_unref(s[0].started);
    stage_future_unref(s[2].started);
}
END_TEST

/* A timeout cancels nothing; *failed names the first pending future. */
START_TEST(test_gather_timeout)
{
    stage_future *p[3];
    size_t failed = 99;
    int i, k;

    for (i = 0; i < 3; i++)
        p[i] = t_latch();
    ck_assert_int_eq(stage_future_resolve(p[0], NULL, NULL), 0);
    /* Many timed-out calls leave no watch behind. */
    for (k = 0; k < 1000; k++)
        ck_assert_int_eq(stage_future_gather(p, 3, STAGE_GATHER_CANCEL, 0,
                                             NULL, &failed),
                         ETIMEDOUT);
    ck_assert_uint_eq(failed, 1);
    ck_assert_int_eq(stage_future_gather(p, 3, 0, 0.02, NULL, &failed),
                     ETIMEDOUT);
    ck_assert_int_eq(stage_future_state(p[1]), STAGE_PENDING);
    ck_assert_int_eq(stage_future_state(p[2]), STAGE_PENDING);
    ck_assert_int_eq(stage_future_resolve(p[1], NULL, NULL), 0);
    ck_assert_int_eq(stage_future_gather(p, 3, 0, 0, NULL, &failed),
                     ETIMEDOUT);
    ck_assert_uint_eq(failed, 2);
    for (i = 0; i < 3; i++)
        stage_future_unref(p[i]);
}
END_TEST

/* Plain futures settled by other threads; a taken value reads NULL; a
 * cancelled plain future is a failure (ECANCELED). */
typedef struct settler {
    stage_future *f[3];
} settler;

static void *settle_thread(void *arg)
{
    settler *s = arg;

    stage_future_resolve(s->f[2], (void *)"two", NULL);
    stage_future_resolve(s->f[0], (void *)"zero", NULL);
    stage_future_resolve(s->f[1], (void *)"one", NULL);
    return NULL;
}

START_TEST(test_gather_plain)
{
    settler s;
    void *v[3];
    size_t failed;
    pthread_t th;
    int i;

    for (i = 0; i < 3; i++)
        s.f[i] = t_latch();
    th = t_thread_start(settle_thread, &s);
    ck_assert_int_eq(stage_future_gather(s.f, 3, 0, T_LONG, v, &failed), 0);
    t_thread_join(th);
    ck_assert_str_eq(v[0], "zero");
    ck_assert_str_eq(v[1], "one");
    ck_assert_str_eq(v[2], "two");
    ck_assert_int_eq(stage_future_take(s.f[1], &v[1]), 0);
    ck_assert_int_eq(stage_future_gather(s.f, 3, 0, 0, v, &failed), 0);
    ck_assert_ptr_null(v[1]);
    for (i = 0; i < 3; i++)
        stage_future_unref(s.f[i]);

    for (i = 0; i < 2; i++)
        s.f[i] = t_latch();
    ck_assert_int_eq(stage_future_cancel(s.f[1]), 0);
    ck_assert_int_eq(stage_future_gather(s.f, 2, STAGE_GATHER_CANCEL, T_LONG,
                                         NULL, &failed),
                     ECANCELED);
    ck_assert_uint_eq(failed, 1);
    ck_assert_int_eq(stage_future_state(s.f[0]), STAGE_CANCELLED);
    for (i = 0; i < 2; i++)
        stage_future_unref(s.f[i]);
}
END_TEST

/* From a coroutine and from a pool thread; a gatherer that is cancelled
 * returns ECANCELED and, with the flag, cancels the futures. */
typedef struct gatherer {
    stage_future **f;
    size_t n;
    unsigned int flags;
    stage_future *started;
    int rc;
    size_t failed;
} gatherer;

static void *gather_body(void *arg)
{
    gatherer *g = arg;

    t_latch_open(g->started);
    g->rc = stage_future_gather(g->f, g->n, g->flags, 60.0, NULL, &g->failed);
    return NULL;
}

/* A task parked in gather or wait-any describes itself so. */
START_TEST(test_describe)
{
    stage_future *p[2] = {t_latch(), t_latch()}, *task;
    gatherer g = {p, 2, 0, t_latch(), -1, 99};
    char buf[256];

    ck_assert_int_eq(stage_coro_spawn(NULL, gather_body, &g, NULL, 0, &task),
                     0);
    ck_assert_int_eq(stage_yield(), 0); /* it runs until it waits */
    ck_assert_int_eq(stage_future_describe(task, buf, sizeof buf), 0);
    ck_assert_msg(strstr(buf, "wait_for=<futures>") != NULL, "%s", buf);
    t_latch_open(p[0]);
    t_latch_open(p[1]);
    t_done(task);
    ck_assert_int_eq(g.rc, 0);
    stage_future_unref(task);
    stage_future_unref(g.started);
    stage_future_unref(p[0]);
    stage_future_unref(p[1]);
}
END_TEST

START_TEST(test_gather_cancelled_caller)
{
    stage *st = stage_new("gather", 4, 0);
    int coro, flagged;

    ck_assert_ptr_nonnull(st);
    for (coro = 0; coro < 2; coro++)
        for (flagged = 0; flagged < 2; flagged++) {
            stage_future *p[2] = {t_latch(), t_latch()}, *task;
            gatherer g = {p, 2, flagged ? STAGE_GATHER_CANCEL : 0,
                          t_latch(), -1, 99};

            if (coro)
                ck_assert_int_eq(
                    stage_go_coro(st, gather_body, &g, NULL, &task), 0);
            else
                ck_assert_int_eq(stage_go(st, gather_body, &g, NULL, &task),
                                 0);
            t_done(g.started);
            ck_assert_int_eq(stage_future_cancel(task), 0);
            t_done(task);
            ck_assert_int_eq(g.rc, ECANCELED);
            ck_assert_uint_eq(g.failed, 2);
            ck_assert_int_eq(stage_future_state(p[0]),
                             flagged ? STAGE_CANCELLED : STAGE_PENDING);
            stage_future_unref(task);
            stage_future_unref(g.started);
            stage_future_unref(p[0]);
            stage_future_unref(p[1]);
        }
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* The failure gather returns is collected: its Stage does not report it;
 * another failure, not returned, still is. */
START_TEST(test_gather_collects)
{
    stage *st = stage_new("gather", 4, 0);
    t_reports rs;
    step s[2];
    stage_future *f[2];
    size_t failed;

    ck_assert_ptr_nonnull(st);
    t_reports_init(&rs);
    ck_assert_int_eq(stage_set_error_handler(st, t_reports_handler, &rs,
                                             NULL),
                     0);
    step_init(&s[0], NULL, 0, EIO, 0);
    step_init(&s[1], NULL, 0, EPERM, 1);
    ck_assert_int_eq(stage_go(st, step_body, &s[0], NULL, &f[0]), 0);
    t_done(f[0]);
    ck_assert_int_eq(stage_go(st, step_body, &s[1], NULL, &f[1]), 0);
    t_done(f[1]);
    ck_assert_int_eq(stage_future_gather(f, 2, 0, T_LONG, NULL, &failed),
                     EIO);
    ck_assert_int_eq(stage_close(st, T_LONG), 0);
    ck_assert_int_eq(t_reports_count(&rs), 1);
    ck_assert_int_eq(rs.r[0].err, EPERM);
    ck_assert(t_is_default_task_name(rs.r[0].task));
    stage_future_unref(f[0]);
    stage_future_unref(f[1]);
    ck_assert_int_eq(stage_free(st), 0);
    t_reports_fini(&rs);
}
END_TEST

/* ---- Wait for any ------------------------------------------------------- */

START_TEST(test_wait_any)
{
    stage_future *gate = t_latch();
    step s[3];
    stage_future *f[3];
    size_t index = 99;
    int i;

    step_init(&s[0], gate, 0, 0, 0);
    step_init(&s[1], NULL, 0.05, EIO, 1);
    step_init(&s[2], NULL, 0.02, 0, 2);
    for (i = 0; i < 3; i++)
        f[i] = spawn(&s[i]);
    ck_assert_int_eq(stage_future_wait_any(f, 3, 0, &index), ETIMEDOUT);
    ck_assert_uint_eq(index, 99);
    ck_assert_int_eq(stage_future_wait_any(f, 3, T_LONG, &index), 0);
    ck_assert_uint_eq(index, 2);
    /* Settled already: the first in argument order, at once. */
    t_done(f[1]);
    ck_assert_int_eq(stage_future_wait_any(f, 3, 0, &index), 0);
    ck_assert_uint_eq(index, 1);
    /* wait_any does not collect: the failure is still there to read. */
    ck_assert_int_eq(stage_future_error(f[1]), EIO);
    ck_assert_int_eq(stage_future_state(f[0]), STAGE_PENDING);
    t_latch_open(gate);
    ck_assert_int_eq(stage_future_wait_any(f, 1, T_LONG, NULL), 0);
    for (i = 0; i < 3; i++)
        stage_future_unref(f[i]);
    stage_future_unref(gate);
}
END_TEST

/* From a coroutine, futures settled by another thread; a cancelled
 * caller gets ECANCELED. */
typedef struct anyone {
    stage_future **f;
    size_t n;
    stage_future *started;
    int rc;
    size_t index;
} anyone;

static void *any_body(void *arg)
{
    anyone *a = arg;

    t_latch_open(a->started);
    a->rc = stage_future_wait_any(a->f, a->n, 60.0, &a->index);
    return NULL;
}

START_TEST(test_wait_any_tasks)
{
    stage *st = stage_new("any", 4, 0);
    stage_future *p[3], *task;
    anyone a;
    int i;

    ck_assert_ptr_nonnull(st);
    for (i = 0; i < 3; i++)
        p[i] = t_latch();
    a = (anyone){p, 3, t_latch(), -1, 99};
    ck_assert_int_eq(stage_go_coro(st, any_body, &a, NULL, &task), 0);
    t_done(a.started);
    ck_assert_int_eq(stage_future_resolve(p[2], NULL, NULL), 0);
    t_done(task);
    ck_assert_int_eq(a.rc, 0);
    ck_assert_uint_eq(a.index, 2);
    stage_future_unref(task);
    stage_future_unref(a.started);

    a = (anyone){p, 2, t_latch(), -1, 99};
    ck_assert_int_eq(stage_go(st, any_body, &a, NULL, &task), 0);
    t_done(a.started);
    ck_assert_int_eq(stage_future_cancel(task), 0);
    t_done(task);
    ck_assert_int_eq(a.rc, ECANCELED);
    ck_assert_uint_eq(a.index, 99);
    ck_assert_int_eq(stage_future_state(p[0]), STAGE_PENDING);
    stage_future_unref(task);
    stage_future_unref(a.started);
    for (i = 0; i < 3; i++)
        stage_future_unref(p[i]);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

static Suite *gather_suite(void)
{
    Suite *s = suite_create("gather");
    TCase *tc;

    tc = t_tcase(s, "gather", 20);
    tcase_add_test(tc, test_einval);
    tcase_add_test(tc, test_gather_values);
    tcase_add_test(tc, test_gather_first_failure);
    tcase_add_test(tc, test_gather_time_order);
    tcase_add_test(tc, test_gather_cancel);
    tcase_add_test(tc, test_gather_timeout);
    tcase_add_test(tc, test_gather_plain);
    tcase_add_test(tc, test_gather_cancelled_caller);
    tcase_add_test(tc, test_gather_collects);
    tcase_add_test(tc, test_describe);

    tc = t_tcase(s, "any", 20);
    tcase_add_test(tc, test_wait_any);
    tcase_add_test(tc, test_wait_any_tasks);
    return s;
}

T_MAIN(gather_suite)
