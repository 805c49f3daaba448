/* SPDX-License-Identifier: MIT */
/*
 * future.c - one-shot, thread-safe, reference-counted futures; tasks.
 *
 * States: PENDING -> DONE (value) | FAILED (error, message) | CANCELLED,
 * decided once, under `lock`.  Waiters (threads and coroutines alike) are
 * stage__waiter records listed in `waiters`; settling wakes them all and
 * then runs the callbacks, outside the lock, in registration order.
 *
 * A task's future also carries the task's cancellation request and the
 * waiter the task is blocked in right now (task_waiter), so a cancel from
 * any thread can decide that wait as CANCELLED.  The task registers its
 * waiter under `lock` and unregisters it under `lock` before the waiter
 * leaves its stack frame, which is what keeps the canceller's pointer
 * valid.
 *
 * Lock order: a future's lock, then a loop's lock (stage__waiter_wake).  A
 * future's lock is never held while taking another future's.
 */
#include "common-int.h"
#include "loop-int.h"
#include "future-int.h"
#include "local-int.h"
#include "stream-int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Number futures, and tasks apart (their default name is "Task-<id>", the
 * first task of a process is Task-1); relaxed: only uniqueness matters. */
static atomic_uint_fast64_t next_id, next_task_id;

static stage_future *future_alloc(int is_task)
{
    stage_future *f = calloc(1, sizeof *f);
    if (!f)
        return NULL;
    if (pthread_mutex_init(&f->lock, NULL) != 0) {
        free(f);
        return NULL;
    }
    atomic_init(&f->refs, 1);
    atomic_init(&f->state, STAGE_PENDING);
    atomic_init(&f->cancel, 0);
    stage__list_init(&f->waiters);
    f->cbs_tail = &f->cbs;
    f->is_task = is_task;
    atomic_init(&f->observed, 0);
    atomic_init(&f->taken, 0);
    f->id = atomic_fetch_add_explicit(is_task ? &next_task_id : &next_id, 1,
                                      memory_order_relaxed) +
            1;
    /* A task starts with its creator's task-local variables. */
    if (is_task)
        f->locals = stage__locals_capture();
    return f;
}

stage_future *stage_future_new(void)
{
    stage_future *f = future_alloc(0);
    if (!f)
        errno = ENOMEM;
    return f;
}

stage_future *stage__future_new_task(void) { return future_alloc(1); }

stage_future *stage_future_ref(stage_future *f)
{
    if (f)
        atomic_fetch_add_explicit(&f->refs, 1, memory_order_relaxed);
    return f;
}

static const unsigned int state_bit[] = {
    [STAGE_DONE] = STAGE_ON_DONE,
    [STAGE_FAILED] = STAGE_ON_FAILED,
    [STAGE_CANCELLED] = STAGE_ON_CANCELLED,
};

/* Run (call != 0) or just dispose of a callback list, in order. */
static void run_callbacks(stage_future *f, struct callback *cb, int call)
{
    while (cb) {
        struct callback *next = cb->next;
        if (call && cb->fn) {
            cb->fn(f, cb->user_data);
        } else if (call && (cb->when & state_bit[atomic_load_explicit(
                                &f->state, memory_order_acquire)])) {
            int err = cb->obs(f, cb->user_data);
            if (err)
                stage__report(f->owner, f, err, "an observer failed");
        }
        if (cb->destroy)
            cb->destroy(cb->user_data);
        free(cb);
        cb = next;
    }
}

void stage_future_unref(stage_future *f)
{
    if (!f || atomic_fetch_sub_explicit(&f->refs, 1, memory_order_acq_rel) != 1)
        return;
    stage__assert(stage__list_empty(&f->waiters));
    if (f->value && f->destroy && !atomic_load_explicit(&f->taken,
                                                        memory_order_relaxed))
        f->destroy(f->value);
    run_callbacks(f, f->cbs, 0);
    free(f->msg);
    free(f->fail_msg);
    free(f->name);
    stage__locals_unref(f->locals);
    if (f->owner)
        stage__unref(f->owner);
    pthread_mutex_destroy(&f->lock);
    free(f);
}

/*
 * PENDING -> state.  Called with f->lock held; releases it.  Wakes every
 * waiter, then runs the callbacks with the lock released.
 *
 * A woken waiter may drop the last reference at once, while we still walk
 * the list or run callbacks: the settler may well hold no reference of its
 * own (a thread resolving a future that its waiter owns).  So settling
 * holds a reference of its own from here to the end; taking it is safe
 * because nobody can be released before the state changes.
 */
