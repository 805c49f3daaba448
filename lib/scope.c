/* SPDX-License-Identifier: MIT */
/*
 * scope.c - structured concurrency: scopes (async-tamer's AsyncScope,
 * trio's nursery, asyncio's TaskGroup).
 *
 * A scope counts the tasks started in it (`outstanding`) and keeps the
 * unsettled ones on `running`, so that it can cancel them.  Closing it is a
 * hybrid wait (stage__wait_for on the scope's lock) until the count is 0;
 * every task has finished when close returns.  A task's future is its
 * delayed result: the caller of stage_scope_go gets a reference.
 *
 *     opener: stage_scope_new ... go, go, go ... stage_scope_close
 *                                  |   |   |         (waits: outstanding 0)
 *     tasks:                       v   v   v
 *                          member_main: fn(arg)  -> settle -> member_settled
 *                                                   (failed: kept, and in
 *                                                    error mode cancel, the
 *                                                    siblings are cancelled)
 *
 * Failures are kept (one reference each, in the order they happen) until
 * the close that completes, which reports those that nobody read (the
 * future's `observed` flag): it returns the first and lists them all
 * (stage_scope_failure).  A close that nobody can see - stage_scope_free
 * of an open scope, or a task that returns with a scope it opened still
 * open - hands them to the Stage's error handler instead.
 *
 * Nesting.  Each context (a task, or a plain thread) has a slot: the
 * innermost scope open in it, that is the last one it opened (its `parent`
 * is the one before), else the scope the task belongs to (set by
 * member_main), else nothing.  A new scope's parent is the slot's scope;
 * the parent cancels its children with its own tasks.  A scope leaves its
 * opener's slot when its close completes in that context; one closed from
 * elsewhere is dropped lazily, by the opener's next open or close (top()).
 * The slot holds a reference, so nothing it names is ever freed under it.
 *
 * Deadline: a watchdog coroutine on the Stage's loop thread sleeps until
 * the deadline (a timer of that loop: no polling) and cancels the scope;
 * close cancels the watchdog and waits for it before it completes.
 *
 * Lock order: a scope's lock, then its children's (cancellation walks
 * down), then a future's (cancelling a task), then a loop's (waking).  It
 * is never taken under a future's lock: settle callbacks run unlocked.
 */
#include "common-int.h"
#include "loop-int.h"
#include "future-int.h"
#include "pool-int.h"
#include "stream-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define EXIT_MODES (STAGE_SCOPE_CANCEL | STAGE_SCOPE_RAISE)
#define ALL_FLAGS (EXIT_MODES | STAGE_SCOPE_CONTINUE)

/* A task of a scope, from its start until it settles. */
struct member {
    stage__node node;   /* on sc->running, under sc->lock */
    stage_scope *sc;    /* one reference */
    stage_future *task; /* the scope's reference */
    stage_task_fn fn;
    void *arg;
};

/* What the completed close reports: a failure, or (RAISE) a value. */
struct report {
    stage_future *task; /* one reference */
    int err;            /* 0: a value nobody read */
};

struct stage_scope {
    /* Protects the fields marked (L), and the `sibling` nodes of the
     * children.  See the lock order above. */
    pthread_mutex_t lock;
    /* The handle, the opener's slot, each child, each member, the
     * watchdog.  acq_rel on the decrement: the last sees every write. */
    atomic_size_t refs;
    /* Set by stage_scope_new, then never changed. */
    stage *st;            /* one reference (stage__ref) */
    stage_loop *loop;     /* the opener's loop (coroutines), one reference */
    unsigned int flags;
    unsigned int number;  /* for the tasks' default names */
    uint64_t opener;      /* context id of the opener */
    stage_scope *parent;  /* one reference, or NULL */
    int in_task;          /* opened by a task of the parent, which waits */
    stage__node sibling;  /* on parent->children, under parent->lock */
    int64_t deadline;     /* absolute (ns), or -1 */
    stage__list children; /* (L) child scopes, until their close */
    stage__list running;  /* (L) struct member, until it settles */
    stage__list waiters;  /* (L) a closer waiting for outstanding == 0 */
    size_t outstanding;   /* (L) tasks started and not settled */
    size_t ntasks;        /* (L) tasks started: the next one's index */
    stage_future **kept;  /* (L) settled tasks close may report, in order */
    size_t nkept, capkept;
    int cancelled;        /* (L) cancel, a failure, the deadline, a parent */
    int expired;          /* (L) the deadline cancelled unfinished tasks */
    int closing;          /* (L) a close has begun */
    int closer;           /* (L) a close is running */
    stage_future *watchdog; /* (L) the deadline's coroutine, or NULL */
    /* (L) Set by the close that completes, together with `done`; read
     * only after `done`. */
    struct report *reports;
    size_t nreports;
    /* (L) when written; also read without the lock by the opener's slot
     * walk (top()): release store, acquire load, so the walk sees a
     * completed close. */
    atomic_int done;
};

