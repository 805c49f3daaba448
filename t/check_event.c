/* SPDX-License-Identifier: MIT */
/*
 * check_event.c - events: set/clear/wait semantics and payloads, every
 * error code, timeouts, one set waking every waiter, a waiter woken by a
 * set that is cleared at once, cancellation, and set/clear/wait between
 * threads and coroutines (main's loop, another thread's loop) in every
 * direction.
 */
#include "streams.h"

static int xa, xb; /* payload targets */

START_TEST(test_new_ref_unref)
{
    stage_event *e = stage_event_new();

    ck_assert_ptr_nonnull(e);
    ck_assert_int_eq(stage_event_is_set(e), 0);
    ck_assert_ptr_eq(stage_event_ref(e), e);
    stage_event_unref(e);
    ck_assert_int_eq(stage_event_is_set(e), 0);
    stage_event_unref(e);
    ck_assert_ptr_null(stage_event_ref(NULL));
    stage_event_unref(NULL);
    ck_assert_int_eq(stage_event_is_set(NULL), 0);
}
END_TEST

START_TEST(test_einval)
{
    stage_event *e = stage_event_new();
    void *p = &p;

    ck_assert_int_eq(stage_event_set(NULL, &xa), EINVAL);
    ck_assert_int_eq(stage_event_clear(NULL), EINVAL);
    ck_assert_int_eq(stage_event_wait(NULL, 0, &p), EINVAL);
    ck_assert_int_eq(stage_event_wait(e, NAN, &p), EINVAL);
    ck_assert_int_eq(stage_event_set(e, &xa), 0);
    ck_assert_int_eq(stage_event_wait(e, NAN, &p), EINVAL);
    ck_assert_ptr_eq(p, &p);
    stage_event_unref(e);
}
END_TEST

START_TEST(test_set_wait_clear)
{
    stage_event *e = stage_event_new();
    void *p = &p;
    double t0, el;

    ck_assert_int_eq(stage_event_wait(e, 0, &p), ETIMEDOUT);
    t0 = t_time();
    ck_assert_int_eq(stage_event_wait(e, 0.03, &p), ETIMEDOUT);
    el = t_time() - t0;
    ck_assert_double_ge(el, 0.03);
    ck_assert_double_lt(el, 0.03 + 1.0 * t_tol());
    ck_assert_ptr_eq(p, &p); /* untouched */
    ck_assert_int_eq(stage_event_clear(e), 0); /* clear when clear: 0 */

    ck_assert_int_eq(stage_event_set(e, &xa), 0);
    ck_assert_int_eq(stage_event_is_set(e), 1);
    ck_assert_int_eq(stage_event_wait(e, 0, &p), 0);
    ck_assert_ptr_eq(p, &xa);
    ck_assert_int_eq(stage_event_wait(e, STAGE_FOREVER, NULL), 0);
    /* Still set: waiting does not clear it.  Setting again replaces the
     * payload. */
    ck_assert_int_eq(stage_event_set(e, &xb), 0);
    ck_assert_int_eq(stage_event_wait(e, STAGE_FOREVER, &p), 0);
    ck_assert_ptr_eq(p, &xb);
    ck_assert_int_eq(stage_event_set(e, NULL), 0);
    ck_assert_int_eq(stage_event_wait(e, 1.0, &p), 0);
    ck_assert_ptr_null(p);
    ck_assert_int_eq(stage_event_is_set(e), 1);

    ck_assert_int_eq(stage_event_clear(e), 0);
    ck_assert_int_eq(stage_event_is_set(e), 0);
    p = &p;
    ck_assert_int_eq(stage_event_wait(e, 0, &p), ETIMEDOUT);
    ck_assert_int_eq(stage_event_wait(e, 0.01, &p), ETIMEDOUT);
    ck_assert_ptr_eq(p, &p);
    stage_event_unref(e);
}
END_TEST

/* ---- Waiting from anywhere ---------------------------------------------- */

/* One waiter: says when it is about to wait, then waits. */
typedef struct waiter {
    stage_event *e;
    stage_future *about;
    double timeout;
    int rc;
    void *p;
} waiter;

static void *waiter_body(void *arg)
{
    waiter *w = arg;

    t_about(w->about);
    w->rc = stage_event_wait(w->e, w->timeout, &w->p);
    return NULL;
}

static stage_future *waiter_start(waiter *w, stage_event *e, int where,
                                  t_host *h)
{
    w->e = e;
    w->timeout = STAGE_FOREVER;
    w->rc = -1;
    w->p = NULL;
    return t_start_about(where, h, waiter_body, w, &w->about);
}

