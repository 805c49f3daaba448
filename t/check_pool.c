/* SPDX-License-Identifier: MIT */
/*
 * check_pool.c - thread pools (doc-spec-stage.txt "Pools"): submit and its
 * future, FIFO order, growth up to max_workers and never beyond, idle
 * workers leaving after idle_timeout down to min_workers, worker thread
 * names, close (waiting for queued work, or cancelling it; timeouts and
 * retries; EDEADLK from a worker), free, cancellation of queued and running
 * jobs, every EINVAL, and 20,000 tiny jobs.
 *
 * Tests of reported, not yet fixed, library bugs run only with
 * STAGE_TEST_KNOWN_BUGS=1 (see t/stages.h).
 */
#include "stages.h"

/* ---- Bodies ------------------------------------------------------------- */

/* Returns its argument (an integer) plus one. */
static void *plus_one(void *arg)
{
    return (void *)((intptr_t)arg + 1);
}

/* Appends its index to a log (only ever run by one worker at a time where
 * the order is checked). */
typedef struct order_log {
    atomic_int n;
    int idx[256];
} order_log;

typedef struct order_arg {
    order_log *log;
    int i;
} order_arg;

static void *log_order(void *arg)
{
    order_arg *a = arg;
    int k = atomic_fetch_add(&a->log->n, 1);

    if (k < 256)
        a->log->idx[k] = a->i;
    return NULL;
}

/* Submit n t_conc_body jobs to p. */
static void submit_concurrent(stage_pool *p, t_conc *args, stage_future **fs,
                              int n, t_peak *peak, stage_future *gate)
{
    int i;

    for (i = 0; i < n; i++) {
        t_conc_init(&args[i], peak, gate);
        ck_assert_int_eq(
            stage_pool_submit(p, t_conc_body, &args[i], NULL, &fs[i]), 0);
    }
}

/* Poll (bounded) until p has at most `want` workers; returns the count. */
static size_t wait_workers_at_most(stage_pool *p, size_t want)
{
    double deadline = t_time() + T_LONG;
    struct timespec ts = {0, 2 * 1000 * 1000};

    while (stage_pool_workers(p) > want && t_time() < deadline)
        nanosleep(&ts, NULL);
    return stage_pool_workers(p);
}

/* A job that holds one worker until `gate` opens (g->ret_id: its value);
 * returns once it runs.  *out (may be NULL) gets its future. */
static void hold_worker(stage_pool *p, t_gated *g, stage_future *gate,
                        intptr_t ret_id, stage_future **out)
{
    t_gated_init(g, gate, ret_id);
    ck_assert_int_eq(stage_pool_submit(p, t_gated_body, g,
                                       ret_id ? t_val_free : NULL, out),
                     0);
    t_done(g->started);
}

/* Run one job on p; comm gets the name of the worker that ran it (read
 * while the job holds that worker: it cannot leave meanwhile). */
static void job_worker_name(stage_pool *p, char *comm, size_t size)
{
    stage_future *f = NULL;
    t_gated g;

    hold_worker(p, &g, t_latch(), 0, &f);
    t_comm(g.tid, comm, size);
    t_latch_open(g.gate);
    t_done(f);
    ck_assert_int_eq(stage_future_state(f), STAGE_DONE);
    stage_future_unref(f);
    stage_future_unref(g.gate);
    t_gated_fini(&g);
}

static void close_free(stage_pool *p)
{
    ck_assert_int_eq(stage_pool_close(p, 0, T_LONG), 0);
    ck_assert_uint_eq(stage_pool_workers(p), 0);
    ck_assert_int_eq(stage_pool_free(p), 0);
}

/* ---- Creation and EINVAL ------------------------------------------------ */

START_TEST(test_new_einval)
{
    stage_pool *p;

    errno = 0;
    ck_assert_ptr_null(stage_pool_new("x", 0, 0, 1.0));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(stage_pool_new("x", 3, 2, 1.0));
    ck_assert_int_eq(errno, EINVAL);
    errno = 0;
    ck_assert_ptr_null(stage_pool_new("x", 0, 1, NAN));
    ck_assert_int_eq(errno, EINVAL);

    /* Edge cases that are fine: min == max, no idle exit, NULL name. */
    p = stage_pool_new(NULL, 2, 2, STAGE_FOREVER);
    ck_assert_ptr_nonnull(p);
    close_free(p);
    p = stage_pool_new("zero-idle", 0, 1, 0);
    ck_assert_ptr_nonnull(p);
    close_free(p);
}
END_TEST

