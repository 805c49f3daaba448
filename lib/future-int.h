/* SPDX-License-Identifier: MIT */
/*
 * future-int.h - the future's layout, shared with the scheduler so that the
 * hot paths (is my task cancelled?) compile to one load.
 */
#ifndef STAGE_FUTURE_INT_H
#define STAGE_FUTURE_INT_H

#include "loop-int.h"

struct callback {
    struct callback *next;
    stage_future_cb fn;       /* a callback ... */
    stage_observer_fn obs;    /* ... or an observer, for states in `when` */
    unsigned int when;
    void *user_data;
    stage_destroy_fn destroy;
};

struct stage_future {
    /* Protects every field below except refs, and the fields of the
     * waiters on `waiters`. */
    pthread_mutex_t lock;
    /* acq_rel on the decrement: the last unref must see every write made
     * by other holders before it frees. */
    atomic_size_t refs;
    /* Written under lock with release; read lock-free with acquire by the
     * query functions, which then may read value/err/msg: those never
     * change after the state left PENDING. */
    atomic_int state;
    void *value;
    stage_destroy_fn destroy;
    /* Set once by take (CAS); read lock-free by get, which needs no lock
     * on a settled future: value never changes once the state is DONE. */
    atomic_int taken;
    int err;
    char *msg;
    stage__list waiters;
    struct callback *cbs, **cbs_tail;
    /* Task part. */
    int is_task;
    /* Set under lock; read lock-free (relaxed) as a hint by
     * stage_task_cancelled: a wait re-checks it under lock. */
    atomic_int cancel;
    stage__waiter *task_waiter;
    int fail_err;   /* stage_task_fail: written by the task's own context */
    char *fail_msg; /* idem */
    /* Reporting.  `name` is set under lock and freed at the last unref.
     * `observed`: somebody read the failure (get, take, error, message);
     * relaxed, it only decides whether a Stage reports it at close. */
    char *name;
    uint64_t id;
    atomic_int observed;
    stage *owner; /* the Stage that ran the task, or NULL; set before the
                   * task can settle, read after it settled */
};

/* ---- future.c ---- */
/* stage_future_add_callback/observe with a record the caller allocated
 * (malloc; the future frees it): it cannot fail, so bookkeeping that must
 * not be lost (a Stage's count of its tasks) allocates before it starts
 * the task instead of having no way back after. */
void stage__future_add_callback_rec(stage_future *f, struct callback *c,
                                    stage_future_cb cb, stage_observer_fn obs,
                                    unsigned int when, void *user_data,
                                    stage_destroy_fn destroy);

/* ---- stage.c ---- */
void stage__report(stage *st, stage_future *task, int err, const char *msg);
/* A task future holds a reference on its Stage (the owner), so a report
 * after stage_free still finds the Stage's name; the memory goes with the
 * last such reference. */
void stage__ref(stage *st);
void stage__unref(stage *st);
static inline int stage__future_observed(stage_future *f)
{
    return atomic_load_explicit(&f->observed, memory_order_relaxed);
}

static inline int stage__task_cancel_requested(stage_future *t)
{
    return atomic_load_explicit(&t->cancel, memory_order_relaxed);
}

#endif
