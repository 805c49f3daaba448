/* SPDX-License-Identifier: MIT */
/*
 * async-tamer.md, block 6: "The `AsyncScope`" - nested scopes inside a
 * coroutine (Python's `async with`).
 *
 * The same scopes as block 5 (examples/tamer_05_nested.c), opened and
 * closed by slow_bulk_echo, a coroutine that the main thread runs with
 * stage_run.  The calls are the same: in a coroutine, stage_scope_close
 * suspends only the coroutine, and the echoes (coroutines of the same
 * loop) run meanwhile.  Same output, same order:
 *
 *   Outer Scope > DELAY(1)
 *   Outer Scope > Inner Scope > DELAY(1)
 *   Outer Scope > DELAY(1.5)
 *   Outer Scope > Inner Scope > DELAY(2)
 *   Outer Scope > DELAY(.5)
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"
#include "tamer.h" /* slow_echo */

#include <stage.h>
#include <stdio.h>

/* @tamed async def slow_bulk_echo() */
static void *slow_bulk_echo(void *arg)
{
    static struct echo o1 = {"Outer Scope > DELAY(1.5)", 1.5};
    static struct echo o2 = {"Outer Scope > DELAY(1)", 1};
    static struct echo i1 = {"Outer Scope > Inner Scope > DELAY(2)", 2};
    static struct echo i2 = {"Outer Scope > Inner Scope > DELAY(1)", 1};
    static struct echo o3 = {"Outer Scope > DELAY(.5)", 0.5};
    (void)arg;

    /* async with AsyncScope() as outer_scope: */
    stage_scope *outer_scope = stage_scope_new(NULL, 0, STAGE_FOREVER);
    if (!outer_scope)
        return stage_task_fail(ENOMEM, "no scope");
    stage_scope_go_coro(outer_scope, slow_echo, &o1, NULL, NULL);
    stage_scope_go_coro(outer_scope, slow_echo, &o2, NULL, NULL);

    /* async with AsyncScope() as inner_scope: */
    stage_scope *inner_scope = stage_scope_new(NULL, 0, STAGE_FOREVER);
    if (!inner_scope)
        return stage_task_fail(ENOMEM, "no scope");
    stage_scope_go_coro(inner_scope, slow_echo, &i1, NULL, NULL);
    stage_scope_go_coro(inner_scope, slow_echo, &i2, NULL, NULL);
    int err = stage_scope_close(inner_scope, STAGE_FOREVER);
    stage_scope_free(inner_scope); /* await inner_scope functions */

    /* Note: scheduled after inner scope has finished */
    stage_scope_go_coro(outer_scope, slow_echo, &o3, NULL, NULL);
    int err2 = stage_scope_close(outer_scope, STAGE_FOREVER);
    stage_scope_free(outer_scope);
    if (err || err2)
        return stage_task_fail(err ? err : err2, "a scope failed");
    return NULL;
}

int main(void)
{
    int err = stage_run(slow_bulk_echo, NULL, NULL, NULL);
    stage_loop_free(stage_loop_current());
    return err ? 1 : 0;
}
