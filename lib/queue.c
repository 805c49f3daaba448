/* SPDX-License-Identifier: MIT */
/*
 * queue.c - thread-safe, reference-counted MPMC FIFO queues, bounded or
 * not, with close.  Threads and coroutines put and get alike (hybrid).
 *
 *    putters, waiting for room              getters, waiting for an item
 *    each holds its item in w->item         each receives it in w->item
 *    [w]->[w]->... --room--> ring [a b c ...] --item--> [w]->[w]->...
 *
 * Invariants, under head.lock:
 *   - a getter still PENDING is listed only while the ring is empty: a put
 *     hands its item straight to the first such getter (write the item,
 *     then the CAS; a waker that loses the CAS keeps the item and tries the
 *     next getter, then the ring);
 *   - a putter still PENDING is listed only while the ring is full: a get
 *     moves the first such putter's item into the slot it freed.
 * Hence one order for every item (the ring's, or a hand-over when the ring
 * is empty): each producer's items come out in the order it put them, and
 * blocked putters get in in the order they blocked.  Lists may also hold
 * waiters already decided TIMEDOUT or CANCELLED that have not left yet;
 * wakers skip them, so such a wait neither consumes nor enqueues.
 *
 * The ring grows on demand (doubling, up to the capacity), so a large or
 * unbounded capacity costs nothing until it is used.
 *
 * Lock order: a queue's lock, then a loop's lock (stage__waiter_wake).
 */
#include "common-int.h"
#include "loop-int.h"
#include "stream-int.h"

#include <errno.h>
#include <stdlib.h>

struct stage_queue {
    /* head.lock protects every field below, and the fields of the waiters
     * on both lists. */
    stage__head head;
    size_t capacity;          /* most items in the ring */
    stage_destroy_fn destroy; /* for items left at the last unref */
    void **ring;              /* `size` slots; items at front, front+1, ... */
    size_t size, front, count;
    stage__list getters;      /* qwaiter.w.link */
    stage__list putters;      /* qwaiter.w.link, item in w.item */
    int closed;
};

/* A waiter with the outcome of its call: 0, or EPIPE when a close woke it.
 * Wakers write err (and w.item) before the CAS. */
typedef struct qwaiter {
    stage__waiter w;
    int err;
} qwaiter;

stage_queue *stage_queue_new(size_t capacity, stage_destroy_fn item_destroy)
{
    if (capacity == 0) {
        errno = EINVAL;
        return NULL;
    }
    stage_queue *q = stage__head_new(sizeof *q);
    if (!q)
        return NULL;
    q->capacity = capacity;
    q->destroy = item_destroy;
    stage__list_init(&q->getters);
    stage__list_init(&q->putters);
    return q;
}

stage_queue *stage_queue_ref(stage_queue *q)
{
    if (q)
        stage__head_ref(&q->head);
    return q;
}

void stage_queue_unref(stage_queue *q)
{
    if (!q || !stage__head_unref(&q->head))
        return;
    /* A waiter's caller holds a reference for the whole call. */
    stage__assert(stage__list_empty(&q->getters));
    stage__assert(stage__list_empty(&q->putters));
    for (size_t i = 0; i < q->count; i++)
        if (q->destroy)
            q->destroy(q->ring[(q->front + i) % q->size]);
    free(q->ring);
    stage__head_free(&q->head);
}

/* ---- The ring (under lock) ---------------------------------------------- */

static int ring_grow(stage_queue *q)
{
    size_t n = q->size ? q->size * 2 : 8;
    if (n < q->size || n > SIZE_MAX / sizeof(void *))
        n = SIZE_MAX / sizeof(void *);
    if (n > q->capacity)
        n = q->capacity;
    if (n <= q->size)
        return ENOMEM;
    void **ring = malloc(n * sizeof *ring);
    if (!ring)
        return ENOMEM;
    for (size_t i = 0; i < q->count; i++)
        ring[i] = q->ring[(q->front + i) % q->size];
    free(q->ring);
    q->ring = ring;
    q->size = n;
    q->front = 0;
    return 0;
}

static int ring_push(stage_queue *q, void *item)
{
    if (q->count == q->size) {
        int err = ring_grow(q);
        if (err)
            return err;
    }
    q->ring[(q->front + q->count) % q->size] = item;
    q->count++;
    return 0;
}

static void *ring_pop(stage_queue *q)
{
    void *item = q->ring[q->front];
    q->front = (q->front + 1) % q->size;
    q->count--;
    return item;
}

/* ---- Put and get (under lock) ------------------------------------------- */

