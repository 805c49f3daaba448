/* SPDX-License-Identifier: MIT */
/*
 * check_func.c - stage functions (doc-spec-stage.txt "Stage functions"):
 * start once, wait any number of times from anywhere (also before anyone
 * started), reset, the seed's "First, First, Second" and its cross-Stage
 * handler, concurrent first starts, EBUSY/ETIMEDOUT/ECANCELED/EPIPE, the
 * run's result (borrowed; destroyed once at reset or at the last unref),
 * where each kind of function runs, and every EINVAL.
 */
#include "stages.h"

/* ---- Bodies ------------------------------------------------------------- */

/* A result that counts its destructor runs. */
typedef struct said {
    atomic_int *freed;
    char text[96];
} said;

static void said_free(void *p)
{
    said *s = p;

    atomic_fetch_add(s->freed, 1);
    free(s);
}

/* What a function does, for all its runs. */
typedef struct speaker {
    const char *prefix;  /* result: "<prefix><sentence>" */
    atomic_int runs;
    atomic_int freed;    /* destructor runs of results */
    stage_future *gate;  /* waited for first, when set */
    double nap;          /* then sleeps (plain sleep, or stage_sleep) */
    int fail;            /* fails with this error */
    int self_cancel;     /* cancels its own task */
    pthread_t thread;
    pid_t tid;
    stage_future *self;
    int gate_rc;
} speaker;

/* A start's argument. */
typedef struct call {
    speaker *sp;
    const char *sentence;
} call;

static void speaker_init(speaker *sp, const char *prefix)
{
    memset(sp, 0, sizeof *sp);
    sp->prefix = prefix;
    atomic_init(&sp->runs, 0);
    atomic_init(&sp->freed, 0);
    sp->gate_rc = -1;
}

/* The body: napping with stage_sleep, or with a plain blocking sleep as
 * the seed's time.sleep. */
static void *speak_impl(call *c, int blocking)
{
    speaker *sp = c->sp;
    said *s;

    atomic_fetch_add(&sp->runs, 1);
    sp->thread = pthread_self();
    sp->tid = t_gettid();
    sp->self = stage_task_self();
    if (sp->gate != NULL)
        sp->gate_rc = stage_future_wait(sp->gate, 60.0 * t_tol());
    if (sp->nap > 0 && blocking) {
        struct timespec ts = {0, (long)(sp->nap * 1e9)};

        nanosleep(&ts, NULL);
    } else if (sp->nap > 0) {
        stage_sleep(sp->nap);
    }
    if (sp->self_cancel)
        stage_future_cancel(stage_task_self());
    s = malloc(sizeof *s);
    if (s == NULL)
        return NULL;
    s->freed = &sp->freed;
    snprintf(s->text, sizeof s->text, "%s%s", sp->prefix, c->sentence);
    if (sp->fail)
        stage_task_fail(sp->fail, "%s failed", c->sentence);
    return s;
}

static void *speak(void *arg)
{
    return speak_impl(arg, 0);
}

static void *speak_blocking(void *arg)
{
    return speak_impl(arg, 1);
}

static stage *new_stage(const char *name)
{
    stage *st = stage_new(name, 4, 0);

    ck_assert_ptr_nonnull(st);
    return st;
}

static stage_func *new_func(stage *st, stage_task_fn fn, unsigned int flags)
{
    stage_func *f = stage_func_new(st, fn, flags, said_free);

    ck_assert_ptr_nonnull(f);
    return f;
}

/* Wait for f's run; its text must be `want`; returns the result. */
static said *wait_text(stage_func *f, const char *want)
{
    void *v = NULL;

    ck_assert_int_eq(stage_func_wait(f, T_LONG, &v), 0);
    ck_assert_ptr_nonnull(v);
    ck_assert_str_eq(((said *)v)->text, want);
    return v;
}

/* A waiter: opens `waiting`, then waits for f (bounded). */
typedef struct waiter {
    stage_func *f;
    stage_future *waiting; /* opened just before the wait */
    int rc;
    void *value;
} waiter;

static void waiter_init(waiter *w, stage_func *f)
{
    w->f = f;
    w->waiting = t_latch();
    w->rc = -1;
    w->value = NULL;
}

