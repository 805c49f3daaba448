/* SPDX-License-Identifier: MIT */
/*
 * async-tamer.md, block 5: "The `AsyncScope`" - nested scopes, from a
 * plain thread (Python's `with`).
 *
 * The outer scope's echoes run alongside the inner scope's: all of them
 * are coroutines of the main thread's loop, which runs while the main
 * thread waits in stage_scope_close.  The inner close returns only when
 * its two echoes are done, so the last echo starts after them:
 *
 *   Outer Scope > DELAY(1)                  (at 1 s)
 *   Outer Scope > Inner Scope > DELAY(1)    (at 1 s, started after it)
 *   Outer Scope > DELAY(1.5)                (at 1.5 s)
 *   Outer Scope > Inner Scope > DELAY(2)    (at 2 s: the inner scope ends)
 *   Outer Scope > DELAY(.5)                 (at 2.5 s)
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"
#include "tamer.h" /* slow_echo */

#include <stage.h>
#include <stdio.h>

int main(void)
{
    struct echo o1 = {"Outer Scope > DELAY(1.5)", 1.5};
    struct echo o2 = {"Outer Scope > DELAY(1)", 1};
    struct echo i1 = {"Outer Scope > Inner Scope > DELAY(2)", 2};
    struct echo i2 = {"Outer Scope > Inner Scope > DELAY(1)", 1};
    struct echo o3 = {"Outer Scope > DELAY(.5)", 0.5};

    /* with AsyncScope() as outer_scope: */
    stage_scope *outer_scope = stage_scope_new(NULL, 0, STAGE_FOREVER);
    if (!outer_scope)
        return 1;
    stage_scope_go_coro(outer_scope, slow_echo, &o1, NULL, NULL);
    stage_scope_go_coro(outer_scope, slow_echo, &o2, NULL, NULL);

    /* with AsyncScope() as inner_scope: */
    stage_scope *inner_scope = stage_scope_new(NULL, 0, STAGE_FOREVER);
    if (!inner_scope)
        return 1;
    stage_scope_go_coro(inner_scope, slow_echo, &i1, NULL, NULL);
    stage_scope_go_coro(inner_scope, slow_echo, &i2, NULL, NULL);
    int err = stage_scope_close(inner_scope, STAGE_FOREVER);
    stage_scope_free(inner_scope); /* await inner_scope functions */

    /* Note: scheduled after inner scope has finished */
    stage_scope_go_coro(outer_scope, slow_echo, &o3, NULL, NULL);
    if (!err)
        err = stage_scope_close(outer_scope, STAGE_FOREVER);
    stage_scope_free(outer_scope);

    stage_loop_free(stage_loop_current());
    return err ? 1 : 0;
}
