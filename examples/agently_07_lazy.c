/* SPDX-License-Identifier: MIT */
/*
 * agently-stage.md, block 7: stage.go(start_gen, 5, lazy=True).
 *
 * A lazy generator (STAGE_GEN_LAZY) keeps the character of a Python
 * generator: start_gen does not start when it is handed to the Stage, only
 * when the loop asks for its first item.  The main thread sleeps 5 s
 * (time.sleep, blocking) and then checks a counter that start_gen bumps
 * when it starts: still 0.  Then the loop starts it, and the five items
 * come one a second, so the story takes 10 s, not 5:
 *
 *   after 5 s, start_gen has started 0 times
 *   start_gen starts
 *   1
 *   ...
 *   5
 *
 * (The seed shows only the code; the first two lines are ours, to show the
 * laziness.)  Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>

static atomic_int started;

/* async def start_gen(n): for i in range(n): await asyncio.sleep(1);
 * yield i+1 */
static void start_gen(stage_gen *gen, void *arg)
{
    intptr_t n = (intptr_t)arg;
    atomic_fetch_add(&started, 1);
    printf("start_gen starts\n");
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
    int before;
    { /* with Stage() as stage: */
        stage *st = stage_new("stage", 0, 0);
        stage_gen *gen; /* gen = stage.go(start_gen, 5, lazy=True) */
        if (!st || stage_go_gen(st, start_gen, (void *)(intptr_t)5, NULL, 5,
                                STAGE_GEN_CORO | STAGE_GEN_LAZY, &gen) != 0)
            return 1;
        blocking_sleep(seed_time(5)); /* time.sleep(5) */
        before = atomic_load(&started);
        printf("after 5 s, start_gen has started %d times\n", before);
        /* start_gen starts here, at the first request of the `for`. */
        void *item;
        while ((err = stage_gen_next(gen, &item, STAGE_FOREVER)) == 0)
            printf("%d\n", (int)(intptr_t)item);
        stage_gen_unref(gen);
        stage_free(st);
    }
    stage_loop_free(stage_loop_current());
    return err == EPIPE && before == 0 ? 0 : 1;
}