START_TEST(test_calls_einval)
{
    stage_pool *p = stage_pool_new("einval", 0, 1, 1.0);
    stage_future *f = (stage_future *)&f;

    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(stage_pool_workers(NULL), 0);
    ck_assert_int_eq(stage_pool_submit(NULL, plus_one, NULL, NULL, &f),
                     EINVAL);
    ck_assert_int_eq(stage_pool_submit(p, NULL, NULL, NULL, &f), EINVAL);
    ck_assert_ptr_eq(f, (stage_future *)&f); /* untouched */
    ck_assert_int_eq(stage_pool_close(NULL, 0, 1.0), EINVAL);
    ck_assert_int_eq(stage_pool_close(p, 0x2, 1.0), EINVAL);
    ck_assert_int_eq(stage_pool_close(p, STAGE_POOL_CANCEL | 0x8, 1.0),
                     EINVAL);
    ck_assert_int_eq(stage_pool_close(p, 0, NAN), EINVAL);
    ck_assert_int_eq(stage_pool_free(NULL), EINVAL);
    /* A rejected close did not seal the pool. */
    ck_assert_int_eq(stage_pool_submit(p, plus_one, (void *)41, NULL, &f), 0);
    t_done(f);
    stage_future_unref(f);
    close_free(p);
}
END_TEST

/* No thread starts before the first submit. */
START_TEST(test_lazy_start)
{
    int before = t_thread_count();
    stage_pool *p = stage_pool_new("lazy", 2, 4, STAGE_FOREVER);
    stage_future *f = NULL;

    ck_assert_ptr_nonnull(p);
    ck_assert_uint_eq(stage_pool_workers(p), 0);
    ck_assert_int_eq(t_thread_count(), before);
    ck_assert_int_eq(stage_pool_submit(p, plus_one, (void *)1, NULL, &f), 0);
    ck_assert_uint_ge(stage_pool_workers(p), 1);
    t_done(f);
    stage_future_unref(f);
    /* Closing an unused pool is immediate. */
    close_free(p);
    p = stage_pool_new("unused", 1, 1, 1.0);
    ck_assert_int_eq(stage_pool_close(p, 0, 0), 0);
    ck_assert_int_eq(stage_pool_free(p), 0);
}
END_TEST

/* ---- Submit ------------------------------------------------------------- */

START_TEST(test_submit_value)
{
    stage_pool *p = stage_pool_new("value", 0, 2, 1.0);
    t_gated g;
    stage_future *f = NULL;
    void *v = NULL;

    t_gated_init(&g, NULL, 5);
    ck_assert_int_eq(stage_pool_submit(p, plus_one, (void *)41, NULL, &f), 0);
    ck_assert_int_eq(stage_future_get(f, T_LONG, &v), 0);
    ck_assert_int_eq((intptr_t)v, 42);
    stage_future_unref(f);

    /* A job runs as a task on a worker thread; its value is destroyed once,
     * at the last unref, when nobody took it. */
    g.gate = t_latch();
    t_latch_open(g.gate);
    ck_assert_int_eq(stage_pool_submit(p, t_gated_body, &g, t_val_free, &f),
                     0);
    ck_assert_int_eq(stage_future_get(f, T_LONG, &v), 0);
    ck_assert_int_eq(((t_val *)v)->id, 5);
    ck_assert_ptr_eq(g.self, f);
    ck_assert(!pthread_equal(g.thread, pthread_self()));
    ck_assert_int_eq(atomic_load(&g.freed), 0);
    stage_future_unref(f);
    ck_assert_int_eq(t_wait_count(&g.freed, 1, 5.0), 1);

    /* Taken: the caller owns it. */
    ck_assert_int_eq(stage_pool_submit(p, t_gated_body, &g, t_val_free, &f),
                     0);
    t_done(f);
    ck_assert_int_eq(stage_future_take(f, &v), 0);
    stage_future_unref(f);
    ck_assert_int_eq(atomic_load(&g.freed), 1);
    t_val_free(v);
    ck_assert_int_eq(atomic_load(&g.freed), 2);
    stage_future_unref(g.gate);
    t_gated_fini(&g);
    close_free(p);
}
END_TEST

/* out NULL: the job still runs, its value is destroyed when it ends. */
START_TEST(test_submit_detached)
{
    stage_pool *p = stage_pool_new("detached", 0, 1, 1.0);
    t_gated g;

    t_gated_init(&g, t_latch(), 9);
    t_latch_open(g.gate);
    ck_assert_int_eq(stage_pool_submit(p, t_gated_body, &g, t_val_free, NULL),
                     0);
    t_done(g.ended);
    ck_assert_int_eq(t_wait_count(&g.freed, 1, 5.0), 1);
    close_free(p);
    ck_assert_int_eq(atomic_load(&g.ran), 1);
    ck_assert_int_eq(atomic_load(&g.freed), 1);
    stage_future_unref(g.gate);
    t_gated_fini(&g);
}
END_TEST

