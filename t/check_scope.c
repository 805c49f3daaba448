/* SPDX-License-Identifier: MIT */
/*
 * check_scope.c - scopes (structured concurrency, async-tamer's AsyncScope):
 * tasks on the pool and as coroutines of the opener's loop, delayed results
 * ("not yet" without blocking), exit modes (wait, cancel, raise), error
 * modes (cancel the siblings, continue), failures collected once and never
 * twice, nesting (from a thread and inside tasks), deadlines, cancellation
 * from outside and of the closer itself, misuse (EINVAL, EPIPE, ECANCELED,
 * EDEADLK, ETIMEDOUT), implicit closes reported to the Stage, and two
 * stress tests: 1,000 tasks with random failures under both error modes,
 * and five nested scopes cancelled from outside within 100 ms.
 */
#include "stages.h"

/* ---- Bodies ------------------------------------------------------------- */

/* Returns a t_val counted in *arg. */
static void *val_body(void *arg)
{
    return t_val_new(arg, 7);
}

/* Returns where it ran. */
static void *thread_body(void *arg)
{
    pthread_t *where = arg;

    *where = pthread_self();
    return NULL;
}

static stage *new_stage(void)
{
    stage *st = stage_new("scope", 8, 0);

    ck_assert_ptr_nonnull(st);
    return st;
}

static stage_scope *new_scope(stage *st, unsigned int flags, double timeout)
{
    stage_scope *sc = stage_scope_new(st, flags, timeout);

    ck_assert_ptr_nonnull(sc);
    return sc;
}

/* Start fn in sc, as a coroutine or on the pool. */
static stage_future *go(stage_scope *sc, int coro, stage_task_fn fn,
                        void *arg, stage_destroy_fn destroy)
{
    stage_future *f = NULL;

    if (coro)
        ck_assert_int_eq(stage_scope_go_coro(sc, fn, arg, destroy, &f), 0);
    else
        ck_assert_int_eq(stage_scope_go(sc, fn, arg, destroy, &f), 0);
    ck_assert_ptr_nonnull(f);
    return f;
}

/* The number of reports close collected. */
static size_t nfailures(stage_scope *sc)
{
    size_t n = 0;

    while (stage_scope_failure(sc, n, NULL, NULL, NULL) == 0)
        n++;
    return n;
}

/* ---- API ---------------------------------------------------------------- */

START_TEST(test_einval)
{
    stage *st = new_stage();
    stage_scope *sc;

    errno = 0;
    ck_assert_ptr_null(stage_scope_new(st, 0x8u, STAGE_FOREVER));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(stage_scope_new(
        st, STAGE_SCOPE_CANCEL | STAGE_SCOPE_RAISE, STAGE_FOREVER));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(stage_scope_new(st, 0, NAN));
    ck_assert_int_eq(errno, EINVAL);

    sc = new_scope(st, 0, STAGE_FOREVER);
    ck_assert_int_eq(stage_scope_go(NULL, val_body, NULL, NULL, NULL),
                     EINVAL);
    ck_assert_int_eq(stage_scope_go(sc, NULL, NULL, NULL, NULL), EINVAL);
    ck_assert_int_eq(stage_scope_go_coro(NULL, val_body, NULL, NULL, NULL),
                     EINVAL);
    ck_assert_int_eq(stage_scope_go_coro(sc, NULL, NULL, NULL, NULL), EINVAL);
    ck_assert_int_eq(stage_scope_cancel(NULL), EINVAL);
    ck_assert_int_eq(stage_scope_close(NULL, STAGE_FOREVER), EINVAL);
    ck_assert_int_eq(stage_scope_close(sc, NAN), EINVAL);
    ck_assert_int_eq(stage_scope_failure(NULL, 0, NULL, NULL, NULL), EINVAL);
    ck_assert_int_eq(stage_scope_failure(sc, 0, NULL, NULL, NULL), ENOENT);
    stage_scope_free(NULL);

    ck_assert_int_eq(stage_scope_close(sc, STAGE_FOREVER), 0);
    stage_scope_free(sc);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* Close waits for every task, coroutines and pool functions alike; values
 * are destroyed once. */
START_TEST(test_wait_mode)
{
    stage *st = new_stage();
    stage_scope *sc = new_scope(st, 0, STAGE_FOREVER);
    stage_future *gate = t_latch();
    t_gated g[4];
    stage_future *f[4];
    void *v;
    int i;

    for (i = 0; i < 4; i++) {
        t_gated_init(&g[i], gate, 10 + i);
        f[i] = go(sc, i % 2, t_gated_body, &g[i], t_val_free);
    }
    for (i = 0; i < 4; i++)
        t_done(g[i].started);
    /* Nothing finished yet: close times out, the scope stays open. */
    ck_assert_int_eq(stage_scope_close(sc, 0.01), ETIMEDOUT);
    for (i = 0; i < 4; i++)
        ck_assert_int_eq(stage_future_state(f[i]), STAGE_PENDING);
    t_latch_open(gate);
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), 0);
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(stage_future_state(f[i]), STAGE_DONE);
        ck_assert_int_eq(stage_future_get(f[i], 0, &v), 0);
        ck_assert_int_eq(((t_val *)v)->id, 10 + i);
        ck_assert_int_eq(g[i].rc, 0);
    }
    ck_assert_int_eq(nfailures(sc), 0);
    stage_scope_free(sc);
    for (i = 0; i < 4; i++) {
        ck_assert_int_eq(atomic_load(&g[i].freed), 0);
        stage_future_unref(f[i]);
        ck_assert_int_eq(t_wait_count(&g[i].freed, 1, 5.0), 1);
        t_gated_fini(&g[i]);
    }
    stage_future_unref(gate);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* DelayedResult: .value before it arrived says "not yet" without
 * blocking; block() (a wait) from a thread, then .value. */
