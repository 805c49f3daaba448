/* SPDX-License-Identifier: MIT */
/*
 * tunnel.c - broadcast streams: every reader sees every item, in the one
 * order they were put, from the first retained item on (late readers
 * replay); the stream ends once, closed or failed.
 *
 * Items are numbered 0, 1, 2, ... as they are put.  The tunnel retains the
 * window [first, next): every item (history 0), or the last `history`.
 *
 *     seq:     first                         next
 *               v                             v
 *     slots:  [c0][c1][c2] ... (seq % nslots)       cell = { item, refs }
 *     readers:      ^pos        ^pos     (each its own position)
 *
 * A cell is counted: one reference for the window, one for each reader that
 * returned it last (its "pin"), so the item a reader holds survives its
 * leaving the window until that reader's next call.  The item is destroyed
 * when the count drops to zero, outside the lock.
 *
 * The slot array grows (doubling) while no item has left the window yet,
 * so first == 0 and seq % nslots == seq; with a bounded history it stops
 * at `history` slots and wraps from then on.
 *
 * Readers wait on `waiters`; every put and the end wake them all, and each
 * then looks at what is there for it.  No polling: a reader sleeps until
 * an item, the end, its idle timeout or its cancellation.
 *
 * Lock order: a tunnel's lock, then a loop's lock (stage__waiter_wake).
 */
#include "common-int.h"
#include "loop-int.h"
#include "stream-int.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

struct cell {
    void *item;
    size_t refs; /* under the tunnel's lock */
};

struct stage_tunnel {
    /* head.lock protects every field below, every reader's fields, the
     * cells' counts and the waiters' fields. */
    stage__head head;
    stage_destroy_fn destroy;
    double idle;         /* default idle timeout of readers, seconds */
    size_t history;      /* 0: keep every item */
    struct cell **slots; /* seq s in slots[s % nslots] */
    size_t nslots;
    uint64_t first, next; /* the window: [first, next) */
    int ended;            /* closed or failed */
    int err;              /* the failure, or 0 */
    char *msg;            /* the failure's message, or NULL */
    stage__list waiters;  /* stage__waiter.link */
};

struct stage_tunnel_reader {
    stage_tunnel *t;  /* one reference */
    double idle;      /* seconds, negative: no limit */
    /* The fields below are under t->head.lock. */
    uint64_t pos;     /* next seq to read */
    size_t missed;    /* items skipped by the last EOVERFLOW */
    int over;         /* 0, or what every call returns: EPIPE, ETIMEDOUT */
    struct cell *pin; /* the cell returned last */
};

/* "Inherit": below -1.5, so that STAGE_FOREVER (-1.0) is not. */
static double idle_or(double idle, double inherited)
{
    return idle < -1.5 ? inherited : idle;
}

stage_tunnel *stage_tunnel_new(double idle_timeout, size_t history,
                               stage_destroy_fn item_destroy)
{
    int64_t check;
    if (stage__deadline(idle_timeout, &check)) {
        errno = EINVAL;
        return NULL;
    }
    stage_tunnel *t = stage__head_new(sizeof *t);
    if (!t)
        return NULL;
    t->destroy = item_destroy;
    t->idle = idle_or(idle_timeout, STAGE_TUNNEL_TIMEOUT);
    t->history = history;
    stage__list_init(&t->waiters);
    return t;
}

stage_tunnel *stage_tunnel_ref(stage_tunnel *t)
{
    if (t)
        stage__head_ref(&t->head);
    return t;
}

static void cell_free(stage_tunnel *t, struct cell *c)
{
    if (t->destroy)
        t->destroy(c->item);
    free(c);
}

void stage_tunnel_unref(stage_tunnel *t)
{
    if (!t || !stage__head_unref(&t->head))
        return;
    /* Readers hold references: none is left, nor any pin. */
    stage__assert(stage__list_empty(&t->waiters));
    for (uint64_t s = t->first; s < t->next; s++)
        cell_free(t, t->slots[s % t->nslots]);
    free(t->slots);
    free(t->msg);
    stage__head_free(&t->head);
}

/* Drop one reference to c (under lock); returns c when it must be freed
 * (after the lock is released), else NULL. */
static struct cell *cell_drop(struct cell *c)
{
    return c && --c->refs == 0 ? c : NULL;
}

