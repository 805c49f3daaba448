/* SPDX-License-Identifier: MIT */
/*
 * coro.c - coroutines: start, switch, finish, and stack recycling.
 *
 * A coroutine's record lives at the top of its own stack mapping, so a
 * spawn from the loop's stack cache costs no system call and no malloc
 * besides the task's future.  A finished coroutine cannot free the stack it
 * runs on: it marks itself loop->zombie and switches away for good; whoever
 * runs next reclaims it (back into the cache, or munmap).
 *
 * Sanitizers and valgrind must be told about every switch, or they report
 * noise: valgrind learns the stacks in stack.c; ASan gets
 * __sanitizer_start_switch_fiber before and __sanitizer_finish_switch_fiber
 * after each switch (one fake-stack slot per suspended context); TSan gets a
 * fiber per coroutine and __tsan_switch_to_fiber before each switch.
 */
#include "common-int.h"
#include "loop-int.h"
#include "future-int.h"
#include "pool-int.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#if defined(STAGE_ASAN)
#include <sanitizer/asan_interface.h>
#include <sanitizer/common_interface_defs.h>
#endif
#if defined(STAGE_TSAN)
#include <sanitizer/tsan_interface.h>
#endif

/* Room for the coroutine record at the top of the stack, cache-line sized. */
#define CORO_SPACE ((sizeof(stage__coro) + 63) & ~(size_t)63)
#define CACHE_MAX 256

static void coro_main(void *p);

void stage__coro_root_init(stage_loop *loop)
{
#if defined(STAGE_ASAN)
    pthread_attr_t attr;
    void *addr = NULL;
    size_t size = 0;
    if (pthread_getattr_np(pthread_self(), &attr) == 0) {
        pthread_attr_getstack(&attr, &addr, &size);
        pthread_attr_destroy(&attr);
    }
    loop->root_stack_bottom = addr;
    loop->root_stack_size = size;
#endif
#if defined(STAGE_TSAN)
    loop->root_tsan_fiber = __tsan_get_current_fiber();
#endif
    (void)loop;
}

static size_t usable(const stage__stack *s)
{
    return (size_t)((char *)s->map + s->maplen - s->lo);
}

int stage__coro_start(stage_loop *loop, stage__spawn *sp)
{
    size_t size = stage__stack_round(sp->stack_size);
    stage__stack st;
    if (size == stage__stack_round(0) && loop->ncache > 0) {
        st = loop->cache[--loop->ncache];
    } else {
        int err = stage__stack_alloc(&st, size);
        if (err)
            return err;
    }
#if defined(STAGE_ASAN)
    /* A cached stack keeps the redzones of its last coroutine's frames
     * poisoned; so may a fresh mapping at the address of an unmapped
     * stack (ASan does not clear shadow memory at munmap). */
    ASAN_UNPOISON_MEMORY_REGION(st.lo, usable(&st));
#endif
    stage__coro *c =
        (stage__coro *)(void *)((char *)st.map + st.maplen - CORO_SPACE);
    memset(c, 0, sizeof *c);
    c->stack = st;
    c->loop = loop;
    c->task = sp->task;
    c->fn = sp->fn;
    c->arg = sp->arg;
    c->destroy = sp->destroy;
    c->detached = sp->detached;
    stage__ctx_init(&c->ctx, st.lo, (size_t)((char *)c - st.lo), coro_main,
                    c);
#if defined(STAGE_TSAN)
    c->tsan_fiber = __tsan_create_fiber(0);
#endif
    stage__list_push(&loop->live, &c->live);
    loop->count++;
    if (loop->closing)
        stage_future_cancel(c->task);
    stage__loop_schedule(loop, c);
    return 0;
}

void stage__coro_reclaim(stage_loop *loop)
{
    stage__coro *c = loop->zombie;
    loop->zombie = NULL;
#if defined(STAGE_TSAN)
    __tsan_destroy_fiber(c->tsan_fiber);
#endif
    stage__stack st = c->stack; /* c lives on that stack */
    if (usable(&st) == stage__stack_round(0) && loop->ncache < CACHE_MAX) {
        if (!loop->cache) {
            loop->cache = malloc(CACHE_MAX * sizeof *loop->cache);
            if (!loop->cache) {
                stage__stack_free(&st);
                return;
            }
        }
        loop->cache[loop->ncache++] = st;
    } else {
        stage__stack_free(&st);
    }
}

