/* SPDX-License-Identifier: MIT */
/*
 * func.c - stage functions (Agently StageFunction): a function bound to a
 * Stage that is started once and waited for any number of times, from any
 * thread or coroutine, even before anyone started it.
 *
 * `started` is a plain future resolved, at the first start, with the run's
 * task future as its value (holding one reference to it).  Waiting is "wait
 * for started, then wait for the task"; reset replaces `started` with a
 * fresh one once the run has finished.
 */
#include "common-int.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <pthread.h>

struct stage_func {
    /* Protects started and starting. */
    pthread_mutex_t lock;
    /* acq_rel on the decrement: the last unref sees every write. */
    atomic_size_t refs;
    stage *st;
    stage_task_fn fn;
    unsigned int flags;
    stage_destroy_fn destroy;
    stage_future *started; /* value: the run's task future, once started */
    int starting;          /* a start is between its check and its go */
};

stage_func *stage_func_new(stage *st, stage_task_fn fn, unsigned int flags,
                           stage_destroy_fn result_destroy)
{
    if (!fn || (flags & ~STAGE_FUNC_CORO)) {
        errno = EINVAL;
        return NULL;
    }
    if (!st && !(st = stage_default()))
        return NULL;
    stage_func *f = calloc(1, sizeof *f);
    if (!f || !(f->started = stage_future_new()) ||
        pthread_mutex_init(&f->lock, NULL)) {
        if (f)
            stage_future_unref(f->started);
        free(f);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&f->refs, 1);
    f->st = st;
    f->fn = fn;
    f->flags = flags;
    f->destroy = result_destroy;
    return f;
}

stage_func *stage_func_ref(stage_func *f)
{
    if (f)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

void stage_func_unref(stage_func *f)
{
    if (!f || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    stage_future_unref(f->started);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

static void unref_task(void *task) { stage_future_unref(task); }

int stage_func_start(stage_func *f, void *arg)
{
    if (!f)
        return EINVAL;
    stage_future *fresh = stage_future_new();
    if (!fresh)
        return ENOMEM;
    pthread_mutex_lock(&f->lock);
    if (!f->starting && stage_future_state(f->started) == STAGE_FAILED) {
        /* The last start failed (its waiters got the error): try again. */
        stage_future *old = f->started;
        f->started = fresh;
        fresh = old;
    }
    if (f->starting || stage_future_state(f->started) != STAGE_PENDING) {
        /* Started already: until reset, no rerun. */
        pthread_mutex_unlock(&f->lock);
        stage_future_unref(fresh);
        return EALREADY;
    }
    f->starting = 1;
    stage_future *started = stage_future_ref(f->started);
    pthread_mutex_unlock(&f->lock);
    stage_future_unref(fresh); /* unused, or the failed one replaced */
    stage_future *task;
    int err = (f->flags & STAGE_FUNC_CORO)
                  ? stage_go_coro(f->st, f->fn, arg, f->destroy, &task)
                  : stage_go(f->st, f->fn, arg, f->destroy, &task);
    pthread_mutex_lock(&f->lock);
    f->starting = 0;
    pthread_mutex_unlock(&f->lock);
    if (!err)
        stage_future_resolve(started, task, unref_task);
    else if (stage_future_fail(started, err,
                               "the stage function could not start") != 0)
        /* waiters learn it too, rather than wait for a run that cannot
         * happen (a closed Stage); reset allows another try.  With no
         * memory for the message, fail without one (else they would
         * wait forever). */
        stage_future_fail(started, err, NULL);
    stage_future_unref(started);
    return err;
}

int stage_func_wait(stage_func *f, double timeout, void **value)
{
    int64_t deadline;
    if (!f || stage__deadline(timeout, &deadline))
        return EINVAL;
    pthread_mutex_lock(&f->lock);
    stage_future *started = stage_future_ref(f->started);
    pthread_mutex_unlock(&f->lock);
    void *task = NULL;
    int err = stage_future_get(started, timeout, &task);
    if (!err) {
        double left = timeout;
        if (deadline >= 0) {
            left = (double)(deadline - stage_now()) / 1e9;
            if (left < 0)
                left = 0;
        }
        err = stage_future_get(task, left, value);
    }
    stage_future_unref(started);
    return err;
}

int stage_func_reset(stage_func *f)
{
    if (!f)
        return EINVAL;
    stage_future *fresh = stage_future_new();
    if (!fresh)
        return ENOMEM;
    pthread_mutex_lock(&f->lock);
    void *task = NULL;
    int busy = f->starting ||
               (stage_future_state(f->started) == STAGE_DONE &&
                stage_future_get(f->started, 0, &task) == 0 &&
                stage_future_state(task) == STAGE_PENDING);
    if (busy) {
        pthread_mutex_unlock(&f->lock);
        stage_future_unref(fresh);
        return EBUSY;
    }
    if (stage_future_state(f->started) == STAGE_PENDING) {
        /* Never started: nothing to reset, and whoever already waits
         * keeps waiting for the run the next start makes. */
        pthread_mutex_unlock(&f->lock);
        stage_future_unref(fresh);
        return 0;
    }
    stage_future *old = f->started;
    f->started = fresh;
    pthread_mutex_unlock(&f->lock);
    stage_future_unref(old);
    return 0;
}
