/* SPDX-License-Identifier: MIT */
/*
 * async-tamer.md, block 8: "Exception Management" - a failure is caught
 * where its result is waited for, in the three execution forms.
 *
 * A task fails by recording an error code and a message
 * (stage_task_fail) and returning: the C form of raise RuntimeError("Oh
 * no!"), with EIO standing for RuntimeError.  Whoever waits for the result
 * gets that code: awaiting the future in a coroutine, calling the function
 * through stage_run, or blocking on the delayed result of a scope (block():
 * stage_future_get, which waits and reports the outcome).  A failure
 * caught there is collected, so the scope's close reports nothing.
 * Prints:
 *
 *   Actually, I'm good.
 *   Actually, I'm good.
 *   Actually, I'm good.
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>

/* @tamed async def faulty_function() */
static void *faulty_function(void *arg)
{
    (void)arg;
    return stage_task_fail(EIO, "Oh no!"); /* raise RuntimeError("Oh no!") */
}

/* ============================
 * Asynchronous Execution
 * ============================ */

static void *amain(void *arg)
{
    (void)arg;
    stage_future *coro;
    if (stage_coro_spawn(NULL, faulty_function, NULL, NULL, 0, &coro))
        return NULL;
    if (stage_future_get(coro, STAGE_FOREVER, NULL) == EIO) /* await coro */
        printf("Actually, I'm good.\n");
    stage_future_unref(coro);
    return NULL;
}

int main(void)
{
    stage_run(amain, NULL, NULL, NULL); /* asyncio.run(main()) */

    /* ============================
     * Synchronous Execution
     * ============================ */

    if (stage_run(faulty_function, NULL, NULL, NULL) == EIO)
        printf("Actually, I'm good.\n");

    /* ============================
     * AsyncScope Execution
     * ============================ */

    stage_scope *scope = stage_scope_new(NULL, 0, STAGE_FOREVER);
    if (!scope)
        return 1;
    stage_future *delayed_result;
    if (stage_scope_go_coro(scope, faulty_function, NULL, NULL,
                            &delayed_result))
        return 1;
    if (stage_future_get(delayed_result, STAGE_FOREVER, NULL) == EIO)
        printf("Actually, I'm good.\n"); /* delayed_result.block() */
    int err = stage_scope_close(scope, STAGE_FOREVER); /* 0: caught */
    stage_scope_free(scope);
    stage_future_unref(delayed_result);

    stage_loop_free(stage_loop_current());
    return err ? 1 : 0;
}