/* Numbers scopes for names; relaxed: only uniqueness matters. */
static atomic_uint next_number;

/* Ids of plain threads, for the slot walk; futures (tasks) have their own
 * ids, which never have the top bit set.  Relaxed: uniqueness only. */
static atomic_uint_fast64_t next_thread;
static _Thread_local uint64_t tls_thread STAGE__TLS_MODEL;
/* The slot of a plain thread (a task's is its future's `scope`). */
static _Thread_local stage_scope *tls_scope STAGE__TLS_MODEL;

/* ---- References --------------------------------------------------------- */

static void scope_ref(stage_scope *sc)
{
    atomic_fetch_add_explicit(&sc->refs, 1, memory_order_relaxed);
}

static void scope_unref(stage_scope *sc)
{
    if (atomic_fetch_sub_explicit(&sc->refs, 1, memory_order_acq_rel) != 1)
        return;
    stage_scope *parent = sc->parent;
    if (parent) {
        /* Freed without a completed close (stage_scope_free whose close
         * was refused): leave the parent's list all the same. */
        pthread_mutex_lock(&parent->lock);
        if (stage__node_linked(&sc->sibling))
            stage__list_remove(&sc->sibling);
        pthread_mutex_unlock(&parent->lock);
        scope_unref(parent);
    }
    for (size_t i = 0; i < sc->nreports; i++)
        stage_future_unref(sc->reports[i].task);
    free(sc->reports);
    for (size_t i = 0; i < sc->nkept; i++)
        stage_future_unref(sc->kept[i]);
    free(sc->kept);
    stage__loop_unref(sc->loop);
    stage__unref(sc->st);
    pthread_mutex_destroy(&sc->lock);
    free(sc);
}

/* ---- Contexts and their slots ------------------------------------------- */

struct ctx {
    stage_scope **slot; /* the innermost scope open in the context */
    uint64_t id;
};

static void ctx_current(struct ctx *c)
{
    stage_future *t = stage__task_current();
    if (t) {
        c->slot = &t->scope;
        c->id = t->id;
        return;
    }
    if (!tls_thread)
        tls_thread = (UINT64_C(1) << 63) |
                     (atomic_fetch_add_explicit(&next_thread, 1,
                                                memory_order_relaxed) +
                      1);
    c->slot = &tls_scope;
    c->id = tls_thread;
}

/* The innermost open scope of the context, after dropping from its slot
 * the scopes it opened whose close has completed meanwhile. */
static stage_scope *top(struct ctx *c)
{
    stage_scope *sc;
    while ((sc = *c->slot) != NULL && sc->opener == c->id &&
           atomic_load_explicit(&sc->done, memory_order_acquire)) {
        /* The parent stays alive: it is one of ours (the slot holds it)
         * or the scope this task belongs to. */
        *c->slot = sc->parent;
        scope_unref(sc);
    }
    return sc;
}

/* The scope the context's task belongs to: below the ones it opened. */
static stage_scope *home(struct ctx *c)
{
    stage_scope *sc = top(c);
    while (sc && sc->opener == c->id)
        sc = sc->parent;
    return sc;
}