START_TEST(test_not_yet)
{
    stage_scope *sc = new_scope(NULL, 0, STAGE_FOREVER);
    stage_future *gate;
    t_gated g;
    stage_future *f;
    void *v = NULL;
    double t0;
    int coro;

    for (coro = 0; coro < 2; coro++) {
        v = NULL;
        gate = t_latch();
        t_gated_init(&g, gate, 5);
        f = go(sc, coro, t_gated_body, &g, t_val_free);
        t0 = t_time();
        ck_assert_int_eq(stage_future_get(f, 0, &v), ETIMEDOUT);
        ck_assert_ptr_null(v);
        ck_assert_double_lt(t_time() - t0, 1.0 * t_tol());
        ck_assert_int_eq(stage_future_wait(f, 0.01), ETIMEDOUT);
        ck_assert_int_eq(stage_future_resolve(gate, NULL, NULL), 0);
        ck_assert_int_eq(stage_future_wait(f, T_LONG), 0);
        ck_assert_int_eq(stage_future_get(f, 0, &v), 0);
        ck_assert_int_eq(((t_val *)v)->id, 5);
        stage_future_unref(f);
        /* The task's thread may drop the last reference just after. */
        ck_assert_int_eq(t_wait_count(&g.freed, 1, 5.0), 1);
        t_gated_fini(&g);
        stage_future_unref(gate);
    }
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), 0);
    stage_scope_free(sc);
}
END_TEST

/* Coroutines run on the loop of the thread that opened the scope, even
 * when started from another thread; functions run on the pool. */
typedef struct remote_go {
    stage_scope *sc;
    pthread_t where_coro, where_pool;
    int rc_coro, rc_pool;
} remote_go;

static void *remote_go_thread(void *arg)
{
    remote_go *r = arg;

    r->rc_coro = stage_scope_go_coro(r->sc, thread_body, &r->where_coro,
                                     NULL, NULL);
    r->rc_pool = stage_scope_go(r->sc, thread_body, &r->where_pool, NULL,
                                NULL);
    return NULL;
}

START_TEST(test_where)
{
    stage *st = new_stage();
    stage_scope *sc = new_scope(st, 0, STAGE_FOREVER);
    remote_go r;

    memset(&r, 0, sizeof r);
    r.sc = sc;
    t_thread_join(t_thread_start(remote_go_thread, &r));
    ck_assert_int_eq(r.rc_coro, 0);
    ck_assert_int_eq(r.rc_pool, 0);
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), 0);
    ck_assert(pthread_equal(r.where_coro, pthread_self()));
    ck_assert(!pthread_equal(r.where_pool, pthread_self()));
    stage_scope_free(sc);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* stage_future_cb: opens the latch in user_data. */
static void latch_cb(stage_future *f, void *user_data)
{
    (void)f;
    t_latch_open(user_data);
}

/* Default names "scope-N.I"; a task that names itself keeps its name. */
START_TEST(test_names)
{
    stage_scope *sc = new_scope(NULL, STAGE_SCOPE_CONTINUE, STAGE_FOREVER);
    failer a = {NULL, EIO, "first"}, b = {"mine", EPERM, "second"};
    stage_future *fa, *fb, *latch = t_latch();
    const char *name, *msg;
    unsigned int number;
    size_t index;
    int err;
    char rest;

    fb = go(sc, 0, fail_body, &b, NULL);
    /* Callbacks run in order: once ours ran, the scope's has. */
    ck_assert_int_eq(stage_future_add_callback(fb, latch_cb, latch, NULL), 0);
    t_done(latch);
    fa = go(sc, 1, fail_body, &a, NULL);
    name = stage_future_name(fa);
    ck_assert_ptr_nonnull(name);
    ck_assert_int_eq(sscanf(name, "scope-%u.%zu%c", &number, &index, &rest),
                     2);
    ck_assert_uint_eq(index, 1);
    ck_assert_str_eq(stage_future_name(fb), "mine");
    /* The first to fail, and all of them in the order they failed. */
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), EPERM);
    ck_assert_int_eq(nfailures(sc), 2);
    ck_assert_int_eq(stage_scope_failure(sc, 0, &name, &err, &msg), 0);
    ck_assert_str_eq(name, "mine");
    ck_assert_int_eq(err, EPERM);
    ck_assert_str_eq(msg, "second");
    ck_assert_int_eq(stage_scope_failure(sc, 1, &name, &err, &msg), 0);
    ck_assert_str_eq(name, stage_future_name(fa));
    ck_assert_int_eq(err, EIO);
    ck_assert_str_eq(msg, "first");
    ck_assert_int_eq(stage_scope_failure(sc, 2, &name, &err, &msg), ENOENT);
    stage_scope_free(sc);
    stage_future_unref(fa);
    stage_future_unref(fb);
    stage_future_unref(latch);
}
END_TEST

/* After close: EPIPE for go, close and cancel. */
START_TEST(test_epipe)
{
    stage_scope *sc = new_scope(NULL, 0, STAGE_FOREVER);
    atomic_int freed;

    atomic_init(&freed, 0);
    stage_future_unref(go(sc, 1, val_body, &freed, t_val_free));
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), 0);
    ck_assert_int_eq(atomic_load(&freed), 1);
    ck_assert_int_eq(stage_scope_go(sc, val_body, &freed, t_val_free, NULL),
                     EPIPE);
    ck_assert_int_eq(
        stage_scope_go_coro(sc, val_body, &freed, t_val_free, NULL), EPIPE);
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), EPIPE);
    ck_assert_int_eq(stage_scope_cancel(sc), EPIPE);
    stage_scope_free(sc);
    ck_assert_int_eq(atomic_load(&freed), 1);
}
END_TEST

/* ---- Exit modes --------------------------------------------------------- */

