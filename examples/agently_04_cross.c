/* SPDX-License-Identifier: MIT */
/*
 * agently-stage.md, block 4: "How can this be useful?" - a StageFunction
 * defined in one Stage, waited for and called from another.
 *
 * stage_1 owns an async handler (a stage_func that runs as a coroutine on
 * stage_1's loop thread).  In stage_2, a pool thread waits for the handler's
 * result before anyone has called it; some time later a coroutine of
 * stage_2 calls it.  The waiter then prints, after about 2 s:
 *
 *   Someone said: StageFunction is useful!
 *
 * One difference from Python: there, stage_1's `with` block ends before
 * the handler is called.  A closed libstage Stage refuses new work (EPIPE),
 * so here stage_1 stays open until stage_2, which calls the handler, has
 * finished.
 *
 * Times are scaled by STAGE_TIME_SCALE (seed.h).
 */
#include "seed.h"

#include <stage.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static stage_func *handler;

/* async def handler(sentence) */
static void *handler_body(void *arg)
{
    const char *sentence = arg;
    char *result = malloc(32 + strlen(sentence));
    sprintf(result, "Someone said: %s", sentence);
    return result;
}

/* def waiting(): runs on a pool thread of stage_2. */
static void *waiting(void *arg)
{
    (void)arg;
    void *result;
    if (stage_func_wait(handler, STAGE_FOREVER, &result) == 0)
        printf("%s\n", (char *)result);
    return NULL;
}

/* async def executor(): runs on stage_2's loop thread. */
static void *executor(void *arg)
{
    (void)arg;
    stage_sleep(seed_time(1));
    stage_func_start(handler, "StageFunction is useful!");
    return NULL;
}

int main(void)
{
    /* We create a handler in one dispatch. */
    stage *stage_1 = stage_new("stage_1", 0, 0);
    handler = stage_func_new(stage_1, handler_body, STAGE_FUNC_CORO, free);

    { /* We wait for this handler in another dispatch. */
        stage *stage_2 = stage_new("stage_2", 0, 0);
        stage_go(stage_2, waiting, NULL, NULL, NULL);
        /* Some uncertain time later, the handler is called. */
        blocking_sleep(seed_time(1));
        stage_go_coro(stage_2, executor, NULL, NULL, NULL);
        stage_free(stage_2);
    }

    stage_free(stage_1);
    stage_func_unref(handler);
    stage_loop_free(stage_loop_current());
    return 0;
}