/* A failing job: its future fails with the code and message; a detached
 * one is printed on stderr. */
static void *failing(void *arg)
{
    return stage_task_fail(EPROTO, "job %d failed", (int)(intptr_t)arg);
}

START_TEST(test_submit_failure)
{
    stage_pool *p = stage_pool_new("fail", 0, 1, 1.0);
    stage_future *f = NULL;
    t_capture c;
    char buf[512], want[256];

    ck_assert_int_eq(stage_pool_submit(p, failing, (void *)3, NULL, &f), 0);
    ck_assert_int_eq(stage_future_get(f, T_LONG, NULL), EPROTO);
    ck_assert_int_eq(stage_future_state(f), STAGE_FAILED);
    ck_assert_str_eq(stage_future_message(f), "job 3 failed");
    stage_future_unref(f);

    t_capture_start(&c);
    ck_assert_int_eq(stage_pool_submit(p, failing, (void *)4, NULL, NULL), 0);
    ck_assert_int_eq(stage_pool_close(p, 0, T_LONG), 0);
    t_capture_end(&c, buf, sizeof buf);
    ck_assert_int_eq(stage_pool_free(p), 0);
    snprintf(want, sizeof want,
             "libstage: unobserved task failure: %s: job 4 failed (Task-",
             strerror(EPROTO));
    t_assert_has(buf, want);
}
END_TEST

/* FIFO with one worker. */
START_TEST(test_fifo_one_worker)
{
    stage_pool *p = stage_pool_new("fifo", 0, 1, 1.0);
    stage_future *gate = t_latch();
    t_gated g;
    order_log log;
    order_arg args[200];
    stage_future *last = NULL;
    int i;

    atomic_init(&log.n, 0);
    /* The first job holds the worker while the rest queue up. */
    hold_worker(p, &g, gate, 0, NULL);
    for (i = 0; i < 200; i++) {
        args[i].log = &log;
        args[i].i = i;
        if (i == 199)
            ck_assert_int_eq(
                stage_pool_submit(p, log_order, &args[i], NULL, &last), 0);
        else
            ck_assert_int_eq(
                stage_pool_submit(p, log_order, &args[i], NULL, NULL), 0);
    }
    ck_assert_uint_eq(stage_pool_workers(p), 1);
    ck_assert_int_eq(atomic_load(&log.n), 0);
    t_latch_open(gate);
    t_done(last);
    ck_assert_int_eq(atomic_load(&log.n), 200);
    for (i = 0; i < 200; i++)
        ck_assert_int_eq(log.idx[i], i);
    stage_future_unref(last);
    stage_future_unref(gate);
    t_gated_fini(&g);
    close_free(p);
}
END_TEST

/* ---- Growth, names, idle exit ------------------------------------------- */

/* max_workers jobs run at once, never more; workers are "<name>-<n>". */
START_TEST(test_grows_to_max)
{
    enum { MAX = 4, N = 2 * MAX };
    stage_pool *p = stage_pool_new("grow", 0, MAX, STAGE_FOREVER);
    stage_future *gate = t_latch();
    stage_future *fs[N];
    t_conc args[N];
    t_peak peak;
    char name[16];
    int i;

    t_peak_init(&peak);
    submit_concurrent(p, args, fs, N, &peak, gate);
    /* The first MAX are all running at once (none can finish: the gate is
     * closed)... */
    for (i = 0; i < MAX; i++)
        t_done(args[i].started);
    ck_assert_uint_eq(stage_pool_workers(p), MAX);
    ck_assert_int_eq(atomic_load(&peak.now), MAX);
    /* ... and no more. */
    ck_assert_int_eq(stage_future_wait(args[MAX].started, 0.1), ETIMEDOUT);
    ck_assert_int_eq(atomic_load(&peak.ran), MAX);
    for (i = 1; i <= MAX; i++) {
        snprintf(name, sizeof name, "grow-%d", i);
        ck_assert_msg(t_comm_count(name) == 1, "no thread named %s", name);
    }
    ck_assert_int_eq(t_comm_count("grow-5"), 0);
    t_latch_open(gate);
    t_conc_finish(args, fs, N);
    ck_assert_int_eq(atomic_load(&peak.peak), MAX);
    ck_assert_int_eq(atomic_load(&peak.ran), N);
    ck_assert_uint_eq(stage_pool_workers(p), MAX); /* idle: FOREVER */
    stage_future_unref(gate);
    close_free(p);
}
END_TEST

/* Names: NULL is "stage"; a long name is cut to 10 bytes in the thread
 * name. */
