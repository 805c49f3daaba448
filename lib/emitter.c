/* SPDX-License-Identifier: MIT */
/*
 * emitter.c - event emitters (Agently's EventEmitter, with Node's API):
 * listeners registered by event name, run as tasks of a Stage whenever the
 * event is emitted, each handing the emitter a response: its task's future.
 *
 * Registrations.  A registration (struct reg) is reference counted: one
 * reference while it is listed under its event, one per call of it in
 * flight.  Removing it (off, off_all, close, the emitter's last unref, or
 * an emit taking a once-listener) drops the list's reference; the
 * user_data destructor runs with the last reference, so never while the
 * listener still runs.  Each event is an entry with its regular and its
 * once-listeners, each list in registration order; an entry goes with its
 * last listener, so "unknown event" and "no listeners" are one state.  An
 * emitter has a handful of events: a linear search by name is enough.
 *
 * Emitting.  Under the lock, emit takes a snapshot: a reference to every
 * regular listener, and the once-listeners themselves, unlinked (the list's
 * reference moves to the call).  That is what makes a once-listener run
 * exactly once under concurrent emits, and what keeps a listener that is
 * registered later out of this emit.  Outside the lock, it starts one task
 * per listener through the Stage, on its pool or as a coroutine of its loop
 * (STAGE_LISTENER_CORO).  Emit never waits for a listener.
 *
 * One allocation per emit (struct emission) holds the data, the event name
 * shown to the listeners and one struct call per listener.  Each call
 * releases its share (its registration; one count of `left`, the data goes
 * at zero) exactly once: at the end of the listener's body, so the data is
 * gone before the last response settles; or, when the task was cancelled
 * before its body could run, from a callback on the task's future.  The
 * callback record is allocated before the task starts, so no task escapes
 * the count; the callbacks hold the references that keep the emission.
 *
 * Locks: em->lock is taken alone.  Listeners, destructors and the Stage are
 * called without it.
 */
#include "common-int.h"
#include "loop-int.h"
#include "future-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

struct reg {
    stage__node link; /* on its entry's regs or onces, under em->lock */
    /* The list's reference plus one per call in flight.  acq_rel on the
     * decrement: the last one sees every call's writes before the user
     * data is destroyed. */
    atomic_size_t refs;
    uint64_t seq; /* registration order, across both lists (off) */
    stage_listener_fn fn;
    void *user_data;
    stage_destroy_fn user_data_destroy;
    stage_destroy_fn result_destroy;
    unsigned int flags;
};

struct entry {
    stage__node link;  /* on em->events */
    stage__list regs;  /* regular listeners (struct reg) */
    stage__list onces; /* once-listeners */
    size_t count;      /* on both lists */
    char name[];
};

struct stage_emitter {
    /* Protects events (the entries, their lists and counts), seq and
     * closed. */
    pthread_mutex_t lock;
    /* acq_rel on the decrement: the last unref sees every write. */
    atomic_size_t refs;
    /* One stage__ref: it keeps the Stage's memory, never the Stage open.
     * Once the Stage is closed or freed, starting a listener on it fails
     * with EPIPE, which is what a listener's response then says. */
    stage *st;
    stage__list events;
    uint64_t seq;
    int closed;
};

struct emission;

struct call {
    struct emission *em;
    struct reg *reg;
    /* Set by whoever releases the call first (the body's end, or the
     * settle callback when the body never ran); seq_cst exchange: only
     * exclusivity matters, and `left` orders the rest. */
    atomic_int released;
};

struct emission {
    /* The emit's own reference plus one per settle callback: the memory.
     * acq_rel on the decrement, as for every reference count. */
    atomic_size_t refs;
    /* Calls not released yet; the data is destroyed at zero.  acq_rel:
     * the destroying side sees what every listener wrote into the data. */
    atomic_size_t left;
    void *data;
    stage_destroy_fn destroy;
    const char *event; /* a copy, after calls[] */
    struct call calls[];
};

