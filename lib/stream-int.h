/* SPDX-License-Identifier: MIT */
/*
 * stream-int.h - what the stream primitives (queue.c, event.c, tunnel.c)
 * share: the head of a locked, reference-counted object, and the hybrid
 * wait, stage_future_wait's pattern on the waiter core made generic over
 * "a mutex, some state, and a list of waiters":
 *
 *     lock; attempt                  done? -> return its result
 *     unlock; stage__waiter_init     (attaches to the task: ECANCELED)
 *     lock; attempt again            done? -> return (the lock was dropped)
 *     list the waiter; unlock; stage__waiter_park
 *     not woken: lock, leave the list if the waker did not unlink us
 *     stage__waiter_done
 *
 * The waiter is initialised outside the primitive's lock, so the lock
 * order stays "primitive lock, then loop lock" (stage__waiter_wake); a
 * task's future lock is never taken under a primitive's lock.
 *
 * Wakers pop a waiter off the list under the primitive's lock, write what
 * they hand over into it (w->item, or a structure around w) and then call
 * stage__waiter_wake; one that loses the CAS takes its hand-over back, so a
 * timed-out or cancelled wait never consumes anything (HACKING, rule 4).
 * After a won CAS the waker touches the waiter no more: its owner may
 * return at once.
 */
#ifndef STAGE_STREAM_INT_H
#define STAGE_STREAM_INT_H

#include "loop-int.h"
#include "future-int.h"

#include <errno.h>
#include <stdlib.h>

/* ---- The object head ---------------------------------------------------- */

/* The first member of every stream primitive. */
typedef struct stage__head {
    /* Protects the primitive's state and its waiters' fields (each
     * primitive says which).  Adaptive where glibc has it
     * (stage__mutex_init_hot): held for a few dozen instructions, taken
     * in turn by a producer and a consumer on every item. */
    pthread_mutex_t lock;
    /* acq_rel on the decrement: the last unref sees every other holder's
     * writes before it frees. */
    atomic_size_t refs;
} stage__head;

/* A zeroed object of `size` bytes that starts with a stage__head, with one
 * reference; NULL and errno ENOMEM on failure. */
static inline void *stage__head_new(size_t size)
{
    stage__head *h = calloc(1, size);
    if (!h || stage__mutex_init_hot(&h->lock) != 0) {
        free(h);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&h->refs, 1);
    return h;
}

static inline void stage__head_ref(stage__head *h)
{
    atomic_fetch_add_explicit(&h->refs, 1, memory_order_relaxed);
}

/* Drop a reference; non-zero when it was the last (free the object). */
static inline int stage__head_unref(stage__head *h)
{
    return atomic_fetch_sub_explicit(&h->refs, 1, memory_order_acq_rel) == 1;
}

/* Free an object made by stage__head_new. */
static inline void stage__head_free(stage__head *h)
{
    pthread_mutex_destroy(&h->lock);
    free(h);
}

/* ---- The hybrid wait ---------------------------------------------------- */

/* Decides, under the primitive's lock, whether the call is over: returns
 * non-zero when it is (the result left in `arg`), 0 when it must wait. */
typedef int (*stage__attempt_fn)(void *arg);

/*
 * One hybrid wait.  `kind` and `obj` say what it waits on (STAGE__FOR_*,
 * for stage_future_describe).  `handover` is what the waiter offers while it is listed
 * (w->item: a blocked putter's item), NULL otherwise.  Returns:
 *   0          the call is over: *woken says whether a waker decided it
 *              (then it handed its result over in *w), or an attempt did
 *              (then the result is in `arg`);
 *   ETIMEDOUT  the deadline passed first (at once when it had passed);
 *   ECANCELED  the calling task is cancelled;
 *   ENOMEM     the calling thread has no loop and none can be made.
 * The cancellation check comes first, as in every blocking call.
 * stage__wait_as(..., shielded = 1) skips it and parks a waiter that the
 * task's cancellation does not decide (stage__waiter_init_shielded), so it
 * never returns ECANCELED: for waits that must end (a scope's close).
 */
static inline int stage__wait_impl(int kind, const void *obj,
                                   pthread_mutex_t *lock, stage__list *list,
                                   stage__waiter *w, void *handover,
                                   int64_t deadline, stage__attempt_fn attempt,
                                   void *arg, int *woken, int shielded)
{
    *woken = 0;
    stage_future *self = stage__task_current();
    if (!shielded && self && stage__task_cancel_requested(self))
        return ECANCELED;
    pthread_mutex_lock(lock);
    int done = attempt(arg);
    pthread_mutex_unlock(lock);
    if (done)
        return 0;
    if (deadline >= 0 && deadline <= stage_now())
        return ETIMEDOUT;
    int err = shielded ? stage__waiter_init_shielded(w)
                       : stage__waiter_init_for(w, kind, obj, 0, 0);
    if (err)
        return err;
    w->item = handover;
    pthread_mutex_lock(lock);
    if (attempt(arg)) {
        pthread_mutex_unlock(lock);
    } else {
        stage__list_push(list, &w->link);
        pthread_mutex_unlock(lock);
        err = stage__waiter_park(w, deadline);
        if (err) {
            /* Timed out or cancelled: a waker may have unlinked us anyway
             * (and lost the CAS); either way, leave the list. */
            pthread_mutex_lock(lock);
            if (stage__node_linked(&w->link))
                stage__list_remove(&w->link);
            pthread_mutex_unlock(lock);
        } else {
            *woken = 1; /* the waker unlinked us */
        }
    }
    stage__waiter_done(w);
    return err;
}

/* A wait that records what it waits on (STAGE__FOR_*, for descriptions). */
static inline int stage__wait_for(int kind, const void *obj,
                                  pthread_mutex_t *lock, stage__list *list,
                                  stage__waiter *w, void *handover,
                                  int64_t deadline, stage__attempt_fn attempt,
                                  void *arg, int *woken)
{
    return stage__wait_impl(kind, obj, lock, list, w, handover, deadline,
                            attempt, arg, woken, 0);
}

/* A wait that may be shielded from cancellation (shielded = 1). */
static inline int stage__wait_as(pthread_mutex_t *lock, stage__list *list,
                                 stage__waiter *w, void *handover,
                                 int64_t deadline, stage__attempt_fn attempt,
                                 void *arg, int *woken, int shielded)
{
    return stage__wait_impl(STAGE__FOR_NONE, NULL, lock, list, w, handover,
                            deadline, attempt, arg, woken, shielded);
}

/* stage__wait_for, for a wait that does not describe itself (kind
 * STAGE__FOR_NONE: a task parked in it is described as waiting). */
static inline int stage__wait(pthread_mutex_t *lock, stage__list *list,
                              stage__waiter *w, void *handover,
                              int64_t deadline, stage__attempt_fn attempt,
                              void *arg, int *woken)
{
    return stage__wait_impl(STAGE__FOR_NONE, NULL, lock, list, w, handover,
                            deadline, attempt, arg, woken, 0);
}

/* Pop the first waiter of `list` (under its lock), or NULL. */
static inline stage__waiter *stage__waiter_pop(stage__list *list)
{
    stage__node *n = stage__list_pop(list);
    return n ? stage__container_of(n, stage__waiter, link) : NULL;
}

#endif
