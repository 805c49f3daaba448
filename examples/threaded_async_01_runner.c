/* SPDX-License-Identifier: MIT */
/*
 * threaded-async.md, block 1: "Quick start" - AsyncRunner and
 * BackgroundTask.
 *
 * A Stage's loop thread is the background event loop (the AsyncRunner):
 * stage_go_coro deploys a coroutine on it (runner.create_task) and
 * stage_future_get blocks the main thread until the task completes
 * (background_task.wait()).  Prints:
 *
 *   10
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdint.h>
#include <stdio.h>

/* Sleep and return a number. */
static void *foo(void *arg)
{
    (void)arg;
    stage_sleep(seed_time(0.1));
    return (void *)(intptr_t)10;
}

int main(void)
{
    { /* with threaded_async.AsyncRunner() as runner: */
        stage *runner = stage_new("runner", 0, 0);

        /* Deploy the coroutine as a task on the loop. */
        stage_future *background_task;
        stage_go_coro(runner, foo, NULL, NULL, &background_task);

        /* Block the current thread waiting for the task to complete. */
        void *value;
        if (stage_future_get(background_task, STAGE_FOREVER, &value))
            return 1;
        printf("%d\n", (int)(intptr_t)value);

        stage_future_unref(background_task);
        stage_free(runner);
    }
    stage_loop_free(stage_loop_current());
    return 0;
}