static void *setter_body(void *arg)
{
    stage_event_set(arg, &xb);
    return NULL;
}

/* Waiter on every side x setter on every side (and on main itself). */
START_TEST(test_every_direction)
{
    stage_event *e = stage_event_new();
    t_host h;
    int wside, sside;

    t_host_start(&h);
    for (wside = 0; wside < ON_N; wside++) {
        for (sside = 0; sside <= ON_N; sside++) {
            waiter w;
            stage_future *fw = waiter_start(&w, e, wside, &h);

            t_settle();
            if (sside == ON_N)
                ck_assert_int_eq(stage_event_set(e, &xb), 0);
            else
                t_finish(t_start(sside, &h, setter_body, e), STAGE_DONE);
            t_finish(fw, STAGE_DONE);
            ck_assert_msg(w.rc == 0, "%s waiter, setter %d: %d",
                          t_where_name[wside], sside, w.rc);
            ck_assert_ptr_eq(w.p, &xb);
            ck_assert_int_eq(stage_event_clear(e), 0);
        }
    }
    t_host_stop(&h);
    stage_event_unref(e);
}
END_TEST

/* Two sides play ping-pong with set/clear/wait on two events. */
typedef struct pong {
    stage_event *a, *b;
    int rounds;
    int bad;
    int rc;
} pong;

static void *ping_side(void *arg)
{
    pong *g = arg;
    intptr_t i;

    for (i = 0; i < g->rounds; i++) {
        if ((g->rc = stage_event_set(g->a, (void *)(i + 1))) != 0 ||
            (g->rc = stage_event_wait(g->b, STAGE_FOREVER, NULL)) != 0 ||
            (g->rc = stage_event_clear(g->b)) != 0)
            return NULL;
    }
    return NULL;
}

static void *pong_side(void *arg)
{
    pong *g = arg;
    intptr_t i;

    for (i = 0; i < g->rounds; i++) {
        void *p = NULL;

        if ((g->rc = stage_event_wait(g->a, STAGE_FOREVER, &p)) != 0)
            return NULL;
        if (p != (void *)(i + 1))
            g->bad++;
        if ((g->rc = stage_event_clear(g->a)) != 0 ||
            (g->rc = stage_event_set(g->b, NULL)) != 0)
            return NULL;
    }
    return NULL;
}

START_TEST(test_ping_pong)
{
    t_host h;
    int x, y;

    t_host_start(&h);
    for (x = 0; x < ON_N; x++) {
        for (y = 0; y < ON_N; y++) {
            pong g1 = {stage_event_new(), stage_event_new(), 0, 0, -1};
            pong g2;
            stage_future *f1, *f2;

            g1.rounds = t_on_valgrind() ? 20 : 500;
            g2 = g1;
            f1 = t_start(x, &h, ping_side, &g1);
            f2 = t_start(y, &h, pong_side, &g2);
            t_finish(f1, STAGE_DONE);
            t_finish(f2, STAGE_DONE);
            ck_assert_msg(g1.rc == 0 && g2.rc == 0, "%s -> %s: %d %d",
                          t_where_name[x], t_where_name[y], g1.rc, g2.rc);
            ck_assert_int_eq(g2.bad, 0);
            stage_event_unref(g1.a);
            stage_event_unref(g1.b);
        }
    }
    t_host_stop(&h);
}
END_TEST

#define NWAIT (3 * 10)

START_TEST(test_set_wakes_all)
{
    stage_event *e = stage_event_new();
    waiter w[NWAIT];
    stage_future *f[NWAIT];
    t_host h;
    int i;

    t_host_start(&h);
    for (i = 0; i < NWAIT; i++)
        f[i] = waiter_start(&w[i], e, i % ON_N, &h);
    t_settle();
    ck_assert_int_eq(stage_event_set(e, &xa), 0);
    for (i = 0; i < NWAIT; i++) {
        t_finish(f[i], STAGE_DONE);
        ck_assert_int_eq(w[i].rc, 0);
        ck_assert_ptr_eq(w[i].p, &xa);
    }
    t_host_stop(&h);
    stage_event_unref(e);
}
END_TEST

/* A waiter that was blocked when the event was set returns 0 with that
 * payload, even though the event was cleared before it ran.  (Coroutines
 * of main's loop: blocked for sure once main yields.) */
