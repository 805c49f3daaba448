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
     * `observed`: somebody read the outcome (get, take, error, message);
     * relaxed, it only decides whether a Stage or a scope reports it. */
    char *name;
    uint64_t id;
    atomic_int observed;
    stage *owner; /* the Stage that ran the task, or NULL; set before the
                   * task can settle, read after it settled */
    /* Task-local variables (local.c): the task's context, captured from
     * its creator when the future is made; NULL when empty.  Only the task
     * itself reads or replaces it while it runs; freed at the last unref. */
    struct stage__locals *locals;
    /* The innermost scope open in this task (one it opened), else the
     * scope the task belongs to, else NULL; read and written only by the
     * task itself (scope.c). */
    stage_scope *scope;
};

/* ---- future.c ---- */
/* stage_future_add_callback (cb) or stage_future_observe (obs, when) with
 * a record the caller allocated with malloc beforehand, so it cannot fail
 * (emitter.c registers callbacks after starting tasks; stage.c and gen.c
 * allocate before they start a task whose end they must hear of).  The future frees
 * the record. */
void stage__future_link_callback(stage_future *f, struct callback *c,
                                 stage_future_cb cb, stage_observer_fn obs,
                                 unsigned int when, void *user_data,
                                 stage_destroy_fn destroy);

/* Wait until f settles, even in a cancelled task: for waits that must end
 * however the caller is asked to (a scope's close, a Stage's loop thread
 * being started).  0, or ENOMEM when the thread has no loop. */
int stage__future_wait_shielded(stage_future *f);

/* ---- stage.c ---- */
void stage__report(stage *st, stage_future *task, int err, const char *msg);
/* A task future holds a reference on its Stage (the owner), so a report
 * after stage_free still finds the Stage's name; the memory goes with the
 * last such reference. */
void stage__ref(stage *st);
void stage__unref(stage *st);
/* For scopes: start fn on st's pool, as a task owned by st that st does
 * not count or report (the scope does); EPIPE once st is closing. */
int stage__go_pool(stage *st, stage_task_fn fn, void *arg,
                   stage_destroy_fn destroy, stage_future **out);

/* ---- future.c: watches, callbacks that can be taken back (gather.c) ---- */
/* Queue cb(f, user_data) to run once when f settles: 0 and *handle, or
 * EALREADY (f has settled: nothing is queued), or ENOMEM. */
int stage__future_watch(stage_future *f, stage_future_cb cb, void *user_data,
                        void **handle);
/* Take a watch back: 1 if it was, so cb will never run; 0 if f settled,
 * so cb has run or is running (on the settling thread). */
int stage__future_unwatch(stage_future *f, void *handle);

static inline int stage__future_observed(stage_future *f)
{
    return atomic_load_explicit(&f->observed, memory_order_relaxed);
}

static inline int stage__task_cancel_requested(stage_future *t)
{
    return atomic_load_explicit(&t->cancel, memory_order_relaxed);
}

#endif
