/* SPDX-License-Identifier: MIT */
/*
 * agently-stage.md, block 5: an async generator function handed to
 * stage.go() and consumed with a plain `for` loop.
 *
 * start_gen(5) is a coroutine of the Stage (STAGE_GEN_CORO) that sleeps 1 s
 * before each item and yields the numbers 1 to 5.  stage.go() returns a
 * StageHybridGenerator at once; here stage_go_gen returns a stage_gen, and
 * the main thread (a plain thread) reads it with stage_gen_next, which
 * blocks until each item comes.  It prints 1 to 5, one a second:
 *
 *   1
 *   2
 *   3
 *   4
 *   5
 *
 * Like Agently's generator, it is eager and buffered: the producer starts at
 * once and may run ahead of the consumer (buffer 5).
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

int main(void)
{
    int err;
    { /* with Stage() as stage: */
        stage *st = stage_new("stage", 0, 0);
        stage_gen *gen; /* gen = stage.go(start_gen, 5) */
        if (!st || stage_go_gen(st, start_gen, (void *)(intptr_t)5, NULL, 5,
                                STAGE_GEN_CORO, &gen) != 0)
            return 1;
        void *item;
        while ((err = stage_gen_next(gen, &item, STAGE_FOREVER)) == 0)
            printf("%d\n", (int)(intptr_t)item); /* for item in gen: */
        stage_gen_unref(gen);
        stage_free(st);
    }
    stage_loop_free(stage_loop_current());
    return err == EPIPE ? 0 : 1; /* EPIPE: the end of the stream */
}
