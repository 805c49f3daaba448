/* SPDX-License-Identifier: MIT */
/*
 * loop.c - the per-thread loop, its scheduler, and the waiter core.
 *
 * See loop-int.h for the picture.  Phases of one scheduler iteration, run
 * by the root context of the thread (the thread's own stack):
 *
 *   1. inbox    coroutines woken by other threads and spawn requests move
 *               to the ready list (one lock, only when `pending` says so);
 *   2. timers   expired coroutine waits are decided TIMEDOUT;
 *   3. batch    the ready list becomes the batch; each coroutine that
 *               suspends switches straight to the next one of the batch,
 *               the last one back to the root.  What becomes ready while a
 *               batch runs waits for the next batch, so the root gets
 *               control back regularly;
 *   4. sleep    nothing ready: poll(2) when fd waits exist, else the loop's
 *               condition variable, until the earliest deadline.  A waker
 *               on another thread pokes the loop (cond signal, or one write
 *               to the wake-up fd) only when `sleep` says it is asleep.
 */
#include "common-int.h"
#include "loop-int.h"
#include "future-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* The calling thread's loop.  _Thread_local for speed; the pthread key
 * exists only for its destructor, which frees the loop at thread exit. */
static _Thread_local stage_loop *tls_loop STAGE__TLS_MODEL;
static pthread_key_t loop_key;
static pthread_once_t loop_key_once = PTHREAD_ONCE_INIT;

static void loop_key_destructor(void *p)
{
    stage_loop *loop = p;
    if (loop && loop == tls_loop)
        stage_loop_free(loop);
}

static void loop_key_create(void)
{
    stage__assert(pthread_key_create(&loop_key, loop_key_destructor) == 0);
}

stage_loop *stage__loop_get(void) { return tls_loop; }

stage_loop *stage__loop_ensure(int *err)
{
    stage_loop *loop = tls_loop;
    if (stage__likely(loop != NULL))
        return loop;
    pthread_once(&loop_key_once, loop_key_create);
    loop = calloc(1, sizeof *loop);
    if (!loop) {
        *err = ENOMEM;
        return NULL;
    }
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
#ifdef HAVE_PTHREAD_CONDATTR_SETCLOCK
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
#endif
    if (pthread_mutex_init(&loop->lock, NULL) != 0) {
        pthread_condattr_destroy(&ca);
        free(loop);
        *err = ENOMEM;
        return NULL;
    }
    if (pthread_cond_init(&loop->cond, &ca) != 0) {
        pthread_condattr_destroy(&ca);
        pthread_mutex_destroy(&loop->lock);
        free(loop);
        *err = ENOMEM;
        return NULL;
    }
    pthread_condattr_destroy(&ca);
    stage__list_init(&loop->inbox);
    stage__list_init(&loop->spawns);
    stage__list_init(&loop->ready);
    stage__list_init(&loop->batch);
    stage__list_init(&loop->live);
    stage__heap_init(&loop->timers);
    atomic_init(&loop->refs, 1);
    loop->wake_rd = loop->wake_wr = -1;
    stage__coro_root_init(loop);
    tls_loop = loop;
    pthread_setspecific(loop_key, loop);
    return loop;
}

stage_loop *stage_loop_current(void)
{
    int err = 0;
    stage_loop *loop = stage__loop_ensure(&err);
    if (!loop)
        errno = err;
    return loop;
}

size_t stage_loop_count(stage_loop *loop) { return loop ? loop->count : 0; }

void stage__loop_schedule(stage_loop *loop, stage__coro *c)
{
    stage__list_push(&loop->ready, &c->node);
}

int stage__loop_wake_mode(stage_loop *loop)
{
    int mode = loop->sleep;
    loop->sleep = STAGE__AWAKE; /* one poke per sleep is enough */
    return mode;
}

void stage__loop_poke_after(stage_loop *loop, int mode)
{
    if (mode == STAGE__SLEEP_COND)
        pthread_cond_signal(&loop->cond);
    else if (mode == STAGE__SLEEP_POLL)
        stage__loop_poke_fd(loop);
}

