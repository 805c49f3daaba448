/* SPDX-License-Identifier: MIT */
/*
 * check_emitter.c - event emitters: every error code; listeners on the pool
 * and as coroutines of the Stage's loop, their return values and failures
 * as responses; the order of the responses; the data shared by one emit
 * and destroyed once, after the last listener; emit from threads, from
 * coroutines and from listeners, never waiting; a once-listener under 50
 * concurrent emits; off / off_all / count; close; a closed Stage; a
 * response cancelled before its listener started; every destructor exactly
 * once.
 */
#include "stages.h"

/* ---- A recording listener ------------------------------------------------- */

typedef struct lis {
    atomic_int runs;      /* listener calls */
    atomic_int ud_freed;  /* user_data destructor runs */
    atomic_int res_freed; /* result destructor runs (t_val) */
    intptr_t id;          /* returns t_val(id) when non-zero, else NULL */
    int fail;             /* non-zero: stage_task_fail(fail, ...) */
    stage_future *started; /* opened on entry (may be NULL) */
    stage_future *gate;    /* waited for before returning (may be NULL) */
    int gate_rc;
    /* What the last call saw. */
    char event[32];
    void *data;
    int in_coro;          /* it ran as a coroutine */
    pid_t tid;
    atomic_int *data_freed; /* the data's destructor count, seen on entry */
    int data_freed_seen;
    stage_emitter *reg_em; /* non-NULL: register `reg` on "data" */
    struct lis *reg;
} lis;

static void lis_init(lis *l, intptr_t id)
{
    memset(l, 0, sizeof *l);
    atomic_init(&l->runs, 0);
    atomic_init(&l->ud_freed, 0);
    atomic_init(&l->res_freed, 0);
    l->id = id;
    l->gate_rc = -1;
}

static void lis_ud_free(void *p)
{
    lis *l = p;

    atomic_fetch_add(&l->ud_freed, 1);
}

/* Serialises the recording of concurrent runs of one listener (the test
 * reads what they recorded only after their responses settled). */
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;

static void *listener(const char *event, void *data, void *user_data)
{
    lis *l = user_data;

    pthread_mutex_lock(&rec_lock);
    snprintf(l->event, sizeof l->event, "%s", event);
    l->data = data;
    l->tid = t_gettid();
    l->in_coro = stage_loop_count(stage_loop_current()) > 0;
    if (l->data_freed)
        l->data_freed_seen = atomic_load(l->data_freed);
    pthread_mutex_unlock(&rec_lock);
    if (l->reg_em)
        stage_emitter_on(l->reg_em, "data", listener, l->reg, NULL,
                         t_val_free, 0);
    atomic_fetch_add(&l->runs, 1);
    if (l->started)
        t_latch_open(l->started);
    if (l->gate)
        l->gate_rc = stage_future_wait(l->gate, 60.0 * t_tol());
    if (l->fail)
        return stage_task_fail(l->fail, "listener %d", l->fail);
    return l->id ? t_val_new(&l->res_freed, l->id) : NULL;
}

/* A second function, to tell registrations apart by fn. */
static void *other(const char *event, void *data, void *user_data)
{
    return listener(event, data, user_data);
}

static void on(stage_emitter *em, const char *event, lis *l,
               unsigned int flags)
{
    ck_assert_int_eq(stage_emitter_on(em, event, listener, l, lis_ud_free,
                                      t_val_free, flags),
                     0);
}

static void once(stage_emitter *em, const char *event, lis *l,
                 unsigned int flags)
{
    ck_assert_int_eq(stage_emitter_once(em, event, listener, l, lis_ud_free,
                                        t_val_free, flags),
                     0);
}

static stage *new_stage(const char *name)
{
    stage *st = stage_new(name, 4, 0);

    ck_assert_ptr_nonnull(st);
    return st;
}

static stage_emitter *new_emitter(stage *st)
{
    stage_emitter *em = stage_emitter_new(st);

    ck_assert_ptr_nonnull(em);
    return em;
}

/* Emit and collect: the responses must number `want`. */
static stage_future **emit(stage_emitter *em, const char *event, void *data,
                           stage_destroy_fn destroy, size_t want)
{
    stage_future **r = NULL;
    size_t n = 99;

    ck_assert_int_eq(stage_emitter_emit(em, event, data, destroy, &r, &n), 0);
    ck_assert_uint_eq(n, want);
    if (want == 0)
        ck_assert_ptr_null(r);
    return r;
}

/* Wait for every response and drop it (and the array). */
static void drop(stage_future **r, size_t n)
{
    size_t i;

    for (i = 0; i < n; i++) {
        t_done(r[i]);
        stage_future_unref(r[i]);
    }
    free(r);
}

/* The response resolved to t_val(id). */
static void assert_value(stage_future *f, intptr_t id)
{
    void *v = NULL;

    ck_assert_int_eq(stage_future_get(f, T_LONG, &v), 0);
    ck_assert_ptr_nonnull(v);
    ck_assert_int_eq(((t_val *)v)->id, id);
}

