/* SPDX-License-Identifier: MIT */
/*
 * check_cancel.c - cancellation: blocked coroutine and thread waiters return
 * ECANCELED promptly; a task cancelled before it starts never runs; every
 * blocking call of a cancelled task returns ECANCELED; the task's result is
 * destroyed; timed-out and cancelled waits never consume a later resolution;
 * resolve-vs-cancel and finish-vs-cancel races are decided exactly once.
 */
#include "common.h"

#include <sched.h>

/* ---- Blocked waiters: ECANCELED within 50 ms ----------------------------- */

enum { BLOCK_WAIT, BLOCK_GET, BLOCK_SLEEP, BLOCK_SLEEP_FOREVER, BLOCK_N };

typedef struct blocked {
    int how;
    stage_future *never;   /* never settled */
    stage_future *started; /* resolved right before blocking */
    int rc;
    int flag_before, flag_after; /* stage_task_cancelled() around the wait */
    int64_t woke;
    atomic_int *freed;     /* the body returns a counted value */
} blocked;

static void *blocked_body(void *arg)
{
    blocked *b = arg;

    b->flag_before = stage_task_cancelled();
    stage_future_resolve(b->started, NULL, NULL);
    switch (b->how) {
    case BLOCK_WAIT:
        b->rc = stage_future_wait(b->never, STAGE_FOREVER);
        break;
    case BLOCK_GET:
        b->rc = stage_future_get(b->never, 60.0, NULL);
        break;
    case BLOCK_SLEEP:
        b->rc = stage_sleep(60.0);
        break;
    default:
        b->rc = stage_sleep(STAGE_FOREVER);
        break;
    }
    b->woke = stage_now();
    b->flag_after = stage_task_cancelled();
    /* Returns a value anyway: the cancelled task destroys it. */
    return t_val_new(b->freed, b->how);
}

static void blocked_init(blocked *b, int how, atomic_int *freed)
{
    memset(b, 0, sizeof *b);
    b->how = how;
    b->never = stage_future_new();
    b->started = stage_future_new();
    b->rc = b->flag_before = b->flag_after = -1;
    b->freed = freed;
}

static void blocked_fini(blocked *b)
{
    ck_assert_int_eq(stage_future_state(b->never), STAGE_PENDING);
    stage_future_unref(b->never);
    stage_future_unref(b->started);
}

static void check_cancelled_task(stage_future *t, blocked *b, int64_t t0)
{
    void *v = &v;

    ck_assert_int_eq(b->rc, ECANCELED);
    ck_assert_int_eq(b->flag_before, 0);
    ck_assert_int_eq(b->flag_after, 1);
    ck_assert_msg(t_ns2s(b->woke - t0) < 0.05 * t_tol(),
                  "how %d: ECANCELED after %.3f s", b->how,
                  t_ns2s(b->woke - t0));
    ck_assert_int_eq(stage_future_state(t), STAGE_CANCELLED);
    ck_assert_int_eq(stage_future_error(t), ECANCELED);
    ck_assert_int_eq(stage_future_get(t, 0, &v), ECANCELED);
    ck_assert_ptr_eq(v, &v);
    ck_assert_int_eq(stage_future_take(t, &v), ECANCELED);
}

START_TEST(test_cancel_blocked_coroutine)
{
    int how;

    for (how = 0; how < BLOCK_N; how++) {
        atomic_int freed = 0;
        blocked b;
        stage_future *t = NULL;
        int64_t t0;

        blocked_init(&b, how, &freed);
        ck_assert_int_eq(
            stage_coro_spawn(NULL, blocked_body, &b, t_val_free, 0, &t), 0);
        /* Main's wait runs the coroutine up to its blocking call. */
        ck_assert_int_eq(stage_future_wait(b.started, 5.0 * t_tol()), 0);
        ck_assert_int_eq(stage_yield(), 0);
        ck_assert_int_eq(b.rc, -1); /* blocked */
        t0 = stage_now();
        ck_assert_int_eq(stage_future_cancel(t), 0);
        ck_assert_int_eq(stage_future_cancel(t), 0); /* still running: 0 */
        ck_assert_int_eq(stage_future_wait(t, 5.0 * t_tol()), 0);
        check_cancelled_task(t, &b, t0);
        stage_future_unref(t);
        /* Its returned value was destroyed, once. */
        ck_assert_int_eq(atomic_load(&freed), 1);
        blocked_fini(&b);
    }
}
END_TEST

