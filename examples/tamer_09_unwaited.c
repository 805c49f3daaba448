/* SPDX-License-Identifier: MIT */
/*
 * async-tamer.md, block 9: "Exception Management" - a failure that nobody
 * waits for is reported when the scope closes.
 *
 * The scope's close is the catch-all: it returns the first failure that
 * nobody collected, and lists every one of them (stage_scope_failure:
 * the task's name, the error code, the message), so no failure is left
 * behind.  Python prints the traceback and exits; here we print what close
 * returned (the error text depends on the C library):
 *
 *   faulty_function failed: Input/output error: Oh no!
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>
#include <string.h>

/* @tamed async def faulty_function() */
static void *faulty_function(void *arg)
{
    (void)arg;
    return stage_task_fail(EIO, "Oh no!"); /* raise RuntimeError("Oh no!") */
}

int main(void)
{
    /* with AsyncScope() as scope: */
    stage_scope *scope = stage_scope_new(NULL, 0, STAGE_FOREVER);
    if (!scope)
        return 1;
    stage_future *result;
    if (stage_scope_go_coro(scope, faulty_function, NULL, NULL, &result))
        return 1;
    stage_future_set_name(result, "faulty_function");
    int err = stage_scope_close(scope, STAGE_FOREVER);

    const char *task, *message;
    if (err && stage_scope_failure(scope, 0, &task, NULL, &message) == 0)
        printf("%s failed: %s: %s\n", task, strerror(err), message);
    stage_scope_free(scope);
    stage_future_unref(result);

    stage_loop_free(stage_loop_current());
    return err == EIO ? 0 : 1;
}
