/* SPDX-License-Identifier: MIT */
/*
 * gather.c - wait for all of a set of futures (asyncio.gather), or for the
 * first of them to settle (asyncio.wait, FIRST_COMPLETED).
 *
 * A waiter lives in one list, so waiting on n futures at once goes through
 * a small record instead: a watch (a callback that can be taken back) on
 * each pending future notes in the record which one settled, and wakes the
 * caller, parked in the usual hybrid wait on the record's lock, once what
 * it waits for has happened.  On return the caller takes back the watches
 * that did not fire, so repeated calls on long-lived futures leave nothing
 * behind; those that fired, or are firing on another thread, hold a
 * reference on the record, and the last reference frees it.
 *
 *     caller: arm watches -> stage__wait(over?) -> unwatch -> read results
 *     settling thread: watch fires -> note (first, pending) -> wake caller
 *
 * The order in which futures settle is the order in which their watches
 * fire; futures already settled at the call count as settling first, in
 * argument order.
 */
#include "common-int.h"
#include "loop-int.h"
#include "future-int.h"
#include "stream-int.h"

#include <errno.h>
#include <stdlib.h>

struct multi;

struct watch {
    struct multi *m;
    size_t index;
    void *handle; /* stage__future_watch's, or NULL: not watched */
};

struct multi {
    /* head.lock protects every field below but n and w[i].m/index, which
     * never change; refs: the caller's, and one per armed watch. */
    stage__head head;
    stage__list waiters; /* the caller, while it waits */
    size_t n;
    size_t pending;      /* futures not seen settled */
    size_t first;        /* first to settle (any) or to fail; n: none yet */
    int any;             /* wait_any: over at the first to settle */
    int stop;            /* gather: over at the first failure too */
    struct watch w[];
};

static void multi_unref(struct multi *m)
{
    if (stage__head_unref(&m->head))
        stage__head_free(&m->head);
}

/* futures[i] settled.  Called with the lock held. */
static void note_locked(struct multi *m, stage_future *f, size_t i)
{
    m->pending--;
    if (m->first == m->n &&
        (m->any || stage_future_state(f) != STAGE_DONE))
        m->first = i;
}

/* Is the wait over?  (The attempt of stage__wait, under the lock.) */
static int over(void *arg)
{
    struct multi *m = arg;
    if (m->any || m->stop)
        if (m->first != m->n)
            return 1;
    return m->pending == 0;
}

/* A watch fired, on the thread that settled the future. */
static void fired(stage_future *f, void *arg)
{
    struct watch *w = arg;
    struct multi *m = w->m;
    pthread_mutex_lock(&m->head.lock);
    note_locked(m, f, w->index);
    if (over(m)) {
        stage__waiter *waiter;
        while ((waiter = stage__waiter_pop(&m->waiters)) != NULL)
            stage__waiter_wake(waiter, STAGE__SIGNALLED);
    }
    pthread_mutex_unlock(&m->head.lock);
    multi_unref(m);
}

/* Take back the watches that did not fire, drop the caller's reference. */
static void multi_end(struct multi *m, stage_future *const *futures)
{
    for (size_t i = 0; i < m->n; i++)
        if (m->w[i].handle &&
            stage__future_unwatch(futures[i], m->w[i].handle))
            multi_unref(m); /* never the last: the caller holds one */
    multi_unref(m);
}

/* Watch every future; NULL and errno ENOMEM on failure. */
static struct multi *multi_start(stage_future *const *futures, size_t n,
                                 int any, int stop)
{
    struct multi *m = stage__head_new(sizeof *m + n * sizeof m->w[0]);
    if (!m)
        return NULL;
    stage__list_init(&m->waiters);
    m->n = m->pending = m->first = n;
    m->any = any;
    m->stop = stop;
    for (size_t i = 0; i < n; i++)
        m->w[i] = (struct watch){m, i, NULL};
    for (size_t i = 0; i < n; i++) {
        stage__head_ref(&m->head); /* the watch's */
        int err = stage__future_watch(futures[i], fired, &m->w[i],
                                      &m->w[i].handle);
        if (err == 0)
            continue;
        multi_unref(m); /* not armed */
        if (err == EALREADY) {
            pthread_mutex_lock(&m->head.lock);
            note_locked(m, futures[i], i);
            pthread_mutex_unlock(&m->head.lock);
            continue;
        }
        multi_end(m, futures);
        errno = ENOMEM;
        return NULL;
    }
    return m;
}

