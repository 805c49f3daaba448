/* SPDX-License-Identifier: MIT */
/*
 * gen.c - hybrid generators (Agently StageHybridGenerator, athreading's
 * iterate and generate).
 *
 * A producer function runs as a Stage task, on a pool thread or as a
 * coroutine of the Stage's loop, and hands items over with
 * stage_gen_yield; a consumer on any thread or coroutine takes them with
 * stage_gen_next.  Neither side knows where the other runs.
 *
 * Two modes:
 *
 *   buffered (buffer >= 1)  the producer runs ahead until `buffer` items
 *                           wait; yield blocks only while the ring is full.
 *   lockstep (buffer 0)     Python generator semantics: the producer runs
 *                           only on demand.  Yield #k places item k in a
 *                           one-slot ring, then waits until the consumer
 *                           asks for item k+1 (next or send) and returns
 *                           the value that request sent.
 *
 * Counters, under the lock: `yielded` items placed, `requested` next/send
 * calls begun.  Every state change wakes every waiter of the side that may
 * now proceed; a woken waiter retries its attempt (stage__wait), so a
 * waiter that timed out or was cancelled never consumes an item.
 *
 * References: `users` counts the handles given to the application; when
 * it drops to zero the generator is closed (the producer's next yield
 * returns EPIPE).  head.refs counts those handles as one, plus one for a
 * producer that may still run.
 */
#include "common-int.h"
#include "stream-int.h"
#include "local-int.h"

#include <string.h>

struct stage_gen {
    stage__head head; /* lock: every field below the immutable ones */
    /* Handles held by the application; relaxed increments, acq_rel
     * decrement (the one reaching zero closes). */
    atomic_size_t users;
    /* Immutable after stage_go_gen. */
    stage *st;
    stage_gen_fn fn;
    void *arg;
    stage_destroy_fn item_destroy;
    unsigned int flags;
    size_t cap;       /* ring size: buffer, or 1 in lockstep */
    int lockstep;
    /* A lazy generator's creator's task-local variables, for its producer
     * (which starts later, from a consumer); read by the one start. */
    stage__locals *locals;
    /* Under the lock. */
    void **ring;
    size_t first, count;
    uint64_t yielded, requested;
    uint64_t unclaimed; /* requests whose next timed out or was cancelled:
                         * the next request reuses one, so the producer
                         * never runs ahead of demand */
    void *sent;         /* the value of the latest request (lockstep) */
    int started;        /* the producer task was started (or never will) */
    int finished;       /* the producer returned */
    int closed;         /* the consumer side closed it */
    int err;            /* the producer's failure, delivered after items */
    char *msg;
    int err_delivered;
    stage__list consumers; /* waiting for an item or the end */
    stage__list producers; /* the producer waiting for room or demand */
    stage_future *task;    /* the producer task, once started */
};

static void wake_all(stage__list *list)
{
    stage__waiter *w;
    while ((w = stage__waiter_pop(list)) != NULL)
        stage__waiter_wake(w, STAGE__SIGNALLED);
}

static void gen_release(stage_gen *g)
{
    if (!stage__head_unref(&g->head))
        return;
    while (g->count > 0) {
        void *item = g->ring[g->first];
        g->first = (g->first + 1) % g->cap;
        g->count--;
        if (item && g->item_destroy)
            g->item_destroy(item);
    }
    free(g->ring);
    free(g->msg);
    stage_future_unref(g->task);
    stage__locals_unref(g->locals);
    stage__head_free(&g->head);
}

/* ---- Producer ----------------------------------------------------------- */

/* The producer task's body: run fn, and keep a failure of fn (a
 * stage_task_fail, which also fails this task) for the consumer, who gets
 * it after every item. */
static void *producer(void *arg)
{
    stage_gen *g = arg;
    g->fn(g, g->arg);
    stage_future *self = stage_task_self();
    if (self && self->fail_err) {
        char *msg = self->fail_msg ? strdup(self->fail_msg) : NULL;
        pthread_mutex_lock(&g->head.lock);
        g->err = self->fail_err;
        g->msg = msg;
        pthread_mutex_unlock(&g->head.lock);
    }
    return NULL;
}

/* The producer task settled (whether or not its body ever ran): the
 * stream ends here, and the producer's reference goes. */
static void producer_settled(stage_future *task, void *arg)
{
    (void)task;
    stage_gen *g = arg;
    pthread_mutex_lock(&g->head.lock);
    g->finished = 1;
    wake_all(&g->consumers);
    pthread_mutex_unlock(&g->head.lock);
    gen_release(g);
}

struct yield_ctx {
    stage_gen *g;
    void *item;
    void **sent;
    int placed;
    int result;
};

