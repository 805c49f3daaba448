/* SPDX-License-Identifier: MIT */
/*
 * async-tamer.md, block 3: "Returning Results" - its Asynchronous,
 * Synchronous and AsyncScope Execution parts.
 *
 * slow_io returns two values, as Python returns a tuple; in C they travel
 * in one malloc'd struct, the task's result.  In a coroutine we start it
 * and await its future; from the main thread stage_run returns the result
 * at once; in a scope, the task's future is the delayed result, read once
 * the scope is closed (DelayedResult.value: stage_future_get with timeout
 * 0, which never blocks).  Prints, in about 0.3 s:
 *
 *   Status 200: `Time to be awesome!`
 *   Status 200: `Time to be awesome!`
 *   Status 200: `Time to be awesome!`
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>
#include <stdlib.h>

struct reply {
    int return_code;
    const char *msg;
};

/* @tamed async def slow_io() */
static void *slow_io(void *arg)
{
    (void)arg;
    stage_sleep(seed_time(0.1));
    struct reply *reply = malloc(sizeof *reply);
    reply->return_code = 200;
    reply->msg = "Time to be awesome!";
    return reply;
}

/* ============================
 * Asynchronous Execution
 * ============================ */

static void *amain(void *arg)
{
    (void)arg;
    stage_future *coro;
    stage_coro_spawn(NULL, slow_io, NULL, free, 0, &coro);

    void *value; /* await the result */
    if (stage_future_get(coro, STAGE_FOREVER, &value) == 0) {
        struct reply *reply = value;
        printf("Status %d: `%s`\n", reply->return_code, reply->msg);
    }
    stage_future_unref(coro);
    return NULL;
}

int main(void)
{
    stage_run(amain, NULL, NULL, NULL); /* asyncio.run(main()) */

    /* ============================
     * Synchronous Execution
     * ============================ */

    void *value; /* immediate result */
    if (stage_run(slow_io, NULL, free, &value))
        return 1;
    struct reply *reply = value;
    printf("Status %d: `%s`\n", reply->return_code, reply->msg);
    free(reply); /* stage_run handed the result over to us */

    /* ============================
     * AsyncScope Execution
     * ============================ */

    stage_scope *scope = stage_scope_new(NULL, 0, STAGE_FOREVER);
    if (!scope)
        return 1;
    stage_future *delayed_result;
    if (stage_scope_go_coro(scope, slow_io, NULL, free, &delayed_result))
        return 1;
    stage_scope_close(scope, STAGE_FOREVER); /* <-- implicit await on exit */
    stage_scope_free(scope);

    if (stage_future_get(delayed_result, 0, &value) == 0) { /* .value */
        reply = value;
        printf("Status %d: `%s`\n", reply->return_code, reply->msg);
    }
    stage_future_unref(delayed_result); /* frees the reply */

    stage_loop_free(stage_loop_current());
    return 0;
}