START_TEST(test_worker_names)
{
    static const struct {
        const char *name, *thread;
    } cases[] = {
        {NULL, "stage-1"},
        {"averyverylongpoolname", "averyveryl-1"},
        {"0123456789", "0123456789-1"},
    };
    size_t i;

    for (i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char name[32], comm[32];
        stage_pool *p;

        /* The name is copied: the caller's buffer is scribbled on. */
        snprintf(name, sizeof name, "%s", cases[i].name ? cases[i].name : "");
        p = stage_pool_new(cases[i].name ? name : NULL, 0, 1, STAGE_FOREVER);
        ck_assert_ptr_nonnull(p);
        memset(name, 'Q', sizeof name - 1);
        job_worker_name(p, comm, sizeof comm);
        ck_assert_str_eq(comm, cases[i].thread);
        close_free(p);
    }
}
END_TEST

/* Grow to `max` with concurrent jobs, then let them finish one at a time.
 * With `one_by_one`, each next job is released only once the workers
 * that went idle before it have left (down to max - i - 1, never below
 * `min`): then no two idle timeouts ever race. */
static void grow_then_idle(stage_pool *p, int max, int one_by_one, int min)
{
    stage_future *gates[8], *fs[8];
    t_conc args[8];
    t_peak peak;
    int i;

    ck_assert_int_le(max, 8);
    t_peak_init(&peak);
    for (i = 0; i < max; i++) {
        gates[i] = t_latch();
        t_conc_init(&args[i], &peak, gates[i]);
        ck_assert_int_eq(
            stage_pool_submit(p, t_conc_body, &args[i], NULL, &fs[i]), 0);
    }
    for (i = 0; i < max; i++)
        t_done(args[i].started);
    ck_assert_uint_eq(stage_pool_workers(p), (size_t)max);
    for (i = 0; i < max; i++) {
        t_latch_open(gates[i]);
        t_done(fs[i]);
        stage_future_unref(gates[i]);
        if (one_by_one) {
            size_t want = (size_t)(max - i - 1 > min ? max - i - 1 : min);

            ck_assert_uint_eq(wait_workers_at_most(p, want), want);
        }
    }
    t_conc_finish(args, fs, max);
}

/* Idle workers leave after idle_timeout while more than min remain; min
 * stay warm; the next submit starts a new worker ("<name>-<n+1>"). */
START_TEST(test_idle_exit_keeps_min)
{
    stage_pool *p = stage_pool_new("idle", 1, 3, 0.05);
    char comm[32];

    grow_then_idle(p, 3, 1, 1);
    ck_assert_uint_eq(wait_workers_at_most(p, 1), 1);
    /* Kept warm: still one after several idle timeouts. */
    ck_assert_int_eq(stage_sleep(0.3), 0);
    ck_assert_uint_eq(stage_pool_workers(p), 1);
    /* The warm worker (one of the first three) takes the next job. */
    job_worker_name(p, comm, sizeof comm);
    ck_assert_msg(strcmp(comm, "idle-1") == 0 || strcmp(comm, "idle-2") == 0 ||
                      strcmp(comm, "idle-3") == 0,
                  "job ran on %s", comm);
    close_free(p);
}
END_TEST

START_TEST(test_idle_exit_to_zero)
{
    stage_pool *p = stage_pool_new("zero", 0, 2, 0.05);
    char comm[32];

    grow_then_idle(p, 2, 0, 0);
    ck_assert_uint_eq(wait_workers_at_most(p, 0), 0);
    /* A new worker for the next job, numbered on. */
    job_worker_name(p, comm, sizeof comm);
    ck_assert_str_eq(comm, "zero-3");
    close_free(p);
}
END_TEST

/* idle_timeout STAGE_FOREVER: idle workers stay. */
START_TEST(test_idle_forever)
{
    stage_pool *p = stage_pool_new("forever", 0, 2, STAGE_FOREVER);

    grow_then_idle(p, 2, 0, 0);
    ck_assert_int_eq(stage_sleep(0.2), 0);
    ck_assert_uint_eq(stage_pool_workers(p), 2);
    close_free(p);
}
END_TEST

/* ---- Close -------------------------------------------------------------- */

/* flags 0: queued jobs still run, in order; close with a timeout while a
 * job blocks returns ETIMEDOUT and may be called again; sealed meanwhile. */