static void settle_locked(stage_future *f, int state)
{
    stage_future_ref(f);
    atomic_store_explicit(&f->state, state, memory_order_release);
    stage__node *n;
    while ((n = stage__list_pop(&f->waiters)) != NULL)
        stage__waiter_wake(stage__container_of(n, stage__waiter, link),
                           STAGE__SIGNALLED);
    struct callback *cbs = f->cbs;
    f->cbs = NULL;
    f->cbs_tail = &f->cbs;
    pthread_mutex_unlock(&f->lock);
    run_callbacks(f, cbs, 1);
    stage_future_unref(f);
}

/* The error for settling a future that is no longer PENDING. */
static int settled_error(stage_future *f)
{
    return atomic_load_explicit(&f->state, memory_order_relaxed) ==
                   STAGE_CANCELLED
               ? ECANCELED
               : EALREADY;
}

int stage_future_resolve(stage_future *f, void *value,
                         stage_destroy_fn destroy)
{
    if (!f || f->is_task)
        return EINVAL;
    pthread_mutex_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) !=
        STAGE_PENDING) {
        int err = settled_error(f);
        pthread_mutex_unlock(&f->lock);
        return err;
    }
    f->value = value;
    f->destroy = destroy;
    settle_locked(f, STAGE_DONE);
    return 0;
}

STAGE_PRINTF(1, 0) static char *vformat(const char *fmt, va_list ap)
{
    char *msg = NULL;
    if (fmt && vasprintf(&msg, fmt, ap) < 0)
        msg = NULL;
    return msg;
}

int stage_future_fail(stage_future *f, int err, const char *fmt, ...)
{
    if (!f || f->is_task || err <= 0)
        return EINVAL;
    va_list ap;
    va_start(ap, fmt);
    char *msg = vformat(fmt, ap);
    va_end(ap);
    if (fmt && !msg)
        return ENOMEM;
    pthread_mutex_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) !=
        STAGE_PENDING) {
        int e = settled_error(f);
        pthread_mutex_unlock(&f->lock);
        free(msg);
        return e;
    }
    f->err = err;
    f->msg = msg;
    settle_locked(f, STAGE_FAILED);
    return 0;
}

int stage_future_cancel(stage_future *f)
{
    if (!f)
        return EINVAL;
    pthread_mutex_lock(&f->lock);
    int state = atomic_load_explicit(&f->state, memory_order_relaxed);
    if (state != STAGE_PENDING) {
        pthread_mutex_unlock(&f->lock);
        return state == STAGE_CANCELLED ? 0 : EALREADY;
    }
    if (f->is_task) {
        /* The task settles its own future when its body returns. */
        atomic_store_explicit(&f->cancel, 1, memory_order_relaxed);
        if (f->task_waiter)
            stage__waiter_wake(f->task_waiter, STAGE__CANCELLED);
        pthread_mutex_unlock(&f->lock);
        return 0;
    }
    f->err = ECANCELED;
    settle_locked(f, STAGE_CANCELLED);
    return 0;
}

/* ---- Tasks -------------------------------------------------------------- */

int stage__task_attach(stage_future *t, stage__waiter *w)
{
    pthread_mutex_lock(&t->lock);
    if (atomic_load_explicit(&t->cancel, memory_order_relaxed)) {
        pthread_mutex_unlock(&t->lock);
        return ECANCELED;
    }
    stage__assert(t->task_waiter == NULL);
    t->task_waiter = w;
    pthread_mutex_unlock(&t->lock);
    return 0;
}

void stage__task_detach(stage_future *t, stage__waiter *w)
{
    pthread_mutex_lock(&t->lock);
    stage__assert(t->task_waiter == w);
    t->task_waiter = NULL;
    pthread_mutex_unlock(&t->lock);
}

void stage__task_set_failure(stage_future *t, int err, char *msg)
{
    free(t->fail_msg);
    t->fail_err = err;
    t->fail_msg = msg;
}

void stage__task_finish(stage_future *t, void *result,
                        stage_destroy_fn destroy, int detached)
{
    pthread_mutex_lock(&t->lock);
    int state;
    if (atomic_load_explicit(&t->cancel, memory_order_relaxed)) {
        state = STAGE_CANCELLED;
        t->err = ECANCELED;
    } else if (t->fail_err) {
        state = STAGE_FAILED;
        t->err = t->fail_err;
        t->msg = t->fail_msg;
        t->fail_msg = NULL;
    } else {
        state = STAGE_DONE;
        t->value = result;
        t->destroy = destroy;
        result = NULL;
    }
    settle_locked(t, state);
    if (result && destroy)
        destroy(result);
    /* The task's own reference keeps t alive here (see callers). */
    if (detached && state == STAGE_FAILED)
        stage__report(NULL, t, t->err, t->msg);
}