/* Would closing sc wait for the calling context?  Yes if the caller is a
 * task of sc, or of a scope opened (transitively) by a task of sc. */
static int waits_for_caller(stage_scope *sc, struct ctx *c)
{
    for (stage_scope *s = home(c); s; s = s->parent) {
        if (s == sc)
            return 1;
        if (!s->in_task)
            break;
    }
    return 0;
}

/* ---- Cancellation ------------------------------------------------------- */

/* Cancel every task of sc and of its children, now and to come (go
 * refuses new ones).  Called with sc->lock held. */
static void cancel_locked(stage_scope *sc)
{
    sc->cancelled = 1;
    for (stage__node *n = sc->running.next; n != &sc->running; n = n->next)
        stage_future_cancel(stage__container_of(n, struct member, node)->task);
    for (stage__node *n = sc->children.next; n != &sc->children;
         n = n->next) {
        stage_scope *child = stage__container_of(n, stage_scope, sibling);
        pthread_mutex_lock(&child->lock);
        if (!child->cancelled)
            cancel_locked(child);
        pthread_mutex_unlock(&child->lock);
    }
}

int stage_scope_cancel(stage_scope *sc)
{
    if (!sc)
        return EINVAL;
    pthread_mutex_lock(&sc->lock);
    int err = atomic_load_explicit(&sc->done, memory_order_relaxed) ? EPIPE
                                                                     : 0;
    if (!err)
        cancel_locked(sc);
    pthread_mutex_unlock(&sc->lock);
    return err;
}

/* ---- The deadline ------------------------------------------------------- */

static void *watchdog_main(void *arg)
{
    stage_scope *sc = arg;
    int64_t left = sc->deadline - stage_now();
    if (stage_sleep(left > 0 ? (double)left / 1e9 : 0) != 0)
        return NULL; /* cancelled by close: the scope ended in time */
    pthread_mutex_lock(&sc->lock);
    if (!atomic_load_explicit(&sc->done, memory_order_relaxed)) {
        if (sc->outstanding > 0)
            sc->expired = 1;
        cancel_locked(sc);
    }
    pthread_mutex_unlock(&sc->lock);
    return NULL;
}

/* ---- Opening ------------------------------------------------------------ */

stage_scope *stage_scope_new(stage *st, unsigned int flags, double timeout)
{
    int64_t deadline;
    if ((flags & ~ALL_FLAGS) || (flags & EXIT_MODES) == EXIT_MODES ||
        stage__deadline(timeout, &deadline)) {
        errno = EINVAL;
        return NULL;
    }
    if (!st && !(st = stage_default())) {
        errno = ENOMEM;
        return NULL;
    }
    int err = 0;
    stage_loop *loop = stage__loop_ensure(&err);
    if (!loop) {
        errno = err;
        return NULL;
    }
    stage_scope *sc = calloc(1, sizeof *sc);
    if (!sc || pthread_mutex_init(&sc->lock, NULL) != 0) {
        free(sc);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&sc->refs, 1);
    atomic_init(&sc->done, 0);
    stage__ref(st);
    sc->st = st;
    /* Relaxed: we hold a valid pointer (our own thread's loop). */
    atomic_fetch_add_explicit(&loop->refs, 1, memory_order_relaxed);
    sc->loop = loop;
    sc->flags = flags;
    sc->number = atomic_fetch_add_explicit(&next_number, 1,
                                           memory_order_relaxed) +
                 1;
    stage__node_init(&sc->sibling);
    stage__list_init(&sc->children);
    stage__list_init(&sc->running);
    stage__list_init(&sc->waiters);
    if (deadline >= 0) {
        scope_ref(sc); /* the watchdog's; close drops it */
        sc->deadline = deadline;
        err = stage_go_coro(st, watchdog_main, sc, NULL, &sc->watchdog);
        if (err) {
            scope_unref(sc);
            scope_unref(sc);
            errno = err;
            return NULL;
        }
    }
    /* Nest in the context's innermost open scope. */
    struct ctx c;
    ctx_current(&c);
    stage_scope *parent = top(&c);
    if (parent) {
        scope_ref(parent);
        sc->parent = parent;
        sc->in_task = parent->opener != c.id; /* we are a task of it */
        pthread_mutex_lock(&parent->lock);
        stage__list_push(&parent->children, &sc->sibling);
        int cancelled = parent->cancelled;
        pthread_mutex_unlock(&parent->lock);
        if (cancelled) {
            pthread_mutex_lock(&sc->lock);
            cancel_locked(sc);
            pthread_mutex_unlock(&sc->lock);
        }
    }
    sc->opener = c.id;
    scope_ref(sc); /* the slot's */
    *c.slot = sc;
    return sc;
}