static int attempt_yield(void *arg)
{
    struct yield_ctx *c = arg;
    stage_gen *g = c->g;
    if (!c->placed) {
        if (g->closed) {
            c->result = EPIPE;
            return 1;
        }
        if (g->count == g->cap)
            return 0; /* wait for room */
        g->ring[(g->first + g->count) % g->cap] = c->item;
        g->count++;
        g->yielded++;
        c->placed = 1;
        wake_all(&g->consumers);
    }
    if (g->lockstep && !g->closed && g->requested < g->yielded + 1)
        return 0; /* wait for the request of the next item */
    if (c->sent)
        *c->sent = g->lockstep && !g->closed ? g->sent : NULL;
    c->result = 0;
    return 1;
}

int stage_gen_yield(stage_gen *g, void *item, void **sent)
{
    if (!g)
        return EINVAL;
    if (sent)
        *sent = NULL;
    struct yield_ctx c = {g, item, sent, 0, 0};
    for (;;) {
        stage__waiter w;
        int woken;
        int err = stage__wait_for(STAGE__FOR_GEN_YIELD, g, &g->head.lock,
                                  &g->producers, &w, NULL, -1, attempt_yield,
                                  &c, &woken);
        if (err) {
            /* Once placed, the item is the generator's whatever happens:
             * the next yield reports the cancellation.  A close cancels
             * the producer too; what it means for a yield is EPIPE. */
            if (c.placed)
                return 0;
            pthread_mutex_lock(&g->head.lock);
            int closed = g->closed;
            pthread_mutex_unlock(&g->head.lock);
            return closed ? EPIPE : err;
        }
        if (!woken)
            return c.result;
    }
}

/* ---- Consumer ----------------------------------------------------------- */

static int start(stage_gen *g)
{
    pthread_mutex_lock(&g->head.lock);
    int go = !g->started;
    g->started = 1;
    pthread_mutex_unlock(&g->head.lock);
    if (!go)
        return 0;
    stage_future *task = NULL;
    /* The producer starts with its creator's variables, not the first
     * consumer's (a lazy one is started by that consumer). */
    stage__locals *prev = NULL;
    if (g->flags & STAGE_GEN_LAZY)
        prev = stage__locals_install(g->locals);
    /* The completion record first: once the producer runs, being told of
     * its end must not fail (cancelling and waiting for it instead could
     * deadlock a producer that does not check for cancellation). */
    struct callback *rec = malloc(sizeof *rec);
    int err = !rec ? ENOMEM
              : (g->flags & STAGE_GEN_CORO)
                  ? stage_go_coro(g->st, producer, g, NULL, &task)
                  : stage_go(g->st, producer, g, NULL, &task);
    if (g->flags & STAGE_GEN_LAZY)
        stage__locals_restore(prev);
    pthread_mutex_lock(&g->head.lock);
    if (err) {
        /* The producer will never run: the stream ends with the error. */
        g->finished = 1;
        g->err = err;
        wake_all(&g->consumers);
    } else {
        g->task = stage_future_ref(task);
    }
    pthread_mutex_unlock(&g->head.lock);
    if (err) {
        free(rec);
        gen_release(g); /* the producer's reference */
        return err;
    }
    stage__future_link_callback(task, rec, producer_settled, NULL, 0, g,
                                NULL);
    stage_future_unref(task);
    return 0;
}

struct next_ctx {
    stage_gen *g;
    void *value;
    void **item;
    int requested;
    int result;
};

static int attempt_next(void *arg)
{
    struct next_ctx *c = arg;
    stage_gen *g = c->g;
    if (g->closed) {
        c->result = EPIPE;
        return 1;
    }
    if (!c->requested) {
        c->requested = 1;
        if (g->unclaimed) {
            g->unclaimed--; /* an earlier request already released it */
        } else {
            g->requested++;
            g->sent = c->value;
            if (g->lockstep)
                wake_all(&g->producers);
        }
    }
    if (g->count > 0) {
        void *item = g->ring[g->first];
        g->first = (g->first + 1) % g->cap;
        g->count--;
        *c->item = item;
        if (!g->lockstep)
            wake_all(&g->producers); /* room again */
        c->result = 0;
        return 1;
    }
    if (g->finished) {
        if (g->err && !g->err_delivered) {
            g->err_delivered = 1;
            c->result = g->err;
            if (g->task) /* it reached the consumer: collected */
                atomic_store_explicit(&g->task->observed, 1,
                                      memory_order_relaxed);
        } else {
            c->result = EPIPE;
        }
        return 1;
    }
    return 0;
}

static int next(stage_gen *g, void *value, void **item, double timeout)
{
    int64_t deadline;
    if (!g || !item || stage__deadline(timeout, &deadline))
        return EINVAL;
    start(g); /* lazy generators start here; a failure ends the stream */
    struct next_ctx c = {g, value, item, 0, 0};
    for (;;) {
        stage__waiter w;
        int woken;
        int err = stage__wait_for(STAGE__FOR_GEN_NEXT, g, &g->head.lock,
                                  &g->consumers, &w, NULL, deadline,
                                  attempt_next, &c, &woken);
        if (err) {
            if (c.requested) {
                /* No item taken: the request stays for the next call. */
                pthread_mutex_lock(&g->head.lock);
                g->unclaimed++;
                pthread_mutex_unlock(&g->head.lock);
            }
            return err;
        }
        if (!woken)
            return c.result;
    }
}