/* ---- Waiting ------------------------------------------------------------ */

/* Is the future settled?  (An attempt for stage__wait_as.) */
static int is_settled(void *arg)
{
    return stage_future_state(arg) != STAGE_PENDING;
}

int stage__future_wait_shielded(stage_future *f)
{
    stage__waiter w;
    int woken;
    return stage__wait_as(&f->lock, &f->waiters, &w, NULL, -1, is_settled, f,
                          &woken, 1);
}

int stage_future_wait(stage_future *f, double timeout)
{
    int64_t deadline;
    if (!f || stage__deadline(timeout, &deadline))
        return EINVAL;
    /* Settled: no wait, so nothing to cancel; the answer is at hand. */
    if (atomic_load_explicit(&f->state, memory_order_acquire) !=
        STAGE_PENDING)
        return 0;
    stage_future *self = stage__task_current();
    if (self && stage__task_cancel_requested(self))
        return ECANCELED;
    if (self == f)
        return EDEADLK;
    stage__waiter w;
    int err = stage__waiter_init_for(&w, STAGE__FOR_FUTURE, f, 0, 0);
    if (err)
        return err;
    pthread_mutex_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) !=
        STAGE_PENDING) {
        pthread_mutex_unlock(&f->lock);
        stage__waiter_done(&w);
        return 0;
    }
    stage__list_push(&f->waiters, &w.link);
    pthread_mutex_unlock(&f->lock);
    err = stage__waiter_park(&w, deadline);
    if (err) {
        /* Timed out or cancelled: we decided the outcome, but a settle may
         * have unlinked us already; either way, leave the list. */
        pthread_mutex_lock(&f->lock);
        if (stage__node_linked(&w.link))
            stage__list_remove(&w.link);
        pthread_mutex_unlock(&f->lock);
    }
    stage__waiter_done(&w);
    return err;
}

/* Whoever reads a failure has collected it: a Stage or a scope will not
 * report it.  Reading a value counts too (a scope in STAGE_SCOPE_RAISE
 * mode reports the values nobody read). */
static void mark_observed(stage_future *f)
{
    if (atomic_load_explicit(&f->state, memory_order_acquire) !=
        STAGE_PENDING)
        atomic_store_explicit(&f->observed, 1, memory_order_relaxed);
}

/* Outcome of a settled future, as get/take report it. */
static int outcome(stage_future *f)
{
    switch (atomic_load_explicit(&f->state, memory_order_acquire)) {
    case STAGE_DONE:
        return 0;
    case STAGE_FAILED:
        return f->err;
    case STAGE_CANCELLED:
        return ECANCELED;
    default:
        return EAGAIN;
    }
}

int stage_future_get(stage_future *f, double timeout, void **value)
{
    int err = stage_future_wait(f, timeout);
    if (err)
        return err;
    /* Settled: state (acquire) publishes value, err and msg, which never
     * change again; no lock needed. */
    err = outcome(f);
    if (!err && atomic_load_explicit(&f->taken, memory_order_acquire))
        err = EALREADY;
    if (!err && value)
        *value = f->value;
    mark_observed(f);
    return err;
}

int stage_future_take(stage_future *f, void **value)
{
    if (!f || !value)
        return EINVAL;
    int err = outcome(f);
    if (!err) {
        int expected = 0;
        if (atomic_compare_exchange_strong_explicit(&f->taken, &expected, 1,
                                                    memory_order_acq_rel,
                                                    memory_order_acquire))
            *value = f->value;
        else
            err = EALREADY;
    }
    mark_observed(f);
    return err;
}

stage_state stage_future_state(stage_future *f)
{
    if (!f)
        return STAGE_FAILED;
    return (stage_state)atomic_load_explicit(&f->state, memory_order_acquire);
}

int stage_future_error(stage_future *f)
{
    if (!f)
        return EINVAL;
    int err = outcome(f);
    mark_observed(f);
    return err == EAGAIN ? 0 : err;
}

const char *stage_future_message(stage_future *f)
{
    if (!f || atomic_load_explicit(&f->state, memory_order_acquire) !=
                  STAGE_FAILED)
        return NULL;
    mark_observed(f);
    return f->msg;
}

static void callback_set(struct callback *c, stage_future_cb cb,
                         stage_observer_fn obs, unsigned int when,
                         void *user_data, stage_destroy_fn destroy)
{
    c->next = NULL;
    c->fn = cb;
    c->obs = obs;
    c->when = when;
    c->user_data = user_data;
    c->destroy = destroy;
}