START_TEST(test_close_runs_queued)
{
    stage_pool *p = stage_pool_new("drain", 0, 1, 1.0);
    stage_future *gate = t_latch();
    stage_future *fs[5], *f = (stage_future *)&f;
    order_log log;
    order_arg args[5];
    t_gated g;
    double t0, el;
    int i;

    atomic_init(&log.n, 0);
    hold_worker(p, &g, gate, 0, NULL);
    for (i = 0; i < 5; i++) {
        args[i].log = &log;
        args[i].i = i;
        ck_assert_int_eq(
            stage_pool_submit(p, log_order, &args[i], NULL, &fs[i]), 0);
    }
    t0 = t_time();
    ck_assert_int_eq(stage_pool_close(p, 0, 0.05), ETIMEDOUT);
    el = t_time() - t0;
    ck_assert_double_ge(el, 0.045);
    ck_assert_int_eq(stage_pool_close(p, 0, 0), ETIMEDOUT);
    /* Sealed, still closing. */
    ck_assert_int_eq(stage_pool_submit(p, plus_one, NULL, NULL, &f), EPIPE);
    ck_assert_int_eq(stage_pool_submit(p, plus_one, NULL, NULL, NULL), EPIPE);
    ck_assert_ptr_eq(f, (stage_future *)&f);
    ck_assert_int_eq(stage_pool_free(p), EBUSY);
    ck_assert_int_eq(atomic_load(&log.n), 0);
    for (i = 0; i < 5; i++)
        ck_assert_int_eq(stage_future_state(fs[i]), STAGE_PENDING);
    t_latch_open(gate);
    ck_assert_int_eq(stage_pool_close(p, 0, STAGE_FOREVER), 0);
    /* Every job ran before close returned. */
    ck_assert_int_eq(atomic_load(&log.n), 5);
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(log.idx[i], i);
        ck_assert_int_eq(stage_future_state(fs[i]), STAGE_DONE);
        stage_future_unref(fs[i]);
    }
    ck_assert_uint_eq(stage_pool_workers(p), 0);
    /* Idempotent, and EPIPE stays. */
    ck_assert_int_eq(stage_pool_close(p, 0, 0), 0);
    ck_assert_int_eq(stage_pool_close(p, STAGE_POOL_CANCEL, 0), 0);
    ck_assert_int_eq(stage_pool_submit(p, plus_one, NULL, NULL, NULL), EPIPE);
    ck_assert_int_eq(g.rc, 0);
    ck_assert_int_eq(stage_pool_free(p), 0);
    stage_future_unref(gate);
    t_gated_fini(&g);
}
END_TEST

/* STAGE_POOL_CANCEL: queued jobs end CANCELLED at once and never run; the
 * running one finishes normally. */
START_TEST(test_close_cancels_queued)
{
    stage_pool *p = stage_pool_new("cancel", 0, 1, 1.0);
    stage_future *gate = t_latch();
    stage_future *fs[5], *running = NULL;
    t_gated g, q[5];
    void *v = NULL;
    int i;

    hold_worker(p, &g, gate, 7, &running);
    for (i = 0; i < 5; i++) {
        t_gated_init(&q[i], gate, 100 + i);
        ck_assert_int_eq(stage_pool_submit(p, t_gated_body, &q[i], t_val_free,
                                           &fs[i]),
                         0);
    }
    /* Detached queued jobs too (nothing may leak). */
    ck_assert_int_eq(
        stage_pool_submit(p, t_gated_body, &q[0], t_val_free, NULL), 0);
    ck_assert_int_eq(stage_pool_close(p, STAGE_POOL_CANCEL, 0.01), ETIMEDOUT);
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(stage_future_state(fs[i]), STAGE_CANCELLED);
        ck_assert_int_eq(stage_future_get(fs[i], 0, &v), ECANCELED);
        stage_future_unref(fs[i]);
    }
    ck_assert_int_eq(stage_future_state(running), STAGE_PENDING);
    t_latch_open(gate);
    ck_assert_int_eq(stage_pool_close(p, STAGE_POOL_CANCEL, T_LONG), 0);
    ck_assert_int_eq(stage_future_get(running, 0, &v), 0);
    ck_assert_int_eq(((t_val *)v)->id, 7);
    for (i = 0; i < 5; i++) {
        ck_assert_int_eq(atomic_load(&q[i].ran), 0);
        ck_assert_int_eq(atomic_load(&q[i].freed), 0);
        t_gated_fini(&q[i]);
    }
    stage_future_unref(running);
    ck_assert_int_eq(atomic_load(&g.freed), 1);
    ck_assert_int_eq(stage_pool_free(p), 0);
    stage_future_unref(gate);
    t_gated_fini(&g);
}
END_TEST

/* free before close: EBUSY (also with work done and workers idle). */
START_TEST(test_free_before_close)
{
    stage_pool *p = stage_pool_new("busy", 0, 1, STAGE_FOREVER);
    stage_future *f = NULL;

    ck_assert_int_eq(stage_pool_free(p), EBUSY);
    ck_assert_int_eq(stage_pool_submit(p, plus_one, NULL, NULL, &f), 0);
    t_done(f);
    stage_future_unref(f);
    ck_assert_int_eq(stage_pool_free(p), EBUSY);
    close_free(p);
}
END_TEST

/* Closing a pool from one of its own workers: EDEADLK (the pool stays
 * open); closing another pool from a worker works. */
