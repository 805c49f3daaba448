/* SPDX-License-Identifier: MIT */
/*
 * loop-int.h - the loop, coroutines and waiters: the core's shared types.
 *
 * A thread's loop is driven by its "root" context: the thread's own stack.
 * Whenever the thread blocks in any libstage call (or runs stage_loop_run),
 * the root runs the scheduler below until its own wait is decided.  A
 * coroutine that blocks switches to the next ready coroutine of the current
 * batch, or back to the root when the batch is done.
 *
 *            +-------------------- root (thread stack) ----------------+
 *            |  inbox -> ready ; expired timers -> ready               |
 *            |  batch := ready ; run batch (coroutines chain directly) |
 *            |  nothing ready: sleep in poll(2) (fd waits exist)       |
 *            |                 or on the loop's condvar (none exist)   |
 *            +---------------------------------------------------------+
 *
 * The waiter is the one mechanism under every blocking call.  It lives on
 * the waiting side's stack, is listed in the primitive it waits on, and its
 * outcome is decided exactly once by a compare-and-swap from PENDING (see
 * stage__waiter_wake).  Whoever wins the CAS makes the waiter's owner
 * runnable; whoever loses does nothing more.  So a wake-up, a timeout and a
 * cancellation can race freely.
 */
#ifndef STAGE_LOOP_INT_H
#define STAGE_LOOP_INT_H

#include "common-int.h"
#include "ctx-int.h"
#include "heap-int.h"
#include "list-int.h"

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>

enum {
    STAGE__PENDING = 0,
    STAGE__SIGNALLED,
    STAGE__TIMEDOUT,
    STAGE__CANCELLED
};

typedef struct stage__coro stage__coro;

typedef struct stage__waiter {
    /* PENDING until decided, once, by CAS.  acq_rel on the CAS and acquire
     * on loads: whatever the winner wrote before (a handed-over item, an
     * fd's revents) is visible to the waiter once it sees the outcome. */
    _Atomic int outcome;
    stage__coro *coro;    /* NULL: the root context of `loop` waits */
    stage_loop *loop;     /* the loop that resumes the waiter */
    stage_future *task;   /* the waiting task (for cancellation), or NULL */
    stage__node link;     /* in the primitive's list, under its lock */
    stage__timer timer;   /* coroutine waits with a deadline */
    void *item;           /* a value handed over by the waker */
    size_t pfd;           /* poll slot of an fd wait, or STAGE__NOSLOT */
    unsigned int revents; /* STAGE_FD_* reported by poll */
    /* What the task waits on, for stage_future_describe: written before
     * the waiter is attached to its task (stage__waiter_init_for) and
     * never changed while attached, so a describer reading it under the
     * task's lock (it finds it as task_waiter) reads it consistently. */
    int for_kind;         /* STAGE__FOR_* */
    const void *for_obj;  /* the future, queue, ... waited on, or NULL */
    int64_t for_a, for_b; /* sleep: requested ns, deadline; fd: fd, events */
} stage__waiter;

/* Kinds of wait, for descriptions (describe.c names them). */
enum {
    STAGE__FOR_NONE = 0, /* a wait that says nothing of itself */
    STAGE__FOR_SLEEP,
    STAGE__FOR_FUTURE,   /* for_obj: the future (the waiter holds a ref) */
    STAGE__FOR_LOOP,     /* stage_loop_run until no coroutine is left */
    STAGE__FOR_FD,
    STAGE__FOR_QUEUE_GET,
    STAGE__FOR_QUEUE_PUT,
    STAGE__FOR_EVENT,
    STAGE__FOR_TUNNEL,
    STAGE__FOR_GEN_NEXT, /* a consumer waiting for an item */
    STAGE__FOR_GEN_YIELD, /* a producer waiting for room or demand */
    STAGE__FOR_SCOPE,    /* a scope's close waiting for its tasks */
    STAGE__FOR_FUTURES   /* gather / wait-any on a set of futures */
};

/* A stack mapping.  The coroutine record sits at its top; the usable stack
 * is [lo, coro record). */
typedef struct stage__stack {
    void *map;      /* start of the mapping (the guard page, if any) */
    size_t maplen;  /* whole mapping */
    char *lo;       /* lowest usable byte */
    int guarded;    /* 1: PROT_NONE page below lo; 0: canary at lo */
    unsigned vg_id; /* valgrind stack id */
} stage__stack;

struct stage__coro {
    stage__ctx ctx;          /* saved registers while suspended */
    stage__node node;        /* ready/batch/inbox list: one at a time */
    stage__node live;        /* loop->live, owner thread only */
    stage_loop *loop;
    stage_future *task;      /* the coroutine's future (one reference) */
    stage_task_fn fn;
    void *arg;
    stage_destroy_fn destroy;
    int detached;            /* nobody holds the future: report failures */
    stage__stack stack;
    void *asan_fake_stack;   /* ASan fake-stack slot while suspended */
    void *tsan_fiber;
};

/* A spawn handed over by another thread; the loop makes the coroutine. */
typedef struct stage__spawn {
    stage__node node;
    stage_task_fn fn;
    void *arg;
    stage_destroy_fn destroy;
    size_t stack_size;
    stage_future *task; /* one reference, handed to the coroutine */
    int detached;
} stage__spawn;

enum { STAGE__AWAKE = 0, STAGE__SLEEP_COND, STAGE__SLEEP_POLL };

