/* SPDX-License-Identifier: MIT */
/*
 * event.c - thread-safe, reference-counted events: a flag with a payload
 * that threads and coroutines wait for (hybrid), set and cleared from
 * anywhere, any number of times.
 *
 * Setting the event wakes every waiter listed at that moment and hands each
 * the payload (written into the waiter before the CAS), so a waiter that
 * was woken returns 0 with that payload even if the event is cleared again
 * before it runs.  A waiter that times out or is cancelled at the same
 * moment returns that instead; nothing is consumed either way.
 *
 * Lock order: an event's lock, then a loop's lock (stage__waiter_wake).
 */
#include "common-int.h"
#include "loop-int.h"
#include "stream-int.h"

#include <errno.h>
#include <stdlib.h>

struct stage_event {
    /* head.lock protects payload, waiters (and their fields), and writes
     * of `set`. */
    stage__head head;
    /* Written under lock; read without it by stage_event_is_set, which
     * only reports a moment's state: relaxed is enough. */
    atomic_int set;
    void *payload;       /* retained while set; NULL while clear */
    stage__list waiters; /* stage__waiter.link */
};

stage_event *stage_event_new(void)
{
    stage_event *e = stage__head_new(sizeof *e);
    if (!e)
        return NULL;
    atomic_init(&e->set, 0);
    stage__list_init(&e->waiters);
    return e;
}

stage_event *stage_event_ref(stage_event *e)
{
    if (e)
        stage__head_ref(&e->head);
    return e;
}

void stage_event_unref(stage_event *e)
{
    if (!e || !stage__head_unref(&e->head))
        return;
    stage__assert(stage__list_empty(&e->waiters));
    stage__head_free(&e->head);
}

int stage_event_set(stage_event *e, void *payload)
{
    if (!e)
        return EINVAL;
    pthread_mutex_lock(&e->head.lock);
    e->payload = payload;
    atomic_store_explicit(&e->set, 1, memory_order_relaxed);
    stage__waiter *w;
    while ((w = stage__waiter_pop(&e->waiters)) != NULL) {
        w->item = payload;
        stage__waiter_wake(w, STAGE__SIGNALLED);
    }
    pthread_mutex_unlock(&e->head.lock);
    return 0;
}

int stage_event_clear(stage_event *e)
{
    if (!e)
        return EINVAL;
    pthread_mutex_lock(&e->head.lock);
    e->payload = NULL;
    atomic_store_explicit(&e->set, 0, memory_order_relaxed);
    pthread_mutex_unlock(&e->head.lock);
    return 0;
}

int stage_event_is_set(stage_event *e)
{
    return e ? atomic_load_explicit(&e->set, memory_order_relaxed) : 0;
}

/* One wait, as an attempt of stage__wait. */
struct eop {
    stage_event *e;
    void *payload;
};

static int attempt(void *arg)
{
    struct eop *op = arg;
    if (!atomic_load_explicit(&op->e->set, memory_order_relaxed))
        return 0;
    op->payload = op->e->payload;
    return 1;
}

int stage_event_wait(stage_event *e, double timeout, void **payload)
{
    int64_t deadline;
    if (!e || stage__deadline(timeout, &deadline))
        return EINVAL;
    struct eop op = {e, NULL};
    stage__waiter w;
    int woken;
    int err = stage__wait_for(STAGE__FOR_EVENT, e, &e->head.lock,
                              &e->waiters, &w, NULL, deadline, attempt, &op,
                              &woken);
    if (!err && payload)
        *payload = woken ? w.item : op.payload;
    return err;
}