typedef struct closer {
    stage_pool *target;
    unsigned int flags;
    int rc;
} closer;

static void *close_body(void *arg)
{
    closer *c = arg;

    c->rc = stage_pool_close(c->target, c->flags, 60.0 * t_tol());
    return NULL;
}

START_TEST(test_close_from_worker)
{
    stage_pool *p = stage_pool_new("self", 0, 1, 1.0);
    stage_pool *other = stage_pool_new("other", 0, 1, 1.0);
    closer c = {p, 0, -1};
    stage_future *f = NULL;

    ck_assert_int_eq(stage_pool_submit(p, close_body, &c, NULL, &f), 0);
    t_done(f);
    stage_future_unref(f);
    ck_assert_int_eq(c.rc, EDEADLK);
    c.flags = STAGE_POOL_CANCEL;
    ck_assert_int_eq(stage_pool_submit(p, close_body, &c, NULL, &f), 0);
    t_done(f);
    stage_future_unref(f);
    ck_assert_int_eq(c.rc, EDEADLK);
    /* Still open. */
    ck_assert_int_eq(stage_pool_submit(p, plus_one, NULL, NULL, &f), 0);
    t_done(f);
    stage_future_unref(f);

    /* A worker of p closes `other`, which has work of its own. */
    ck_assert_int_eq(stage_pool_submit(other, plus_one, NULL, NULL, NULL), 0);
    c.target = other;
    c.flags = 0;
    ck_assert_int_eq(stage_pool_submit(p, close_body, &c, NULL, &f), 0);
    t_done(f);
    stage_future_unref(f);
    ck_assert_int_eq(c.rc, 0);
    ck_assert_uint_eq(stage_pool_workers(other), 0);
    ck_assert_int_eq(stage_pool_free(other), 0);
    close_free(p);
}
END_TEST

/* ---- Cancellation ------------------------------------------------------- */

/* A running job blocked in stage_sleep: ECANCELED promptly, future
 * CANCELLED, its value destroyed. */
START_TEST(test_cancel_running)
{
    stage_pool *p = stage_pool_new("cancel-run", 0, 1, 1.0);
    stage_future *f = NULL;
    t_gated g;
    double t0, el;

    t_gated_init(&g, NULL, 3);
    ck_assert_int_eq(stage_pool_submit(p, t_gated_body, &g, t_val_free, &f),
                     0);
    t_done(g.started);
    t0 = t_time();
    ck_assert_int_eq(stage_future_cancel(f), 0);
    t_done(f);
    el = t_time() - t0;
    ck_assert_double_lt(el, 1.0 * t_tol());
    ck_assert_int_eq(g.rc, ECANCELED);
    ck_assert_int_eq(stage_future_state(f), STAGE_CANCELLED);
    ck_assert_int_eq(stage_future_get(f, 0, NULL), ECANCELED);
    ck_assert_int_eq(stage_future_cancel(f), 0); /* CANCELLED again: 0 */
    stage_future_unref(f);
    ck_assert_int_eq(t_wait_count(&g.freed, 1, 5.0), 1);
    t_gated_fini(&g);
    close_free(p);
}
END_TEST

/* A job cancelled before a worker takes it never runs; it ends CANCELLED
 * when the worker reaches it. */
START_TEST(test_cancel_queued)
{
    stage_pool *p = stage_pool_new("cancel-q", 0, 1, 1.0);
    stage_future *gate = t_latch();
    stage_future *f = NULL, *after = NULL;
    t_gated g, q;
    void *v = NULL;

    hold_worker(p, &g, gate, 0, NULL);
    t_gated_init(&q, gate, 1);
    ck_assert_int_eq(stage_pool_submit(p, t_gated_body, &q, t_val_free, &f),
                     0);
    ck_assert_int_eq(stage_pool_submit(p, plus_one, (void *)1, NULL, &after),
                     0);
    ck_assert_int_eq(stage_future_cancel(f), 0);
    t_latch_open(gate);
    t_done(f);
    ck_assert_int_eq(stage_future_state(f), STAGE_CANCELLED);
    /* The queue goes on. */
    ck_assert_int_eq(stage_future_get(after, T_LONG, &v), 0);
    ck_assert_int_eq((intptr_t)v, 2);
    ck_assert_int_eq(atomic_load(&q.ran), 0);
    ck_assert_int_eq(atomic_load(&q.freed), 0);
    stage_future_unref(f);
    stage_future_unref(after);
    stage_future_unref(gate);
    t_gated_fini(&g);
    t_gated_fini(&q);
    close_free(p);
}
END_TEST

/* ---- Jobs are tasks ----------------------------------------------------- */

