/* SPDX-License-Identifier: MIT */
/*
 * agently-stage.md, block 3: "`StageFunction`: Transform a Normal Function
 * into a Non-Blocking Function with Status".
 *
 * A stage_func is a function with a status: start it without blocking in
 * one place, wait for its result in others.  Waiting again does not run it
 * again; after a reset the next start runs it anew.  Each run takes 1 s on
 * a pool thread of the Stage, so the story takes about 2 s and prints:
 *
 *   Done: First
 *   Done: First
 *   Done: Second
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* def task(sentence): the body of the StageFunction */
static void *task_body(void *arg)
{
    const char *sentence = arg;
    blocking_sleep(seed_time(1)); /* time.sleep(1) */
    char *result = malloc(16 + strlen(sentence));
    sprintf(result, "Done: %s", sentence);
    return result;
}

int main(void)
{
    stage *st = stage_new("stage", 0, 0); /* stage = Stage() */

    /* @stage.func: defined, but it has not run. */
    stage_func *task = stage_func_new(st, task_body, 0, free);

    /* Start running (returns at once). */
    stage_func_start(task, "First");

    /* Block the current thread and wait until done to get the result. */
    void *result;
    if (stage_func_wait(task, STAGE_FOREVER, &result))
        return 1;
    printf("%s\n", (char *)result);

    /* Waiting again does not restart it. */
    void *result_2;
    if (stage_func_wait(task, STAGE_FOREVER, &result_2))
        return 1;
    printf("%s\n", (char *)result_2);

    /* A reset lets the function be started again. */
    stage_func_reset(task);
    stage_func_start(task, "Second");
    void *result_3;
    if (stage_func_wait(task, STAGE_FOREVER, &result_3))
        return 1;
    printf("%s\n", (char *)result_3);

    stage_func_unref(task);
    stage_free(st);
    stage_loop_free(stage_loop_current());
    return 0;
}