/* Exit mode cancel: close cancels what is unfinished, waits, returns 0. */
START_TEST(test_exit_cancel)
{
    stage *st = new_stage();
    stage_scope *sc = new_scope(st, STAGE_SCOPE_CANCEL, STAGE_FOREVER);
    t_gated g[2];
    stage_future *f[2];
    atomic_int freed;
    double t0;
    int i;

    atomic_init(&freed, 0);
    f[0] = go(sc, 0, val_body, &freed, t_val_free);
    t_done(f[0]); /* finished before close: not cancelled */
    stage_future_unref(f[0]);
    for (i = 0; i < 2; i++) {
        t_gated_init(&g[i], NULL, 1);
        f[i] = go(sc, i, t_gated_body, &g[i], t_val_free);
        t_done(g[i].started);
    }
    t0 = t_time();
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), 0);
    ck_assert_double_lt(t_time() - t0, 2.0 * t_tol());
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(stage_future_state(f[i]), STAGE_CANCELLED);
        ck_assert_int_eq(g[i].rc, ECANCELED);
        /* Its value is not delivered: destroyed as the task ends. */
        ck_assert_int_eq(t_wait_count(&g[i].freed, 1, 5.0), 1);
        stage_future_unref(f[i]);
        t_gated_fini(&g[i]);
    }
    ck_assert_int_eq(nfailures(sc), 0);
    stage_scope_free(sc);
    ck_assert_int_eq(t_wait_count(&freed, 1, 5.0), 1);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* Exit mode raise: close reports the values nobody read, and failures. */
START_TEST(test_exit_raise)
{
    stage_scope *sc = new_scope(NULL, STAGE_SCOPE_RAISE, STAGE_FOREVER);
    atomic_int freed;
    stage_future *read, *unread;
    const char *name, *msg;
    void *v;
    int err;

    atomic_init(&freed, 0);
    read = go(sc, 1, val_body, &freed, t_val_free);
    unread = go(sc, 0, val_body, &freed, t_val_free);
    stage_future_unref(go(sc, 1, val_body, &freed, t_val_free));
    ck_assert_int_eq(stage_future_get(read, T_LONG, &v), 0);
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), ENOMSG);
    ck_assert_int_eq(nfailures(sc), 2);
    ck_assert_int_eq(stage_scope_failure(sc, 0, &name, &err, &msg), 0);
    ck_assert_int_eq(err, 0);
    ck_assert_ptr_null(msg);
    ck_assert_int_eq(stage_scope_failure(sc, 1, &name, &err, &msg), 0);
    ck_assert_int_eq(err, 0);
    stage_scope_free(sc);
    /* The value with no future left was freed with the scope. */
    ck_assert_int_eq(t_wait_count(&freed, 1, 5.0), 1);
    stage_future_unref(read);
    stage_future_unref(unread);
    ck_assert_int_eq(t_wait_count(&freed, 3, 5.0), 3);

    /* A failure comes first; a value read in time is not reported. */
    {
        failer fl = {NULL, EIO, "raised"};

        sc = new_scope(NULL, STAGE_SCOPE_RAISE | STAGE_SCOPE_CONTINUE,
                       STAGE_FOREVER);
        read = go(sc, 0, val_body, &freed, t_val_free);
        ck_assert_int_eq(stage_future_get(read, T_LONG, &v), 0);
        stage_future_unref(go(sc, 1, fail_body, &fl, NULL));
        ck_assert_int_eq(stage_scope_close(sc, T_LONG), EIO);
        ck_assert_int_eq(nfailures(sc), 1);
        ck_assert_int_eq(stage_scope_failure(sc, 0, NULL, &err, &msg), 0);
        ck_assert_int_eq(err, EIO);
        ck_assert_str_eq(msg, "raised");
        stage_scope_free(sc);
        stage_future_unref(read);
        ck_assert_int_eq(t_wait_count(&freed, 4, 5.0), 4);
    }
}
END_TEST

/* ---- Error modes -------------------------------------------------------- */

/* Error mode cancel (default): the first failure cancels the siblings. */
START_TEST(test_error_cancel)
{
    stage *st = new_stage();
    stage_scope *sc = new_scope(st, 0, STAGE_FOREVER);
    failer fl = {"faulty", EIO, "Oh no!"};
    t_gated g[2];
    stage_future *f[2], *bad;
    const char *name, *msg;
    int err, i;

    for (i = 0; i < 2; i++) {
        t_gated_init(&g[i], NULL, 1);
        f[i] = go(sc, i, t_gated_body, &g[i], t_val_free);
        t_done(g[i].started);
    }
    bad = go(sc, 0, fail_body, &fl, NULL);
    for (i = 0; i < 2; i++) {
        t_done(f[i]); /* cancelled without any close */
        ck_assert_int_eq(stage_future_state(f[i]), STAGE_CANCELLED);
        ck_assert_int_eq(g[i].rc, ECANCELED);
    }
    /* A cancelled scope starts nothing more. */
    ck_assert_int_eq(stage_scope_go(sc, val_body, NULL, NULL, NULL),
                     ECANCELED);
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), EIO);
    ck_assert_int_eq(nfailures(sc), 1);
    ck_assert_int_eq(stage_scope_failure(sc, 0, &name, &err, &msg), 0);
    ck_assert_str_eq(name, "faulty");
    ck_assert_int_eq(err, EIO);
    ck_assert_str_eq(msg, "Oh no!");
    stage_scope_free(sc);
    for (i = 0; i < 2; i++) {
        stage_future_unref(f[i]);
        t_gated_fini(&g[i]);
    }
    stage_future_unref(bad);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* Error mode continue: the siblings keep going. */