/* Wait (hybrid) until the wait is over or the deadline passes; *first
 * gets the first to settle or fail.  A later wait is for all of them. */
static int multi_wait(struct multi *m, int64_t deadline, size_t *first)
{
    stage__waiter w;
    int woken;
    int err = stage__wait_for(STAGE__FOR_FUTURES, m, &m->head.lock,
                              &m->waiters, &w, NULL, deadline, over, m,
                              &woken);
    pthread_mutex_lock(&m->head.lock);
    *first = m->first;
    m->stop = 0;
    pthread_mutex_unlock(&m->head.lock);
    return err;
}

static int check_set(stage_future *const *futures, size_t n)
{
    if (n && !futures)
        return EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!futures[i])
            return EINVAL;
    return 0;
}

/* ---- Gather ------------------------------------------------------------- */

int stage_future_gather(stage_future *const *futures, size_t n,
                        unsigned int flags, double timeout, void **values,
                        size_t *failed)
{
    int64_t deadline;
    if (check_set(futures, n) || (flags & ~STAGE_GATHER_CANCEL) ||
        stage__deadline(timeout, &deadline))
        return EINVAL;
    int cancel = (flags & STAGE_GATHER_CANCEL) != 0;
    size_t first = n, i;
    int err = 0;
    /* Settled already (all of them)?  Then no record is needed. */
    for (i = 0; i < n; i++)
        if (stage_future_state(futures[i]) == STAGE_PENDING)
            break;
    if (i == n) {
        for (i = 0; i < n && first == n; i++)
            if (stage_future_state(futures[i]) != STAGE_DONE)
                first = i;
    } else {
        struct multi *m = multi_start(futures, n, 0, cancel);
        if (!m)
            return ENOMEM;
        err = multi_wait(m, deadline, &first);
        if (cancel && (first < n || err == ECANCELED))
            for (i = 0; i < n; i++)
                stage_future_cancel(futures[i]); /* settled: no effect */
        if (cancel && first < n && !err) /* wait for those we cancelled */
            err = multi_wait(m, deadline, &first);
        multi_end(m, futures);
    }
    if (values) {
        for (i = 0; i < n; i++) {
            stage_future *f = futures[i];
            values[i] = NULL;
            if (stage_future_state(f) == STAGE_DONE &&
                !atomic_load_explicit(&f->taken, memory_order_acquire)) {
                values[i] = f->value;
                atomic_store_explicit(&f->observed, 1, memory_order_relaxed);
            }
        }
    }
    /* The caller's cancellation first, then a failure, then the time. */
    size_t index = n;
    if (err != ECANCELED && first < n) {
        err = stage_future_error(futures[first]); /* collected: marked */
        index = first;
    } else if (err == ETIMEDOUT) {
        for (index = 0; index < n; index++)
            if (stage_future_state(futures[index]) == STAGE_PENDING)
                break;
    }
    if (failed)
        *failed = index;
    return err;
}

/* ---- Wait for any ------------------------------------------------------- */

int stage_future_wait_any(stage_future *const *futures, size_t n,
                          double timeout, size_t *index)
{
    int64_t deadline;
    if (n == 0 || check_set(futures, n) ||
        stage__deadline(timeout, &deadline))
        return EINVAL;
    size_t first = n;
    for (size_t i = 0; i < n && first == n; i++)
        if (stage_future_state(futures[i]) != STAGE_PENDING)
            first = i;
    int err = 0;
    if (first == n) {
        struct multi *m = multi_start(futures, n, 1, 0);
        if (!m)
            return ENOMEM;
        err = multi_wait(m, deadline, &first);
        multi_end(m, futures);
    }
    if (!err && index)
        *index = first;
    return err;
}