int stage_gen_next(stage_gen *g, void **item, double timeout)
{
    return next(g, NULL, item, timeout);
}

int stage_gen_send(stage_gen *g, void *value, void **item, double timeout)
{
    if (g && !g->lockstep)
        return EINVAL;
    return next(g, value, item, timeout);
}

int stage_gen_collect(stage_gen *g, double timeout, void ***items,
                      size_t *count)
{
    int64_t deadline;
    if (!g || !items || !count || stage__deadline(timeout, &deadline))
        return EINVAL;
    void **v = NULL;
    size_t n = 0, cap = 0;
    int err;
    for (;;) {
        double left = timeout;
        if (deadline >= 0) {
            left = (double)(deadline - stage_now()) / 1e9;
            if (left < 0)
                left = 0;
        }
        void *item;
        err = stage_gen_next(g, &item, left);
        if (err)
            break;
        if (n == cap) {
            size_t ncap = cap ? 2 * cap : 16;
            void **nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                if (item && g->item_destroy)
                    g->item_destroy(item);
                err = ENOMEM;
                break;
            }
            v = nv;
            cap = ncap;
        }
        v[n++] = item;
    }
    *items = v;
    *count = n;
    return err == EPIPE ? 0 : err;
}

int stage_gen_close(stage_gen *g)
{
    if (!g)
        return EINVAL;
    pthread_mutex_lock(&g->head.lock);
    if (g->closed) {
        pthread_mutex_unlock(&g->head.lock);
        return 0;
    }
    g->closed = 1;
    int never_started = !g->started;
    g->started = 1;
    stage_future *task = g->task ? stage_future_ref(g->task) : NULL;
    wake_all(&g->producers);
    wake_all(&g->consumers);
    pthread_mutex_unlock(&g->head.lock);
    /* Items nobody will take: destroy them without the lock.  Once closed,
     * neither side touches the ring any more, and our handle keeps it. */
    while (g->count > 0) {
        void *item = g->ring[g->first];
        g->first = (g->first + 1) % g->cap;
        g->count--;
        if (item && g->item_destroy)
            g->item_destroy(item);
    }
    if (task) {
        /* Blocking calls of the producer return ECANCELED, so it ends
         * promptly; its yield returns EPIPE. */
        stage_future_cancel(task);
        stage_future_unref(task);
    }
    if (never_started)
        gen_release(g); /* the producer's reference: it will never run */
    return 0;
}

const char *stage_gen_message(stage_gen *g)
{
    if (!g)
        return NULL;
    pthread_mutex_lock(&g->head.lock);
    const char *msg = g->msg;
    pthread_mutex_unlock(&g->head.lock);
    return msg;
}

/* ---- Life cycle --------------------------------------------------------- */

int stage_go_gen(stage *st, stage_gen_fn fn, void *arg,
                 stage_destroy_fn item_destroy, size_t buffer,
                 unsigned int flags, stage_gen **out)
{
    if (!fn || !out || (flags & ~(STAGE_GEN_CORO | STAGE_GEN_LAZY)))
        return EINVAL;
    if (!st && !(st = stage_default()))
        return ENOMEM;
    stage_gen *g = stage__head_new(sizeof *g);
    if (!g)
        return ENOMEM;
    g->cap = buffer ? buffer : 1;
    g->ring = malloc(g->cap * sizeof *g->ring);
    if (!g->ring) {
        stage__head_free(&g->head);
        return ENOMEM;
    }
    atomic_init(&g->users, 1);
    stage__head_ref(&g->head); /* the producer's */
    g->st = st;
    g->fn = fn;
    g->arg = arg;
    g->item_destroy = item_destroy;
    g->flags = flags;
    g->lockstep = buffer == 0;
    stage__list_init(&g->consumers);
    stage__list_init(&g->producers);
    if (flags & STAGE_GEN_LAZY)
        g->locals = stage__locals_capture();
    if (!(flags & STAGE_GEN_LAZY)) {
        int err = start(g);
        if (err) {
            /* Nothing ran: undo. start() dropped the producer's ref. */
            gen_release(g);
            return err;
        }
    }
    *out = g;
    return 0;
}

stage_gen *stage_gen_ref(stage_gen *g)
{
    if (g)
        atomic_fetch_add_explicit(&g->users, 1, memory_order_relaxed);
    return g;
}

void stage_gen_unref(stage_gen *g)
{
    if (!g ||
        atomic_fetch_sub_explicit(&g->users, 1, memory_order_acq_rel) != 1)
        return;
    stage_gen_close(g);
    gen_release(g);
}
