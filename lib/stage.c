/* SPDX-License-Identifier: MIT */
/*
 * stage.c - the Stage: a dispatcher with one loop thread for coroutines
 * and a pool for plain functions (Agently Stage), plus run-anywhere and
 * offload.
 *
 * Every task started through a Stage is counted in `outstanding` until it
 * settles; close seals the Stage, waits until the count is zero (a hybrid
 * wait on `idle`, so a coroutine of another Stage can close this one), then
 * stops the loop thread and closes the pool.
 *
 * Failures are never lost: a task that fails is kept (one reference) on
 * `failures`.  When the Stage closes, each failure nobody collected (nobody
 * read its error through get, take, error or message) goes to the error
 * handler; the default handler prints it on stderr.  Non-daemon Stages are
 * closed at process exit; daemon Stages only report at exit.
 */
#include "common-int.h"
#include "loop-int.h"
#include "future-int.h"
#include "pool-int.h"
#include "local-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct stage {
    /* Protects every field below but the immutable ones (name, flags,
     * pool).  Lock order: taken alone, or before a future's lock. */
    pthread_mutex_t lock;
    char *name;
    unsigned int flags;
    stage_pool *pool;
    /* The loop thread, started by the first stage_go_coro. */
    int loop_state;           /* 0 none, 1 starting, 2 running, 3 stopped */
    pthread_t loop_thread;
    stage_loop *loop;
    stage_future *loop_ready; /* resolved with the loop by its thread */
    stage_future *loop_stop;  /* resolved by close: the thread returns */
    size_t outstanding;       /* tasks started and not settled */
    stage_future *idle;       /* made by close; resolved at outstanding 0 */
    int sealed, closed;
    int finishing;            /* one close is stopping the threads */
    stage_future *closed_f;   /* resolved when that close is complete */
    int freed;                /* stage_free ran: report with defaults */
    /* The application's handle plus one per task future (their owner);
     * acq_rel decrement, the last frees the memory. */
    atomic_size_t refs;
    stage_future **failures;  /* failed tasks, one reference each */
    size_t nfailures, capfailures;
    stage_error_fn handler;
    void *handler_data;
    stage_destroy_fn handler_destroy;
    stage__node all;          /* on `stages`, for the exit handler */
    /* The exit handler leaves it alone: inherited through fork() (its
     * threads are not in this process), or its close failed at exit (a
     * task of it called exit()).  Written under stages_lock. */
    int exit_skip;
};

/* Every Stage alive, for the exit handler.  Protected by stages_lock,
 * which is taken before a Stage's lock, never after. */
static pthread_mutex_t stages_lock = PTHREAD_MUTEX_INITIALIZER;
static stage__list stages = {&stages, &stages};
static pthread_once_t atexit_once = PTHREAD_ONCE_INIT;
/* The default Stage; default_lock protects the pointer. */
static stage *default_stage;
static pthread_mutex_t default_lock = PTHREAD_MUTEX_INITIALIZER;

static void at_exit(void);
/* In the child of a fork(): the Stages copied from the parent have no
 * threads here; exit must not wait for them.  The lock may have been held
 * by a thread that does not exist in the child: make it anew. */
static void inherited(void)
{
    pthread_mutex_init(&stages_lock, NULL);
    for (stage__node *n = stages.next; n != &stages; n = n->next)
        stage__container_of(n, stage, all)->exit_skip = 1;
}
static void register_atexit(void)
{
    atexit(at_exit);
    pthread_atfork(NULL, NULL, inherited);
}

/* ---- Reports ------------------------------------------------------------ */

static void default_handler(stage *st, const char *task, int err,
                            const char *message, void *user_data)
{
    (void)user_data;
    fprintf(stderr, "libstage: %s%s%sunobserved task failure: %s%s%s (%s)\n",
            st ? "stage " : "", st ? st->name : "", st ? ": " : "",
            strerror(err), message ? ": " : "", message ? message : "", task);
}