START_TEST(test_error_continue)
{
    stage_scope *sc = new_scope(NULL, STAGE_SCOPE_CONTINUE, STAGE_FOREVER);
    failer fl = {NULL, EPERM, "nope"};
    stage_future *gate = t_latch(), *f, *bad;
    t_gated g;

    t_gated_init(&g, gate, 3);
    f = go(sc, 1, t_gated_body, &g, t_val_free);
    bad = go(sc, 0, fail_body, &fl, NULL);
    t_done(bad);
    t_done(g.started);
    ck_assert_int_eq(stage_future_state(f), STAGE_PENDING);
    t_latch_open(gate);
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), EPERM);
    ck_assert_int_eq(stage_future_state(f), STAGE_DONE);
    ck_assert_int_eq(g.rc, 0);
    ck_assert_int_eq(nfailures(sc), 1);
    stage_scope_free(sc);
    stage_future_unref(f);
    stage_future_unref(bad);
    stage_future_unref(gate);
    ck_assert_int_eq(atomic_load(&g.freed), 1);
    t_gated_fini(&g);
}
END_TEST

/* A failure seen by a waiter is not reported again; nor is a value read
 * in raise mode. */
START_TEST(test_observed)
{
    stage_scope *sc = new_scope(NULL, 0, STAGE_FOREVER);
    failer fl = {NULL, EIO, "Oh no!"};
    stage_future *bad = go(sc, 1, fail_body, &fl, NULL);

    ck_assert_int_eq(stage_future_get(bad, T_LONG, NULL), EIO);
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), 0);
    ck_assert_int_eq(nfailures(sc), 0);
    stage_scope_free(sc);
    stage_future_unref(bad);
}
END_TEST

/* ---- Closing ------------------------------------------------------------ */

/* Cancel from another thread while the opener waits in close. */
typedef struct canceller {
    stage_scope *sc;
    t_gated *g;
    int rc;
} canceller;

static void *cancel_thread(void *arg)
{
    canceller *c = arg;

    /* Wait (plain thread) until the task runs, then cancel the scope. */
    if (stage_future_wait(c->g->started, 60.0) == 0)
        c->rc = stage_scope_cancel(c->sc);
    return NULL;
}

START_TEST(test_cancel_from_thread)
{
    stage_scope *sc = new_scope(NULL, 0, STAGE_FOREVER);
    t_gated g;
    stage_future *f;
    canceller c;
    pthread_t th;

    t_gated_init(&g, NULL, 0);
    f = go(sc, 1, t_gated_body, &g, NULL);
    c.sc = sc;
    c.g = &g;
    c.rc = -1;
    th = t_thread_start(cancel_thread, &c);
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), 0);
    t_thread_join(th);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_int_eq(stage_future_state(f), STAGE_CANCELLED);
    ck_assert_int_eq(g.rc, ECANCELED);
    stage_scope_free(sc);
    stage_future_unref(f);
    t_gated_fini(&g);
}
END_TEST

/* Open, start and close inside a coroutine, and inside a pool task. */
typedef struct inside {
    atomic_int freed;
    int close_rc;
    int values;
} inside;

static void *inside_body(void *arg)
{
    inside *in = arg;
    stage_scope *sc = stage_scope_new(NULL, 0, STAGE_FOREVER);
    stage_future *f[4] = {NULL, NULL, NULL, NULL};
    void *v;
    int i;

    if (sc == NULL)
        return NULL;
    for (i = 0; i < 4; i++)
        if (i % 2)
            stage_scope_go_coro(sc, val_body, &in->freed, t_val_free, &f[i]);
        else
            stage_scope_go(sc, val_body, &in->freed, t_val_free, &f[i]);
    in->close_rc = stage_scope_close(sc, 60.0);
    for (i = 0; i < 4; i++) {
        if (f[i] && stage_future_get(f[i], 0, &v) == 0 &&
            ((t_val *)v)->id == 7)
            in->values++;
        stage_future_unref(f[i]);
    }
    stage_scope_free(sc);
    return NULL;
}