/* Enqueue item: to the first pending getter, else into the ring.  EAGAIN
 * when full, EPIPE when closed, ENOMEM; the item stays the caller's then. */
static int offer_locked(stage_queue *q, void *item)
{
    if (q->closed)
        return EPIPE;
    stage__waiter *w;
    while ((w = stage__waiter_pop(&q->getters)) != NULL) {
        qwaiter *g = stage__container_of(w, qwaiter, w);
        g->err = 0;
        w->item = item;
        if (stage__waiter_wake(w, STAGE__SIGNALLED))
            return 0;
        /* That getter timed out or was cancelled: the item is still ours. */
    }
    if (q->count < q->capacity)
        return ring_push(q, item);
    return EAGAIN;
}

/* Dequeue the oldest item into *item, and let the first pending putter in.
 * EAGAIN when empty, EPIPE when empty and closed. */
static int take_locked(stage_queue *q, void **item)
{
    if (q->count == 0)
        return q->closed ? EPIPE : EAGAIN;
    *item = ring_pop(q);
    stage__waiter *w;
    while ((w = stage__waiter_pop(&q->putters)) != NULL) {
        /* Read before the CAS: once woken, the putter may be gone. */
        void *moved = w->item;
        stage__container_of(w, qwaiter, w)->err = 0;
        if (stage__waiter_wake(w, STAGE__SIGNALLED)) {
            /* A slot was just freed: this cannot fail. */
            stage__assert(ring_push(q, moved) == 0);
            break;
        }
    }
    return 0;
}

/* One put or get, as an attempt of stage__wait. */
struct qop {
    stage_queue *q;
    void *item; /* put: offered; get: received */
    int put;
    int err;
};

static int attempt(void *arg)
{
    struct qop *op = arg;
    op->err = op->put ? offer_locked(op->q, op->item)
                      : take_locked(op->q, &op->item);
    return op->err != EAGAIN;
}

static int queue_try(struct qop *op)
{
    pthread_mutex_lock(&op->q->head.lock);
    attempt(op);
    pthread_mutex_unlock(&op->q->head.lock);
    return op->err;
}

static int queue_wait(struct qop *op, double timeout)
{
    stage_queue *q = op->q;
    int64_t deadline;
    if (stage__deadline(timeout, &deadline))
        return EINVAL;
    qwaiter qw;
    qw.err = 0;
    int woken;
    int err = stage__wait_for(
        op->put ? STAGE__FOR_QUEUE_PUT : STAGE__FOR_QUEUE_GET, q,
        &q->head.lock, op->put ? &q->putters : &q->getters, &qw.w,
        op->put ? op->item : NULL, deadline, attempt, op, &woken);
    if (err || !woken)
        return err ? err : op->err;
    if (!qw.err && !op->put)
        op->item = qw.w.item;
    return qw.err;
}

int stage_queue_put(stage_queue *q, void *item, double timeout)
{
    if (!q)
        return EINVAL;
    struct qop op = {q, item, 1, 0};
    return queue_wait(&op, timeout);
}

int stage_queue_get(stage_queue *q, void **item, double timeout)
{
    if (!q || !item)
        return EINVAL;
    struct qop op = {q, NULL, 0, 0};
    int err = queue_wait(&op, timeout);
    if (!err)
        *item = op.item;
    return err;
}

int stage_queue_try_put(stage_queue *q, void *item)
{
    if (!q)
        return EINVAL;
    struct qop op = {q, item, 1, 0};
    return queue_try(&op);
}

int stage_queue_try_get(stage_queue *q, void **item)
{
    if (!q || !item)
        return EINVAL;
    struct qop op = {q, NULL, 0, 0};
    int err = queue_try(&op);
    if (!err)
        *item = op.item;
    return err;
}

size_t stage_queue_length(stage_queue *q)
{
    if (!q)
        return 0;
    pthread_mutex_lock(&q->head.lock);
    size_t n = q->count;
    pthread_mutex_unlock(&q->head.lock);
    return n;
}

int stage_queue_close(stage_queue *q)
{
    if (!q)
        return EINVAL;
    pthread_mutex_lock(&q->head.lock);
    q->closed = 1;
    stage__waiter *w;
    while ((w = stage__waiter_pop(&q->getters)) != NULL ||
           (w = stage__waiter_pop(&q->putters)) != NULL) {
        /* A putter keeps its item: it is in its own w->item. */
        stage__container_of(w, qwaiter, w)->err = EPIPE;
        stage__waiter_wake(w, STAGE__SIGNALLED);
    }
    pthread_mutex_unlock(&q->head.lock);
    return 0;
}
