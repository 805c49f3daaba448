/* SPDX-License-Identifier: MIT */
/*
 * heap-int.h - the timer min-heap of a loop.
 *
 * Timers are embedded in their owners (a waiter on a coroutine's stack), the
 * heap holds pointers.  Order is (deadline, seq): equal deadlines fire in the
 * order they were armed (libuv's start_id).  Insert and remove are
 * O(log n); each timer knows its slot, so cancelling needs no search.
 */
#ifndef STAGE_HEAP_INT_H
#define STAGE_HEAP_INT_H

#include <stddef.h>
#include <stdint.h>

#define STAGE__NOSLOT ((size_t)-1)

typedef struct stage__timer {
    int64_t deadline; /* absolute CLOCK_MONOTONIC ns */
    uint64_t seq;     /* arming order, the FIFO tie-break */
    size_t slot;      /* index in the heap, STAGE__NOSLOT when not armed */
} stage__timer;

typedef struct stage__heap {
    stage__timer **v;
    size_t n, cap;
    uint64_t seq;
} stage__heap;

void stage__heap_init(stage__heap *h);
void stage__heap_fini(stage__heap *h);
int stage__heap_push(stage__heap *h, stage__timer *t); /* 0 or ENOMEM */
void stage__heap_remove(stage__heap *h, stage__timer *t);
static inline stage__timer *stage__heap_top(const stage__heap *h)
{
    return h->n ? h->v[0] : NULL;
}

#endif