void stage__report(stage *st, stage_future *task, int err, const char *msg)
{
    char buf[32];
    const char *name = task ? task->name : NULL;
    if (!name) {
        snprintf(buf, sizeof buf, "%s-%llu",
                 task && !task->is_task ? "Future" : "Task",
                 task ? (unsigned long long)task->id : 0ULL);
        name = buf;
    }
    stage_error_fn fn = default_handler;
    void *data = NULL;
    stage *arg = st;
    if (st) {
        pthread_mutex_lock(&st->lock);
        if (st->handler && !st->freed) {
            fn = st->handler;
            data = st->handler_data;
        }
        if (st->freed)
            arg = NULL; /* only its name is left */
        pthread_mutex_unlock(&st->lock);
    }
    if (fn == default_handler && st && !arg) {
        char who[96];
        snprintf(who, sizeof who, "%s (stage %s, freed)", name, st->name);
        fn(NULL, who, err, msg, data);
    } else {
        fn(arg, name, err, msg, data);
    }
}

/* Hand every failure nobody collected to the handler; drop them all. */
static void report_failures(stage *st)
{
    pthread_mutex_lock(&st->lock);
    stage_future **f = st->failures;
    size_t n = st->nfailures;
    st->failures = NULL;
    st->nfailures = st->capfailures = 0;
    pthread_mutex_unlock(&st->lock);
    for (size_t i = 0; i < n; i++) {
        if (!stage__future_observed(f[i]))
            stage__report(st, f[i], f[i]->err, f[i]->msg);
        stage_future_unref(f[i]);
    }
    free(f);
}

/* ---- Life cycle --------------------------------------------------------- */

stage *stage_new(const char *name, size_t max_workers, unsigned int flags)
{
    if (flags & ~STAGE_DAEMON) {
        errno = EINVAL;
        return NULL;
    }
    stage *st = calloc(1, sizeof *st);
    if (!st) {
        errno = ENOMEM;
        return NULL;
    }
    st->name = strdup(name ? name : "stage");
    st->pool = stage_pool_new(st->name, 0, max_workers ? max_workers : 64,
                              10.0);
    if (!st->name || !st->pool || pthread_mutex_init(&st->lock, NULL)) {
        if (st->pool) {
            stage_pool_close(st->pool, 0, STAGE_FOREVER);
            stage_pool_free(st->pool);
        }
        free(st->name);
        free(st);
        errno = ENOMEM;
        return NULL;
    }
    st->flags = flags;
    atomic_init(&st->refs, 1);
    pthread_once(&atexit_once, register_atexit);
    pthread_mutex_lock(&stages_lock);
    stage__list_push(&stages, &st->all);
    pthread_mutex_unlock(&stages_lock);
    return st;
}

stage *stage_default(void)
{
    /* A lock rather than pthread_once, so a failed creation is retried. */
    pthread_mutex_lock(&default_lock);
    stage *st = default_stage;
    if (!st)
        st = default_stage = stage_new("stage", 0, 0);
    pthread_mutex_unlock(&default_lock);
    return st;
}

void stage__ref(stage *st)
{
    atomic_fetch_add_explicit(&st->refs, 1, memory_order_relaxed);
}

void stage__unref(stage *st)
{
    if (atomic_fetch_sub_explicit(&st->refs, 1, memory_order_acq_rel) != 1)
        return;
    pthread_mutex_destroy(&st->lock);
    free(st->name);
    free(st);
}

int stage_set_error_handler(stage *st, stage_error_fn fn, void *user_data,
                            stage_destroy_fn destroy)
{
    if (!st)
        return EINVAL;
    pthread_mutex_lock(&st->lock);
    void *old = st->handler_data;
    stage_destroy_fn old_destroy = st->handler_destroy;
    st->handler = fn;
    st->handler_data = user_data;
    st->handler_destroy = destroy;
    pthread_mutex_unlock(&st->lock);
    if (old_destroy)
        old_destroy(old);
    return 0;
}

/* ---- Starting tasks ----------------------------------------------------- */

/* Completion of every task of the Stage: keep failures, count down. */
static void task_settled(stage_future *task, void *user_data)
{
    stage *st = user_data;
    stage_future *idle = NULL;
    int report_now = 0;
    pthread_mutex_lock(&st->lock);
    if (stage_future_state(task) == STAGE_FAILED) {
        if (st->nfailures == st->capfailures) {
            size_t cap = st->capfailures ? 2 * st->capfailures : 8;
            stage_future **v = realloc(st->failures, cap * sizeof *v);
            if (v) {
                st->failures = v;
                st->capfailures = cap;
            }
        }
        if (st->nfailures < st->capfailures)
            st->failures[st->nfailures++] = stage_future_ref(task);
        else /* no memory to keep it: report it now rather than lose it */
            report_now = 1;
    }
    if (--st->outstanding == 0 && st->idle)
        idle = stage_future_ref(st->idle);
    pthread_mutex_unlock(&st->lock);
    if (report_now)
        stage__report(st, task, task->err, task->msg);
    /* From here on `st` may be freed by a close that saw outstanding 0. */
    if (idle) {
        stage_future_resolve(idle, NULL, NULL);
        stage_future_unref(idle);
    }
}