static void wake_all(stage_tunnel *t)
{
    stage__waiter *w;
    while ((w = stage__waiter_pop(&t->waiters)) != NULL)
        stage__waiter_wake(w, STAGE__SIGNALLED);
}

/* Make room for one more item (under lock).  Returns the cell pushed out
 * of the window when it must be freed, via *dead. */
static int make_room(stage_tunnel *t, struct cell **dead)
{
    if (t->next - t->first < t->nslots)
        return 0;
    if (t->history && t->nslots == t->history) {
        *dead = cell_drop(t->slots[t->first % t->nslots]);
        t->first++;
        return 0;
    }
    /* Nothing left the window yet: seq == slot index. */
    stage__assert(t->first == 0);
    size_t n = t->nslots ? t->nslots * 2 : 16;
    if (n < t->nslots || n > SIZE_MAX / sizeof(struct cell *))
        n = SIZE_MAX / sizeof(struct cell *);
    if (t->history && n > t->history)
        n = t->history;
    if (n <= t->nslots)
        return ENOMEM;
    struct cell **slots = realloc(t->slots, n * sizeof *slots);
    if (!slots)
        return ENOMEM;
    t->slots = slots;
    t->nslots = n;
    return 0;
}

int stage_tunnel_put(stage_tunnel *t, void *item)
{
    if (!t)
        return EINVAL;
    struct cell *c = malloc(sizeof *c);
    if (!c)
        return ENOMEM;
    c->item = item;
    c->refs = 1;
    struct cell *dead = NULL;
    pthread_mutex_lock(&t->head.lock);
    int err = t->ended ? EPIPE : make_room(t, &dead);
    if (!err) {
        t->slots[t->next % t->nslots] = c;
        t->next++;
        wake_all(t);
    }
    pthread_mutex_unlock(&t->head.lock);
    if (err)
        free(c); /* the item stays the caller's */
    if (dead)
        cell_free(t, dead);
    return err;
}

int stage_tunnel_close(stage_tunnel *t)
{
    if (!t)
        return EINVAL;
    pthread_mutex_lock(&t->head.lock);
    if (!t->ended) {
        t->ended = 1;
        wake_all(t);
    }
    pthread_mutex_unlock(&t->head.lock);
    return 0;
}

int stage_tunnel_fail(stage_tunnel *t, int err, const char *fmt, ...)
{
    if (!t || err <= 0)
        return EINVAL;
    char *msg = NULL;
    if (fmt) {
        va_list ap;
        va_start(ap, fmt);
        int n = vasprintf(&msg, fmt, ap);
        va_end(ap);
        if (n < 0)
            return ENOMEM;
    }
    pthread_mutex_lock(&t->head.lock);
    int ended = t->ended;
    if (!ended) {
        t->ended = 1;
        t->err = err;
        t->msg = msg;
        wake_all(t);
    }
    pthread_mutex_unlock(&t->head.lock);
    if (ended) {
        free(msg);
        return EALREADY;
    }
    return 0;
}

const char *stage_tunnel_message(stage_tunnel *t)
{
    if (!t)
        return NULL;
    pthread_mutex_lock(&t->head.lock);
    const char *msg = t->msg;
    pthread_mutex_unlock(&t->head.lock);
    return msg;
}

/* ---- Readers ------------------------------------------------------------ */

stage_tunnel_reader *stage_tunnel_reader_new(stage_tunnel *t,
                                             double idle_timeout)
{
    int64_t check;
    if (!t || stage__deadline(idle_timeout, &check)) {
        errno = EINVAL;
        return NULL;
    }
    stage_tunnel_reader *r = calloc(1, sizeof *r);
    if (!r) {
        errno = ENOMEM;
        return NULL;
    }
    r->t = stage_tunnel_ref(t);
    r->idle = idle_or(idle_timeout, t->idle);
    pthread_mutex_lock(&t->head.lock);
    r->pos = t->first;
    pthread_mutex_unlock(&t->head.lock);
    return r;
}

void stage_tunnel_reader_free(stage_tunnel_reader *r)
{
    if (!r)
        return;
    stage_tunnel *t = r->t;
    pthread_mutex_lock(&t->head.lock);
    struct cell *dead = cell_drop(r->pin);
    pthread_mutex_unlock(&t->head.lock);
    if (dead)
        cell_free(t, dead);
    stage_tunnel_unref(t);
    free(r);
}