/* ---- Tasks -------------------------------------------------------------- */

static int close_scope(stage_scope *sc, double timeout, int implicit);

/* The body of every task of a scope. */
static void *member_main(void *arg)
{
    struct member *m = arg;
    stage_future *self = stage__task_current();
    self->scope = m->sc; /* scopes this task opens nest in m->sc */
    void *result = m->fn(m->arg);
    /* Scopes the task opened and left open: close them now (reporting
     * their failures), so that every task of ours has finished. */
    struct ctx c = {&self->scope, self->id};
    stage_scope *open;
    while ((open = top(&c)) != m->sc) {
        close_scope(open, STAGE_FOREVER, 1);
        if (*c.slot == open) { /* its close was refused: let it go */
            *c.slot = open->parent;
            scope_unref(open);
        }
    }
    self->scope = NULL;
    return result;
}

/* Wake the closers once outstanding is zero.  Called with sc->lock. */
static void wake_closers_locked(stage_scope *sc)
{
    stage__waiter *w;
    while ((w = stage__waiter_pop(&sc->waiters)) != NULL)
        stage__waiter_wake(w, STAGE__SIGNALLED);
}

/* Keep a settled task for close's report; 0 when out of memory. */
static int keep_locked(stage_scope *sc, stage_future *task)
{
    if (sc->nkept == sc->capkept) {
        size_t cap = sc->capkept ? 2 * sc->capkept : 8;
        stage_future **v = realloc(sc->kept, cap * sizeof *v);
        if (!v)
            return 0;
        sc->kept = v;
        sc->capkept = cap;
    }
    sc->kept[sc->nkept++] = task;
    return 1;
}

/* A task of the scope settled (its callback, on the settling thread). */
static void member_settled(stage_future *task, void *arg)
{
    struct member *m = arg;
    stage_scope *sc = m->sc;
    stage_state state = stage_future_state(task);
    int keep = state == STAGE_FAILED ||
               (state == STAGE_DONE && (sc->flags & STAGE_SCOPE_RAISE));
    int lost = 0;
    pthread_mutex_lock(&sc->lock);
    stage__list_remove(&m->node);
    if (keep && !keep_locked(sc, task))
        keep = 0, lost = state == STAGE_FAILED;
    if (state == STAGE_FAILED && !(sc->flags & STAGE_SCOPE_CONTINUE))
        cancel_locked(sc); /* error mode cancel: the siblings */
    if (--sc->outstanding == 0)
        wake_closers_locked(sc);
    pthread_mutex_unlock(&sc->lock);
    if (lost) /* no memory to keep it: report it now rather than lose it */
        stage__report(task->owner, task, task->err, task->msg);
    if (!keep)
        stage_future_unref(task);
    free(m);
    scope_unref(sc);
}

/* Give the task a name for reports, unless it has one already. */
static void default_name(stage_future *task, unsigned int number,
                         size_t index)
{
    char buf[48];
    snprintf(buf, sizeof buf, "scope-%u.%zu", number, index);
    char *name = strdup(buf);
    pthread_mutex_lock(&task->lock);
    if (!task->name) {
        task->name = name;
        name = NULL;
    }
    pthread_mutex_unlock(&task->lock);
    free(name);
}