void stage__loop_unref(stage_loop *loop)
{
    if (atomic_fetch_sub_explicit(&loop->refs, 1, memory_order_acq_rel) != 1)
        return;
    stage__loop_close_wakefd(loop);
    pthread_cond_destroy(&loop->cond);
    pthread_mutex_destroy(&loop->lock);
    free(loop);
}

/* ---- Waiters ------------------------------------------------------------ */

/* The part common to every waiter: its loop, its context, no outcome yet,
 * and the wait record (what it waits on, for stage_future_describe). */
static int waiter_setup(stage__waiter *w, int kind, const void *obj,
                        int64_t a, int64_t b)
{
    int err = 0;
    stage_loop *loop = stage__loop_ensure(&err);
    if (!loop)
        return err;
    atomic_init(&w->outcome, STAGE__PENDING);
    w->coro = loop->current;
    w->loop = loop;
    stage__node_init(&w->link);
    w->timer.slot = STAGE__NOSLOT;
    w->item = NULL;
    w->pfd = STAGE__NOSLOT;
    w->revents = 0;
    w->for_kind = kind;
    w->for_obj = obj;
    w->for_a = a;
    w->for_b = b;
    w->task = NULL;
    return 0;
}

/* A waiter not attached to the calling task: cancellation does not decide
 * it (for a short wait a call must finish even when cancelled). */
int stage__waiter_init_shielded(stage__waiter *w)
{
    return waiter_setup(w, STAGE__FOR_NONE, NULL, 0, 0);
}

int stage__waiter_init(stage__waiter *w)
{
    return stage__waiter_init_for(w, STAGE__FOR_NONE, NULL, 0, 0);
}

/* The one place where a task records that it parks (stage__task_attach
 * publishes w under the task's lock): the wait record costs four stores. */
int stage__waiter_init_for(stage__waiter *w, int kind, const void *obj,
                           int64_t a, int64_t b)
{
    int err = waiter_setup(w, kind, obj, a, b);
    if (err)
        return err;
    w->task = w->coro ? w->coro->task : stage__task_current();
    if (w->task)
        return stage__task_attach(w->task, w);
    return 0;
}

void stage__waiter_done(stage__waiter *w)
{
    if (w->task)
        stage__task_detach(w->task, w);
}

/*
 * Decide w's outcome, if nobody did yet, and make its owner runnable.
 * Returns 1 when this call decided it.  The caller guarantees w is alive:
 * it holds the lock of the list w is on, or the lock of w's task.
 *
 * On the owner thread no lock is needed: the CAS alone arbitrates, and the
 * owner is running (this code), so it cannot be asleep.  From another
 * thread the CAS happens under loop->lock, which the root also takes to
 * check its outcome before it sleeps, so no wake-up is lost; the waker
 * holds a reference on the loop, so it may poke it after dropping the
 * lock even if the owner frees the loop meanwhile (the last reference
 * frees it).
 */
int stage__waiter_wake(stage__waiter *w, int outcome)
{
    /* Read everything before the CAS: once it is won, a root waiter may
     * see its outcome without a lock and leave the frame w lives in. */
    stage_loop *loop = w->loop;
    stage__coro *coro = w->coro;
    int expected = STAGE__PENDING;
    if (loop == tls_loop) {
        if (!atomic_compare_exchange_strong_explicit(
                &w->outcome, &expected, outcome, memory_order_acq_rel,
                memory_order_acquire))
            return 0;
        if (coro)
            stage__loop_schedule(loop, coro);
        return 1;
    }
    atomic_fetch_add_explicit(&loop->refs, 1, memory_order_relaxed);
    pthread_mutex_lock(&loop->lock);
    if (!atomic_compare_exchange_strong_explicit(
            &w->outcome, &expected, outcome, memory_order_acq_rel,
            memory_order_acquire)) {
        pthread_mutex_unlock(&loop->lock);
        stage__loop_unref(loop);
        return 0;
    }
    if (coro) {
        stage__list_push(&loop->inbox, &coro->node);
        /* Relaxed: a hint for the owner's unlocked check; the owner
         * re-checks the inbox under the lock before it sleeps. */
        atomic_store_explicit(&loop->pending, 1, memory_order_relaxed);
    }
    int mode = stage__loop_wake_mode(loop);
    pthread_mutex_unlock(&loop->lock);
    stage__loop_poke_after(loop, mode);
    stage__loop_unref(loop);
    return 1;
}

