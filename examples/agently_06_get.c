/* SPDX-License-Identifier: MIT */
/*
 * agently-stage.md, block 6: gen.get() collects every item of a generator
 * into a list.
 *
 * The generator of block 5 (a coroutine of the Stage that sleeps 1 s and
 * yields i+1, five times); stage_gen_collect waits for the end of the
 * stream and returns the items as an array, printed as Python prints a
 * list, after 5 s:
 *
 *   [1, 2, 3, 4, 5]
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

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
        void **result_list; /* result_list = gen.get() */
        size_t count;
        err = stage_gen_collect(gen, STAGE_FOREVER, &result_list, &count);
        printf("[");
        for (size_t i = 0; i < count; i++)
            printf("%s%d", i ? ", " : "", (int)(intptr_t)result_list[i]);
        printf("]\n");
        free(result_list);
        stage_gen_unref(gen);
        stage_free(st);
    }
    stage_loop_free(stage_loop_current());
    return err;
}