/* A job's coroutines run on its worker's own loop while it waits. */
static void *coro_ten(void *arg)
{
    (void)arg;
    stage_yield();
    return (void *)(intptr_t)10;
}

typedef struct spawner {
    pthread_t job_thread, coro_thread;
    int rc;
} spawner;

static void *coro_where(void *arg)
{
    spawner *s = arg;

    s->coro_thread = pthread_self();
    return coro_ten(NULL);
}

static void *spawn_body(void *arg)
{
    spawner *s = arg;
    stage_future *c = NULL;
    void *v = NULL;

    s->job_thread = pthread_self();
    s->rc = stage_coro_spawn(NULL, coro_where, s, NULL, 0, &c);
    if (s->rc == 0) {
        s->rc = stage_future_get(c, 60.0 * t_tol(), &v);
        stage_future_unref(c);
    }
    return v;
}

START_TEST(test_job_runs_coroutines)
{
    stage_pool *p = stage_pool_new("coros", 0, 1, 1.0);
    stage_future *f = NULL;
    spawner s;
    void *v = NULL;

    memset(&s, 0, sizeof s);
    s.rc = -1;
    ck_assert_int_eq(stage_pool_submit(p, spawn_body, &s, NULL, &f), 0);
    ck_assert_int_eq(stage_future_get(f, T_LONG, &v), 0);
    ck_assert_int_eq(s.rc, 0);
    ck_assert_int_eq((intptr_t)v, 10);
    ck_assert(pthread_equal(s.job_thread, s.coro_thread));
    stage_future_unref(f);
    close_free(p);
}
END_TEST

/* ---- Volume ------------------------------------------------------------- */

START_TEST(test_many_tiny)
{
    int n = t_slow() ? 2000 : 20000;
    stage_pool *p = stage_pool_new("tiny", 0, 4, 1.0);
    stage_future **fs = calloc((size_t)n, sizeof *fs);
    int i;

    ck_assert_ptr_nonnull(fs);
    for (i = 0; i < n; i++)
        ck_assert_int_eq(stage_pool_submit(p, plus_one, (void *)(intptr_t)i,
                                           NULL, &fs[i]),
                         0);
    ck_assert_uint_le(stage_pool_workers(p), 4);
    for (i = 0; i < n; i++) {
        void *v = NULL;

        ck_assert_int_eq(stage_future_get(fs[i], T_LONG, &v), 0);
        ck_assert_int_eq((intptr_t)v, i + 1);
        stage_future_unref(fs[i]);
    }
    free(fs);
    close_free(p);
}
END_TEST

/* ---- Known bugs (STAGE_TEST_KNOWN_BUGS) --------------------------------- */

/*
 * A worker that leaves after its idle timeout frees its loop first, which
 * cancels the coroutines its jobs left there.  Such a coroutine ("lingerer")
 * tells the test that its worker is leaving, then holds the worker there
 * (spinning: a cancelled coroutine cannot block) until the test says go.
 * That makes the window between "decided to leave" and "counted out"
 * deterministic.
 */
typedef struct lingerer {
    stage_future *leaving; /* opened when the worker starts leaving */
    atomic_int go;         /* set by the test: let the worker finish */
    int rc;                /* what stage_sleep returned */
} lingerer;

static void *linger_coro(void *arg)
{
    lingerer *l = arg;
    double deadline = t_time() + 30.0 * t_tol();
    struct timespec ts = {0, 100 * 1000};

    l->rc = stage_sleep(STAGE_FOREVER);
    t_latch_open(l->leaving);
    while (!atomic_load(&l->go) && t_time() < deadline)
        nanosleep(&ts, NULL);
    return NULL;
}

static void lingerer_init(lingerer *l)
{
    l->leaving = t_latch();
    atomic_init(&l->go, 0);
    l->rc = -1;
}

/* A job that leaves a lingerer on its worker's loop; with a gate, it waits
 * for it first (to make jobs run at once). */
typedef struct linger_job {
    lingerer *l;
    stage_future *started, *gate;
} linger_job;

static void *linger_body(void *arg)
{
    linger_job *j = arg;

    stage_coro_spawn(NULL, linger_coro, j->l, NULL, 0, NULL);
    stage_yield(); /* the lingerer is now blocked in its sleep */
    t_latch_open(j->started);
    if (j->gate != NULL)
        stage_future_wait(j->gate, 60.0 * t_tol());
    return NULL;
}

/* Bug: a job submitted while the only worker is leaving (idle timeout) is
 * never run: submit sees workers == max and starts no worker, the leaving
 * worker does not look at the queue again.  Its future stays PENDING, even
 * after stage_pool_close(p, 0, ...) returned 0. */