/* ---- Scheduler ---------------------------------------------------------- */

enum { RUN_WAIT, RUN_EMPTY, RUN_ONCE };

static void drain_inbox(stage_loop *loop)
{
    if (!atomic_load_explicit(&loop->pending, memory_order_relaxed))
        return;
    stage__list spawns;
    stage__list_init(&spawns);
    pthread_mutex_lock(&loop->lock);
    atomic_store_explicit(&loop->pending, 0, memory_order_relaxed);
    stage__list_splice(&loop->ready, &loop->inbox);
    stage__list_splice(&spawns, &loop->spawns);
    pthread_mutex_unlock(&loop->lock);
    stage__node *n;
    while ((n = stage__list_pop(&spawns)) != NULL) {
        stage__spawn *sp = stage__container_of(n, stage__spawn, node);
        int err = stage__coro_start(loop, sp);
        if (err) {
            stage__task_set_failure(sp->task, err, NULL);
            stage__task_finish(sp->task, NULL, NULL, sp->detached);
            stage_future_unref(sp->task);
        }
        free(sp);
    }
}

static void expire_timers(stage_loop *loop, int64_t now)
{
    stage__timer *t;
    while ((t = stage__heap_top(&loop->timers)) != NULL && t->deadline <= now) {
        stage__heap_remove(&loop->timers, t);
        stage__waiter *w = stage__container_of(t, stage__waiter, timer);
        stage__waiter_wake(w, STAGE__TIMEDOUT);
    }
}

static void run_batch(stage_loop *loop)
{
    stage__list_splice(&loop->batch, &loop->ready);
    stage__node *n = stage__list_pop(&loop->batch);
    if (n)
        stage__coro_switch(loop, stage__container_of(n, stage__coro, node));
}

static void to_timespec(int64_t ns, struct timespec *ts)
{
    ts->tv_sec = (time_t)(ns / 1000000000);
    ts->tv_nsec = (long)(ns % 1000000000);
}

/* Sleep until `until` (absolute ns, -1: no limit), an fd event, or a poke.
 * Returns without sleeping when work arrived meanwhile. */
static void sleep_until(stage_loop *loop, stage__waiter *w, int64_t until)
{
    pthread_mutex_lock(&loop->lock);
    if (atomic_load_explicit(&loop->pending, memory_order_relaxed) ||
        (w && stage__waiter_outcome(w) != STAGE__PENDING)) {
        pthread_mutex_unlock(&loop->lock);
        return;
    }
    if (loop->nuser > 0) {
        loop->sleep = STAGE__SLEEP_POLL;
        pthread_mutex_unlock(&loop->lock);
        stage__loop_poll(loop, until);
        pthread_mutex_lock(&loop->lock);
        loop->sleep = STAGE__AWAKE;
        pthread_mutex_unlock(&loop->lock);
        return;
    }
    loop->sleep = STAGE__SLEEP_COND;
    if (until < 0) {
        pthread_cond_wait(&loop->cond, &loop->lock);
    } else {
        struct timespec ts;
#ifdef HAVE_PTHREAD_CONDATTR_SETCLOCK
        to_timespec(until, &ts);
#else
        /* No monotonic condvars: convert to the realtime clock. */
        struct timespec rt;
        clock_gettime(CLOCK_REALTIME, &rt);
        int64_t abs = (int64_t)rt.tv_sec * 1000000000 + rt.tv_nsec +
                      (until - stage_now());
        to_timespec(abs, &ts);
#endif
        pthread_cond_timedwait(&loop->cond, &loop->lock, &ts);
    }
    loop->sleep = STAGE__AWAKE;
    pthread_mutex_unlock(&loop->lock);
}

