/* SPDX-License-Identifier: MIT */
/*
 * stack.c - coroutine stacks: mmap'd, guarded while the budget lasts.
 *
 * Each stack is one anonymous mapping with MAP_NORESERVE, so only the pages
 * a coroutine touches cost memory.  Below the usable stack sits either
 *
 *   a guard page (PROT_NONE): an overflow faults at once.  The guard splits
 *   the mapping in two kernel VMAs, and the kernel caps a process at
 *   vm.max_map_count VMAs (65530 by default), which is why a library that
 *   guards every stack dies near 32,000 live coroutines; or
 *
 *   a canary, once the process holds more guarded stacks than the budget
 *   (a quarter of vm.max_map_count, read once): such a stack costs one VMA
 *   (neighbouring ones usually merge into one).  The canary is the lowest
 *   word of the stack, which must stay zero: reading it maps at most the
 *   kernel's shared zero page, so, unlike a written magic value, it costs
 *   no resident memory.  It is checked, with the stack pointer itself,
 *   every time the coroutine switches away, so an overflow aborts with a
 *   message instead of corrupting memory unnoticed for long.
 *
 * So 100,000 coroutines work on a stock kernel and the first ~16,000 of a
 * process are fully protected.
 *
 *     high  +------------------+
 *           | stage__coro      |  the coroutine record
 *           +------------------+
 *           | stack, grows     |
 *           | downwards        |
 *     lo -> +------------------+  canary word when unguarded
 *           | guard page       |  only when guarded
 *     map-> +------------------+
 */
#include "common-int.h"
#include "loop-int.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#ifdef HAVE_VALGRIND_VALGRIND_H
#include <valgrind/valgrind.h>
#else
#define VALGRIND_STACK_REGISTER(lo, hi) 0u
#define VALGRIND_STACK_DEREGISTER(id) ((void)(id))
#endif

#define MIN_STACK ((size_t)16 * 1024)

/* Guarded stacks alive in the process.  Relaxed: it is a budget, not a
 * synchronisation point; a few stacks more or less than the limit are
 * harmless. */
static atomic_size_t guarded_alive;
static size_t guard_budget;
static pthread_once_t budget_once = PTHREAD_ONCE_INIT;

static size_t page_size(void)
{
    /* Relaxed: every thread computes the same value; a race only repeats
     * the sysconf call. */
    static atomic_size_t ps;
    size_t v = atomic_load_explicit(&ps, memory_order_relaxed);
    if (!v) {
        v = (size_t)sysconf(_SC_PAGESIZE);
        atomic_store_explicit(&ps, v, memory_order_relaxed);
    }
    return v;
}

static void read_budget(void)
{
    long max = 65530;
    FILE *f = fopen("/proc/sys/vm/max_map_count", "re");
    if (f) {
        if (fscanf(f, "%ld", &max) != 1)
            max = 65530;
        fclose(f);
    }
    guard_budget = max > 4 ? (size_t)max / 4 : 1;
}

size_t stage__stack_round(size_t size)
{
    size_t ps = page_size();
    if (size == 0)
        size = STAGE_STACK_DEFAULT;
    if (size < MIN_STACK)
        size = MIN_STACK;
    return (size + ps - 1) / ps * ps;
}

int stage__stack_alloc(stage__stack *s, size_t size)
{
    size_t ps = page_size();
    pthread_once(&budget_once, read_budget);
    int guard = atomic_fetch_add_explicit(&guarded_alive, 1,
                                          memory_order_relaxed) < guard_budget;
    if (!guard)
        atomic_fetch_sub_explicit(&guarded_alive, 1, memory_order_relaxed);
    size_t len = size + (guard ? ps : 0);
    int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
#ifdef MAP_STACK
    flags |= MAP_STACK;
#endif
    void *map = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
    if (map == MAP_FAILED)
        goto fail;
    if (guard && mprotect(map, ps, PROT_NONE) != 0) {
        /* Most likely the VMA limit (the guard splits the mapping): fall
         * back to an unguarded stack rather than fail the spawn. */
        munmap(map, len);
        atomic_fetch_sub_explicit(&guarded_alive, 1, memory_order_relaxed);
        guard = 0;
        len = size;
        map = mmap(NULL, len, PROT_READ | PROT_WRITE, flags, -1, 0);
        if (map == MAP_FAILED)
            return ENOMEM;
    }
    s->map = map;
    s->maplen = len;
    s->lo = (char *)map + (guard ? ps : 0);
    s->guarded = guard;
    s->vg_id = VALGRIND_STACK_REGISTER(s->lo, (char *)map + len);
    return 0;
fail:
    if (guard)
        atomic_fetch_sub_explicit(&guarded_alive, 1, memory_order_relaxed);
    return ENOMEM; /* mmap and mprotect fail with ENOMEM at the VMA limit */
}

void stage__stack_free(stage__stack *s)
{
    VALGRIND_STACK_DEREGISTER(s->vg_id);
    if (s->guarded)
        atomic_fetch_sub_explicit(&guarded_alive, 1, memory_order_relaxed);
    munmap(s->map, s->maplen);
    s->map = NULL;
}

void stage__stack_check(const stage__stack *s)
{
    /* The caller's frame approximates the stack pointer: within 512
     * bytes of the bottom, the next call may well overflow. */
    char probe;
    if (!s->guarded && ((char *)&probe < s->lo + 512 ||
                        *(const volatile uint64_t *)(const void *)s->lo)) {
        fprintf(stderr, "libstage: coroutine stack overflow (stack of %zu "
                        "bytes at %p); give it a larger stack_size\n",
                s->maplen, (void *)s->lo);
        abort();
    }
}
