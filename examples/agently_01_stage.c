/* SPDX-License-Identifier: MIT */
/*
 * agently-stage.md, block 1: "Use `Stage` to Manage Asynchronous and
 * Multithreaded Programming".
 *
 * A Stage runs an async task (a coroutine on the Stage's loop thread) and a
 * sync task (a plain blocking function on the Stage's thread pool) at the
 * same time; close waits for both; then we read both results.  The whole
 * story takes about 2 s (the longer task), not 3 s (the sum).
 *
 * In Python the order of the first two lines is a race.  Here the async
 * task waits until the sync task has started, with a future the sync task
 * resolves after printing its first line, so the output is always:
 *
 *   Start Simulate Sync Long Time Task...
 *   Start Simulate Async Network Request...
 *   Response Return...
 *   Task Done...
 *   Network Request Data: Your input is Agently Stage is awesome! | Task Result: 3
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

    stage *st = stage_new("stage", 0, 0); /* stage = Stage() */
    stage_future *async_response, *sync_response;
    stage_go_coro(st, async_task, "Agently Stage is awesome!", free,
               &async_response);
    stage_go(st, sync_task, &args, free, &sync_response);
    stage_close(st, STAGE_FOREVER);

    /* Try removing stage_close above: the gets wait for the results too. */
    void *async_result, *sync_result;
    if (stage_future_get(async_response, STAGE_FOREVER, &async_result) ||
        stage_future_get(sync_response, STAGE_FOREVER, &sync_result))
        return 1;
    printf("%s | %s\n", (char *)async_result, (char *)sync_result);

    stage_future_unref(async_response);
    stage_future_unref(sync_response);
    stage_future_unref(sync_started);
    stage_free(st);
    stage_loop_free(stage_loop_current());
    return 0;
}