/*
 * The root context's scheduler.  RUN_WAIT: until w is decided (w's own
 * deadline handled here, as TIMEDOUT).  RUN_EMPTY: until no coroutine is
 * left, or w is decided (cancellation), or the deadline.  RUN_ONCE: one
 * pass over what is ready, without sleeping.
 */
static int run(stage_loop *loop, stage__waiter *w, int64_t deadline, int mode)
{
    for (;;) {
        if (w && stage__waiter_outcome(w) != STAGE__PENDING)
            return 0;
        drain_inbox(loop);
        if (mode == RUN_EMPTY && loop->count == 0)
            return 0;
        /* Read the clock only when something depends on it. */
        int64_t now = 0;
        if (deadline >= 0 || loop->timers.n > 0) {
            now = stage_now();
            expire_timers(loop, now);
        }
        if (!stage__list_empty(&loop->ready)) {
            run_batch(loop);
            if (mode == RUN_ONCE)
                break;
            /* Coroutines that keep each other busy must not hold the
             * root past its deadline: after each batch, a due deadline
             * is decided below (timeout 0 runs one batch). */
            if (deadline < 0 || (now = stage_now()) < deadline)
                continue;
        }
        if (mode == RUN_ONCE)
            break;
        if (deadline >= 0 && now >= deadline) {
            if (loop->nuser > 0) {
                stage__loop_poll(loop, 0); /* a last look at the fds */
                if (stage__waiter_outcome(w) != STAGE__PENDING)
                    return 0;
            }
            int expected = STAGE__PENDING;
            if (atomic_compare_exchange_strong_explicit(
                    &w->outcome, &expected, STAGE__TIMEDOUT,
                    memory_order_acq_rel, memory_order_acquire))
                return 0;
            continue;
        }
        int64_t until = deadline;
        stage__timer *t = stage__heap_top(&loop->timers);
        if (t && (until < 0 || t->deadline < until))
            until = t->deadline;
        sleep_until(loop, w, until);
    }
    if (loop->nuser > 0)
        stage__loop_poll(loop, 0);
    return 0;
}

static int outcome_error(stage__waiter *w)
{
    switch (stage__waiter_outcome(w)) {
    case STAGE__SIGNALLED:
        return 0;
    case STAGE__TIMEDOUT:
        return ETIMEDOUT;
    case STAGE__CANCELLED:
        return ECANCELED;
    default:
        stage__panic(__FILE__, __LINE__, "waiter resumed undecided");
    }
}

/* Try to decide w as TIMEDOUT ourselves.  Returns 1 if we did; 0 if
 * someone decided it first (and, for a coroutine, scheduled it). */
static int self_timeout(stage__waiter *w)
{
    int expected = STAGE__PENDING;
    return atomic_compare_exchange_strong_explicit(
        &w->outcome, &expected, STAGE__TIMEDOUT, memory_order_acq_rel,
        memory_order_acquire);
}

int stage__waiter_park(stage__waiter *w, int64_t deadline)
{
    stage_loop *loop = w->loop;
    if (!w->coro) {
        /* A waker on another thread may still hold loop->lock after its
         * CAS; it touches only the loop, which stage_loop_free frees after
         * taking that lock once, so nothing more is needed here. */
        run(loop, w, deadline, RUN_WAIT);
        return outcome_error(w);
    }
    if (deadline >= 0) {
        w->timer.deadline = deadline;
        stage__timer *top = stage__heap_top(&loop->timers);
        /* Already due and nobody due before us (timeout 0 is the common
         * case): time out now, unless a wake-up beat us to it.  An overdue
         * wait behind earlier overdue ones goes through the heap, so
         * deadlines fire in order. */
        if (deadline <= stage_now() && (!top || top->deadline > deadline)) {
            if (self_timeout(w))
                return ETIMEDOUT;
        } else if (stage__heap_push(&loop->timers, &w->timer) != 0) {
            /* No memory for the timer: fail the call with ENOMEM (it used
             * to time out at once, so a sleep returned 0 early and a
             * timed wait reported a timeout that never was).  Claiming
             * the waiter keeps wakers off it; if one won, take its
             * outcome as usual. */
            if (self_timeout(w))
                return ENOMEM;
        }
    }
    stage__loop_suspend(loop);
    if (w->timer.slot != STAGE__NOSLOT)
        stage__heap_remove(&loop->timers, &w->timer);
    return outcome_error(w);
}