START_TEST(test_set_then_clear)
{
    stage_event *e = stage_event_new();
    waiter w[4];
    stage_future *f[4];
    int i;

    for (i = 0; i < 4; i++) {
        w[i].e = e;
        w[i].about = NULL;
        w[i].timeout = 60.0;
        w[i].rc = -1;
        f[i] = t_start(ON_MAIN, NULL, waiter_body, &w[i]);
    }
    ck_assert_int_eq(stage_yield(), 0);
    ck_assert_int_eq(stage_event_set(e, &xa), 0);
    ck_assert_int_eq(stage_event_clear(e), 0);
    for (i = 0; i < 4; i++) {
        t_finish(f[i], STAGE_DONE);
        ck_assert_int_eq(w[i].rc, 0);
        ck_assert_ptr_eq(w[i].p, &xa);
    }
    ck_assert_int_eq(stage_event_is_set(e), 0);
    stage_event_unref(e);
}
END_TEST

START_TEST(test_cancel_waiter)
{
    stage_event *e = stage_event_new();
    t_host h;
    int where;

    t_host_start(&h);
    for (where = 0; where < ON_N; where++) {
        waiter w;
        stage_future *f = waiter_start(&w, e, where, &h);

        t_settle();
        ck_assert_int_eq(stage_future_cancel(f), 0);
        t_finish(f, STAGE_CANCELLED);
        ck_assert_int_eq(w.rc, ECANCELED);
        ck_assert_ptr_null(w.p);
        ck_assert_int_eq(stage_event_is_set(e), 0);
    }
    t_host_stop(&h);
    /* The event still works for others. */
    ck_assert_int_eq(stage_event_set(e, &xa), 0);
    ck_assert_int_eq(stage_event_wait(e, 0, NULL), 0);
    stage_event_unref(e);
}
END_TEST

/* A cancelled task cannot wait, even for a set event; set, clear and
 * is_set do not block and still work. */
typedef struct cancelled {
    stage_event *e;
    stage_future *about;
    int rc[5];
} cancelled;

static void *cancelled_body(void *arg)
{
    cancelled *c = arg;

    c->rc[0] = t_until_cancelled(c->about);
    c->rc[1] = stage_event_set(c->e, &xa);
    c->rc[2] = stage_event_wait(c->e, 0, NULL);
    c->rc[3] = stage_event_is_set(c->e);
    c->rc[4] = stage_event_clear(c->e);
    return NULL;
}

START_TEST(test_cancelled_task)
{
    int where;

    for (where = 0; where < ON_MAIN + 1; where++) {
        cancelled c = {stage_event_new(), NULL, {0}};

        t_run_cancelled(where, NULL, cancelled_body, &c, &c.about);
        ck_assert_int_eq(c.rc[0], ECANCELED);
        ck_assert_int_eq(c.rc[1], 0);
        ck_assert_int_eq(c.rc[2], ECANCELED);
        ck_assert_int_eq(c.rc[3], 1);
        ck_assert_int_eq(c.rc[4], 0);
        ck_assert_int_eq(stage_event_is_set(c.e), 0);
        stage_event_unref(c.e);
    }
}
END_TEST

/* A coroutine's timed wait, and a set on another side meanwhile. */
START_TEST(test_coroutine_timeout)
{
    stage_event *e = stage_event_new();
    waiter w;
    stage_future *f;
    double t0 = t_time();

    w.e = e;
    w.about = NULL;
    w.timeout = 0.03;
    w.rc = -1;
    w.p = &w;
    f = t_start(ON_MAIN, NULL, waiter_body, &w);
    t_finish(f, STAGE_DONE);
    ck_assert_int_eq(w.rc, ETIMEDOUT);
    ck_assert_ptr_eq(w.p, &w);
    ck_assert_double_ge(t_time() - t0, 0.03);
    ck_assert_double_lt(t_time() - t0, 0.03 + 1.0 * t_tol());
    stage_event_unref(e);
}
END_TEST

static Suite *event_suite(void)
{
    Suite *s = suite_create("event");
    TCase *tc;

    tc = t_tcase(s, "basics", 10);
    tcase_add_test(tc, test_new_ref_unref);
    tcase_add_test(tc, test_einval);
    tcase_add_test(tc, test_set_wait_clear);
    tcase_add_test(tc, test_coroutine_timeout);

    tc = t_tcase(s, "waiters", 30);
    tcase_add_test(tc, test_every_direction);
    tcase_add_test(tc, test_ping_pong);
    tcase_add_test(tc, test_set_wakes_all);
    tcase_add_test(tc, test_set_then_clear);
    tcase_add_test(tc, test_cancel_waiter);
    tcase_add_test(tc, test_cancelled_task);
    return s;
}

T_MAIN(event_suite)