static struct callback *callback_new(stage_future_cb cb, stage_observer_fn obs,
                                     unsigned int when, void *user_data,
                                     stage_destroy_fn destroy)
{
    struct callback *c = malloc(sizeof *c);
    if (c)
        callback_set(c, cb, obs, when, user_data, destroy);
    return c;
}

/* Queue a callback or observer; run it at once if f already settled. */
static int add_callback(stage_future *f, stage_future_cb cb,
                        stage_observer_fn obs, unsigned int when,
                        void *user_data, stage_destroy_fn destroy)
{
    struct callback *c = malloc(sizeof *c);
    if (!c)
        return ENOMEM;
    stage__future_link_callback(f, c, cb, obs, when, user_data, destroy);
    return 0;
}

void stage__future_link_callback(stage_future *f, struct callback *c,
                                 stage_future_cb cb, stage_observer_fn obs,
                                 unsigned int when, void *user_data,
                                 stage_destroy_fn destroy)
{
    callback_set(c, cb, obs, when, user_data, destroy);
    pthread_mutex_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) ==
        STAGE_PENDING) {
        *f->cbs_tail = c;
        f->cbs_tail = &c->next;
        pthread_mutex_unlock(&f->lock);
        return;
    }
    pthread_mutex_unlock(&f->lock);
    run_callbacks(f, c, 1);
}

/* Watches: callbacks that can be taken back (gather.c). */
int stage__future_watch(stage_future *f, stage_future_cb cb, void *user_data,
                        void **handle)
{
    if (atomic_load_explicit(&f->state, memory_order_acquire) !=
        STAGE_PENDING)
        return EALREADY;
    struct callback *c = callback_new(cb, NULL, 0, user_data, NULL);
    if (!c)
        return ENOMEM;
    pthread_mutex_lock(&f->lock);
    if (atomic_load_explicit(&f->state, memory_order_relaxed) !=
        STAGE_PENDING) {
        pthread_mutex_unlock(&f->lock);
        free(c);
        return EALREADY;
    }
    *f->cbs_tail = c;
    f->cbs_tail = &c->next;
    pthread_mutex_unlock(&f->lock);
    *handle = c;
    return 0;
}

int stage__future_unwatch(stage_future *f, void *handle)
{
    pthread_mutex_lock(&f->lock);
    /* Settling takes the whole list under the lock: while the future is
     * pending, the callback is still on it. */
    if (atomic_load_explicit(&f->state, memory_order_relaxed) ==
        STAGE_PENDING) {
        for (struct callback **p = &f->cbs; *p; p = &(*p)->next) {
            if (*p != handle)
                continue;
            *p = (*p)->next;
            if (f->cbs_tail == &((struct callback *)handle)->next)
                f->cbs_tail = p;
            pthread_mutex_unlock(&f->lock);
            free(handle);
            return 1;
        }
    }
    pthread_mutex_unlock(&f->lock);
    return 0;
}

int stage_future_add_callback(stage_future *f, stage_future_cb cb,
                              void *user_data, stage_destroy_fn destroy)
{
    if (!f || !cb)
        return EINVAL;
    return add_callback(f, cb, NULL, 0, user_data, destroy);
}

int stage_future_observe(stage_future *f, unsigned int when,
                         stage_observer_fn fn, void *user_data,
                         stage_destroy_fn destroy)
{
    if (!f || !fn || when == 0 || (when & ~STAGE_ON_SETTLED))
        return EINVAL;
    return add_callback(f, NULL, fn, when, user_data, destroy);
}

int stage_future_set_name(stage_future *f, const char *name)
{
    if (!f || !name)
        return EINVAL;
    char *copy = strdup(name);
    if (!copy)
        return ENOMEM;
    pthread_mutex_lock(&f->lock);
    char *old = f->name;
    f->name = copy;
    pthread_mutex_unlock(&f->lock);
    free(old);
    return 0;
}

const char *stage_future_name(stage_future *f)
{
    if (!f)
        return NULL;
    pthread_mutex_lock(&f->lock);
    if (!f->name && f->is_task) {
        /* A task's default name, made at the first request (not at the
         * spawn: a hot path); NULL if out of memory. */
        char buf[32];
        snprintf(buf, sizeof buf, "Task-%llu", (unsigned long long)f->id);
        f->name = strdup(buf);
    }
    const char *name = f->name;
    pthread_mutex_unlock(&f->lock);
    return name;
}