/* Count a task in; EPIPE once sealed. */
static int enter(stage *st)
{
    pthread_mutex_lock(&st->lock);
    int err = st->sealed ? EPIPE : 0;
    if (!err)
        st->outstanding++;
    pthread_mutex_unlock(&st->lock);
    return err;
}

static void leave(stage *st)
{
    pthread_mutex_lock(&st->lock);
    st->outstanding--;
    pthread_mutex_unlock(&st->lock);
}

/* After a successful start: track the task (with the callback record
 * allocated before the start), hand out the response. */
static int track(stage *st, stage_future *task, struct callback *rec,
                 stage_future **out)
{
    /* Registering cannot fail: it used to be allocated here, and on
     * ENOMEM the caller waited for the task, which deadlocked when the
     * task waited for the caller (a lockstep generator's producer). */
    stage__future_link_callback(task, rec, task_settled, NULL, 0, st, NULL);
    if (out)
        *out = task;
    else
        stage_future_unref(task);
    return 0;
}

static void *loop_main(void *arg)
{
    stage *st = arg;
#ifdef HAVE_PTHREAD_SETNAME_NP
    char name[16];
    snprintf(name, sizeof name, "%.10s-loop", st->name);
    pthread_setname_np(pthread_self(), name);
#endif
    stage_loop *loop = stage_loop_current();
    stage_future_resolve(st->loop_ready, loop, NULL);
    if (loop) {
        stage_loop_run(loop, st->loop_stop, STAGE_FOREVER);
        stage_loop_free(loop);
    }
    return NULL;
}

/* The Stage's loop, its thread started on first use. */
static int stage_loop_get(stage *st, stage_loop **out)
{
    pthread_mutex_lock(&st->lock);
    if (st->loop_state == 0) {
        st->loop_ready = stage_future_new();
        st->loop_stop = stage_future_new();
        int err = !st->loop_ready || !st->loop_stop ? ENOMEM : 0;
        if (!err && pthread_create(&st->loop_thread, NULL, loop_main, st))
            err = EAGAIN;
        if (err) {
            stage_future_unref(st->loop_ready);
            stage_future_unref(st->loop_stop);
            st->loop_ready = st->loop_stop = NULL;
            pthread_mutex_unlock(&st->lock);
            return err;
        }
        st->loop_state = 1;
    }
    stage_future *ready = stage_future_ref(st->loop_ready);
    pthread_mutex_unlock(&st->lock);
    void *loop = NULL;
    /* Not cancellable: the thread is being started for us regardless (a
     * shielded wait; retrying a cancellable one would spin). */
    int err = stage__future_wait_shielded(ready);
    if (!err)
        err = stage_future_get(ready, 0, &loop);
    stage_future_unref(ready);
    if (err || !loop)
        return err ? err : ENOMEM;
    pthread_mutex_lock(&st->lock);
    st->loop = loop;
    if (st->loop_state == 1)
        st->loop_state = 2;
    pthread_mutex_unlock(&st->lock);
    *out = loop;
    return 0;
}

/* Start a task of the Stage: on its pool, or as a coroutine of its loop. */
static int go(stage *st, int coro, stage_task_fn fn, void *arg,
              stage_destroy_fn result_destroy, stage_future **out)
{
    if (!st || !fn)
        return EINVAL;
    int err = enter(st);
    if (err)
        return err;
    struct callback *rec = malloc(sizeof *rec);
    if (!rec) {
        leave(st);
        return ENOMEM;
    }
    stage_future *task;
    if (coro) {
        stage_loop *loop;
        err = stage_loop_get(st, &loop);
        if (!err)
            err = stage__coro_spawn(loop, fn, arg, result_destroy, 0, st,
                                    &task);
    } else {
        err = stage__pool_submit(st->pool, fn, arg, result_destroy, st,
                                 &task);
    }
    if (err) {
        free(rec);
        leave(st);
        return err;
    }
    return track(st, task, rec, out);
}

