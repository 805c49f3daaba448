/* SPDX-License-Identifier: MIT */
/*
 * agently-stage.md, block 2: "You can use `with` to make code expression
 * and context management easier".
 *
 * The same two tasks as block 1 (examples/agently_01_stage.c), started
 * inside a block that creates the Stage and closes and frees it at its end:
 * C's form of `with Stage() as stage:`.  The responses stay readable after
 * the Stage is gone.  As in block 1, the async task waits until the sync
 * task has started, so the output is block 1's, in the same order, in about
 * 2 s.
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Resolved by sync_task once it has started. */
static stage_future *sync_started;

/* The "async def": a coroutine.  stage_sleep suspends only this coroutine,
 * like await asyncio.sleep. */
static void *async_task(void *arg)
{
    const char *input_sentence = arg;
    stage_future_wait(sync_started, STAGE_FOREVER);
    printf("Start Simulate Async Network Request...\n");
    stage_sleep(seed_time(1));
    printf("Response Return...\n");

    char *result = malloc(100 + strlen(input_sentence));
    sprintf(result, "Network Request Data: Your input is %s", input_sentence);
    return result;
}

struct sync_args {
    int a, b;
};

/* The plain function: it blocks its thread (a pool thread of the Stage),
 * like time.sleep. */
static void *sync_task(void *arg)
{
    struct sync_args *args = arg;
    printf("Start Simulate Sync Long Time Task...\n");
    stage_future_resolve(sync_started, NULL, NULL);
    blocking_sleep(seed_time(2));
    printf("Task Done...\n");

    char *result = malloc(64);
    sprintf(result, "Task Result: %d", args->a + args->b);
    return result;
}

int main(void)
{
    sync_started = stage_future_new();
    struct sync_args args = {1, 2};
    stage_future *async_response, *sync_response;

    { /* with Stage() as stage: */
        stage *st = stage_new("stage", 0, 0); /* stage = Stage() */
        stage_go_coro(st, async_task, "Agently Stage is awesome!", free,
                   &async_response);
        stage_go(st, sync_task, &args, free, &sync_response);
        stage_free(st); /* the end of the block: close, wait, free */
    }

    void *async_result, *sync_result;
    if (stage_future_get(async_response, STAGE_FOREVER, &async_result) ||
        stage_future_get(sync_response, STAGE_FOREVER, &sync_result))
        return 1;
    printf("%s | %s\n", (char *)async_result, (char *)sync_result);

    stage_future_unref(async_response);
    stage_future_unref(sync_response);
    stage_future_unref(sync_started);
    stage_loop_free(stage_loop_current());
    return 0;
}