void stage__loop_suspend(stage_loop *loop)
{
    stage__coro *self = loop->current;
    stage__stack_check(&self->stack);
    stage__node *n = stage__list_pop(&loop->batch);
    stage__coro_switch(loop, n ? stage__container_of(n, stage__coro, node)
                               : NULL);
}

/* ---- Public loop API ---------------------------------------------------- */

int stage_loop_run(stage_loop *loop, stage_future *until, double timeout)
{
    int64_t deadline;
    if (!loop || stage__deadline(timeout, &deadline))
        return EINVAL;
    if (loop != tls_loop)
        return EPERM;
    if (until)
        return stage_future_wait(until, timeout);
    if (loop->current)
        return EDEADLK;
    stage__waiter w;
    int err = stage__waiter_init_for(&w, STAGE__FOR_LOOP, NULL, 0, 0);
    if (err)
        return err;
    run(loop, &w, deadline, RUN_EMPTY);
    err = stage__waiter_outcome(&w) == STAGE__PENDING ? 0 : outcome_error(&w);
    stage__waiter_done(&w);
    return err;
}

int stage_loop_free(stage_loop *loop)
{
    if (!loop)
        return EINVAL;
    if (loop != tls_loop)
        return EPERM;
    if (loop->current)
        return EBUSY;
    pthread_mutex_lock(&loop->lock);
    loop->closing = 1;
    atomic_store_explicit(&loop->pending, 1, memory_order_relaxed);
    pthread_mutex_unlock(&loop->lock);
    drain_inbox(loop);
    /* Cancel every live coroutine; new ones started from now on are born
     * cancelled (see stage__coro_start), so this terminates. */
    for (stage__node *n = loop->live.next; n != &loop->live; n = n->next)
        stage_future_cancel(stage__container_of(n, stage__coro, live)->task);
    stage__waiter w;
    atomic_init(&w.outcome, STAGE__PENDING);
    w.coro = NULL;
    w.loop = loop;
    w.task = NULL; /* not attached: a cancelled task still drains */
    run(loop, &w, -1, RUN_EMPTY);
    stage__assert(loop->count == 0);
    stage__coro_cache_free(loop);
    stage__loop_fd_fini(loop);
    stage__heap_fini(&loop->timers);
    tls_loop = NULL;
    pthread_setspecific(loop_key, NULL);
    /* A waker on another thread may still be poking; the last reference
     * frees the loop. */
    stage__loop_unref(loop);
    return 0;
}

/* ---- Hybrid waits ------------------------------------------------------- */

int stage_sleep(double seconds)
{
    int64_t deadline;
    if (stage__deadline(seconds, &deadline))
        return EINVAL;
    if (seconds == 0)
        return stage_yield();
    stage__waiter w;
    int err = stage__waiter_init_for(&w, STAGE__FOR_SLEEP, NULL,
                                     deadline < 0 ? -1 : (int64_t)(seconds * 1e9),
                                     deadline);
    if (err)
        return err;
    err = stage__waiter_park(&w, deadline);
    stage__waiter_done(&w);
    return err == ETIMEDOUT ? 0 : err;
}

int stage_yield(void)
{
    int err = 0;
    stage_loop *loop = stage__loop_ensure(&err);
    if (!loop)
        return err;
    if (loop->current) {
        stage__loop_schedule(loop, loop->current);
        stage__loop_suspend(loop);
    } else {
        run(loop, NULL, -1, RUN_ONCE);
    }
    /* Checked after yielding only: a cancelled task still lets others
     * run once, and learns about it here. */
    stage_future *task = stage__task_current();
    if (task && stage__task_cancel_requested(task))
        return ECANCELED;
    return 0;
}