START_TEST(test_close_in_tasks)
{
    stage *st = new_stage();
    inside in[3];
    stage_future *f[2];
    int i;

    for (i = 0; i < 3; i++) {
        atomic_init(&in[i].freed, 0);
        in[i].close_rc = -1;
        in[i].values = 0;
    }
    ck_assert_int_eq(stage_run(inside_body, &in[0], NULL, NULL), 0);
    ck_assert_int_eq(stage_go_coro(st, inside_body, &in[1], NULL, &f[0]), 0);
    ck_assert_int_eq(stage_go(st, inside_body, &in[2], NULL, &f[1]), 0);
    t_done(f[0]);
    t_done(f[1]);
    for (i = 0; i < 3; i++) {
        ck_assert_int_eq(in[i].close_rc, 0);
        ck_assert_int_eq(in[i].values, 4);
        ck_assert_int_eq(t_wait_count(&in[i].freed, 4, 5.0), 4);
    }
    stage_future_unref(f[0]);
    stage_future_unref(f[1]);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* The caller of close is cancelled: close cancels the tasks, still waits
 * for them, returns ECANCELED; later blocking calls return at once. */
typedef struct cancelled_closer {
    stage *st;
    t_gated g[2];
    stage_future *f[2];
    stage_future *opened;
    int close_rc;
    stage_state state[2];
    int again_rc;
    double again_s;
    size_t nfail;
} cancelled_closer;

static void *cancelled_closer_body(void *arg)
{
    cancelled_closer *a = arg;
    stage_scope *sc = stage_scope_new(a->st, 0, STAGE_FOREVER);
    double t0;
    int i;

    if (sc == NULL)
        return NULL;
    stage_scope_go_coro(sc, t_gated_body, &a->g[0], NULL, &a->f[0]);
    stage_scope_go(sc, t_gated_body, &a->g[1], NULL, &a->f[1]);
    t_latch_open(a->opened);
    a->close_rc = stage_scope_close(sc, STAGE_FOREVER);
    for (i = 0; i < 2; i++)
        a->state[i] = stage_future_state(a->f[i]);
    a->nfail = nfailures(sc);
    stage_scope_free(sc);
    t0 = t_time();
    a->again_rc = stage_sleep(30.0);
    a->again_s = t_time() - t0;
    return NULL;
}

START_TEST(test_closer_cancelled)
{
    stage *st = new_stage();
    int coro, i;

    for (coro = 0; coro < 2; coro++) {
        cancelled_closer a;
        stage_future *task;

        memset(&a, 0, sizeof a);
        a.st = st;
        a.opened = t_latch();
        for (i = 0; i < 2; i++)
            t_gated_init(&a.g[i], NULL, 0);
        if (coro)
            ck_assert_int_eq(
                stage_go_coro(st, cancelled_closer_body, &a, NULL, &task), 0);
        else
            ck_assert_int_eq(
                stage_go(st, cancelled_closer_body, &a, NULL, &task), 0);
        t_done(a.opened);
        t_done(a.g[0].started);
        t_done(a.g[1].started);
        ck_assert_int_eq(stage_future_cancel(task), 0);
        t_done(task);
        ck_assert_int_eq(stage_future_state(task), STAGE_CANCELLED);
        ck_assert_int_eq(a.close_rc, ECANCELED);
        for (i = 0; i < 2; i++) {
            ck_assert_int_eq(a.state[i], STAGE_CANCELLED);
            ck_assert_int_eq(a.g[i].rc, ECANCELED);
            stage_future_unref(a.f[i]);
            t_gated_fini(&a.g[i]);
        }
        ck_assert_uint_eq(a.nfail, 0);
        ck_assert_int_eq(a.again_rc, ECANCELED);
        ck_assert_double_lt(a.again_s, 1.0 * t_tol());
        stage_future_unref(task);
        stage_future_unref(a.opened);
    }
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* A task of the scope may not close it (it would wait for itself), but
 * may start siblings while the scope's close waits. */
typedef struct self_closer {
    stage_scope *sc;
    stage_future *gate;
    int close_rc, go_rc, deep_rc, inner_rc;
    atomic_int freed;
} self_closer;

/* A task of a scope opened by a task of a->sc: closing a->sc would wait
 * for this task too. */
static void *deep_closer_body(void *arg)
{
    self_closer *a = arg;

    a->deep_rc = stage_scope_close(a->sc, 0);
    return NULL;
}

static void *self_closer_body(void *arg)
{
    self_closer *a = arg;
    stage_scope *inner = stage_scope_new(NULL, 0, STAGE_FOREVER);

    a->close_rc = stage_scope_close(a->sc, 0);
    if (inner != NULL) {
        stage_scope_go_coro(inner, deep_closer_body, a, NULL, NULL);
        a->inner_rc = stage_scope_close(inner, 60.0);
        stage_scope_free(inner);
    }
    /* Wait until the opener is in close, then start a sibling. */
    stage_future_wait(a->gate, 60.0);
    a->go_rc = stage_scope_go_coro(a->sc, val_body, &a->freed, t_val_free,
                                   NULL);
    return NULL;
}

static void *open_gate(void *arg)
{
    t_latch_open(arg);
    return NULL;
}

START_TEST(test_self_close)
{
    stage_scope *sc = new_scope(NULL, 0, STAGE_FOREVER);
    self_closer a;

    a.sc = sc;
    a.gate = t_latch();
    a.close_rc = a.go_rc = a.deep_rc = a.inner_rc = -1;
    atomic_init(&a.freed, 0);
    stage_future_unref(go(sc, 0, self_closer_body, &a, NULL));
    /* This coroutine runs only once the main thread waits in close. */
    stage_future_unref(go(sc, 1, open_gate, a.gate, NULL));
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), 0);
    ck_assert_int_eq(a.close_rc, EDEADLK);
    ck_assert_int_eq(a.deep_rc, EDEADLK);
    ck_assert_int_eq(a.inner_rc, 0);
    ck_assert_int_eq(a.go_rc, 0);
    ck_assert_int_eq(atomic_load(&a.freed), 1); /* the sibling ran */
    stage_scope_free(sc);
    stage_future_unref(a.gate);
}
END_TEST

static void *wait_arg(void *arg)
{
    return (void *)(intptr_t)stage_future_wait(arg, 60.0);
}

/* A task waiting in a scope's close describes itself so. */
typedef struct describer {
    stage_future *gate;
    int close_rc;
} describer;

static void *describer_body(void *arg)
{
    describer *d = arg;
    stage_scope *sc = stage_scope_new(NULL, 0, STAGE_FOREVER);

    if (sc == NULL)
        return NULL;
    stage_scope_go_coro(sc, wait_arg, d->gate, NULL, NULL);
    d->close_rc = stage_scope_close(sc, 60.0);
    stage_scope_free(sc);
    return NULL;
}

START_TEST(test_describe)
{
    describer d = {t_latch(), -1};
    stage_future *task;
    char buf[256];

    ck_assert_int_eq(stage_coro_spawn(NULL, describer_body, &d, NULL, 0,
                                      &task),
                     0);
    /* One batch of main's loop: the task runs until it waits in close. */
    ck_assert_int_eq(stage_yield(), 0);
    ck_assert_int_eq(stage_future_describe(task, buf, sizeof buf), 0);
    ck_assert_msg(strstr(buf, "wait_for=<scope close>") != NULL, "%s", buf);
    t_latch_open(d.gate);
    t_done(task);
    ck_assert_int_eq(d.close_rc, 0);
    stage_future_unref(task);
    stage_future_unref(d.gate);
}
END_TEST

/* ---- Nesting ------------------------------------------------------------ */

/* From a thread: a scope opened while another is open is its child;
 * cancelling the outer cancels the inner's tasks; the outer's tasks run
 * while the inner's close waits. */
