/* SPDX-License-Identifier: MIT */
/*
 * async-tamer.md, block 2: "The `@tamed` decorator" - its Asynchronous,
 * Synchronous and AsyncScope Execution parts.
 *
 * In libstage every coroutine function is "tamed": stage_run calls it from
 * anywhere.  From a plain thread it blocks like an ordinary function; in a
 * coroutine stage_coro_spawn starts it without blocking and its future is
 * what you await (stage_future_wait).
 *
 * Asynchronous: three echoes start together and print in the order their
 * delays end (about 1 s in all):
 *
 *   async > DELAY(.1)
 *   async > DELAY(.5)
 *   async > DELAY(1)
 *
 * Synchronous: each call blocks until it has printed (1 + .1 + .5 s):
 *
 *   sync > DELAY(1)
 *   sync > DELAY(.1)
 *   sync > DELAY(.5)
 *
 * AsyncScope: the three echoes are started in a scope, as coroutines of
 * the main thread's loop, and overlap again; closing the scope waits for
 * them (about 1 s):
 *
 *   scope > DELAY(.1)
 *   scope > DELAY(.5)
 *   scope > DELAY(1)
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"
#include "tamer.h" /* slow_echo */

#include <stage.h>
#include <stdio.h>

/* ============================
 * Asynchronous Execution
 * ============================ */

static void *amain(void *arg)
{
    (void)arg;
    struct echo e1 = {"async > DELAY(1)", 1};
    struct echo e2 = {"async > DELAY(.1)", 0.1};
    struct echo e3 = {"async > DELAY(.5)", 0.5};
    stage_future *first, *second, *third;
    stage_coro_spawn(NULL, slow_echo, &e1, NULL, 0, &first);
    stage_coro_spawn(NULL, slow_echo, &e2, NULL, 0, &second);
    stage_coro_spawn(NULL, slow_echo, &e3, NULL, 0, &third);

    /* Don't forget the await! */
    stage_future_wait(second, STAGE_FOREVER);
    /* asyncio.gather(first, third) */
    stage_future_wait(first, STAGE_FOREVER);
    stage_future_wait(third, STAGE_FOREVER);

    stage_future_unref(first);
    stage_future_unref(second);
    stage_future_unref(third);
    return NULL;
}

int main(void)
{
    stage_run(amain, NULL, NULL, NULL); /* asyncio.run(main()) */

    /* ============================
     * Synchronous Execution
     * ============================ */

    struct echo s1 = {"sync > DELAY(1)", 1};
    struct echo s2 = {"sync > DELAY(.1)", 0.1};
    struct echo s3 = {"sync > DELAY(.5)", 0.5};
    stage_run(slow_echo, &s1, NULL, NULL);
    stage_run(slow_echo, &s2, NULL, NULL);
    stage_run(slow_echo, &s3, NULL, NULL);

    /* ============================
     * AsyncScope Execution
     * ============================ */

    struct echo c1 = {"scope > DELAY(1)", 1};
    struct echo c2 = {"scope > DELAY(.1)", 0.1};
    struct echo c3 = {"scope > DELAY(.5)", 0.5};
    stage_scope *scope = stage_scope_new(NULL, 0, STAGE_FOREVER);
    if (!scope)
        return 1;
    stage_scope_go_coro(scope, slow_echo, &c1, NULL, NULL);
    stage_scope_go_coro(scope, slow_echo, &c2, NULL, NULL);
    stage_scope_go_coro(scope, slow_echo, &c3, NULL, NULL);
    int err = stage_scope_close(scope, STAGE_FOREVER);
    stage_scope_free(scope);

    stage_loop_free(stage_loop_current());
    return err ? 1 : 0;
}