static int scope_go(stage_scope *sc, int coro, stage_task_fn fn, void *arg,
                    stage_destroy_fn result_destroy, stage_future **out)
{
    if (!sc || !fn)
        return EINVAL;
    struct member *m = malloc(sizeof *m);
    if (!m)
        return ENOMEM;
    m->sc = sc;
    m->fn = fn;
    m->arg = arg;
    stage__node_init(&m->node);
    /* While a close waits (outstanding > 0), tasks may still start, so a
     * task can start siblings; once it is over, EPIPE. */
    pthread_mutex_lock(&sc->lock);
    int err = atomic_load_explicit(&sc->done, memory_order_relaxed) ||
                      (sc->closing && sc->outstanding == 0)
                  ? EPIPE
              : sc->cancelled ? ECANCELED
                              : 0;
    size_t index = sc->ntasks;
    if (!err) {
        sc->outstanding++;
        sc->ntasks++;
        scope_ref(sc); /* the member's */
    }
    pthread_mutex_unlock(&sc->lock);
    if (err) {
        free(m);
        return err;
    }
    stage_future *task;
    err = coro ? stage__coro_spawn(sc->loop, member_main, m, result_destroy,
                                   0, sc->st, &task)
               : stage__go_pool(sc->st, member_main, m, result_destroy,
                                &task);
    if (err) {
        pthread_mutex_lock(&sc->lock);
        if (--sc->outstanding == 0)
            wake_closers_locked(sc);
        pthread_mutex_unlock(&sc->lock);
        free(m);
        scope_unref(sc);
        return err;
    }
    m->task = task;
    default_name(task, sc->number, index);
    pthread_mutex_lock(&sc->lock);
    stage__list_push(&sc->running, &m->node);
    int cancelled = sc->cancelled; /* while we were starting it */
    pthread_mutex_unlock(&sc->lock);
    if (cancelled)
        stage_future_cancel(task);
    if (out)
        *out = stage_future_ref(task);
    if (stage_future_add_callback(task, member_settled, m, NULL) != 0) {
        /* No memory to be told: wait for it here rather than lose it. */
        stage__future_wait_shielded(task);
        member_settled(task, m);
    }
    return 0;
}

int stage_scope_go(stage_scope *sc, stage_task_fn fn, void *arg,
                   stage_destroy_fn result_destroy, stage_future **out)
{
    return scope_go(sc, 0, fn, arg, result_destroy, out);
}

int stage_scope_go_coro(stage_scope *sc, stage_task_fn fn, void *arg,
                        stage_destroy_fn result_destroy, stage_future **out)
{
    return scope_go(sc, 1, fn, arg, result_destroy, out);
}

/* ---- Closing ------------------------------------------------------------ */

static int idle(void *arg)
{
    stage_scope *sc = arg;
    return sc->outstanding == 0;
}

/* Every task has finished: stop the watchdog, collect the reports, leave
 * the parent and the opener's slot.  Returns close's result. */
static int finish(stage_scope *sc, struct ctx *c, int cancelled,
                  int implicit)
{
    pthread_mutex_lock(&sc->lock);
    stage_future *watchdog = sc->watchdog;
    sc->watchdog = NULL;
    pthread_mutex_unlock(&sc->lock);
    if (watchdog) {
        stage_future_cancel(watchdog);
        stage__future_wait_shielded(watchdog);
        stage_future_unref(watchdog);
        scope_unref(sc); /* the watchdog's reference */
    }
    /* No task is left to add to `kept` (go refuses them now). */
    pthread_mutex_lock(&sc->lock);
    stage_future **kept = sc->kept;
    size_t nkept = sc->nkept;
    sc->kept = NULL;
    sc->nkept = sc->capkept = 0;
    int expired = sc->expired;
    pthread_mutex_unlock(&sc->lock);
    struct report *reports = nkept ? malloc(nkept * sizeof *reports) : NULL;
    size_t n = 0;
    int first = 0, unread = 0;
    for (size_t i = 0; i < nkept; i++) {
        stage_future *t = kept[i];
        int err = stage_future_state(t) == STAGE_FAILED ? t->err : 0;
        if (stage__future_observed(t)) {
            stage_future_unref(t);
            continue;
        }
        atomic_store_explicit(&t->observed, 1, memory_order_relaxed);
        if (!first)
            first = err;
        unread |= !err;
        /* Nobody will read the list (or there is none, for want of
         * memory): the Stage's error handler hears it. */
        if (implicit || !reports)
            stage__report(t->owner, t, err ? err : ENOMSG,
                          err ? t->msg : "a result nobody read");
        if (reports)
            reports[n++] = (struct report){t, err};
        else
            stage_future_unref(t);
    }
    free(kept);
    pthread_mutex_lock(&sc->lock);
    sc->reports = reports;
    sc->nreports = n;
    sc->closer = 0;
    atomic_store_explicit(&sc->done, 1, memory_order_release);
    pthread_mutex_unlock(&sc->lock);
    if (sc->parent) {
        pthread_mutex_lock(&sc->parent->lock);
        if (stage__node_linked(&sc->sibling))
            stage__list_remove(&sc->sibling);
        pthread_mutex_unlock(&sc->parent->lock);
    }
    if (c->id == sc->opener)
        top(c); /* leave the slot if we are on top of it */
    if (cancelled)
        return ECANCELED;
    if (first)
        return first;
    if (expired)
        return ETIMEDOUT;
    return unread ? ENOMSG : 0;
}