/* Opens a latch of its own and drops it. */
static void *open_and_drop(void *arg)
{
    t_latch_open(arg);
    stage_future_unref(arg);
    return NULL;
}

START_TEST(test_nested_thread)
{
    stage_scope *outer = new_scope(NULL, 0, STAGE_FOREVER);
    stage_scope *inner = new_scope(NULL, 0, STAGE_FOREVER);
    stage_future *latch = t_latch(), *fo, *fi;
    t_gated g;

    /* The inner task waits for the outer one: it needs the outer's
     * coroutine to run while the inner close waits. */
    fi = go(inner, 1, wait_arg, latch, NULL);
    fo = go(outer, 1, open_gate, latch, NULL);
    ck_assert_int_eq(stage_scope_close(inner, T_LONG), 0);
    ck_assert_int_eq(stage_future_state(fi), STAGE_DONE);
    stage_scope_free(inner);
    stage_future_unref(fi);
    stage_future_unref(fo);

    /* Cancelling the outer cancels the inner's tasks. */
    inner = new_scope(NULL, 0, STAGE_FOREVER);
    t_gated_init(&g, NULL, 0);
    fi = go(inner, 0, t_gated_body, &g, NULL);
    t_done(g.started);
    ck_assert_int_eq(stage_scope_cancel(outer), 0);
    t_done(fi);
    ck_assert_int_eq(stage_future_state(fi), STAGE_CANCELLED);
    stage_future_unref(fi);
    /* A child opened in a cancelled scope is born cancelled. */
    {
        stage_scope *third = new_scope(NULL, 0, STAGE_FOREVER);

        ck_assert_int_eq(stage_scope_go(third, val_body, NULL, NULL, NULL),
                         ECANCELED);
        ck_assert_int_eq(stage_scope_close(third, T_LONG), 0);
        stage_scope_free(third);
    }
    ck_assert_int_eq(stage_scope_close(inner, T_LONG), 0);
    stage_scope_free(inner);
    ck_assert_int_eq(stage_scope_close(outer, T_LONG), 0);
    stage_scope_free(outer);

    /* Once both closed, a new scope is a root again. */
    outer = new_scope(NULL, 0, STAGE_FOREVER);
    fo = go(outer, 1, open_and_drop, t_latch(), NULL);
    ck_assert_int_eq(stage_scope_close(outer, T_LONG), 0);
    stage_future_unref(fo);
    stage_scope_free(outer);
    stage_future_unref(latch);
    t_gated_fini(&g);
}
END_TEST

/* A task that opens a scope and returns without closing it: the scope is
 * closed for it, its failure goes to the Stage's error handler. */
typedef struct leaver {
    stage *st;
    stage_scope *sc;
    failer fl;
    atomic_int freed;
} leaver;

static void *leaver_body(void *arg)
{
    leaver *a = arg;

    a->sc = stage_scope_new(a->st, 0, STAGE_FOREVER);
    if (a->sc == NULL)
        return NULL;
    stage_scope_go_coro(a->sc, fail_body, &a->fl, NULL, NULL);
    stage_scope_go(a->sc, val_body, &a->freed, t_val_free, NULL);
    return NULL;
}

START_TEST(test_left_open)
{
    stage *st = new_stage();
    t_reports rs;
    stage_scope *outer;
    leaver a;
    t_report *r;

    t_reports_init(&rs);
    ck_assert_int_eq(stage_set_error_handler(st, t_reports_handler, &rs,
                                             NULL),
                     0);
    memset(&a, 0, sizeof a);
    a.st = st;
    a.fl = (failer){"left", EIO, "left open"};
    atomic_init(&a.freed, 0);
    outer = new_scope(st, 0, STAGE_FOREVER);
    stage_future_unref(go(outer, 1, leaver_body, &a, NULL));
    ck_assert_int_eq(stage_scope_close(outer, T_LONG), 0);
    ck_assert_ptr_nonnull(a.sc);
    /* Closed when its opener returned: every task of it has finished. */
    ck_assert_int_eq(stage_scope_close(a.sc, 0), EPIPE);
    ck_assert_int_eq(t_reports_count(&rs), 1);
    r = t_reports_find(&rs, "left");
    ck_assert_ptr_nonnull(r);
    ck_assert_int_eq(r->err, EIO);
    ck_assert_str_eq(r->msg, "left open");
    stage_scope_free(a.sc);
    stage_scope_free(outer);

    /* stage_scope_free of an open scope closes it the same way. */
    outer = new_scope(st, 0, STAGE_FOREVER);
    stage_future_unref(go(outer, 0, fail_body, &a.fl, NULL));
    stage_scope_free(outer);
    ck_assert_int_eq(t_reports_count(&rs), 2);
    ck_assert_int_eq(stage_free(st), 0);
    ck_assert_int_eq(t_reports_count(&rs), 2);
    t_reports_fini(&rs);
}
END_TEST

/* ---- Deadlines ---------------------------------------------------------- */

