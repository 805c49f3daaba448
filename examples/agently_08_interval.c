/* SPDX-License-Identifier: MIT */
/*
 * agently-stage.md, block 8: stage.go(start_gen, 5, async_gen_interval=0.5).
 *
 * Agently Stage's async consumer of a generator polls for the next item
 * every async_gen_interval seconds (0.1 by default), trading CPU load for
 * latency.  libstage has no such interval, and so no such parameter: a
 * coroutine waiting in stage_gen_next is suspended until the producer's
 * yield wakes it, with no polling at all.  The call below is the same
 * stage.go(start_gen, 5) without the interval; the comment marks where
 * it would go.
 *
 * The seed shows the call only.  Here an async consumer (a coroutine of
 * the main thread's loop: `async for item in gen`) reads the generator of
 * block 5, which yields 1 to 5, one a second, and prints them as they come:
 *
 *   1
 *   2
 *   3
 *   4
 *   5
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdint.h>
#include <stdio.h>

/* async def start_gen(n): for i in range(n): await asyncio.sleep(1);
 * yield i+1 */
static void start_gen(stage_gen *gen, void *arg)
{
    intptr_t n = (intptr_t)arg;
    for (intptr_t i = 0; i < n; i++) {
        if (stage_sleep(seed_time(1)) != 0)
            return;
        if (stage_gen_yield(gen, (void *)(i + 1), NULL) != 0)
            return;
    }
}

/* async for item in gen: print(item) -- each wait suspends this coroutine
 * until an item comes: no interval to tune. */
static void *consume(void *arg)
{
    stage_gen *gen = arg;
    void *item;
    int err;
    while ((err = stage_gen_next(gen, &item, STAGE_FOREVER)) == 0)
        printf("%d\n", (int)(intptr_t)item);
    return (void *)(intptr_t)err;
}

int main(void)
{
    void *err = NULL;
    { /* with Stage() as stage: */
        stage *st = stage_new("stage", 0, 0);
        stage_gen *gen;
        /* gen = stage.go(start_gen, 5, async_gen_interval=0.5):
         * no interval argument: nothing polls. */
        if (!st || stage_go_gen(st, start_gen, (void *)(intptr_t)5, NULL, 5,
                                STAGE_GEN_CORO, &gen) != 0)
            return 1;
        stage_future *consumer;
        if (stage_coro_spawn(NULL, consume, gen, NULL, 0, &consumer) != 0 ||
            stage_future_get(consumer, STAGE_FOREVER, &err) != 0)
            return 1;
        stage_future_unref(consumer);
        stage_gen_unref(gen);
        stage_free(st);
    }
    stage_loop_free(stage_loop_current());
    return (intptr_t)err == EPIPE ? 0 : 1;
}
