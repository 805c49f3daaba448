/* SPDX-License-Identifier: MIT */
/*
 * async-tamer.md, block 1: "Usage".
 *
 * slow_echo is a coroutine function; called from the main thread with
 * stage_run it blocks like an ordinary function.  Started in a scope
 * (AsyncScope) it runs as a coroutine of the main thread's loop, without
 * blocking; closing the scope waits for it (the "implicit await").  The
 * two echoes of the scope overlap, so the shorter prints first:
 *
 *   sync > DELAY(.5)
 *   scope > DELAY(.1)
 *   scope > DELAY(.2)
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"
#include "tamer.h" /* slow_echo */

#include <stage.h>
#include <stdio.h>

int main(void)
{
    struct echo sync = {"sync > DELAY(.5)", 0.5};
    struct echo e2 = {"scope > DELAY(.2)", 0.2};
    struct echo e1 = {"scope > DELAY(.1)", 0.1};

    stage_run(slow_echo, &sync, NULL, NULL);

    /* with AsyncScope() as scope: */
    stage_scope *scope = stage_scope_new(NULL, 0, STAGE_FOREVER);
    if (!scope)
        return 1;
    stage_scope_go_coro(scope, slow_echo, &e2, NULL, NULL);
    stage_scope_go_coro(scope, slow_echo, &e1, NULL, NULL);
    int err = stage_scope_close(scope, STAGE_FOREVER); /* implicit await :) */
    stage_scope_free(scope);

    stage_loop_free(stage_loop_current());
    return err ? 1 : 0;
}
