/* SPDX-License-Identifier: MIT */
/*
 * asyncio-tutorial.md, cell 6: asyncio.gather of two tasks.
 *
 * main, a coroutine run from the main thread with stage_run, starts task1
 * (4 s) and task2 (1 s) as coroutines of its loop, then waits for both
 * with stage_future_gather.  They sleep side by side, so the whole story
 * takes about 4 s, not 5 s:
 *
 *   Start main()...
 *   	Task 2 done
 *   	Task 1 done
 *   End main()...
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>

/* async def task1() */
static void *task1(void *arg)
{
    (void)arg;
    stage_sleep(seed_time(4));
    printf("\tTask 1 done\n");
    return NULL;
}

/* async def task2() */
static void *task2(void *arg)
{
    (void)arg;
    stage_sleep(seed_time(1));
    printf("\tTask 2 done\n");
    return NULL;
}

/* async def main() */
static void *amain(void *arg)
{
    (void)arg;
    stage_future *t[2];
    if (stage_coro_spawn(NULL, task1, NULL, NULL, 0, &t[0]))
        return stage_task_fail(ENOMEM, "no task1");
    if (stage_coro_spawn(NULL, task2, NULL, NULL, 0, &t[1]))
        return stage_task_fail(ENOMEM, "no task2");
    printf("Start main()...\n");
    int err = stage_future_gather(t, 2, 0, STAGE_FOREVER, NULL, NULL);
    printf("End main()...\n");
    stage_future_unref(t[0]);
    stage_future_unref(t[1]);
    return err ? stage_task_fail(err, "gather failed") : NULL;
}

int main(void)
{
    int err = stage_run(amain, NULL, NULL, NULL); /* asyncio.run(main()) */
    stage_loop_free(stage_loop_current());
    return err ? 1 : 0;
}