int stage_go(stage *st, stage_task_fn fn, void *arg,
             stage_destroy_fn result_destroy, stage_future **out)
{
    return go(st, 0, fn, arg, result_destroy, out);
}

int stage_go_coro(stage *st, stage_task_fn fn, void *arg,
                  stage_destroy_fn result_destroy, stage_future **out)
{
    return go(st, 1, fn, arg, result_destroy, out);
}

int stage__go_pool(stage *st, stage_task_fn fn, void *arg,
                   stage_destroy_fn destroy, stage_future **out)
{
    pthread_mutex_lock(&st->lock);
    stage_pool *pool = st->sealed ? NULL : st->pool;
    pthread_mutex_unlock(&st->lock);
    if (!pool)
        return EPIPE;
    return stage__pool_submit(pool, fn, arg, destroy, st, out);
}

/* ---- Closing ------------------------------------------------------------ */

/* Is the caller one of st's own tasks (its pool or its loop thread)? */
static int inside(stage *st)
{
    if (stage__pool_current() == st->pool)
        return 1;
    pthread_mutex_lock(&st->lock);
    int in = st->loop && stage__loop_get() == st->loop;
    pthread_mutex_unlock(&st->lock);
    return in;
}

/* What is left after double timeout at `deadline` (absolute ns). */
static double time_left(double timeout, int64_t deadline)
{
    if (deadline < 0)
        return timeout;
    double left = (double)(deadline - stage_now()) / 1e9;
    return left < 0 ? 0 : left;
}

int stage_close(stage *st, double timeout)
{
    int64_t deadline;
    if (!st || stage__deadline(timeout, &deadline))
        return EINVAL;
    pthread_mutex_lock(&st->lock);
    int closed = st->closed;
    pthread_mutex_unlock(&st->lock);
    if (closed)
        return 0;
    if (inside(st))
        return EDEADLK;
    pthread_mutex_lock(&st->lock);
    st->sealed = 1;
    if (!st->closed_f)
        st->closed_f = stage_future_new();
    if (st->outstanding > 0 && !st->idle)
        st->idle = stage_future_new();
    if (!st->closed_f || (st->outstanding > 0 && !st->idle)) {
        pthread_mutex_unlock(&st->lock);
        return ENOMEM;
    }
    stage_future *idle =
        st->outstanding > 0 ? stage_future_ref(st->idle) : NULL;
    pthread_mutex_unlock(&st->lock);
    if (idle) {
        int err = stage_future_wait(idle, time_left(timeout, deadline));
        stage_future_unref(idle);
        if (err)
            return err; /* stays sealed; close may be called again */
    }
    /* Every task settled.  One closer stops the loop thread and the pool;
     * any other waits until it is done. */
    pthread_mutex_lock(&st->lock);
    int finisher = !st->finishing;
    st->finishing = 1;
    stage_future *done = stage_future_ref(st->closed_f);
    int had_loop = st->loop_state == 1 || st->loop_state == 2;
    if (finisher && had_loop)
        st->loop_state = 3;
    pthread_mutex_unlock(&st->lock);
    if (!finisher) {
        int err = stage_future_wait(done, time_left(timeout, deadline));
        stage_future_unref(done);
        return err;
    }
    if (had_loop) {
        stage_future_resolve(st->loop_stop, NULL, NULL);
        pthread_join(st->loop_thread, NULL);
    }
    stage_pool_close(st->pool, 0, STAGE_FOREVER);
    pthread_mutex_lock(&st->lock);
    st->closed = 1;
    pthread_mutex_unlock(&st->lock);
    report_failures(st);
    stage_future_resolve(done, NULL, NULL);
    stage_future_unref(done);
    return 0;
}

int stage_free(stage *st)
{
    if (!st)
        return EINVAL;
    int err = stage_close(st, STAGE_FOREVER);
    if (err)
        return err;
    pthread_mutex_lock(&stages_lock);
    stage__list_remove(&st->all);
    pthread_mutex_unlock(&stages_lock);
    stage_pool_free(st->pool);
    st->pool = NULL;
    stage_future_unref(st->loop_ready);
    stage_future_unref(st->loop_stop);
    stage_future_unref(st->idle);
    stage_future_unref(st->closed_f);
    pthread_mutex_lock(&st->lock);
    st->freed = 1;
    void *data = st->handler_data;
    stage_destroy_fn destroy = st->handler_destroy;
    st->handler = NULL;
    st->handler_data = NULL;
    st->handler_destroy = NULL;
    pthread_mutex_unlock(&st->lock);
    if (destroy)
        destroy(data);
    /* Responses may outlive us; they keep the rest (name, lock). */
    stage__unref(st);
    return 0;
}