struct stage_loop {
    /* `lock` protects inbox, spawns, sleep and closing: the only fields
     * other threads touch.  It is the innermost lock of the library: taken
     * under a future's or primitive's lock, never the other way round. */
    pthread_mutex_t lock;
    pthread_cond_t cond;   /* the root sleeps here when no fd is waited */
    stage__list inbox;     /* coroutines woken by other threads */
    stage__list spawns;    /* stage__spawn requests from other threads */
    int sleep;             /* STAGE__SLEEP_*: what a waker must poke */
    /* Non-zero when inbox or spawns may be non-empty.  Written under the
     * lock; read without it by the owner as a hint (relaxed), which is safe
     * because the owner re-reads it under the lock before sleeping. */
    atomic_int pending;
    int closing;           /* stage_loop_free started: refuse spawns */

    /* One reference for the owner thread, one for each waker from another
     * thread while it pokes the loop.  The last unref frees the loop, so a
     * waker may signal the condition variable after releasing `lock`
     * (the woken owner then does not block on the waker's lock).  Relaxed
     * increment (the waker already holds a valid pointer), acq_rel
     * decrement (the freeing side must see every poke finished). */
    atomic_size_t refs;

    /* Everything below belongs to the owner thread alone. */
    int wake_rd, wake_wr;  /* eventfd (same fd twice) or pipe; -1: none */
    stage__list ready;     /* runnable, for the next batch */
    stage__list batch;     /* runnable, this batch */
    stage__list live;      /* every coroutine not yet finished */
    size_t count;          /* number on `live` */
    stage__coro *current;  /* running coroutine, NULL for the root */
    stage__coro *zombie;   /* finished, its stack to be reclaimed */
    stage__ctx root_ctx;
    stage__heap timers;
    struct pollfd *pfds;   /* slot 0: the wake-up fd once it exists */
    stage__waiter **pws;   /* waiter of each slot (NULL for slot 0) */
    size_t npfd, cappfd;
    size_t nuser;          /* slots that belong to fd waits */
    stage__stack *cache;   /* free default-size stacks */
    size_t ncache;
    /* Sanitizer bookkeeping for the root context. */
    const void *root_stack_bottom;
    size_t root_stack_size;
    void *root_fake_stack;
    void *root_tsan_fiber;
};

/* ---- loop.c ---- */
stage_loop *stage__loop_get(void);      /* calling thread's loop or NULL */
stage_loop *stage__loop_ensure(int *err);
void stage__loop_schedule(stage_loop *loop, stage__coro *c); /* owner */
/* Under loop->lock: mark the loop awake; returns what it was sleeping on
 * (STAGE__SLEEP_*), for stage__loop_poke_after once the lock is dropped. */
int stage__loop_wake_mode(stage_loop *loop);
/* Without the lock, holding a reference: poke a loop that was asleep. */
void stage__loop_poke_after(stage_loop *loop, int mode);
void stage__loop_unref(stage_loop *loop);
void stage__loop_suspend(stage_loop *loop);                  /* coroutine */


/* ---- fd.c ---- */
void stage__loop_poke_fd(stage_loop *loop);
void stage__loop_poll(stage_loop *loop, int64_t until);
void stage__loop_fd_fini(stage_loop *loop);
void stage__loop_close_wakefd(stage_loop *loop);

int stage__waiter_init(stage__waiter *w);  /* 0, ECANCELED, ENOMEM */
/* A waiter that is not attached to the calling task, so cancellation does
 * not decide it (0, ENOMEM): for a short wait that a call must finish even
 * when cancelled (server.c: a handler still using the caller's request;
 * scope.c: a cancelled scope's close waiting for its cancelled tasks). */
int stage__waiter_init_shielded(stage__waiter *w);
/* The same, recording what is waited on (STAGE__FOR_*) for descriptions. */
int stage__waiter_init_for(stage__waiter *w, int kind, const void *obj,
                           int64_t a, int64_t b);
void stage__waiter_done(stage__waiter *w);
int stage__waiter_park(stage__waiter *w, int64_t deadline);
int stage__waiter_wake(stage__waiter *w, int outcome);
static inline int stage__waiter_outcome(stage__waiter *w)
{
    return atomic_load_explicit(&w->outcome, memory_order_acquire);
}

/* ---- coro.c ---- */
int stage__coro_start(stage_loop *loop, stage__spawn *sp);
void stage__coro_switch(stage_loop *loop, stage__coro *to);
void stage__coro_reclaim(stage_loop *loop);
void stage__coro_cache_free(stage_loop *loop);
void stage__coro_root_init(stage_loop *loop);

/* ---- stack.c ---- */
int stage__stack_alloc(stage__stack *s, size_t size);
void stage__stack_free(stage__stack *s);
void stage__stack_check(const stage__stack *s);
size_t stage__stack_round(size_t size);

/* ---- task.c ---- */
stage_future *stage__task_current(void);
/* Run fn(arg) as `task` at the root of the calling thread (unless the
 * task was cancelled before it started); the caller settles the task. */
void *stage__task_run_body(stage_future *task, stage_task_fn fn, void *arg);

/* ---- future.c ---- */
stage_future *stage__future_new_task(void);
void stage__task_finish(stage_future *task, void *result,
                        stage_destroy_fn destroy, int detached);
int stage__task_attach(stage_future *task, stage__waiter *w);
void stage__task_detach(stage_future *task, stage__waiter *w);
void stage__task_set_failure(stage_future *task, int err, char *msg);

#endif