static void *wait_body(void *arg)
{
    waiter *w = arg;

    t_latch_open(w->waiting);
    w->rc = stage_func_wait(w->f, 60.0 * t_tol(), &w->value);
    return NULL;
}

/* ---- API and EINVAL ----------------------------------------------------- */

START_TEST(test_einval)
{
    stage *st = new_stage("einval");
    stage_func *f;
    void *v = &v;

    errno = 0;
    ck_assert_ptr_null(stage_func_new(st, NULL, 0, NULL));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(stage_func_new(st, speak, 0x2, NULL));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(stage_func_new(st, speak, STAGE_FUNC_CORO | 0x4, NULL));
    ck_assert_int_eq(errno, EINVAL);
    ck_assert_int_eq(stage_func_start(NULL, NULL), EINVAL);
    ck_assert_int_eq(stage_func_wait(NULL, 0, &v), EINVAL);
    ck_assert_int_eq(stage_func_reset(NULL), EINVAL);
    ck_assert_ptr_null(stage_func_ref(NULL));
    stage_func_unref(NULL);
    f = new_func(st, speak, 0);
    ck_assert_int_eq(stage_func_wait(f, NAN, &v), EINVAL);
    ck_assert_ptr_eq(v, &v);
    stage_func_unref(f);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* ---- The seed ----------------------------------------------------------- */

/*
 * agently-stage.md, StageFunction:
 *     task.go("First"); task.wait() -> "Done: First"
 *     task.wait() again -> "Done: First" (not restarted)
 *     task.reset(); task("Second"); task.wait() -> "Done: Second"
 * for a plain function (blocking sleep, pool thread) and a coroutine.
 */
static void first_first_second(unsigned int flags)
{
    stage *st = new_stage("seed");
    speaker sp;
    call first, again, second;
    stage_func *f;
    said *r1, *r2;

    speaker_init(&sp, "Done: ");
    sp.nap = 0.05;
    first = (call){&sp, "First"};
    again = (call){&sp, "Again"};
    second = (call){&sp, "Second"};
    f = new_func(st, flags ? speak : speak_blocking, flags);
    /* Defined but has not run. */
    ck_assert_int_eq(stage_func_wait(f, 0, NULL), ETIMEDOUT);
    ck_assert_int_eq(atomic_load(&sp.runs), 0);
    ck_assert_int_eq(stage_func_start(f, &first), 0);
    r1 = wait_text(f, "Done: First");
    /* Waiting again does not restart it; nor does a second start. */
    ck_assert_ptr_eq(wait_text(f, "Done: First"), r1);
    ck_assert_int_eq(stage_func_start(f, &again), EALREADY);
    ck_assert_ptr_eq(wait_text(f, "Done: First"), r1);
    ck_assert_int_eq(stage_func_wait(f, 0, NULL), 0);
    ck_assert_int_eq(atomic_load(&sp.runs), 1);
    ck_assert_int_eq(atomic_load(&sp.freed), 0);
    /* Reset: runs again with its new argument; the old result goes (as
     * soon as the finished task's own reference is gone too). */
    ck_assert_int_eq(stage_func_reset(f), 0);
    ck_assert_int_eq(t_wait_count(&sp.freed, 1, 5.0), 1);
    ck_assert_int_eq(stage_func_wait(f, 0, NULL), ETIMEDOUT);
    ck_assert_int_eq(stage_func_start(f, &second), 0);
    r2 = wait_text(f, "Done: Second");
    ck_assert_int_eq(atomic_load(&sp.runs), 2);
    ck_assert_ptr_eq(wait_text(f, "Done: Second"), r2);
    stage_func_unref(f);
    ck_assert_int_eq(t_wait_count(&sp.freed, 2, 5.0), 2);
    ck_assert_int_eq(stage_free(st), 0);
    ck_assert_int_eq(atomic_load(&sp.freed), 2);
}

START_TEST(test_first_first_second)
{
    first_first_second(0);
}
END_TEST

START_TEST(test_first_first_second_coro)
{
    first_first_second(STAGE_FUNC_CORO);
}
END_TEST

/*
 * agently-stage.md, "How can this be useful?": a coroutine handler of
 * stage 1 is waited for in a pool task of stage 2, and started some time
 * later by a coroutine of stage 2 (after a stage_sleep).
 */
typedef struct cross {
    stage_func *handler;
    call c;
    int start_rc;
} cross;

static void *waiting(void *arg)
{
    cross *x = arg;
    void *v = NULL;
    int rc = stage_func_wait(x->handler, 60.0 * t_tol(), &v);

    if (rc != 0)
        return stage_task_fail(rc, "wait failed");
    return strdup(((said *)v)->text);
}

static void *executor(void *arg)
{
    cross *x = arg;

    stage_sleep(0.05);
    x->start_rc = stage_func_start(x->handler, &x->c);
    return NULL;
}

START_TEST(test_cross_stage)
{
    stage *stage_1 = new_stage("s1");
    stage *stage_2 = new_stage("s2");
    speaker sp;
    cross x;
    stage_future *w = NULL, *e = NULL;
    void *v = NULL;
    char comm[32];

    speaker_init(&sp, "Someone said: ");
    x.handler = new_func(stage_1, speak, STAGE_FUNC_CORO);
    x.c = (call){&sp, "StageFunction is useful!"};
    x.start_rc = -1;
    ck_assert_int_eq(stage_go(stage_2, waiting, &x, free, &w), 0);
    ck_assert_int_eq(stage_go_coro(stage_2, executor, &x, NULL, &e), 0);
    ck_assert_int_eq(stage_future_get(w, T_LONG, &v), 0);
    ck_assert_str_eq(v, "Someone said: StageFunction is useful!");
    t_done(e);
    ck_assert_int_eq(x.start_rc, 0);
    ck_assert_int_eq(atomic_load(&sp.runs), 1);
    /* The handler ran on stage 1's loop. */
    t_comm(sp.tid, comm, sizeof comm);
    ck_assert_str_eq(comm, "s1-loop");
    stage_future_unref(w);
    stage_future_unref(e);
    ck_assert_int_eq(stage_free(stage_2), 0);
    stage_func_unref(x.handler);
    ck_assert_int_eq(stage_free(stage_1), 0);
    ck_assert_int_eq(atomic_load(&sp.freed), 1);
}
END_TEST

/* ---- Starting ----------------------------------------------------------- */

/* 8 threads start at once: fn runs once, the others get EALREADY. */
typedef struct starter {
    stage_func *f;
    pthread_barrier_t *barrier;
    call c;
    int rc;
} starter;

static void *start_at_once(void *arg)
{
    starter *s = arg;

    pthread_barrier_wait(s->barrier);
    s->rc = stage_func_start(s->f, &s->c);
    return NULL;
}

START_TEST(test_concurrent_starts)
{
    enum { N = 8 };
    stage *st = new_stage("race");
    speaker sp;
    stage_func *f;
    pthread_barrier_t barrier;
    starter s[N];
    pthread_t th[N];
    char sentences[N][8], want[32];
    int i, round, winner;

    for (round = 0; round < 2; round++) {
        speaker_init(&sp, "");
        f = new_func(st, speak, round ? STAGE_FUNC_CORO : 0);
        ck_assert_int_eq(pthread_barrier_init(&barrier, NULL, N), 0);
        for (i = 0; i < N; i++) {
            snprintf(sentences[i], sizeof sentences[i], "t%d", i);
            s[i].f = f;
            s[i].barrier = &barrier;
            s[i].c = (call){&sp, sentences[i]};
            s[i].rc = -1;
            th[i] = t_thread_start(start_at_once, &s[i]);
        }
        for (i = 0; i < N; i++)
            t_thread_join(th[i]);
        pthread_barrier_destroy(&barrier);
        winner = -1;
        for (i = 0; i < N; i++) {
            if (s[i].rc == 0) {
                ck_assert_int_eq(winner, -1);
                winner = i;
            } else {
                ck_assert_int_eq(s[i].rc, EALREADY);
            }
        }
        ck_assert_int_ge(winner, 0);
        snprintf(want, sizeof want, "t%d", winner);
        wait_text(f, want);
        ck_assert_int_eq(atomic_load(&sp.runs), 1);
        stage_func_unref(f);
        ck_assert_int_eq(t_wait_count(&sp.freed, 1, 5.0), 1);
    }
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* Where runs go: flags 0 on a pool thread of the Stage, STAGE_FUNC_CORO on
 * its loop thread; both as tasks. */
START_TEST(test_where_runs_go)
{
    stage *st = new_stage("where");
    speaker sp;
    call c;
    stage_func *f;
    char comm[32];

    speaker_init(&sp, "");
    c = (call){&sp, "x"};
    f = new_func(st, speak, 0);
    ck_assert_int_eq(stage_func_start(f, &c), 0);
    wait_text(f, "x");
    ck_assert(!pthread_equal(sp.thread, pthread_self()));
    ck_assert_ptr_nonnull(sp.self);
    t_comm(sp.tid, comm, sizeof comm);
    ck_assert_str_eq(comm, "where-1");
    stage_func_unref(f);

    f = new_func(st, speak, STAGE_FUNC_CORO);
    ck_assert_int_eq(stage_func_start(f, &c), 0);
    wait_text(f, "x");
    ck_assert_ptr_nonnull(sp.self);
    t_comm(sp.tid, comm, sizeof comm);
    ck_assert_str_eq(comm, "where-loop");
    stage_func_unref(f);
    ck_assert_int_eq(stage_free(st), 0);
    ck_assert_int_eq(atomic_load(&sp.freed), 2);
}
END_TEST

/* st NULL: the default Stage. */
START_TEST(test_default_stage)
{
    speaker sp;
    call c;
    stage_func *f;
    char comm[32];

    speaker_init(&sp, "dflt ");
    c = (call){&sp, "run"};
    f = new_func(NULL, speak, 0);
    ck_assert_int_eq(stage_func_start(f, &c), 0);
    wait_text(f, "dflt run");
    t_comm(sp.tid, comm, sizeof comm);
    ck_assert_msg(strncmp(comm, "stage-", 6) == 0, "ran on \"%s\"", comm);
    stage_func_unref(f);
    ck_assert_int_eq(t_wait_count(&sp.freed, 1, 5.0), 1);
}
END_TEST

/* A start after the Stage closed: EPIPE, every time (a failed start is
 * not a start: the next one tries again, never EALREADY); waiters, blocked
 * before it or coming later, get EPIPE rather than wait for a run that
 * cannot happen.  fn never runs. */
START_TEST(test_start_after_close)
{
    stage *st = new_stage("closed");
    speaker sp;
    call c;
    stage_func *f, *g;
    waiter w;
    stage_future *t = NULL;

    speaker_init(&sp, "");
    c = (call){&sp, "late"};
    f = new_func(st, speak, 0);
    g = new_func(st, speak, STAGE_FUNC_CORO);
    waiter_init(&w, f);
    ck_assert_int_eq(stage_coro_spawn(NULL, wait_body, &w, NULL, 0, &t), 0);
    t_done(w.waiting);
    ck_assert_int_eq(stage_close(st, T_LONG), 0);
    ck_assert_int_eq(stage_func_start(f, &c), EPIPE);
    t_done(t);
    ck_assert_int_eq(w.rc, EPIPE);
    ck_assert_int_eq(stage_func_wait(f, 0, NULL), EPIPE);
    ck_assert_int_eq(stage_func_start(f, &c), EPIPE);
    ck_assert_int_eq(stage_func_wait(f, 0, NULL), EPIPE);
    ck_assert_int_eq(stage_func_start(g, &c), EPIPE);
    ck_assert_int_eq(stage_func_start(g, &c), EPIPE);
    ck_assert_int_eq(stage_func_reset(f), 0);
    ck_assert_int_eq(stage_func_start(f, &c), EPIPE);
    ck_assert_int_eq(atomic_load(&sp.runs), 0);
    stage_future_unref(t);
    stage_future_unref(w.waiting);
    stage_func_unref(f);
    stage_func_unref(g);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* ---- Waiting ------------------------------------------------------------ */

/* Waiters from a thread, main's coroutines and another Stage's coroutines,
 * all before anyone started: they block until the start, then all see the
 * same result. */
START_TEST(test_wait_before_start)
{
    enum { N = 9 };
    stage *st = new_stage("early");
    stage *other = new_stage("other");
    speaker sp;
    call c;
    stage_func *f;
    waiter w[N];
    stage_future *tasks[N];
    void *v = NULL;
    double t0;
    int i;

    speaker_init(&sp, "late ");
    c = (call){&sp, "start"};
    f = new_func(st, speak, 0);
    for (i = 0; i < N; i++) {
        waiter_init(&w[i], f);
        switch (i % 3) {
        case 0:
            ck_assert_int_eq(stage_thread_spawn(wait_body, &w[i], NULL,
                                                &tasks[i]),
                             0);
            break;
        case 1:
            ck_assert_int_eq(stage_coro_spawn(NULL, wait_body, &w[i], NULL, 0,
                                              &tasks[i]),
                             0);
            break;
        default:
            ck_assert_int_eq(stage_go_coro(other, wait_body, &w[i], NULL,
                                           &tasks[i]),
                             0);
        }
    }
    /* Main's waits run main's coroutines up to their wait. */
    for (i = 0; i < N; i++)
        t_done(w[i].waiting);
    t0 = t_time();
    ck_assert_int_eq(stage_func_wait(f, 0.05, &v), ETIMEDOUT);
    ck_assert_double_ge(t_time() - t0, 0.045);
    for (i = 0; i < N; i++)
        ck_assert_int_eq(stage_future_state(tasks[i]), STAGE_PENDING);
    ck_assert_int_eq(atomic_load(&sp.runs), 0);
    ck_assert_int_eq(stage_func_start(f, &c), 0);
    for (i = 0; i < N; i++) {
        t_done(tasks[i]);
        ck_assert_int_eq(w[i].rc, 0);
        ck_assert_ptr_nonnull(w[i].value);
        ck_assert_ptr_eq(w[i].value, w[0].value);
        stage_future_unref(tasks[i]);
        stage_future_unref(w[i].waiting);
    }
    ck_assert_str_eq(((said *)w[0].value)->text, "late start");
    ck_assert_int_eq(atomic_load(&sp.runs), 1);
    stage_func_unref(f);
    ck_assert_int_eq(stage_free(other), 0);
    ck_assert_int_eq(stage_free(st), 0);
    ck_assert_int_eq(atomic_load(&sp.freed), 1);
}
END_TEST

/* Never started: ETIMEDOUT after the timeout; also while the run is
 * still going. */
START_TEST(test_wait_timeout)
{
    stage *st = new_stage("timeout");
    speaker sp;
    call c;
    stage_func *f;
    void *v = &v;
    double t0;

    speaker_init(&sp, "");
    c = (call){&sp, "slow"};
    f = new_func(st, speak, 0);
    ck_assert_int_eq(stage_func_wait(f, 0, &v), ETIMEDOUT);
    t0 = t_time();
    ck_assert_int_eq(stage_func_wait(f, 0.1, &v), ETIMEDOUT);
    ck_assert_double_ge(t_time() - t0, 0.095);
    ck_assert_ptr_eq(v, &v);
    sp.gate = t_latch();
    ck_assert_int_eq(stage_func_start(f, &c), 0);
    t0 = t_time();
    ck_assert_int_eq(stage_func_wait(f, 0.05, &v), ETIMEDOUT);
    ck_assert_double_ge(t_time() - t0, 0.045);
    ck_assert_ptr_eq(v, &v);
    t_latch_open(sp.gate);
    wait_text(f, "slow");
    stage_func_unref(f);
    stage_future_unref(sp.gate);
    ck_assert_int_eq(stage_free(st), 0);
    ck_assert_int_eq(atomic_load(&sp.freed), 1);
}
END_TEST

/* A failed run: its error, every time (and it is collected: the Stage does
 * not report it); a run nobody waits for is reported at close. */
START_TEST(test_failed_run)
{
    stage *st = new_stage("failing");
    t_reports rs;
    speaker sp;
    call c, d;
    stage_func *f, *g;
    void *v = &v;
    int round;

    t_reports_init(&rs);
    ck_assert_int_eq(stage_set_error_handler(st, t_reports_handler, &rs, NULL),
                     0);
    speaker_init(&sp, "");
    sp.fail = EPROTO;
    c = (call){&sp, "waited"};
    d = (call){&sp, "ignored"};
    for (round = 0; round < 2; round++) {
        f = new_func(st, speak, round ? STAGE_FUNC_CORO : 0);
        ck_assert_int_eq(stage_func_start(f, &c), 0);
        ck_assert_int_eq(stage_func_wait(f, T_LONG, &v), EPROTO);
        ck_assert_int_eq(stage_func_wait(f, 0, &v), EPROTO);
        ck_assert_ptr_eq(v, &v);
        ck_assert_int_eq(stage_func_start(f, &c), EALREADY);
        stage_func_unref(f);
    }
    g = new_func(st, speak, 0);
    ck_assert_int_eq(stage_func_start(g, &d), 0);
    ck_assert_int_eq(stage_close(st, T_LONG), 0);
    ck_assert_int_eq(t_reports_count(&rs), 1);
    ck_assert_int_eq(rs.r[0].err, EPROTO);
    ck_assert_str_eq(rs.r[0].msg, "ignored failed");
    ck_assert_int_eq(atomic_load(&sp.runs), 3);
    /* The failed runs' values were destroyed when they failed. */
    ck_assert_int_eq(atomic_load(&sp.freed), 3);
    stage_func_unref(g);
    ck_assert_int_eq(stage_free(st), 0);
    t_reports_fini(&rs);
}
END_TEST

/* ECANCELED: the run was cancelled, or the waiter was. */
START_TEST(test_cancelled)
{
    stage *st = new_stage("cancel");
    speaker sp;
    call c;
    stage_func *f;
    waiter w;
    stage_future *t = NULL;
    void *v = &v;
    int coro;

    speaker_init(&sp, "");
    sp.self_cancel = 1;
    c = (call){&sp, "x"};
    f = new_func(st, speak, 0);
    ck_assert_int_eq(stage_func_start(f, &c), 0);
    ck_assert_int_eq(stage_func_wait(f, T_LONG, &v), ECANCELED);
    ck_assert_ptr_eq(v, &v);
    ck_assert_int_eq(t_wait_count(&sp.freed, 1, 5.0), 1);
    stage_func_unref(f);

    /* A waiting coroutine, or pool task, of the Stage is cancelled. */
    for (coro = 0; coro < 2; coro++) {
        f = new_func(st, speak, 0);
        waiter_init(&w, f);
        t_go(st, coro, wait_body, &w, NULL, &t);
        t_done(w.waiting);
        ck_assert_int_eq(stage_future_cancel(t), 0);
        t_done(t);
        ck_assert_int_eq(stage_future_state(t), STAGE_CANCELLED);
        ck_assert_int_eq(w.rc, ECANCELED);
        ck_assert_ptr_null(w.value);
        stage_future_unref(t);
        stage_future_unref(w.waiting);
        /* f itself is untouched: it can still be started. */
        sp.self_cancel = 0;
        ck_assert_int_eq(stage_func_start(f, &c), 0);
        wait_text(f, "x");
        stage_func_unref(f);
    }
    ck_assert_int_eq(stage_free(st), 0);
    ck_assert_int_eq(atomic_load(&sp.freed), 3);
}
END_TEST

/* ---- Reset -------------------------------------------------------------- */

/* EBUSY while a run is in progress; fine before any start and after the
 * run. */
START_TEST(test_reset_while_running)
{
    stage *st = new_stage("busy");
    speaker sp;
    call c;
    stage_func *f;
    int coro;

    for (coro = 0; coro < 2; coro++) {
        speaker_init(&sp, "");
        c = (call){&sp, "gated"};
        sp.gate = t_latch();
        f = new_func(st, speak, coro ? STAGE_FUNC_CORO : 0);
        ck_assert_int_eq(stage_func_reset(f), 0); /* never started */
        ck_assert_int_eq(stage_func_start(f, &c), 0);
        ck_assert_int_eq(stage_func_reset(f), EBUSY);
        ck_assert_int_eq(stage_func_start(f, &c), EALREADY);
        ck_assert_int_eq(stage_func_reset(f), EBUSY);
        t_latch_open(sp.gate);
        wait_text(f, "gated");
        ck_assert_int_eq(stage_func_reset(f), 0);
        ck_assert_int_eq(t_wait_count(&sp.freed, 1, 5.0), 1);
        ck_assert_int_eq(stage_func_reset(f), 0);
        ck_assert_int_eq(atomic_load(&sp.runs), 1);
        stage_func_unref(f);
        ck_assert_int_eq(atomic_load(&sp.freed), 1);
        stage_future_unref(sp.gate);
    }
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* Waiters blocked before a reset keep waiting for "that run": for a
 * function never started, the run the next start makes. */
START_TEST(test_reset_keeps_old_waiters)
{
    stage *st = new_stage("oldwait");
    speaker sp;
    call c;
    stage_func *f;
    waiter w;
    stage_future *t = NULL;

    speaker_init(&sp, "");
    c = (call){&sp, "new"};
    f = new_func(st, speak, 0);
    waiter_init(&w, f);
    ck_assert_int_eq(stage_coro_spawn(NULL, wait_body, &w, NULL, 0, &t), 0);
    t_done(w.waiting);
    ck_assert_int_eq(stage_func_reset(f), 0);
    ck_assert_int_eq(stage_func_start(f, &c), 0);
    t_done(t);
    ck_assert_int_eq(w.rc, 0);
    ck_assert_ptr_eq(w.value, wait_text(f, "new"));
    ck_assert_int_eq(atomic_load(&sp.runs), 1);
    stage_future_unref(t);
    stage_future_unref(w.waiting);
    stage_func_unref(f);
    ck_assert_int_eq(stage_free(st), 0);
}
END_TEST

/* ---- Lifetime ----------------------------------------------------------- */

/* ref/unref: the last unref frees the function and its last result (once),
 * also while the run is still going (the result goes when it ends). */
START_TEST(test_ref_unref)
{
    stage *st = new_stage("refs");
    speaker sp;
    call c;
    stage_func *f;

    speaker_init(&sp, "");
    c = (call){&sp, "kept"};
    f = new_func(st, speak, 0);
    ck_assert_ptr_eq(stage_func_ref(f), f);
    ck_assert_int_eq(stage_func_start(f, &c), 0);
    wait_text(f, "kept");
    stage_func_unref(f);
    ck_assert_int_eq(atomic_load(&sp.freed), 0);
    /* Still usable through the other reference. */
    ck_assert_ptr_eq(wait_text(f, "kept"), wait_text(f, "kept"));
    stage_func_unref(f);
    ck_assert_int_eq(t_wait_count(&sp.freed, 1, 5.0), 1);

    /* Dropped while running. */
    sp.gate = t_latch();
    f = new_func(st, speak, STAGE_FUNC_CORO);
    ck_assert_int_eq(stage_func_start(f, &c), 0);
    stage_func_unref(f);
    t_latch_open(sp.gate);
    ck_assert_int_eq(stage_close(st, T_LONG), 0);
    ck_assert_int_eq(t_wait_count(&sp.freed, 2, 5.0), 2);
    ck_assert_int_eq(atomic_load(&sp.runs), 2);
    ck_assert_int_eq(stage_free(st), 0);
    ck_assert_int_eq(atomic_load(&sp.freed), 2);
    stage_future_unref(sp.gate);
}
END_TEST

static Suite *func_suite(void)
{
    Suite *s = suite_create("func");
    TCase *tc;

    tc = t_tcase(s, "api", 10);
    tcase_add_test(tc, test_einval);
    tcase_add_test(tc, test_first_first_second);
    tcase_add_test(tc, test_first_first_second_coro);
    tcase_add_test(tc, test_cross_stage);
    tcase_add_test(tc, test_concurrent_starts);
    tcase_add_test(tc, test_where_runs_go);
    tcase_add_test(tc, test_start_after_close);

    tc = t_tcase(s, "wait", 10);
    tcase_add_test(tc, test_wait_before_start);
    tcase_add_test(tc, test_wait_timeout);
    tcase_add_test(tc, test_failed_run);
    tcase_add_test(tc, test_cancelled);

    tc = t_tcase(s, "reset", 10);
    tcase_add_test(tc, test_reset_while_running);
    tcase_add_test(tc, test_reset_keeps_old_waiters);
    tcase_add_test(tc, test_ref_unref);

    /* Under valgrind the teardown waits for the default Stage's idle
     * worker to leave (its idle timeout is 10 s). */
    tc = t_tcase(s, "default", 30);
    tcase_add_test(tc, test_default_stage);
    return s;
}

T_MAIN(func_suite)