START_TEST(test_deadline)
{
    stage *st = new_stage();
    stage_scope *outer, *sc;
    t_gated g[3];
    stage_future *f[3];
    double t0, dt;
    int i;

    t0 = t_time();
    sc = new_scope(st, 0, 0.1 * t_tol());
    for (i = 0; i < 2; i++) {
        t_gated_init(&g[i], NULL, 0);
        f[i] = go(sc, i, t_gated_body, &g[i], NULL);
    }
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), ETIMEDOUT);
    dt = t_time() - t0;
    ck_assert_double_ge(dt, 0.1 * t_tol());
    ck_assert_double_lt(dt, 2.0 * t_tol());
    for (i = 0; i < 2; i++) {
        ck_assert_int_eq(stage_future_state(f[i]), STAGE_CANCELLED);
        ck_assert_int_eq(g[i].rc, ECANCELED);
        stage_future_unref(f[i]);
        t_gated_fini(&g[i]);
    }
    stage_scope_free(sc);

    /* Done in time: 0, and close does not wait for the deadline. */
    t0 = t_time();
    sc = new_scope(st, 0, 30.0);
    stage_future_unref(go(sc, 1, val_body, NULL, t_val_free));
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), 0);
    ck_assert_double_lt(t_time() - t0, 5.0 * t_tol());
    stage_scope_free(sc);

    /* An outer deadline cancels an inner scope's tasks. */
    outer = new_scope(st, 0, 0.05 * t_tol());
    sc = new_scope(st, 0, STAGE_FOREVER);
    t_gated_init(&g[2], NULL, 0);
    f[2] = go(sc, 0, t_gated_body, &g[2], NULL);
    ck_assert_int_eq(stage_scope_close(sc, T_LONG), 0);
    ck_assert_int_eq(stage_future_state(f[2]), STAGE_CANCELLED);
    stage_scope_free(sc);
    /* The outer had no unfinished task of its own when it expired. */
    ck_assert_int_eq(stage_scope_close(outer, T_LONG), 0);
    stage_scope_free(outer);
    stage_future_unref(f[2]);
    t_gated_fini(&g[2]);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* ---- Stress ------------------------------------------------------------- */

enum { KIND_FAIL, KIND_QUICK, KIND_BLOCK };

typedef struct stress_task {
    int kind, coro, id;
    stage_future *gate;
    atomic_int *freed, *returned;
    int rc;
} stress_task;

static void *stress_body(void *arg)
{
    stress_task *t = arg;

    if (t->kind == KIND_FAIL)
        return stage_task_fail(EIO, "fail %d", t->id);
    if (t->kind == KIND_BLOCK)
        t->rc = stage_future_wait(t->gate, 60.0);
    atomic_fetch_add(t->returned, 1);
    return t_val_new(t->freed, t->id);
}

static void stress(unsigned int flags)
{
    int n = t_on_valgrind() ? 100 : 1000;
    int cont = (flags & STAGE_SCOPE_CONTINUE) != 0;
    stage *st = new_stage();
    stage_scope *sc = new_scope(st, flags, STAGE_FOREVER);
    stress_task *t = calloc((size_t)n, sizeof *t);
    stage_future **f = calloc((size_t)n, sizeof *f);
    int *seen = calloc((size_t)n, sizeof *seen);
    stage_future *gate = t_latch();
    atomic_int freed, returned;
    unsigned int seed = 12345u + flags;
    int i, started = 0, nfailed = 0, rc, first_err = 0;
    size_t k, nrep;

    ck_assert_ptr_nonnull(t);
    ck_assert_ptr_nonnull(f);
    ck_assert_ptr_nonnull(seen);
    atomic_init(&freed, 0);
    atomic_init(&returned, 0);
    for (i = 0; i < n; i++) {
        int r = rand_r(&seed) % 100;

        t[i].id = i;
        t[i].gate = gate;
        t[i].freed = &freed;
        t[i].returned = &returned;
        t[i].kind = r < 5 ? KIND_FAIL : r < 50 ? KIND_QUICK : KIND_BLOCK;
        /* Blocking tasks are coroutines (the pool has 8 threads). */
        t[i].coro = t[i].kind == KIND_BLOCK || rand_r(&seed) % 2;
        t[i].rc = -1;
        rc = t[i].coro ? stage_scope_go_coro(sc, stress_body, &t[i],
                                             t_val_free, &f[i])
                       : stage_scope_go(sc, stress_body, &t[i], t_val_free,
                                        &f[i]);
        if (cont || rc != ECANCELED)
            ck_assert_int_eq(rc, 0);
        if (rc == 0)
            started++;
        else
            f[i] = NULL;
    }
    if (cont) {
        /* Every failing and quick task ends; no blocking one is touched. */
        for (i = 0; i < n; i++)
            if (t[i].kind != KIND_BLOCK)
                t_done(f[i]);
        for (i = 0; i < n; i++)
            if (t[i].kind == KIND_BLOCK)
                ck_assert_int_eq(stage_future_state(f[i]), STAGE_PENDING);
        t_latch_open(gate);
    }
    rc = stage_scope_close(sc, T_LONG * 3);
    ck_assert_int_ne(rc, 0);

    /* Check the outcome of every task. */
    for (i = 0; i < n; i++) {
        stage_state s;

        if (f[i] == NULL)
            continue;
        s = stage_future_state(f[i]);
        ck_assert_int_ne(s, STAGE_PENDING);
        if (t[i].kind == KIND_FAIL) {
            ck_assert(s == STAGE_FAILED || (!cont && s == STAGE_CANCELLED));
            if (s == STAGE_FAILED)
                nfailed++;
        } else if (t[i].kind == KIND_BLOCK) {
            /* Continue: released by the gate; cancel: never released. */
            ck_assert_int_eq(s, cont ? STAGE_DONE : STAGE_CANCELLED);
        } else {
            ck_assert(s == STAGE_DONE || (!cont && s == STAGE_CANCELLED));
        }
    }
    ck_assert_int_gt(nfailed, 0);
    if (cont)
        ck_assert_int_eq(started, n);

    /* Every failure reported exactly once, the first one returned. */
    nrep = nfailures(sc);
    ck_assert_uint_eq(nrep, (size_t)nfailed);
    for (k = 0; k < nrep; k++) {
        const char *msg;
        int err, id;

        ck_assert_int_eq(stage_scope_failure(sc, k, NULL, &err, &msg), 0);
        ck_assert_int_eq(err, EIO);
        ck_assert_int_eq(sscanf(msg, "fail %d", &id), 1);
        ck_assert(id >= 0 && id < n);
        ck_assert_int_eq(t[id].kind, KIND_FAIL);
        ck_assert_int_eq(stage_future_state(f[id]), STAGE_FAILED);
        ck_assert_int_eq(seen[id], 0);
        seen[id] = 1;
        if (k == 0)
            first_err = err;
    }
    ck_assert_int_eq(rc, first_err);

    /* Every value destroyed once. */
    stage_scope_free(sc);
    for (i = 0; i < n; i++)
        stage_future_unref(f[i]);
    stage_future_unref(gate);
    free(seen);
    free(f);
    free(t);
    ck_assert_int_eq(stage_free(st), 0); /* its pool threads are gone */
    ck_assert_int_eq(atomic_load(&freed), atomic_load(&returned));
}