static int close_scope(stage_scope *sc, double timeout, int implicit)
{
    int64_t deadline;
    if (!sc || stage__deadline(timeout, &deadline))
        return EINVAL;
    struct ctx c;
    ctx_current(&c);
    if (waits_for_caller(sc, &c))
        return EDEADLK; /* a task of the scope would wait for itself */
    pthread_mutex_lock(&sc->lock);
    int err = atomic_load_explicit(&sc->done, memory_order_relaxed) ? EPIPE
              : sc->closer                                          ? EBUSY
                                                                    : 0;
    if (!err) {
        sc->closer = 1;
        sc->closing = 1;
        if (sc->flags & STAGE_SCOPE_CANCEL)
            cancel_locked(sc);
    }
    pthread_mutex_unlock(&sc->lock);
    if (err)
        return err;
    stage__waiter w;
    int woken, cancelled = 0;
    err = stage__wait_for(STAGE__FOR_SCOPE, sc, &sc->lock, &sc->waiters, &w,
                          NULL, deadline, idle, sc, &woken);
    if (err == ECANCELED) {
        /* The caller is cancelled: so are the tasks, and we still wait
         * for them (their blocking calls return at once). */
        cancelled = 1;
        pthread_mutex_lock(&sc->lock);
        cancel_locked(sc);
        pthread_mutex_unlock(&sc->lock);
        err = stage__wait_as(&sc->lock, &sc->waiters, &w, NULL, deadline,
                             idle, sc, &woken, 1);
    }
    if (err) { /* timed out (or no loop): not closed; close may be retried */
        pthread_mutex_lock(&sc->lock);
        sc->closer = 0;
        pthread_mutex_unlock(&sc->lock);
        return err;
    }
    return finish(sc, &c, cancelled, implicit);
}

int stage_scope_close(stage_scope *sc, double timeout)
{
    return close_scope(sc, timeout, 0);
}

int stage_scope_failure(stage_scope *sc, size_t index, const char **task_name,
                        int *err, const char **message)
{
    if (!sc)
        return EINVAL;
    pthread_mutex_lock(&sc->lock);
    size_t n = atomic_load_explicit(&sc->done, memory_order_relaxed)
                   ? sc->nreports
                   : 0;
    pthread_mutex_unlock(&sc->lock);
    if (index >= n)
        return ENOENT;
    /* Reports never change once the close is done. */
    struct report *r = &sc->reports[index];
    if (task_name)
        *task_name = stage_future_name(r->task);
    if (err)
        *err = r->err;
    if (message)
        *message = r->err ? r->task->msg : NULL;
    return 0;
}

void stage_scope_free(stage_scope *sc)
{
    if (!sc)
        return;
    if (!atomic_load_explicit(&sc->done, memory_order_acquire))
        close_scope(sc, STAGE_FOREVER, 1);
    scope_unref(sc);
}