START_TEST(test_bug_submit_while_leaving)
{
    stage_pool *p = stage_pool_new("leaving", 0, 1, 0.02);
    lingerer l;
    linger_job j;
    stage_future *f = NULL;
    void *v = NULL;

    lingerer_init(&l);
    j.l = &l;
    j.started = t_latch();
    j.gate = NULL;
    ck_assert_int_eq(stage_pool_submit(p, linger_body, &j, NULL, &f), 0);
    t_done(f);
    stage_future_unref(f);
    t_done(l.leaving); /* the idle worker decided to leave */
    ck_assert_int_eq(l.rc, ECANCELED);
    ck_assert_int_eq(stage_pool_submit(p, plus_one, (void *)1, NULL, &f), 0);
    atomic_store(&l.go, 1);
    ck_assert_int_eq(stage_future_get(f, 2.0 * t_tol(), &v), 0);
    ck_assert_int_eq((intptr_t)v, 2);
    stage_future_unref(f);
    stage_future_unref(j.started);
    stage_future_unref(l.leaving);
    close_free(p);
}
END_TEST

/* Bug: two workers whose idle timeouts expire together both leave although
 * min_workers is 1 (each checks workers > min before the other is counted
 * out). */
START_TEST(test_bug_min_race)
{
    stage_pool *p = stage_pool_new("minrace", 1, 2, 0.02);
    stage_future *gate = t_latch();
    lingerer l[2];
    linger_job j[2];
    stage_future *f[2];
    int i, left;

    for (i = 0; i < 2; i++) {
        lingerer_init(&l[i]);
        j[i].l = &l[i];
        j[i].started = t_latch();
        j[i].gate = gate;
        ck_assert_int_eq(stage_pool_submit(p, linger_body, &j[i], NULL, &f[i]),
                         0);
    }
    for (i = 0; i < 2; i++)
        t_done(j[i].started);
    ck_assert_uint_eq(stage_pool_workers(p), 2);
    t_latch_open(gate);
    for (i = 0; i < 2; i++)
        t_done(f[i]);
    /* One worker leaves (and is held while leaving)... */
    for (i = 0; i < 1000 && stage_future_state(l[0].leaving) == STAGE_PENDING &&
                stage_future_state(l[1].leaving) == STAGE_PENDING;
         i++)
        ck_assert_int_eq(stage_sleep(0.01 * t_tol()), 0);
    /* ... the other must stay: give it many idle timeouts to misbehave. */
    ck_assert_int_eq(stage_sleep(0.3), 0);
    left = (stage_future_state(l[0].leaving) == STAGE_DONE) +
           (stage_future_state(l[1].leaving) == STAGE_DONE);
    for (i = 0; i < 2; i++)
        atomic_store(&l[i].go, 1);
    ck_assert_int_eq(left, 1);
    ck_assert_uint_eq(wait_workers_at_most(p, 1), 1);
    close_free(p);
    for (i = 0; i < 2; i++) {
        stage_future_unref(f[i]);
        stage_future_unref(j[i].started);
        stage_future_unref(l[i].leaving);
    }
    stage_future_unref(gate);
}
END_TEST

static Suite *pool_suite(void)
{
    Suite *s = suite_create("pool");
    TCase *tc;

    tc = t_tcase(s, "api", 10);
    tcase_add_test(tc, test_new_einval);
    tcase_add_test(tc, test_calls_einval);
    tcase_add_test(tc, test_lazy_start);
    tcase_add_test(tc, test_submit_value);
    tcase_add_test(tc, test_submit_detached);
    tcase_add_test(tc, test_submit_failure);
    tcase_add_test(tc, test_fifo_one_worker);

    tc = t_tcase(s, "workers", 20);
    tcase_add_test(tc, test_grows_to_max);
    tcase_add_test(tc, test_worker_names);
    tcase_add_test(tc, test_idle_exit_keeps_min);
    tcase_add_test(tc, test_idle_exit_to_zero);
    tcase_add_test(tc, test_idle_forever);

    tc = t_tcase(s, "close", 10);
    tcase_add_test(tc, test_close_runs_queued);
    tcase_add_test(tc, test_close_cancels_queued);
    tcase_add_test(tc, test_free_before_close);
    tcase_add_test(tc, test_close_from_worker);

    tc = t_tcase(s, "cancel", 10);
    tcase_add_test(tc, test_cancel_running);
    tcase_add_test(tc, test_cancel_queued);
    tcase_add_test(tc, test_job_runs_coroutines);

    tc = t_tcase(s, "volume", 60);
    tcase_add_test(tc, test_many_tiny);

    if (t_known_bugs()) {
        tc = t_tcase(s, "known-bugs", 10);
        tcase_add_test(tc, test_bug_submit_while_leaving);
        tcase_add_test(tc, test_bug_min_race);
    }
    return s;
}

T_MAIN(pool_suite)