/* ---- Registrations -------------------------------------------------------- */

static void reg_unref(struct reg *r)
{
    if (atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (r->user_data_destroy)
        r->user_data_destroy(r->user_data);
    free(r);
}

/* Under em->lock. */
static struct entry *find(stage_emitter *em, const char *event)
{
    for (stage__node *n = em->events.next; n != &em->events; n = n->next) {
        struct entry *e = stage__container_of(n, struct entry, link);
        if (strcmp(e->name, event) == 0)
            return e;
    }
    return NULL;
}

/* Under em->lock: unlink r (its reference is the caller's now); drop its
 * entry if r was the last listener. */
static void unlink_reg(struct entry *e, struct reg *r)
{
    stage__list_remove(&r->link);
    if (--e->count == 0) {
        stage__list_remove(&e->link);
        free(e);
    }
}

/* Release every registration of a list of entries taken off an emitter. */
static void release_entries(stage__list *events)
{
    stage__node *n;
    while ((n = stage__list_pop(events)) != NULL) {
        struct entry *e = stage__container_of(n, struct entry, link);
        stage__node *m;
        while ((m = stage__list_pop(&e->regs)) != NULL ||
               (m = stage__list_pop(&e->onces)) != NULL)
            reg_unref(stage__container_of(m, struct reg, link));
        free(e);
    }
}

/* ---- Life cycle ------------------------------------------------------------- */

stage_emitter *stage_emitter_new(stage *st)
{
    if (!st && !(st = stage_default()))
        return NULL;
    stage_emitter *em = calloc(1, sizeof *em);
    if (!em || pthread_mutex_init(&em->lock, NULL) != 0) {
        free(em);
        errno = ENOMEM;
        return NULL;
    }
    atomic_init(&em->refs, 1);
    stage__ref(st);
    em->st = st;
    stage__list_init(&em->events);
    return em;
}

stage_emitter *stage_emitter_ref(stage_emitter *em)
{
    if (em)
        atomic_fetch_add_explicit(&em->refs, 1, memory_order_relaxed);
    return em;
}

void stage_emitter_unref(stage_emitter *em)
{
    if (!em ||
        atomic_fetch_sub_explicit(&em->refs, 1, memory_order_acq_rel) != 1)
        return;
    release_entries(&em->events); /* nobody else can see them now */
    stage__unref(em->st);
    pthread_mutex_destroy(&em->lock);
    free(em);
}

int stage_emitter_close(stage_emitter *em)
{
    if (!em)
        return EINVAL;
    stage__list gone;
    stage__list_init(&gone);
    pthread_mutex_lock(&em->lock);
    em->closed = 1;
    stage__list_splice(&gone, &em->events);
    pthread_mutex_unlock(&em->lock);
    release_entries(&gone);
    return 0;
}

/* ---- Registering ------------------------------------------------------------ */

static int add(stage_emitter *em, int once, const char *event,
               stage_listener_fn fn, void *user_data,
               stage_destroy_fn user_data_destroy,
               stage_destroy_fn result_destroy, unsigned int flags)
{
    if (!em || !event || !fn || (flags & ~STAGE_LISTENER_CORO))
        return EINVAL;
    struct reg *r = malloc(sizeof *r);
    if (!r)
        return ENOMEM;
    atomic_init(&r->refs, 1);
    r->fn = fn;
    r->user_data = user_data;
    r->user_data_destroy = user_data_destroy;
    r->result_destroy = result_destroy;
    r->flags = flags;
    pthread_mutex_lock(&em->lock);
    int err = em->closed ? EPIPE : 0;
    struct entry *e = err ? NULL : find(em, event);
    if (!err && !e) {
        size_t len = strlen(event) + 1;
        e = malloc(sizeof *e + len);
        if (e) {
            memcpy(e->name, event, len);
            stage__list_init(&e->regs);
            stage__list_init(&e->onces);
            e->count = 0;
            stage__list_push(&em->events, &e->link);
        } else {
            err = ENOMEM;
        }
    }
    if (!err) {
        r->seq = ++em->seq;
        stage__list_push(once ? &e->onces : &e->regs, &r->link);
        e->count++;
    }
    pthread_mutex_unlock(&em->lock);
    if (err)
        free(r); /* the caller keeps user_data */
    return err;
}

int stage_emitter_on(stage_emitter *em, const char *event,
                     stage_listener_fn fn, void *user_data,
                     stage_destroy_fn user_data_destroy,
                     stage_destroy_fn result_destroy, unsigned int flags)
{
    return add(em, 0, event, fn, user_data, user_data_destroy, result_destroy,
               flags);
}

int stage_emitter_once(stage_emitter *em, const char *event,
                       stage_listener_fn fn, void *user_data,
                       stage_destroy_fn user_data_destroy,
                       stage_destroy_fn result_destroy, unsigned int flags)
{
    return add(em, 1, event, fn, user_data, user_data_destroy, result_destroy,
               flags);
}

/* The most recent registration of (fn, user_data) on list l, or NULL. */
static struct reg *latest(stage__list *l, stage_listener_fn fn,
                          void *user_data, struct reg *best)
{
    for (stage__node *n = l->next; n != l; n = n->next) {
        struct reg *r = stage__container_of(n, struct reg, link);
        if (r->fn == fn && r->user_data == user_data &&
            (!best || r->seq > best->seq))
            best = r;
    }
    return best;
}

int stage_emitter_off(stage_emitter *em, const char *event,
                      stage_listener_fn fn, void *user_data)
{
    if (!em || !event || !fn)
        return EINVAL;
    pthread_mutex_lock(&em->lock);
    struct entry *e = find(em, event);
    struct reg *r = NULL;
    if (e) {
        r = latest(&e->regs, fn, user_data, NULL);
        r = latest(&e->onces, fn, user_data, r);
        if (r)
            unlink_reg(e, r);
    }
    pthread_mutex_unlock(&em->lock);
    if (!r)
        return ENOENT;
    reg_unref(r);
    return 0;
}

int stage_emitter_off_all(stage_emitter *em, const char *event)
{
    if (!em)
        return EINVAL;
    stage__list gone;
    stage__list_init(&gone);
    pthread_mutex_lock(&em->lock);
    if (!event) {
        stage__list_splice(&gone, &em->events);
    } else {
        struct entry *e = find(em, event);
        if (e) {
            stage__list_remove(&e->link);
            stage__list_push(&gone, &e->link);
        }
    }
    pthread_mutex_unlock(&em->lock);
    release_entries(&gone);
    return 0;
}

size_t stage_emitter_count(stage_emitter *em, const char *event)
{
    if (!em || !event)
        return 0;
    pthread_mutex_lock(&em->lock);
    struct entry *e = find(em, event);
    size_t n = e ? e->count : 0;
    pthread_mutex_unlock(&em->lock);
    return n;
}

/* ---- Emitting --------------------------------------------------------------- */

static void emission_unref(struct emission *e)
{
    if (atomic_fetch_sub_explicit(&e->refs, 1, memory_order_acq_rel) == 1)
        free(e);
}

/* The listener's share of the emit is over: release it, once. */
static void call_release(struct call *c)
{
    if (atomic_exchange(&c->released, 1))
        return;
    struct emission *e = c->em;
    reg_unref(c->reg);
    if (atomic_fetch_sub_explicit(&e->left, 1, memory_order_acq_rel) == 1 &&
        e->destroy)
        e->destroy(e->data);
}

/* A listener's task body. */
static void *call_body(void *arg)
{
    struct call *c = arg;
    struct reg *r = c->reg;
    void *result = r->fn(c->em->event, c->em->data, r->user_data);
    call_release(c);
    return result;
}

/* The task settled: release the call if its body never ran. */
static void call_settled(stage_future *task, void *arg)
{
    (void)task;
    call_release(arg);
}

/* The settle callback's destroy function: its emission reference. */
static void call_done(void *arg)
{
    struct call *c = arg;
    emission_unref(c->em);
}

/* The response of a listener that could not be started: a future that
 * failed with err.  When nobody asked for responses (report), the failure
 * goes to the Stage's error handler, so that it is not lost. */
static stage_future *not_started(stage_emitter *em, const char *event,
                                 int err, int report)
{
    stage_future *f = stage_future_new();
    if (f) {
        stage_future_set_name(f, event);
        stage_future_fail(f, err, "a listener could not be started");
    }
    if (report) {
        stage__report(em->st, f, err, "a listener could not be started");
        stage_future_unref(f);
        f = NULL;
    }
    return f;
}

int stage_emitter_emit(stage_emitter *em, const char *event, void *data,
                       stage_destroy_fn data_destroy,
                       stage_future ***responses, size_t *count)
{
    if (!em || !event || (responses && !count))
        return EINVAL;
    size_t len = strlen(event) + 1;
    /* The snapshot, under the lock.  The allocation is made there, where
     * the number of listeners is known (one malloc per emit). */
    pthread_mutex_lock(&em->lock);
    if (em->closed) {
        pthread_mutex_unlock(&em->lock);
        return EPIPE;
    }
    struct entry *ent = find(em, event);
    size_t n = ent ? ent->count : 0;
    struct emission *e = NULL;
    stage_future **out = NULL;
    if (n > 0) {
        e = malloc(sizeof *e + n * sizeof e->calls[0] + len);
        if (e && responses)
            out = malloc(n * sizeof *out);
        if (!e || (responses && !out)) {
            pthread_mutex_unlock(&em->lock);
            free(e);
            return ENOMEM; /* nothing taken */
        }
        size_t i = 0;
        for (stage__node *m = ent->regs.next; m != &ent->regs; m = m->next) {
            struct reg *r = stage__container_of(m, struct reg, link);
            atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
            e->calls[i++].reg = r;
        }
        /* The regular listeners stay; the once-listeners are ours now. */
        ent->count = i;
        stage__node *m;
        while ((m = stage__list_pop(&ent->onces)) != NULL)
            e->calls[i++].reg = stage__container_of(m, struct reg, link);
        if (ent->count == 0) {
            stage__list_remove(&ent->link);
            free(ent);
        }
    }
    pthread_mutex_unlock(&em->lock);
    if (count)
        *count = n;
    if (responses)
        *responses = out; /* filled in below, before we return */
    if (n == 0) {
        if (data_destroy)
            data_destroy(data);
        return 0;
    }

    atomic_init(&e->refs, 1);
    atomic_init(&e->left, n);
    e->data = data;
    e->destroy = data_destroy;
    char *name = (char *)&e->calls[n];
    memcpy(name, event, len);
    e->event = name;
    for (size_t i = 0; i < n; i++) {
        e->calls[i].em = e;
        atomic_init(&e->calls[i].released, 0);
    }
    for (size_t i = 0; i < n; i++) {
        struct call *c = &e->calls[i];
        struct reg *r = c->reg;
        stage_future *task = NULL;
        struct callback *cb = malloc(sizeof *cb);
        int err = ENOMEM;
        if (cb && (r->flags & STAGE_LISTENER_CORO))
            err = stage_go_coro(em->st, call_body, c, r->result_destroy,
                                &task);
        else if (cb)
            err = stage_go(em->st, call_body, c, r->result_destroy, &task);
        if (!err) {
            atomic_fetch_add_explicit(&e->refs, 1, memory_order_relaxed);
            stage__future_link_callback(task, cb, call_settled, NULL, 0, c,
                                        call_done);
        } else {
            free(cb);
            task = not_started(em, name, err, out == NULL);
            call_release(c);
        }
        if (out)
            out[i] = task;
        else
            stage_future_unref(task);
    }
    emission_unref(e);
    return 0;
}