void stage__coro_cache_free(stage_loop *loop)
{
    if (loop->zombie)
        stage__coro_reclaim(loop);
    while (loop->ncache > 0)
        stage__stack_free(&loop->cache[--loop->ncache]);
    free(loop->cache);
    loop->cache = NULL;
}

/* Back in `self` (NULL: the root) after a switch. */
static void resumed(stage_loop *loop, stage__coro *self)
{
#if defined(STAGE_ASAN)
    __sanitizer_finish_switch_fiber(self ? self->asan_fake_stack
                                         : loop->root_fake_stack,
                                    NULL, NULL);
#endif
    (void)self;
    if (loop->zombie)
        stage__coro_reclaim(loop);
}

void stage__coro_switch(stage_loop *loop, stage__coro *to)
{
    stage__coro *from = loop->current;
    stage__ctx *fc = from ? &from->ctx : &loop->root_ctx;
    stage__ctx *tc = to ? &to->ctx : &loop->root_ctx;
#if defined(STAGE_ASAN)
    void **fake = !from ? &loop->root_fake_stack
                 : from == loop->zombie ? NULL
                                        : &from->asan_fake_stack;
    const void *bottom = to ? (const void *)to->stack.lo
                            : loop->root_stack_bottom;
    size_t size = to ? (size_t)((char *)to - to->stack.lo)
                     : loop->root_stack_size;
    __sanitizer_start_switch_fiber(fake, bottom, size);
#endif
#if defined(STAGE_TSAN)
    __tsan_switch_to_fiber(to ? to->tsan_fiber : loop->root_tsan_fiber, 0);
#endif
    loop->current = to;
    stage__ctx_switch(fc, tc);
    resumed(loop, from);
}

static void coro_main(void *p)
{
    stage__coro *c = p;
    stage_loop *loop = c->loop;
    resumed(loop, c);
    void *result = NULL;
    if (!stage__task_cancel_requested(c->task))
        result = c->fn(c->arg);
    stage__stack_check(&c->stack); /* an overflow, even one that returned */
    stage__task_finish(c->task, result, c->destroy, c->detached);
    stage_future_unref(c->task);
    stage__list_remove(&c->live);
    loop->count--;
    loop->zombie = c;
    stage__node *n = stage__list_pop(&loop->batch);
    stage__coro_switch(loop, n ? stage__container_of(n, stage__coro, node)
                               : NULL);
    stage__panic(__FILE__, __LINE__, "finished coroutine resumed");
}

int stage_coro_spawn(stage_loop *loop, stage_task_fn fn, void *arg,
                     stage_destroy_fn result_destroy, size_t stack_size,
                     stage_future **out)
{
    return stage__coro_spawn(loop, fn, arg, result_destroy, stack_size, NULL,
                             out);
}

int stage__coro_spawn(stage_loop *loop, stage_task_fn fn, void *arg,
                      stage_destroy_fn result_destroy, size_t stack_size,
                      stage *owner, stage_future **out)
{
    if (!fn)
        return EINVAL;
    int err = 0;
    if (!loop) {
        loop = stage__loop_ensure(&err);
        if (!loop)
            return err;
    }
    stage_loop *self = stage__loop_get();
    stage_future *task = stage__future_new_task();
    if (!task)
        return ENOMEM;
    if (owner) {
        stage__ref(owner);
        task->owner = owner;
    }
    if (out)
        stage_future_ref(task);
    stage__spawn local = {.fn = fn,
                          .arg = arg,
                          .destroy = result_destroy,
                          .stack_size = stack_size,
                          .task = task,
                          .detached = out == NULL && owner == NULL};
    if (loop == self) {
        err = loop->closing ? EPIPE : stage__coro_start(loop, &local);
    } else {
        /* Another thread's loop: hand the request over; that loop makes
         * the coroutine on its own thread (its stack cache is its own). */
        stage__spawn *sp = malloc(sizeof *sp);
        if (!sp) {
            err = ENOMEM;
        } else {
            *sp = local;
            pthread_mutex_lock(&loop->lock);
            if (loop->closing) {
                err = EPIPE;
            } else {
                stage__list_push(&loop->spawns, &sp->node);
                atomic_store_explicit(&loop->pending, 1,
                                      memory_order_relaxed);
                stage__loop_poke_after(loop, stage__loop_wake_mode(loop));
            }
            pthread_mutex_unlock(&loop->lock);
            if (err)
                free(sp);
        }
    }
    if (err) {
        if (out)
            stage_future_unref(task);
        stage_future_unref(task);
        return err;
    }
    if (out)
        *out = task;
    return 0;
}