START_TEST(test_stress_cancel)
{
    stress(0);
}
END_TEST

START_TEST(test_stress_continue)
{
    stress(STAGE_SCOPE_CONTINUE);
}
END_TEST

/* Five nested scopes, one opened in a task of the one before, each with a
 * sleeping task, cancelled from outside: all finished within 100 ms. */
#define DEPTH 5

typedef struct level {
    stage *st;
    int depth;
    struct level *next;
    t_gated sleeper;
    stage_future *sleeper_f;
    stage_future *ready; /* opened by the deepest level */
    int close_rc;
} level;

static void *level_body(void *arg)
{
    level *l = arg;
    stage_scope *sc = stage_scope_new(l->st, 0, STAGE_FOREVER);

    if (sc == NULL)
        return NULL;
    /* Coroutines of this task's loop, and pool threads, alternately. */
    if (l->depth % 2)
        stage_scope_go_coro(sc, t_gated_body, &l->sleeper, NULL,
                            &l->sleeper_f);
    else
        stage_scope_go(sc, t_gated_body, &l->sleeper, NULL, &l->sleeper_f);
    if (l->next) {
        if (l->depth % 2)
            stage_scope_go(sc, level_body, l->next, NULL, NULL);
        else
            stage_scope_go_coro(sc, level_body, l->next, NULL, NULL);
    } else {
        t_latch_open(l->ready);
    }
    l->close_rc = stage_scope_close(sc, STAGE_FOREVER);
    stage_scope_free(sc);
    return NULL;
}

/* One run: build the five levels, cancel them from outside, check every
 * level; returns how long the cancellation took. */
static double nested_once(stage *st)
{
    level lv[DEPTH];
    stage_future *ready = t_latch();
    stage_scope *outer;
    double t0, dt;
    int i;

    memset(lv, 0, sizeof lv);
    for (i = 0; i < DEPTH; i++) {
        lv[i].st = st;
        lv[i].depth = i + 1;
        lv[i].next = i + 1 < DEPTH ? &lv[i + 1] : NULL;
        lv[i].ready = ready;
        lv[i].close_rc = -1;
        t_gated_init(&lv[i].sleeper, NULL, 0);
    }
    /* Level 0 is a scope of the main thread; the rest open in tasks. */
    outer = new_scope(st, 0, STAGE_FOREVER);
    stage_scope_go(outer, level_body, &lv[0], NULL, NULL);
    t_done(ready);
    for (i = 0; i < DEPTH; i++)
        t_done(lv[i].sleeper.started);
    t0 = t_time();
    ck_assert_int_eq(stage_scope_cancel(outer), 0);
    ck_assert_int_eq(stage_scope_close(outer, T_LONG), 0);
    dt = t_time() - t0;
    for (i = 0; i < DEPTH; i++) {
        ck_assert_int_eq(lv[i].close_rc, ECANCELED);
        ck_assert_int_eq(stage_future_state(lv[i].sleeper_f),
                         STAGE_CANCELLED);
        ck_assert_int_eq(lv[i].sleeper.rc, ECANCELED);
        stage_future_unref(lv[i].sleeper_f);
        t_gated_fini(&lv[i].sleeper);
    }
    stage_scope_free(outer);
    stage_future_unref(ready);
    return dt;
}

START_TEST(test_stress_nested)
{
    stage *st = new_stage();
    double dt = 0;
    int run;

    /* Typically a few milliseconds.  A loaded machine can stall any
     * process for a moment: a run that is only slow is tried again (three
     * runs in all), as t/conformance.sh does. */
    for (run = 0; run < 3; run++) {
        dt = nested_once(st);
        if (dt < 0.1 * t_tol())
            break;
    }
    ck_assert_msg(dt < 0.1 * t_tol(), "took %.3f s", dt);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

static Suite *scope_suite(void)
{
    Suite *s = suite_create("scope");
    TCase *tc;

    tc = t_tcase(s, "api", 20);
    tcase_add_test(tc, test_einval);
    tcase_add_test(tc, test_wait_mode);
    tcase_add_test(tc, test_not_yet);
    tcase_add_test(tc, test_where);
    tcase_add_test(tc, test_names);
    tcase_add_test(tc, test_epipe);

    tc = t_tcase(s, "modes", 20);
    tcase_add_test(tc, test_exit_cancel);
    tcase_add_test(tc, test_exit_raise);
    tcase_add_test(tc, test_error_cancel);
    tcase_add_test(tc, test_error_continue);
    tcase_add_test(tc, test_observed);

    tc = t_tcase(s, "close", 20);
    tcase_add_test(tc, test_cancel_from_thread);
    tcase_add_test(tc, test_close_in_tasks);
    tcase_add_test(tc, test_closer_cancelled);
    tcase_add_test(tc, test_self_close);
    tcase_add_test(tc, test_describe);

    tc = t_tcase(s, "nesting", 20);
    tcase_add_test(tc, test_nested_thread);
    tcase_add_test(tc, test_left_open);
    tcase_add_test(tc, test_deadline);

    tc = t_tcase(s, "stress", 60);
    tcase_add_test(tc, test_stress_cancel);
    tcase_add_test(tc, test_stress_continue);
    tcase_add_test(tc, test_stress_nested);
    return s;
}

T_MAIN(scope_suite)