START_TEST(test_cancel_blocked_thread)
{
    int how;

    for (how = 0; how < BLOCK_N; how++) {
        atomic_int freed = 0;
        blocked b;
        stage_future *t = NULL;
        int64_t t0;

        blocked_init(&b, how, &freed);
        ck_assert_int_eq(stage_thread_spawn(blocked_body, &b, t_val_free, &t),
                         0);
        ck_assert_int_eq(stage_future_wait(b.started, 5.0 * t_tol()), 0);
        /* Not needed for the outcome (a cancel that comes before the wait
         * makes it return ECANCELED at once); makes "blocked" the likely
         * case being tested. */
        ck_assert_int_eq(stage_sleep(0.02), 0);
        t0 = stage_now();
        ck_assert_int_eq(stage_future_cancel(t), 0);
        ck_assert_int_eq(stage_future_wait(t, 5.0 * t_tol()), 0);
        check_cancelled_task(t, &b, t0);
        stage_future_unref(t);
        ck_assert_int_eq(t_wait_count(&freed, 1, 5.0), 1);
        blocked_fini(&b);
    }
}
END_TEST

/* A coroutine waiting on a coroutine task that is cancelled is woken (the
 * waited-on future becomes CANCELLED); the waiter itself is not cancelled. */
typedef struct chain {
    stage_future *target;
    int rc;
} chain;

static void *chain_body(void *arg)
{
    chain *c = arg;

    c->rc = stage_future_wait(c->target, STAGE_FOREVER);
    return NULL;
}

START_TEST(test_cancel_wakes_waiters_of_task)
{
    atomic_int freed = 0;
    blocked b;
    chain c;
    stage_future *t = NULL, *ct = NULL;

    blocked_init(&b, BLOCK_SLEEP, &freed);
    ck_assert_int_eq(stage_coro_spawn(NULL, blocked_body, &b, t_val_free, 0,
                                      &t),
                     0);
    c.target = t;
    c.rc = -1;
    ck_assert_int_eq(stage_coro_spawn(NULL, chain_body, &c, NULL, 0, &ct), 0);
    ck_assert_int_eq(stage_yield(), 0);
    ck_assert_int_eq(stage_future_cancel(t), 0);
    ck_assert_int_eq(stage_future_wait(ct, 5.0 * t_tol()), 0);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(stage_future_state(ct), STAGE_DONE);
    ck_assert_int_eq(stage_future_state(t), STAGE_CANCELLED);
    stage_future_unref(t);
    stage_future_unref(ct);
    blocked_fini(&b);
}
END_TEST

/* ---- Cancel before start -------------------------------------------------- */

static void *must_not_run(void *arg)
{
    atomic_int *ran = arg;

    atomic_fetch_add(ran, 1);
    return NULL;
}

START_TEST(test_cancel_before_start)
{
    atomic_int ran = 0;
    stage_future *t = NULL;
    void *v = &v;

    ck_assert_int_eq(stage_coro_spawn(NULL, must_not_run, &ran, NULL, 0, &t),
                     0);
    ck_assert_int_eq(stage_future_cancel(t), 0);
    ck_assert_int_eq(stage_loop_run(stage_loop_current(), NULL, 5.0 * t_tol()),
                     0);
    ck_assert_int_eq(atomic_load(&ran), 0);
    ck_assert_int_eq(stage_future_state(t), STAGE_CANCELLED);
    ck_assert_int_eq(stage_future_wait(t, 0), 0);
    ck_assert_int_eq(stage_future_get(t, 0, &v), ECANCELED);
    ck_assert_ptr_eq(v, &v);
    ck_assert_uint_eq(stage_loop_count(stage_loop_current()), 0);
    /* The task is finished now.  The spec says EALREADY for a finished task
     * but 0 for cancelling a CANCELLED future again: either is accepted. */
    {
        int rc = stage_future_cancel(t);

        ck_assert_msg(rc == EALREADY || rc == 0, "cancel again: %d", rc);
    }
    ck_assert_int_eq(stage_future_state(t), STAGE_CANCELLED);
    stage_future_unref(t);
}
END_TEST

