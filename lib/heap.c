/* SPDX-License-Identifier: MIT */
/*
 * heap.c - binary min-heap of timers, keyed on (deadline, seq).
 *
 * The array grows by doubling and never shrinks while the loop lives: a loop
 * that once had 10,000 timers will likely have them again, and a push then
 * costs no allocation.
 */
#include "common-int.h"
#include "heap-int.h"

#include <errno.h>
#include <stdlib.h>

static int before(const stage__timer *a, const stage__timer *b)
{
    if (a->deadline != b->deadline)
        return a->deadline < b->deadline;
    return a->seq < b->seq;
}

static void place(stage__heap *h, size_t i, stage__timer *t)
{
    h->v[i] = t;
    t->slot = i;
}

static void sift_up(stage__heap *h, size_t i, stage__timer *t)
{
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (!before(t, h->v[parent]))
            break;
        place(h, i, h->v[parent]);
        i = parent;
    }
    place(h, i, t);
}

static void sift_down(stage__heap *h, size_t i, stage__timer *t)
{
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= h->n)
            break;
        if (child + 1 < h->n && before(h->v[child + 1], h->v[child]))
            child++;
        if (!before(h->v[child], t))
            break;
        place(h, i, h->v[child]);
        i = child;
    }
    place(h, i, t);
}

void stage__heap_init(stage__heap *h)
{
    h->v = NULL;
    h->n = h->cap = 0;
    h->seq = 0;
}

void stage__heap_fini(stage__heap *h)
{
    free(h->v);
    stage__heap_init(h);
}

int stage__heap_push(stage__heap *h, stage__timer *t)
{
    if (h->n == h->cap) {
        size_t cap = h->cap ? 2 * h->cap : 64;
        stage__timer **v = realloc(h->v, cap * sizeof *v);
        if (!v)
            return ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    t->seq = h->seq++;
    sift_up(h, h->n++, t);
    return 0;
}

void stage__heap_remove(stage__heap *h, stage__timer *t)
{
    size_t i = t->slot;
    stage__assert(i < h->n && h->v[i] == t);
    t->slot = STAGE__NOSLOT;
    stage__timer *last = h->v[--h->n];
    if (last == t)
        return;
    /* The last timer takes the hole; it may need to go either way. */
    if (i > 0 && before(last, h->v[(i - 1) / 2]))
        sift_up(h, i, last);
    else
        sift_down(h, i, last);
}