/* ---- API ------------------------------------------------------------------- */

START_TEST(test_einval)
{
    stage *st = new_stage("einval");
    stage_emitter *em = new_emitter(st);
    stage_future **r = (void *)&r;
    size_t n = 7;
    lis l;

    lis_init(&l, 0);
    ck_assert_ptr_null(stage_emitter_ref(NULL));
    stage_emitter_unref(NULL);
    ck_assert_int_eq(stage_emitter_on(NULL, "e", listener, &l, NULL, NULL, 0),
                     EINVAL);
    ck_assert_int_eq(stage_emitter_on(em, NULL, listener, &l, NULL, NULL, 0),
                     EINVAL);
    ck_assert_int_eq(stage_emitter_on(em, "e", NULL, &l, NULL, NULL, 0),
                     EINVAL);
    ck_assert_int_eq(stage_emitter_on(em, "e", listener, &l, NULL, NULL, 2),
                     EINVAL);
    ck_assert_int_eq(
        stage_emitter_once(NULL, "e", listener, &l, NULL, NULL, 0), EINVAL);
    ck_assert_int_eq(stage_emitter_once(em, NULL, listener, &l, NULL, NULL, 0),
                     EINVAL);
    ck_assert_int_eq(stage_emitter_once(em, "e", NULL, &l, NULL, NULL, 0),
                     EINVAL);
    ck_assert_int_eq(
        stage_emitter_once(em, "e", listener, &l, NULL, NULL, 0x10), EINVAL);
    ck_assert_int_eq(stage_emitter_off(NULL, "e", listener, &l), EINVAL);
    ck_assert_int_eq(stage_emitter_off(em, NULL, listener, &l), EINVAL);
    ck_assert_int_eq(stage_emitter_off(em, "e", NULL, &l), EINVAL);
    ck_assert_int_eq(stage_emitter_off_all(NULL, "e"), EINVAL);
    ck_assert_uint_eq(stage_emitter_count(NULL, "e"), 0);
    ck_assert_uint_eq(stage_emitter_count(em, NULL), 0);
    ck_assert_int_eq(stage_emitter_emit(NULL, "e", NULL, NULL, &r, &n),
                     EINVAL);
    ck_assert_int_eq(stage_emitter_emit(em, NULL, NULL, NULL, &r, &n), EINVAL);
    ck_assert_int_eq(stage_emitter_emit(em, "e", NULL, NULL, &r, NULL),
                     EINVAL);
    ck_assert_ptr_eq(r, (void *)&r); /* untouched */
    ck_assert_uint_eq(n, 7);
    ck_assert_int_eq(stage_emitter_close(NULL), EINVAL);
    /* Nothing was registered: no destructor ran, nothing counted. */
    ck_assert_uint_eq(stage_emitter_count(em, "e"), 0);
    ck_assert_int_eq(atomic_load(&l.ud_freed), 0);

    ck_assert_ptr_eq(stage_emitter_ref(em), em);
    stage_emitter_unref(em);
    stage_emitter_unref(em);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* A pool listener and a coroutine listener: each gets the event, the data
 * and its user_data, returns a value (its response's), on the right kind of
 * thread; the data goes once, after both returned. */
START_TEST(test_pool_and_coro)
{
    stage *st = new_stage("em");
    stage_emitter *em = new_emitter(st);
    atomic_int dfreed;
    lis a, b;
    stage_future **r;
    char comm[32];

    atomic_init(&dfreed, 0);
    lis_init(&a, 1);
    lis_init(&b, 2);
    on(em, "data", &a, 0);
    on(em, "data", &b, STAGE_LISTENER_CORO);
    ck_assert_uint_eq(stage_emitter_count(em, "data"), 2);
    r = emit(em, "data", t_val_new(&dfreed, 42), t_val_free, 2);
    assert_value(r[0], 1);
    assert_value(r[1], 2);
    /* Destroyed at the end of the last listener, before its response
     * settled. */
    ck_assert_int_eq(atomic_load(&dfreed), 1);
    ck_assert_str_eq(a.event, "data");
    ck_assert_str_eq(b.event, "data");
    ck_assert_ptr_eq(a.data, b.data);
    ck_assert_int_eq(a.in_coro, 0);
    ck_assert_int_eq(b.in_coro, 1);
    t_comm(b.tid, comm, sizeof comm);
    ck_assert_str_eq(comm, "em-loop");
    ck_assert_int_ne(a.tid, b.tid);
    ck_assert_int_ne(a.tid, t_gettid());
    drop(r, 2);
    /* The values went with the responses (the tasks' own references may
     * go a moment after they settled); the registrations stay. */
    ck_assert_int_eq(t_wait_count(&a.res_freed, 1, 10.0), 1);
    ck_assert_int_eq(t_wait_count(&b.res_freed, 1, 10.0), 1);
    ck_assert_int_eq(atomic_load(&a.ud_freed), 0);
    stage_emitter_unref(em);
    ck_assert_int_eq(atomic_load(&a.ud_freed), 1);
    ck_assert_int_eq(atomic_load(&b.ud_freed), 1);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* Responses: regular listeners first, then once-listeners, each in
 * registration order; once-listeners only the first time. */
START_TEST(test_order)
{
    stage *st = new_stage("order");
    stage_emitter *em = new_emitter(st);
    lis l[6];
    stage_future **r;
    int i;

    for (i = 0; i < 6; i++)
        lis_init(&l[i], i + 1);
    once(em, "e", &l[0], 0);
    on(em, "e", &l[1], STAGE_LISTENER_CORO);
    once(em, "e", &l[2], STAGE_LISTENER_CORO);
    on(em, "e", &l[3], 0);
    on(em, "e", &l[4], STAGE_LISTENER_CORO);
    once(em, "e", &l[5], 0);
    ck_assert_uint_eq(stage_emitter_count(em, "e"), 6);
    r = emit(em, "e", NULL, NULL, 6);
    ck_assert_uint_eq(stage_emitter_count(em, "e"), 3);
    assert_value(r[0], 2);
    assert_value(r[1], 4);
    assert_value(r[2], 5);
    assert_value(r[3], 1);
    assert_value(r[4], 3);
    assert_value(r[5], 6);
    drop(r, 6);
    /* The once-listeners' registrations were released after their run. */
    ck_assert_int_eq(atomic_load(&l[0].ud_freed), 1);
    ck_assert_int_eq(atomic_load(&l[2].ud_freed), 1);
    ck_assert_int_eq(atomic_load(&l[5].ud_freed), 1);
    ck_assert_int_eq(atomic_load(&l[1].ud_freed), 0);

    r = emit(em, "e", NULL, NULL, 3);
    assert_value(r[0], 2);
    assert_value(r[1], 4);
    assert_value(r[2], 5);
    drop(r, 3);
    for (i = 0; i < 6; i++)
        ck_assert_int_eq(atomic_load(&l[i].runs),
                         i == 1 || i == 3 || i == 4 ? 2 : 1);
    stage_emitter_unref(em);
    for (i = 0; i < 6; i++)
        ck_assert_int_eq(atomic_load(&l[i].ud_freed), 1);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* A failing listener: its response fails with its error and message. */
START_TEST(test_failure)
{
    stage *st = new_stage("fail");
    stage_emitter *em = new_emitter(st);
    lis a, b;
    stage_future **r;
    int coro;

    for (coro = 0; coro < 2; coro++) {
        lis_init(&a, 1);
        lis_init(&b, 0);
        b.fail = EIO;
        on(em, "x", &a, coro ? STAGE_LISTENER_CORO : 0);
        on(em, "x", &b, coro ? STAGE_LISTENER_CORO : 0);
        r = emit(em, "x", NULL, NULL, 2);
        assert_value(r[0], 1);
        ck_assert_int_eq(stage_future_get(r[1], T_LONG, NULL), EIO);
        ck_assert_str_eq(stage_future_message(r[1]), "listener 5");
        drop(r, 2);
        ck_assert_int_eq(stage_emitter_off_all(em, NULL), 0);
        ck_assert_int_eq(atomic_load(&b.ud_freed), 1);
    }
    stage_emitter_unref(em);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* No listeners: the data is destroyed at once, there are no responses.
 * Without a responses array: count still says how many were started, and
 * the data goes after the last one. */
START_TEST(test_no_listeners_no_responses)
{
    stage *st = new_stage("none");
    stage_emitter *em = new_emitter(st);
    atomic_int dfreed;
    stage_future **r = (void *)&r;
    size_t n = 5;
    lis a, b;

    atomic_init(&dfreed, 0);
    ck_assert_int_eq(stage_emitter_emit(em, "nobody", t_val_new(&dfreed, 1),
                                        t_val_free, &r, &n),
                     0);
    ck_assert_ptr_null(r);
    ck_assert_uint_eq(n, 0);
    ck_assert_int_eq(atomic_load(&dfreed), 1);
    ck_assert_int_eq(
        stage_emitter_emit(em, "nobody", NULL, NULL, NULL, NULL), 0);

    lis_init(&a, 1);
    lis_init(&b, 2);
    a.data_freed = b.data_freed = &dfreed;
    a.started = t_latch();
    b.started = t_latch();
    on(em, "e", &a, 0);
    on(em, "e", &b, STAGE_LISTENER_CORO);
    ck_assert_int_eq(stage_emitter_emit(em, "e", t_val_new(&dfreed, 2),
                                        t_val_free, NULL, &n),
                     0);
    ck_assert_uint_eq(n, 2);
    t_done(a.started);
    t_done(b.started);
    ck_assert_int_eq(t_wait_count(&dfreed, 2, 10.0), 2);
    ck_assert_int_eq(a.data_freed_seen, 1);
    ck_assert_int_eq(b.data_freed_seen, 1);
    ck_assert_int_eq(
        stage_emitter_emit(em, "e", NULL, NULL, NULL, NULL), 0);
    stage_emitter_unref(em);
    ck_assert_int_eq(stage_free(st), 0); /* waits for the listeners */
    ck_assert_int_eq(atomic_load(&a.runs), 2);
    ck_assert_int_eq(atomic_load(&b.runs), 2);
    /* Nobody took the values: they went with the responses. */
    ck_assert_int_eq(atomic_load(&a.res_freed), 2);
    ck_assert_int_eq(atomic_load(&b.res_freed), 2);
    ck_assert_int_eq(atomic_load(&a.ud_freed), 1);
    stage_future_unref(a.started);
    stage_future_unref(b.started);
}
END_TEST

/* emit never waits for a listener: with every listener blocked, it
 * returns pending responses; the data lives until the last one returned. */
START_TEST(test_no_wait)
{
    stage *st = new_stage("nowait");
    stage_emitter *em = new_emitter(st);
    stage_future *gate = t_latch();
    atomic_int dfreed;
    stage_future **r;
    lis a, b;

    atomic_init(&dfreed, 0);
    lis_init(&a, 1);
    lis_init(&b, 2);
    a.gate = b.gate = gate;
    a.started = t_latch();
    b.started = t_latch();
    on(em, "e", &a, 0);
    on(em, "e", &b, STAGE_LISTENER_CORO);
    r = emit(em, "e", t_val_new(&dfreed, 1), t_val_free, 2);
    t_done(a.started);
    t_done(b.started);
    ck_assert_int_eq(stage_future_state(r[0]), STAGE_PENDING);
    ck_assert_int_eq(stage_future_state(r[1]), STAGE_PENDING);
    ck_assert_int_eq(atomic_load(&dfreed), 0);
    t_latch_open(gate);
    assert_value(r[0], 1);
    assert_value(r[1], 2);
    ck_assert_int_eq(atomic_load(&dfreed), 1);
    ck_assert_int_eq(a.gate_rc, 0);
    drop(r, 2);
    stage_emitter_unref(em);
    ck_assert_int_eq(stage_free(st), 0);
    stage_future_unref(gate);
    stage_future_unref(a.started);
    stage_future_unref(b.started);
}
END_TEST

/* Emitting from a thread task, from a coroutine of main's loop, from a
 * coroutine of the Stage's own loop (a listener) and from a pool thread
 * (a listener): the same responses, and the emitting task never blocks on
 * a listener that waits for the emitter's caller. */
typedef struct emitter_call {
    stage_emitter *em;
    stage_future *gate; /* the listener waits for it */
    int rc;
    size_t n;
    stage_future **r;
} emitter_call;

static void *emit_body(void *arg)
{
    emitter_call *c = arg;

    c->rc = stage_emitter_emit(c->em, "e", NULL, NULL, &c->r, &c->n);
    /* Emit returned although the listener still waits for our gate. */
    if (c->rc == 0 && c->n == 1 &&
        stage_future_state(c->r[0]) == STAGE_PENDING)
        t_latch_open(c->gate);
    return NULL;
}

static void *emitting_listener(const char *event, void *data, void *ud)
{
    emitter_call *c = ud;

    (void)event;
    (void)data;
    emit_body(c);
    return NULL;
}

START_TEST(test_emit_anywhere)
{
    stage *st = new_stage("anywhere");
    stage_emitter *em = new_emitter(st);
    stage_future *f;
    lis l;
    int where;

    lis_init(&l, 9);
    on(em, "e", &l, STAGE_LISTENER_CORO);
    for (where = 0; where < 4; where++) {
        emitter_call c = {em, t_latch(), -1, 0, NULL};
        stage_emitter *outer = NULL;
        stage_future **r = NULL;

        l.gate = c.gate;
        if (where == 0) {
            ck_assert_int_eq(stage_thread_spawn(emit_body, &c, NULL, &f), 0);
            t_done(f);
        } else if (where == 1) {
            ck_assert_int_eq(
                stage_coro_spawn(NULL, emit_body, &c, NULL, 0, &f), 0);
            t_done(f);
        } else {
            /* From a listener of another emitter on the same Stage. */
            outer = new_emitter(st);
            ck_assert_int_eq(stage_emitter_on(outer, "go", emitting_listener,
                                              &c, NULL, NULL,
                                              where == 2 ? STAGE_LISTENER_CORO
                                                         : 0),
                             0);
            r = emit(outer, "go", NULL, NULL, 1);
            f = stage_future_ref(r[0]);
            drop(r, 1);
        }
        ck_assert_int_eq(c.rc, 0);
        ck_assert_uint_eq(c.n, 1);
        assert_value(c.r[0], 9);
        ck_assert_int_eq(stage_future_state(c.gate), STAGE_DONE);
        drop(c.r, 1);
        stage_future_unref(f);
        stage_future_unref(c.gate);
        stage_emitter_unref(outer);
    }
    ck_assert_int_eq(atomic_load(&l.runs), 4);
    stage_emitter_unref(em);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* ---- Concurrency ----------------------------------------------------------- */

#define NEMIT 50

typedef struct racer {
    stage_emitter *em;
    pthread_barrier_t *barrier;
    atomic_int *dfreed;
    int rc;
    size_t n;
    stage_future **r;
} racer;

static void *race_body(void *arg)
{
    racer *c = arg;

    pthread_barrier_wait(c->barrier);
    c->rc = stage_emitter_emit(c->em, "e", t_val_new(c->dfreed, 0),
                               t_val_free, &c->r, &c->n);
    return NULL;
}

/* 50 emits at once from 50 threads: the once-listeners (one on the pool,
 * one a coroutine) run exactly once each, in exactly one emit; the regular
 * listener in every emit; each emit's data goes once. */
START_TEST(test_once_concurrent)
{
    stage *st = new_stage("race");
    stage_emitter *em = new_emitter(st);
    pthread_barrier_t barrier;
    racer c[NEMIT];
    pthread_t th[NEMIT];
    atomic_int dfreed;
    lis reg, o1, o2;
    int i, with_once = 0;
    size_t total = 0;

    atomic_init(&dfreed, 0);
    lis_init(&reg, 1);
    lis_init(&o1, 2);
    lis_init(&o2, 3);
    on(em, "e", &reg, 0);
    once(em, "e", &o1, 0);
    once(em, "e", &o2, STAGE_LISTENER_CORO);
    ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, NEMIT), 0);
    for (i = 0; i < NEMIT; i++) {
        c[i] = (racer){em, &barrier, &dfreed, -1, 0, NULL};
        th[i] = t_thread_start(race_body, &c[i]);
    }
    for (i = 0; i < NEMIT; i++)
        t_thread_join(th[i]);
    for (i = 0; i < NEMIT; i++) {
        ck_assert_int_eq(c[i].rc, 0);
        ck_assert(c[i].n == 1 || c[i].n == 3);
        assert_value(c[i].r[0], 1);
        if (c[i].n == 3) {
            with_once++;
            assert_value(c[i].r[1], 2);
            assert_value(c[i].r[2], 3);
        }
        total += c[i].n;
        drop(c[i].r, c[i].n);
    }
    ck_assert_int_eq(with_once, 1);
    ck_assert_uint_eq(total, NEMIT + 2);
    ck_assert_int_eq(atomic_load(&reg.runs), NEMIT);
    ck_assert_int_eq(atomic_load(&o1.runs), 1);
    ck_assert_int_eq(atomic_load(&o2.runs), 1);
    ck_assert_int_eq(atomic_load(&o1.ud_freed), 1);
    ck_assert_int_eq(atomic_load(&o2.ud_freed), 1);
    ck_assert_int_eq(atomic_load(&dfreed), NEMIT);
    ck_assert_uint_eq(stage_emitter_count(em, "e"), 1);
    pthread_barrier_destroy(&barrier);
    stage_emitter_unref(em);
    ck_assert_int_eq(atomic_load(&reg.ud_freed), 1);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* Registrations, removals and emits racing: a registration is in an emit
 * or not, never half; each once-listener runs once; every registration is
 * released once. */
typedef struct churn {
    stage_emitter *em;
    lis *once_l, *reg_l;
    int rounds;
    size_t seen; /* listeners in the emits */
} churn;

static void *churn_on(void *arg)
{
    churn *c = arg;
    int i;

    for (i = 0; i < c->rounds; i++) {
        stage_emitter_once(c->em, "e", listener, c->once_l, lis_ud_free,
                           NULL, i % 2 ? STAGE_LISTENER_CORO : 0);
        stage_emitter_on(c->em, "e", other, c->reg_l, lis_ud_free, NULL, 0);
        stage_emitter_off(c->em, "e", other, c->reg_l);
    }
    return NULL;
}

static void *churn_emit(void *arg)
{
    churn *c = arg;
    int i;

    for (i = 0; i < c->rounds; i++) {
        size_t n = 0;

        stage_emitter_emit(c->em, "e", NULL, NULL, NULL, &n);
        c->seen += n;
    }
    return NULL;
}

START_TEST(test_churn)
{
    stage *st = new_stage("churn");
    stage_emitter *em = new_emitter(st);
    int rounds = t_on_valgrind() ? 50 : 500;
    lis o, r;
    churn a, b;
    pthread_t ta, tb;
    size_t n = 0;

    lis_init(&o, 0);
    lis_init(&r, 0);
    a = (churn){em, &o, &r, rounds, 0};
    b = a;
    ta = t_thread_start(churn_on, &a);
    tb = t_thread_start(churn_emit, &b);
    t_thread_join(ta);
    t_thread_join(tb);
    /* The once-listeners left are taken by this last emit. */
    ck_assert_int_eq(stage_emitter_emit(em, "e", NULL, NULL, NULL, &n), 0);
    ck_assert_uint_eq(stage_emitter_count(em, "e"), 0);
    stage_emitter_unref(em);
    ck_assert_int_eq(stage_free(st), 0); /* every listener returned */
    ck_assert_int_eq(atomic_load(&o.runs), rounds);
    ck_assert_int_eq(atomic_load(&o.runs) + atomic_load(&r.runs),
                     (int)(b.seen + n));
    ck_assert_int_eq(atomic_load(&o.ud_freed), rounds);
    ck_assert_int_eq(atomic_load(&r.ud_freed), rounds);
}
END_TEST

/* ---- off / off_all / count -------------------------------------------------- */

START_TEST(test_off)
{
    stage *st = new_stage("off");
    stage_emitter *em = new_emitter(st);
    lis u1, u2;
    stage_future **r;

    lis_init(&u1, 1);
    lis_init(&u2, 2);
    ck_assert_uint_eq(stage_emitter_count(em, "e"), 0);
    ck_assert_int_eq(stage_emitter_off(em, "e", listener, &u1), ENOENT);
    on(em, "e", &u1, 0);
    on(em, "e", &u2, 0);
    ck_assert_int_eq(stage_emitter_on(em, "e", other, &u1, lis_ud_free,
                                      t_val_free, 0),
                     0);
    once(em, "e", &u1, 0);
    on(em, "f", &u1, 0);
    ck_assert_uint_eq(stage_emitter_count(em, "e"), 4);
    ck_assert_uint_eq(stage_emitter_count(em, "f"), 1);
    ck_assert_uint_eq(stage_emitter_count(em, "g"), 0);

    /* (listener, &u1): the latest is the once-listener. */
    ck_assert_int_eq(stage_emitter_off(em, "e", listener, &u1), 0);
    ck_assert_int_eq(atomic_load(&u1.ud_freed), 1);
    ck_assert_uint_eq(stage_emitter_count(em, "e"), 3);
    r = emit(em, "e", NULL, NULL, 3);
    assert_value(r[0], 1);
    assert_value(r[1], 2);
    assert_value(r[2], 1); /* other(&u1) */
    drop(r, 3);
    /* Then the regular one; then none is left: ENOENT. */
    ck_assert_int_eq(stage_emitter_off(em, "e", listener, &u1), 0);
    ck_assert_int_eq(stage_emitter_off(em, "e", listener, &u1), ENOENT);
    ck_assert_int_eq(stage_emitter_off(em, "e", listener, &u2 + 1), ENOENT);
    ck_assert_int_eq(stage_emitter_off(em, "g", listener, &u1), ENOENT);
    ck_assert_int_eq(atomic_load(&u1.ud_freed), 2);
    ck_assert_uint_eq(stage_emitter_count(em, "e"), 2);

    ck_assert_int_eq(stage_emitter_off_all(em, "e"), 0);
    ck_assert_uint_eq(stage_emitter_count(em, "e"), 0);
    ck_assert_int_eq(atomic_load(&u1.ud_freed), 3);
    ck_assert_int_eq(atomic_load(&u2.ud_freed), 1);
    ck_assert_int_eq(stage_emitter_off_all(em, "e"), 0);
    ck_assert_int_eq(stage_emitter_off_all(em, "nothing"), 0);
    ck_assert_uint_eq(stage_emitter_count(em, "f"), 1);
    r = emit(em, "e", NULL, NULL, 0);

    on(em, "g", &u2, 0);
    ck_assert_int_eq(stage_emitter_off_all(em, NULL), 0);
    ck_assert_uint_eq(stage_emitter_count(em, "f"), 0);
    ck_assert_uint_eq(stage_emitter_count(em, "g"), 0);
    ck_assert_int_eq(atomic_load(&u1.ud_freed), 4);
    ck_assert_int_eq(atomic_load(&u2.ud_freed), 2);
    /* Still open: registering works again. */
    on(em, "f", &u2, 0);
    stage_emitter_unref(em);
    ck_assert_int_eq(atomic_load(&u2.ud_freed), 3);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* Removing a listener while it runs: it finishes; its user_data goes only
 * then.  A listener registered during an emit is not part of it. */
START_TEST(test_off_while_running)
{
    stage *st = new_stage("offrun");
    stage_emitter *em = new_emitter(st);
    stage_future *gate = t_latch();
    stage_future **r;
    lis a, late;

    lis_init(&a, 1);
    lis_init(&late, 2);
    a.gate = gate;
    a.started = t_latch();
    a.reg_em = em; /* registers `late` on "data" as it runs */
    a.reg = &late;
    on(em, "data", &a, STAGE_LISTENER_CORO);
    r = emit(em, "data", NULL, NULL, 1);
    t_done(a.started);
    ck_assert_uint_eq(stage_emitter_count(em, "data"), 2);
    ck_assert_int_eq(stage_emitter_off(em, "data", listener, &a), 0);
    ck_assert_int_eq(atomic_load(&a.ud_freed), 0); /* still running */
    t_latch_open(gate);
    assert_value(r[0], 1);
    ck_assert_int_eq(t_wait_count(&a.ud_freed, 1, 10.0), 1);
    drop(r, 1);
    ck_assert_int_eq(atomic_load(&late.runs), 0);
    a.reg_em = NULL;
    r = emit(em, "data", NULL, NULL, 1);
    assert_value(r[0], 2);
    drop(r, 1);
    stage_emitter_unref(em);
    ck_assert_int_eq(stage_free(st), 0);
    stage_future_unref(gate);
    stage_future_unref(a.started);
}
END_TEST

/* ---- Close and the Stage ------------------------------------------------------ */

START_TEST(test_close)
{
    stage *st = new_stage("close");
    stage_emitter *em = new_emitter(st);
    stage_future *gate = t_latch();
    stage_future **r, **r2 = (void *)&r2;
    atomic_int dfreed;
    size_t n = 3;
    t_val *d;
    lis a, b, c;

    atomic_init(&dfreed, 0);
    lis_init(&a, 1);
    lis_init(&b, 2);
    lis_init(&c, 3);
    a.gate = gate;
    a.started = t_latch();
    on(em, "e", &a, 0);
    once(em, "e", &b, 0);
    on(em, "f", &c, STAGE_LISTENER_CORO);
    r = emit(em, "e", NULL, NULL, 2);
    t_done(a.started);
    ck_assert_int_eq(stage_emitter_close(em), 0);
    /* c went at once; a when its call ends; b with its call. */
    ck_assert_int_eq(atomic_load(&c.ud_freed), 1);
    ck_assert_int_eq(atomic_load(&a.ud_freed), 0);
    ck_assert_uint_eq(stage_emitter_count(em, "e"), 0);
    ck_assert_uint_eq(stage_emitter_count(em, "f"), 0);
    ck_assert_int_eq(stage_emitter_on(em, "e", listener, &c, lis_ud_free,
                                      NULL, 0),
                     EPIPE);
    ck_assert_int_eq(stage_emitter_once(em, "e", listener, &c, lis_ud_free,
                                        NULL, 0),
                     EPIPE);
    d = t_val_new(&dfreed, 1);
    ck_assert_int_eq(stage_emitter_emit(em, "e", d, t_val_free, &r2, &n),
                     EPIPE);
    /* A failed emit takes nothing. */
    ck_assert_int_eq(atomic_load(&dfreed), 0);
    t_val_free(d);
    ck_assert_ptr_eq(r2, (void *)&r2);
    ck_assert_uint_eq(n, 3);
    ck_assert_int_eq(stage_emitter_off(em, "e", listener, &a), ENOENT);
    ck_assert_int_eq(stage_emitter_off_all(em, NULL), 0);
    ck_assert_int_eq(stage_emitter_close(em), 0);
    ck_assert_int_eq(atomic_load(&c.ud_freed), 1);
    t_latch_open(gate);
    assert_value(r[0], 1);
    assert_value(r[1], 2);
    drop(r, 2);
    ck_assert_int_eq(t_wait_count(&a.ud_freed, 1, 10.0), 1);
    ck_assert_int_eq(t_wait_count(&b.ud_freed, 1, 10.0), 1);
    stage_emitter_unref(em);
    ck_assert_int_eq(atomic_load(&a.ud_freed), 1);
    ck_assert_int_eq(atomic_load(&b.ud_freed), 1);
    ck_assert_int_eq(atomic_load(&c.ud_freed), 1);
    ck_assert_int_eq(stage_free(st), 0);
    stage_future_unref(gate);
    stage_future_unref(a.started);
}
END_TEST

/* The emitter's Stage closed: listeners cannot start; their responses fail
 * with EPIPE, and without responses the failure goes to the Stage's error
 * handler.  The data and the once-registration are consumed all the
 * same.  The emitter keeps the Stage's memory, not the Stage. */
START_TEST(test_stage_closed)
{
    stage *st = new_stage("gone");
    stage_emitter *em = new_emitter(st);
    t_reports rs;
    atomic_int dfreed;
    stage_future **r;
    lis a, b;

    t_reports_init(&rs);
    ck_assert_int_eq(
        stage_set_error_handler(st, t_reports_handler, &rs, NULL), 0);
    atomic_init(&dfreed, 0);
    lis_init(&a, 1);
    lis_init(&b, 2);
    on(em, "e", &a, 0);
    once(em, "e", &b, STAGE_LISTENER_CORO);
    ck_assert_int_eq(stage_close(st, T_LONG), 0);
    r = emit(em, "e", t_val_new(&dfreed, 1), t_val_free, 2);
    ck_assert_int_eq(stage_future_get(r[0], 0, NULL), EPIPE);
    ck_assert_int_eq(stage_future_get(r[1], 0, NULL), EPIPE);
    ck_assert_str_eq(stage_future_name(r[0]), "e");
    ck_assert_int_eq(atomic_load(&dfreed), 1);
    ck_assert_int_eq(atomic_load(&b.ud_freed), 1);
    drop(r, 2);
    ck_assert_int_eq(t_reports_count(&rs), 0);
    ck_assert_int_eq(stage_emitter_emit(em, "e", t_val_new(&dfreed, 2),
                                        t_val_free, NULL, NULL),
                     0);
    ck_assert_int_eq(atomic_load(&dfreed), 2);
    ck_assert_int_eq(t_reports_count(&rs), 1);
    ck_assert_int_eq(rs.r[0].err, EPIPE);
    ck_assert_str_eq(rs.r[0].task, "e");
    ck_assert_int_eq(atomic_load(&a.runs), 0);
    ck_assert_int_eq(stage_free(st), 0);
    /* After stage_free too (the default handler prints: capture it). */
    {
        t_capture cap;
        char buf[512];

        t_capture_start(&cap);
        ck_assert_int_eq(
            stage_emitter_emit(em, "e", NULL, NULL, NULL, NULL), 0);
        t_capture_end(&cap, buf, sizeof buf);
        t_assert_has(buf, "could not be started");
    }
    stage_emitter_unref(em);
    ck_assert_int_eq(atomic_load(&a.ud_freed), 1);
    t_reports_fini(&rs);
}
END_TEST

/* A response cancelled before its listener started: the listener never
 * runs, yet the data and its registration are released. */
START_TEST(test_cancel_before_start)
{
    stage *st = stage_new("one", 1, 0);
    stage_emitter *em = new_emitter(st);
    stage_future *gate = t_latch(), *busy;
    t_gated g;
    atomic_int dfreed;
    stage_future **r;
    lis a;

    ck_assert_ptr_nonnull(st);
    atomic_init(&dfreed, 0);
    t_gated_init(&g, gate, 0);
    /* The only worker is busy until the gate opens. */
    ck_assert_int_eq(stage_go(st, t_gated_body, &g, NULL, &busy), 0);
    t_done(g.started);
    lis_init(&a, 1);
    once(em, "e", &a, 0);
    r = emit(em, "e", t_val_new(&dfreed, 1), t_val_free, 1);
    ck_assert_int_eq(stage_future_cancel(r[0]), 0);
    t_latch_open(gate);
    t_done(r[0]);
    ck_assert_int_eq(stage_future_state(r[0]), STAGE_CANCELLED);
    ck_assert_int_eq(t_wait_count(&dfreed, 1, 10.0), 1);
    ck_assert_int_eq(t_wait_count(&a.ud_freed, 1, 10.0), 1);
    ck_assert_int_eq(atomic_load(&a.runs), 0);
    drop(r, 1);
    t_done(busy);
    stage_future_unref(busy);
    stage_emitter_unref(em);
    ck_assert_int_eq(stage_free(st), 0);
    ck_assert_int_eq(atomic_load(&dfreed), 1);
    ck_assert_int_eq(atomic_load(&a.ud_freed), 1);
    t_gated_fini(&g);
    stage_future_unref(gate);
}
END_TEST

/* st NULL: the default Stage; the emitter outlives nothing it needs. */
START_TEST(test_default_stage)
{
    stage_emitter *em = stage_emitter_new(NULL);
    stage_future **r;
    char comm[32];
    lis a;

    ck_assert_ptr_nonnull(em);
    lis_init(&a, 5);
    on(em, "e", &a, 0);
    r = emit(em, "e", NULL, NULL, 1);
    assert_value(r[0], 5);
    drop(r, 1);
    t_comm(a.tid, comm, sizeof comm);
    ck_assert_msg(strncmp(comm, "stage-", 6) == 0, "ran on \"%s\"", comm);
    stage_emitter_unref(em);
    ck_assert_int_eq(atomic_load(&a.ud_freed), 1);
}
END_TEST

static Suite *emitter_suite(void)
{
    Suite *s = suite_create("emitter");
    TCase *tc;

    tc = t_tcase(s, "api", 10);
    tcase_add_test(tc, test_einval);
    tcase_add_test(tc, test_pool_and_coro);
    tcase_add_test(tc, test_order);
    tcase_add_test(tc, test_failure);
    tcase_add_test(tc, test_no_listeners_no_responses);
    tcase_add_test(tc, test_no_wait);
    tcase_add_test(tc, test_emit_anywhere);

    tc = t_tcase(s, "concurrency", 30);
    tcase_add_test(tc, test_once_concurrent);
    tcase_add_test(tc, test_churn);

    tc = t_tcase(s, "off", 10);
    tcase_add_test(tc, test_off);
    tcase_add_test(tc, test_off_while_running);

    tc = t_tcase(s, "close", 10);
    tcase_add_test(tc, test_close);
    tcase_add_test(tc, test_stage_closed);
    tcase_add_test(tc, test_cancel_before_start);

    /* Under valgrind the teardown waits for the default Stage's idle
     * worker to leave (its idle timeout is 10 s). */
    tc = t_tcase(s, "default", 30);
    tcase_add_test(tc, test_default_stage);
    return s;
}

T_MAIN(emitter_suite)