size_t stage_tunnel_reader_missed(stage_tunnel_reader *r)
{
    if (!r)
        return 0;
    pthread_mutex_lock(&r->t->head.lock);
    size_t n = r->missed;
    pthread_mutex_unlock(&r->t->head.lock);
    return n;
}

/* One stage_tunnel_next, as an attempt of stage__wait. */
struct rop {
    stage_tunnel_reader *r;
    void *item;
    int err;
    struct cell *dead; /* the previous pin, to free after the lock */
};

static int next_attempt(void *arg)
{
    struct rop *op = arg;
    stage_tunnel_reader *r = op->r;
    stage_tunnel *t = r->t;
    if (r->pin) {
        op->dead = cell_drop(r->pin);
        r->pin = NULL;
    }
    if (r->over) {
        op->err = r->over;
    } else if (r->pos < t->first) {
        r->missed = (size_t)(t->first - r->pos);
        r->pos = t->first;
        op->err = EOVERFLOW;
    } else if (r->pos < t->next) {
        r->pin = t->slots[r->pos % t->nslots];
        r->pin->refs++;
        r->pos++;
        op->item = r->pin->item;
        op->err = 0;
    } else if (t->ended) {
        /* The failure once, then EPIPE for good. */
        r->over = EPIPE;
        op->err = t->err ? t->err : EPIPE;
    } else {
        return 0;
    }
    return 1;
}

int stage_tunnel_next(stage_tunnel_reader *r, void **item)
{
    int64_t deadline;
    if (!r || !item || stage__deadline(r->idle, &deadline))
        return EINVAL;
    stage_tunnel *t = r->t;
    struct rop op = {r, NULL, 0, NULL};
    int err, woken;
    do {
        /* Woken: something is there now (an item, or the end). */
        stage__waiter w;
        err = stage__wait_for(STAGE__FOR_TUNNEL, t, &t->head.lock,
                              &t->waiters, &w, NULL, deadline, next_attempt,
                              &op, &woken);
    } while (!err && woken);
    if (err == ETIMEDOUT) {
        /* Idle for too long: this reader's iteration is over. */
        pthread_mutex_lock(&t->head.lock);
        r->over = ETIMEDOUT;
        pthread_mutex_unlock(&t->head.lock);
    }
    if (op.dead)
        cell_free(t, op.dead);
    if (err)
        return err;
    if (!op.err)
        *item = op.item;
    return op.err;
}

/* ---- Collecting --------------------------------------------------------- */

/* Wait for news, as an attempt of stage__wait: the end, or items beyond
 * `seen`. */
struct cop {
    stage_tunnel *t;
    uint64_t seen;
    int ended;
};

static int collect_attempt(void *arg)
{
    struct cop *op = arg;
    op->ended = op->t->ended;
    if (op->ended)
        return 1;
    if (op->t->next == op->seen)
        return 0;
    op->seen = op->t->next;
    return 1;
}

int stage_tunnel_collect(stage_tunnel *t, double idle_timeout, void ***items,
                         size_t *count)
{
    int64_t deadline;
    if (!t || !items || !count || stage__deadline(idle_timeout, &deadline))
        return EINVAL;
    *items = NULL;
    *count = 0;
    double idle = idle_or(idle_timeout, t->idle);
    struct cop op = {t, 0, 0};
    int err, woken;
    do {
        /* The idle clock starts again with every item. */
        stage__deadline(idle, &deadline);
        stage__waiter w;
        err = stage__wait_for(STAGE__FOR_TUNNEL, t, &t->head.lock,
                              &t->waiters, &w, NULL, deadline,
                              collect_attempt, &op, &woken);
    } while (!err && !op.ended);
    if (err && err != ETIMEDOUT)
        return err;
    /* What the window holds now: every item of the stream, or the last
     * `history` of them. */
    pthread_mutex_lock(&t->head.lock);
    size_t n = (size_t)(t->next - t->first);
    void **out = n ? malloc(n * sizeof *out) : NULL;
    if (n && !out) {
        pthread_mutex_unlock(&t->head.lock);
        return ENOMEM;
    }
    for (size_t i = 0; i < n; i++)
        out[i] = t->slots[(t->first + i) % t->nslots]->item;
    err = !t->ended ? ETIMEDOUT : t->err;
    pthread_mutex_unlock(&t->head.lock);
    *items = out;
    *count = n;
    return err;
}