/* Cancelling a task that already finished: EALREADY; state unchanged. */
static void *returns_arg(void *arg)
{
    return arg;
}

static void *fails_now(void *arg)
{
    (void)arg;
    return stage_task_fail(EIO, "failed");
}

START_TEST(test_cancel_finished_task)
{
    stage_future *t1 = NULL, *t2 = NULL, *t3 = NULL;

    ck_assert_int_eq(stage_coro_spawn(NULL, returns_arg, &t1, NULL, 0, &t1),
                     0);
    ck_assert_int_eq(stage_coro_spawn(NULL, fails_now, NULL, NULL, 0, &t2), 0);
    ck_assert_int_eq(stage_thread_spawn(returns_arg, &t3, NULL, &t3), 0);
    ck_assert_int_eq(stage_future_wait(t1, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_wait(t2, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_wait(t3, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_cancel(t1), EALREADY);
    ck_assert_int_eq(stage_future_cancel(t2), EALREADY);
    ck_assert_int_eq(stage_future_cancel(t3), EALREADY);
    ck_assert_int_eq(stage_future_state(t1), STAGE_DONE);
    ck_assert_int_eq(stage_future_state(t2), STAGE_FAILED);
    ck_assert_int_eq(stage_future_state(t3), STAGE_DONE);
    stage_future_unref(t1);
    stage_future_unref(t2);
    stage_future_unref(t3);
}
END_TEST

/* ---- After cancellation every blocking call returns ECANCELED ----------- */

typedef struct after {
    stage_future *started;
    int self_cancel;       /* the body cancels its own task */
    int self_cancel_rc;
    int rc[6];
    int take_rc;
    int flag;
} after;

static void *after_body(void *arg)
{
    after *a = arg;
    stage_future *pending = stage_future_new();
    stage_future *done = stage_future_new();
    int p[2] = {-1, -1};
    void *v = NULL;
    int i;

    stage_future_resolve(a->started, NULL, NULL);
    if (a->self_cancel)
        a->self_cancel_rc = stage_future_cancel(stage_task_self());
    /* Until cancelled: a spinning check, no blocking call. */
    while (!stage_task_cancelled())
        sched_yield();
    a->flag = stage_task_cancelled();
    stage_future_resolve(done, NULL, NULL);
    for (i = 0; i < 6; i++)
        a->rc[i] = -1;
    a->rc[0] = stage_sleep(0.01);
    a->rc[1] = stage_yield();
    a->rc[2] = stage_future_wait(pending, 1.0);
    a->rc[3] = stage_future_get(pending, 0.5, &v);
    if (pipe(p) == 0) {
        a->rc[4] = stage_fd_wait(p[0], STAGE_FD_READ, 1.0, NULL);
        close(p[0]);
        close(p[1]);
    }
    a->rc[5] = stage_sleep(0);
    /* Non-blocking calls still work. */
    a->take_rc = stage_future_take(done, &v);
    stage_future_unref(pending);
    stage_future_unref(done);
    return NULL;
}

static void run_after(int on_thread)
{
    after a;
    stage_future *t = NULL;
    int i;

    memset(&a, 0, sizeof a);
    a.started = stage_future_new();
    a.take_rc = a.flag = a.self_cancel_rc = -1;
    a.self_cancel = !on_thread;
    if (on_thread) {
        ck_assert_int_eq(stage_thread_spawn(after_body, &a, NULL, &t), 0);
        /* It spins, not blocked, until the request arrives. */
        ck_assert_int_eq(stage_future_wait(a.started, 5.0 * t_tol()), 0);
        ck_assert_int_eq(stage_future_cancel(t), 0);
    } else {
        ck_assert_int_eq(stage_coro_spawn(NULL, after_body, &a, NULL, 0, &t),
                         0);
    }
    ck_assert_int_eq(stage_future_wait(t, 5.0 * t_tol()), 0);
    if (!on_thread)
        ck_assert_int_eq(a.self_cancel_rc, 0);
    ck_assert_int_eq(a.flag, 1);
    for (i = 0; i < 6; i++)
        ck_assert_msg(a.rc[i] == ECANCELED, "call %d returned %d", i,
                      a.rc[i]);
    ck_assert_int_eq(a.take_rc, 0);
    ck_assert_int_eq(stage_future_state(t), STAGE_CANCELLED);
    stage_future_unref(t);
    stage_future_unref(a.started);
}

/* A coroutine that cancels itself: the request is seen at once, and all of
 * its following blocking calls return ECANCELED. */
START_TEST(test_cancelled_calls_coroutine)
{
    run_after(0);
}
END_TEST

START_TEST(test_cancelled_calls_thread)
{
    run_after(1);
}
END_TEST

/* A coroutine that is cancelled while blocked, then keeps calling blocking
 * functions: all of them return ECANCELED at once. */
typedef struct after2 {
    int rc[7];
    int64_t t_end, t_start;
} after2;

static void *after2_body(void *arg)
{
    after2 *a = arg;
    stage_future *pending = stage_future_new();
    int p[2] = {-1, -1};

    a->rc[0] = stage_sleep(60.0); /* cancelled here */
    a->t_start = stage_now();
    a->rc[1] = stage_sleep(0.5);
    a->rc[2] = stage_yield();
    a->rc[3] = stage_future_wait(pending, 1.0);
    a->rc[4] = stage_future_get(pending, STAGE_FOREVER, NULL);
    if (pipe(p) == 0) {
        a->rc[5] = stage_fd_wait(p[0], STAGE_FD_READ, STAGE_FOREVER, NULL);
        close(p[0]);
        close(p[1]);
    }
    a->rc[6] = stage_loop_run(stage_loop_current(), pending, 1.0);
    a->t_end = stage_now();
    stage_future_unref(pending);
    return NULL;
}

START_TEST(test_cancelled_calls_coroutine_blocked)
{
    after2 a;
    stage_future *t = NULL;
    int i;

    memset(&a, 0, sizeof a);
    for (i = 0; i < 7; i++)
        a.rc[i] = -1;
    ck_assert_int_eq(stage_coro_spawn(NULL, after2_body, &a, NULL, 0, &t), 0);
    ck_assert_int_eq(stage_yield(), 0);
    ck_assert_int_eq(stage_future_cancel(t), 0);
    ck_assert_int_eq(stage_future_wait(t, 5.0 * t_tol()), 0);
    for (i = 0; i < 7; i++)
        ck_assert_msg(a.rc[i] == ECANCELED, "call %d returned %d", i,
                      a.rc[i]);
    /* None of them waited (0.5 s sleep, 1 s waits). */
    ck_assert_double_lt(t_ns2s(a.t_end - a.t_start), 0.4 * t_tol());
    ck_assert_int_eq(stage_future_state(t), STAGE_CANCELLED);
    stage_future_unref(t);
}
END_TEST

/* ---- Timed-out and cancelled waits do not consume a resolution ---------- */

typedef struct late {
    stage_future *f;
    int rc_timeout;
    int state_after;
    int rc_get;
    void *v;
} late;

static void *late_body(void *arg)
{
    late *l = arg;

    l->rc_timeout = stage_future_wait(l->f, 0.02);
    l->state_after = stage_future_state(l->f);
    return NULL;
}

START_TEST(test_timed_out_wait_keeps_value)
{
    atomic_int freed = 0;
    late lc, lt;
    stage_future *tc = NULL, *tt = NULL;
    t_val *val;
    void *v = NULL;

    memset(&lc, 0, sizeof lc);
    memset(&lt, 0, sizeof lt);
    lc.f = lt.f = stage_future_new();
    ck_assert_int_eq(stage_coro_spawn(NULL, late_body, &lc, NULL, 0, &tc), 0);
    ck_assert_int_eq(stage_thread_spawn(late_body, &lt, NULL, &tt), 0);
    ck_assert_int_eq(stage_future_wait(tc, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_wait(tt, 5.0 * t_tol()), 0);
    /* Main's own timed-out wait too. */
    ck_assert_int_eq(stage_future_wait(lc.f, 0.01), ETIMEDOUT);
    ck_assert_int_eq(lc.rc_timeout, ETIMEDOUT);
    ck_assert_int_eq(lt.rc_timeout, ETIMEDOUT);
    ck_assert_int_eq(lc.state_after, STAGE_PENDING);
    ck_assert_int_eq(lt.state_after, STAGE_PENDING);
    /* The later resolution is there for every later wait/get/take. */
    val = t_val_new(&freed, 5);
    ck_assert_int_eq(stage_future_resolve(lc.f, val, t_val_free), 0);
    ck_assert_int_eq(stage_future_wait(lc.f, 0), 0);
    ck_assert_int_eq(stage_future_get(lc.f, 0, &v), 0);
    ck_assert_ptr_eq(v, val);
    ck_assert_int_eq(stage_future_take(lc.f, &v), 0);
    ck_assert_ptr_eq(v, val);
    stage_future_unref(lc.f);
    ck_assert_int_eq(atomic_load(&freed), 0);
    t_val_free(val);
    stage_future_unref(tc);
    stage_future_unref(tt);
}
END_TEST

START_TEST(test_cancelled_wait_keeps_value)
{
    atomic_int freed = 0, freed2 = 0;
    blocked bc, bt;
    stage_future *tc = NULL, *tt = NULL, *shared;
    void *v = NULL;
    t_val *val;

    blocked_init(&bc, BLOCK_WAIT, &freed2);
    blocked_init(&bt, BLOCK_WAIT, &freed2);
    /* Both wait on the same future. */
    shared = bc.never;
    stage_future_unref(bt.never);
    bt.never = stage_future_ref(shared);
    ck_assert_int_eq(
        stage_coro_spawn(NULL, blocked_body, &bc, t_val_free, 0, &tc), 0);
    ck_assert_int_eq(stage_thread_spawn(blocked_body, &bt, t_val_free, &tt),
                     0);
    ck_assert_int_eq(stage_future_wait(bt.started, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_yield(), 0);
    ck_assert_int_eq(stage_future_cancel(tc), 0);
    ck_assert_int_eq(stage_future_cancel(tt), 0);
    ck_assert_int_eq(stage_future_wait(tc, 5.0 * t_tol()), 0);
    ck_assert_int_eq(stage_future_wait(tt, 5.0 * t_tol()), 0);
    ck_assert_int_eq(bc.rc, ECANCELED);
    ck_assert_int_eq(bt.rc, ECANCELED);
    /* The waited-on future is untouched and takes a value later. */
    ck_assert_int_eq(stage_future_state(shared), STAGE_PENDING);
    val = t_val_new(&freed, 6);
    ck_assert_int_eq(stage_future_resolve(shared, val, t_val_free), 0);
    ck_assert_int_eq(stage_future_get(shared, 0, &v), 0);
    ck_assert_ptr_eq(v, val);
    stage_future_unref(tc);
    stage_future_unref(tt);
    ck_assert_int_eq(t_wait_count(&freed2, 2, 5.0), 2);
    stage_future_unref(bc.started);
    stage_future_unref(bt.started);
    stage_future_unref(bc.never);
    ck_assert_int_eq(atomic_load(&freed), 0);
    stage_future_unref(bt.never);
    ck_assert_int_eq(atomic_load(&freed), 1);
}
END_TEST

/* A wait that times out while another thread resolves: either it saw the
 * value (0, DONE) or it timed out; a later get always sees the value. */
typedef struct tw_race {
    pthread_barrier_t start, end;
    stage_future *f;
    int stop;
    int wait_rc;
    stage_state state_after;
} tw_race;

static void *tw_waiter(void *arg)
{
    tw_race *r = arg;

    for (;;) {
        pthread_barrier_wait(&r->start);
        if (r->stop)
            return NULL;
        r->wait_rc = stage_future_wait(r->f, 0.0001);
        r->state_after = stage_future_state(r->f);
        pthread_barrier_wait(&r->end);
    }
}

START_TEST(test_timeout_resolve_race)
{
    static tw_race r;
    int rounds = t_slow() ? 500 : 5000;
    int i, timedout = 0;
    pthread_t th;

    memset(&r, 0, sizeof r);
    pthread_barrier_init(&r.start, NULL, 2);
    pthread_barrier_init(&r.end, NULL, 2);
    th = t_thread_start(tw_waiter, &r);
    for (i = 0; i < rounds; i++) {
        void *v = NULL;

        r.f = stage_future_new();
        r.wait_rc = -1;
        pthread_barrier_wait(&r.start);
        ck_assert_int_eq(stage_future_resolve(r.f, (void *)&r, NULL), 0);
        pthread_barrier_wait(&r.end);
        ck_assert_msg(r.wait_rc == 0 || r.wait_rc == ETIMEDOUT, "rc %d",
                      r.wait_rc);
        if (r.wait_rc == 0)
            ck_assert_int_eq(r.state_after, STAGE_DONE);
        else
            timedout++;
        ck_assert_int_eq(stage_future_get(r.f, 0, &v), 0);
        ck_assert_ptr_eq(v, &r);
        stage_future_unref(r.f);
    }
    r.stop = 1;
    pthread_barrier_wait(&r.start);
    t_thread_join(th);
    pthread_barrier_destroy(&r.start);
    pthread_barrier_destroy(&r.end);
    (void)timedout;
}
END_TEST

/* ---- resolve vs cancel: decided exactly once ----------------------------- */

typedef struct rc_race {
    pthread_barrier_t start, end;
    stage_future *f;
    int stop;
    int cancel_rc;
} rc_race;

static void *rc_canceller(void *arg)
{
    rc_race *r = arg;

    for (;;) {
        pthread_barrier_wait(&r->start);
        if (r->stop)
            return NULL;
        r->cancel_rc = stage_future_cancel(r->f);
        pthread_barrier_wait(&r->end);
    }
}

START_TEST(test_resolve_cancel_race)
{
    enum { ROUNDS = 10000 };
    static rc_race r;
    atomic_int freed = 0;
    int i, won = 0, lost = 0;
    pthread_t th;

    memset(&r, 0, sizeof r);
    pthread_barrier_init(&r.start, NULL, 2);
    pthread_barrier_init(&r.end, NULL, 2);
    th = t_thread_start(rc_canceller, &r);
    for (i = 0; i < ROUNDS; i++) {
        t_val *val = t_val_new(&freed, i);
        int res_rc;
        stage_state st;

        r.f = stage_future_new();
        r.cancel_rc = -1;
        pthread_barrier_wait(&r.start);
        res_rc = stage_future_resolve(r.f, val, t_val_free);
        pthread_barrier_wait(&r.end);
        st = stage_future_state(r.f);
        if (res_rc == 0) {
            /* Resolve won: cancel saw a DONE future. */
            ck_assert_int_eq(r.cancel_rc, EALREADY);
            ck_assert_int_eq(st, STAGE_DONE);
            won++;
        } else {
            /* Cancel won: the value is still ours, destructor not run. */
            ck_assert_int_eq(res_rc, ECANCELED);
            ck_assert_int_eq(r.cancel_rc, 0);
            ck_assert_int_eq(st, STAGE_CANCELLED);
            ck_assert_int_eq(atomic_load(&freed), i);
            lost++;
        }
        stage_future_unref(r.f);
        if (res_rc != 0)
            t_val_free(val);
        /* Exactly once per round, whoever destroyed it. */
        ck_assert_int_eq(atomic_load(&freed), i + 1);
    }
    r.stop = 1;
    pthread_barrier_wait(&r.start);
    t_thread_join(th);
    pthread_barrier_destroy(&r.start);
    pthread_barrier_destroy(&r.end);
    ck_assert_int_eq(won + lost, ROUNDS);
}
END_TEST

/* ---- A task finishing vs being cancelled ---------------------------------- */

typedef struct fin {
    atomic_int *freed;
    atomic_int *made;
    int yields;
} fin;

static void *fin_body(void *arg)
{
    fin *f = arg;
    int i;

    for (i = 0; i < f->yields; i++)
        stage_yield();
    atomic_fetch_add(f->made, 1);
    return t_val_new(f->freed, 1);
}

static void check_fin(stage_future *t, int cancel_rc, atomic_int *freed,
                      atomic_int *made, int *done, int *cancelled)
{
    stage_state st;

    ck_assert_int_eq(stage_future_wait(t, 5.0 * t_tol()), 0);
    st = stage_future_state(t);
    if (cancel_rc == 0) {
        ck_assert_int_eq(st, STAGE_CANCELLED);
        (*cancelled)++;
    } else {
        ck_assert_int_eq(cancel_rc, EALREADY);
        ck_assert_int_eq(st, STAGE_DONE);
        (*done)++;
    }
    stage_future_unref(t);
    /* Every value the bodies made was destroyed exactly once. */
    ck_assert_int_eq(t_wait_count(freed, atomic_load(made), 5.0),
                     atomic_load(made));
}

START_TEST(test_finish_cancel_race_thread)
{
    int rounds = t_slow() ? 200 : 1000;
    atomic_int freed = 0, made = 0;
    fin f = {&freed, &made, 0};
    int i, done = 0, cancelled = 0;

    for (i = 0; i < rounds; i++) {
        stage_future *t = NULL;
        int rc;

        ck_assert_int_eq(stage_thread_spawn(fin_body, &f, t_val_free, &t), 0);
        if (i & 1)
            sched_yield();
        rc = stage_future_cancel(t);
        check_fin(t, rc, &freed, &made, &done, &cancelled);
    }
    ck_assert_int_eq(done + cancelled, rounds);
}
END_TEST

START_TEST(test_finish_cancel_race_coroutine)
{
    atomic_int freed = 0, made = 0;
    fin f = {&freed, &made, 2};
    int i, done = 0, cancelled = 0;

    /* Cancel after 0..4 of main's yields: before start, while yielding,
     * after the end. */
    for (i = 0; i < 500; i++) {
        stage_future *t = NULL;
        int k, rc;

        ck_assert_int_eq(stage_coro_spawn(NULL, fin_body, &f, t_val_free, 0,
                                          &t),
                         0);
        for (k = 0; k < i % 5; k++)
            stage_yield();
        rc = stage_future_cancel(t);
        check_fin(t, rc, &freed, &made, &done, &cancelled);
    }
    ck_assert_int_eq(done + cancelled, 500);
    /* Both outcomes happen deterministically here. */
    ck_assert_int_gt(done, 0);
    ck_assert_int_gt(cancelled, 0);
}
END_TEST

static Suite *cancel_suite(void)
{
    Suite *s = suite_create("cancel");
    TCase *tc;

    tc = t_tcase(s, "blocked", 10);
    tcase_add_test(tc, test_cancel_blocked_coroutine);
    tcase_add_test(tc, test_cancel_blocked_thread);
    tcase_add_test(tc, test_cancel_wakes_waiters_of_task);
    tcase_add_test(tc, test_cancel_before_start);
    tcase_add_test(tc, test_cancel_finished_task);

    tc = t_tcase(s, "after", 10);
    tcase_add_test(tc, test_cancelled_calls_coroutine);
    tcase_add_test(tc, test_cancelled_calls_thread);
    tcase_add_test(tc, test_cancelled_calls_coroutine_blocked);

    tc = t_tcase(s, "keep", 10);
    tcase_add_test(tc, test_timed_out_wait_keeps_value);
    tcase_add_test(tc, test_cancelled_wait_keeps_value);

    tc = t_tcase(s, "race", 30);
    tcase_add_test(tc, test_timeout_resolve_race);
    tcase_add_test(tc, test_resolve_cancel_race);
    tcase_add_test(tc, test_finish_cancel_race_thread);
    tcase_add_test(tc, test_finish_cancel_race_coroutine);
    return s;
}

T_MAIN(cancel_suite)