/* At exit: close non-daemon Stages (waiting for their tasks), report the
 * daemon ones' failures; free the default Stage. */
static void at_exit(void)
{
    for (;;) {
        stage *st = NULL;
        pthread_mutex_lock(&stages_lock);
        for (stage__node *n = stages.next; n != &stages; n = n->next) {
            stage *s = stage__container_of(n, stage, all);
            pthread_mutex_lock(&s->lock);
            int done = s->closed;
            pthread_mutex_unlock(&s->lock);
            if (!done && !(s->flags & STAGE_DAEMON) && !s->exit_skip) {
                st = s;
                break;
            }
        }
        pthread_mutex_unlock(&stages_lock);
        if (!st)
            break;
        if (stage_close(st, STAGE_FOREVER) != 0)
            st->exit_skip = 1;
    }
    pthread_mutex_lock(&stages_lock);
    for (stage__node *n = stages.next; n != &stages; n = n->next) {
        stage *s = stage__container_of(n, stage, all);
        if ((s->flags & STAGE_DAEMON) && !s->exit_skip)
            report_failures(s);
    }
    pthread_mutex_unlock(&stages_lock);
    if (default_stage && !default_stage->exit_skip) {
        stage_free(default_stage);
        default_stage = NULL;
    }
}

/* ---- Offload and run-anywhere ------------------------------------------- */

int stage_offload(stage *st, stage_task_fn fn, void *arg,
                  stage_destroy_fn result_destroy, double timeout,
                  void **result)
{
    if (!fn || !result)
        return EINVAL;
    if (!st && !(st = stage_default()))
        return ENOMEM;
    stage_future *task;
    int err = stage_go(st, fn, arg, result_destroy, &task);
    if (err)
        return err;
    err = stage_future_wait(task, timeout);
    if (err) {
        /* The waiting side gave up (timeout or its own cancellation):
         * cancel the offloaded call too; its result, if any, is
         * destroyed when it returns. */
        stage_future_cancel(task);
        stage_future_unref(task);
        return err;
    }
    err = stage_future_take(task, result);
    stage_future_unref(task);
    return err;
}

int stage_run(stage_task_fn fn, void *arg, stage_destroy_fn result_destroy,
              void **result)
{
    if (!fn)
        return EINVAL;
    stage_loop *loop = stage__loop_get();
    stage_future *self = stage__task_current();
    if (loop && loop->current) {
        /* In a coroutine: run inline, but keep a failure of fn apart
         * from the caller's own task state, and its task-local variables
         * too (a copy, as a new task would get). */
        int saved_err = self->fail_err;
        char *saved_msg = self->fail_msg;
        self->fail_err = 0;
        self->fail_msg = NULL;
        stage__locals *prev = stage__locals_install(self->locals);
        void *r = fn(arg);
        stage__locals_restore(prev);
        int err = self->fail_err;
        free(self->fail_msg);
        self->fail_err = saved_err;
        self->fail_msg = saved_msg;
        if (!err && stage__task_cancel_requested(self))
            err = ECANCELED; /* cancelled while fn ran */
        if (err) {
            if (r && result_destroy)
                result_destroy(r);
            return err;
        }
        if (result)
            *result = r;
        else if (r && result_destroy)
            result_destroy(r);
        return 0;
    }
    /* On a plain thread: a coroutine on this thread's own loop, which runs
     * while we wait for it. */
    stage_future *task;
    int err = stage_coro_spawn(NULL, fn, arg, result_destroy, 0, &task);
    if (err)
        return err;
    err = stage_future_wait(task, STAGE_FOREVER);
    if (err) {
        /* We were cancelled: so is the call, and it ends before we do. */
        stage_future_cancel(task);
        while (stage_future_state(task) == STAGE_PENDING)
            stage_yield();
        stage_future_unref(task);
        return err;
    }
    void *r = NULL;
    err = stage_future_take(task, &r);
    if (!err) {
        if (result)
            *result = r;
        else if (r && result_destroy)
            result_destroy(r);
    }
    stage_future_unref(task);
    return err;
}
